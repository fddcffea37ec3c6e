//! The `comments` table: comments on posts, oldest first, and the author's notification.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::counters::BumpCommentCount;
use crate::db::{Db, DbError, DbResult};
use crate::ids::{CommentId, PostId, UserId};
use crate::notifications::{Delivery, Kind, NewNotification};
use crate::schema::{blocks, comments, posts, users};
use crate::users::UserSummaryRow;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = comments, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct CommentRow {
    pub id: CommentId,
    pub post_id: PostId,
    pub author_id: UserId,
    pub text: String,
    pub created_at: NaiveDateTime,
}

/// A comment with its author, as the API renders it.
pub type CommentView = (CommentRow, UserSummaryRow);

/// Adds a comment, bumps the post's comment count and notifies the post's author (unless they
/// commented on their own post), in one transaction.
pub async fn create(
    db: &Db,
    actor: &UserSummaryRow,
    post_id: PostId,
    text: &str,
) -> DbResult<(CommentView, Delivery)> {
    let author = actor.id;
    let policy = db.policy();
    crate::transaction!(db.write(), conn => {
        let post_author: UserId = BumpCommentCount { post: post_id }.get_result(conn).await?;
        // To someone the post's author blocked, the post does not exist.
        let hidden = blocks::table
            .filter(blocks::blocker_id.eq(post_author))
            .filter(blocks::blocked_id.eq(author));
        if diesel::select(diesel::dsl::exists(hidden)).get_result::<bool>(conn).await? {
            return Err(DbError::NotFound);
        }
        let comment: CommentRow = diesel::insert_into(comments::table)
            .values((
                comments::post_id.eq(post_id),
                comments::author_id.eq(author),
                comments::text.eq(text),
                comments::created_at.eq(crate::now_millis()),
            ))
            .returning(CommentRow::as_returning())
            .get_result(conn)
            .await?;
        let mut delivery = Delivery::default();
        if post_author != author {
            let rendered = NewNotification::render(Kind::Comment, actor, Some(text));
            delivery = crate::insert_notification!([.await] conn, NewNotification {
                recipient_id: post_author,
                actor: actor.clone(),
                kind: Kind::Comment,
                post_id: Some(post_id),
                comment_id: Some(comment.id),
                text: rendered,
            }, policy)?.into();
        }
        Ok(((comment, actor.clone()), delivery))
    })
}

/// One page of a post's comments, oldest first, newer than `after`. `NotFound` for no such post.
pub async fn page(
    db: &Db,
    post_id: PostId,
    after: Option<CommentId>,
    limit: i64,
) -> DbResult<Vec<CommentView>> {
    crate::run!(db.read(), conn => {
        posts::table.find(post_id).select(posts::id).first::<PostId>(conn).await?;
        let mut query = comments::table
            .inner_join(users::table)
            .filter(comments::post_id.eq(post_id))
            .select((CommentRow::as_select(), UserSummaryRow::as_select()))
            .order(comments::id.asc())
            .limit(limit)
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(comments::id.gt(after));
        }
        query.load(conn).await.map_err(Into::into)
    })
}
