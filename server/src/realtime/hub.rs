//! The hub: this instance's live sessions. A DashMap from user id to that user's sockets here,
//! and one from post id to the sockets watching it. Delivery is a non-blocking push onto each
//! socket's own queue; nothing here awaits, and no map guard is held across an `.await`.
//!
//! When a user gets their first socket here (or a post its first watcher) the hub asks the bus
//! to subscribe to that channel, and when the last one leaves, to unsubscribe. The request is
//! queued while the map entry is still locked, so subscribe/unsubscribe requests for one channel
//! reach the bus in the order the map changed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use pulse_schema::{PostId, UserId};
use tokio::sync::{mpsc, oneshot};

use super::coalesce::{Coalescing, CountState, Offer};
use super::event::{post_channel, user_channel, Event, REVOCATIONS_CHANNEL};
use super::protocol::ServerFrame;
use super::queue::{Pushed, QueuedGroup, QueuedNotification, SocketQueue};
use crate::auth::Sessions;
use crate::telemetry::Metrics;

/// A request to the Redis subscriber to (un)subscribe a channel; `ack` fires once subscribed.
#[derive(Debug)]
pub struct SubscriptionChange {
    pub channel: String,
    pub subscribe: bool,
    pub ack: Option<oneshot::Sender<()>>,
}

/// Why a socket could not be registered.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    TooManySockets,
    BusBusy,
}

pub struct Hub {
    users: DashMap<UserId, Vec<Arc<SocketQueue>>>,
    watchers: DashMap<PostId, Vec<Arc<SocketQueue>>>,
    counts: DashMap<PostId, CountState>,
    next_conn_id: AtomicU64,
    queue_len: usize,
    max_sockets_per_user: usize,
    coalescing: Coalescing,
    /// Set in Redis mode: where subscription changes go.
    subscriptions: Option<mpsc::Sender<SubscriptionChange>>,
    pub metrics: Arc<Metrics>,
    /// This instance's copy of the revocations, kept current from the bus.
    sessions: Option<Arc<Sessions>>,
    /// Whether [`REVOCATIONS_CHANNEL`] is among the bus's channels (Redis: once confirmed).
    hears_revocations: AtomicBool,
}

impl Hub {
    pub fn new(
        queue_len: usize,
        max_sockets_per_user: usize,
        coalescing: Coalescing,
        subscriptions: Option<mpsc::Sender<SubscriptionChange>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Hub {
            sessions: None,
            hears_revocations: AtomicBool::new(false),
            users: DashMap::new(),
            watchers: DashMap::new(),
            counts: DashMap::new(),
            next_conn_id: AtomicU64::new(1),
            queue_len,
            max_sockets_per_user,
            coalescing,
            subscriptions,
            metrics,
        }
    }

    /// Queues a subscription change; must be called with the map entry still locked.
    fn request(&self, channel: String, subscribe: bool, ack: Option<oneshot::Sender<()>>) -> bool {
        match &self.subscriptions {
            None => {
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
                true
            }
            Some(sender) => sender
                .try_send(SubscriptionChange {
                    channel,
                    subscribe,
                    ack,
                })
                .is_ok(),
        }
    }

    /// Adds a socket for `user`. The returned receiver resolves once this instance is
    /// subscribed to the user's channel: only then may the socket read the database for its
    /// replay (subscribe first, then read, so nothing falls between the two).
    pub fn register(
        &self,
        user: UserId,
        token_id: &str,
        groups: bool,
    ) -> Result<(Arc<SocketQueue>, oneshot::Receiver<()>), RegisterError> {
        let conn_id = self.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(SocketQueue::new(
            conn_id,
            user,
            token_id,
            groups,
            self.queue_len,
        ));
        let (ack_tx, ack_rx) = oneshot::channel();
        let mut sockets = self.users.entry(user).or_default();
        if sockets.len() >= self.max_sockets_per_user {
            return Err(RegisterError::TooManySockets);
        }
        // Every socket waits for a subscription ack (Redis acknowledges a repeated SUBSCRIBE
        // too), so a second socket cannot race ahead of the first one's SUBSCRIBE.
        if !self.request(user_channel(user), true, Some(ack_tx)) {
            if sockets.is_empty() {
                drop(sockets);
                self.users.remove_if(&user, |_, v| v.is_empty());
            }
            return Err(RegisterError::BusBusy);
        }
        sockets.push(queue.clone());
        Ok((queue, ack_rx))
    }

    /// Removes a socket and its post subscriptions.
    pub fn unregister(&self, queue: &SocketQueue, watched: &HashSet<PostId>) {
        for post in watched {
            self.unwatch(queue, *post);
        }
        if let Entry::Occupied(mut entry) = self.users.entry(queue.user) {
            entry.get_mut().retain(|s| s.conn_id != queue.conn_id);
            if entry.get().is_empty() {
                self.request(user_channel(queue.user), false, None);
                entry.remove();
            }
        }
    }

    /// Adds `queue` to the watchers of `post`. The receiver resolves once the bus is subscribed
    /// to the post's channel (every call asks, so a second watcher cannot race ahead of the
    /// first one's SUBSCRIBE); it errors if the request could not even be queued.
    pub fn watch(&self, queue: &Arc<SocketQueue>, post: PostId) -> oneshot::Receiver<()> {
        let (ack_tx, ack_rx) = oneshot::channel();
        let mut watchers = self.watchers.entry(post).or_default();
        self.request(post_channel(post), true, Some(ack_tx));
        if !watchers.iter().any(|s| s.conn_id == queue.conn_id) {
            watchers.push(queue.clone());
        }
        ack_rx
    }

    pub fn unwatch(&self, queue: &SocketQueue, post: PostId) {
        if let Entry::Occupied(mut entry) = self.watchers.entry(post) {
            entry.get_mut().retain(|s| s.conn_id != queue.conn_id);
            if entry.get().is_empty() {
                self.request(post_channel(post), false, None);
                entry.remove();
                self.counts.remove(&post);
            }
        }
    }

    /// Queues something on every local socket of `user` with `push`, counting overflows.
    fn queue_for(&self, user: UserId, push: impl Fn(&SocketQueue) -> Pushed) {
        if let Some(sockets) = self.users.get(&user) {
            for socket in sockets.iter() {
                if push(socket) == Pushed::Overflowed {
                    self.metrics.queue_overflows.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Hands an event to the local sockets it concerns. Never waits.
    pub fn dispatch(&self, event: Event) {
        match event {
            Event::Notification {
                user,
                seq,
                id,
                committed_ms,
                pushes,
                frame,
                group,
            } => self.queue_for(user, |socket| {
                let shown = socket.push_notification(QueuedNotification {
                    seq,
                    id,
                    committed_ms,
                    pushes,
                    frame: frame.clone(),
                });
                let Some(change) = &group else {
                    return shown;
                };
                let grouped = socket.push_group(QueuedGroup {
                    version: change.version,
                    frame: change.frame.clone(),
                });
                if shown == Pushed::Queued {
                    grouped
                } else {
                    shown
                }
            }),
            Event::LikeCount { post, seq, count } => self.coalesce_like_count(post, seq, count),
            Event::Read {
                user,
                unread,
                unread_groups,
            } => {
                if let Some(sockets) = self.users.get(&user) {
                    sockets
                        .iter()
                        .for_each(|s| s.set_unread(unread, unread_groups));
                }
            }
            Event::Group {
                user,
                version,
                frame,
            } => self.queue_for(user, |socket| {
                socket.push_group(QueuedGroup {
                    version,
                    frame: frame.clone(),
                })
            }),
            Event::Frame { user, frame } => {
                if let Some(sockets) = self.users.get(&user) {
                    sockets.iter().for_each(|s| s.push_frame(&frame));
                }
            }
            Event::Revocation { ids, expires_secs } => {
                if let Some(sessions) = &self.sessions {
                    let expires = chrono::DateTime::from_timestamp(expires_secs, 0)
                        .unwrap_or_default()
                        .naive_utc();
                    sessions.revoke(&ids, expires);
                }
            }
            Event::Revoke { user, token_id } => {
                if let Some(sockets) = self.users.get(&user) {
                    sockets
                        .iter()
                        .filter(|s| *s.token_id == *token_id)
                        .for_each(|s| s.close(4401, "token revoked"));
                }
            }
        }
    }

    /// Sends a like count now if none went out for this post in its interval; otherwise keeps
    /// it as pending for [`flush_like_counts`](Self::flush_like_counts). The newest count (by
    /// `seq`) always wins, so the last message carries the final count. See [`super::coalesce`].
    fn coalesce_like_count(&self, post: PostId, seq: i64, count: i64) {
        if !self.watchers.contains_key(&post) {
            return;
        }
        let offer = self
            .counts
            .entry(post)
            .or_insert_with(|| CountState::new(&self.coalescing))
            .offer(seq, count);
        if offer == Offer::SendNow {
            self.deliver_like_count(post, seq, count);
        }
    }

    /// Sends pending coalesced like counts whose interval has passed. Called on a timer.
    pub fn flush_like_counts(&self) {
        let mut due = Vec::new();
        let mut probes = Vec::new();
        for mut state in self.counts.iter_mut() {
            if state.take_probe() {
                probes.push(*state.key());
            }
            if state.take_due() {
                due.push((*state.key(), state.seq, state.count));
            }
        }
        for post in probes {
            self.adapt_interval(post);
        }
        for (post, seq, count) in due {
            self.deliver_like_count(post, seq, count);
        }
    }

    /// Half an interval after a delivery: adapts the post's interval to how many of its
    /// watchers here have not written that count yet (see [`super::coalesce`]).
    fn adapt_interval(&self, post: PostId) {
        let (behind, watchers) = match self.watchers.get(&post) {
            Some(watchers) => (
                watchers.iter().filter(|s| s.has_like_count(post)).count(),
                watchers.len(),
            ),
            None => return,
        };
        if let Some(mut state) = self.counts.get_mut(&post) {
            let before = state.interval();
            state.adapt(behind, watchers, &self.coalescing);
            if state.interval() != before {
                tracing::debug!(
                    post = post.0,
                    behind,
                    watchers,
                    interval_ms = state.interval().as_millis() as u64,
                    "like-count interval adapted"
                );
            }
        }
    }

    /// The current like-count interval of a watched post (after any back-off).
    #[cfg(test)]
    fn like_count_interval(&self, post: PostId) -> Option<Duration> {
        self.counts.get(&post).map(|state| state.interval())
    }

    /// Serialises the `like_count` frame once and hands it to every watcher.
    fn deliver_like_count(&self, post: PostId, seq: i64, count: i64) {
        if let Some(watchers) = self.watchers.get(&post) {
            let frame = ByteString::from(
                ServerFrame::LikeCount {
                    post_id: post.0,
                    like_count: count,
                }
                .to_json(),
            );
            watchers
                .iter()
                .for_each(|s| s.set_like_count(post, seq, &frame));
        }
    }

    /// Asks every local socket to catch up from the database (after a bus outage).
    /// Keeps this instance's copy of the revocations current (see `auth::sessions`).
    pub fn with_sessions(mut self, sessions: Arc<Sessions>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// Subscribes [`REVOCATIONS_CHANNEL`] for good, then loads the revocations committed so far:
    /// from then on the copy is current (see `auth::sessions`). Fails if the bus does not
    /// confirm within `timeout` (the database answers revocation checks meanwhile).
    pub async fn hear_revocations(&self, timeout: Duration) -> anyhow::Result<()> {
        let Some(sessions) = self.sessions.clone() else {
            return Ok(());
        };
        let (ack, subscribed) = oneshot::channel();
        if !self.request(REVOCATIONS_CHANNEL.to_owned(), true, Some(ack)) {
            anyhow::bail!("the bus command queue is full");
        }
        // Wanted from now on: every later resubscription includes it (see `bus_subscribed`).
        self.hears_revocations.store(true, Ordering::Release);
        let loaded = tokio::spawn(async move {
            match subscribed.await {
                Ok(()) => sessions.load().await.map(drop).map_err(anyhow::Error::from),
                // The change was dropped with a lost connection: the resubscription reloads.
                Err(_) => Ok(()),
            }
        });
        tokio::time::timeout(timeout, loaded).await??
    }

    /// The bus listens again after an outage (every channel resubscribed): revocations made
    /// meanwhile were missed, so the copy is loaded again.
    pub fn bus_subscribed(&self) {
        if let (Some(sessions), true) = (
            &self.sessions,
            self.hears_revocations.load(Ordering::Acquire),
        ) {
            sessions.reload_soon();
        }
    }

    /// The bus lost its connection: revocations may be missed until it is back.
    pub fn bus_lost(&self) {
        if let Some(sessions) = &self.sessions {
            sessions.stale();
        }
    }

    pub fn catch_up_all(&self) {
        for sockets in self.users.iter() {
            sockets.iter().for_each(|s| s.request_catch_up());
        }
    }

    /// Every local socket, for draining.
    pub fn all_sockets(&self) -> Vec<Arc<SocketQueue>> {
        self.users
            .iter()
            .flat_map(|entry| entry.value().clone())
            .collect()
    }

    pub fn socket_count(&self) -> usize {
        self.users.iter().map(|entry| entry.value().len()).sum()
    }

    /// Closes every socket with 1001, in batches spread over `over`, so clients do not all
    /// reconnect at the same instant.
    pub async fn drain(&self, over: Duration) {
        let sockets = self.all_sockets();
        if sockets.is_empty() {
            return;
        }
        const BATCHES: usize = 10;
        let batch_size = sockets.len().div_ceil(BATCHES);
        let pause = over / BATCHES as u32;
        for batch in sockets.chunks(batch_size.max(1)) {
            batch
                .iter()
                .for_each(|s| s.close(1001, "server shutting down"));
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::sleep;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_post_whose_watchers_fall_behind_backs_off_then_recovers_once_they_keep_up() {
        let hub = Hub::new(
            16,
            4,
            Coalescing::new(ms(20), ms(1000)),
            None,
            Arc::new(Metrics::default()),
        );
        let post = PostId(7);
        let queues: Vec<_> = (1..=20)
            .map(|user| {
                let Ok((queue, _)) = hub.register(UserId(user), "t", false) else {
                    panic!("socket of user {user} refused");
                };
                drop(hub.watch(&queue, post));
                queue
            })
            .collect();
        let count = |seq: i64| Event::LikeCount {
            post,
            seq,
            count: seq,
        };

        // Nobody writes: the probe half an interval later finds every watcher behind.
        hub.dispatch(count(1));
        sleep(ms(12));
        hub.flush_like_counts();
        assert_eq!(hub.like_count_interval(post), Some(ms(40)));

        // Every socket writes right after each delivery: the interval shrinks back to 20 ms.
        for seq in 2..12 {
            queues.iter().for_each(|q| drop(q.take()));
            sleep(ms(45));
            hub.dispatch(count(seq));
            queues.iter().for_each(|q| drop(q.take()));
            sleep(ms(25));
            hub.flush_like_counts();
        }
        assert_eq!(hub.like_count_interval(post), Some(ms(20)));
        // The last count went out.
        assert!(queues.iter().all(|q| !q.has_like_count(post)));
    }
}
