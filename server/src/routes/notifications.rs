//! `/notifications`: the inbox, its groups, and marking read (pushed to every socket of the
//! user).

use actix_web::{web, HttpResponse};
use pulse_schema::groups;
use pulse_schema::notifications::{self, MarkRead};
use pulse_schema::{GroupId, NotificationId};
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
use crate::views::{
    GroupPage, Notification, NotificationGroup, NotificationPage, UnreadCountResponse,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/notifications", web::get().to(list_notifications))
        .route("/notifications/groups", web::get().to(list_groups))
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

/// Your notification groups, most recently changed (`updated_at`) first, with the number of
/// unread groups.
#[utoipa::path(get, path = "/api/v1/notifications/groups", tag = "notifications", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = GroupPage), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list_groups(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let limits = &state.settings.limits;
    let page = query.page(limits.default_page_size, limits.max_page_size)?;
    let unread_only = query.unread_only()?;
    let rows = groups::page(&state.db, user.id, page.after, page.limit, unread_only).await?;
    let next = next_cursor(&rows, page.limit, |g| g.version);
    let unread_count = groups::unread_count(&state.db, user.id).await?;
    Ok(HttpResponse::Ok().json(GroupPage {
        items: rows.iter().map(NotificationGroup::from).collect(),
        next_cursor: next,
        unread_count,
    }))
}

/// `{"up_to_id": N}` marks everything up to N; `{"ids": [...]}` marks those; `{"group_ids":
/// [...]}` marks every notification of those groups.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    pub up_to_id: Option<i64>,
    pub ids: Option<Vec<i64>>,
    pub group_ids: Option<Vec<i64>>,
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
        let ids = || {
            ArrayBuilder::new()
                .items(id())
                .max_items(Some(crate::config::Limits::default().max_read_ids))
                .into()
        };
        let fields: [(&str, RefOr<Schema>); 3] = [
            ("up_to_id", id().into()),
            ("ids", ids()),
            ("group_ids", ids()),
        ];
        // One form per field: that field required, the other two absent (null).
        let form = |named: &str| {
            let mut object = ObjectBuilder::new()
                .required(named)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)));
            for (field, schema) in &fields {
                object = if *field == named {
                    object.property(*field, schema.clone())
                } else {
                    object.property(*field, ObjectBuilder::new().schema_type(Type::Null))
                };
            }
            object
        };
        OneOfBuilder::new()
            .item(form("up_to_id"))
            .item(form("ids"))
            .item(form("group_ids"))
            .description(Some(
                "`{\"up_to_id\": N}` marks everything up to N; `{\"ids\": [...]}` marks those; `{\"group_ids\": [...]}` marks every notification of those groups.",
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
    let outcome = match read_target(&body, state.settings.limits.max_read_ids)? {
        Target::Notifications(which) => {
            notifications::mark_read(&state.db, user.id, &which).await?
        }
        Target::Groups(ids) => groups::mark_read(&state.db, user.id, &ids).await?,
    };
    state.publisher().read(user.id, &outcome).await;
    Ok(HttpResponse::Ok().json(UnreadCountResponse {
        unread_count: outcome.unread,
        unread_group_count: outcome.unread_groups,
    }))
}

/// What a mark-read request names.
enum Target {
    Notifications(MarkRead),
    Groups(Vec<GroupId>),
}

/// Checks that the body names exactly one of its three forms, with valid ids.
fn read_target(body: &MarkReadRequest, max_ids: usize) -> Result<Target, ApiError> {
    let valid_id = |id: &i64| (1..=MAX_ID).contains(id);
    let valid_ids = |ids: &[i64]| ids.len() <= max_ids && ids.iter().all(valid_id);
    let too_many =
        |field| ApiError::validation(field, format!("must be at most {max_ids} positive ids"));
    match (body.up_to_id, &body.ids, &body.group_ids) {
        (Some(up_to), None, None) if valid_id(&up_to) => {
            Ok(Target::Notifications(MarkRead::UpTo(NotificationId(up_to))))
        }
        (Some(_), None, None) => Err(ApiError::validation("up_to_id", "must be a positive id")),
        (None, Some(ids), None) if valid_ids(ids) => Ok(Target::Notifications(MarkRead::Ids(
            ids.iter().copied().map(NotificationId).collect(),
        ))),
        (None, Some(_), None) => Err(too_many("ids")),
        (None, None, Some(ids)) if valid_ids(ids) => {
            Ok(Target::Groups(ids.iter().copied().map(GroupId).collect()))
        }
        (None, None, Some(_)) => Err(too_many("group_ids")),
        _ => Err(ApiError::validation(
            "up_to_id",
            "send exactly one of `up_to_id`, `ids` or `group_ids`",
        )),
    }
}
