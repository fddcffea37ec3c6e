-- One like, as the server runs PUT /api/v1/posts/{id}/like against PostgreSQL
-- (server/src/auth.rs token check, then schema/src/likes.rs `like` and the
-- `insert_notification!` macro of schema/src/notifications.rs), on the schema of
-- schema/migrations/postgres/2026-11-24-000001_init/up.sql:
--   0 SELECT EXISTS (revoked_tokens ...)                           token check, own statement
--   BEGIN
--   1 SELECT author_id FROM posts WHERE id = :post
--   2 INSERT INTO likes ... ON CONFLICT DO NOTHING RETURNING post_id (a repeated like stops here)
--   3 UPDATE posts SET like_count = like_count + 1, like_seq = like_seq + 1 ... RETURNING
--   4 INSERT INTO like_notices ... ON CONFLICT DO NOTHING RETURNING (like/unlike/like notifies once)
--   5 SELECT id, username, display_name FROM users WHERE id = :liker (the actor, for the text)
--   6 UPDATE users SET notification_seq = notification_seq + 1 WHERE id = :recipient RETURNING
--   7 INSERT INTO notifications (...) RETURNING *
--   COMMIT
-- Left out: the Redis PUBLISH after commit, HTTP, JSON, biscuit verification. So the tps is
-- what the database alone allows for this transaction: "the ceiling".
--
-- Variables (pgbench -D): authors, likers, posts. Users 1..authors are the authors, post p
-- belongs to user ((p - 1) % authors) + 1, likers are users authors+1 .. authors+likers, so a
-- liker is never the author and every first like notifies. ceiling.sh seeds exactly that.
-- Pairs are drawn at random: with 250 posts x 50,000 likers a repeat (statements 0-2 only) is
-- rarer than 1 in 100 for a few hundred thousand transactions.
-- Run it with -M prepared (as ceiling.sh does): :actor_name is then a parameter, not raw text.
\set liker :authors + random(1, :likers)
\set post random(1, :posts)
SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE revocation_id = ANY (ARRAY['pgbench-' || :liker])) AS revoked;
BEGIN;
SELECT author_id AS recipient FROM posts WHERE id = :post \gset
WITH ins AS (
  INSERT INTO likes (post_id, user_id, created_at)
  VALUES (:post, :liker, date_trunc('milliseconds', now() AT TIME ZONE 'UTC'))
  ON CONFLICT DO NOTHING
  RETURNING post_id
) SELECT count(*) AS inserted FROM ins \gset
\if :inserted
UPDATE posts SET like_count = like_count + 1, like_seq = like_seq + 1
  WHERE id = :post
  RETURNING like_count, like_seq;
WITH notice AS (
  INSERT INTO like_notices (post_id, user_id) VALUES (:post, :liker)
  ON CONFLICT DO NOTHING
  RETURNING post_id
) SELECT count(*) AS noticed FROM notice \gset
\if :noticed
SELECT id, username AS actor_name, display_name FROM users WHERE id = :liker \gset
UPDATE users SET notification_seq = notification_seq + 1
  WHERE id = :recipient
  RETURNING notification_seq AS seq \gset
INSERT INTO notifications (recipient_id, seq, actor_id, kind, post_id, comment_id, text, created_at)
  VALUES (:recipient, :seq, :liker, 'like', :post, NULL, CAST(:actor_name AS text) || ' liked your photo.',
          date_trunc('milliseconds', now() AT TIME ZONE 'UTC'))
  RETURNING *;
\endif
\else
SELECT like_count, like_seq FROM posts WHERE id = :post;
\endif
COMMIT;
