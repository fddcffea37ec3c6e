-- One like, statement for statement as the server sends it to PostgreSQL for
-- PUT /api/v1/posts/{id}/like (code: server/src/auth.rs `authenticate` -> schema/src/tokens.rs
-- `active_user`, then schema/src/likes.rs `like` -> schema/src/like_statement.rs
-- `LikeStatement`), on the schema of schema/migrations/postgres/2026-11-24-000001_init/up.sql:
--   auth   SELECT id, username, display_name FROM users WHERE id = $1 AND NOT EXISTS
--          (revoked_tokens ... = ANY ($2))   (the caller, who is the notification's actor)
--   like   one statement, its own transaction: WITH args, liked (INSERT INTO likes ... ON
--          CONFLICT DO NOTHING), counted (UPDATE posts ... like_count + 1), noticed (INSERT INTO
--          like_notices ... ON CONFLICT DO NOTHING), sequenced (UPDATE users SET
--          notification_seq + 1 for the author unless it is the liker), notified (INSERT INTO
--          notifications) SELECT ... (fix 18 in RESULTS.md; before it the like was BEGIN, the
--          like row, two pipelined pairs and COMMIT: 4 round trips instead of 1).
-- The text below is the server's statement with pgbench variables for its five parameters
-- (post, liker, at, text, kind); `at` is LOCALTIMESTAMP(3) where the server binds its clock.
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
WITH args AS (SELECT :post::int8 AS post, :liker::int8 AS liker, LOCALTIMESTAMP(3)::timestamp AS at, (:actor_name || ' liked your photo.')::text AS text, 'like'::text AS kind), liked AS (INSERT INTO likes (post_id, user_id, created_at) SELECT post, liker, at FROM args ON CONFLICT DO NOTHING RETURNING post_id), counted AS (UPDATE posts SET like_count = like_count + 1, like_seq = like_seq + 1 WHERE id = (SELECT post_id FROM liked) RETURNING like_count, like_seq, author_id), noticed AS (INSERT INTO like_notices (post_id, user_id) SELECT post, liker FROM args, counted ON CONFLICT DO NOTHING RETURNING post_id), sequenced AS (UPDATE users SET notification_seq = notification_seq + 1 WHERE id = (SELECT author_id FROM counted, args WHERE author_id <> liker) AND EXISTS (SELECT 1 FROM noticed) RETURNING id, notification_seq), notified AS (INSERT INTO notifications (recipient_id, seq, actor_id, kind, post_id, text, created_at) SELECT sequenced.id, sequenced.notification_seq, liker, kind, post, text, at FROM sequenced, args RETURNING id, seq) SELECT counted.like_count, counted.like_seq, counted.author_id, notified.id, notified.seq FROM counted LEFT JOIN notified ON true;
