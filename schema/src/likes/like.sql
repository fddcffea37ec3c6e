WITH args AS (SELECT $1::int8 AS post, $2::int8 AS liker, $3::timestamp AS at, $4::text AS text, $5::text AS kind, $6::int8 AS window_secs, $7::text AS actor, $8::int8 AS push_delay_ms, $9::int8 AS push_ttl_secs),
hidden AS (SELECT 1 FROM args, posts, blocks
  WHERE posts.id = args.post AND blocks.blocker_id = posts.author_id AND blocks.blocked_id = args.liker),
liked AS (INSERT INTO likes (post_id, user_id, created_at)
  SELECT post, liker, at FROM args WHERE NOT EXISTS (SELECT 1 FROM hidden)
  ON CONFLICT DO NOTHING RETURNING post_id),
counted AS (UPDATE posts SET like_count = like_count + 1, like_seq = like_seq + 1
  WHERE id = (SELECT post_id FROM liked) RETURNING like_count, like_seq, author_id),
noticed AS (INSERT INTO like_notices (post_id, user_id)
  SELECT post, liker FROM args, counted ON CONFLICT DO NOTHING RETURNING post_id),
sequenced AS (UPDATE users SET notification_seq = notification_seq + 1, group_version = group_version + 1
  WHERE id = (SELECT author_id FROM counted, args WHERE author_id <> liker)
    AND EXISTS (SELECT 1 FROM noticed)
    AND NOT EXISTS (SELECT 1 FROM mutes WHERE mutes.muter_id = users.id AND mutes.muted_id = (SELECT liker FROM args)
      UNION ALL SELECT 1 FROM notification_preferences p WHERE p.user_id = users.id
      AND (NOT p.like_inbox OR (p.from_following AND NOT EXISTS (SELECT 1 FROM follows f
        WHERE f.follower_id = users.id AND f.followee_id = (SELECT liker FROM args)))))
    AND reach_version = (SELECT seen.reach_version FROM users seen WHERE seen.id = users.id)
  RETURNING id, notification_seq, group_version, nextval('notifications_id_seq') AS notification_id),
grouped AS (INSERT INTO notification_groups AS g (recipient_id, kind, post_id, post_key, actor_count,
    actors, latest_notification_id, updated_at, newest_at, version)
  SELECT sequenced.id, kind, post, post, 1, actor,
    notification_id, at, at, group_version FROM sequenced, args
  ON CONFLICT (recipient_id, kind, post_key) WHERE open DO UPDATE SET
    actor_count = g.actor_count + 1,
    actors = jsonb_path_query_array(excluded.actors::jsonb || g.actors::jsonb, '$[0 to 2]')::text,
    latest_notification_id = excluded.latest_notification_id, updated_at = excluded.updated_at,
    newest_at = excluded.newest_at, removed = false, version = excluded.version
  WHERE g.newest_at > excluded.newest_at - make_interval(secs => (SELECT window_secs FROM args))
  RETURNING id, actor_count, actors, version),
notified AS (INSERT INTO notifications (id, recipient_id, seq, actor_id, kind, post_id, text, created_at, group_id)
  SELECT notification_id, sequenced.id, notification_seq, liker, kind, post, text, at, grouped.id
  FROM sequenced, args, grouped RETURNING id, seq),
pushed AS (INSERT INTO push_jobs (notification_id, subscription_id, created_at, due_at, expires_at)
  SELECT notified.id, s.id, at, at + make_interval(secs => push_delay_ms / 1000.0),
    at + make_interval(secs => push_ttl_secs)
  FROM notified, sequenced, args, push_subscriptions s
  WHERE s.user_id = sequenced.id AND s.expires_at > args.at
    AND NOT EXISTS (SELECT 1 FROM notification_preferences p WHERE p.user_id = s.user_id AND NOT p.like_push)
  RETURNING 1)
SELECT counted.like_count, counted.like_seq, counted.author_id, notified.id, notified.seq,
  counted.author_id <> args.liker AND EXISTS (SELECT 1 FROM noticed)
    AND NOT EXISTS (SELECT 1 FROM grouped) AS unsettled,
  grouped.id AS group_id, grouped.actor_count, grouped.actors, grouped.version,
  (SELECT count(*) FROM pushed) AS pushes,
  counted.author_id <> args.liker AND NOT EXISTS (SELECT 1 FROM noticed) AS rejoin
FROM args, counted LEFT JOIN notified ON true LEFT JOIN grouped ON true
