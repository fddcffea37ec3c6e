//! The `likes` table: idempotent likes, and "notify the author once ever".
//!
//! A like taken back keeps its row, marked `unliked`: the row is what says the author was told
//! of the pair's first like, so a like again notifies nobody and the liker rejoins the first
//! like's group. A like inserts the row (a first like) or marks it liked again, counting the
//! likes again in `relikes`, which is how PostgreSQL's one upsert tells the two apart.
//!
//! The like is the one write with a path per backend: [`postgres`] runs it as one statement
//! (`like.sql`, a call of the function `pulse_like`), [`sqlite`] as the same writes one by one
//! on the connection's thread. Both answer with [`LikeOutcome`]; the black-box suite runs
//! against both.

mod outcome;
mod postgres;
mod sqlite;

pub use outcome::LikeOutcome;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::counters::BumpLikeCount;
use crate::db::{Db, DbError, DbResult, Pool};
use crate::ids::{PostId, UserId};
use crate::notifications::{Delivery, Kind};
use crate::schema::{blocks, likes, posts};
use crate::users::UserSummaryRow;

/// How many times a like that PostgreSQL chose as a deadlock's victim is written in all.
const DEADLOCK_ATTEMPTS: usize = 3;

/// Likes a post. Idempotent; the author is notified the first time this user ever likes it,
/// never for a self-like. Everything happens atomically: one statement on PostgreSQL
/// ([`postgres`]), one transaction in one blocking job on SQLite
/// ([`sqlite`]). `actor` is the liker as authentication read
/// it (its name goes into the notification).
///
/// A like of a pair that is being liked at the same moment in likes written together
/// elsewhere can deadlock with them (each waits for the other's like row or post row);
/// PostgreSQL then rolls one back, and a like rolled back that way is written again, up to
/// `DEADLOCK_ATTEMPTS` times in all.
pub async fn like(db: &Db, actor: &UserSummaryRow, post_id: PostId) -> DbResult<LikeOutcome> {
    retrying_deadlocks(|| like_once(db, actor, post_id)).await
}

/// [`like`], written once.
async fn like_once(db: &Db, actor: &UserSummaryRow, post_id: PostId) -> DbResult<LikeOutcome> {
    match db.write() {
        Pool::Postgres(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            postgres::like(&mut conn, actor, post_id, db.policy()).await
        }
        Pool::Sqlite(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            let (actor, policy) = (actor.clone(), db.policy());
            conn.spawn_blocking(move |conn| Ok(sqlite::like(conn, &actor, post_id, policy)))
                .await
                .map_err(DbError::from)?
        }
    }
}

/// Readies every connection of `db`'s own PostgreSQL pool for likes: opens them all, and on
/// each plans the like's statements, so that no like waits for a connection to be opened or
/// its statement to be planned (10-70 ms each on a busy 2-core machine, where it stalled every
/// like behind it: load-tests/RESULTS.md, "Frames sent without waiting for ACKs; connections
/// readied").
/// Nothing on SQLite.
pub async fn warm(db: &Db) -> DbResult<()> {
    let Pool::Postgres(pool) = db.write() else {
        return Ok(());
    };
    let mut connections = Vec::with_capacity(pool.status().max_size);
    for _ in 0..pool.status().max_size {
        connections.push(pool.get().await.map_err(DbError::from)?);
    }
    for (place, conn) in connections.iter_mut().enumerate() {
        postgres::warm(conn, place, db.policy()).await?;
    }
    Ok(())
}

/// Writes each `(liker, post)` like in order, each answered as [`like`] answers it.
///
/// On PostgreSQL they are one statement, in one transaction with one commit
/// ([`postgres::like_together`]): the posts', their author's and their groups' rows, which each
/// like holds until its commit, are then written and held once for all of them. Should that
/// transaction fail (a deadlock, say), each like is written again alone, so that a like fails
/// only on its own account. On SQLite each is
/// written alone: its one writer takes them in turn anyway.
pub async fn like_together(
    db: &Db,
    likes: &[(UserSummaryRow, PostId)],
) -> Vec<DbResult<LikeOutcome>> {
    if let (Pool::Postgres(pool), true) = (db.write(), likes.len() > 1) {
        let together = match pool.get().await {
            Ok(mut conn) => postgres::like_together(&mut conn, likes, db.policy()).await,
            Err(error) => Err(DbError::from(error)),
        };
        return after_together(db, likes, together).await;
    }
    each_alone(db, likes).await
}

/// [`like_together`] for likes of `post` that `take` hands over, on PostgreSQL only once the
/// post's row is held by the transaction that writes them: likes that arrive while the batch
/// waits for the row (held by another instance's batch) join it. Answers the likes taken,
/// each with its outcome as [`like`] answers it. On SQLite, `take` is called at once.
pub async fn like_together_when_locked(
    db: &Db,
    post: PostId,
    take: impl FnOnce() -> Vec<(UserSummaryRow, PostId)> + Send,
) -> (Vec<(UserSummaryRow, PostId)>, Vec<DbResult<LikeOutcome>>) {
    let conn = match db.write() {
        Pool::Postgres(pool) => pool.get().await.ok(),
        Pool::Sqlite(_) => None,
    };
    let Some(mut conn) = conn else {
        let likes = take();
        let outcomes = like_together(db, &likes).await;
        return (likes, outcomes);
    };
    let (likes, together) =
        postgres::like_together_locked(&mut conn, post, take, db.policy()).await;
    drop(conn);
    let outcomes = after_together(db, &likes, together).await;
    (likes, outcomes)
}

/// The outcomes of likes written together, or if that failed, of each written alone (so that
/// a like fails only on its own account); with the database unavailable, that for each.
async fn after_together(
    db: &Db,
    likes: &[(UserSummaryRow, PostId)],
    together: DbResult<Vec<DbResult<LikeOutcome>>>,
) -> Vec<DbResult<LikeOutcome>> {
    match together {
        Ok(outcomes) => outcomes,
        Err(DbError::Unavailable(why)) => likes
            .iter()
            .map(|_| Err(DbError::Unavailable(why.clone())))
            .collect(),
        Err(_) => each_alone(db, likes).await,
    }
}

/// Each like written by [`like`], in order.
async fn each_alone(db: &Db, likes: &[(UserSummaryRow, PostId)]) -> Vec<DbResult<LikeOutcome>> {
    let mut outcomes = Vec::with_capacity(likes.len());
    for (actor, post_id) in likes {
        outcomes.push(like(db, actor, *post_id).await);
    }
    outcomes
}

/// Removes a like, taking the liker out of their notification's group. Idempotent; notifies
/// nobody. Written again if PostgreSQL rolls it back to break a deadlock, as [`like`] is.
pub async fn unlike(db: &Db, liker: UserId, post_id: PostId) -> DbResult<LikeOutcome> {
    retrying_deadlocks(|| unlike_once(db, liker, post_id)).await
}

/// Runs `write` until it is not a deadlock's victim, `DEADLOCK_ATTEMPTS` times at most.
async fn retrying_deadlocks<T, F>(mut write: impl FnMut() -> F) -> DbResult<T>
where
    F: std::future::Future<Output = DbResult<T>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(DbError::Deadlock) if attempt < DEADLOCK_ATTEMPTS => attempt += 1,
            outcome => return outcome,
        }
    }
}

/// [`unlike`], written once.
async fn unlike_once(db: &Db, liker: UserId, post_id: PostId) -> DbResult<LikeOutcome> {
    crate::transaction!(db.write(), conn => {
        let author = posts::table.find(post_id).select(posts::author_id).first::<UserId>(conn).await?;
        let hidden = blocks::table.filter(blocks::blocker_id.eq(author)).filter(blocks::blocked_id.eq(liker));
        if diesel::select(diesel::dsl::exists(hidden)).get_result::<bool>(conn).await? {
            return Err(DbError::NotFound);
        }
        let mine = likes::table.filter(likes::post_id.eq(post_id)).filter(likes::user_id.eq(liker));
        let removed = diesel::update(mine.filter(likes::unliked.eq(false)))
            .set(likes::unliked.eq(true))
            .execute(conn)
            .await?;
        if removed == 0 {
            let (like_count, like_seq) = posts::table.find(post_id).select((posts::like_count, posts::like_seq)).first(conn).await?;
            return Ok(LikeOutcome { post_id, liked: false, like_count, like_seq, changed: false, delivery: Delivery::default() });
        }
        let (like_count, like_seq, author): (i64, i64, UserId) =
            BumpLikeCount { post: post_id, delta: -1 }.get_result(conn).await?;
        let group = if author == liker {
            None
        } else {
            crate::group_shift!([.await] conn, author, Kind::Like, Some(post_id), liker, -1)
        };
        Ok(LikeOutcome { post_id, liked: false, like_count, like_seq, changed: true, delivery: Delivery::from(group) })
    })
}
