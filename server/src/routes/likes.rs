//! `/posts/{id}/like`: idempotent like and unlike; publishes the notification and the count.

use actix_web::{web, HttpResponse};
use pulse_schema::likes::{self, LikeOutcome};
use pulse_schema::PostId;

use crate::domain::path_id;
use crate::error::{ApiResult, Problem};
use crate::ratelimit::Bucket;
use crate::routes::extract::AuthUser;
use crate::routes::protect::throttle_user;
use crate::state::AppState;
use crate::views::LikeResponse;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/posts/{id}/like", web::put().to(like_post))
        .route("/posts/{id}/like", web::delete().to(unlike_post));
}

/// After the commit: the notification (if any) to the author, the new count to watchers.
async fn publish(state: &AppState, outcome: LikeOutcome) -> HttpResponse {
    let response = LikeResponse {
        post_id: outcome.post_id.0,
        liked: outcome.liked,
        like_count: outcome.like_count,
    };
    state.publisher().like(outcome).await;
    HttpResponse::Ok().json(response)
}

/// Likes a post (idempotent; the author hears about it once ever).
#[utoipa::path(put, path = "/api/v1/posts/{id}/like", tag = "likes", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = LikeResponse), (status = 401, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn like_post(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    set_like(&state, &user, &path, true).await
}

/// Removes your like (idempotent).
#[utoipa::path(delete, path = "/api/v1/posts/{id}/like", tag = "likes", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = LikeResponse), (status = 401, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn unlike_post(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    set_like(&state, &user, &path, false).await
}

/// Both verbs: validate the id, count against the user's like limit, write, publish.
async fn set_like(
    state: &AppState,
    user: &AuthUser,
    path: &str,
    liked: bool,
) -> ApiResult<HttpResponse> {
    let post = PostId(path_id(path)?);
    throttle_user(state, Bucket::Likes, user.id).await?;
    let outcome = match liked {
        true => state.likes.like(&user.summary, post).await?,
        false => likes::unlike(&state.db, user.id, post).await?,
    };
    Ok(publish(state, outcome).await)
}
