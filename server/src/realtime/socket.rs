//! One socket's task: hello, replay, then a single `select!` loop over its queue, client frames,
//! heartbeats and token expiry. Only this task writes to the socket, so a slow reader only ever
//! delays itself.
//!
//! # No gap, no duplicate
//! The hub registered the socket (and the bus subscribed) before this task reads the database,
//! so every notification is either in the replay read or arrives on the queue afterwards, or
//! both. The task remembers the id and recipient `seq` of the last notification it sent:
//! - `seq` not above the last: already sent, dropped;
//! - `seq` exactly one above: sent;
//! - `seq` further ahead: something in between was missed (a message from another instance
//!   overtook it, or the queue overflowed) — it is committed (per-recipient commit order, see
//!   `pulse_schema::notifications`), so the task reads everything after its last id from the
//!   database and continues from there.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use futures_util::StreamExt;
use pulse_schema::notifications::NotificationView;
use pulse_schema::{notifications, NotificationId, PostId};

use super::outbox::Outbox;
use super::protocol::{parse_client_frame, ClientFrame, ServerFrame};
use super::queue::{Pending, SocketQueue};
use crate::auth::Claims;
use crate::state::AppState;
use crate::views::Notification;

/// How long a `subscribe` waits for the bus to confirm before answering with an error frame.
const SUBSCRIBE_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Close code for a client that accepted nothing for the stall timeout.
const SLOW_CLIENT: u16 = 4008;

/// Longest wait the timer is set for: a token still valid then is checked again.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365);

/// What woke the socket's loop.
enum Wake {
    Queue,
    Client(Option<Result<AggregatedMessage, actix_ws::ProtocolError>>),
    Timer,
}

/// The socket's two deadlines, served by one timer (one registration to poll per turn
/// instead of two): the next heartbeat and the token's expiry.
struct Deadlines {
    heartbeat: tokio::time::Instant,
    period: Duration,
    expires: tokio::time::Instant,
}

impl Deadlines {
    fn start(period: Duration, token_expires_at: SystemTime) -> Self {
        let now = tokio::time::Instant::now();
        Deadlines {
            heartbeat: now + period,
            period,
            expires: Self::expiry(now, token_expires_at),
        }
    }

    /// The timer's expiry deadline for a token: its expiry, or `FAR_FUTURE` away at most
    /// (reached, it is computed again from the token).
    fn expiry(now: tokio::time::Instant, token_expires_at: SystemTime) -> tokio::time::Instant {
        let valid_for = token_expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        now + valid_for.min(FAR_FUTURE)
    }

    /// When the timer must fire next.
    fn next(&self) -> tokio::time::Instant {
        self.heartbeat.min(self.expires)
    }

    /// What is due now that the timer fired. An expiry capped at `FAR_FUTURE` is set again
    /// from the token.
    fn due(&mut self, token_expires_at: SystemTime) -> Due {
        let now = tokio::time::Instant::now();
        if now >= self.expires {
            if token_expires_at <= SystemTime::now() {
                return Due::Expiry;
            }
            self.expires = Self::expiry(now, token_expires_at);
        }
        match now >= self.heartbeat {
            true => Due::Heartbeat,
            false => Due::Nothing,
        }
    }

    /// The heartbeat went out: the next one is a period from now.
    fn heartbeat_sent(&mut self) {
        self.heartbeat = tokio::time::Instant::now() + self.period;
    }
}

/// What a firing of the socket's timer found due.
#[derive(Debug, PartialEq, Eq)]
enum Due {
    Expiry,
    Heartbeat,
    Nothing,
}

/// Where this socket is in its user's notification stream.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    id: NotificationId,
    seq: i64,
}

/// Why the loop ended: the close frame to send, if any.
type Close = Option<(u16, &'static str)>;

pub struct SocketTask {
    pub state: AppState,
    pub queue: Arc<SocketQueue>,
    pub claims: Claims,
    pub since: Option<NotificationId>,
    /// The newest notification's (`seq`, `id`) when the socket was admitted, read after it was
    /// registered with the hub (see `routes::live`).
    pub latest: (i64, NotificationId),
    pub connection_id: String,
    pub outbox: Outbox,
}

/// Removes the socket from the hub however the task ends.
struct Registration {
    state: AppState,
    queue: Arc<SocketQueue>,
    watched: HashSet<PostId>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.state.hub.unregister(&self.queue, &self.watched);
        self.state
            .metrics
            .sockets_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl SocketTask {
    pub async fn run(mut self, stream: actix_ws::MessageStream) {
        self.queue.attach_to_this_worker();
        let mut registration = Registration {
            state: self.state.clone(),
            queue: self.queue.clone(),
            watched: HashSet::new(),
        };
        let stream = stream
            .max_frame_size(self.state.settings.limits.ws_max_frame_bytes)
            .aggregate_continuations();
        let close = self.serve(stream, &mut registration.watched).await;
        let code = close.map(|c| c.0).unwrap_or(1000);
        self.state.metrics.record_close(code);
        if let Some((code, reason)) = close {
            // A socket closed for slowness has a full queue ahead of its close frame: give the
            // client another stall timeout to read its way to the 4008 (it still gets nothing
            // more); any other close goes out at once or not at all.
            let wait = match code {
                SLOW_CLIENT => {
                    Duration::from_secs(self.state.settings.limits.ws_stall_timeout_secs.max(1))
                }
                _ => Duration::from_secs(1),
            };
            let reason = CloseReason {
                code: CloseCode::from(code),
                description: Some(reason.to_owned()),
            };
            let _ = tokio::time::timeout(wait, self.outbox.close(reason)).await;
        }
    }

    async fn serve(
        &mut self,
        mut stream: actix_ws::AggregatedMessageStream,
        watched: &mut HashSet<PostId>,
    ) -> Close {
        // Only what the loop needs: this function's locals live in every idle socket's task.
        let limits = &self.state.settings.limits;
        let (heartbeat_secs, client_timeout_secs, max_bad_frames) = (
            limits.ws_heartbeat_secs,
            limits.ws_client_timeout_secs,
            limits.ws_max_bad_frames,
        );
        let hello = ServerFrame::Hello {
            user_id: self.claims.user_id.0,
            connection_id: &self.connection_id,
            heartbeat_s: heartbeat_secs,
        }
        .to_json();
        // Boxed (here, for `send_after`, and every branch of the loop below but the wait
        // itself): awaited inline, a database read or a frame write would size this task's
        // state machine, which every idle socket keeps for its whole life.
        let mut cursor = match Box::pin(self.replay(hello)).await {
            Ok(cursor) => cursor,
            Err(close) => return close,
        };

        let mut deadlines = Deadlines::start(
            Duration::from_secs(heartbeat_secs.max(1)),
            self.claims.expires_at,
        );
        let timer = tokio::time::sleep_until(deadlines.next());
        tokio::pin!(timer);
        let client_timeout = Duration::from_secs(client_timeout_secs);
        let mut last_heard = Instant::now();
        let mut bad_frames = 0u32;

        loop {
            // A fixed order (tokio's default picks a random first branch on every poll): the
            // client and the timer first, so a busy queue never delays a client frame or a
            // heartbeat; only the socket's own client can hold up its own queue.
            let wake = tokio::select! {
                biased;
                message = stream.next() => Wake::Client(message),
                () = &mut timer => Wake::Timer,
                () = self.queue.ready() => Wake::Queue,
            };
            match wake {
                Wake::Queue => {
                    let pending = self.queue.take();
                    if let Err(close) = Box::pin(self.deliver(pending, &mut cursor)).await {
                        return close;
                    }
                }
                Wake::Client(message) => {
                    last_heard = Instant::now();
                    let reply = match message {
                        None => return None,
                        Some(Err(error)) => {
                            tracing::debug!(%error, "socket protocol error");
                            return Some((1009, "frame too large or malformed"));
                        }
                        Some(Ok(AggregatedMessage::Close(_))) => return Some((1000, "bye")),
                        Some(Ok(AggregatedMessage::Ping(bytes))) => {
                            let _ = Box::pin(self.outbox.pong(&bytes)).await;
                            None
                        }
                        Some(Ok(AggregatedMessage::Pong(_))) => None,
                        Some(Ok(AggregatedMessage::Binary(_))) => Some(Err((
                            "binary_unsupported",
                            "frames must be JSON text".to_owned(),
                        ))),
                        Some(Ok(AggregatedMessage::Text(text))) => {
                            Some(Box::pin(self.handle_client_frame(&text, watched)).await)
                        }
                    };
                    match reply {
                        Some(Ok(Some(frame))) => {
                            bad_frames = 0;
                            if let Err(close) = Box::pin(self.send(frame)).await {
                                return close;
                            }
                        }
                        Some(Ok(None)) => bad_frames = 0,
                        Some(Err((code, message))) => {
                            bad_frames += 1;
                            if bad_frames > max_bad_frames {
                                return Some((1008, "too many invalid frames"));
                            }
                            let frame = ServerFrame::Error {
                                code,
                                message: &message,
                            }
                            .to_json();
                            if let Err(close) = Box::pin(self.send(frame)).await {
                                return close;
                            }
                        }
                        None => {}
                    }
                }
                Wake::Timer => {
                    match deadlines.due(self.claims.expires_at) {
                        Due::Expiry => return Some((4401, "token expired")),
                        Due::Heartbeat => {
                            if last_heard.elapsed() > client_timeout {
                                return Some((1001, "heartbeat timeout"));
                            }
                            if Box::pin(self.outbox.ping(b"")).await.is_err() {
                                return None;
                            }
                            deadlines.heartbeat_sent();
                        }
                        Due::Nothing => {}
                    }
                    timer.as_mut().reset(deadlines.next());
                }
            }
        }
    }

    /// Handles a client frame: `Ok(Some(frame))` to answer, `Ok(None)` for nothing to say.
    async fn handle_client_frame(
        &self,
        text: &str,
        watched: &mut HashSet<PostId>,
    ) -> Result<Option<String>, (&'static str, String)> {
        match parse_client_frame(text)? {
            ClientFrame::Ping => Ok(Some(ServerFrame::Pong.to_json())),
            ClientFrame::Subscribe { post_ids } => {
                let max = self.state.settings.limits.ws_max_subscriptions;
                let new: HashSet<PostId> = post_ids
                    .iter()
                    .copied()
                    .filter(|id| *id > 0)
                    .map(PostId)
                    .filter(|p| !watched.contains(p))
                    .collect();
                if watched.len() + new.len() > max {
                    return Err((
                        "too_many_subscriptions",
                        format!("a socket may watch at most {max} posts"),
                    ));
                }
                let mut acks = Vec::with_capacity(new.len());
                for post in new {
                    acks.push(self.state.hub.watch(&self.queue, post));
                    watched.insert(post);
                }
                // Confirm only once the bus listens, so a like made right after `subscribed`
                // (through any instance) is reported.
                for ack in acks {
                    if !matches!(
                        tokio::time::timeout(SUBSCRIBE_ACK_TIMEOUT, ack).await,
                        Ok(Ok(()))
                    ) {
                        return Err((
                            "subscribe_failed",
                            "the bus could not subscribe; retry".to_owned(),
                        ));
                    }
                }
                let mut confirmed: Vec<i64> = post_ids
                    .iter()
                    .copied()
                    .filter(|id| watched.contains(&PostId(*id)))
                    .collect();
                confirmed.sort_unstable();
                confirmed.dedup();
                Ok(Some(
                    ServerFrame::Subscribed {
                        post_ids: &confirmed,
                    }
                    .to_json(),
                ))
            }
            ClientFrame::Unsubscribe { post_ids } => {
                for post in post_ids.into_iter().map(PostId) {
                    if watched.remove(&post) {
                        self.state.hub.unwatch(&self.queue, post);
                    }
                }
                Ok(None)
            }
        }
    }

    /// Sends what `?since=` asks for and returns the cursor to continue from.
    async fn replay(&mut self, hello: String) -> Result<Cursor, Close> {
        // The database is read before `hello` goes out, so a client that has its `hello` has a
        // socket that is fully set up (a database outage refuses it before, with 1011).
        let Some(since) = self.since else {
            let (seq, id) = self.latest;
            self.send(hello).await?;
            return Ok(Cursor { id, seq });
        };
        self.state.metrics.replays.fetch_add(1, Ordering::Relaxed);
        let missed = self.read_after(since).await?;
        // Nothing missed: the cursor's `seq` comes from the newest notification, as read at
        // admission (before this read, after registration) instead.
        let latest = missed.0.is_empty().then_some(self.latest);
        self.send(hello).await?;
        let mut cursor = Cursor { id: since, seq: 0 };
        self.send_rows(missed, &mut cursor).await?;
        if let Some((seq, id)) = latest {
            // The admission read came first, so with nothing after `since` its newest is at or
            // below `since`; if not (a deleted post took notifications with it), `seq` stays 0:
            // the first queued notification then looks like a gap and is settled from the
            // database.
            if id <= since {
                cursor = Cursor {
                    id: since.max(id),
                    seq,
                };
            }
        }
        Ok(cursor)
    }

    /// The committed notifications after `after` (the newest `replay_limit`), and whether
    /// older ones were left out.
    async fn read_after(
        &self,
        after: NotificationId,
    ) -> Result<(Vec<NotificationView>, bool), Close> {
        let limit = self.state.settings.limits.ws_replay_limit;
        notifications::replay_after_id(&self.state.db, self.claims.user_id, after, limit)
            .await
            .map_err(|e| db_failed(&e))
    }

    /// Sends every committed notification after `cursor.id` (the newest `replay_limit`, after
    /// a `gap` frame when there are more); returns whether anything was sent.
    async fn send_after(&mut self, cursor: &mut Cursor) -> Result<bool, Close> {
        let missed = self.read_after(cursor.id).await?;
        self.send_rows(missed, cursor).await
    }

    /// Sends rows read by [`Self::read_after`], a `gap` frame first when some were left out.
    async fn send_rows(
        &mut self,
        (rows, truncated): (Vec<NotificationView>, bool),
        cursor: &mut Cursor,
    ) -> Result<bool, Close> {
        if truncated {
            if let Some(first) = rows.first() {
                self.send(
                    ServerFrame::Gap {
                        before_id: first.0.id.0,
                    }
                    .to_json(),
                )
                .await?;
            }
        }
        let sent = !rows.is_empty();
        for view in rows {
            let (id, seq) = (view.0.id, view.0.seq);
            self.send(notification_frame(view)).await?;
            self.state
                .metrics
                .frames_delivered
                .fetch_add(1, Ordering::Relaxed);
            *cursor = Cursor { id, seq };
        }
        Ok(sent)
    }

    /// Writes what was queued, keeping the no-gap/no-duplicate rule in the module docs.
    async fn deliver(&mut self, pending: Pending, cursor: &mut Cursor) -> Result<(), Close> {
        if let Some(close) = pending.close {
            return Err(Some(close));
        }
        if pending.catch_up {
            self.state.metrics.replays.fetch_add(1, Ordering::Relaxed);
            Box::pin(self.send_after(cursor)).await?;
        }
        for queued in pending.notifications {
            if queued.seq <= cursor.seq {
                continue;
            }
            if queued.seq == cursor.seq + 1 {
                self.send(queued.frame).await?;
                self.state.metrics.observe_delivery(queued.committed_ms);
                *cursor = Cursor {
                    id: queued.id,
                    seq: queued.seq,
                };
            } else {
                Box::pin(self.send_after(cursor)).await?;
                // A deleted post can leave a hole in `seq`; the database read settles it.
                if cursor.seq < queued.seq {
                    cursor.seq = queued.seq;
                    cursor.id = cursor.id.max(queued.id);
                }
            }
        }
        for (_post, (_seq, frame)) in pending.counts {
            self.send(frame).await?;
        }
        if let Some(unread) = pending.unread {
            self.send(
                ServerFrame::Read {
                    unread_count: unread,
                }
                .to_json(),
            )
            .await?;
        }
        Ok(())
    }

    /// Writes one frame; a socket that accepts nothing for the stall timeout is closed (4008).
    async fn send(&mut self, frame: impl AsRef<str>) -> Result<(), Close> {
        let stall = Duration::from_secs(self.state.settings.limits.ws_stall_timeout_secs);
        match tokio::time::timeout(stall, self.outbox.text(frame.as_ref())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(None),
            Err(_elapsed) => {
                self.state
                    .metrics
                    .slow_disconnects
                    .fetch_add(1, Ordering::Relaxed);
                Err(Some((SLOW_CLIENT, "client too slow")))
            }
        }
    }
}

/// The `notification` frame for a row.
pub fn notification_frame(view: NotificationView) -> String {
    let notification = Notification::from(view);
    ServerFrame::Notification {
        notification: &notification,
    }
    .to_json()
}

fn db_failed(error: &pulse_schema::DbError) -> Close {
    tracing::warn!(%error, "socket could not read the database; client will resume with ?since=");
    Some((1011, "database unavailable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEARTBEAT: Duration = Duration::from_secs(20);

    #[test]
    fn the_timer_fires_for_the_heartbeat_when_the_token_outlives_it() {
        let deadlines = Deadlines::start(HEARTBEAT, SystemTime::now() + HEARTBEAT * 10);
        assert_eq!(deadlines.next(), deadlines.heartbeat);
        assert!(deadlines.expires > deadlines.heartbeat);
    }

    #[test]
    fn the_timer_fires_for_the_expiry_when_the_token_expires_before_the_heartbeat() {
        let deadlines = Deadlines::start(HEARTBEAT, SystemTime::now() + HEARTBEAT / 4);
        assert_eq!(deadlines.next(), deadlines.expires);
        assert!(deadlines.expires < deadlines.heartbeat);
    }

    #[test]
    fn an_expired_token_is_due_at_once() {
        let before = tokio::time::Instant::now();
        let deadlines = Deadlines::start(HEARTBEAT, SystemTime::now() - HEARTBEAT);
        assert!(deadlines.next() <= tokio::time::Instant::now());
        assert!(deadlines.next() >= before);
    }

    #[test]
    fn a_token_valid_for_decades_is_checked_again_after_far_future() {
        let now = tokio::time::Instant::now();
        let decades = Duration::from_secs(86_400 * 365 * 30);
        let expires = Deadlines::expiry(now, SystemTime::now() + decades);
        assert_eq!(expires, now + FAR_FUTURE);
    }

    #[test]
    fn a_firing_reports_the_expiry_of_an_expired_token_before_anything_else() {
        let mut deadlines = Deadlines::start(Duration::ZERO, SystemTime::now() - HEARTBEAT);
        assert_eq!(deadlines.due(SystemTime::now() - HEARTBEAT), Due::Expiry);
    }

    #[test]
    fn a_firing_reports_a_due_heartbeat_until_it_is_sent() {
        let valid = SystemTime::now() + HEARTBEAT * 10;
        let mut deadlines = Deadlines::start(Duration::ZERO, valid);
        assert_eq!(deadlines.due(valid), Due::Heartbeat);
        deadlines.period = HEARTBEAT;
        deadlines.heartbeat_sent();
        assert_eq!(deadlines.due(valid), Due::Nothing);
        assert_eq!(deadlines.next(), deadlines.heartbeat);
    }

    #[test]
    fn a_capped_expiry_that_is_reached_is_set_again_from_the_token() {
        let valid = SystemTime::now() + HEARTBEAT * 10;
        let mut deadlines = Deadlines::start(HEARTBEAT, valid);
        // As if the cap had been reached: the token is still valid, so nothing is due and the
        // expiry moves back to the token's.
        deadlines.expires = tokio::time::Instant::now();
        assert_eq!(deadlines.due(valid), Due::Nothing);
        assert!(deadlines.expires > tokio::time::Instant::now() + HEARTBEAT * 9);
    }
}
