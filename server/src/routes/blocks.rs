//! Block and mute: `PUT`/`DELETE /users/{id}/block` and `/mute`, and the lists `GET /blocks`
//! and `GET /mutes`. What a block and a mute change everywhere else is in `pulse_schema::blocks`.

use actix_web::{web, HttpResponse};
use pulse_schema::blocks::{self, List, Listed};
use pulse_schema::groups::ReadOutcome;
use pulse_schema::UserId;

use super::users::render_user;
use crate::domain::{next_cursor, path_id, PageQuery};
use crate::error::{ApiError, ApiResult, Problem};
use crate::ratelimit::Bucket;
use crate::routes::extract::AuthUser;
use crate::routes::protect::throttle_user;
use crate::state::AppState;
use crate::views::{Page, User, UserSummary};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{id}/block", web::put().to(block_user))
        .route("/users/{id}/block", web::delete().to(unblock_user))
        .route("/users/{id}/mute", web::put().to(mute_user))
        .route("/users/{id}/mute", web::delete().to(unmute_user))
        .route("/blocks", web::get().to(list_blocks))
        .route("/mutes", web::get().to(list_mutes));
}

/// The target of a block or mute: not oneself, not someone who blocked the caller, and counted
/// against the caller's limit.
async fn target(state: &AppState, user: &AuthUser, path: &str) -> ApiResult<UserId> {
    let target = UserId(path_id(path)?);
    throttle_user(state, Bucket::Blocks, user.id).await?;
    if target == user.id {
        return Err(ApiError::validation(
            "id",
            "you cannot block or mute yourself",
        ));
    }
    // Someone who blocked the caller does not exist for them: nothing to block or mute.
    super::users::hidden_from(state, user.id, target).await?;
    Ok(target)
}

/// Blocks a user (idempotent): the follows between you end, their notifications to you are
/// removed (your sockets get `notifications_removed`), and you no longer exist for them.
#[utoipa::path(put, path = "/api/v1/users/{id}/block", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn block_user(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let blocked = target(&state, &user, &path).await?;
    let removed = blocks::block(&state.db, user.id, blocked).await?;
    let ids: Vec<i64> = removed.notification_ids.iter().map(|id| id.0).collect();
    let after = ReadOutcome {
        unread: removed.unread,
        unread_groups: removed.unread_groups,
        groups: removed.groups,
    };
    state.publisher().removed(user.id, &ids, &after).await;
    Ok(HttpResponse::Ok().json(render_user(&state, user.id, blocked).await?))
}

/// Unblocks a user (idempotent); follows are not restored.
#[utoipa::path(delete, path = "/api/v1/users/{id}/block", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn unblock_user(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let blocked = target(&state, &user, &path).await?;
    blocks::unblock(&state.db, user.id, blocked).await?;
    Ok(HttpResponse::Ok().json(render_user(&state, user.id, blocked).await?))
}

/// Mutes a user (idempotent): their likes, comments and follows no longer notify you.
#[utoipa::path(put, path = "/api/v1/users/{id}/mute", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn mute_user(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let muted = target(&state, &user, &path).await?;
    blocks::mute(&state.db, user.id, muted).await?;
    Ok(HttpResponse::Ok().json(render_user(&state, user.id, muted).await?))
}

/// Unmutes a user (idempotent).
#[utoipa::path(delete, path = "/api/v1/users/{id}/mute", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn unmute_user(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let muted = target(&state, &user, &path).await?;
    blocks::unmute(&state.db, user.id, muted).await?;
    Ok(HttpResponse::Ok().json(render_user(&state, user.id, muted).await?))
}

/// The users you blocked, newest first.
#[utoipa::path(get, path = "/api/v1/blocks", tag = "users", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = Page<UserSummary>), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list_blocks(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    list(&state, &user, &query, List::Blocked).await
}

/// The users you muted, newest first.
#[utoipa::path(get, path = "/api/v1/mutes", tag = "users", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = Page<UserSummary>), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list_mutes(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    list(&state, &user, &query, List::Muted).await
}

/// One page of one of the caller's lists.
async fn list(
    state: &AppState,
    user: &AuthUser,
    query: &PageQuery,
    which: List,
) -> ApiResult<HttpResponse> {
    let limits = &state.settings.limits;
    let page = query.page(limits.default_page_size, limits.max_page_size)?;
    let rows = blocks::page(&state.db, which, user.id, page.after, page.limit).await?;
    Ok(HttpResponse::Ok().json(listed_page(rows, page.limit)))
}

fn listed_page(rows: Vec<Listed>, limit: i64) -> Page<UserSummary> {
    let next_cursor = next_cursor(&rows, limit, |(id, _, _)| *id);
    let items = rows
        .into_iter()
        .map(|(_, user, _)| UserSummary::from(user))
        .collect();
    Page { items, next_cursor }
}
