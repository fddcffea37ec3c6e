//! A like on PostgreSQL in one statement (`like.sql`), which calls the function `pulse_like`
//! (migration `2026-12-04-000002_like_function`): the like row (inserted, or a taken back one
//! marked liked again), the post's count, the recipient's notification sequence, the group and
//! the notification itself, in one round trip and one transaction.
//!
//! The like is the hottest write Pulse has. Run as separate statements (BEGIN, the like row, two
//! pipelined pairs, COMMIT) it cost PostgreSQL five round trips and five executor starts; as
//! one statement, one of each (pgbench, 2 cores, 8 clients: 1,089-1,354 transactions/s one by
//! one, 1,681-2,127 as one statement). A single `WITH` statement then started every step's plan
//! on every like, needed or not; the function runs the steps one after the other and stops where
//! the like ends, about 15 % fewer instructions per like (`load-tests/like-instructions.sh`).
//! `like.sql` is the single copy of the call: this module binds it, and
//! `load-tests/ceiling.sh` runs the same file through pgbench.
//!
//! The function keeps every rule of [`super::sqlite`], which writes the same rows one by one:
//! - an existing like changes nothing (no row);
//! - a missing post leaves nothing to count, and the caller deletes the like's row (`NotFound`);
//! - only a like that inserted its row notifies (`first`: the upsert left `relikes` at 0); a
//!   like again marks the row liked and rejoins the group (`rejoin`); nobody is notified of
//!   their own like;
//! - a post whose author blocked the liker takes no like (the block check of the like's insert;
//!   the caller answers `NotFound`), and an author who muted the liker is not notified (see
//!   [`crate::blocks`]): an author whose `reach_version` is 0 never blocked, muted or saved
//!   preferences, and any other is checked in the statement that locks the author's row;
//! - the ordering invariant of [`crate::notifications`]: the notification's id is drawn by the
//!   `RETURNING` of the recipient's `UPDATE`, so the recipient is row-locked before the
//!   sequence gives the id.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
use diesel::QueryResult;

use diesel::OptionalExtension;
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

mod batch;

use super::outcome::LikeOutcome;
use crate::db::{DbError, DbResult, NotifyPolicy};
use crate::groups::rule::actors_json;
use crate::groups::{Actor, GroupRow};
use crate::ids::{GroupId, NotificationId, PostId, UserId};
use crate::notifications::{Delivery, Kind, NewNotification, NotificationRow};
use crate::schema::{blocks, likes, posts};
use crate::users::UserSummaryRow;

/// [`super::like`] on PostgreSQL: one round trip (two for a like again, see [`relike`]).
pub(super) async fn like(
    conn: &mut AsyncPgConnection,
    actor: &UserSummaryRow,
    post_id: PostId,
    policy: NotifyPolicy,
) -> DbResult<LikeOutcome> {
    let (at, text, row) = like_row(conn, actor, post_id, policy).await?;
    settle(conn, actor, post_id, policy, (at, text), row).await
}

/// Runs the like's statement: its time and sentence, and its row (`None`: it added no like).
async fn like_row(
    conn: &mut AsyncPgConnection,
    actor: &UserSummaryRow,
    post_id: PostId,
    policy: NotifyPolicy,
) -> DbResult<(NaiveDateTime, String, Option<LikeRow>)> {
    let statement = LikeStatement::new(actor, post_id, policy);
    let (at, text) = (statement.at, statement.text.clone());
    let row = statement.get_result::<LikeRow>(conn).await.optional()?;
    Ok((at, text, row))
}

/// What a like's statement answered (`row`: `None` if it added no like), turned into the
/// like's outcome, with whatever it needs after the statement.
async fn settle(
    conn: &mut AsyncPgConnection,
    actor: &UserSummaryRow,
    post_id: PostId,
    policy: NotifyPolicy,
    (at, text): (NaiveDateTime, String),
    row: Option<LikeRow>,
) -> DbResult<LikeOutcome> {
    let Some(row) = row else {
        return not_added(conn, actor, post_id).await;
    };
    let (like_count, like_seq, author, notification_id, seq, unsettled) =
        (row.0, row.1, row.2, row.3, row.4, row.5);
    let (pushes, again) = (row.10, row.11);
    let delivery = match (notification_id, seq, row.6, row.7, row.8, row.9) {
        (Some(id), Some(seq), Some(group_id), Some(actor_count), Some(actors), Some(version)) => {
            let notification = NotificationRow {
                id,
                recipient_id: author,
                seq,
                actor_id: actor.id,
                kind: KIND.to_owned(),
                post_id: Some(post_id),
                comment_id: None,
                text,
                created_at: at,
                read: false,
                group_id: Some(group_id),
            };
            let group = GroupRow {
                id: group_id,
                recipient_id: author,
                kind: KIND.to_owned(),
                post_id: Some(post_id),
                actor_count,
                actors,
                latest_notification_id: id,
                updated_at: at,
                newest_at: at,
                read: false,
                removed: false,
                version,
            };
            Delivery {
                notification: Some((notification, actor.clone())),
                groups: vec![group],
                pushes,
            }
        }
        _ if unsettled => notify_afresh(conn, actor, author, post_id, text, policy).await?,
        _ if again => rejoin(conn, author, actor.id, post_id).await?,
        _ => Delivery::default(),
    };
    Ok(LikeOutcome::added(
        post_id,
        (like_count, like_seq),
        delivery,
    ))
}

/// [`super::like_together`] on PostgreSQL: one statement for all the likes ([`batch`]), committed
/// as it ends, then whatever each needs after it, as [`like`] does.
///
/// No transaction block holds a post's row across a round trip: the statement locks the batch's
/// posts first, in id order (`pulse_like_batch`), then the author's row, as every other
/// writer (a like alone, an unlike, another batch) locks posts before authors, so none waits for
/// a post while holding an author. A pair liked twice in the batch is written once; its second
/// like is answered after the statement, as a like already there.
pub(super) async fn like_together(
    conn: &mut AsyncPgConnection,
    likes: &[(UserSummaryRow, PostId)],
    policy: NotifyPolicy,
) -> DbResult<Vec<DbResult<LikeOutcome>>> {
    let (first, statement) = batch_of(likes, policy);
    let rows = statement.clone().load::<batch::BatchRow>(conn).await?;
    Ok(settle_batch(conn, likes, &first, (statement, rows), policy).await)
}

/// [`like_together`] for likes of `post` that `take` hands over only once this transaction
/// holds the post's row: a batch that must wait for the row (another instance's batch holds
/// it) takes every like that arrived meanwhile, instead of leaving them to a batch of their own
/// that would wait its turn again. One more round trip than [`like_together`], while the row is
/// held. A single like taken is written by [`like`]'s statement (the batch function costs more
/// for one like). Answers the likes taken and their outcomes (`Err`: none of them was written).
pub(super) async fn like_together_locked(
    conn: &mut AsyncPgConnection,
    post: PostId,
    take: impl FnOnce() -> Vec<(UserSummaryRow, PostId)> + Send,
    policy: NotifyPolicy,
) -> (
    Vec<(UserSummaryRow, PostId)>,
    DbResult<Vec<DbResult<LikeOutcome>>>,
) {
    use diesel_async::AsyncConnection as _;
    let mut taken = Vec::new();
    let written = conn
        .transaction::<_, DbError, _>(async |conn| {
            posts::table
                .find(post)
                .select(posts::id)
                .for_no_key_update()
                .first::<PostId>(conn)
                .await
                .optional()?;
            taken = take();
            if let [(actor, post)] = taken.as_slice() {
                let (at, text, row) = like_row(conn, actor, *post, policy).await?;
                return Ok(Written::Alone(at, text, row));
            }
            let (first, statement) = batch_of(&taken, policy);
            let rows = statement.clone().load::<batch::BatchRow>(conn).await?;
            Ok(Written::Together(first, statement, rows))
        })
        .await;
    let outcomes = match written {
        Ok(Written::Alone(at, text, row)) => {
            let (actor, post) = &taken[0]; // `Alone` is a batch of one
            Ok(vec![
                settle(conn, actor, *post, policy, (at, text), row).await,
            ])
        }
        Ok(Written::Together(first, statement, rows)) => {
            Ok(settle_batch(conn, &taken, &first, (statement, rows), policy).await)
        }
        Err(error) => Err(error),
    };
    (taken, outcomes)
}

/// What the transaction of [`like_together_locked`] wrote: a like alone (its time, sentence
/// and row, as [`like`] has them) or likes together (as [`like_together`] has them).
enum Written {
    Alone(NaiveDateTime, String, Option<LikeRow>),
    Together(Vec<bool>, batch::LikeBatch, Vec<batch::BatchRow>),
}

/// The batch statement for `likes`, and for each like whether it is the first of its pair in
/// the batch (a pair liked twice is written once).
fn batch_of(
    likes: &[(UserSummaryRow, PostId)],
    policy: NotifyPolicy,
) -> (Vec<bool>, batch::LikeBatch) {
    let mut seen = std::collections::HashSet::new();
    let first: Vec<bool> = likes
        .iter()
        .map(|(actor, post)| seen.insert((actor.id, *post)))
        .collect();
    let distinct: Vec<&(UserSummaryRow, PostId)> = likes
        .iter()
        .zip(&first)
        .filter_map(|(like, first)| first.then_some(like))
        .collect();
    (first, batch::LikeBatch::new(&distinct, policy))
}

/// Plans every statement of [`like`] and [`like_together`] on `conn`. The functions they call
/// plan each of their statements when it first runs on a connection, and keep the plan for the
/// connection's life; a plan made during a like holds the post's and the author's rows (a
/// hot post's likes all waited for it), so here each step runs once, in a transaction rolled
/// back: two authors of this connection's own (one never checked, `reach_version` 0, one
/// checked), each with a post and a push subscription, liked alone and then by two likers
/// together. Ids are negative and made from this process's id and `place`, so connections
/// readied at once never wait for each other's rows, and nothing of it stays.
pub(super) async fn warm(
    conn: &mut AsyncPgConnection,
    place: usize,
    policy: NotifyPolicy,
) -> DbResult<()> {
    use diesel_async::AsyncConnection as _;
    let base = -((i64::from(std::process::id()) << 20) + ((place as i64) << 3) + 8);
    let user = |id: i64| UserSummaryRow {
        id: UserId(id),
        username: format!("pulse-warm{id}"),
        display_name: String::new(),
    };
    let planned = conn
        .transaction::<(), DbError, _>(async |conn| {
            diesel::sql_query(WARM_ROWS)
                .bind::<BigInt, _>(base)
                .execute(conn)
                .await?;
            for author in [base, base - 1] {
                let post = PostId(author);
                LikeStatement::new(&user(base - 2), post, policy)
                    .get_result::<LikeRow>(conn)
                    .await
                    .optional()?;
                let likes = [(user(base - 3), post), (user(base - 4), post)];
                batch::LikeBatch::new(&likes.iter().collect::<Vec<_>>(), policy)
                    .load::<batch::BatchRow>(conn)
                    .await?;
            }
            Err(DbError::NotFound) // rolled back: nothing of it stays
        })
        .await;
    match planned {
        Err(DbError::NotFound) | Ok(()) => Ok(()),
        Err(error) => Err(error),
    }
}

/// The rows [`warm`] likes, from `$1` down: authors `$1` (never checked) and `$1 - 1` (checked),
/// each with a post of the same id and a push subscription; likers `$1 - 2` to `$1 - 4`.
const WARM_ROWS: &str = "WITH people AS (
    INSERT INTO users (id, username, display_name, password_hash, created_at, reach_version)
    SELECT $1 - n, 'pulse-warm' || ($1 - n), '', '', LOCALTIMESTAMP, CASE WHEN n = 1 THEN 1 ELSE 0 END
    FROM generate_series(0, 4) n RETURNING id),
  written AS (
    INSERT INTO posts (id, author_id, caption, media_key, width, height, created_at)
    SELECT id, id, '', '', 1, 1, LOCALTIMESTAMP FROM people WHERE id >= $1 - 1 RETURNING id)
  INSERT INTO push_subscriptions (id, user_id, token_id, endpoint, p256dh, auth, created_at,
    expires_at)
  SELECT id, id, 'pulse-warm' || id, '', '', '', LOCALTIMESTAMP, LOCALTIMESTAMP + interval '1 day'
  FROM written";

/// Each like of a batch settled in order ([`settle`]) from its row of the batch statement, or
/// as a like already there for the second of a pair (`first` false).
async fn settle_batch(
    conn: &mut AsyncPgConnection,
    likes: &[(UserSummaryRow, PostId)],
    first: &[bool],
    (statement, rows): (batch::LikeBatch, Vec<batch::BatchRow>),
    policy: NotifyPolicy,
) -> Vec<DbResult<LikeOutcome>> {
    let at = statement.at;
    let mut rows = rows.into_iter().zip(statement.texts);
    let mut outcomes = Vec::with_capacity(likes.len());
    for ((actor, post_id), first) in likes.iter().zip(first) {
        let outcome = match first.then(|| rows.next()).flatten() {
            Some((row, text)) => {
                let row = batch::as_like_row(row);
                settle(conn, actor, *post_id, policy, (at, text), row).await
            }
            None => not_added(conn, actor, *post_id).await,
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// The statement added no like: already liked, hidden by a block, or no such post. A statement
/// of its own, so that it sees a concurrent like of the same pair that the insert waited for
/// (see [`LikeStatement`]).
///
/// A missing post is `NotFound`, after deleting the like's row: the statement writes that row
/// before it finds the post to count, and no foreign key refuses it (see [`orphan_removed`]).
async fn not_added(
    conn: &mut AsyncPgConnection,
    actor: &UserSummaryRow,
    post_id: PostId,
) -> DbResult<LikeOutcome> {
    let hidden = blocks::table
        .filter(blocks::blocker_id.eq(posts::author_id))
        .filter(blocks::blocked_id.eq(actor.id));
    let found = posts::table
        .find(post_id)
        .select((
            posts::like_count,
            posts::like_seq,
            diesel::dsl::exists(hidden),
        ))
        .first::<(i64, i64, bool)>(conn)
        .await
        .optional()?;
    let Some((like_count, like_seq, hidden)) = found else {
        return Err(orphan_removed(conn, actor.id, post_id).await);
    };
    if hidden {
        return Err(DbError::NotFound);
    }
    Ok(LikeOutcome::already_liked(post_id, (like_count, like_seq)))
}

/// Deletes `liker`'s like row of the missing post `post_id`, if the like's statement wrote one:
/// the post did not exist, or was deleted after the statement took its snapshot (the post's
/// deletion, which deletes its likes, could not see that row yet). Answers the like's error.
async fn orphan_removed(conn: &mut AsyncPgConnection, liker: UserId, post_id: PostId) -> DbError {
    let orphan = likes::table
        .filter(likes::post_id.eq(post_id))
        .filter(likes::user_id.eq(liker));
    match diesel::delete(orphan).execute(conn).await {
        Ok(_) => DbError::NotFound,
        Err(error) => error.into(),
    }
}

/// A like of a post the liker liked before (and unliked): no notification (once ever), but the
/// liker is back in the group of their first like's notification, in a transaction of its own
/// right after the like's statement.
async fn rejoin(
    conn: &mut AsyncPgConnection,
    author: UserId,
    liker: UserId,
    post_id: PostId,
) -> DbResult<Delivery> {
    use diesel_async::AsyncConnection as _;
    conn.transaction::<_, DbError, _>(async |conn| {
        let group = crate::group_shift!([.await] conn, author, Kind::Like, Some(post_id), liker, 1);
        Ok(Delivery::from(group))
    })
    .await
}

/// Notifies `author` of the like in a transaction of its own, with a fresh snapshot: for a
/// like whose statement could not tell whether the author still wants to hear from the liker,
/// or whose open group is past the window (the statement only joins groups).
async fn notify_afresh(
    conn: &mut AsyncPgConnection,
    actor: &UserSummaryRow,
    author: UserId,
    post_id: PostId,
    text: String,
    policy: NotifyPolicy,
) -> DbResult<Delivery> {
    use diesel_async::AsyncConnection as _;
    let new = NewNotification {
        recipient_id: author,
        actor: actor.clone(),
        kind: Kind::Like,
        post_id: Some(post_id),
        comment_id: None,
        text,
    };
    conn.transaction::<_, DbError, _>(async |conn| {
        // The post's row, shared-locked until commit, stands in for the notification's foreign
        // key: a post deleted meanwhile gets no notification, and a deletion that comes after
        // waits for this one and then deletes it (see `crate::posts::delete`).
        let post = posts::table
            .find(post_id)
            .select(posts::id)
            .for_key_share()
            .first::<PostId>(conn)
            .await
            .optional()?;
        if post.is_none() {
            return Ok(Delivery::default());
        }
        crate::insert_notification!([.await] conn, new, policy).map(Delivery::from)
    })
    .await
}

/// The one statement of a like. Its row, present only if the like is new: the post's like
/// count and like seq after the statement, the post's author, then the notification's id and
/// seq (`NULL` unless one was created).
///
/// An existing like returns no row, not the post's count: the statement's snapshot is taken
/// before it waits on a concurrent insert of the same like, so the count it could read may
/// not include that like yet. The caller reads the count in a statement of its own.
#[derive(Debug, Clone)]
pub(crate) struct LikeStatement {
    pub post: PostId,
    pub liker: UserId,
    /// `created_at` of the like and of the notification.
    pub at: NaiveDateTime,
    /// The notification's sentence, rendered by the caller.
    pub text: String,
    /// The grouping window (see [`crate::groups`]).
    pub window_secs: i64,
    /// The liker as a JSON array of one [`Actor`], as the group stores its newest actors.
    pub actor: String,
    /// When the author's pushes become due, after `at` (see [`crate::push`]).
    pub push_delay_ms: i64,
    /// How long the pushes may wait before they are dropped.
    pub push_ttl_secs: i64,
}

impl LikeStatement {
    /// `actor`'s like of `post`, now.
    fn new(actor: &UserSummaryRow, post: PostId, policy: NotifyPolicy) -> Self {
        LikeStatement {
            post,
            liker: actor.id,
            at: crate::now_millis(),
            text: NewNotification::render(Kind::Like, actor, None),
            window_secs: policy.group_window_secs,
            actor: actors_json(&[Actor::from(actor)]),
            push_delay_ms: policy.push_delay_ms,
            push_ttl_secs: policy.push_ttl_secs,
        }
    }
}

/// What [`LikeStatement`] returns, column for column. The sixth, `unsettled`: the liker's first
/// like of the post drew no notification, because the author muted the liker or turned likes
/// off, because a block, mute or preference change of the author's landed while the statement
/// ran (see [`crate::blocks`]), or because the author's open group of this post's likes is past
/// the window (the statement joins groups, it never closes one: the upsert's `WHERE` refuses,
/// and the `seq` and version it drew stay unused, a hole sockets settle from the database); the
/// caller settles it with a fresh look.
/// Then the group the notification joined or started: id, actor count, actors, version; how
/// many push jobs the notification queued; and `rejoin`: a like of a post the liker liked
/// before, who goes back into their first like's group (see [`rejoin`]).
type LikeRow = (
    i64,
    i64,
    UserId,
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

const KIND: &str = Kind::Like.as_str();

/// The statement's text; `$1`..`$9` are post, liker, at, text, kind, window, actor, push delay and
/// push TTL, the arguments of `pulse_like`.
const SQL: &str = include_str!("like.sql");

/// [`SQL`] cut for binding, once per process rather than on every like.
static PLACED: std::sync::LazyLock<Result<Placed, String>> =
    std::sync::LazyLock::new(|| Placed::new(SQL, 9));

impl QueryFragment<Pg> for LikeStatement {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        push_statement(
            out,
            &PLACED,
            &[
                Bind::Int(&self.post.0),
                Bind::Int(&self.liker.0),
                Bind::At(&self.at),
                Bind::Text(&self.text),
                Bind::Text(KIND),
                Bind::Int(&self.window_secs),
                Bind::Text(&self.actor),
                Bind::Int(&self.push_delay_ms),
                Bind::Int(&self.push_ttl_secs),
            ],
        )
    }
}

/// A value for a placeholder of a statement file.
enum Bind<'a> {
    Int(&'a i64),
    Text(&'a str),
    At(&'a NaiveDateTime),
    Ints(&'a Vec<i64>),
    Texts(&'a Vec<String>),
}

/// A statement file cut where its placeholders are, once per file (its text is a constant).
/// The placeholders are `$1`..`$n`, each once and in order, so the order diesel numbers the
/// binds in (the order they are pushed) is the file's. A `$` followed by a digit is a
/// placeholder wherever it is; the statement files have no other.
pub(super) struct Placed {
    /// The text before each placeholder, then the text after the last.
    parts: Vec<String>,
}

impl Placed {
    /// `sql` with placeholders `$1`..`$values`, each once and in order; `Err` names the first
    /// that is not.
    pub(super) fn new(sql: &str, values: usize) -> Result<Placed, String> {
        let mut parts = Vec::with_capacity(values + 1);
        let mut rest = sql;
        while let Some((before, param, after)) = next_placeholder(rest) {
            let expected = parts.len() + 1;
            if param != expected || param > values {
                return Err(format!(
                    "the statement has ${param} where ${expected} of {values} belongs"
                ));
            }
            parts.push(before.to_owned());
            rest = after;
        }
        if parts.len() != values {
            return Err(format!(
                "the statement has {} placeholders for {values} values",
                parts.len()
            ));
        }
        parts.push(rest.trim_end().to_owned());
        Ok(Placed { parts })
    }
}

/// Pushes the statement `placed` with `binds`, the values of its placeholders in order.
fn push_statement<'b>(
    mut out: AstPass<'_, 'b, Pg>,
    placed: &'b Result<Placed, String>,
    binds: &[Bind<'b>],
) -> QueryResult<()> {
    let problem = |text: String| diesel::result::Error::QueryBuilderError(text.into());
    let placed = placed.as_ref().map_err(|text| problem(text.clone()))?;
    let Some((last, parts)) = placed.parts.split_last() else {
        return Err(problem("an empty statement".into()));
    };
    if parts.len() != binds.len() {
        return Err(problem(format!(
            "{} values for {} placeholders",
            binds.len(),
            parts.len()
        )));
    }
    for (part, bind) in parts.iter().zip(binds) {
        out.push_sql(part);
        match bind {
            Bind::Int(value) => out.push_bind_param::<BigInt, i64>(value)?,
            Bind::Text(value) => out.push_bind_param::<Text, str>(value)?,
            Bind::At(value) => out.push_bind_param::<Timestamp, NaiveDateTime>(value)?,
            Bind::Ints(value) => out.push_bind_param::<Array<BigInt>, Vec<i64>>(value)?,
            Bind::Texts(value) => out.push_bind_param::<Array<Text>, Vec<String>>(value)?,
        }
    }
    out.push_sql(last);
    Ok(())
}

/// The text before the first placeholder of `sql`, its number and the text after it.
fn next_placeholder(sql: &str) -> Option<(&str, usize, &str)> {
    let bytes = sql.as_bytes();
    let at = (0..bytes.len().saturating_sub(1))
        .find(|&i| bytes[i] == b'$' && bytes[i + 1].is_ascii_digit())?;
    let digits = bytes[at + 1..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let param = sql[at + 1..at + 1 + digits].parse().ok()?;
    Some((&sql[..at], param, &sql[at + 1 + digits..]))
}

impl QueryId for LikeStatement {
    type QueryId = LikeStatement;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for LikeStatement {
    type SqlType = (
        BigInt,
        BigInt,
        BigInt,
        Nullable<BigInt>,
        Nullable<BigInt>,
        diesel::sql_types::Bool,
        Nullable<BigInt>,
        Nullable<BigInt>,
        Nullable<Text>,
        Nullable<BigInt>,
        BigInt,
        diesel::sql_types::Bool,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_bound_once_and_the_kind_is_the_enums() {
        let statement = LikeStatement {
            post: PostId(7),
            liker: UserId(3),
            at: NaiveDateTime::default(),
            text: "bob liked your photo.".into(),
            window_secs: 60,
            actor: "[]".into(),
            push_delay_ms: 500,
            push_ttl_secs: 3600,
        };
        let sql = diesel::debug_query::<Pg, _>(&statement).to_string();
        // like.sql names each value once, in order: diesel numbers the binds the same way.
        assert!(
            sql.ends_with(
                r#"binds: [7, 3, 1970-01-01T00:00:00, "bob liked your photo.", "like", 60, "[]", 500, 3600]"#
            ),
            "{sql}"
        );
        assert_eq!(sql.split(" -- binds").next(), Some(SQL.trim_end()));
    }

    #[test]
    fn placeholders_must_be_each_value_once_in_order() {
        assert!(Placed::new("a $1 b $2", 2).is_ok());
        assert!(Placed::new("a $2 b $1", 2).is_err());
        assert!(Placed::new("a $1 b $1", 2).is_err());
        assert!(Placed::new("a $1", 2).is_err());
        assert!(Placed::new("a $1 b $2 c $3", 2).is_err());
    }

    #[test]
    fn a_placeholder_is_a_dollar_and_digits() {
        assert_eq!(
            next_placeholder("a $12::int8 b"),
            Some(("a ", 12, "::int8 b"))
        );
        assert_eq!(
            next_placeholder("'$[0 to 2]' $3"),
            Some(("'$[0 to 2]' ", 3, ""))
        );
        assert_eq!(next_placeholder("no placeholder $"), None);
    }
}
