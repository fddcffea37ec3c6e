//! The `likes` and `like_notices` tables: idempotent likes, and "notify the author once ever".

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use diesel_async::AsyncPgConnection;

use crate::counters::BumpLikeCount;
use crate::db::{Db, DbError, DbResult, Pool};
use crate::ids::{PostId, UserId};
use crate::like_statement::{LikeRow, LikeStatement};
use crate::notifications::{Kind, NewNotification, NotificationRow, NotificationView};
use crate::pipeline::Pipeline;
use crate::schema::{like_notices, likes, posts};
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

/// Likes a post. Idempotent; the author is notified the first time this user ever likes it,
/// never for a self-like. Everything happens atomically: one statement on PostgreSQL
/// ([`LikeStatement`]), one transaction on SQLite. `actor` is the liker as authentication read
/// it (its name goes into the notification).
pub async fn like(db: &Db, actor: &UserSummaryRow, post_id: PostId) -> DbResult<LikeOutcome> {
    match db.write() {
        Pool::Postgres(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            like_in_one_statement(&mut conn, actor, post_id).await
        }
        Pool::Sqlite(_) => like_in_steps(db, actor, post_id).await,
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
        let (like_count, like_seq) = posts::table
            .find(post_id)
            .select((posts::like_count, posts::like_seq))
            .first(conn)
            .await?;
        return Ok(LikeOutcome {
            post_id,
            liked: true,
            like_count,
            like_seq,
            changed: false,
            notification: None,
        });
    };
    let notification = match (notification_id, seq) {
        (Some(id), Some(seq)) => Some((
            NotificationRow {
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
            },
            actor.clone(),
        )),
        _ => None,
    };
    Ok(LikeOutcome {
        post_id,
        liked: true,
        like_count,
        like_seq,
        changed: true,
        notification,
    })
}

/// [`like`] on SQLite: the same writes as [`LikeStatement`], one statement at a time in one
/// transaction (SQLite has no data-modifying `WITH`, and no round trips to save).
async fn like_in_steps(db: &Db, actor: &UserSummaryRow, post_id: PostId) -> DbResult<LikeOutcome> {
    let liker = actor.id;
    crate::transaction!(db.write(), conn => {
        // No read of the post first: a missing post fails the insert's foreign key (NotFound),
        // and the author comes back from the count update. One round trip fewer per like.
        let inserted = diesel::insert_into(likes::table)
            .values((
                likes::post_id.eq(post_id),
                likes::user_id.eq(liker),
                likes::created_at.eq(crate::now_millis()),
            ))
            .on_conflict_do_nothing()
            .returning(likes::post_id)
            .get_result::<PostId>(conn)
            .await
            .optional()?;
        if inserted.is_none() {
            let (like_count, like_seq) = posts::table
                .find(post_id)
                .select((posts::like_count, posts::like_seq))
                .first(conn)
                .await?;
            return Ok(LikeOutcome { post_id, liked: true, like_count, like_seq, changed: false, notification: None });
        }
        // The count and the "notify once ever" marker in one round trip. The marker is written
        // for a self-like too (the author is known only from the count's answer); it is never
        // read for one, since nobody is notified of their own like.
        let notice = diesel::insert_into(like_notices::table)
            .values((like_notices::post_id.eq(post_id), like_notices::user_id.eq(liker)))
            .on_conflict_do_nothing()
            .returning(like_notices::post_id);
        let ((like_count, like_seq, author), first_ever): ((i64, i64, UserId), diesel::QueryResult<PostId>) =
            conn.pipeline(BumpLikeCount { post: post_id, delta: 1 }, notice).await?;
        let mut notification = None;
        if author != liker && first_ever.optional()?.is_some() {
            let text = NewNotification::render(Kind::Like, actor, None);
            notification = Some(crate::insert_notification!(conn, NewNotification {
                recipient_id: author,
                actor: actor.clone(),
                kind: Kind::Like,
                post_id: Some(post_id),
                comment_id: None,
                text,
            })?);
        }
        Ok(LikeOutcome { post_id, liked: true, like_count, like_seq, changed: true, notification })
    })
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
