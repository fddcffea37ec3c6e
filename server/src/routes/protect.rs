//! What guards every route before its handler: the per-IP write throttle (every non-GET under
//! `/api/v1` plus socket and event-stream connects), the CORS policy, and the per-user throttle
//! handlers call.

use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, ResponseError};

use crate::error::ApiError;
use crate::ratelimit::{client_ip, Bucket};
use crate::state::AppState;

/// How long browsers may cache a CORS preflight answer, in seconds.
const CORS_MAX_AGE_SECS: usize = 3600;

/// Counts writes and live connects (sockets and event streams) per client IP; over the limit
/// answers 429 without running the handler.
pub async fn throttle_writes_by_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let is_write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let is_api = req.path().starts_with("/api/v1/");
    let is_live = matches!(req.path(), "/api/v1/ws" | "/api/v1/events");
    if is_api && (is_write || is_live) {
        if let Some(state) = req.app_data::<web::Data<AppState>>().cloned() {
            let ip = client_ip(req.request(), state.settings.trust_forwarded_for);
            if let Err(error) = state.limiter.hit(Bucket::IpWrites, &ip).await {
                let response = error.error_response().map_into_right_body();
                return Ok(req.into_response(response));
            }
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Counts one write of `bucket` for the user; 429 over the limit.
pub async fn throttle_user(
    state: &AppState,
    bucket: Bucket,
    user: pulse_schema::UserId,
) -> Result<(), ApiError> {
    state.limiter.hit(bucket, &user.0.to_string()).await
}

/// The client IP of a request, as rate limits see it.
pub fn ip_of(req: &HttpRequest, state: &AppState) -> String {
    client_ip(req, state.settings.trust_forwarded_for)
}

/// Cross-origin calls are allowed only from `PULSE_ALLOWED_ORIGINS`; the demo is same-origin
/// and needs none. Bearer tokens, not cookies, so no credentials mode.
pub fn cors(allowed_origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::ETAG,
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(CORS_MAX_AGE_SECS);
    for origin in allowed_origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}
