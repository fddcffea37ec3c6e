-- Web Push and notification preferences. Keep in step with
-- ../../sqlite/2026-12-02-000004_push_and_preferences/up.sql and schema/src/push.rs.

-- One subscription per device, that is per login token (its revocation id). It goes with the
-- token: logout deletes it, and it is not used after the token expires.
CREATE TABLE push_subscriptions (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_id TEXT NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX push_subscriptions_user_idx ON push_subscriptions (user_id);

-- A push waiting to be sent: one per (notification, subscription), written in the notification's
-- transaction. A worker claims due ones for `claimed_until` (another instance takes over a claim
-- whose instance died), sends, and deletes the row; a retry moves `due_at`.
CREATE TABLE push_jobs (
    id BIGSERIAL PRIMARY KEY,
    notification_id BIGINT NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    subscription_id BIGINT NOT NULL REFERENCES push_subscriptions(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    due_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_until TIMESTAMP
);
CREATE INDEX push_jobs_due_idx ON push_jobs (due_at);
CREATE INDEX push_jobs_notification_idx ON push_jobs (notification_id);
CREATE INDEX push_jobs_subscription_idx ON push_jobs (subscription_id);

-- Per kind: `inbox` false creates no notification at all, `push` false no push. Absent row:
-- everything on, from everyone.
CREATE TABLE notification_preferences (
    user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    like_inbox BOOLEAN NOT NULL DEFAULT TRUE,
    like_push BOOLEAN NOT NULL DEFAULT TRUE,
    comment_inbox BOOLEAN NOT NULL DEFAULT TRUE,
    comment_push BOOLEAN NOT NULL DEFAULT TRUE,
    follow_inbox BOOLEAN NOT NULL DEFAULT TRUE,
    follow_push BOOLEAN NOT NULL DEFAULT TRUE,
    -- Only people the user follows may notify them.
    from_following BOOLEAN NOT NULL DEFAULT FALSE
);
