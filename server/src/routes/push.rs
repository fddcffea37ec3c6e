//! `/push/*`: the VAPID public key, and the calling device's push subscription (one per token).

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pulse_schema::push::{self, NewSubscription, Subscription};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult, Problem};
use crate::push::encrypt::Receiver;
use crate::push::endpoint;
use crate::routes::extract::AuthUser;
use crate::state::AppState;
use crate::views::timestamp;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/push/key", web::get().to(public_key))
        .route("/push/subscription", web::put().to(put_subscription))
        .route("/push/subscription", web::get().to(get_subscription))
        .route("/push/subscription", web::delete().to(delete_subscription));
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PushKey {
    /// base64url of the 65-byte uncompressed P-256 point: `applicationServerKey` for
    /// `PushManager.subscribe`.
    pub vapid_public_key: String,
}

/// A browser's `PushSubscription.toJSON()` (other fields, such as `expirationTime`, are ignored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionRequest {
    /// The push service URL: `https://`, on a public address.
    pub endpoint: String,
    pub keys: SubscriptionKeys,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionKeys {
    /// base64url of the user agent's 65-byte uncompressed P-256 public key.
    pub p256dh: String,
    /// base64url of the user agent's 16-byte auth secret.
    pub auth: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionResponse {
    pub id: i64,
    pub endpoint: String,
    pub created_at: String,
}

impl From<Subscription> for SubscriptionResponse {
    fn from(row: Subscription) -> Self {
        SubscriptionResponse {
            id: row.id,
            endpoint: row.endpoint,
            created_at: timestamp(row.created_at),
        }
    }
}

/// The VAPID public key subscriptions must be made with. No authentication.
#[utoipa::path(get, path = "/api/v1/push/key", tag = "push", responses((status = 200, body = PushKey)))]
pub async fn public_key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(PushKey {
        vapid_public_key: state.push.public_key().to_owned(),
    })
}

/// Saves this device's (this token's) subscription, replacing the one it had.
#[utoipa::path(put, path = "/api/v1/push/subscription", tag = "push", security(("bearer" = [])),
    request_body = SubscriptionRequest,
    responses((status = 200, body = SubscriptionResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn put_subscription(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<SubscriptionRequest>,
) -> ApiResult<HttpResponse> {
    let decode = |text: &str| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok();
    let p256dh = decode(&body.keys.p256dh).unwrap_or_default();
    let auth = decode(&body.keys.auth).unwrap_or_default();
    if let Err(error) = Receiver::new(&p256dh, &auth) {
        let field = if auth.len() == 16 {
            "keys.p256dh"
        } else {
            "keys.auth"
        };
        return Err(ApiError::validation(field, error.to_string()));
    }
    endpoint::check(&body.endpoint, state.settings.push_allow_private)
        .await
        .map_err(|error| ApiError::validation("endpoint", error.to_string()))?;
    let saved = push::put(
        &state.db,
        NewSubscription {
            user_id: user.id,
            token_id: user.claims.token_id(),
            endpoint: &body.endpoint,
            p256dh: &body.keys.p256dh,
            auth: &body.keys.auth,
            expires_at: user.claims.expires_naive(),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(SubscriptionResponse::from(saved)))
}

/// This device's subscription.
#[utoipa::path(get, path = "/api/v1/push/subscription", tag = "push", security(("bearer" = [])),
    responses((status = 200, body = SubscriptionResponse), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_subscription(
    state: web::Data<AppState>,
    user: AuthUser,
) -> ApiResult<HttpResponse> {
    match push::for_token(&state.db, user.claims.token_id()).await? {
        Some(row) => Ok(HttpResponse::Ok().json(SubscriptionResponse::from(row))),
        None => Err(ApiError::NotFound("This device has no push subscription.")),
    }
}

/// Deletes this device's subscription (idempotent).
#[utoipa::path(delete, path = "/api/v1/push/subscription", tag = "push", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn delete_subscription(
    state: web::Data<AppState>,
    user: AuthUser,
) -> ApiResult<HttpResponse> {
    push::delete_for_token(&state.db, user.claims.token_id()).await?;
    Ok(HttpResponse::NoContent().finish())
}
