//! A like on SQLite: the same writes as [`super::postgres`], one statement at a time in
//! one transaction, run as a single job on the connection's blocking thread.
//!
//! diesel-async reaches SQLite through `SyncConnectionWrapper`, which sends every statement to a
//! blocking thread and back. SQLite has one write connection (see [`crate::db`]), so a like
//! written statement by statement held it for seven such hops (BEGIN, five statements,
//! COMMIT) and every other write waited behind them. Run here as plain diesel on the
//! connection itself, a like takes one hop. The rules are those of
//! [`super::like`]; the black-box suite runs against both backends.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use super::outcome::LikeOutcome;
use crate::counters::BumpLikeCount;
use crate::db::{DbError, NotifyPolicy};
use crate::ids::PostId;
use crate::notifications::{Delivery, Kind, NewNotification};
use crate::schema::{blocks, likes, posts};
use crate::users::UserSummaryRow;

/// Likes `post_id` as `actor` in one transaction on `conn` (blocking).
pub(crate) fn like(
    conn: &mut SqliteConnection,
    actor: &UserSummaryRow,
    post_id: PostId,
    policy: NotifyPolicy,
) -> Result<LikeOutcome, DbError> {
    let liker = actor.id;
    conn.transaction::<_, DbError, _>(|conn| {
        let at = crate::now_millis();
        // To someone the post's author blocked, the post does not exist.
        let hidden = posts::table
            .inner_join(blocks::table.on(blocks::blocker_id.eq(posts::author_id)))
            .filter(posts::id.eq(post_id))
            .filter(blocks::blocked_id.eq(liker));
        if diesel::select(diesel::dsl::exists(hidden)).get_result::<bool>(conn)? {
            return Err(DbError::NotFound);
        }
        let Some(first_ever) = added(conn, liker, post_id, at)? else {
            let counts = posts::table
                .find(post_id)
                .select((posts::like_count, posts::like_seq))
                .first(conn)?;
            return Ok(LikeOutcome::already_liked(post_id, counts));
        };
        let (like_count, like_seq, author) = BumpLikeCount {
            post: post_id,
            delta: 1,
        }
        .get_result::<(i64, i64, crate::UserId)>(conn)?;
        let delivery = match (author == liker, first_ever) {
            (true, _) => Delivery::default(),
            (false, true) => {
                let new = NewNotification {
                    recipient_id: author,
                    actor: actor.clone(),
                    kind: Kind::Like,
                    post_id: Some(post_id),
                    comment_id: None,
                    text: NewNotification::render(Kind::Like, actor, None),
                };
                crate::insert_notification!([] conn, new, policy)?.into()
            }
            // Liked before: back in the first like's group, silently.
            (false, false) => {
                crate::group_shift!([] conn, author, Kind::Like, Some(post_id), liker, 1).into()
            }
        };
        Ok(LikeOutcome::added(
            post_id,
            (like_count, like_seq),
            delivery,
        ))
    })
}

/// Adds `liker`'s like of `post_id`: a new row (`Some(true)`, the first like ever), the row of a
/// like taken back marked liked again (`Some(false)`), or `None` if the like is there already.
/// A missing post fails the insert's foreign key (NotFound).
fn added(
    conn: &mut SqliteConnection,
    liker: crate::UserId,
    post_id: PostId,
    at: chrono::NaiveDateTime,
) -> Result<Option<bool>, DbError> {
    let inserted = diesel::insert_into(likes::table)
        .values((
            likes::post_id.eq(post_id),
            likes::user_id.eq(liker),
            likes::created_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    if inserted == 1 {
        return Ok(Some(true));
    }
    let again = diesel::update(
        likes::table
            .filter(likes::post_id.eq(post_id))
            .filter(likes::user_id.eq(liker))
            .filter(likes::unliked.eq(true)),
    )
    .set((
        likes::unliked.eq(false),
        likes::relikes.eq(likes::relikes + 1),
    ))
    .execute(conn)?;
    Ok((again == 1).then_some(false))
}
