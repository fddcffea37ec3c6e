WITH liked AS (INSERT INTO likes (post_id, user_id, created_at)
  SELECT $1::int8, $2::int8, $3::timestamp WHERE NOT EXISTS (SELECT 1 FROM blocks
    WHERE blocks.blocker_id = (SELECT author_id FROM posts WHERE posts.id = $1::int8) AND blocks.blocked_id = $2::int8)
  ON CONFLICT (post_id, user_id) DO UPDATE SET unliked = false, relikes = likes.relikes + 1
  WHERE likes.unliked
  RETURNING post_id, relikes = 0 AS first),
counted AS (UPDATE posts SET like_count = like_count + 1, like_seq = like_seq + 1
  FROM liked WHERE posts.id = liked.post_id RETURNING like_count, like_seq, author_id, liked.first),
sequenced AS (UPDATE users SET notification_seq = notification_seq + 1, group_version = group_version + 1
  WHERE id = (SELECT author_id FROM counted WHERE author_id <> $2::int8 AND first)
    AND NOT EXISTS (SELECT 1 FROM mutes WHERE mutes.muter_id = users.id AND mutes.muted_id = $2::int8
      UNION ALL SELECT 1 FROM notification_preferences p WHERE p.user_id = users.id
      AND (NOT p.like_inbox OR (p.from_following AND NOT EXISTS (SELECT 1 FROM follows f
        WHERE f.follower_id = users.id AND f.followee_id = $2::int8))))
    AND reach_version = (SELECT seen.reach_version FROM users seen WHERE seen.id = users.id)
  RETURNING id, notification_seq, group_version, nextval('notifications_id_seq') AS notification_id),
grouped AS (INSERT INTO notification_groups AS g (recipient_id, kind, post_id, post_key, actor_count,
    actors, latest_notification_id, updated_at, newest_at, version)
  SELECT sequenced.id, $5::text, $1::int8, $1::int8, 1, $7::text,
    notification_id, $3::timestamp, $3::timestamp, group_version FROM sequenced
  ON CONFLICT (recipient_id, kind, post_key) WHERE open DO UPDATE SET
    actor_count = g.actor_count + 1,
    actors = jsonb_path_query_array(excluded.actors::jsonb || g.actors::jsonb, '$[0 to 2]')::text,
    latest_notification_id = excluded.latest_notification_id, updated_at = excluded.updated_at,
    newest_at = excluded.newest_at, removed = false, version = excluded.version
  WHERE g.newest_at > excluded.newest_at - make_interval(secs => $6::int8)
  RETURNING id, actor_count, actors, version),
notified AS (INSERT INTO notifications (id, recipient_id, seq, actor_id, kind, post_id, text, created_at, group_id)
  SELECT notification_id, sequenced.id, notification_seq, $2::int8, $5::text, $1::int8, $4::text, $3::timestamp, grouped.id
  FROM sequenced, grouped RETURNING id, seq, recipient_id),
pushed AS (INSERT INTO push_jobs (notification_id, subscription_id, created_at, due_at, expires_at)
  SELECT notified.id, s.id, $3::timestamp, $3::timestamp + make_interval(secs => $8::int8 / 1000.0),
    $3::timestamp + make_interval(secs => $9::int8)
  FROM notified, push_subscriptions s
  WHERE s.user_id = notified.recipient_id AND s.expires_at > $3::timestamp
    AND NOT EXISTS (SELECT 1 FROM notification_preferences p WHERE p.user_id = s.user_id AND NOT p.like_push)
  RETURNING 1)
SELECT counted.like_count, counted.like_seq, counted.author_id, notified.id, notified.seq,
  counted.author_id <> $2::int8 AND counted.first AND grouped.id IS NULL AS unsettled,
  grouped.id AS group_id, grouped.actor_count, grouped.actors, grouped.version,
  (SELECT count(*) FROM pushed) AS pushes,
  counted.author_id <> $2::int8 AND NOT counted.first AS rejoin
FROM counted LEFT JOIN notified ON true LEFT JOIN grouped ON true
