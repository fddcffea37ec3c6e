//! Likes written together on PostgreSQL in one statement (`like_batch.sql`), a call of the
//! function `pulse_like_batch` (migration `2026-12-04-000003_like_batch_function`): every like's
//! row, notification and push jobs, with one update of the post's count, of the author's
//! sequence and of the group, however many likes there are.
//!
//! Likes written together are one post's (see the server's like queue), and a popular post's
//! likes arrive together: written one statement each, a batch rewrote the same post, author and
//! group rows once per like. Here each of those rows is written once per batch, and each like is
//! still answered as if written alone, in the batch's order: its count and seq (the count before
//! the batch plus its place among the post's new likes), its notification's id and seq (drawn in
//! order while the author's row is locked, as `pulse_like` draws them), and its group as it
//! stood after it. The last like gets the group's row as written; an earlier like's newest
//! actors are the batch's likers before it, then the open group's as the function read it while
//! holding the post's row (every writer of a post's group holds it).
//!
//! The function keeps every rule of a like alone (`pulse_like`): a block hides the post, a mute
//! or preference leaves the like `unsettled`, a like again is a `rejoin`, and a moved
//! `reach_version` draws nothing (every like it would have notified is then settled afresh).
//! Likes of several posts, which the queue never hands over, are written by `pulse_like` one
//! after the other once every post's row is locked in id order.
//!
//! As one `WITH` statement, a batch of 4 cost PostgreSQL about 1,000k instructions per like,
//! more than a like alone; as the function, 488k (`load-tests/like-instructions.sh --batch 4`).

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::QueryResult;

use crate::db::NotifyPolicy;
use crate::groups::Actor;
use crate::ids::{GroupId, NotificationId, PostId, UserId};
use crate::notifications::{Kind, NewNotification};
use crate::users::UserSummaryRow;

use super::{push_statement, Bind, LikeRow, Placed, KIND};

/// The batch statement over distinct `(liker, post)` pairs, in order.
#[derive(Debug, Clone)]
pub(super) struct LikeBatch {
    posts: Vec<i64>,
    likers: Vec<i64>,
    /// Each like's notification sentence.
    pub(super) texts: Vec<String>,
    /// Each liker as one JSON [`Actor`].
    actors: Vec<String>,
    /// `created_at` of every like and notification of the batch.
    pub(super) at: NaiveDateTime,
    policy: NotifyPolicy,
}

impl LikeBatch {
    /// The likes `likes`, now. The pairs must be distinct (a pair twice is the caller's to
    /// answer: the second finds the first's like).
    pub(super) fn new(likes: &[&(UserSummaryRow, PostId)], policy: NotifyPolicy) -> Self {
        LikeBatch {
            posts: likes.iter().map(|(_, post)| post.0).collect(),
            likers: likes.iter().map(|(actor, _)| actor.id.0).collect(),
            texts: likes
                .iter()
                .map(|(actor, _)| NewNotification::render(Kind::Like, actor, None))
                .collect(),
            actors: likes
                .iter()
                .map(|(actor, _)| {
                    serde_json::to_string(&Actor::from(actor)).unwrap_or_else(|_| "{}".into())
                })
                .collect(),
            at: crate::now_millis(),
            policy,
        }
    }
}

/// What [`LikeBatch`] returns for each like, in order: its place (from 1), then the columns of
/// `like.sql`'s row, the first three `NULL` when the like added nothing.
pub(super) type BatchRow = (
    i64,
    Option<i64>,
    Option<i64>,
    Option<UserId>,
    Option<NotificationId>,
    Option<i64>,
    bool,
    Option<GroupId>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    i64,
    bool,
);

/// The like's row as `like.sql` would have answered it: `None` when it added no like.
pub(super) fn as_like_row(row: BatchRow) -> Option<LikeRow> {
    let (
        _,
        count,
        seq,
        author,
        id,
        notified_seq,
        unsettled,
        group,
        actor_count,
        actors,
        version,
        pushes,
        rejoin,
    ) = row;
    Some((
        count?,
        seq?,
        author?,
        id,
        notified_seq,
        unsettled,
        group,
        actor_count,
        actors,
        version,
        pushes,
        rejoin,
    ))
}

/// The statement's text; `$1`..`$9` are the posts, likers, texts and actors (arrays), then at,
/// kind, window, push delay and push TTL.
const SQL: &str = include_str!("../like_batch.sql");

/// [`SQL`] cut for binding, once per process rather than on every batch.
static PLACED: std::sync::LazyLock<Result<Placed, String>> =
    std::sync::LazyLock::new(|| Placed::new(SQL, 9));

impl QueryFragment<Pg> for LikeBatch {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        push_statement(
            out,
            &PLACED,
            &[
                Bind::Ints(&self.posts),
                Bind::Ints(&self.likers),
                Bind::Texts(&self.texts),
                Bind::Texts(&self.actors),
                Bind::At(&self.at),
                Bind::Text(KIND),
                Bind::Int(&self.policy.group_window_secs),
                Bind::Int(&self.policy.push_delay_ms),
                Bind::Int(&self.policy.push_ttl_secs),
            ],
        )
    }
}

impl QueryId for LikeBatch {
    type QueryId = LikeBatch;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for LikeBatch {
    type SqlType = (
        BigInt,
        Nullable<BigInt>,
        Nullable<BigInt>,
        Nullable<BigInt>,
        Nullable<BigInt>,
        Nullable<BigInt>,
        Bool,
        Nullable<BigInt>,
        Nullable<BigInt>,
        Nullable<Text>,
        Nullable<BigInt>,
        BigInt,
        Bool,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    fn user(id: i64, name: &str) -> UserSummaryRow {
        UserSummaryRow {
            id: UserId(id),
            username: name.into(),
            display_name: name.into(),
        }
    }

    #[test]
    fn every_value_is_bound_once_in_order() {
        let likes = [(user(3, "bob"), PostId(7)), (user(4, "eve"), PostId(7))];
        let refs: Vec<_> = likes.iter().collect();
        let mut batch = LikeBatch::new(&refs, NotifyPolicy::default());
        batch.at = NaiveDateTime::default();
        let sql = diesel::debug_query::<Pg, _>(&batch).to_string();
        assert!(
            sql.starts_with(
                "SELECT * FROM pulse_like_batch($1::int8[], $2::int8[], $3::text[], $4::text[], \
                 $5::timestamp,\n  $6::text, $7::int8, $8::int8, $9::int8)"
            ),
            "{sql}"
        );
        assert!(!sql.contains("$10"), "{sql}");
        assert!(
            sql.contains(
                r#"binds: [[7, 7], [3, 4], ["bob liked your photo.", "eve liked your photo."]"#
            ),
            "{sql}"
        );
        assert!(sql.contains(r#""like""#), "{sql}");
    }
}
