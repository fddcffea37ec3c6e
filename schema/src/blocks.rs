//! The `blocks` and `mutes` tables: who may reach whom.
//!
//! A block hides the two from each other: it removes the follows between them, removes the
//! blocked user's notifications to the blocker, and from then on the blocked user's likes,
//! comments and follows notify the blocker of nothing (the check is in the statement that draws
//! the recipient's notification `seq`, see [`crate::notifications`] and [`crate::likes`]). A
//! mute only stops the muted user's notifications to the muter.
//!
//! # Racing writes
//! On PostgreSQL a statement sees the data as of its start, and when it waits for a row another
//! transaction changed, it re-checks only that row. A like, comment or follow whose statement
//! began before a block committed would not see the `blocks` row, so every block and mute also
//! bumps the user's `users.reach_version`, in the same transaction that locks the user's row.
//! The statement that draws a recipient's next notification `seq` requires the version it sees
//! on the row to be the one of its snapshot; one that raced a block finds it moved, draws
//! nothing, and the write asks again with a fresh statement. Either the racing write locked the
//! row first (then the block waits for it and removes its notification) or it asks again after
//! the block (then it sees the block). SQLite has one writer: nothing races there.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{Db, DbResult};
use crate::follows::bump_follow_counts;
use crate::groups::GroupRow;
use crate::ids::{GroupId, NotificationId, PostId, UserId};
use crate::notifications::Kind;
use crate::schema::{blocks, follows, mutes, notifications, posts, users};
use crate::users::UserSummaryRow;

/// How `viewer` stands towards `other`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relation {
    pub blocked_by_me: bool,
    pub muted_by_me: bool,
    /// `other` has blocked `viewer`: to the viewer, the other does not exist.
    pub blocks_me: bool,
}

/// What a block removed from the blocker's inbox, the blocker's unread count after it, and
/// the groups it changed (the blocker's, and the blocked user's group of follows).
#[derive(Debug, Clone, Default)]
pub struct Removed {
    pub notification_ids: Vec<NotificationId>,
    pub unread: i64,
    pub unread_groups: i64,
    pub groups: Vec<GroupRow>,
}

/// A page entry of [`page`]: the entry's id (the page cursor), the
/// user, and when it happened.
pub type Listed = (i64, UserSummaryRow, NaiveDateTime);

/// Removes `actor`'s notifications to `recipient` in the caller's transaction; evaluates to
/// `DbResult<Removed>`.
macro_rules! remove_notifications {
    ($conn:expr, $recipient:expr, $actor:expr) => {{
        let notification_ids = diesel::delete(
            notifications::table
                .filter(notifications::recipient_id.eq($recipient))
                .filter(notifications::actor_id.eq($actor)),
        )
        .returning(notifications::id)
        .get_results::<NotificationId>($conn)
        .await?;
        let unread = notifications::table
            .filter(notifications::recipient_id.eq($recipient))
            .filter(notifications::read.eq(false))
            .count()
            .get_result::<i64>($conn)
            .await?;
        Ok::<_, crate::db::DbError>(Removed {
            notification_ids,
            unread,
            unread_groups: 0,
            groups: Vec::new(),
        })
    }};
}

/// How `viewer` stands towards `other` (all false for oneself).
pub async fn relation(db: &Db, viewer: UserId, other: UserId) -> DbResult<Relation> {
    crate::run!(db.read(), conn => {
        let block = |by: UserId, of: UserId| blocks::table
            .filter(blocks::blocker_id.eq(by))
            .filter(blocks::blocked_id.eq(of));
        let mute = mutes::table
            .filter(mutes::muter_id.eq(viewer))
            .filter(mutes::muted_id.eq(other));
        let (blocked_by_me, muted_by_me, blocks_me) = diesel::select((
            diesel::dsl::exists(block(viewer, other)),
            diesel::dsl::exists(mute),
            diesel::dsl::exists(block(other, viewer)),
        ))
        .get_result(conn)
        .await?;
        Ok(Relation { blocked_by_me, muted_by_me, blocks_me })
    })
}

/// Whether `owner` has blocked `viewer` (then `owner` and what is theirs are hidden from them).
pub async fn blocks_me(db: &Db, viewer: UserId, owner: UserId) -> DbResult<bool> {
    crate::run!(db.read(), conn => {
        let block = blocks::table
            .filter(blocks::blocker_id.eq(owner))
            .filter(blocks::blocked_id.eq(viewer));
        diesel::select(diesel::dsl::exists(block)).get_result(conn).await.map_err(Into::into)
    })
}

/// Which of `post_ids` belong to someone who blocked `viewer` (they must not see them).
pub async fn hidden_posts(db: &Db, viewer: UserId, post_ids: &[PostId]) -> DbResult<Vec<PostId>> {
    crate::run!(db.read(), conn => {
        posts::table
            .inner_join(blocks::table.on(blocks::blocker_id.eq(posts::author_id)))
            .filter(posts::id.eq_any(post_ids))
            .filter(blocks::blocked_id.eq(viewer))
            .select(posts::id)
            .load(conn)
            .await
            .map_err(Into::into)
    })
}

/// Blocks `blocked` (idempotent): removes the follows between the two and the blocked user's
/// notifications to the blocker. `NotFound` when `blocked` does not exist.
pub async fn block(db: &Db, blocker: UserId, blocked: UserId) -> DbResult<Removed> {
    crate::transaction!(db.write(), conn => {
        users::table.find(blocked).select(users::id).first::<UserId>(conn).await?;
        // Both rows locked in id order first, as follows lock them: no deadlock with a follow.
        // The blocker's `reach_version` moves (see the module docs).
        let (first, second) = (blocker.min(blocked), blocker.max(blocked));
        for id in [first, second] {
            let bump = i64::from(id == blocker);
            diesel::update(users::table.find(id))
                .set(users::reach_version.eq(users::reach_version + bump))
                .execute(conn)
                .await?;
        }
        diesel::insert_into(blocks::table)
            .values((
                blocks::blocker_id.eq(blocker),
                blocks::blocked_id.eq(blocked),
                blocks::created_at.eq(crate::now_millis()),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        // The groups that lose members: the blocker's that hold the blocked user's
        // notifications (removed below), and the blocked user's group of follows that holds
        // the blocker's follow (removed below too).
        let touched: Vec<(UserId, GroupId)> = notifications::table
            .filter(notifications::recipient_id.eq(blocker).and(notifications::actor_id.eq(blocked)))
            .or_filter(
                notifications::recipient_id.eq(blocked)
                    .and(notifications::actor_id.eq(blocker))
                    .and(notifications::kind.eq(Kind::Follow.as_str())),
            )
            .filter(notifications::group_id.is_not_null())
            .select((notifications::recipient_id, notifications::group_id.assume_not_null()))
            .distinct()
            .load(conn)
            .await?;
        for (follower, followee) in [(blocker, blocked), (blocked, blocker)] {
            let gone = diesel::delete(
                follows::table
                    .filter(follows::follower_id.eq(follower))
                    .filter(follows::followee_id.eq(followee)),
            )
            .execute(conn)
            .await?;
            if gone > 0 {
                bump_follow_counts!(conn, follower, followee, -1i64);
            }
        }
        let mut removed = remove_notifications!(conn, blocker, blocked)?;
        for (recipient, group) in touched {
            removed.groups.push(crate::group_refresh!([.await] conn, recipient, group));
        }
        removed.groups.sort_by_key(|g| (g.recipient_id, g.version));
        removed.unread_groups = crate::groups_unread!([.await] conn, blocker);
        Ok(removed)
    })
}

/// Unblocks (idempotent). Follows are not restored. `NotFound` when `blocked` does not exist.
pub async fn unblock(db: &Db, blocker: UserId, blocked: UserId) -> DbResult<()> {
    crate::transaction!(db.write(), conn => {
        users::table.find(blocked).select(users::id).first::<UserId>(conn).await?;
        diesel::delete(
            blocks::table
                .filter(blocks::blocker_id.eq(blocker))
                .filter(blocks::blocked_id.eq(blocked)),
        )
        .execute(conn)
        .await?;
        Ok(())
    })
}

/// Mutes (idempotent). `NotFound` when `muted` does not exist.
pub async fn mute(db: &Db, muter: UserId, muted: UserId) -> DbResult<()> {
    crate::transaction!(db.write(), conn => {
        users::table.find(muted).select(users::id).first::<UserId>(conn).await?;
        diesel::update(users::table.find(muter))
            .set(users::reach_version.eq(users::reach_version + 1))
            .execute(conn)
            .await?;
        diesel::insert_into(mutes::table)
            .values((
                mutes::muter_id.eq(muter),
                mutes::muted_id.eq(muted),
                mutes::created_at.eq(crate::now_millis()),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        Ok(())
    })
}

/// Unmutes (idempotent). `NotFound` when `muted` does not exist.
pub async fn unmute(db: &Db, muter: UserId, muted: UserId) -> DbResult<()> {
    crate::transaction!(db.write(), conn => {
        users::table.find(muted).select(users::id).first::<UserId>(conn).await?;
        diesel::delete(
            mutes::table
                .filter(mutes::muter_id.eq(muter))
                .filter(mutes::muted_id.eq(muted)),
        )
        .execute(conn)
        .await?;
        Ok(())
    })
}

/// The page query of [`page`] for one table: entries of `$owner`, joined with the other user.
macro_rules! listed {
    ($db:expr, $table:ident, $owner_col:ident, $other_col:ident, $owner:expr, $before:expr, $limit:expr) => {
        crate::run!($db.read(), conn => {
            let mut query = $table::table
                .inner_join(users::table.on(users::id.eq($table::$other_col)))
                .filter($table::$owner_col.eq($owner))
                .select(($table::id, UserSummaryRow::as_select(), $table::created_at))
                .order($table::id.desc())
                .limit($limit)
                .into_boxed();
            if let Some(before) = $before {
                query = query.filter($table::id.lt(before));
            }
            query.load(conn).await.map_err(Into::into)
        })
    };
}

/// Which of a user's lists: the users they blocked, or the users they muted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Blocked,
    Muted,
}

/// One page of `owner`'s `list`, newest first, strictly older than the entry `before`.
pub async fn page(
    db: &Db,
    list: List,
    owner: UserId,
    before: Option<i64>,
    limit: i64,
) -> DbResult<Vec<Listed>> {
    match list {
        List::Blocked => listed!(db, blocks, blocker_id, blocked_id, owner, before, limit),
        List::Muted => listed!(db, mutes, muter_id, muted_id, owner, before, limit),
    }
}
