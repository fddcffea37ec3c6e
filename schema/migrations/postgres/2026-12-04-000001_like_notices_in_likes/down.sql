CREATE TABLE like_notices (
    post_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    PRIMARY KEY (post_id, user_id)
);
INSERT INTO like_notices (post_id, user_id) SELECT post_id, user_id FROM likes;
DELETE FROM likes WHERE unliked;
ALTER TABLE likes DROP COLUMN unliked, DROP COLUMN relikes;
