//! `GET /media/{key}`: uploaded images, immutable (the key is the content hash).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/media/{key}", web::get().to(get_media));
}

/// Serves an image with a strong `ETag` and a year of immutable caching.
#[utoipa::path(get, path = "/media/{key}", tag = "media", params(("key" = String, Path)),
    responses((status = 200, description = "The image", content_type = "image/*"), (status = 304), (status = 404, body = crate::error::Problem)))]
pub async fn get_media(
    req: HttpRequest,
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (path, content_type) = state
        .media
        .path_for(&key)
        .ok_or(ApiError::NotFound("No such image."))?;
    let etag = format!("\"{}\"", key.split('.').next().unwrap_or_default());
    let cache = (header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if not_modified {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header(cache)
            .finish());
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::NotFound("No such image."))?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::ETAG, etag))
        .insert_header(cache)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(bytes))
}
