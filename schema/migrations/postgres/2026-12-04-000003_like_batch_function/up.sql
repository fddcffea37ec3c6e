-- Likes written together on PostgreSQL, as one function the server calls in one statement
-- (schema/src/likes/like_batch.sql). The single WITH statement it replaces planned and joined
-- every step for every batch: about 1,000k instructions per like in batches of 4, more than a
-- like alone (load-tests/like-instructions.sh --batch 4).
--
-- The server writes one post's likes together (its like queue). For them the function writes
-- the likes' rows with one insert, the post's count, the author's sequence and the group once
-- each, and the notifications with one insert; each like is still answered as if written alone,
-- in order (see schema/src/likes/postgres/batch.rs), by the rules of `pulse_like`:
-- - the post's row is locked first, then the author's, as every other writer locks them;
-- - a like of a liker the author blocked is not written;
-- - an author whose `reach_version` is 0 has never blocked, muted or saved preferences, so
--   every first like of another user notifies; any other author's row is updated by a statement
--   that checks the block, the mutes and the preferences and requires the locked row's
--   `reach_version` to be the one of its own snapshot (else no like of the batch notifies and
--   each is `unsettled`: the caller settles it afresh);
-- - notification ids are drawn while the author's row is locked, in the likes' order;
-- - the group is joined only within the window; past it, every like that would have notified
--   is `unsettled`.
-- A batch of one like is that like alone (`pulse_like`); likes of several posts (not what the
-- server's queue hands over) are written as likes alone, in order, by `pulse_like`, once every
-- post's row is locked in id order.
-- One row per like, in order: its place (from 1), then the columns of `pulse_like`, the first
-- three NULL when the like added nothing.
CREATE FUNCTION pulse_like_batch(p_posts BIGINT[], p_likers BIGINT[], p_texts TEXT[],
    p_actors TEXT[], p_at TIMESTAMP, p_kind TEXT, p_window_secs BIGINT, p_push_delay_ms BIGINT,
    p_push_ttl_secs BIGINT)
  RETURNS TABLE (place BIGINT, like_count BIGINT, like_seq BIGINT, author_id BIGINT,
    notification_id BIGINT, seq BIGINT, unsettled BOOLEAN, group_id BIGINT, actor_count BIGINT,
    actors TEXT, version BIGINT, pushes BIGINT, rejoin BOOLEAN)
  LANGUAGE plpgsql AS $fn$
DECLARE
  v_n INT := cardinality(p_posts);
  v_post BIGINT := p_posts[1];
  v_author BIGINT;
  v_likers BIGINT[];       -- likers whose like was written, and whether it was their first
  v_firsts BOOLEAN[];
  v_count_before BIGINT;
  v_like_seq_before BIGINT;
  v_candidates BIGINT[];      -- places of first likes of another user than the author
  v_notified BIGINT[];        -- places of the likes that notify, in order
  v_m INT := 0;
  v_ids BIGINT[];
  v_seq_before BIGINT;
  v_version_before BIGINT;
  v_prior TEXT;
  v_newest TEXT;
  v_group_id BIGINT;
  v_group_count BIGINT;
  v_group_actors TEXT;
  v_pushes BIGINT := 0;
  v_grouped BOOLEAN := false;
  v_added INT := 0;
  v_pos INT;
  v_k INT;
  v_several BOOLEAN := false;  -- written as likes alone
BEGIN
  IF v_n = 1 THEN
    v_several := true;
  ELSIF EXISTS (SELECT 1 FROM unnest(p_posts) x(post) WHERE x.post <> v_post) THEN
    PERFORM 1 FROM posts p WHERE p.id = ANY (p_posts) ORDER BY p.id FOR NO KEY UPDATE;
    v_several := true;
  END IF;
  IF v_several THEN
    FOR i IN 1..v_n LOOP
      RETURN QUERY SELECT i::BIGINT, l.* FROM pulse_like(p_posts[i], p_likers[i], p_at,
        p_texts[i], p_kind, p_window_secs, '[' || p_actors[i] || ']', p_push_delay_ms,
        p_push_ttl_secs) l;
      IF NOT FOUND THEN
        RETURN QUERY SELECT i::BIGINT, NULL::BIGINT, NULL::BIGINT, NULL::BIGINT, NULL::BIGINT,
          NULL::BIGINT, false, NULL::BIGINT, NULL::BIGINT, NULL::TEXT, NULL::BIGINT, 0::BIGINT,
          false;
      END IF;
    END LOOP;
    RETURN;
  END IF;

  SELECT p.author_id INTO v_author FROM posts p WHERE p.id = v_post FOR NO KEY UPDATE;
  IF FOUND THEN
    WITH written AS (
      INSERT INTO likes AS l (post_id, user_id, created_at)
        SELECT v_post, i.liker, p_at FROM unnest(p_likers) WITH ORDINALITY i(liker, o)
        WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = v_author
          AND b.blocked_id = i.liker)
        ORDER BY i.o
        ON CONFLICT (post_id, user_id) DO UPDATE SET unliked = false, relikes = l.relikes + 1
        WHERE l.unliked
        RETURNING l.user_id, l.relikes = 0 AS first)
    SELECT array_agg(w.user_id), array_agg(w.first) INTO v_likers, v_firsts FROM written w;
  END IF;

  IF v_likers IS NOT NULL THEN
    UPDATE posts p SET like_count = p.like_count + cardinality(v_likers),
        like_seq = p.like_seq + cardinality(v_likers)
      WHERE p.id = v_post
      RETURNING p.like_count - cardinality(v_likers), p.like_seq - cardinality(v_likers)
      INTO v_count_before, v_like_seq_before;
    SELECT array_agg(i.o ORDER BY i.o) INTO v_candidates
      FROM unnest(p_likers) WITH ORDINALITY i(liker, o)
      WHERE i.liker <> v_author
        AND v_firsts[array_position(v_likers, i.liker)];
  END IF;

  IF v_candidates IS NOT NULL THEN
    v_m := cardinality(v_candidates);
    UPDATE users u SET notification_seq = u.notification_seq + v_m,
        group_version = u.group_version + v_m
      WHERE u.id = v_author AND u.reach_version = 0
      RETURNING u.notification_seq - v_m, u.group_version - v_m,
        array(SELECT nextval('notifications_id_seq') FROM generate_series(1, v_m) ORDER BY 1)
      INTO v_seq_before, v_version_before, v_ids;
    IF FOUND THEN
      v_notified := v_candidates;
    ELSE
      WITH allowed AS (
        SELECT array_agg(c.o ORDER BY c.o) AS places FROM unnest(v_candidates) c(o)
        WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = v_author
              AND b.blocked_id = p_likers[c.o]
          UNION ALL SELECT 1 FROM mutes m WHERE m.muter_id = v_author
              AND m.muted_id = p_likers[c.o]
          UNION ALL SELECT 1 FROM notification_preferences np WHERE np.user_id = v_author
            AND (NOT np.like_inbox OR (np.from_following AND NOT EXISTS (SELECT 1 FROM follows f
              WHERE f.follower_id = v_author AND f.followee_id = p_likers[c.o])))))
      UPDATE users u SET notification_seq = u.notification_seq + cardinality(a.places),
          group_version = u.group_version + cardinality(a.places)
        FROM allowed a
        WHERE u.id = v_author AND a.places IS NOT NULL
          AND u.reach_version = (SELECT seen.reach_version FROM users seen WHERE seen.id = u.id)
        RETURNING a.places, u.notification_seq - cardinality(a.places),
          u.group_version - cardinality(a.places),
          array(SELECT nextval('notifications_id_seq')
            FROM generate_series(1, cardinality(a.places)) ORDER BY 1)
        INTO v_notified, v_seq_before, v_version_before, v_ids;
    END IF;
    v_m := coalesce(cardinality(v_notified), 0);
  END IF;

  IF v_m > 0 THEN
    IF v_m > 1 THEN
      SELECT g.actors INTO v_prior FROM notification_groups g
        WHERE g.recipient_id = v_author AND g.kind = p_kind AND g.post_key = v_post AND g.open;
    END IF;
    v_newest := p_actors[v_notified[v_m]];
    IF v_m >= 2 THEN v_newest := v_newest || ',' || p_actors[v_notified[v_m - 1]]; END IF;
    IF v_m >= 3 THEN v_newest := v_newest || ',' || p_actors[v_notified[v_m - 2]]; END IF;
    INSERT INTO notification_groups AS g (recipient_id, kind, post_id, post_key, actor_count,
        actors, latest_notification_id, updated_at, newest_at, version)
      VALUES (v_author, p_kind, v_post, v_post, v_m, '[' || v_newest || ']', v_ids[v_m], p_at,
        p_at, v_version_before + v_m)
      ON CONFLICT (recipient_id, kind, post_key) WHERE open DO UPDATE SET
        actor_count = g.actor_count + excluded.actor_count,
        actors = ((((excluded.actors::jsonb || g.actors::jsonb) - 5) - 4) - 3)::text,
        latest_notification_id = excluded.latest_notification_id,
        updated_at = excluded.updated_at, newest_at = excluded.newest_at, removed = false,
        version = excluded.version
      WHERE g.newest_at > excluded.newest_at - make_interval(secs => p_window_secs)
      RETURNING g.id, g.actor_count, g.actors INTO v_group_id, v_group_count, v_group_actors;
    v_grouped := FOUND;
  END IF;

  IF v_grouped THEN
    INSERT INTO notifications (id, recipient_id, seq, actor_id, kind, post_id, text, created_at,
        group_id)
      SELECT v_ids[e.k], v_author, v_seq_before + e.k, p_likers[e.o], p_kind, v_post,
        p_texts[e.o], p_at, v_group_id
      FROM unnest(v_notified) WITH ORDINALITY e(o, k);
    IF EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.user_id = v_author) THEN
      INSERT INTO push_jobs (notification_id, subscription_id, created_at, due_at, expires_at)
        SELECT v_ids[k], s.id, p_at, p_at + make_interval(secs => p_push_delay_ms / 1000.0),
          p_at + make_interval(secs => p_push_ttl_secs)
        FROM generate_series(1, v_m) k, push_subscriptions s
        WHERE s.user_id = v_author AND s.expires_at > p_at
          AND NOT EXISTS (SELECT 1 FROM notification_preferences np
            WHERE np.user_id = s.user_id AND NOT np.like_push);
      GET DIAGNOSTICS v_pushes = ROW_COUNT;
      v_pushes := v_pushes / v_m;
    END IF;
  END IF;

  FOR i IN 1..v_n LOOP
    place := i;
    like_count := NULL; like_seq := NULL; author_id := NULL; notification_id := NULL;
    seq := NULL; unsettled := false; group_id := NULL; actor_count := NULL; actors := NULL;
    version := NULL; pushes := 0; rejoin := false;
    v_pos := array_position(v_likers, p_likers[i]);
    IF v_pos IS NOT NULL THEN
      v_added := v_added + 1;
      like_count := v_count_before + v_added;
      like_seq := v_like_seq_before + v_added;
      author_id := v_author;
      rejoin := v_author <> p_likers[i] AND NOT v_firsts[v_pos];
      IF v_author <> p_likers[i] AND v_firsts[v_pos] THEN
        v_k := CASE WHEN v_grouped THEN array_position(v_notified, i) END;
        unsettled := v_k IS NULL;
      ELSE
        v_k := NULL;
      END IF;
    ELSE
      v_k := NULL;
    END IF;
    IF v_k IS NULL THEN
      RETURN NEXT;
      CONTINUE;
    END IF;
    notification_id := v_ids[v_k];
    group_id := v_group_id;
    seq := v_seq_before + v_k;
    actor_count := v_group_count - v_m + v_k;
    version := v_version_before + v_k;
    pushes := v_pushes;
    IF v_k = v_m THEN
      actors := v_group_actors;
    ELSE
      actors := p_actors[v_notified[v_k]];
      IF v_k >= 2 THEN actors := actors || ',' || p_actors[v_notified[v_k - 1]]; END IF;
      IF v_k >= 3 THEN actors := actors || ',' || p_actors[v_notified[v_k - 2]]; END IF;
      actors := '[' || actors || ']';
      IF v_k < 3 THEN
        actors := ((((actors::jsonb || coalesce(v_prior, '[]')::jsonb) - 5) - 4) - 3)::text;
      END IF;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$fn$;
