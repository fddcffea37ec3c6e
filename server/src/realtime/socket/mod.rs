//! One live connection's task: hello, replay, then a single `select!` loop over its queue,
//! client frames, heartbeats and token expiry. Only this task writes to the connection, so a
//! slow reader only ever delays itself. The same task serves a WebSocket and a server-sent
//! event stream (`GET /api/v1/events`): the stream has no client frames (its post ids come with
//! the request), and its outbox writes events instead of frames (see `outbox`).
//!
//! - `timer`: the heartbeat and token-expiry deadlines behind the loop's one timer.
//! - `client`: what the client may send (ping, subscribe, unsubscribe) and the answers.
//! - `delivery`: replay on connect, queued notifications in order, catch-up from the database.
//! - `reorder`: what arrived ahead of a notification still on its way, held for a moment.
//!
//! # No gap, no duplicate
//! The hub registered the socket (and the bus subscribed) before this task reads the database,
//! so every notification is either in the replay read or arrives on the queue afterwards, or
//! both. The task remembers the id and recipient `seq` of the last notification it sent:
//! - `seq` not above the last: already sent, dropped;
//! - `seq` exactly one above: sent;
//! - `seq` further ahead: something in between has not arrived (a message from another
//!   instance, or from a request of the same batch, overtook it) or was missed (the queue
//!   overflowed: then the queue says so and the task reads at once). It is committed
//!   (per-recipient commit order, see `pulse_schema::notifications`), so it is on its way or in
//!   the database: the task holds what came ahead for up to `PULSE_WS_GAP_WAIT_MS` (`reorder`),
//!   sending it as soon as the gap closes; if the wait runs out, it reads everything after its
//!   last id from the database and continues from there. Group changes follow the same rule
//!   with the user's group version.

mod client;
mod delivery;
mod reorder;
mod timer;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use futures_util::StreamExt;
use pulse_schema::{Db, NotificationId, PostId};

use super::hub::Hub;
use super::outbox::{Framing, Outbox};
use super::protocol::ServerFrame;
use super::queue::SocketQueue;
use crate::auth::Claims;
use crate::config::Limits;
use crate::push::Push;
use crate::telemetry::Metrics;
use reorder::Held;
use timer::{Deadlines, Due};

/// Close code for a client that accepted nothing for the stall timeout.
const SLOW_CLIENT: u16 = 4008;

/// What every socket task of one worker shares, behind one pointer per socket.
pub(crate) struct SocketContext {
    /// The worker's database pool (replay and catch-up reads).
    pub(crate) db: Db,
    pub(crate) hub: Arc<Hub>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limits: Limits,
    /// Cancels the pushes of notifications this socket shows.
    pub(crate) push: Push,
}

/// What woke the socket's loop.
enum Wake {
    Queue,
    Client(ClientMessage),
    Timer,
}

/// Why the loop ended: the close frame to send, if any.
type Close = Option<(u16, &'static str)>;

/// A registered, admitted socket, ready to run (see `routes::live`).
pub(crate) struct SocketTask {
    pub(crate) context: Arc<SocketContext>,
    pub(crate) queue: Arc<SocketQueue>,
    pub(crate) claims: Claims,
    pub(crate) since: Option<NotificationId>,
    /// `?groups=1` and `?groups_since=`.
    pub(crate) groups: GroupsWanted,
    /// The newest notification's (`seq`, `id`) when the socket was admitted, read after it was
    /// registered with the hub (see `routes::live`).
    pub(crate) latest: (i64, NotificationId),
    pub(crate) connection_id: String,
    pub(crate) outbox: Outbox,
    /// Posts to watch from the start (an event stream's `?post_ids=`; a socket subscribes with
    /// frames instead).
    pub(crate) watch: Vec<i64>,
}

/// Where client frames come from: a WebSocket's stream, or nothing (an event stream, whose
/// only news from the client is that it left).
pub(crate) enum Inbound {
    Socket(actix_ws::MessageStream),
    EventStream,
}

/// [`Inbound`], with a socket's continuation frames aggregated.
enum Frames {
    Socket(actix_ws::AggregatedMessageStream),
    EventStream,
}

type ClientMessage = Option<Result<AggregatedMessage, actix_ws::ProtocolError>>;

impl Frames {
    /// The next client frame; `None` once the client is gone.
    async fn next(&mut self, outbox: &Outbox) -> ClientMessage {
        match self {
            Frames::Socket(stream) => stream.next().await,
            Frames::EventStream => {
                outbox.gone().await;
                None
            }
        }
    }
}

/// Whether a socket takes group changes (`?groups=1`), and the version it resumes from.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GroupsWanted {
    pub(crate) enabled: bool,
    pub(crate) since: Option<i64>,
    /// Resuming without a version (an event stream's `Last-Event-ID` from before any group
    /// event): the last `ws_replay_limit` group changes are sent again (a group event replaces
    /// its group's state, so a repeat is harmless).
    pub(crate) recent: bool,
}

/// Removes the socket from the hub however the task ends.
struct Registration {
    context: Arc<SocketContext>,
    queue: Arc<SocketQueue>,
    watched: HashSet<PostId>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.context.hub.unregister(&self.queue, &self.watched);
        self.context
            .metrics
            .sockets_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The loop's state besides the task: the client's liveness and its run of bad frames.
struct Liveness {
    last_heard: Instant,
    bad_frames: u32,
}

impl SocketTask {
    /// Serves the socket until it closes, then sends the close frame the loop chose.
    pub(crate) async fn run(mut self, inbound: Inbound) {
        self.queue.attach_to_this_worker();
        let mut registration = Registration {
            context: self.context.clone(),
            queue: self.queue.clone(),
            watched: HashSet::new(),
        };
        let frames = match inbound {
            Inbound::Socket(stream) => Frames::Socket(
                stream
                    .max_frame_size(self.context.limits.ws_max_frame_bytes)
                    .aggregate_continuations(),
            ),
            Inbound::EventStream => Frames::EventStream,
        };
        let close = self.serve(frames, &mut registration.watched).await;
        self.context
            .metrics
            .record_close(close.map(|c| c.0).unwrap_or(1000));
        if let Some(close) = close {
            self.send_close(close).await;
        }
    }

    /// Sends the close frame. A socket closed for slowness has a full queue ahead of it: the
    /// client gets another stall timeout to read its way to the 4008 (and nothing more); any
    /// other close goes out at once or not at all.
    async fn send_close(&mut self, (code, reason): (u16, &'static str)) {
        let wait = match code {
            SLOW_CLIENT => Duration::from_secs(self.context.limits.ws_stall_timeout_secs.max(1)),
            _ => Duration::from_secs(1),
        };
        let reason = CloseReason {
            code: CloseCode::from(code),
            description: Some(reason.to_owned()),
        };
        let _ = tokio::time::timeout(wait, self.outbox.close(reason)).await;
    }

    /// Hello and replay, then the loop; returns the close reason.
    ///
    /// Every branch but the wait itself is boxed: awaited inline, a database read or a frame
    /// write would size this task's state machine, which every idle socket keeps for its life.
    async fn serve(&mut self, mut frames: Frames, watched: &mut HashSet<PostId>) -> Close {
        let mut cursor = match Box::pin(self.replay()).await {
            Ok(cursor) => cursor,
            Err(close) => return close,
        };
        let mut liveness = Liveness {
            last_heard: Instant::now(),
            bad_frames: 0,
        };
        if !self.watch.is_empty() {
            let posts = std::mem::take(&mut self.watch);
            let reply = Box::pin(self.subscribe(&posts, watched)).await;
            if let Err(close) = Box::pin(self.answer(reply, &mut liveness)).await {
                return close;
            }
        }
        let mut deadlines = Deadlines::start(self.heartbeat(), self.claims.expires_at);
        let gap_wait = Duration::from_millis(self.context.limits.ws_gap_wait_ms);
        let mut held = Held::default();
        let timer = tokio::time::sleep_until(deadlines.next());
        tokio::pin!(timer);
        loop {
            // A fixed order (tokio's default picks a random first branch on every poll): the
            // client and the timer first, so a busy queue never delays a client frame or a
            // heartbeat; only the socket's own client can hold up its own queue.
            let wake = tokio::select! {
                biased;
                message = frames.next(&self.outbox) => Wake::Client(message),
                () = &mut timer => Wake::Timer,
                () = self.queue.ready() => Wake::Queue,
            };
            let turn = match wake {
                Wake::Queue => {
                    let pending = self.queue.take();
                    let turn = Box::pin(self.deliver(pending, &mut cursor, &mut held)).await;
                    if deadlines.set_gap(held.deadline(gap_wait)) {
                        timer.as_mut().reset(deadlines.next());
                    }
                    turn
                }
                Wake::Client(message) => {
                    Box::pin(self.on_client(message, &mut liveness, watched)).await
                }
                Wake::Timer => {
                    let mut turn = Ok(());
                    if deadlines.gap_due() {
                        turn = Box::pin(self.read_missing(&mut cursor, &mut held)).await;
                        deadlines.set_gap(None);
                    }
                    if turn.is_ok() {
                        turn = Box::pin(self.on_timer(&mut deadlines, &liveness)).await;
                    }
                    timer.as_mut().reset(deadlines.next());
                    turn
                }
            };
            if let Err(close) = turn {
                return close;
            }
        }
    }

    /// The timer fired: close an expired token's socket (4401), or send the heartbeat ping,
    /// closing a client heard from too long ago (1001).
    async fn on_timer(
        &mut self,
        deadlines: &mut Deadlines,
        liveness: &Liveness,
    ) -> Result<(), Close> {
        match deadlines.due(self.claims.expires_at) {
            Due::Expiry => Err(Some((4401, "token expired"))),
            Due::Heartbeat => {
                let timeout = Duration::from_secs(self.context.limits.ws_client_timeout_secs);
                // An event stream's client never writes: its write failing is how it is missed.
                let silent = self.outbox.framing() == Framing::EventStream;
                if !silent && liveness.last_heard.elapsed() > timeout {
                    return Err(Some((1001, "heartbeat timeout")));
                }
                self.outbox.ping(b"").await.map_err(|_| None)?;
                deadlines.heartbeat_sent();
                Ok(())
            }
            Due::Nothing => Ok(()),
        }
    }

    /// How often the connection is pinged: a WebSocket ping, or an event stream's comment line.
    fn heartbeat(&self) -> Duration {
        let limits = &self.context.limits;
        let secs = match self.outbox.framing() {
            Framing::WebSocket => limits.ws_heartbeat_secs,
            Framing::EventStream => limits.sse_heartbeat_secs,
        };
        Duration::from_secs(secs.max(1))
    }

    /// Sends the `hello` frame (the socket's identity and heartbeat period).
    fn hello(&self) -> String {
        ServerFrame::Hello {
            user_id: self.claims.user_id.0,
            connection_id: &self.connection_id,
            heartbeat_s: self.heartbeat().as_secs(),
        }
        .to_json()
    }
}
