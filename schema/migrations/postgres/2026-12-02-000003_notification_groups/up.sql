-- Grouped notifications. Keep in step with ../../sqlite/2026-12-02-000003_notification_groups/up.sql
-- and schema/src/groups/.
-- Per-recipient counter of group changes: every change to one of the user's groups takes the
-- next value, drawn while the user's row is locked, so versions commit in increasing order.
ALTER TABLE users ADD COLUMN group_version BIGINT NOT NULL DEFAULT 0;

-- A group is kept after its last actor leaves or its post is deleted (`removed`), so a client
-- resuming from an older version learns of the removal.
CREATE TABLE notification_groups (
    id BIGSERIAL PRIMARY KEY,
    recipient_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    -- No foreign key: deleting the post marks its groups removed instead.
    post_id BIGINT,
    -- post_id, or 0 for follows: the open group's key.
    post_key BIGINT NOT NULL,
    actor_count BIGINT NOT NULL,
    -- JSON array of the newest actors (at most 3) as UserSummary, newest first.
    actors TEXT NOT NULL,
    latest_notification_id BIGINT NOT NULL,
    -- When the group last changed (it orders the inbox, as `version` does).
    updated_at TIMESTAMP NOT NULL,
    -- When the newest member joined: the grouping window.
    newest_at TIMESTAMP NOT NULL,
    read BOOLEAN NOT NULL DEFAULT FALSE,
    -- Still taking new members: unread, and not replaced by a newer group.
    open BOOLEAN NOT NULL DEFAULT TRUE,
    removed BOOLEAN NOT NULL DEFAULT FALSE,
    version BIGINT NOT NULL
);
-- At most one open group per recipient, kind and post: the like statement upserts into it.
CREATE UNIQUE INDEX notification_groups_open_idx
    ON notification_groups (recipient_id, kind, post_key) WHERE open;
-- Resuming from a version, and the inbox of groups (newest change first).
CREATE INDEX notification_groups_version_idx ON notification_groups (recipient_id, version);

-- Every notification belongs to one group. No foreign key: groups are never deleted on their own.
ALTER TABLE notifications ADD COLUMN group_id BIGINT;
-- A group's newest present members.
CREATE INDEX notifications_group_idx ON notifications (group_id, id);

-- Notifications from before grouping: one group each (closed, so new ones start new groups).
INSERT INTO notification_groups (recipient_id, kind, post_id, post_key, actor_count, actors,
    latest_notification_id, updated_at, newest_at, read, open, removed, version)
SELECT n.recipient_id, n.kind, n.post_id, COALESCE(n.post_id, 0),
    CASE WHEN gone THEN 0 ELSE 1 END,
    CASE WHEN gone THEN '[]' ELSE json_build_array(json_build_object(
        'id', u.id, 'username', u.username, 'display_name', u.display_name))::text END,
    n.id, n.created_at, n.created_at, n.read, FALSE, gone, n.seq
FROM (SELECT n.*,
        (n.kind = 'like' AND NOT EXISTS (SELECT 1 FROM likes l
            WHERE l.post_id = n.post_id AND l.user_id = n.actor_id))
        OR (n.kind = 'follow' AND NOT EXISTS (SELECT 1 FROM follows f
            WHERE f.follower_id = n.actor_id AND f.followee_id = n.recipient_id)) AS gone
      FROM notifications n) n
JOIN users u ON u.id = n.actor_id;
UPDATE notifications SET group_id = g.id
FROM notification_groups g WHERE g.latest_notification_id = notifications.id;
UPDATE users SET group_version = notification_seq;
