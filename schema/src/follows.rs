//! The `follows` and `follow_notices` tables: who follows whom, and "the first follow notifies".

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{Db, DbError, DbResult};
use crate::ids::UserId;
use crate::notifications::{Delivery, Kind, NewNotification};
use crate::schema::{blocks, follow_notices, follows, users};
use crate::users::UserSummaryRow;

/// Bumps both users' follow counters by `delta`, locking the two rows in id order so that
/// A-follows-B and B-follows-A at the same moment cannot deadlock on PostgreSQL.
macro_rules! bump_follow_counts {
    ($conn:expr, $follower:expr, $followee:expr, $delta:expr) => {{
        let (first, second) = if $follower < $followee {
            ($follower, $followee)
        } else {
            ($followee, $follower)
        };
        for id in [first, second] {
            let (following, followers) = if id == $follower {
                ($delta, 0i64)
            } else {
                (0i64, $delta)
            };
            $crate::counters::BumpFollowCounts {
                user: id,
                following,
                followers,
            }
            .execute($conn)
            .await?;
        }
    }};
}
pub(crate) use bump_follow_counts;

/// Follows `followee`. Idempotent; the first follow ever notifies the followed user.
/// `NotFound` when the followee does not exist.
pub async fn follow(db: &Db, actor: &UserSummaryRow, followee: UserId) -> DbResult<Delivery> {
    let follower = actor.id;
    let policy = db.policy();
    crate::transaction!(db.write(), conn => {
        users::table.find(followee).select(users::id).first::<UserId>(conn).await?;
        // No follow across a block, either way (the route tells the blocker why first).
        let across_block = blocks::table
            .filter(blocks::blocker_id.eq(followee).and(blocks::blocked_id.eq(follower)))
            .or_filter(blocks::blocker_id.eq(follower).and(blocks::blocked_id.eq(followee)));
        if diesel::select(diesel::dsl::exists(across_block)).get_result::<bool>(conn).await? {
            return Err(DbError::NotFound);
        }
        let inserted = diesel::insert_into(follows::table)
            .values((
                follows::follower_id.eq(follower),
                follows::followee_id.eq(followee),
                follows::created_at.eq(crate::now_millis()),
            ))
            .on_conflict_do_nothing()
            .returning(follows::followee_id)
            .get_result::<UserId>(conn)
            .await
            .optional()?;
        if inserted.is_none() {
            return Ok(Delivery::default());
        }
        bump_follow_counts!(conn, follower, followee, 1i64);
        let first_ever = diesel::insert_into(follow_notices::table)
            .values((follow_notices::follower_id.eq(follower), follow_notices::followee_id.eq(followee)))
            .on_conflict_do_nothing()
            .returning(follow_notices::followee_id)
            .get_result::<UserId>(conn)
            .await
            .optional()?;
        if first_ever.is_none() {
            // Following again: back in the group of the first follow's notification, silently.
            let group = crate::group_shift!([.await] conn, followee, Kind::Follow, None, follower, 1);
            return Ok(Delivery::from(group));
        }
        let text = NewNotification::render(Kind::Follow, actor, None);
        crate::insert_notification!([.await] conn, NewNotification {
            recipient_id: followee,
            actor: actor.clone(),
            kind: Kind::Follow,
            post_id: None,
            comment_id: None,
            text,
        }, policy).map(Delivery::from)
    })
}

/// Stops following, leaving the group of the follow's notification. Idempotent. `NotFound`
/// when the followee does not exist.
pub async fn unfollow(db: &Db, follower: UserId, followee: UserId) -> DbResult<Delivery> {
    crate::transaction!(db.write(), conn => {
        users::table.find(followee).select(users::id).first::<UserId>(conn).await?;
        let removed = diesel::delete(
            follows::table.filter(follows::follower_id.eq(follower)).filter(follows::followee_id.eq(followee)),
        )
        .execute(conn)
        .await?;
        if removed == 0 {
            return Ok(Delivery::default());
        }
        bump_follow_counts!(conn, follower, followee, -1i64);
        let group = crate::group_shift!([.await] conn, followee, Kind::Follow, None, follower, -1);
        Ok(Delivery::from(group))
    })
}

/// Whether `follower` follows `followee`.
pub async fn is_following(db: &Db, follower: UserId, followee: UserId) -> DbResult<bool> {
    crate::run!(db.read(), conn => {
        diesel::select(diesel::dsl::exists(
            follows::table.filter(follows::follower_id.eq(follower)).filter(follows::followee_id.eq(followee)),
        ))
        .get_result(conn)
        .await
        .map_err(Into::into)
    })
}
