//! Grouped notifications ("bob, carol and 2 others liked your photo"): the
//! `notification_groups` table, written in the same transaction as the notifications that join
//! or leave it.
//!
//! # Rules
//! - Every notification belongs to one group (`notifications.group_id`). A new one joins the
//!   recipient's *open* group of the same kind and post if that group's newest member is
//!   younger than the window ([`crate::db::NotifyPolicy::group_window_secs`]); otherwise that group
//!   is closed and a new one starts. A unique index keeps at most one open group per
//!   recipient, kind and post. Reading a group closes it.
//! - A group counts its *present* actors: a liker who still likes the post, a follower who
//!   still follows, every commenter. Unliking or unfollowing leaves ([`group_shift!`]), a like
//!   or follow again comes back silently (the same macro), a block recounts
//!   ([`group_refresh!`]). A group with nobody left is `removed`, and so are the groups of a
//!   deleted post; removed groups stay as rows so a client resuming from an older version
//!   learns of the removal.
//! - Every change takes the recipient's next `users.group_version` ([`group_version!`]), drawn
//!   while the recipient's row is locked, as notification `seq` is (see
//!   [`crate::notifications`]): per recipient, versions commit in increasing order, so a
//!   version is a correct resume cursor and a jump means "read what changed from here".
//!
//! # Cost
//! Joining is constant in the group's size: the count goes up by one and the stored newest
//! actors (at most three, [`rule::SHOWN_ACTORS`]) shift. Leaving or coming back reads the
//! group's members from the newest down until it has three present ones
//! ([`group_newest_present!`]). A block recounts the groups it touches in full.
//!
//! The macros take the await marker first: `[.await]` inside `run!`/`transaction!`, `[]` on a
//! plain (blocking) SQLite connection (`likes::sqlite`).

pub mod rule;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{Db, DbResult};
use crate::ids::{GroupId, NotificationId, PostId, UserId};
use crate::schema::{notification_groups, users};

pub use rule::{render, Actor};

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = notification_groups, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct GroupRow {
    pub id: GroupId,
    pub recipient_id: UserId,
    pub kind: String,
    pub post_id: Option<PostId>,
    pub actor_count: i64,
    /// JSON array of [`Actor`], newest first.
    pub actors: String,
    pub latest_notification_id: NotificationId,
    /// When the group last changed.
    pub updated_at: NaiveDateTime,
    /// When its newest member joined (the grouping window).
    pub newest_at: NaiveDateTime,
    pub read: bool,
    pub removed: bool,
    pub version: i64,
}

impl GroupRow {
    pub fn actors(&self) -> Vec<Actor> {
        rule::parse_actors(&self.actors)
    }

    pub fn text(&self) -> String {
        render(&self.kind, &self.actors(), self.actor_count)
    }
}

/// Draws `user`'s next group version, row-locking the user; evaluates to `i64` (use inside a
/// function returning `DbResult`).
#[macro_export]
macro_rules! group_version {
    ([$($aw:tt)*] $conn:expr, $user:expr) => {{
        use diesel::{ExpressionMethods as _, QueryDsl as _};
        use $crate::schema::users as u;
        diesel::update(u::table.find($user))
            .set(u::group_version.eq(u::group_version + 1))
            .returning(u::group_version)
            .get_result::<i64>($conn) $($aw)* ?
    }};
}

/// A notification about to join its group (see [`group_join!`]).
#[derive(Debug)]
pub struct NewMember<'a> {
    pub recipient: UserId,
    pub kind: crate::notifications::Kind,
    pub post: Option<PostId>,
    pub actor: &'a crate::users::UserSummaryRow,
    pub notification: NotificationId,
    pub at: NaiveDateTime,
    /// The recipient's group version drawn for this change.
    pub version: i64,
}

/// Finds the open group a notification of `$kind` about `$post` from `$actor` joins, closing
/// one that is past the window; evaluates to `Option<(GroupRow, bool)>`: the group, and
/// whether `$actor` is already one of its members (a second comment).
#[macro_export]
macro_rules! group_place {
    ([$($aw:tt)*] $conn:expr, $recipient:expr, $kind:expr, $post:expr, $actor:expr, $at:expr, $window:expr) => {{
        use diesel::{ExpressionMethods as _, OptionalExtension as _, QueryDsl as _, SelectableHelper as _};
        use $crate::schema::{notification_groups as g, notifications as n};
        let post: Option<$crate::PostId> = $post;
        let open: Option<$crate::groups::GroupRow> = g::table
            .filter(g::recipient_id.eq($recipient))
            .filter(g::kind.eq($kind.as_str()))
            .filter(g::post_key.eq(post.map_or(0, |p| p.0)))
            .filter(g::open.eq(true))
            .select($crate::groups::GroupRow::as_select())
            .first($conn) $($aw)* .optional()?;
        match open {
            Some(group) if $crate::groups::rule::joinable(group.newest_at, $at, $window) => {
                let again = n::table
                    .filter(n::recipient_id.eq($recipient))
                    .filter(n::actor_id.eq($actor))
                    .filter(n::group_id.eq(group.id));
                let already = $kind == $crate::notifications::Kind::Comment
                    && diesel::select(diesel::dsl::exists(again)).get_result::<bool>($conn) $($aw)* ?;
                Some((group, already))
            }
            Some(stale) => {
                diesel::update(g::table.find(stale.id)).set(g::open.eq(false)).execute($conn) $($aw)* ?;
                None
            }
            None => None,
        }
    }};
}

/// Puts the just-inserted notification `$row` in its group: the one [`group_place!`] found
/// (`$place`), or a new one; evaluates to `(NotificationRow, GroupRow)` as they now stand.
#[macro_export]
macro_rules! group_join {
    ([$($aw:tt)*] $conn:expr, $new:expr, $place:expr, $row:expr) => {{
        use diesel::{ExpressionMethods as _, QueryDsl as _, SelectableHelper as _};
        use $crate::schema::{notification_groups as g, notifications as n};
        let new: $crate::groups::NewMember<'_> = $new;
        let mut row: $crate::notifications::NotificationRow = $row;
        let actor = $crate::groups::Actor::from(new.actor);
        let group: $crate::groups::GroupRow = match $place {
            Some((group, already)) => {
                let count = group.actor_count + if already { 0 } else { 1 };
                diesel::update(g::table.find(group.id))
                    .set((
                        g::actor_count.eq(count),
                        g::actors.eq($crate::groups::rule::prepend(&group.actors, actor)),
                        g::latest_notification_id.eq(new.notification),
                        g::updated_at.eq(new.at),
                        g::newest_at.eq(new.at),
                        g::removed.eq(false),
                        g::version.eq(new.version),
                    ))
                    .returning($crate::groups::GroupRow::as_returning())
                    .get_result($conn) $($aw)* ?
            }
            None => {
                let group: $crate::groups::GroupRow = diesel::insert_into(g::table)
                    .values((
                        g::recipient_id.eq(new.recipient),
                        g::kind.eq(new.kind.as_str()),
                        g::post_id.eq(new.post),
                        g::post_key.eq(new.post.map_or(0, |p| p.0)),
                        g::actor_count.eq(1i64),
                        g::actors.eq($crate::groups::rule::actors_json(&[actor])),
                        g::latest_notification_id.eq(new.notification),
                        g::updated_at.eq(new.at),
                        g::newest_at.eq(new.at),
                        g::version.eq(new.version),
                    ))
                    .returning($crate::groups::GroupRow::as_returning())
                    .get_result($conn) $($aw)* ?;
                diesel::update(n::table.find(new.notification))
                    .set(n::group_id.eq(group.id))
                    .execute($conn) $($aw)* ?;
                group
            }
        };
        row.group_id = Some(group.id);
        (row, group)
    }};
}

/// The query of group `$group`'s present members (a liker who still likes the post, a follower
/// who still follows, every commenter), newest first, as users: one per notification, so a
/// commenter may appear more than once.
#[macro_export]
macro_rules! group_present_members {
    ($group:expr) => {{
        use diesel::{
            BoolExpressionMethods as _, ExpressionMethods as _, JoinOnDsl as _,
            NullableExpressionMethods as _, QueryDsl as _, SelectableHelper as _,
        };
        use $crate::schema::{follows as f, likes as l, notifications as n, users as u};
        let liked = l::table
            .filter(l::post_id.nullable().eq(n::post_id))
            .filter(l::user_id.eq(n::actor_id))
            .filter(l::unliked.eq(false));
        let following = f::table
            .filter(f::follower_id.eq(n::actor_id))
            .filter(f::followee_id.eq(n::recipient_id));
        let present = n::kind
            .eq("comment")
            .or(n::kind.eq("like").and(diesel::dsl::exists(liked)))
            .or(n::kind.eq("follow").and(diesel::dsl::exists(following)));
        n::table
            .inner_join(u::table.on(u::id.eq(n::actor_id)))
            .filter(n::group_id.eq($group))
            .filter(present)
            .order(n::id.desc())
            .select($crate::users::UserSummaryRow::as_select())
    }};
}

/// The newest present actors of group `$group` (like and follow groups, whose actors appear
/// once each); evaluates to the JSON to store.
#[macro_export]
macro_rules! group_newest_present {
    ([$($aw:tt)*] $conn:expr, $group:expr) => {{
        use diesel::QueryDsl as _;
        let newest: Vec<$crate::users::UserSummaryRow> = $crate::group_present_members!($group)
            .limit($crate::groups::rule::SHOWN_ACTORS as i64)
            .load($conn) $($aw)* ?;
        let actors: Vec<$crate::groups::Actor> = newest.iter().map(Into::into).collect();
        $crate::groups::rule::actors_json(&actors)
    }};
}

/// `$actor` (who just unliked, unfollowed, or liked or followed again) leaves or rejoins
/// (`$delta` -1 or +1) the group of their notification to `$recipient` about `$post` of kind
/// `$kind`; evaluates to `Option<GroupRow>`, `None` when they have no such notification (a
/// self-like, or muted at the time).
#[macro_export]
macro_rules! group_shift {
    ([$($aw:tt)*] $conn:expr, $recipient:expr, $kind:expr, $post:expr, $actor:expr, $delta:expr) => {{
        use diesel::{ExpressionMethods as _, OptionalExtension as _, QueryDsl as _, SelectableHelper as _};
        use $crate::schema::{notification_groups as g, notifications as n};
        let post: Option<$crate::PostId> = $post;
        let mine = n::table
            .filter(n::recipient_id.eq($recipient))
            .filter(n::actor_id.eq($actor))
            .filter(n::kind.eq($kind.as_str()))
            .select(n::group_id)
            .into_boxed();
        let mine = match post {
            Some(post) => mine.filter(n::post_id.eq(post)),
            None => mine.filter(n::post_id.is_null()),
        };
        match mine.first::<Option<$crate::GroupId>>($conn) $($aw)* .optional()?.flatten() {
            None => None,
            Some(group) => {
                let version = $crate::group_version!([$($aw)*] $conn, $recipient);
                let row: $crate::groups::GroupRow = g::table
                    .find(group)
                    .select($crate::groups::GroupRow::as_select())
                    .first($conn) $($aw)* ?;
                let count = (row.actor_count + $delta).max(0);
                let actors = $crate::group_newest_present!([$($aw)*] $conn, group);
                let changed = diesel::update(g::table.find(group))
                    .set((
                        g::actor_count.eq(count),
                        g::actors.eq(actors),
                        g::removed.eq(count == 0),
                        g::version.eq(version),
                        g::updated_at.eq($crate::now_millis()),
                    ))
                    .returning($crate::groups::GroupRow::as_returning())
                    .get_result($conn) $($aw)* ?;
                Some(changed)
            }
        }
    }};
}

/// Recounts group `$group` of `$recipient` from its present members (after a block took some
/// away); evaluates to the changed `GroupRow`.
#[macro_export]
macro_rules! group_refresh {
    ([$($aw:tt)*] $conn:expr, $recipient:expr, $group:expr) => {{
        use diesel::{ExpressionMethods as _, QueryDsl as _, SelectableHelper as _};
        use $crate::schema::notification_groups as g;
        let members: Vec<$crate::users::UserSummaryRow> =
            $crate::group_present_members!($group).load($conn) $($aw)* ?;
        let (count, actors) = $crate::groups::rule::distinct_newest(&members);
        let version = $crate::group_version!([$($aw)*] $conn, $recipient);
        diesel::update(g::table.find($group))
            .set((
                g::actor_count.eq(count),
                g::actors.eq($crate::groups::rule::actors_json(&actors)),
                g::removed.eq(count == 0),
                g::version.eq(version),
                g::updated_at.eq($crate::now_millis()),
            ))
            .returning($crate::groups::GroupRow::as_returning())
            .get_result::<$crate::groups::GroupRow>($conn) $($aw)* ?
    }};
}

/// Marks groups `$ids` of `$recipient` read (and closed), each with its own version; evaluates
/// to the changed rows. Groups already read or removed are left alone.
#[macro_export]
macro_rules! groups_mark_read {
    ([$($aw:tt)*] $conn:expr, $recipient:expr, $ids:expr) => {{
        use diesel::{ExpressionMethods as _, QueryDsl as _, SelectableHelper as _};
        use $crate::schema::notification_groups as g;
        let ids: Vec<$crate::GroupId> = g::table
            .filter(g::recipient_id.eq($recipient))
            .filter(g::id.eq_any($ids))
            .filter(g::read.eq(false))
            .filter(g::removed.eq(false))
            .select(g::id)
            .order(g::id.asc())
            .load($conn) $($aw)* ?;
        let mut changed = Vec::with_capacity(ids.len());
        for id in ids {
            let version = $crate::group_version!([$($aw)*] $conn, $recipient);
            let row: $crate::groups::GroupRow = diesel::update(g::table.find(id))
                .set((g::read.eq(true), g::open.eq(false), g::version.eq(version), g::updated_at.eq($crate::now_millis())))
                .returning($crate::groups::GroupRow::as_returning())
                .get_result($conn) $($aw)* ?;
            changed.push(row);
        }
        changed
    }};
}

/// What reading changed: the unread counts after it and the groups it changed.
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub unread: i64,
    pub unread_groups: i64,
    pub groups: Vec<GroupRow>,
}

/// One page of `recipient`'s groups (not removed), most recently changed first (the order of
/// their versions, and of `updated_at`), changed before version `before`.
pub async fn page(
    db: &Db,
    recipient: UserId,
    before: Option<i64>,
    limit: i64,
    unread_only: bool,
) -> DbResult<Vec<GroupRow>> {
    use notification_groups as g;
    crate::run!(db.read(), conn => {
        let mut query = g::table
            .filter(g::recipient_id.eq(recipient))
            .filter(g::removed.eq(false))
            .select(GroupRow::as_select())
            .order(g::version.desc())
            .limit(limit)
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(g::version.lt(before));
        }
        if unread_only {
            query = query.filter(g::read.eq(false));
        }
        query.load(conn).await.map_err(Into::into)
    })
}

/// How many of `recipient`'s groups are unread.
pub async fn unread_count(db: &Db, recipient: UserId) -> DbResult<i64> {
    crate::run!(db.read(), conn => {
        Ok(crate::groups_unread!([.await] conn, recipient))
    })
}

/// How many of `$recipient`'s groups are unread; evaluates to `i64`.
#[macro_export]
macro_rules! groups_unread {
    ([$($aw:tt)*] $conn:expr, $recipient:expr) => {{
        use diesel::{ExpressionMethods as _, QueryDsl as _};
        use $crate::schema::notification_groups as g;
        g::table
            .filter(g::recipient_id.eq($recipient))
            .filter(g::read.eq(false))
            .filter(g::removed.eq(false))
            .count()
            .get_result::<i64>($conn) $($aw)* ?
    }};
}

/// `recipient`'s groups changed after version `after` (removed ones included), oldest change
/// first, at most `limit`.
pub async fn changed_since(
    db: &Db,
    recipient: UserId,
    after: i64,
    limit: i64,
) -> DbResult<Vec<GroupRow>> {
    use notification_groups as g;
    crate::run!(db.read(), conn => {
        g::table
            .filter(g::recipient_id.eq(recipient))
            .filter(g::version.gt(after))
            .select(GroupRow::as_select())
            .order(g::version.asc())
            .limit(limit)
            .load(conn)
            .await
            .map_err(Into::into)
    })
}

/// `recipient`'s current group version (every change so far has a version at or below it).
pub async fn current_version(db: &Db, recipient: UserId) -> DbResult<i64> {
    crate::run!(db.read(), conn => {
        users::table.find(recipient).select(users::group_version).first(conn).await.map_err(Into::into)
    })
}

/// Marks groups `ids` read, with every notification in them; the counts after and the groups
/// changed.
pub async fn mark_read(db: &Db, recipient: UserId, ids: &[GroupId]) -> DbResult<ReadOutcome> {
    use crate::schema::notifications as n;
    crate::transaction!(db.write(), conn => {
        let groups = crate::groups_mark_read!([.await] conn, recipient, ids);
        let marked: Vec<GroupId> = groups.iter().map(|g| g.id).collect();
        diesel::update(
            n::table
                .filter(n::recipient_id.eq(recipient))
                .filter(n::group_id.eq_any(&marked))
                .filter(n::read.eq(false)),
        )
        .set(n::read.eq(true))
        .execute(conn)
        .await?;
        let unread = n::table
            .filter(n::recipient_id.eq(recipient))
            .filter(n::read.eq(false))
            .count()
            .get_result::<i64>(conn)
            .await?;
        let unread_groups = crate::groups_unread!([.await] conn, recipient);
        Ok(ReadOutcome { unread, unread_groups, groups })
    })
}
