WITH input AS (SELECT a.post, a.liker, a.text, a.actor, a.ord
  FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[]) WITH ORDINALITY AS a(post, liker, text, actor, ord)),
args AS (SELECT $5::timestamp AS at, $6::text AS kind, $7::int8 AS window_secs, $8::int8 AS push_delay_ms, $9::int8 AS push_ttl_secs),
locked AS MATERIALIZED (SELECT p.id, p.author_id FROM posts p
  WHERE p.id IN (SELECT post FROM input) ORDER BY p.id FOR NO KEY UPDATE),
allowed AS (SELECT input.*, p.author_id AS author FROM input JOIN locked p ON p.id = input.post
  WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = p.author_id AND b.blocked_id = input.liker)),
liked AS (INSERT INTO likes (post_id, user_id, created_at)
  SELECT post, liker, at FROM allowed, args ORDER BY ord
  ON CONFLICT (post_id, user_id) DO UPDATE SET unliked = false, relikes = likes.relikes + 1
  WHERE likes.unliked
  RETURNING post_id, user_id, relikes = 0 AS first),
fresh AS (SELECT allowed.*, liked.first, row_number() OVER (PARTITION BY allowed.post ORDER BY allowed.ord) AS nth_on_post
  FROM allowed JOIN liked ON liked.post_id = allowed.post AND liked.user_id = allowed.liker),
counted AS (UPDATE posts SET like_count = like_count + per.n, like_seq = like_seq + per.n
  FROM (SELECT post, count(*) AS n FROM fresh GROUP BY post) per WHERE posts.id = per.post
  RETURNING posts.id, posts.like_count - per.n AS count_before, posts.like_seq - per.n AS seq_before, posts.author_id),
eligible AS (SELECT fresh.ord, fresh.post, fresh.liker, fresh.text, fresh.actor, fresh.author,
    row_number() OVER (PARTITION BY fresh.author ORDER BY fresh.ord) AS nth,
    row_number() OVER (PARTITION BY fresh.post ORDER BY fresh.ord) AS jth
  FROM fresh JOIN counted ON counted.id = fresh.post
  WHERE fresh.first AND fresh.author <> fresh.liker
    AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = fresh.author AND m.muted_id = fresh.liker
      UNION ALL SELECT 1 FROM notification_preferences p WHERE p.user_id = fresh.author
      AND (NOT p.like_inbox OR (p.from_following AND NOT EXISTS (SELECT 1 FROM follows f
        WHERE f.follower_id = fresh.author AND f.followee_id = fresh.liker))))),
sequenced AS (UPDATE users SET notification_seq = notification_seq + per.n, group_version = group_version + per.n
  FROM (SELECT author, count(*) AS n FROM eligible GROUP BY author) per
  WHERE users.id = per.author
    AND users.reach_version = (SELECT seen.reach_version FROM users seen WHERE seen.id = users.id)
  RETURNING users.id, users.notification_seq - per.n AS seq_before, users.group_version - per.n AS version_before,
    array(SELECT nextval('notifications_id_seq') AS id FROM generate_series(1, per.n) ORDER BY 1) AS ids),
prior AS (SELECT g.recipient_id, g.post_key, g.actors FROM notification_groups g, args
  WHERE g.recipient_id IN (SELECT author FROM eligible) AND g.kind = args.kind AND g.open
    AND g.post_key IN (SELECT post FROM eligible)),
per_group AS (SELECT e.author, e.post, count(*) AS n, max(e.nth) AS last_nth,
    jsonb_path_query_array(jsonb_agg(e.actor::jsonb ORDER BY e.ord DESC), '$[0 to 2]') AS newest
  FROM eligible e GROUP BY e.author, e.post),
grouped AS (INSERT INTO notification_groups AS g (recipient_id, kind, post_id, post_key, actor_count,
    actors, latest_notification_id, updated_at, newest_at, version)
  SELECT s.id, kind, pg.post, pg.post, pg.n, pg.newest::text,
    s.ids[pg.last_nth], at, at, s.version_before + pg.last_nth
  FROM per_group pg JOIN sequenced s ON s.id = pg.author, args
  ON CONFLICT (recipient_id, kind, post_key) WHERE open DO UPDATE SET
    actor_count = g.actor_count + excluded.actor_count,
    actors = jsonb_path_query_array(excluded.actors::jsonb || g.actors::jsonb, '$[0 to 2]')::text,
    latest_notification_id = excluded.latest_notification_id, updated_at = excluded.updated_at,
    newest_at = excluded.newest_at, removed = false, version = excluded.version
  WHERE g.newest_at > excluded.newest_at - make_interval(secs => (SELECT window_secs FROM args))
  RETURNING id, recipient_id, post_key, actor_count, actors),
notified AS (INSERT INTO notifications (id, recipient_id, seq, actor_id, kind, post_id, text, created_at, group_id)
  SELECT s.ids[e.nth], s.id, s.seq_before + e.nth, e.liker, kind, e.post, e.text, at, gr.id
  FROM eligible e JOIN sequenced s ON s.id = e.author
    JOIN grouped gr ON gr.recipient_id = e.author AND gr.post_key = e.post, args
  RETURNING id, seq, recipient_id, post_id, actor_id),
pushed AS (INSERT INTO push_jobs (notification_id, subscription_id, created_at, due_at, expires_at)
  SELECT n.id, s.id, at, at + make_interval(secs => push_delay_ms / 1000.0),
    at + make_interval(secs => push_ttl_secs)
  FROM notified n JOIN push_subscriptions s ON s.user_id = n.recipient_id, args
  WHERE s.expires_at > args.at
    AND NOT EXISTS (SELECT 1 FROM notification_preferences p WHERE p.user_id = s.user_id AND NOT p.like_push)
  RETURNING notification_id)
SELECT input.ord, counted.count_before + fresh.nth_on_post AS like_count,
  counted.seq_before + fresh.nth_on_post AS like_seq, counted.author_id, n.id, n.seq,
  COALESCE(counted.author_id <> input.liker AND fresh.first AND n.id IS NULL, false) AS unsettled,
  gr.id AS group_id, gr.actor_count - pg.n + e.jth AS actor_count,
  CASE WHEN e.jth = pg.n THEN gr.actors ELSE
    jsonb_path_query_array((SELECT jsonb_agg(x.actor::jsonb ORDER BY x.jth DESC) FROM eligible x
      WHERE x.post = e.post AND x.jth BETWEEN e.jth - 2 AND e.jth)
    || COALESCE(prior.actors::jsonb, '[]'::jsonb), '$[0 to 2]')::text END AS actors,
  s.version_before + e.nth AS version,
  (SELECT count(*) FROM pushed WHERE pushed.notification_id = n.id) AS pushes,
  COALESCE(counted.author_id <> input.liker AND NOT fresh.first, false) AS rejoin
FROM input
  LEFT JOIN fresh ON fresh.ord = input.ord
  LEFT JOIN counted ON counted.id = fresh.post
  LEFT JOIN notified n ON n.post_id = fresh.post AND n.actor_id = fresh.liker
  LEFT JOIN eligible e ON n.id IS NOT NULL AND e.ord = fresh.ord
  LEFT JOIN grouped gr ON gr.recipient_id = e.author AND gr.post_key = e.post
  LEFT JOIN per_group pg ON pg.post = e.post
  LEFT JOIN sequenced s ON s.id = e.author
  LEFT JOIN prior ON prior.recipient_id = e.author AND prior.post_key = e.post
ORDER BY input.ord
