//! `GET /api/v1/events`: the live socket's stream as server-sent events, for networks that break
//! WebSockets. It opens as the socket does (`routes::live`) and runs the socket's task with an
//! event-stream outbox: same hub, queue, replay and limits. `Last-Event-ID` (what a browser's
//! `EventSource` sends when it reconnects) resumes like `?since=`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use pulse_schema::NotificationId;
use serde::Deserialize;

use super::live::{self, groups_wanted, parse_id, since_param, Live};
use crate::error::{ApiError, ApiResult, Problem};
use crate::ratelimit::Bucket;
use crate::realtime::outbox::{Framing, Outbox};
use crate::realtime::socket::{GroupsWanted, Inbound};
use crate::routes::protect::throttle_user;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(open_stream));
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// A ticket from `POST /auth/ws-ticket` (browsers); a full token here is refused.
    pub ticket: Option<String>,
    /// The last notification id this client has seen (`Last-Event-ID` takes precedence).
    pub since: Option<String>,
    /// Comma-separated post ids whose like counts this stream reports (`like_count` events).
    pub post_ids: Option<String>,
    /// `1` (or `true`): also receive `group` and `group_removed` events.
    #[param(pattern = "^(true|false|1|0)$")]
    pub groups: Option<String>,
    /// With `groups=1`: the last group version this client has seen.
    pub groups_since: Option<String>,
}

/// Where a client resumes: `Last-Event-ID` is `<notification id>` (a notification event's id)
/// or `<notification id>:<group version>` (a group event's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resume {
    since: NotificationId,
    group_version: Option<i64>,
}

fn parse_last_event_id(raw: &str) -> Option<Resume> {
    let (id, version) = match raw.trim().split_once(':') {
        Some((id, version)) => (id, Some(parse_id(version)?)),
        None => (raw.trim(), None),
    };
    Some(Resume {
        since: NotificationId(parse_id(id)?),
        group_version: version,
    })
}

/// `?post_ids=1,2,3`: positive ids, at most `max`.
fn parse_post_ids(raw: Option<&str>, max: usize) -> Result<Vec<i64>, ApiError> {
    let Some(raw) = raw.filter(|raw| !raw.is_empty()) else {
        return Ok(Vec::new());
    };
    let ids = raw
        .split(',')
        .map(|part| parse_id(part.trim()).filter(|id| *id > 0))
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(|| {
            ApiError::BadRequest("post_ids must be post ids separated by commas".into())
        })?;
    if ids.len() > max {
        return Err(ApiError::BadRequest(format!(
            "a stream may watch at most {max} posts"
        )));
    }
    Ok(ids)
}

/// `since` and the groups wanted, from the query and `Last-Event-ID` (which wins: a browser
/// reconnects with the URL it first used and the id it last saw).
fn resume_point(
    req: &HttpRequest,
    query: &EventsQuery,
) -> Result<(Option<NotificationId>, GroupsWanted), ApiError> {
    let mut since = since_param(query.since.as_deref())?;
    let mut groups = groups_wanted(query.groups.as_deref(), query.groups_since.as_deref())?;
    let Some(raw) = req.headers().get("last-event-id") else {
        return Ok((since, groups));
    };
    let resume = raw
        .to_str()
        .ok()
        .and_then(parse_last_event_id)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "Last-Event-ID must be an event id of this stream (<id> or <id>:<version>)".into(),
            )
        })?;
    since = Some(resume.since);
    if groups.enabled {
        groups.since = resume.group_version.or(groups.since);
        groups.recent = groups.since.is_none();
    }
    Ok((since, groups))
}

/// Opens the event stream (the events are the socket's frames; see docs/API.md).
#[utoipa::path(get, path = "/api/v1/events", tag = "live", params(EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event seen: resumes after it")),
    responses((status = 200, content_type = "text/event-stream", description = "The stream: one event per socket frame"),
              (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 429, body = Problem),
              (status = 503, body = Problem, description = "The server cannot check the stream's token in time")))]
pub async fn open_stream(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> ApiResult<HttpResponse> {
    if !live::origin_allowed(&req, &state) {
        return Err(ApiError::Forbidden("This origin may not open streams."));
    }
    let (since, groups) = resume_point(&req, &query)?;
    let max_posts = state.settings.limits.ws_max_subscriptions;
    let watch = parse_post_ids(query.post_ids.as_deref(), max_posts)?;
    let claims = live::authenticate(&req, &state, query.ticket.as_deref()).await?;
    throttle_user(&state, Bucket::SocketConnects, claims.user_id).await?;
    let limit = state.settings.limits.ws_outbox_bytes;
    let (outbox, body) = Outbox::new(Framing::EventStream, limit, Box::new(()));
    let live = Live {
        claims,
        since,
        groups,
        watch,
    };
    let task = live::admit(&state, live, outbox).await?;
    actix_web::rt::spawn(task.run(Inbound::EventStream));
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header(("x-accel-buffering", HeaderValue::from_static("no")))
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_ids_are_a_notification_id_with_an_optional_group_version() {
        let resume = |since, group_version| {
            Some(Resume {
                since: NotificationId(since),
                group_version,
            })
        };
        assert_eq!(parse_last_event_id("42"), resume(42, None));
        assert_eq!(parse_last_event_id(" 42:7 "), resume(42, Some(7)));
        for bad in ["", "x", "-1", "1:", ":1", "1:2:3", "99999999999999999999"] {
            assert_eq!(parse_last_event_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn post_ids_are_positive_and_bounded() {
        assert_eq!(parse_post_ids(None, 2).ok(), Some(vec![]));
        assert_eq!(parse_post_ids(Some("1, 2"), 2).ok(), Some(vec![1, 2]));
        for bad in ["0", "1,,2", "a", "1,2,3"] {
            assert!(parse_post_ids(Some(bad), 2).is_err(), "{bad}");
        }
    }
}
