//! `/posts`, `/posts/{id}` and `/feed`: upload, read, delete, and the home feed.

use actix_multipart::{Multipart, MultipartError};
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use pulse_schema::posts::{self, NewPost, PostView};
use pulse_schema::{now_millis, PostId, UserId};

use crate::domain::{next_cursor, path_id, PageQuery, Text, Validator};
use crate::error::{ApiError, ApiResult, Problem};
use crate::ratelimit::Bucket;
use crate::routes::extract::AuthUser;
use crate::routes::protect::throttle_user;
use crate::state::AppState;
use crate::views::{Page, Post};

/// Largest `caption` form part, in bytes (2200 code points of up to 4 bytes each).
const MAX_CAPTION_PART_BYTES: usize = 2200 * 4;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/posts", web::post().to(create_post))
        .route("/posts/{id}", web::get().to(get_post))
        .route("/posts/{id}", web::delete().to(delete_post))
        .route("/feed", web::get().to(feed));
}

/// Renders posts for `viewer` (adds `liked_by_me`).
pub async fn render_posts(
    state: &AppState,
    viewer: UserId,
    rows: Vec<PostView>,
) -> ApiResult<Vec<Post>> {
    let ids: Vec<PostId> = rows.iter().map(|(p, _)| p.id).collect();
    let liked = posts::liked_by(&state.db, viewer, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mine = liked.contains(&row.0.id);
            Post::new(row, mine)
        })
        .collect())
}

/// The multipart upload form, as the OpenAPI document describes it.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CreatePostForm {
    /// JPEG, PNG or WebP; at most 10 MiB, 8192 px on a side and 67,108,864 pixels by default.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// 0..2200 characters, no NUL.
    #[schema(max_length = 2200, pattern = "^[^\\u0000]*$")]
    caption: Option<String>,
}

fn multipart_error(error: MultipartError) -> ApiError {
    match error {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible
        | MultipartError::BoundaryMissing => {
            ApiError::UnsupportedMediaType("Send multipart/form-data with an `image` part.".into())
        }
        other => ApiError::BadRequest(format!("Malformed multipart body: {other}")),
    }
}

/// Reads one form part into memory, refusing (413) past `limit` bytes.
async fn read_part(
    field: &mut actix_multipart::Field,
    limit: usize,
    name: &str,
) -> ApiResult<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(multipart_error)?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge(format!(
                "`{name}` is limited to {limit} bytes."
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Uploads a photo with a caption.
#[utoipa::path(post, path = "/api/v1/posts", tag = "posts", security(("bearer" = [])),
    request_body(content = CreatePostForm, content_type = "multipart/form-data"),
    responses((status = 201, body = Post), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem),
              (status = 503, body = Problem, description = "Too many images are being decoded; retry after `Retry-After` seconds")))]
pub async fn create_post(
    state: web::Data<AppState>,
    user: AuthUser,
    mut form: Multipart,
) -> ApiResult<HttpResponse> {
    throttle_user(&state, Bucket::Posts, user.id).await?;
    let mut image = None;
    let mut caption = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(multipart_error)?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "image" if image.is_none() => {
                image = Some(
                    read_part(&mut field, state.settings.limits.max_image_bytes, "image").await?,
                );
            }
            "caption" if caption.is_none() => {
                let bytes = read_part(&mut field, MAX_CAPTION_PART_BYTES, "caption").await?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| ApiError::validation("caption", "must be UTF-8 text"))?;
                caption = Some(text);
            }
            "image" | "caption" => {
                return Err(ApiError::BadRequest(format!("`{name}` was sent twice.")))
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "Unknown form field `{name}`; send `image` and `caption`."
                )))
            }
        }
    }
    let mut v = Validator::default();
    let caption = v.check(Text::caption(caption.as_deref().unwrap_or("")));
    if image.is_none() {
        v.check::<()>(Err(crate::error::FieldError::new(
            "image",
            "an image file is required",
        )));
    }
    v.finish()?;
    let (Some(image), Some(caption)) = (image, caption) else {
        return Err(ApiError::BadRequest("image is required".into()));
    };
    let upload = state.media.ingest(image).await?;
    let view = posts::create(
        &state.db,
        &NewPost {
            author_id: user.id,
            caption: caption.as_str(),
            media_key: &upload.display.key,
            thumbnail_key: Some(&upload.thumbnail.key),
            width: side(upload.display.width),
            height: side(upload.display.height),
            created_at: now_millis(),
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(Post::new(view, false)))
}

/// A stored side as the database keeps it (sides are at most `PULSE_DISPLAY_MAX_SIDE`).
fn side(pixels: u32) -> i32 {
    i32::try_from(pixels).unwrap_or(i32::MAX)
}

/// One post.
#[utoipa::path(get, path = "/api/v1/posts/{id}", tag = "posts", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = Post), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_post(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = PostId(path_id(&path)?);
    let view = posts::find(&state.db, id).await?;
    super::users::hidden_from(&state, user.id, view.0.author_id)
        .await
        .map_err(|_| ApiError::NotFound("No such post."))?;
    let mut rendered = render_posts(&state, user.id, vec![view]).await?;
    rendered
        .pop()
        .map(|post| HttpResponse::Ok().json(post))
        .ok_or(ApiError::NotFound("No such post."))
}

/// Deletes your post with its likes, comments and notifications.
#[utoipa::path(delete, path = "/api/v1/posts/{id}", tag = "posts", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_post(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = PostId(path_id(&path)?);
    let removed = posts::delete(&state.db, id, user.id).await?;
    state.publisher().groups(&removed).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Posts by the people you follow and your own, newest first.
#[utoipa::path(get, path = "/api/v1/feed", tag = "posts", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<Post>), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn feed(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let limits = &state.settings.limits;
    let page = query.page(limits.default_page_size, limits.max_page_size)?;
    let rows = posts::feed(&state.db, user.id, page.after.map(PostId), page.limit).await?;
    let next = next_cursor(&rows, page.limit, |(p, _)| p.id.0);
    let items = render_posts(&state, user.id, rows).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: next,
    }))
}
