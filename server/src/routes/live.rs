//! `GET /api/v1/ws`: verifies the token, registers the socket with the hub, waits until the bus
//! is subscribed for the user, checks revocation while reading where the user's notifications
//! stand (one statement), and only then answers 101 and starts the socket's task. The event
//! stream (`routes::events`) opens the same way, through the functions shared here.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use pulse_schema::{tokens, NotificationId};
use serde::Deserialize;

use crate::auth::Claims;
use crate::auth::Operation;
use crate::domain::MAX_ID;
use crate::error::{ApiError, ApiResult, Problem};
use crate::ratelimit::Bucket;
use crate::realtime::hub::RegisterError;
use crate::realtime::outbox::{Framing, Outbox};
use crate::realtime::queue::SocketQueue;
use crate::realtime::socket::{GroupsWanted, Inbound, SocketTask};
use crate::routes::extract::bearer;
use crate::routes::protect::throttle_user;
use crate::state::AppState;

/// How long a socket open waits for the bus to confirm the subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(open_socket));
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SocketQuery {
    /// A ticket from `POST /auth/ws-ticket` (browsers); a full token here is refused.
    pub ticket: Option<String>,
    /// The last notification id this client has seen; missed ones are replayed first.
    pub since: Option<String>,
    /// `1` (or `true`): also receive `group` and `group_removed` frames.
    #[param(pattern = "^(true|false|1|0)$")]
    pub groups: Option<String>,
    /// With `groups=1`: the last group version this client has seen; every group changed
    /// since is sent first.
    pub groups_since: Option<String>,
}

impl SocketQuery {
    fn groups(&self) -> Result<GroupsWanted, ApiError> {
        groups_wanted(self.groups.as_deref(), self.groups_since.as_deref())
    }
}

/// `?groups=` and `?groups_since=`, checked.
pub(super) fn groups_wanted(
    groups: Option<&str>,
    groups_since: Option<&str>,
) -> Result<GroupsWanted, ApiError> {
    let enabled = match groups {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => return Err(ApiError::BadRequest("groups must be 1 or 0".into())),
    };
    let since =
        match groups_since {
            None => None,
            Some(_) if !enabled => {
                return Err(ApiError::BadRequest("groups_since needs groups=1".into()))
            }
            Some(raw) => Some(parse_id(raw).ok_or_else(|| {
                ApiError::BadRequest("groups_since must be a group version".into())
            })?),
        };
    Ok(GroupsWanted {
        enabled,
        since,
        recent: false,
    })
}

/// A non-negative id or version within the API's range.
pub(super) fn parse_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|n| (0..=MAX_ID).contains(n))
}

/// `?since=`, checked.
pub(super) fn since_param(raw: Option<&str>) -> Result<Option<NotificationId>, ApiError> {
    raw.map(|raw| {
        parse_id(raw)
            .map(NotificationId)
            .ok_or_else(|| ApiError::BadRequest("since must be a notification id".into()))
    })
    .transpose()
}

/// Browsers send `Origin`; only the server's own origin and `PULSE_ALLOWED_ORIGINS` may open a
/// socket (cross-site WebSocket hijacking). Clients without `Origin` (apps, k6) are not browsers.
pub(super) fn origin_allowed(req: &HttpRequest, state: &AppState) -> bool {
    let Some(origin) = req.headers().get("origin").and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = req.connection_info().host().to_owned();
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    origin_host == host
        || state
            .settings
            .allowed_origins
            .iter()
            .any(|allowed| allowed == origin)
}

/// Opens the live socket (the protocol is in docs/API.md).
#[utoipa::path(get, path = "/api/v1/ws", tag = "live", params(SocketQuery),
    responses((status = 101, description = "Switching to the WebSocket protocol"), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 429, body = Problem),
              (status = 503, body = Problem, description = "The server cannot check the socket's token in time (the admission queue is full or the database is unreachable)")))]
pub async fn open_socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<SocketQuery>,
) -> ApiResult<HttpResponse> {
    if !origin_allowed(&req, &state) {
        return Err(ApiError::Forbidden("This origin may not open sockets."));
    }
    let claims = authenticate(&req, &state, query.ticket.as_deref()).await?;
    let since = since_param(query.since.as_deref())?;
    let groups = query.groups()?;
    throttle_user(&state, Bucket::SocketConnects, claims.user_id).await?;
    let (response, _session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::BadRequest(format!("Not a WebSocket upgrade: {e}")))?;
    // The socket writes through an `Outbox` instead of actix-ws's session (a channel). actix-ws's
    // own body is kept, never polled, inside the outbox's: its drop is how actix-ws's inbound
    // stream learns that the connection is gone.
    let (response, ws_body) = response.into_parts();
    let (outbox, body) = Outbox::new(
        Framing::WebSocket,
        state.settings.limits.ws_outbox_bytes,
        Box::new(ws_body),
    );
    let live = Live {
        claims,
        since,
        groups,
        watch: Vec::new(),
    };
    let task = admit(&state, live, outbox).await?;
    actix_web::rt::spawn(task.run(Inbound::Socket(stream)));
    Ok(response.set_body(body).map_into_boxed_body())
}

/// The token of a live connection, from `?ticket=` (used up here) or `Authorization`; signature
/// and expiry only: revocation is checked at admission (see [`admit`]).
pub(super) async fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    ticket: Option<&str>,
) -> ApiResult<Claims> {
    match (ticket, bearer(req)) {
        (Some(ticket), _) => {
            let claims = state.keys.verify(ticket, Operation::Socket)?;
            if !claims.is_ticket {
                return Err(ApiError::Unauthorized(
                    "Use a ticket from POST /auth/ws-ticket, not a token, in ?ticket=.",
                ));
            }
            let ticket_id = claims.revocation_ids.last().cloned().unwrap_or_default();
            if !tokens::use_ticket(&state.db, &ticket_id, claims.expires_naive()).await? {
                return Err(ApiError::Unauthorized("This ticket was already used."));
            }
            Ok(claims)
        }
        (None, Some(token)) => Ok(state.keys.verify(token, Operation::Socket)?),
        (None, None) => Err(ApiError::Unauthorized(
            "Send Authorization: Bearer <token> or ?ticket=.",
        )),
    }
}

/// What a live connection asked for.
pub(super) struct Live {
    pub(super) claims: Claims,
    pub(super) since: Option<NotificationId>,
    pub(super) groups: GroupsWanted,
    /// Posts whose like counts it watches from the start.
    pub(super) watch: Vec<i64>,
}

/// Registers the connection with the hub, waits for the bus, then admits it (revocation and
/// where the user's notifications stand, one statement); returns its task, ready to run.
pub(super) async fn admit(state: &AppState, live: Live, outbox: Outbox) -> ApiResult<SocketTask> {
    let queue = register(state, &live).await?;
    // Registered first, read second: a notification committed after this read reaches the
    // queue, and a logout committed after it reaches the registered socket (4401).
    let latest = match state.admissions.admit(&live.claims).await {
        Ok(latest) => latest,
        Err(refused) => {
            state.hub.unregister(&queue, &HashSet::new());
            return Err(refused);
        }
    };
    state.metrics.sockets_opened.fetch_add(1, Ordering::Relaxed);
    state.metrics.sockets_open.fetch_add(1, Ordering::Relaxed);
    let connection_id = format!("{:x}-{}", std::process::id(), queue.conn_id);
    Ok(SocketTask {
        context: state.sockets.clone(),
        queue,
        claims: live.claims,
        since: live.since,
        groups: live.groups,
        latest,
        connection_id,
        outbox,
        watch: live.watch,
    })
}

/// Registers the connection with the hub and waits until the bus listens for its user.
async fn register(state: &AppState, live: &Live) -> ApiResult<std::sync::Arc<SocketQueue>> {
    let user = live.claims.user_id;
    let (queue, subscribed) = state
        .hub
        .register(user, live.claims.token_id(), live.groups.enabled)
        .map_err(|e| match e {
            RegisterError::TooManySockets => ApiError::RateLimited {
                retry_after_secs: 5,
            },
            RegisterError::BusBusy => ApiError::Unavailable("bus command queue full".into()),
        })?;
    // Subscribed (or Redis is away, in which case a catch-up follows its return). A timeout is
    // logged and tolerated for the same reason.
    if tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribed)
        .await
        .is_err()
    {
        tracing::warn!(user = user.0, "bus subscription not confirmed in time");
    }
    Ok(queue)
}
