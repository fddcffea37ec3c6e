-- One like as the server sends it to PostgreSQL for PUT /api/v1/posts/{id}/like, as a pgbench
-- script. This file is the head: the variables and the authentication read. The like itself is
-- schema/src/likes/like.sql, the very text the server binds; load-tests/lib/pgbench-like.sh
-- appends it with pgbench variables in place of its nine parameters (post, liker, at, text,
-- kind, grouping window, actor JSON, push delay and TTL; `at` becomes LOCALTIMESTAMP(3) where the server binds its clock).
--   auth   SELECT id, username, display_name FROM users WHERE id = $1 AND NOT EXISTS
--          (revoked_tokens ... = ANY ($2))   (the caller, who is the notification's actor)
--   like   one statement, its own transaction (see schema/src/likes/postgres.rs).
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
