-- Grouped notifications. Keep in step with ../../postgres/2026-12-02-000003_notification_groups/up.sql
-- and schema/src/groups/ (the comments there explain each column).
ALTER TABLE users ADD COLUMN group_version BIGINT NOT NULL DEFAULT 0;

CREATE TABLE notification_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    post_id BIGINT,
    post_key BIGINT NOT NULL,
    actor_count BIGINT NOT NULL,
    actors TEXT NOT NULL,
    latest_notification_id BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    newest_at TIMESTAMP NOT NULL,
    read BOOLEAN NOT NULL DEFAULT FALSE,
    open BOOLEAN NOT NULL DEFAULT TRUE,
    removed BOOLEAN NOT NULL DEFAULT FALSE,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX notification_groups_open_idx
    ON notification_groups (recipient_id, kind, post_key) WHERE open;
CREATE INDEX notification_groups_version_idx ON notification_groups (recipient_id, version);

ALTER TABLE notifications ADD COLUMN group_id BIGINT;
CREATE INDEX notifications_group_idx ON notifications (group_id, id);

INSERT INTO notification_groups (recipient_id, kind, post_id, post_key, actor_count, actors,
    latest_notification_id, updated_at, newest_at, read, open, removed, version)
SELECT n.recipient_id, n.kind, n.post_id, COALESCE(n.post_id, 0),
    CASE WHEN gone THEN 0 ELSE 1 END,
    CASE WHEN gone THEN '[]' ELSE json_array(json_object(
        'id', u.id, 'username', u.username, 'display_name', u.display_name)) END,
    n.id, n.created_at, n.created_at, n.read, FALSE, gone, n.seq
FROM (SELECT n.*,
        (n.kind = 'like' AND NOT EXISTS (SELECT 1 FROM likes l
            WHERE l.post_id = n.post_id AND l.user_id = n.actor_id))
        OR (n.kind = 'follow' AND NOT EXISTS (SELECT 1 FROM follows f
            WHERE f.follower_id = n.actor_id AND f.followee_id = n.recipient_id)) AS gone
      FROM notifications n) n
JOIN users u ON u.id = n.actor_id;
UPDATE notifications SET group_id = (SELECT g.id FROM notification_groups g
    WHERE g.latest_notification_id = notifications.id);
UPDATE users SET group_version = notification_seq;
