//! `/posts/{id}/comments`: list (oldest first) and add (notifies the author).

use actix_web::{web, HttpResponse};
use pulse_schema::{comments, posts, CommentId, PostId};
use serde::Deserialize;

use crate::domain::{next_cursor, path_id, PageQuery, Text, Validator};
use crate::error::{ApiError, ApiResult, Problem};
use crate::ratelimit::Bucket;
use crate::routes::extract::AuthUser;
use crate::routes::protect::throttle_user;
use crate::state::AppState;
use crate::views::{Comment, Page};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/posts/{id}/comments", web::get().to(list_comments))
        .route("/posts/{id}/comments", web::post().to(add_comment));
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    /// 1..2200 characters, no NUL.
    #[schema(min_length = 1, max_length = 2200, pattern = "^[^\\u0000]*$")]
    pub text: String,
}

/// A post's comments, oldest first.
#[utoipa::path(get, path = "/api/v1/posts/{id}/comments", tag = "comments", security(("bearer" = [])),
    params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = Page<Comment>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list_comments(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let post = PostId(path_id(&path)?);
    let (row, _author) = posts::find(&state.db, post).await?;
    super::users::hidden_from(&state, user.id, row.author_id)
        .await
        .map_err(|_| ApiError::NotFound("No such post."))?;
    let limits = &state.settings.limits;
    let page = query.page(limits.default_page_size, limits.max_page_size)?;
    let rows = comments::page(&state.db, post, page.after.map(CommentId), page.limit).await?;
    let next = next_cursor(&rows, page.limit, |(c, _)| c.id.0);
    let items = rows.into_iter().map(Comment::from).collect();
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: next,
    }))
}

/// Comments on a post; the author is notified unless it is their own post.
#[utoipa::path(post, path = "/api/v1/posts/{id}/comments", tag = "comments", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = CommentRequest,
    responses((status = 201, body = Comment), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn add_comment(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<CommentRequest>,
) -> ApiResult<HttpResponse> {
    let post = PostId(path_id(&path)?);
    let mut v = Validator::default();
    let text = v.check(Text::comment(&body.text));
    v.finish()?;
    let text = text.ok_or_else(|| ApiError::BadRequest("text is required".into()))?;
    throttle_user(&state, Bucket::Comments, user.id).await?;
    let (comment, delivery) =
        comments::create(&state.db, &user.summary, post, text.as_str()).await?;
    state.publisher().deliver(delivery).await;
    Ok(HttpResponse::Created().json(Comment::from(comment)))
}
