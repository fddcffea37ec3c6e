//! The hot path's counter bumps as fixed statements the prepared-statement cache keeps.
//!
//! diesel's `update()` builder marks every UPDATE unsafe to cache (its SET list may change from
//! call to call), so each one is parsed and planned again on every call: on PostgreSQL one
//! extra round trip and one extra plan per statement. The counters that likes, comments and
//! follows bump (a post's like and comment counts, a user's notification sequence and follow
//! counts) are written here as fixed SQL with a static query id instead. The text is the same
//! on both backends (SQLite ≥ 3.35 has `RETURNING`); column and table names come from
//! [`crate::schema`], so a renamed column fails to compile rather than at run time.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::BigInt;
use diesel::{Column, QueryResult};

use crate::ids::{PostId, UserId};
use crate::schema::{posts, users};

/// `UPDATE posts SET like_count = like_count + delta, like_seq = like_seq + 1 WHERE id = post
/// RETURNING like_count, like_seq, author_id`.
#[derive(Debug, Clone, Copy)]
pub struct BumpLikeCount {
    pub post: PostId,
    pub delta: i64,
}

/// `UPDATE users SET notification_seq = notification_seq + 1 WHERE id = user RETURNING
/// notification_seq`: allocates the user's next notification `seq` and row-locks the user (see
/// the ordering invariant in [`crate::notifications`]).
#[derive(Debug, Clone, Copy)]
pub struct BumpNotificationSeq {
    pub user: UserId,
}

/// `UPDATE posts SET comment_count = comment_count + 1 WHERE id = post RETURNING author_id`.
#[derive(Debug, Clone, Copy)]
pub struct BumpCommentCount {
    pub post: PostId,
}

/// `UPDATE users SET following_count = following_count + following, follower_count =
/// follower_count + followers WHERE id = user`.
#[derive(Debug, Clone, Copy)]
pub struct BumpFollowCounts {
    pub user: UserId,
    pub following: i64,
    pub followers: i64,
}

/// How a bumped column grows.
enum By<'a> {
    One,
    Amount(&'a i64),
}

/// Writes `UPDATE table SET c = c + by, ... WHERE key = id [RETURNING ...]`, the one shape all
/// the statements here share.
fn write_bump<'b, DB>(
    mut out: AstPass<'_, 'b, DB>,
    table: &'b dyn QueryFragment<DB>,
    sets: &[(&str, By<'b>)],
    (key, id): (&str, &'b i64),
    returning: &[&str],
) -> QueryResult<()>
where
    DB: Backend,
    i64: diesel::serialize::ToSql<BigInt, DB>,
{
    out.push_sql("UPDATE ");
    table.walk_ast(out.reborrow())?;
    for (i, (column, by)) in sets.iter().enumerate() {
        out.push_sql(if i == 0 { " SET " } else { ", " });
        out.push_identifier(column)?;
        out.push_sql(" = ");
        out.push_identifier(column)?;
        out.push_sql(" + ");
        match by {
            By::One => out.push_sql("1"),
            By::Amount(amount) => out.push_bind_param::<BigInt, i64>(amount)?,
        }
    }
    out.push_sql(" WHERE ");
    out.push_identifier(key)?;
    out.push_sql(" = ");
    out.push_bind_param::<BigInt, i64>(id)?;
    for (i, column) in returning.iter().enumerate() {
        out.push_sql(if i == 0 { " RETURNING " } else { ", " });
        out.push_identifier(column)?;
    }
    Ok(())
}

/// Implements `QueryFragment` for a statement by handing its parts to [`write_bump`].
macro_rules! bump_fragment {
    ($name:ident, |$this:ident| $table:expr, $sets:expr, $key:expr, $returning:expr) => {
        impl<DB> QueryFragment<DB> for $name
        where
            DB: Backend,
            i64: diesel::serialize::ToSql<BigInt, DB>,
        {
            fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
                let $this = self;
                write_bump(out, &$table, &$sets, $key, &$returning)
            }
        }
    };
}

bump_fragment!(
    BumpLikeCount,
    |this| posts::table,
    [
        (posts::like_count::NAME, By::Amount(&this.delta)),
        (posts::like_seq::NAME, By::One)
    ],
    (posts::id::NAME, &this.post.0),
    [
        posts::like_count::NAME,
        posts::like_seq::NAME,
        posts::author_id::NAME
    ]
);
bump_fragment!(
    BumpNotificationSeq,
    |this| users::table,
    [(users::notification_seq::NAME, By::One)],
    (users::id::NAME, &this.user.0),
    [users::notification_seq::NAME]
);
bump_fragment!(
    BumpCommentCount,
    |this| posts::table,
    [(posts::comment_count::NAME, By::One)],
    (posts::id::NAME, &this.post.0),
    [posts::author_id::NAME]
);
bump_fragment!(
    BumpFollowCounts,
    |this| users::table,
    [
        (users::following_count::NAME, By::Amount(&this.following)),
        (users::follower_count::NAME, By::Amount(&this.followers)),
    ],
    (users::id::NAME, &this.user.0),
    [] as [&str; 0]
);

macro_rules! fixed_statement {
    ($name:ident) => {
        impl QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        // Plain (blocking) diesel too: `likes::sqlite` runs a like on the connection itself.
        impl<Conn> diesel::query_dsl::RunQueryDsl<Conn> for $name {}
    };
    ($name:ident, $returns:ty) => {
        fixed_statement!($name);

        impl Query for $name {
            type SqlType = $returns;
        }
    };
}

fixed_statement!(BumpLikeCount, (BigInt, BigInt, BigInt));
fixed_statement!(BumpNotificationSeq, BigInt);
fixed_statement!(BumpCommentCount, BigInt);
fixed_statement!(BumpFollowCounts);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_is_what_the_docs_say() {
        let like = diesel::debug_query::<diesel::pg::Pg, _>(&BumpLikeCount {
            post: PostId(7),
            delta: -1,
        })
        .to_string();
        assert!(
            like.starts_with(
                r#"UPDATE "posts" SET "like_count" = "like_count" + $1, "like_seq" = "like_seq" + 1 WHERE "id" = $2 RETURNING "like_count", "like_seq", "author_id""#
            ),
            "{like}"
        );
        let seq = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&BumpNotificationSeq {
            user: UserId(3),
        })
        .to_string();
        assert!(
            seq.starts_with(
                r#"UPDATE `users` SET `notification_seq` = `notification_seq` + 1 WHERE `id` = ? RETURNING `notification_seq`"#
            ),
            "{seq}"
        );
        let follows = diesel::debug_query::<diesel::pg::Pg, _>(&BumpFollowCounts {
            user: UserId(3),
            following: 1,
            followers: 0,
        })
        .to_string();
        assert!(
            follows.starts_with(
                r#"UPDATE "users" SET "following_count" = "following_count" + $1, "follower_count" = "follower_count" + $2 WHERE "id" = $3"#
            ),
            "{follows}"
        );
    }
}
