//! The `likes` and `like_notices` tables: idempotent likes, and "notify the author once ever".

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::counters::BumpLikeCount;
use crate::db::{Db, DbError, DbResult, Pool};
use crate::ids::{NotificationId, PostId, UserId};
use crate::like_batch::{LikeBatchRow, LikeBatchStatement};
use crate::like_statement::{LikeRow, LikeStatement};
use crate::notifications::{Kind, NewNotification, NotificationRow, NotificationView};
use crate::schema::{likes, posts};
use crate::users::UserSummaryRow;

/// What a like or unlike did.
#[derive(Debug, Clone)]
pub struct LikeOutcome {
    pub post_id: PostId,
    pub liked: bool,
    pub like_count: i64,
    /// Monotonic per post; orders like-count updates that may arrive out of order.
    pub like_seq: i64,
    /// Whether this call changed anything (a repeated like or unlike does not).
    pub changed: bool,
    /// The notification this like committed, if it was the liker's first like of the post.
    pub notification: Option<NotificationView>,
}

impl LikeOutcome {
    /// A new like: the post's count and seq after it, and the notification it committed, if any.
    pub(crate) fn added(
        post_id: PostId,
        (like_count, like_seq): (i64, i64),
        notification: Option<NotificationView>,
    ) -> Self {
        LikeOutcome {
            post_id,
            liked: true,
            like_count,
            like_seq,
            changed: true,
            notification,
        }
    }

    /// A like that was already there: nothing changed, nobody is notified.
    pub(crate) fn already_liked(post_id: PostId, (like_count, like_seq): (i64, i64)) -> Self {
        LikeOutcome {
            post_id,
            liked: true,
            like_count,
            like_seq,
            changed: false,
            notification: None,
        }
    }
}

/// Likes a post. Idempotent; the author is notified the first time this user ever likes it,
/// never for a self-like. Everything happens atomically: one statement on PostgreSQL
/// ([`LikeStatement`]), one transaction in one blocking job on SQLite
/// ([`crate::like_sqlite`]). `actor` is the liker as authentication read
/// it (its name goes into the notification).
pub async fn like(db: &Db, actor: &UserSummaryRow, post_id: PostId) -> DbResult<LikeOutcome> {
    match db.write() {
        Pool::Postgres(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            like_in_one_statement(&mut conn, actor, post_id).await
        }
        Pool::Sqlite(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            let actor = actor.clone();
            conn.spawn_blocking(move |conn| Ok(crate::like_sqlite::like(conn, &actor, post_id)))
                .await
                .map_err(DbError::from)?
        }
    }
}

/// [`like`] on PostgreSQL: one round trip.
async fn like_in_one_statement(
    conn: &mut AsyncPgConnection,
    actor: &UserSummaryRow,
    post_id: PostId,
) -> DbResult<LikeOutcome> {
    let statement = LikeStatement {
        post: post_id,
        liker: actor.id,
        at: crate::now_millis(),
        text: NewNotification::render(Kind::Like, actor, None),
    };
    let (at, text) = (statement.at, statement.text.clone());
    let Some((like_count, like_seq, author, notification_id, seq)) =
        statement.get_result::<LikeRow>(conn).await.optional()?
    else {
        // Already liked. A statement of its own, so that it sees a concurrent like of the same
        // pair that the insert waited for (see `LikeStatement`).
        let counts = posts::table
            .find(post_id)
            .select((posts::like_count, posts::like_seq))
            .first(conn)
            .await?;
        return Ok(LikeOutcome::already_liked(post_id, counts));
    };
    let notified = notification_id.zip(seq);
    let notification = notified.map(|notified| notice(actor, post_id, author, at, text, notified));
    Ok(LikeOutcome::added(
        post_id,
        (like_count, like_seq),
        notification,
    ))
}

/// The notification a new like committed, as the statements return it: its author got
/// `notified` = (id, seq).
fn notice(
    actor: &UserSummaryRow,
    post_id: PostId,
    author: UserId,
    at: NaiveDateTime,
    text: String,
    (id, seq): (NotificationId, i64),
) -> NotificationView {
    let row = NotificationRow {
        id,
        recipient_id: author,
        seq,
        actor_id: actor.id,
        kind: Kind::Like.as_str().to_owned(),
        post_id: Some(post_id),
        comment_id: None,
        text,
        created_at: at,
        read: false,
    };
    (row, actor.clone())
}

/// Likes many posts at once, each `(actor, post)` exactly as [`like`] would alone: one result
/// per entry, in order. This is the like path's group commit (see [`crate::like_batch`]).
///
/// - PostgreSQL: one [`LikeBatchStatement`] for the batch, then one read of the counts for the
///   likes that were already there (or whose post is missing: `NotFound`). Should the batch
///   statement fail (a deadlock with a concurrent batch, a post deleted meanwhile), every like
///   runs alone, so one bad like never fails the others.
/// - SQLite: the likes one after another in one blocking job, each its own transaction.
/// - A pair given twice runs alone after the batch (it finds its like already there).
pub async fn like_many(db: &Db, batch: &[(UserSummaryRow, PostId)]) -> Vec<DbResult<LikeOutcome>> {
    match db.write() {
        Pool::Postgres(pool) => match pool.get().await {
            Ok(mut conn) => like_many_on_postgres(&mut conn, batch).await,
            Err(error) => unavailable(batch.len(), &error.to_string()),
        },
        Pool::Sqlite(pool) => {
            let mut conn = match pool.get().await {
                Ok(conn) => conn,
                Err(error) => return unavailable(batch.len(), &error.to_string()),
            };
            let owned = batch.to_vec();
            let job = conn.spawn_blocking(move |conn| {
                Ok(owned
                    .iter()
                    .map(|(actor, post)| crate::like_sqlite::like(conn, actor, *post))
                    .collect::<Vec<_>>())
            });
            match job.await {
                Ok(results) => results,
                Err(error) => unavailable(batch.len(), &error.to_string()),
            }
        }
    }
}

fn unavailable(count: usize, why: &str) -> Vec<DbResult<LikeOutcome>> {
    (0..count)
        .map(|_| Err(DbError::Unavailable(why.to_owned())))
        .collect()
}

/// [`like_many`] on PostgreSQL.
async fn like_many_on_postgres(
    conn: &mut AsyncPgConnection,
    batch: &[(UserSummaryRow, PostId)],
) -> Vec<DbResult<LikeOutcome>> {
    let mut seen = HashSet::with_capacity(batch.len());
    let (firsts, repeats): (Vec<usize>, Vec<usize>) =
        (0..batch.len()).partition(|&i| seen.insert((batch[i].1, batch[i].0.id)));
    let mut results: Vec<Option<DbResult<LikeOutcome>>> = (0..batch.len()).map(|_| None).collect();
    let firsts_batch: Vec<&(UserSummaryRow, PostId)> = firsts.iter().map(|&i| &batch[i]).collect();
    let batched = match firsts_batch.len() {
        0 | 1 => None,
        n => match batch_statement(conn, &firsts_batch).await {
            Ok(outcomes) => Some(outcomes),
            Err(error) => {
                tracing::warn!(%error, likes = n, "like batch failed; each like runs alone");
                None
            }
        },
    };
    match batched {
        Some(outcomes) => {
            for (&i, outcome) in firsts.iter().zip(outcomes) {
                results[i] = Some(outcome);
            }
        }
        None => {
            for &i in &firsts {
                let (actor, post) = &batch[i];
                results[i] = Some(like_in_one_statement(conn, actor, *post).await);
            }
        }
    }
    for &i in &repeats {
        let (actor, post) = &batch[i];
        results[i] = Some(like_in_one_statement(conn, actor, *post).await);
    }
    results
        .into_iter()
        .map(|result| result.unwrap_or(Err(DbError::NotFound)))
        .collect()
}

/// Runs one [`LikeBatchStatement`] for `batch` (no pair twice), then reads the counts of the
/// likes it found already there. `Err` only if the statement itself failed.
async fn batch_statement(
    conn: &mut AsyncPgConnection,
    batch: &[&(UserSummaryRow, PostId)],
) -> DbResult<Vec<DbResult<LikeOutcome>>> {
    let at = crate::now_millis();
    let statement = LikeBatchStatement {
        posts: batch.iter().map(|(_, post)| post.0).collect(),
        likers: batch.iter().map(|(actor, _)| actor.id.0).collect(),
        ats: vec![at; batch.len()],
        texts: batch
            .iter()
            .map(|(actor, _)| NewNotification::render(Kind::Like, actor, None))
            .collect(),
    };
    let rows: Vec<LikeBatchRow> = statement.clone().get_results(conn).await?;
    if rows.len() != batch.len() {
        return Err(DbError::Unavailable(format!(
            "the like batch returned {} rows for {} likes",
            rows.len(),
            batch.len()
        )));
    }
    // Likes that were already there (or whose post is missing): their counts in one read.
    let unchanged: Vec<PostId> = rows
        .iter()
        .zip(batch)
        .filter(|(row, _)| row.1.is_none())
        .map(|(_, (_, post))| *post)
        .collect();
    let counts: HashMap<PostId, (i64, i64)> = if unchanged.is_empty() {
        HashMap::new()
    } else {
        posts::table
            .filter(posts::id.eq_any(&unchanged))
            .select((posts::id, (posts::like_count, posts::like_seq)))
            .load::<(PostId, (i64, i64))>(conn)
            .await?
            .into_iter()
            .collect()
    };
    let outcomes = rows
        .into_iter()
        .zip(batch)
        .zip(statement.texts)
        .map(|((row, (actor, post)), text)| {
            let (_, count, seq, author, notification_id, notification_seq) = row;
            match (count, seq, author) {
                (Some(count), Some(seq), Some(author)) => {
                    let notified = notification_id.zip(notification_seq);
                    let notification =
                        notified.map(|notified| notice(actor, *post, author, at, text, notified));
                    Ok(LikeOutcome::added(*post, (count, seq), notification))
                }
                _ => counts
                    .get(post)
                    .map(|&counts| LikeOutcome::already_liked(*post, counts))
                    .ok_or(DbError::NotFound),
            }
        })
        .collect();
    Ok(outcomes)
}

/// Removes a like. Idempotent; notifies nobody.
pub async fn unlike(db: &Db, liker: UserId, post_id: PostId) -> DbResult<LikeOutcome> {
    crate::transaction!(db.write(), conn => {
        posts::table.find(post_id).select(posts::id).first::<PostId>(conn).await?;
        let removed = diesel::delete(
            likes::table.filter(likes::post_id.eq(post_id)).filter(likes::user_id.eq(liker)),
        )
        .execute(conn)
        .await?;
        let (like_count, like_seq) = if removed > 0 {
            let (count, seq, _author): (i64, i64, UserId) =
                BumpLikeCount { post: post_id, delta: -1 }.get_result(conn).await?;
            (count, seq)
        } else {
            posts::table.find(post_id).select((posts::like_count, posts::like_seq)).first(conn).await?
        };
        Ok(LikeOutcome { post_id, liked: false, like_count, like_seq, changed: removed > 0, notification: None })
    })
}
