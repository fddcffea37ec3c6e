//! `/auth/*`: register, login, logout and socket tickets.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use pulse_schema::blocks::Relation;
use pulse_schema::{now_millis, tokens, users};
use serde::Deserialize;

use crate::domain::{DisplayName, Password, Username, Validator};
use crate::error::{ApiError, ApiResult, Problem};
use crate::ratelimit::Bucket;
use crate::routes::extract::AuthUser;
use crate::routes::protect::ip_of;
use crate::state::AppState;
use crate::views::{timestamp, AuthResponse, TicketResponse, User};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/register", web::post().to(register))
        .route("/auth/login", web::post().to(login))
        .route("/auth/logout", web::post().to(logout))
        .route("/auth/ws-ticket", web::post().to(ws_ticket));
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3..30 of `[a-z0-9._]` after folding to lowercase, not starting or ending with `.`.
    #[schema(
        min_length = 3,
        max_length = 30,
        pattern = "^[A-Za-z0-9_][A-Za-z0-9._]*[A-Za-z0-9_]$"
    )]
    pub username: String,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// 0..64 characters, no control characters; defaults to the username.
    #[schema(max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = AuthResponse), (status = 400, body = Problem), (status = 409, body = Problem),
              (status = 413, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem),
              (status = 503, body = Problem, description = "Too many password checks are queued (PULSE_PASSWORD_HASH_QUEUE_LEN), or the database is unreachable")))]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let mut v = Validator::default();
    let username = v.check(Username::parse(&body.username));
    let password = v.check(Password::parse(&body.password));
    let display_name = match &body.display_name {
        Some(name) => v
            .check(DisplayName::parse(name))
            .map(|d| d.as_str().to_owned()),
        None => None,
    };
    v.finish()?;
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::BadRequest(
            "username and password are required".into(),
        ));
    };
    state
        .limiter
        .hit(Bucket::Registrations, &ip_of(&req, &state))
        .await?;
    let display_name = display_name.unwrap_or_else(|| username.as_str().to_owned());
    let hash = state.passwords.hash(password.expose().to_owned()).await?;
    let row = users::create(
        &state.db,
        &users::NewUser {
            username: username.as_str(),
            display_name: &display_name,
            password_hash: &hash,
            created_at: now_millis(),
        },
    )
    .await?;
    let ttl = Duration::from_secs(state.settings.limits.token_ttl_secs);
    let (token, _) = state.keys.mint(row.id, ttl)?;
    Ok(HttpResponse::Created().json(AuthResponse {
        user: User::new(row, false, Relation::default()),
        token,
    }))
}

/// Signs in. Unknown user and wrong password get the same 401, in the same time.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = AuthResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem),
              (status = 503, body = Problem, description = "Too many password checks are queued (PULSE_PASSWORD_HASH_QUEUE_LEN), or the database is unreachable")))]
pub async fn login(
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    // Failed logins are counted per username (folded, so case does not dodge it): past the
    // limit every login for that name answers 429 until the window ends.
    let throttle_key: String = body
        .username
        .chars()
        .take(64)
        .collect::<String>()
        .to_lowercase();
    state
        .limiter
        .check(Bucket::LoginFailures, &throttle_key)
        .await?;
    let stored = match Username::parse(&body.username) {
        Ok(username) => users::credentials(&state.db, username.as_str()).await?,
        Err(_) => None,
    };
    let (user_id, hash) = match stored {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    let valid = state.passwords.verify(body.password, hash).await?;
    let Some(user_id) = user_id.filter(|_| valid) else {
        state
            .limiter
            .hit(Bucket::LoginFailures, &throttle_key)
            .await?;
        return Err(ApiError::Unauthorized(
            "Unknown username or wrong password.",
        ));
    };
    let row = users::find(&state.db, user_id).await?;
    let ttl = Duration::from_secs(state.settings.limits.token_ttl_secs);
    let (token, _) = state.keys.mint(row.id, ttl)?;
    Ok(HttpResponse::Ok().json(AuthResponse {
        user: User::new(row, false, Relation::default()),
        token,
    }))
}

/// Revokes the presented token everywhere and closes its sockets (4401) on every instance.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    tokens::revoke(
        &state.db,
        &user.claims.revocation_ids,
        user.claims.expires_naive(),
    )
    .await?;
    state
        .sessions
        .revoke(&user.claims.revocation_ids, user.claims.expires_naive());
    // The device signs out: it gets no more pushes.
    pulse_schema::push::delete_for_token(&state.db, user.claims.token_id()).await?;
    state.publisher().revoke(user.id, &user.claims).await;
    Ok(HttpResponse::NoContent().finish())
}

/// A single-use, 60-second ticket that opens a socket (`GET /api/v1/ws?ticket=`) and nothing else.
#[utoipa::path(post, path = "/api/v1/auth/ws-ticket", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TicketResponse), (status = 401, body = Problem)))]
pub async fn ws_ticket(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    let ttl = Duration::from_secs(state.settings.limits.ticket_ttl_secs);
    let (ticket, expires) = state.keys.mint_ticket(&user.token, ttl)?;
    let expires_at = timestamp(chrono::DateTime::<chrono::Utc>::from(expires).naive_utc());
    Ok(HttpResponse::Ok().json(TicketResponse { ticket, expires_at }))
}
