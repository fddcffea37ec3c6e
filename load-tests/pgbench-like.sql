-- One like, statement for statement as the server sends it to PostgreSQL for
-- PUT /api/v1/posts/{id}/like (captured with log_min_duration_statement = 0 on 2026-11-24,
-- after the counter UPDATEs became cacheable and the actor came with the token check; code:
-- server/src/auth.rs `authenticate` -> schema/src/tokens.rs `active_user`, then schema/src/likes.rs `like` with the
-- `insert_notification!` macro of schema/src/notifications.rs and schema/src/counters.rs), on
-- the schema of schema/migrations/postgres/2026-11-24-000001_init/up.sql:
--   auth            SELECT id, username, display_name FROM users WHERE id = $1 AND NOT EXISTS
--                   (revoked_tokens ... = ANY ($2))   (the caller, who is the notification's actor)
--   BEGIN
--   1 INSERT INTO likes ... ON CONFLICT DO NOTHING RETURNING post_id
--   one pipeline (both sent before either answer is read; schema/src/pipeline.rs):
--   2 UPDATE posts SET like_count = like_count + $1, like_seq = like_seq + 1 ... RETURNING
--     like_count, like_seq, author_id
--   3 INSERT INTO like_notices ... ON CONFLICT DO NOTHING RETURNING post_id
--   a second pipeline:
--   4 UPDATE users SET notification_seq = notification_seq + 1 ... RETURNING notification_seq
--   5 INSERT INTO notifications (..., seq, ...) VALUES (..., (SELECT notification_seq FROM
--     users WHERE id = $2), ...) RETURNING (every column)
--   COMMIT
-- pgbench cannot \gset inside a pipeline, so the recipient (the post's author) is computed
-- from the seeding rule below instead of read from statement 2; the server reads it from 2.
-- Run with -M prepared (ceiling.sh does): every statement is parsed once per connection, as the
-- server's prepared-statement cache does. Left out: HTTP, JSON, biscuit verification, the
-- Redis PUBLISHes after commit. So the tps is what the database allows for this exact
-- transaction on this machine: "the ceiling".
--
-- Every transaction is a first like of a fresh (liker, post) pair, like every like of the k6
-- scenario: client c's n-th transaction uses pair g = n * clients + c, post (g % posts) + 1,
-- liker authors + 1 + g / posts. Variables (pgbench -D): authors, likers, posts, clients (= -c),
-- n=0 (a per-client counter; pgbench keeps client variables between transactions). Users
-- 1..authors are the authors, post p belongs to user ((p - 1) % authors) + 1 (ceiling.sh seeds
-- exactly that), so a liker is never the author and every like notifies.
\set n :n + 1
\set g :n * :clients + :client_id
\set post 1 + :g % :posts
\set liker :authors + 1 + :g / :posts
SELECT id, username AS actor_name, display_name FROM users WHERE id = :liker
  AND NOT EXISTS (SELECT revocation_id, expires_at FROM revoked_tokens WHERE revocation_id = ANY (ARRAY['0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'])) LIMIT 1 \gset
BEGIN;
INSERT INTO likes (post_id, user_id, created_at) VALUES (:post, :liker, LOCALTIMESTAMP(3))
  ON CONFLICT DO NOTHING RETURNING post_id;
\set recipient 1 + (:post - 1) % :authors
\startpipeline
UPDATE posts SET like_count = like_count + 1, like_seq = like_seq + 1 WHERE id = :post
  RETURNING like_count, like_seq, author_id;
INSERT INTO like_notices (post_id, user_id) VALUES (:post, :liker)
  ON CONFLICT DO NOTHING RETURNING post_id;
\endpipeline
\startpipeline
UPDATE users SET notification_seq = notification_seq + 1 WHERE id = :recipient
  RETURNING notification_seq;
INSERT INTO notifications (recipient_id, seq, actor_id, kind, post_id, comment_id, text, created_at)
  VALUES (:recipient, (SELECT notification_seq FROM users WHERE id = :recipient), :liker, 'like', :post, NULL, :actor_name || ' liked your photo.', LOCALTIMESTAMP(3))
  RETURNING id, recipient_id, seq, actor_id, kind, post_id, comment_id, text, created_at, read;
\endpipeline
COMMIT;
