-- A like on PostgreSQL, as one function the server calls in one statement
-- (schema/src/likes/like.sql). Its steps run one after the other and stop where the like ends: a
-- like already there, a like again or a like of one's own post writes no notification, and an
-- author with no push subscription starts no push-jobs insert. The single WITH statement it
-- replaces started every step's plan on every like, needed or not: about 15 % of PostgreSQL's
-- instructions per like (load-tests/like-instructions.sh).
--
-- The rules are the ones of the statement before (see schema/src/likes/postgres.rs):
-- - an author whose `reach_version` is 0 has never blocked, muted or saved preferences (each of
--   these moves it in the transaction that writes them, while it holds the author's row), so
--   the author's row is updated with no other check when the locked row still says 0;
-- - any other author's row is updated in a statement that checks the block, the mutes and the
--   preferences and requires the locked row's `reach_version` to be the one of its own
--   snapshot, so a change that commits while it waits leaves the like `unsettled` (the caller
--   settles it afresh), as the single statement did; the like's insert checked the block too,
--   in its own snapshot, and refused the like of a blocked liker;
-- - the notification's id is drawn while the author's row is locked (`RETURNING nextval`), so
--   a recipient's notification ids commit in increasing order;
-- - the group upsert joins the open group only within the window; past it nothing is written
--   but the drawn seq and version, and the like is `unsettled`.
-- Its columns are the statement's before: like count, like seq, author, notification id and
-- seq, unsettled, group id, actor count, actors, group version, pushes queued, rejoin.
CREATE FUNCTION pulse_like(p_post BIGINT, p_liker BIGINT, p_at TIMESTAMP, p_text TEXT, p_kind TEXT,
    p_window_secs BIGINT, p_actor TEXT, p_push_delay_ms BIGINT, p_push_ttl_secs BIGINT)
  RETURNS TABLE (like_count BIGINT, like_seq BIGINT, author_id BIGINT, notification_id BIGINT,
    seq BIGINT, unsettled BOOLEAN, group_id BIGINT, actor_count BIGINT, actors TEXT,
    version BIGINT, pushes BIGINT, rejoin BOOLEAN)
  LANGUAGE plpgsql AS $fn$
DECLARE
  v_first BOOLEAN;
  v_group_version BIGINT;
BEGIN
  INSERT INTO likes AS l (post_id, user_id, created_at)
    SELECT p_post, p_liker, p_at WHERE NOT EXISTS (SELECT 1 FROM blocks b
      WHERE b.blocker_id = (SELECT p.author_id FROM posts p WHERE p.id = p_post)
        AND b.blocked_id = p_liker)
    ON CONFLICT (post_id, user_id) DO UPDATE SET unliked = false, relikes = l.relikes + 1
    WHERE l.unliked
    RETURNING l.relikes = 0 INTO v_first;
  IF NOT FOUND THEN RETURN; END IF;
  UPDATE posts p SET like_count = p.like_count + 1, like_seq = p.like_seq + 1 WHERE p.id = p_post
    RETURNING p.like_count, p.like_seq, p.author_id INTO like_count, like_seq, author_id;
  IF NOT FOUND THEN RETURN; END IF;
  unsettled := false;
  pushes := 0;
  rejoin := author_id <> p_liker AND NOT v_first;
  IF author_id = p_liker OR NOT v_first THEN RETURN NEXT; RETURN; END IF;

  UPDATE users u SET notification_seq = u.notification_seq + 1, group_version = u.group_version + 1
    WHERE u.id = author_id AND u.reach_version = 0
    RETURNING u.notification_seq, u.group_version, nextval('notifications_id_seq')
    INTO seq, v_group_version, notification_id;
  IF NOT FOUND THEN
    UPDATE users u SET notification_seq = u.notification_seq + 1, group_version = u.group_version + 1
      WHERE u.id = author_id
        AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = p_liker
          UNION ALL SELECT 1 FROM mutes m WHERE m.muter_id = u.id AND m.muted_id = p_liker
          UNION ALL SELECT 1 FROM notification_preferences np WHERE np.user_id = u.id
          AND (NOT np.like_inbox OR (np.from_following AND NOT EXISTS (SELECT 1 FROM follows f
            WHERE f.follower_id = u.id AND f.followee_id = p_liker))))
        AND u.reach_version = (SELECT seen.reach_version FROM users seen WHERE seen.id = u.id)
      RETURNING u.notification_seq, u.group_version, nextval('notifications_id_seq')
      INTO seq, v_group_version, notification_id;
  END IF;
  IF NOT FOUND THEN unsettled := true; RETURN NEXT; RETURN; END IF;

  INSERT INTO notification_groups AS g (recipient_id, kind, post_id, post_key, actor_count,
      actors, latest_notification_id, updated_at, newest_at, version)
    VALUES (author_id, p_kind, p_post, p_post, 1, p_actor, notification_id, p_at, p_at,
      v_group_version)
    ON CONFLICT (recipient_id, kind, post_key) WHERE open DO UPDATE SET
      actor_count = g.actor_count + 1,
      actors = ((excluded.actors::jsonb || g.actors::jsonb) - 3)::text,
      latest_notification_id = excluded.latest_notification_id, updated_at = excluded.updated_at,
      newest_at = excluded.newest_at, removed = false, version = excluded.version
    WHERE g.newest_at > excluded.newest_at - make_interval(secs => p_window_secs)
    RETURNING g.id, g.actor_count, g.actors, g.version INTO group_id, actor_count, actors, version;
  IF NOT FOUND THEN
    unsettled := true;
    notification_id := NULL;
    seq := NULL;
    RETURN NEXT;
    RETURN;
  END IF;

  INSERT INTO notifications (id, recipient_id, seq, actor_id, kind, post_id, text, created_at,
      group_id)
    VALUES (notification_id, author_id, seq, p_liker, p_kind, p_post, p_text, p_at, group_id);
  IF EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.user_id = author_id) THEN
    INSERT INTO push_jobs (notification_id, subscription_id, created_at, due_at, expires_at)
      SELECT notification_id, s.id, p_at, p_at + make_interval(secs => p_push_delay_ms / 1000.0),
        p_at + make_interval(secs => p_push_ttl_secs)
      FROM push_subscriptions s
      WHERE s.user_id = author_id AND s.expires_at > p_at
        AND NOT EXISTS (SELECT 1 FROM notification_preferences np
          WHERE np.user_id = s.user_id AND NOT np.like_push);
    GET DIAGNOSTICS pushes = ROW_COUNT;
  END IF;
  RETURN NEXT;
END
$fn$;
