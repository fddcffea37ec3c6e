WITH args AS (SELECT $1::int8 AS post, $2::int8 AS liker, $3::timestamp AS at, $4::text AS text, $5::text AS kind),
hidden AS (SELECT 1 FROM args, posts, blocks
  WHERE posts.id = args.post AND blocks.blocker_id = posts.author_id AND blocks.blocked_id = args.liker),
liked AS (INSERT INTO likes (post_id, user_id, created_at)
  SELECT post, liker, at FROM args WHERE NOT EXISTS (SELECT 1 FROM hidden)
  ON CONFLICT DO NOTHING RETURNING post_id),
counted AS (UPDATE posts SET like_count = like_count + 1, like_seq = like_seq + 1
  WHERE id = (SELECT post_id FROM liked) RETURNING like_count, like_seq, author_id),
noticed AS (INSERT INTO like_notices (post_id, user_id)
  SELECT post, liker FROM args, counted ON CONFLICT DO NOTHING RETURNING post_id),
sequenced AS (UPDATE users SET notification_seq = notification_seq + 1
  WHERE id = (SELECT author_id FROM counted, args WHERE author_id <> liker)
    AND EXISTS (SELECT 1 FROM noticed)
    AND NOT EXISTS (SELECT 1 FROM args, mutes WHERE mutes.muter_id = users.id AND mutes.muted_id = args.liker)
    AND reach_version = (SELECT seen.reach_version FROM users seen WHERE seen.id = users.id)
  RETURNING id, notification_seq),
notified AS (INSERT INTO notifications (recipient_id, seq, actor_id, kind, post_id, text, created_at)
  SELECT sequenced.id, sequenced.notification_seq, liker, kind, post, text, at
  FROM sequenced, args RETURNING id, seq)
SELECT counted.like_count, counted.like_seq, counted.author_id, notified.id, notified.seq,
  counted.author_id <> args.liker AND EXISTS (SELECT 1 FROM noticed)
    AND NOT EXISTS (SELECT 1 FROM sequenced) AS unsettled
FROM args, counted LEFT JOIN notified ON true
