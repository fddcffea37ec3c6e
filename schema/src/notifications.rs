//! The `notifications` table: the inbox, and the allocator that keeps it replayable.
//!
//! # Ordering invariant
//! For each recipient, notification ids become visible (commit) in increasing order, and each
//! notification carries `seq`, the recipient's own gap-free counter (1, 2, 3, … except where a
//! deleted post or a block took some away). [`insert!`](crate::insert_notification) enforces
//! this: it first bumps `users.notification_seq` for the recipient, which row-locks the recipient
//! on PostgreSQL (SQLite has a single writer) until the surrounding transaction ends, and only
//! then inserts the row, whose id is drawn from the sequence while the lock is held. A like on
//! PostgreSQL does the same inside one statement ([`crate::likes`]): its notification
//! row is built from the `RETURNING` of the recipient's `UPDATE`. Two transactions
//! notifying the same recipient therefore allocate and commit one after the other. The live
//! socket relies on this: the id is a correct replay cursor (`?since=`) and a jump in `seq`
//! means "something in between is committed, read it from here".

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};

use crate::db::{Db, DbResult};
use crate::groups::ReadOutcome;
use crate::ids::{CommentId, GroupId, NotificationId, PostId, UserId};
use crate::schema::{notifications, users};
use crate::users::UserSummaryRow;

/// What caused a notification. Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Like,
    Comment,
    Follow,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Like => "like",
            Kind::Comment => "comment",
            Kind::Follow => "follow",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = notifications, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct NotificationRow {
    pub id: NotificationId,
    pub recipient_id: UserId,
    pub seq: i64,
    pub actor_id: UserId,
    pub kind: String,
    pub post_id: Option<PostId>,
    pub comment_id: Option<CommentId>,
    pub text: String,
    pub created_at: NaiveDateTime,
    pub read: bool,
    /// The group this notification belongs to (see [`crate::groups`]).
    pub group_id: Option<GroupId>,
}

/// A notification with its actor, as the API renders it.
pub type NotificationView = (NotificationRow, UserSummaryRow);

/// Insert form; `seq` is allocated by [`insert_notification!`](crate::insert_notification).
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub recipient_id: UserId,
    pub actor: UserSummaryRow,
    pub kind: Kind,
    pub post_id: Option<PostId>,
    pub comment_id: Option<CommentId>,
    pub text: String,
}

impl NewNotification {
    /// Renders the sentence the recipient reads ("alice liked your photo.").
    pub fn render(kind: Kind, actor: &UserSummaryRow, comment_text: Option<&str>) -> String {
        match (kind, comment_text) {
            (Kind::Like, _) => format!("{} liked your photo.", actor.username),
            (Kind::Comment, Some(text)) => {
                format!("{} commented on your photo: {text}", actor.username)
            }
            (Kind::Comment, None) => format!("{} commented on your photo.", actor.username),
            (Kind::Follow, _) => format!("{} started following you.", actor.username),
        }
    }
}

/// A committed notification, the group it joined or started, and how many pushes it queued.
#[derive(Debug, Clone)]
pub struct Notified {
    pub view: NotificationView,
    pub group: crate::groups::GroupRow,
    pub pushes: i64,
}

/// What a write has to tell its recipient live: the notification it committed, if any, the
/// groups it changed, in version order, and how many pushes the notification queued (a socket
/// that shows it live cancels them, see [`crate::push`]).
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub notification: Option<NotificationView>,
    pub groups: Vec<crate::groups::GroupRow>,
    pub pushes: i64,
}

impl From<Option<Notified>> for Delivery {
    fn from(notified: Option<Notified>) -> Self {
        match notified {
            Some(Notified {
                view,
                group,
                pushes,
            }) => Delivery {
                notification: Some(view),
                groups: vec![group],
                pushes,
            },
            None => Delivery::default(),
        }
    }
}

impl From<Option<crate::groups::GroupRow>> for Delivery {
    fn from(group: Option<crate::groups::GroupRow>) -> Self {
        Delivery {
            notification: None,
            groups: group.into_iter().collect(),
            pushes: 0,
        }
    }
}

/// Inserts a notification inside the caller's transaction, upholding the ordering invariant in
/// the module docs, unless the recipient blocked or muted the actor (see [`crate::blocks`]),
/// and puts it in its group (see [`crate::groups`]) and queues its pushes (see [`crate::push`]),
/// as `$policy` (a [`crate::db::NotifyPolicy`]) says. Evaluates to `DbResult<Option<Notified>>`: `None` when nobody is to be told.
/// The await marker comes first, as for the macros of [`crate::groups`].
#[macro_export]
macro_rules! insert_notification {
    ([$($aw:tt)*] $conn:expr, $new:expr, $policy:expr) => {{
        use diesel::{
            ExpressionMethods as _, NullableExpressionMethods as _, OptionalExtension as _,
            QueryDsl as _, SelectableHelper as _,
        };
        use diesel::{BoolExpressionMethods as _, IntoSql as _};
        use $crate::schema::blocks as b;
        use $crate::schema::follows as f;
        use $crate::schema::mutes as m;
        use $crate::schema::notification_preferences as pref;
        use $crate::schema::push_jobs as pj;
        use $crate::schema::push_subscriptions as ps;
        use $crate::schema::notifications as n;
        use $crate::schema::users as u;
        let $crate::notifications::NewNotification {
            recipient_id,
            actor,
            kind,
            post_id,
            comment_id,
            text,
        } = $new;
        let policy: $crate::db::NotifyPolicy = $policy;
        let is = |k: $crate::notifications::Kind| (kind == k).into_sql::<diesel::sql_types::Bool>();
        // Lock the recipient's row first (see "Ordering invariant"), drawing its next `seq`
        // and group version, unless the recipient keeps the actor out (a block, a mute, or
        // preferences: this kind off, or only people they follow). A block or mute
        // committed while this statement waited for the row is invisible to its snapshot, but
        // it moved the row's `reach_version`: then no row matches, and a second statement,
        // with a fresh snapshot, asks again (see `crate::blocks`).
        let draw = || {
            let blocked = b::table
                .filter(b::blocker_id.eq(recipient_id))
                .filter(b::blocked_id.eq(actor.id));
            let muted = m::table
                .filter(m::muter_id.eq(recipient_id))
                .filter(m::muted_id.eq(actor.id));
            let followed = f::table
                .filter(f::follower_id.eq(recipient_id))
                .filter(f::followee_id.eq(actor.id));
            let kind_off = pref::like_inbox.eq(false).and(is($crate::notifications::Kind::Like))
                .or(pref::comment_inbox.eq(false).and(is($crate::notifications::Kind::Comment)))
                .or(pref::follow_inbox.eq(false).and(is($crate::notifications::Kind::Follow)));
            let refused = pref::table
                .filter(pref::user_id.eq(recipient_id))
                .filter(kind_off.or(pref::from_following.eq(true).and(diesel::dsl::not(diesel::dsl::exists(followed)))));
            let snapshot = diesel::alias!($crate::schema::users as snapshot);
            let version_seen = snapshot
                .filter(snapshot.field(u::id).eq(recipient_id))
                .select(snapshot.field(u::reach_version))
                .single_value()
                .assume_not_null();
            diesel::update(
                u::table
                    .find(recipient_id)
                    .filter(u::reach_version.eq(version_seen))
                    .filter(diesel::dsl::not(diesel::dsl::exists(blocked)))
                    .filter(diesel::dsl::not(diesel::dsl::exists(muted)))
                    .filter(diesel::dsl::not(diesel::dsl::exists(refused))),
            )
            .set((
                u::notification_seq.eq(u::notification_seq + 1),
                u::group_version.eq(u::group_version + 1),
            ))
            .returning((u::notification_seq, u::group_version))
        };
        let drawn = match draw().get_result::<(i64, i64)>($conn) $($aw)* .optional()? {
            Some(drawn) => Some(drawn),
            None => draw().get_result::<(i64, i64)>($conn) $($aw)* .optional()?,
        };
        match drawn {
            None => Ok::<_, $crate::db::DbError>(None),
            Some((seq, version)) => {
                let at = $crate::now_millis();
                let place = $crate::group_place!([$($aw)*] $conn, recipient_id, kind, post_id, actor.id, at, $policy.group_window_secs);
                let row: $crate::notifications::NotificationRow = diesel::insert_into(n::table)
                    .values((
                        n::recipient_id.eq(recipient_id),
                        n::seq.eq(seq),
                        n::actor_id.eq(actor.id),
                        n::kind.eq(kind.as_str()),
                        n::post_id.eq(post_id),
                        n::comment_id.eq(comment_id),
                        n::text.eq(text),
                        n::created_at.eq(at),
                        n::group_id.eq(place.as_ref().map(|(group, _)| group.id)),
                    ))
                    .returning($crate::notifications::NotificationRow::as_returning())
                    .get_result($conn) $($aw)* ?;
                let new_member = $crate::groups::NewMember { recipient: recipient_id, kind, post: post_id, actor: &actor, notification: row.id, at, version };
                let (row, group) = $crate::group_join!([$($aw)*] $conn, new_member, place, row);
                // One push job per device of the recipient's that takes pushes of this kind.
                let push_off = pref::like_push.eq(false).and(is($crate::notifications::Kind::Like))
                    .or(pref::comment_push.eq(false).and(is($crate::notifications::Kind::Comment)))
                    .or(pref::follow_push.eq(false).and(is($crate::notifications::Kind::Follow)));
                let muted_push = pref::table.filter(pref::user_id.eq(recipient_id)).filter(push_off);
                let due = at + chrono::Duration::milliseconds(policy.push_delay_ms);
                let expires = at + chrono::Duration::seconds(policy.push_ttl_secs);
                let devices = ps::table
                    .filter(ps::user_id.eq(recipient_id))
                    .filter(ps::expires_at.gt(at))
                    .filter(diesel::dsl::not(diesel::dsl::exists(muted_push)))
                    .select((
                        row.id.into_sql::<diesel::sql_types::BigInt>(),
                        ps::id,
                        at.into_sql::<diesel::sql_types::Timestamp>(),
                        due.into_sql::<diesel::sql_types::Timestamp>(),
                        expires.into_sql::<diesel::sql_types::Timestamp>(),
                    ));
                let pushes = diesel::insert_into(pj::table)
                    .values(devices)
                    .into_columns((pj::notification_id, pj::subscription_id, pj::created_at, pj::due_at, pj::expires_at))
                    .execute($conn) $($aw)* ? as i64;
                Ok(Some($crate::notifications::Notified { view: (row, actor), group, pushes }))
            }
        }
    }};
}

fn actor_on() -> diesel::dsl::Eq<users::id, notifications::actor_id> {
    users::id.eq(notifications::actor_id)
}

/// One page of the inbox, newest first, strictly older than `before`.
pub async fn page(
    db: &Db,
    recipient: UserId,
    before: Option<NotificationId>,
    limit: i64,
    unread_only: bool,
) -> DbResult<Vec<NotificationView>> {
    crate::run!(db.read(), conn => {
        let mut query = notifications::table
            .inner_join(users::table.on(actor_on()))
            .filter(notifications::recipient_id.eq(recipient))
            .select((NotificationRow::as_select(), UserSummaryRow::as_select()))
            .order(notifications::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(notifications::id.lt(before));
        }
        if unread_only {
            query = query.filter(notifications::read.eq(false));
        }
        query.load(conn).await.map_err(Into::into)
    })
}

pub async fn unread_count(db: &Db, recipient: UserId) -> DbResult<i64> {
    crate::run!(db.read(), conn => {
        notifications::table
            .filter(notifications::recipient_id.eq(recipient))
            .filter(notifications::read.eq(false))
            .count()
            .get_result(conn)
            .await
            .map_err(Into::into)
    })
}

/// Which notifications to mark read.
#[derive(Debug, Clone)]
pub enum MarkRead {
    UpTo(NotificationId),
    Ids(Vec<NotificationId>),
}

/// Marks the recipient's notifications read; groups left with no unread member are read too
/// (see [`crate::groups`]). Returns the counts after and the groups that changed.
pub async fn mark_read(db: &Db, recipient: UserId, which: &MarkRead) -> DbResult<ReadOutcome> {
    use crate::schema::notifications as n;
    crate::transaction!(db.write(), conn => {
        let mine = n::table
            .filter(n::recipient_id.eq(recipient))
            .filter(n::read.eq(false));
        let touched: Vec<Option<GroupId>> = match which {
            MarkRead::UpTo(up_to) => {
                diesel::update(mine.filter(n::id.le(*up_to)))
                    .set(n::read.eq(true))
                    .returning(n::group_id)
                    .get_results(conn)
                    .await?
            }
            MarkRead::Ids(ids) => {
                diesel::update(mine.filter(n::id.eq_any(ids)))
                    .set(n::read.eq(true))
                    .returning(n::group_id)
                    .get_results(conn)
                    .await?
            }
        };
        let mut touched: Vec<GroupId> = touched.into_iter().flatten().collect();
        touched.sort_unstable();
        touched.dedup();
        // Of the groups touched, those with no unread member left.
        let still_unread: Vec<GroupId> = n::table
            .filter(n::recipient_id.eq(recipient))
            .filter(n::read.eq(false))
            .filter(n::group_id.eq_any(&touched))
            .select(n::group_id.assume_not_null())
            .distinct()
            .load(conn)
            .await?;
        touched.retain(|g| !still_unread.contains(g));
        let groups = crate::groups_mark_read!([.await] conn, recipient, &touched);
        let unread: i64 = n::table
            .filter(n::recipient_id.eq(recipient))
            .filter(n::read.eq(false))
            .count()
            .get_result(conn)
            .await?;
        let unread_groups = crate::groups_unread!([.await] conn, recipient);
        Ok(ReadOutcome { unread, unread_groups, groups })
    })
}

/// The newest `limit` notifications with id greater than `after`, returned oldest first, and
/// whether older ones beyond those were left out (the socket then sends a `gap`).
pub async fn replay_after_id(
    db: &Db,
    recipient: UserId,
    after: NotificationId,
    limit: i64,
) -> DbResult<(Vec<NotificationView>, bool)> {
    let mut rows: Vec<NotificationView> = crate::run!(db.read(), conn => {
        notifications::table
            .inner_join(users::table.on(actor_on()))
            .filter(notifications::recipient_id.eq(recipient))
            .filter(notifications::id.gt(after))
            .select((NotificationRow::as_select(), UserSummaryRow::as_select()))
            .order(notifications::id.desc())
            .limit(limit + 1)
            .load(conn)
            .await
            .map_err(crate::DbError::from)
    })?;
    let truncated = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    rows.reverse();
    Ok((rows, truncated))
}

/// Every notification id of a recipient, ascending (tests and audits).
pub async fn all_ids(db: &Db, recipient: UserId) -> DbResult<Vec<NotificationId>> {
    crate::run!(db.read(), conn => {
        notifications::table
            .filter(notifications::recipient_id.eq(recipient))
            .select(notifications::id)
            .order(notifications::id.asc())
            .load(conn)
            .await
            .map_err(Into::into)
    })
}
