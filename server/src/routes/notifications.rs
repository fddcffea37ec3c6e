//! `/notifications`: the inbox and marking read (pushed to every socket of the user).

use actix_web::{web, HttpResponse};
use pulse_schema::notifications::{self, MarkRead};
use pulse_schema::NotificationId;
use serde::Deserialize;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::RefOr;

use crate::domain::{next_cursor, PageQuery, MAX_ID};
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::extract::AuthUser;
use crate::state::AppState;
use crate::views::{Notification, NotificationPage, UnreadCountResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/notifications", web::get().to(list_notifications))
        .route("/notifications/read", web::post().to(mark_read));
}

/// Your notifications, newest first, with the unread count.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = NotificationPage), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list_notifications(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let limits = &state.settings.limits;
    let page = query.page(limits.default_page_size, limits.max_page_size)?;
    let unread_only = query.unread_only()?;
    let rows = notifications::page(
        &state.db,
        user.id,
        page.after.map(NotificationId),
        page.limit,
        unread_only,
    )
    .await?;
    let next = next_cursor(&rows, page.limit, |(n, _)| n.id.0);
    let unread_count = notifications::unread_count(&state.db, user.id).await?;
    let items = rows.into_iter().map(Notification::from).collect();
    Ok(HttpResponse::Ok().json(NotificationPage {
        items,
        next_cursor: next,
        unread_count,
    }))
}

/// `{"up_to_id": N}` marks everything up to N; `{"ids": [...]}` marks those.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    pub up_to_id: Option<i64>,
    pub ids: Option<Vec<i64>>,
}

/// Written by hand: "exactly one of the two" is a `oneOf` the derive cannot express.
impl utoipa::PartialSchema for MarkReadRequest {
    fn schema() -> RefOr<Schema> {
        let id = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(1))
                .maximum(Some(MAX_ID))
        };
        let absent = || ObjectBuilder::new().schema_type(Type::Null);
        let up_to = ObjectBuilder::new()
            .property("up_to_id", id())
            .property("ids", absent())
            .required("up_to_id")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let ids = ObjectBuilder::new()
            .property(
                "ids",
                ArrayBuilder::new()
                    .items(id())
                    .max_items(Some(crate::config::Limits::default().max_read_ids)),
            )
            .property("up_to_id", absent())
            .required("ids")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        OneOfBuilder::new()
            .item(up_to)
            .item(ids)
            .description(Some(
                "`{\"up_to_id\": N}` marks everything up to N; `{\"ids\": [...]}` marks those.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for MarkReadRequest {}

/// Marks notifications read and pushes the new unread count to all your sockets.
#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "notifications", security(("bearer" = [])),
    request_body = MarkReadRequest,
    responses((status = 200, body = UnreadCountResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn mark_read(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<MarkReadRequest>,
) -> ApiResult<HttpResponse> {
    let valid_id = |id: &i64| (1..=MAX_ID).contains(id);
    let max_ids = state.settings.limits.max_read_ids;
    let which = match (body.up_to_id, &body.ids) {
        (Some(up_to), None) if valid_id(&up_to) => MarkRead::UpTo(NotificationId(up_to)),
        (None, Some(ids)) if ids.len() <= max_ids && ids.iter().all(valid_id) => {
            MarkRead::Ids(ids.iter().copied().map(NotificationId).collect())
        }
        (Some(_), None) => return Err(ApiError::validation("up_to_id", "must be a positive id")),
        (None, Some(_)) => {
            return Err(ApiError::validation(
                "ids",
                format!("must be at most {max_ids} positive ids"),
            ))
        }
        _ => {
            return Err(ApiError::validation(
                "up_to_id",
                "send exactly one of `up_to_id` or `ids`",
            ))
        }
    };
    let unread = notifications::mark_read(&state.db, user.id, &which).await?;
    state.publisher().read(user.id, unread).await;
    Ok(HttpResponse::Ok().json(UnreadCountResponse {
        unread_count: unread,
    }))
}
