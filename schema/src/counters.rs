//! The hot path's counter bumps as fixed statements the prepared-statement cache keeps.
//!
//! diesel's `update()` builder marks every UPDATE unsafe to cache (its SET list may change from
//! call to call), so each one is parsed and planned again on every call: on PostgreSQL one
//! extra round trip and one extra plan per statement. The counters that likes, comments and
//! follows bump (a post's like and comment counts, a user's notification sequence and follow
//! counts) are written here as fixed SQL with a static query id instead. The text is the same on both backends (SQLite ≥ 3.35
//! has `RETURNING`); column and table names come from [`crate::schema`], so a renamed column
//! fails to compile rather than at run time.

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

impl<DB> QueryFragment<DB> for BumpLikeCount
where
    DB: Backend,
    i64: diesel::serialize::ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        posts::table.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        increment(&mut out, posts::like_count::NAME)?;
        out.push_sql(" + ");
        out.push_bind_param::<BigInt, i64>(&self.delta)?;
        out.push_sql(", ");
        increment(&mut out, posts::like_seq::NAME)?;
        out.push_sql(" + 1 WHERE ");
        out.push_identifier(posts::id::NAME)?;
        out.push_sql(" = ");
        out.push_bind_param::<BigInt, i64>(&self.post.0)?;
        out.push_sql(" RETURNING ");
        out.push_identifier(posts::like_count::NAME)?;
        out.push_sql(", ");
        out.push_identifier(posts::like_seq::NAME)?;
        out.push_sql(", ");
        out.push_identifier(posts::author_id::NAME)
    }
}

impl<DB> QueryFragment<DB> for BumpNotificationSeq
where
    DB: Backend,
    i64: diesel::serialize::ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        users::table.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        increment(&mut out, users::notification_seq::NAME)?;
        out.push_sql(" + 1 WHERE ");
        out.push_identifier(users::id::NAME)?;
        out.push_sql(" = ");
        out.push_bind_param::<BigInt, i64>(&self.user.0)?;
        out.push_sql(" RETURNING ");
        out.push_identifier(users::notification_seq::NAME)
    }
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

impl<DB> QueryFragment<DB> for BumpCommentCount
where
    DB: Backend,
    i64: diesel::serialize::ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        posts::table.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        increment(&mut out, posts::comment_count::NAME)?;
        out.push_sql(" + 1 WHERE ");
        out.push_identifier(posts::id::NAME)?;
        out.push_sql(" = ");
        out.push_bind_param::<BigInt, i64>(&self.post.0)?;
        out.push_sql(" RETURNING ");
        out.push_identifier(posts::author_id::NAME)
    }
}

impl<DB> QueryFragment<DB> for BumpFollowCounts
where
    DB: Backend,
    i64: diesel::serialize::ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        users::table.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        increment(&mut out, users::following_count::NAME)?;
        out.push_sql(" + ");
        out.push_bind_param::<BigInt, i64>(&self.following)?;
        out.push_sql(", ");
        increment(&mut out, users::follower_count::NAME)?;
        out.push_sql(" + ");
        out.push_bind_param::<BigInt, i64>(&self.followers)?;
        out.push_sql(" WHERE ");
        out.push_identifier(users::id::NAME)?;
        out.push_sql(" = ");
        out.push_bind_param::<BigInt, i64>(&self.user.0)
    }
}

/// Writes `"column" = "column"`; the caller appends the `+ …`.
fn increment<DB: Backend>(out: &mut AstPass<'_, '_, DB>, column: &str) -> QueryResult<()> {
    out.push_identifier(column)?;
    out.push_sql(" = ");
    out.push_identifier(column)
}

macro_rules! fixed_statement {
    ($name:ident) => {
        impl QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
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
