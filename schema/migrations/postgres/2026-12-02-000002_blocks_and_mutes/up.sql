-- Block and mute. Keep in step with ../../sqlite/2026-12-02-000002_blocks_and_mutes/up.sql.
-- A block hides each from the other and stops the blocked user's notifications to the blocker;
-- a mute only stops the muted user's notifications to the muter.
-- `id` orders each list newest first (its keyset cursor).
CREATE TABLE blocks (
    id BIGSERIAL PRIMARY KEY,
    blocker_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (blocker_id, blocked_id)
);
-- "Has this user blocked me" from the other side.
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);

CREATE TABLE mutes (
    id BIGSERIAL PRIMARY KEY,
    muter_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    muted_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (muter_id, muted_id)
);

-- Bumped by every block and mute the user makes: a statement drawing that user's next
-- notification `seq` checks it did not change since its snapshot (see schema/src/blocks.rs).
ALTER TABLE users ADD COLUMN reach_version BIGINT NOT NULL DEFAULT 0;

-- Removing a blocked user's notifications to the blocker reads them by (recipient, actor).
CREATE INDEX notifications_actor_idx ON notifications (recipient_id, actor_id);
