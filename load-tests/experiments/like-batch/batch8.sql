\set n :n + 1
\set g0 (:n * :clients + :client_id) * 8 + 0
\set post0 1 + :g0 % :posts
\set liker0 :authors + 1 + :g0 / :posts
\set g1 (:n * :clients + :client_id) * 8 + 1
\set post1 1 + :g1 % :posts
\set liker1 :authors + 1 + :g1 / :posts
\set g2 (:n * :clients + :client_id) * 8 + 2
\set post2 1 + :g2 % :posts
\set liker2 :authors + 1 + :g2 / :posts
\set g3 (:n * :clients + :client_id) * 8 + 3
\set post3 1 + :g3 % :posts
\set liker3 :authors + 1 + :g3 / :posts
\set g4 (:n * :clients + :client_id) * 8 + 4
\set post4 1 + :g4 % :posts
\set liker4 :authors + 1 + :g4 / :posts
\set g5 (:n * :clients + :client_id) * 8 + 5
\set post5 1 + :g5 % :posts
\set liker5 :authors + 1 + :g5 / :posts
\set g6 (:n * :clients + :client_id) * 8 + 6
\set post6 1 + :g6 % :posts
\set liker6 :authors + 1 + :g6 / :posts
\set g7 (:n * :clients + :client_id) * 8 + 7
\set post7 1 + :g7 % :posts
\set liker7 :authors + 1 + :g7 / :posts
WITH args AS ( SELECT a.post, a.liker, a.at, a.text, a.ord FROM unnest(ARRAY[:post0,:post1,:post2,:post3,:post4,:post5,:post6,:post7]::int8[], ARRAY[:liker0,:liker1,:liker2,:liker3,:liker4,:liker5,:liker6,:liker7]::int8[], array_fill(LOCALTIMESTAMP(3)::timestamp, ARRAY[8]), array_fill('x liked your photo.'::text, ARRAY[8])) WITH ORDINALITY AS a(post, liker, at, text, ord)), liked AS ( INSERT INTO likes (post_id, user_id, created_at) SELECT args.post, args.liker, args.at FROM args JOIN posts ON posts.id = args.post ORDER BY args.ord ON CONFLICT DO NOTHING RETURNING post_id, user_id), fresh AS ( SELECT args.post, args.liker, args.at, args.text, args.ord, posts.author_id, row_number() OVER (PARTITION BY args.post ORDER BY args.ord) AS nth_on_post FROM liked JOIN args ON args.post = liked.post_id AND args.liker = liked.user_id JOIN posts ON posts.id = args.post), post_locks AS ( SELECT id FROM posts WHERE id IN (SELECT post FROM fresh) ORDER BY id FOR UPDATE), counted AS ( UPDATE posts SET like_count = like_count + per_post.n, like_seq = like_seq + per_post.n FROM (SELECT post, count(*) AS n FROM fresh GROUP BY post) per_post WHERE posts.id = per_post.post AND posts.id IN (SELECT id FROM post_locks) RETURNING posts.id, posts.like_count - per_post.n AS count_before, posts.like_seq - per_post.n AS seq_before), noticed AS ( INSERT INTO like_notices (post_id, user_id) SELECT fresh.post, fresh.liker FROM fresh JOIN counted ON counted.id = fresh.post ORDER BY fresh.ord ON CONFLICT DO NOTHING RETURNING post_id, user_id), to_notify AS ( SELECT fresh.*, row_number() OVER (PARTITION BY fresh.author_id ORDER BY fresh.ord) AS nth_for_author FROM noticed JOIN fresh ON fresh.post = noticed.post_id AND fresh.liker = noticed.user_id WHERE fresh.author_id <> fresh.liker), user_locks AS ( SELECT id FROM users WHERE id IN (SELECT author_id FROM to_notify) ORDER BY id FOR UPDATE), sequenced AS ( UPDATE users SET notification_seq = notification_seq + per_author.n FROM (SELECT author_id, count(*) AS n FROM to_notify GROUP BY author_id) per_author WHERE users.id = per_author.author_id AND users.id IN (SELECT id FROM user_locks) RETURNING users.id, users.notification_seq - per_author.n AS seq_before), notified AS ( INSERT INTO notifications (recipient_id, seq, actor_id, kind, post_id, text, created_at) SELECT sequenced.id, sequenced.seq_before + to_notify.nth_for_author, to_notify.liker, 'like', to_notify.post, to_notify.text, to_notify.at FROM to_notify JOIN sequenced ON sequenced.id = to_notify.author_id ORDER BY sequenced.id, to_notify.nth_for_author RETURNING id, seq, post_id, actor_id) SELECT args.ord, counted.count_before + fresh.nth_on_post, counted.seq_before + fresh.nth_on_post, fresh.author_id, notified.id, notified.seq FROM args LEFT JOIN fresh ON fresh.ord = args.ord LEFT JOIN counted ON counted.id = fresh.post LEFT JOIN notified ON notified.post_id = args.post AND notified.actor_id = args.liker ORDER BY args.ord;
