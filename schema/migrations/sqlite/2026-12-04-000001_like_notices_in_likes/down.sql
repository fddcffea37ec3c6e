CREATE TABLE like_notices (
    post_id BIGINT NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (post_id, user_id)
);
INSERT INTO like_notices (post_id, user_id) SELECT post_id, user_id FROM likes;
DELETE FROM likes WHERE unliked;
ALTER TABLE likes DROP COLUMN unliked;
ALTER TABLE likes DROP COLUMN relikes;
