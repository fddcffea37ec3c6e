//! The `likes` and `like_notices` tables: idempotent likes, and "notify the author once ever".

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use diesel_async::AsyncPgConnection;

use crate::counters::BumpLikeCount;
use crate::db::{Db, DbError, DbResult, Pool};
use crate::ids::{PostId, UserId};
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
    Ok(LikeOutcome::added(
        post_id,
        (like_count, like_seq),
        notification,
    ))
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
