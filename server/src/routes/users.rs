//! `/me`, `/users/{username}`, follows and an author's posts.

use actix_web::{web, HttpResponse};
use pulse_schema::blocks::{self, Relation};
use pulse_schema::users::UserRow;
use pulse_schema::{follows, posts, users, PostId, UserId};

use super::posts::render_posts;
use crate::domain::{next_cursor, path_id, PageQuery};
use crate::error::{ApiError, ApiResult, Problem};
use crate::ratelimit::Bucket;
use crate::routes::extract::AuthUser;
use crate::routes::protect::throttle_user;
use crate::state::AppState;
use crate::views::{Page, Post, User};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/me", web::get().to(me))
        .route("/users/{username}", web::get().to(get_user))
        .route("/users/{id}/follow", web::put().to(follow_user))
        .route("/users/{id}/follow", web::delete().to(unfollow_user))
        .route("/users/{id}/posts", web::get().to(user_posts));
}

/// `row` as `viewer` sees it; `NotFound` when that user blocked the viewer.
async fn render_row(state: &AppState, viewer: UserId, row: UserRow) -> ApiResult<User> {
    if row.id == viewer {
        return Ok(User::new(row, false, Relation::default()));
    }
    let relation = blocks::relation(&state.db, viewer, row.id).await?;
    if relation.blocks_me {
        return Err(ApiError::NotFound("No such user."));
    }
    let followed = follows::is_following(&state.db, viewer, row.id).await?;
    Ok(User::new(row, followed, relation))
}

/// User `id` as `viewer` sees it (see [`render_row`]).
pub(super) async fn render_user(state: &AppState, viewer: UserId, id: UserId) -> ApiResult<User> {
    let row = users::find(&state.db, id).await?;
    render_row(state, viewer, row).await
}

/// `NotFound` when `owner` blocked `viewer`: to them, the owner and what is theirs do not exist.
pub(super) async fn hidden_from(state: &AppState, viewer: UserId, owner: UserId) -> ApiResult<()> {
    match viewer != owner && blocks::blocks_me(&state.db, viewer, owner).await? {
        true => Err(ApiError::NotFound("No such user.")),
        false => Ok(()),
    }
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = Problem)))]
pub async fn me(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(render_user(&state, user.id, user.id).await?))
}

/// A user by username (case-insensitive).
#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "users", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_user(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let username = path.into_inner().to_lowercase();
    let row = users::find_by_username(&state.db, &username).await?;
    Ok(HttpResponse::Ok().json(render_row(&state, user.id, row).await?))
}

/// Follows a user (idempotent; the first follow ever notifies them).
#[utoipa::path(put, path = "/api/v1/users/{id}/follow", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn follow_user(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let target = UserId(path_id(&path)?);
    throttle_user(&state, Bucket::Follows, user.id).await?;
    if target == user.id {
        return Err(ApiError::validation("id", "you cannot follow yourself"));
    }
    let relation = blocks::relation(&state.db, user.id, target).await?;
    if relation.blocks_me {
        return Err(ApiError::NotFound("No such user."));
    }
    if relation.blocked_by_me {
        return Err(ApiError::Conflict(
            "You blocked this user; unblock them to follow them.".into(),
        ));
    }
    let delivery = follows::follow(&state.db, &user.summary, target).await?;
    state.publisher().deliver(delivery).await;
    Ok(HttpResponse::Ok().json(render_user(&state, user.id, target).await?))
}

/// Stops following a user (idempotent).
#[utoipa::path(delete, path = "/api/v1/users/{id}/follow", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn unfollow_user(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let target = UserId(path_id(&path)?);
    throttle_user(&state, Bucket::Follows, user.id).await?;
    hidden_from(&state, user.id, target).await?;
    let delivery = follows::unfollow(&state.db, user.id, target).await?;
    state.publisher().deliver(delivery).await;
    Ok(HttpResponse::Ok().json(render_user(&state, user.id, target).await?))
}

/// A user's posts, newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/posts", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = Page<Post>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn user_posts(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let author = UserId(path_id(&path)?);
    let limits = &state.settings.limits;
    let page = query.page(limits.default_page_size, limits.max_page_size)?;
    users::find(&state.db, author).await?;
    hidden_from(&state, user.id, author).await?;
    let rows = posts::by_author(&state.db, author, page.after.map(PostId), page.limit).await?;
    let next = next_cursor(&rows, page.limit, |(p, _)| p.id.0);
    let items = render_posts(&state, user.id, rows).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: next,
    }))
}
