//! HTTP routes, one file per resource, mounted by [`configure`], and the extractor settings
//! that turn malformed bodies, queries and paths into problem responses. Routes hand
//! committed changes to live delivery through `AppState::publisher`.

pub mod auth;
pub mod blocks;
pub mod comments;
pub mod demo;
pub mod events;
pub mod extract;
pub mod likes;
pub mod live;
pub mod media;
pub mod notifications;
pub mod openapi;
pub mod posts;
pub mod preferences;
pub mod protect;
pub mod push;
pub mod system;
pub mod users;

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::{web, HttpRequest};

use crate::error::ApiError;

pub use protect::{cors, throttle_writes_by_ip};

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig, max_json_bytes: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_json_bytes)
            .error_handler(|error, _req| json_error(error).into()),
    )
    .app_data(web::QueryConfig::default().error_handler(|error, _req| query_error(error).into()))
    .app_data(
        web::PathConfig::default()
            .error_handler(|_, _| ApiError::NotFound("No such resource.").into()),
    )
    .service(
        web::scope("/api/v1")
            .configure(auth::configure)
            .configure(users::configure)
            .configure(blocks::configure)
            .configure(posts::configure)
            .configure(likes::configure)
            .configure(comments::configure)
            .configure(preferences::configure)
            .configure(notifications::configure)
            .configure(push::configure)
            .configure(live::configure)
            .configure(events::configure)
            .configure(openapi::configure),
    )
    .configure(media::configure)
    .configure(system::configure)
    .configure(demo::configure);
}

fn json_error(error: JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => {
            ApiError::TooLarge(format!("JSON bodies are limited to {limit} bytes."))
        }
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("Send Content-Type: application/json.".into())
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::BadRequest(format!("Malformed JSON body: {e}"))
        }
        other => ApiError::BadRequest(format!("Malformed body: {other}")),
    }
}

fn query_error(error: QueryPayloadError) -> ApiError {
    ApiError::BadRequest(format!("Malformed query string: {error}"))
}

/// The answer for any path nothing else matched.
pub async fn not_found(_req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("No such endpoint."))
}
