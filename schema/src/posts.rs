//! The `posts` table: photos with captions, their counters, feeds and author pages.

use std::collections::HashSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{Db, DbError, DbResult};
use crate::groups::GroupRow;
use crate::ids::{GroupId, PostId, UserId};
use crate::schema::{follows, likes, notifications, posts, users};
use crate::users::UserSummaryRow;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = posts, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct PostRow {
    pub id: PostId,
    pub author_id: UserId,
    pub caption: String,
    pub media_key: String,
    pub width: i32,
    pub height: i32,
    pub created_at: NaiveDateTime,
    pub like_count: i64,
    pub comment_count: i64,
    /// `None` for posts stored before thumbnails existed.
    pub thumbnail_key: Option<String>,
}

/// A post with its author, as the API renders it.
pub type PostView = (PostRow, UserSummaryRow);

#[derive(Debug, Insertable)]
#[diesel(table_name = posts)]
pub struct NewPost<'a> {
    pub author_id: UserId,
    pub caption: &'a str,
    pub media_key: &'a str,
    pub thumbnail_key: Option<&'a str>,
    pub width: i32,
    pub height: i32,
    pub created_at: NaiveDateTime,
}

/// Creates a post and bumps the author's post count, in one transaction.
pub async fn create(db: &Db, new_post: &NewPost<'_>) -> DbResult<PostView> {
    crate::transaction!(db.write(), conn => {
        let author: UserSummaryRow = diesel::update(users::table.find(new_post.author_id))
            .set(users::post_count.eq(users::post_count + 1))
            .returning(UserSummaryRow::as_returning())
            .get_result(conn)
            .await?;
        let post: PostRow = diesel::insert_into(posts::table)
            .values(new_post)
            .returning(PostRow::as_returning())
            .get_result(conn)
            .await?;
        Ok((post, author))
    })
}

pub async fn find(db: &Db, id: PostId) -> DbResult<PostView> {
    crate::run!(db.read(), conn => {
        posts::table
            .inner_join(users::table)
            .filter(posts::id.eq(id))
            .select((PostRow::as_select(), UserSummaryRow::as_select()))
            .first(conn)
            .await
            .map_err(Into::into)
    })
}

/// The author of a post (`NotFound` if there is no such post). A post's author never changes.
pub async fn author(db: &Db, id: PostId) -> DbResult<UserId> {
    crate::run!(db.read(), conn => {
        posts::table
            .find(id)
            .select(posts::author_id)
            .first(conn)
            .await
            .map_err(Into::into)
    })
}

/// Deletes a post (its comments go with it by cascade, its likes (taken back ones too) and
/// notifications are deleted here, its groups are marked removed) if `requester` wrote it:
/// `NotFound` if there is no such post, `Forbidden` if someone else wrote it. Returns the
/// removed groups.
///
/// The tables a like writes have no foreign keys on PostgreSQL (see the migration
/// `hot_writes_without_foreign_keys`). The post's row goes first: its delete waits for any like
/// that holds the row, and the deletes after it, each with a snapshot of its own, then see that
/// like's rows. A like that starts later finds no post to count (see [`crate::likes`]).
pub async fn delete(db: &Db, id: PostId, requester: UserId) -> DbResult<Vec<GroupRow>> {
    crate::transaction!(db.write(), conn => {
        let author: UserId = posts::table.find(id).select(posts::author_id).first(conn).await?;
        if author != requester {
            return Err(DbError::Forbidden);
        }
        diesel::delete(posts::table.find(id)).execute(conn).await?;
        diesel::delete(likes::table.filter(likes::post_id.eq(id))).execute(conn).await?;
        // Every notification about a post is addressed to its author (likes and comments).
        diesel::delete(
            notifications::table
                .filter(notifications::recipient_id.eq(author))
                .filter(notifications::post_id.eq(id)),
        )
        .execute(conn)
        .await?;
        diesel::update(users::table.find(author))
            .set(users::post_count.eq(users::post_count - 1))
            .execute(conn)
            .await?;
        use crate::schema::notification_groups as g;
        let gone: Vec<GroupId> = g::table
            .filter(g::recipient_id.eq(author))
            .filter(g::post_id.eq(id))
            .filter(g::removed.eq(false))
            .select(g::id)
            .order(g::id.asc())
            .load(conn)
            .await?;
        let mut removed = Vec::with_capacity(gone.len());
        for group in gone {
            let version = crate::group_version!([.await] conn, author);
            let row: GroupRow = diesel::update(g::table.find(group))
                .set((
                    g::removed.eq(true),
                    g::open.eq(false),
                    g::actor_count.eq(0i64),
                    g::actors.eq("[]"),
                    g::version.eq(version),
                    g::updated_at.eq(crate::now_millis()),
                ))
                .returning(GroupRow::as_returning())
                .get_result(conn)
                .await?;
            removed.push(row);
        }
        Ok(removed)
    })
}

/// Posts by the people `viewer` follows and by `viewer`, newest first, older than `before`.
pub async fn feed(
    db: &Db,
    viewer: UserId,
    before: Option<PostId>,
    limit: i64,
) -> DbResult<Vec<PostView>> {
    crate::run!(db.read(), conn => {
        let followed = follows::table
            .filter(follows::follower_id.eq(viewer))
            .select(follows::followee_id);
        let mut query = posts::table
            .inner_join(users::table)
            .filter(posts::author_id.eq_any(followed).or(posts::author_id.eq(viewer)))
            .select((PostRow::as_select(), UserSummaryRow::as_select()))
            .order(posts::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(posts::id.lt(before));
        }
        query.load(conn).await.map_err(Into::into)
    })
}

/// One author's posts, newest first, older than `before`.
pub async fn by_author(
    db: &Db,
    author: UserId,
    before: Option<PostId>,
    limit: i64,
) -> DbResult<Vec<PostView>> {
    crate::run!(db.read(), conn => {
        let mut query = posts::table
            .inner_join(users::table)
            .filter(posts::author_id.eq(author))
            .select((PostRow::as_select(), UserSummaryRow::as_select()))
            .order(posts::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(posts::id.lt(before));
        }
        query.load(conn).await.map_err(Into::into)
    })
}

/// Which of `post_ids` the viewer has liked.
pub async fn liked_by(db: &Db, viewer: UserId, post_ids: &[PostId]) -> DbResult<HashSet<PostId>> {
    if post_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let liked: Vec<PostId> = crate::run!(db.read(), conn => {
        likes::table
            .filter(likes::user_id.eq(viewer))
            .filter(likes::post_id.eq_any(post_ids))
            .filter(likes::unliked.eq(false))
            .select(likes::post_id)
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    Ok(liked.into_iter().collect())
}
