//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated from the handlers' and wire
//! types' annotations (utoipa), plus the list of problem types.

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::PROBLEM_TYPES;

#[derive(OpenApi)]
#[openapi(
    info(title = "Pulse", description = "Real-time notification backend for social apps. See API.md for the socket protocol."),
    paths(
        super::auth::register, super::auth::login, super::auth::logout, super::auth::ws_ticket,
        super::users::me, super::users::get_user, super::users::follow_user, super::users::unfollow_user,
        super::users::user_posts,
        super::posts::create_post, super::posts::get_post, super::posts::delete_post, super::posts::feed,
        super::likes::like_post, super::likes::unlike_post,
        super::comments::list_comments, super::comments::add_comment,
        super::notifications::list_notifications, super::notifications::mark_read,
        super::live::open_socket, super::media::get_media,
        super::system::healthz, super::system::readyz, super::system::metrics,
    ),
    modifiers(&BearerAuth, &ProblemTypes),
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

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json));
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
