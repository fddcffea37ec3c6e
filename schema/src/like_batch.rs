//! Many likes on PostgreSQL as one statement: the group commit of the like path. Each like in
//! the batch gets exactly what [`crate::like_statement`] would have given it alone (its own like
//! row, count, marker, notification seq and notification), in one round trip, one executor
//! start and one commit for the whole batch.
//!
//! Why: at a few thousand likes a second, most of PostgreSQL's work per like was the fixed cost
//! of a statement and a commit, not the rows (see load-tests/RESULTS.md, fix 22). The server
//! queues the likes arriving at the same time on one worker and sends them here together.
//!
//! The rules of the one-like statement hold per like:
//! - an existing like changes nothing and returns no counts (the caller reads them in a
//!   statement of its own, for the snapshot reason given in [`crate::like_statement`]);
//! - a missing post is skipped, not a foreign-key failure of the whole batch (the caller finds it
//!   missing when it reads the counts);
//! - counts and seqs are handed out in batch order: the n-th new like of a post in the batch
//!   gets the post's count before the batch plus n, so every like still sees a distinct count;
//! - notification seqs likewise per recipient, and the ordering invariant of
//!   [`crate::notifications`] holds: every recipient is row-locked (by the `UPDATE` whose
//!   `RETURNING` the rows are built from) before any id is drawn, and ids are drawn in seq order.
//!
//! Deadlocks: a batch locks several posts and several users. It takes the posts' locks first, in
//! id order, then the users', in id order (`post_locks`, `user_locks`), the same order a single
//! like takes (post, then user). The like rows' unique index is the one lock taken in batch
//! order; two batches can only meet there over the same (post, user) pair sent twice at once.
//! The caller must not put one pair twice in a batch, and falls back to one statement per like
//! if a batch fails for any reason (deadlock included).

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
use diesel::QueryResult;

use crate::ids::{NotificationId, UserId};
use crate::notifications::Kind;

/// The likes of one batch, column by column (same length each, no (post, liker) pair twice).
#[derive(Debug, Clone, Default)]
pub struct LikeBatchStatement {
    pub posts: Vec<i64>,
    pub likers: Vec<i64>,
    /// `created_at` of each like and of its notification.
    pub ats: Vec<NaiveDateTime>,
    /// Each notification's sentence, rendered by the caller.
    pub texts: Vec<String>,
}

/// One row per like of the batch, in batch order: its 1-based position, then, only if the like
/// is new, the post's like count and like seq as of this like and the post's author, then the
/// notification's id and seq (`NULL` unless one was created).
pub type LikeBatchRow = (
    i64,
    Option<i64>,
    Option<i64>,
    Option<UserId>,
    Option<NotificationId>,
    Option<i64>,
);

const KIND: &str = Kind::Like.as_str();

impl QueryFragment<Pg> for LikeBatchStatement {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH args AS (SELECT a.post, a.liker, a.at, a.text, a.ord FROM unnest(");
        out.push_bind_param::<Array<BigInt>, Vec<i64>>(&self.posts)?;
        out.push_sql("::int8[], ");
        out.push_bind_param::<Array<BigInt>, Vec<i64>>(&self.likers)?;
        out.push_sql("::int8[], ");
        out.push_bind_param::<Array<Timestamp>, Vec<NaiveDateTime>>(&self.ats)?;
        out.push_sql("::timestamp[], ");
        out.push_bind_param::<Array<Text>, Vec<String>>(&self.texts)?;
        out.push_sql(
            "::text[]) WITH ORDINALITY AS a(post, liker, at, text, ord)), \
             liked AS (INSERT INTO likes (post_id, user_id, created_at) \
               SELECT args.post, args.liker, args.at FROM args JOIN posts ON posts.id = args.post \
               ORDER BY args.ord ON CONFLICT DO NOTHING RETURNING post_id, user_id), \
             fresh AS (SELECT args.post, args.liker, args.at, args.text, args.ord, posts.author_id, \
                 row_number() OVER (PARTITION BY args.post ORDER BY args.ord) AS nth_on_post \
               FROM liked JOIN args ON args.post = liked.post_id AND args.liker = liked.user_id \
               JOIN posts ON posts.id = args.post), \
             post_locks AS (SELECT id FROM posts WHERE id IN (SELECT post FROM fresh) \
               ORDER BY id FOR UPDATE), \
             counted AS (UPDATE posts SET like_count = like_count + per_post.n, \
                 like_seq = like_seq + per_post.n \
               FROM (SELECT post, count(*) AS n FROM fresh GROUP BY post) per_post \
               WHERE posts.id = per_post.post AND posts.id IN (SELECT id FROM post_locks) \
               RETURNING posts.id, posts.like_count - per_post.n AS count_before, \
                 posts.like_seq - per_post.n AS seq_before), \
             noticed AS (INSERT INTO like_notices (post_id, user_id) \
               SELECT fresh.post, fresh.liker FROM fresh JOIN counted ON counted.id = fresh.post \
               ORDER BY fresh.ord ON CONFLICT DO NOTHING RETURNING post_id, user_id), \
             to_notify AS (SELECT fresh.post, fresh.liker, fresh.at, fresh.text, fresh.author_id, \
                 row_number() OVER (PARTITION BY fresh.author_id ORDER BY fresh.ord) AS nth \
               FROM noticed JOIN fresh ON fresh.post = noticed.post_id \
                 AND fresh.liker = noticed.user_id \
               WHERE fresh.author_id <> fresh.liker), \
             user_locks AS (SELECT id FROM users WHERE id IN (SELECT author_id FROM to_notify) \
               ORDER BY id FOR UPDATE), \
             sequenced AS (UPDATE users SET notification_seq = notification_seq + per_author.n \
               FROM (SELECT author_id, count(*) AS n FROM to_notify GROUP BY author_id) per_author \
               WHERE users.id = per_author.author_id AND users.id IN (SELECT id FROM user_locks) \
               RETURNING users.id, users.notification_seq - per_author.n AS seq_before), \
             notified AS (INSERT INTO notifications \
                 (recipient_id, seq, actor_id, kind, post_id, text, created_at) \
               SELECT sequenced.id, sequenced.seq_before + to_notify.nth, to_notify.liker, ",
        );
        out.push_bind_param::<Text, str>(KIND)?;
        out.push_sql(
            ", to_notify.post, to_notify.text, to_notify.at \
               FROM to_notify JOIN sequenced ON sequenced.id = to_notify.author_id \
               ORDER BY sequenced.id, to_notify.nth \
               RETURNING id, seq, post_id, actor_id) \
             SELECT args.ord, counted.count_before + fresh.nth_on_post, \
               counted.seq_before + fresh.nth_on_post, fresh.author_id, notified.id, notified.seq \
             FROM args LEFT JOIN fresh ON fresh.ord = args.ord \
               LEFT JOIN counted ON counted.id = fresh.post \
               LEFT JOIN notified ON notified.post_id = args.post AND notified.actor_id = args.liker \
             ORDER BY args.ord",
        );
        Ok(())
    }
}

impl QueryId for LikeBatchStatement {
    type QueryId = LikeBatchStatement;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for LikeBatchStatement {
    type SqlType = (
        BigInt,
        Nullable<BigInt>,
        Nullable<BigInt>,
        Nullable<BigInt>,
        Nullable<BigInt>,
        Nullable<BigInt>,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_binds_four_arrays_and_the_kind_whatever_its_size() {
        let statement = LikeBatchStatement {
            posts: vec![7, 8, 9],
            likers: vec![3, 3, 4],
            ats: vec![NaiveDateTime::default(); 3],
            texts: vec!["a".into(), "b".into(), "c".into()],
        };
        let sql = diesel::debug_query::<Pg, _>(&statement).to_string();
        assert!(sql.contains("unnest($1::int8[], $2::int8[], $3::timestamp[], $4::text[])"), "{sql}");
        assert!(sql.contains("$5") && !sql.contains("$6"), "{sql}");
        assert!(sql.contains(r#""like"]"#), "{sql}");
    }
}
