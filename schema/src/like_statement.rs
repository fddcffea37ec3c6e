//! A like on PostgreSQL as one statement: the like row, the post's count, the "notified once
//! ever" marker, the recipient's notification sequence and the notification itself, written by
//! a single `WITH` statement in one round trip.
//!
//! The like is the hottest write Pulse has. Run as separate statements (BEGIN, the like row, two
//! pipelined pairs, COMMIT) it cost PostgreSQL five round trips and five executor starts; as
//! one statement, one of each. pgbench on a 2-core machine, same data, 8 clients: 1,089-1,354
//! transactions/s for the statements one by one, 1,681-2,127 for this statement (see
//! load-tests/RESULTS.md, fix 18). SQLite has no data-modifying `WITH`; there
//! [`crate::like_sqlite`] runs the same writes one by one in a transaction (in-process, so
//! no round trips to save), and the black-box suite checks both give the same answers.
//!
//! The statement keeps every rule of the step-by-step version:
//! - an existing like changes nothing (`liked` is empty, so is everything that reads it);
//! - a missing post fails the like row's foreign key (`NotFound`);
//! - the marker is written for a self-like too, and nobody is notified of their own like;
//! - the ordering invariant of [`crate::notifications`]: the notification's row is built from
//!   the `RETURNING` of the recipient's `UPDATE`, so the recipient is row-locked before the
//!   insert draws its id from the sequence.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel::QueryResult;

use crate::ids::{NotificationId, PostId, UserId};
use crate::notifications::Kind;

/// The one statement of a like. Its row, present only if the like is new: the post's like
/// count and like seq after the statement, the post's author, then the notification's id and
/// seq (`NULL` unless one was created).
///
/// An existing like returns no row, not the post's count: the statement's snapshot is taken
/// before it waits on a concurrent insert of the same like, so the count it could read may
/// not include that like yet. The caller reads the count in a statement of its own.
#[derive(Debug, Clone)]
pub struct LikeStatement {
    pub post: PostId,
    pub liker: UserId,
    /// `created_at` of the like and of the notification.
    pub at: NaiveDateTime,
    /// The notification's sentence, rendered by the caller.
    pub text: String,
}

/// What [`LikeStatement`] returns, column for column.
pub type LikeRow = (i64, i64, UserId, Option<NotificationId>, Option<i64>);

const KIND: &str = Kind::Like.as_str();

impl QueryFragment<Pg> for LikeStatement {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH args AS (SELECT ");
        out.push_bind_param::<BigInt, i64>(&self.post.0)?;
        out.push_sql("::int8 AS post, ");
        out.push_bind_param::<BigInt, i64>(&self.liker.0)?;
        out.push_sql("::int8 AS liker, ");
        out.push_bind_param::<Timestamp, NaiveDateTime>(&self.at)?;
        out.push_sql("::timestamp AS at, ");
        out.push_bind_param::<Text, str>(&self.text)?;
        out.push_sql("::text AS text, ");
        out.push_bind_param::<Text, str>(KIND)?;
        out.push_sql(
            "::text AS kind), \
             liked AS (INSERT INTO likes (post_id, user_id, created_at) \
               SELECT post, liker, at FROM args ON CONFLICT DO NOTHING RETURNING post_id), \
             counted AS (UPDATE posts SET like_count = like_count + 1, like_seq = like_seq + 1 \
               WHERE id = (SELECT post_id FROM liked) RETURNING like_count, like_seq, author_id), \
             noticed AS (INSERT INTO like_notices (post_id, user_id) \
               SELECT post, liker FROM args, counted ON CONFLICT DO NOTHING RETURNING post_id), \
             sequenced AS (UPDATE users SET notification_seq = notification_seq + 1 \
               WHERE id = (SELECT author_id FROM counted, args WHERE author_id <> liker) \
                 AND EXISTS (SELECT 1 FROM noticed) \
               RETURNING id, notification_seq), \
             notified AS (INSERT INTO notifications \
                 (recipient_id, seq, actor_id, kind, post_id, text, created_at) \
               SELECT sequenced.id, sequenced.notification_seq, liker, kind, post, text, at \
               FROM sequenced, args RETURNING id, seq) \
             SELECT counted.like_count, counted.like_seq, counted.author_id, notified.id, \
               notified.seq \
             FROM counted LEFT JOIN notified ON true",
        );
        Ok(())
    }
}

impl QueryId for LikeStatement {
    type QueryId = LikeStatement;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for LikeStatement {
    type SqlType = (BigInt, BigInt, BigInt, Nullable<BigInt>, Nullable<BigInt>);
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
        };
        let sql = diesel::debug_query::<Pg, _>(&statement).to_string();
        assert!(sql.starts_with("WITH args AS (SELECT $1::int8 AS post, $2::int8 AS liker, $3::timestamp AS at, $4::text AS text, $5::text AS kind)"), "{sql}");
        assert!(!sql.contains("$6"), "{sql}");
        assert!(
            sql.ends_with(r#"binds: [7, 3, 1970-01-01T00:00:00, "bob liked your photo.", "like"]"#),
            "{sql}"
        );
    }
}
