-- Two index entries fewer per like, neither read by any query (load-tests/like-instructions.sh:
-- 900k -> 878k instructions and 1,965 -> 1,797 bytes of WAL per like).
--
-- A notification's `seq` is drawn by the update of its recipient's `users.notification_seq`,
-- which holds the recipient's row until the notification commits, so no two notifications of a
-- recipient can share a `seq`: the unique index on (recipient_id, seq) only checked that again.
-- Replay reads `notifications_recipient_idx`, (recipient_id, id).
ALTER TABLE notifications DROP CONSTRAINT notifications_recipient_id_seq_key;
-- Which of some posts a viewer liked (`liked_by_me`) is read by the primary key,
-- (post_id, user_id) with `post_id = ANY (...)`; nothing reads a user's likes by user first.
DROP INDEX likes_user_idx;
