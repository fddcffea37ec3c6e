//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated from the handlers' and wire
//! types' annotations (utoipa), plus the list of problem types.

use actix_web::{web, HttpResponse};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Header, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use crate::domain::MAX_ID;
use crate::error::PROBLEM_TYPES;

#[derive(OpenApi)]
#[openapi(
    info(title = "Pulse", description = "Real-time notification backend for social apps. The socket protocol (GET /api/v1/ws) is described in docs/API.md of the Pulse repository."),
    paths(
        super::auth::register, super::auth::login, super::auth::logout, super::auth::ws_ticket,
        super::users::me, super::users::get_user, super::users::follow_user, super::users::unfollow_user,
        super::users::user_posts,
        super::blocks::block_user, super::blocks::unblock_user, super::blocks::mute_user,
        super::blocks::unmute_user, super::blocks::list_blocks, super::blocks::list_mutes,
        super::posts::create_post, super::posts::get_post, super::posts::delete_post, super::posts::feed,
        super::likes::like_post, super::likes::unlike_post,
        super::comments::list_comments, super::comments::add_comment,
        super::notifications::list_notifications, super::notifications::list_groups, super::notifications::mark_read,
        super::preferences::get_preferences, super::preferences::put_preferences,
        super::push::public_key, super::push::put_subscription, super::push::get_subscription, super::push::delete_subscription,
        super::live::open_socket, super::events::open_stream, super::media::get_media,
        super::system::healthz, super::system::readyz, super::system::metrics,
    ),
    modifiers(&BearerAuth, &ProblemTypes, &CommonResponses),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Lists every problem `type` under the `x-problem-types` extension and in the info text.
struct ProblemTypes;

impl Modify for ProblemTypes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let list: Vec<String> = PROBLEM_TYPES
            .iter()
            .map(|(t, title, status)| format!("- `{t}` ({status}): {title}"))
            .collect();
        let description = openapi.info.description.get_or_insert_with(String::new);
        description.push_str("\n\nProblem types (RFC 9457 `type` values):\n");
        description.push_str(&list.join("\n"));
    }
}

/// Media type of every error body (RFC 9457).
const PROBLEM_JSON: &str = "application/problem+json";

/// What holds for every operation, whatever its own annotation says, so the document stays true
/// when a handler is added or changed (checked by `.ci/schemathesis.sh`):
/// - problem responses are `application/problem+json` (`body = Problem` alone would say
///   `application/json`);
/// - a JSON request body may be malformed (400), too large (413) or not JSON (415): the
///   `JsonConfig` of `routes::configure` answers so for every handler;
/// - everything under `/api/v1` reads the database, so it may answer 503;
/// - writes and socket opens under `/api/v1` pass the per-IP throttle: 429 with `Retry-After`;
/// - ids in paths are positive integers below 2^53 (anything else is a 404);
/// - `unread_only` is read by the notifications list only (the other lists ignore it).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/v1/");
            let operations = [
                (&mut item.get, false),
                (&mut item.put, true),
                (&mut item.post, true),
                (&mut item.delete, true),
            ];
            for (operation, is_write) in operations {
                let Some(operation) = operation.as_mut() else {
                    continue;
                };
                let throttled = api && (is_write || path == "/api/v1/ws");
                complete_operation(operation, path, api, throttled);
            }
        }
    }
}

fn complete_operation(operation: &mut Operation, path: &str, api: bool, throttled: bool) {
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|body| body.content.contains_key("application/json"));
    let mut implied: Vec<&str> = Vec::new();
    if json_body {
        implied.extend(["400", "413", "415"]);
    }
    if api {
        implied.push("503");
    }
    if throttled {
        implied.push("429");
    }
    let responses = &mut operation.responses.responses;
    for status in implied {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(Response::new("")));
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !status.starts_with('4') && !status.starts_with('5') {
            continue;
        }
        let content = response.content.shift_remove("application/json");
        if response.content.is_empty() {
            let problem =
                content.unwrap_or_else(|| Content::new(Some(Ref::from_schema_name("Problem"))));
            response.content.insert(PROBLEM_JSON.to_owned(), problem);
        }
        if status == "429" {
            let mut retry_after = Header::new(ObjectBuilder::new().schema_type(Type::Integer));
            retry_after.description = Some("Seconds to wait before retrying.".to_owned());
            response
                .headers
                .insert("Retry-After".to_owned(), retry_after);
        }
    }
    for parameter in operation.parameters.iter_mut().flatten() {
        if parameter.parameter_in == ParameterIn::Path && parameter.name == "id" {
            parameter.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(1))
                    .maximum(Some(MAX_ID))
                    .into(),
            );
        }
    }
    if path != "/api/v1/notifications" {
        if let Some(parameters) = operation.parameters.as_mut() {
            parameters.retain(|p| p.name != "unread_only");
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json));
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
