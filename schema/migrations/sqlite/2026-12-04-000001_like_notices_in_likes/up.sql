-- A like's row stays when it is taken back: `unliked` marks it, and the row is the "notified once
-- ever" marker that like_notices kept apart, as on PostgreSQL. `relikes` counts the likes again
-- after an unlike.
ALTER TABLE likes ADD COLUMN unliked BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE likes ADD COLUMN relikes INTEGER NOT NULL DEFAULT 0;
INSERT INTO likes (post_id, user_id, created_at, unliked, relikes)
    SELECT n.post_id, n.user_id, strftime('%Y-%m-%d %H:%M:%f', 'now'), 1, 0 FROM like_notices n
    WHERE true
    ON CONFLICT (post_id, user_id) DO NOTHING;
DROP TABLE like_notices;
