//! What wraps every request: a request id (also sent back as `x-request-id`), a tracing span
//! that every log line of the request carries, the HTTP metrics, and load shedding of API
//! requests (see `shed`).

use std::time::Instant;

use std::sync::atomic::Ordering;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::AppState;

/// What a shed request is told to wait before retrying, in seconds.
const SHED_RETRY_AFTER_SECS: u64 = 1;

/// Gives the request an id and a span, and records its route, status and duration.
pub(crate) async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = format!("{:016x}", rand::random::<u64>());
    req.extensions_mut().insert(request_id.clone());
    let method = method_label(req.method());
    let span = tracing::info_span!("request", id = %request_id, method, path = %req.path());
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let mut response = next.call(req).instrument(span).await?;
    if let Some(metrics) = metrics {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let status = response.status().as_u16();
        metrics.observe_http(method, &route, status, started.elapsed());
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        let name = HeaderName::from_static("x-request-id");
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

/// Paths under `/api/v1` that are never shed: socket and stream opens have their own admission queue, and
/// logins and registrations their own bounded gate in front of password hashing, which by
/// design takes longer than a turn may wait.
const NOT_SHED: [&str; 4] = [
    "/api/v1/ws",
    "/api/v1/events",
    "/api/v1/auth/login",
    "/api/v1/auth/register",
];

/// Runs an API request when the instance has a turn for it, or answers 503 with `Retry-After`
/// (see `shed`). Everything outside `/api/v1` (health, metrics, media, the demo) and the paths
/// in [`NOT_SHED`] pass straight through.
pub(crate) async fn shed_overload(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let path = req.path();
    let sheddable = path.starts_with("/api/v1/") && !NOT_SHED.contains(&path);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some(state) = state.filter(|_| sheddable) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let _turn = match state.shedder.admit().await {
        Ok(turn) => turn,
        Err(_) => {
            state.metrics.requests_shed.fetch_add(1, Ordering::Relaxed);
            let refused = ApiError::Overloaded {
                detail: "This instance is at capacity",
                retry_after_secs: SHED_RETRY_AFTER_SECS,
            };
            let response = refused.error_response().map_into_right_body();
            return Ok(req.into_response(response));
        }
    };
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// The method as a metric label: the standard methods by name, anything a client invents as
/// `other`, so clients cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invented_method_is_labelled_other() {
        let invented = Method::from_bytes(b"BREW").unwrap_or(Method::TRACE);
        assert_eq!(method_label(&invented), "other");
        assert_eq!(method_label(&Method::PUT), "PUT");
    }
}
