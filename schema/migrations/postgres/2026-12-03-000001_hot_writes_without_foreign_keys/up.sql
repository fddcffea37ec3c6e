-- The tables a like writes keep no foreign keys. Each key cost the like a lookup and a row lock
-- of the post or user it names, run as a statement of its own after the like's statement: the
-- eight of them were 27% of PostgreSQL's instructions per like (load-tests/RESULTS.md).
--
-- What they guaranteed is kept another way:
-- - users are never deleted, and every writer names users it has just read (the caller, a
--   post's author), so the keys to users only ever checked what was true;
-- - deleting a post deletes its likes, like notices and notifications itself, in its
--   transaction, after the post's row (crate::posts::delete), instead of by cascade;
-- - a like of a post that is missing, or deleted while the like ran, finds no post to count:
--   its statement answers no row, and the like's row, if it wrote one, is deleted before the
--   like is answered 404 (crate::likes).
-- SQLite keeps its keys: they cost it little, and its like is not one statement.
ALTER TABLE likes DROP CONSTRAINT likes_post_id_fkey;
ALTER TABLE likes DROP CONSTRAINT likes_user_id_fkey;
ALTER TABLE like_notices DROP CONSTRAINT like_notices_post_id_fkey;
ALTER TABLE like_notices DROP CONSTRAINT like_notices_user_id_fkey;
ALTER TABLE notifications DROP CONSTRAINT notifications_post_id_fkey;
ALTER TABLE notifications DROP CONSTRAINT notifications_recipient_id_fkey;
ALTER TABLE notifications DROP CONSTRAINT notifications_actor_id_fkey;
ALTER TABLE notification_groups DROP CONSTRAINT notification_groups_recipient_id_fkey;
