//! Wire types: the JSON the API answers with, built from database rows. Field names and shapes
//! follow `docs/API.md`; timestamps are RFC 3339 UTC with milliseconds.

use chrono::{NaiveDateTime, SecondsFormat};
use pulse_schema::blocks::Relation;
use pulse_schema::comments::CommentView;
use pulse_schema::groups::GroupRow;
use pulse_schema::notifications::NotificationView;
use pulse_schema::posts::PostView;
use pulse_schema::users::{UserRow, UserSummaryRow};
use serde::Serialize;
use utoipa::ToSchema;

pub fn timestamp(at: NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: i64,
    pub username: String,
    pub display_name: String,
}

impl From<UserSummaryRow> for UserSummary {
    fn from(row: UserSummaryRow) -> Self {
        UserSummary {
            id: row.id.0,
            username: row.username,
            display_name: row.display_name,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub created_at: String,
    pub follower_count: i64,
    pub following_count: i64,
    pub post_count: i64,
    pub followed_by_me: bool,
    /// The viewer blocked this user.
    pub blocked_by_me: bool,
    /// The viewer muted this user.
    pub muted_by_me: bool,
}

impl User {
    /// `row` as `viewer` sees it: whether they follow, blocked or muted this user.
    pub fn new(row: UserRow, followed_by_me: bool, relation: Relation) -> Self {
        User {
            id: row.id.0,
            username: row.username,
            display_name: row.display_name,
            created_at: timestamp(row.created_at),
            follower_count: row.follower_count,
            following_count: row.following_count,
            post_count: row.post_count,
            followed_by_me,
            blocked_by_me: relation.blocked_by_me,
            muted_by_me: relation.muted_by_me,
        }
    }
}

/// Where a stored image is served (outside `/api/v1`, see `routes::media`).
fn media_url(key: &str) -> String {
    format!("/media/{key}")
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Post {
    pub id: i64,
    pub author: UserSummary,
    pub caption: String,
    /// The display image: the upload shrunk to `PULSE_DISPLAY_MAX_SIDE` at most.
    pub image_url: String,
    /// The same image shrunk to `PULSE_THUMBNAIL_MAX_SIDE` at most; `image_url` for posts
    /// stored before thumbnails existed.
    pub thumbnail_url: String,
    /// The display image's size in pixels.
    pub width: i32,
    pub height: i32,
    pub created_at: String,
    pub like_count: i64,
    pub comment_count: i64,
    pub liked_by_me: bool,
}

impl Post {
    pub fn new((post, author): PostView, liked_by_me: bool) -> Self {
        Post {
            id: post.id.0,
            author: author.into(),
            caption: post.caption,
            thumbnail_url: media_url(post.thumbnail_key.as_deref().unwrap_or(&post.media_key)),
            image_url: media_url(&post.media_key),
            width: post.width,
            height: post.height,
            created_at: timestamp(post.created_at),
            like_count: post.like_count,
            comment_count: post.comment_count,
            liked_by_me,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Comment {
    pub id: i64,
    pub post_id: i64,
    pub author: UserSummary,
    pub text: String,
    pub created_at: String,
}

impl From<CommentView> for Comment {
    fn from((comment, author): CommentView) -> Self {
        Comment {
            id: comment.id.0,
            post_id: comment.post_id.0,
            author: author.into(),
            text: comment.text,
            created_at: timestamp(comment.created_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Notification {
    pub id: i64,
    /// `like`, `comment` or `follow`.
    pub kind: String,
    pub actor: UserSummary,
    pub post_id: Option<i64>,
    pub comment_id: Option<i64>,
    pub text: String,
    pub created_at: String,
    pub read: bool,
    /// The group this notification belongs to (`GET /notifications/groups`).
    pub group_id: Option<i64>,
}

impl From<NotificationView> for Notification {
    fn from((row, actor): NotificationView) -> Self {
        Notification {
            id: row.id.0,
            kind: row.kind,
            actor: actor.into(),
            post_id: row.post_id.map(|p| p.0),
            comment_id: row.comment_id.map(|c| c.0),
            text: row.text,
            created_at: timestamp(row.created_at),
            read: row.read,
            group_id: row.group_id.map(|g| g.0),
        }
    }
}

/// Notifications grouped: "bob, carol and 2 others liked your photo."
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotificationGroup {
    pub id: i64,
    /// `like`, `comment` or `follow`.
    pub kind: String,
    pub post_id: Option<i64>,
    /// The newest actors, newest first, at most 3.
    pub actors: Vec<UserSummary>,
    pub actor_count: i64,
    pub text: String,
    pub latest_notification_id: i64,
    /// When the group last changed (the list's order).
    pub updated_at: String,
    pub read: bool,
    /// The recipient's group version of this group's latest change.
    pub version: i64,
}

impl From<&GroupRow> for NotificationGroup {
    fn from(row: &GroupRow) -> Self {
        let actors = row.actors();
        NotificationGroup {
            id: row.id.0,
            kind: row.kind.clone(),
            post_id: row.post_id.map(|p| p.0),
            text: row.text(),
            actors: actors
                .into_iter()
                .map(|a| UserSummary {
                    id: a.id.0,
                    username: a.username,
                    display_name: a.display_name,
                })
                .collect(),
            actor_count: row.actor_count,
            latest_notification_id: row.latest_notification_id.0,
            updated_at: timestamp(row.updated_at),
            read: row.read,
            version: row.version,
        }
    }
}

/// A page of groups with the number of unread groups.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupPage {
    pub items: Vec<NotificationGroup>,
    pub next_cursor: Option<String>,
    /// Unread groups.
    pub unread_count: i64,
}

/// A keyset page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A page of notifications with the caller's unread count.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    pub next_cursor: Option<String>,
    pub unread_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthResponse {
    pub user: User,
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketResponse {
    pub ticket: String,
    pub expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LikeResponse {
    pub post_id: i64,
    pub liked: bool,
    pub like_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCountResponse {
    pub unread_count: i64,
    /// Unread groups after the change.
    pub unread_group_count: i64,
}
