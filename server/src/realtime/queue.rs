//! One socket's outbound queue. Pushing never waits: the hub calls it from the fan-out loop.
//!
//! Notifications (and group changes) queue up to a bound; on overflow the queued ones are dropped and the socket is
//! told to catch up from the database once it drains (the database holds every notification, so
//! nothing is lost). Like counts and the unread count are "latest value" slots, so a burst
//! collapses to one frame per post and memory per socket stays bounded whatever happens.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytestring::ByteString;
use pulse_schema::{NotificationId, PostId, UserId};

use super::lock_unpoisoned;
use super::relay::SocketWake;

/// A queued notification: its recipient sequence number, id, commit time and shared frame.
#[derive(Debug, Clone)]
pub struct QueuedNotification {
    pub seq: i64,
    pub id: NotificationId,
    pub committed_ms: i64,
    /// Pushes were queued for it (see `crate::push`).
    pub pushes: bool,
    pub frame: ByteString,
}

/// A queued change of one of the user's notification groups: its version and shared frame.
#[derive(Debug, Clone)]
pub struct QueuedGroup {
    pub version: i64,
    pub frame: ByteString,
}

/// Everything pending for a socket, taken in one go by its task.
#[derive(Debug, Default)]
pub struct Pending {
    pub notifications: VecDeque<QueuedNotification>,
    /// Latest (seq, `like_count` frame) per post; the frame is shared by every watcher.
    pub counts: HashMap<PostId, (i64, ByteString)>,
    /// The latest unread counts: notifications, groups.
    pub unread: Option<(i64, i64)>,
    /// Group changes (sockets opened with `?groups=1` only), bounded like notifications.
    pub groups: VecDeque<QueuedGroup>,
    /// Frames for this socket's user beyond notifications and counts, in order.
    pub frames: Vec<ByteString>,
    /// Something was dropped (overflow) or may have been missed (bus outage): read the database.
    pub catch_up: bool,
    pub close: Option<(u16, &'static str)>,
}

/// Handle to one live socket, shared by the hub (producer) and the socket task (consumer).
#[derive(Debug)]
pub struct SocketQueue {
    pub conn_id: u64,
    pub user: UserId,
    /// Revocation id of the login token the socket was opened with.
    pub token_id: Box<str>,
    /// Opened with `?groups=1`: takes group changes.
    pub groups: bool,
    capacity: usize,
    pending: Mutex<Pending>,
    wake: Arc<SocketWake>,
}

/// What a push did, for metrics.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    Overflowed,
    Closed,
}

impl SocketQueue {
    pub fn new(conn_id: u64, user: UserId, token_id: &str, groups: bool, capacity: usize) -> Self {
        SocketQueue {
            conn_id,
            user,
            token_id: token_id.into(),
            groups,
            capacity: capacity.max(1),
            pending: Mutex::new(Pending::default()),
            wake: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        lock_unpoisoned(&self.pending)
    }

    pub fn push_notification(&self, notification: QueuedNotification) -> Pushed {
        self.push_bounded(|pending| &mut pending.notifications, notification)
    }

    /// Queues a group change (dropped for a socket without `?groups=1`), bounded like
    /// notifications.
    pub fn push_group(&self, group: QueuedGroup) -> Pushed {
        if !self.groups {
            return Pushed::Queued;
        }
        self.push_bounded(|pending| &mut pending.groups, group)
    }

    /// Appends to one of the bounded queues; on overflow drops that queue (and its memory) and
    /// asks the socket to read the database instead.
    fn push_bounded<T>(&self, queue: fn(&mut Pending) -> &mut VecDeque<T>, item: T) -> Pushed {
        let outcome = {
            let mut pending = self.lock();
            if pending.close.is_some() {
                return Pushed::Closed;
            }
            let capacity = self.capacity;
            let queued = queue(&mut pending);
            if queued.len() >= capacity {
                *queued = VecDeque::new();
                pending.catch_up = true;
                Pushed::Overflowed
            } else {
                queued.push_back(item);
                Pushed::Queued
            }
        };
        self.wake.wake();
        outcome
    }

    pub fn set_like_count(&self, post: PostId, seq: i64, frame: &ByteString) {
        {
            let mut pending = self.lock();
            let slot = pending
                .counts
                .entry(post)
                .or_insert_with(|| (seq, frame.clone()));
            // Equal `seq` means the same count, so only a newer one replaces the frame.
            if seq > slot.0 {
                *slot = (seq, frame.clone());
            }
        }
        self.wake.wake();
    }

    /// Whether a like count of `post` is still waiting to be written (the socket is behind).
    pub fn has_like_count(&self, post: PostId) -> bool {
        self.lock().counts.contains_key(&post)
    }

    /// Queues a frame for the socket; beyond the queue's capacity the oldest is dropped (these
    /// frames are rare: one per block).
    pub fn push_frame(&self, frame: &ByteString) {
        {
            let mut pending = self.lock();
            if pending.frames.len() >= self.capacity {
                pending.frames.remove(0);
            }
            pending.frames.push(frame.clone());
        }
        self.wake.wake();
    }

    pub fn set_unread(&self, unread: i64, unread_groups: i64) {
        self.lock().unread = Some((unread, unread_groups));
        self.wake.wake();
    }

    pub fn request_catch_up(&self) {
        self.lock().catch_up = true;
        self.wake.wake();
    }

    pub fn close(&self, code: u16, reason: &'static str) {
        self.lock().close.get_or_insert((code, reason));
        self.wake.wake();
    }

    /// Takes everything pending, leaving the queue empty (and its buffers freed).
    pub fn take(&self) -> Pending {
        std::mem::take(&mut *self.lock())
    }

    /// Resolves when something was pushed since the last `take`.
    pub async fn ready(&self) {
        self.wake.woken().await
    }

    /// From the socket task: later wake-ups go through this worker's relay (see [`super::relay`]).
    pub fn attach_to_this_worker(&self) {
        self.wake.attach_to_this_worker()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(seq: i64) -> QueuedNotification {
        QueuedNotification {
            seq,
            id: NotificationId(seq),
            committed_ms: 0,
            pushes: false,
            frame: ByteString::from_static("{}"),
        }
    }

    #[test]
    fn overflow_drops_the_queue_and_asks_for_a_catch_up() {
        let queue = SocketQueue::new(1, UserId(1), "t", true, 2);
        assert_eq!(queue.push_notification(notification(1)), Pushed::Queued);
        assert_eq!(queue.push_notification(notification(2)), Pushed::Queued);
        assert_eq!(queue.push_notification(notification(3)), Pushed::Overflowed);
        let pending = queue.take();
        assert!(pending.catch_up);
        assert!(pending.notifications.is_empty());
    }

    #[test]
    fn like_counts_keep_only_the_newest_value_per_post() {
        let queue = SocketQueue::new(1, UserId(1), "t", true, 2);
        let frame = |count: &'static str| ByteString::from_static(count);
        queue.set_like_count(PostId(5), 2, &frame("20"));
        queue.set_like_count(PostId(5), 1, &frame("10"));
        queue.set_like_count(PostId(5), 3, &frame("30"));
        assert!(queue.has_like_count(PostId(5)));
        assert_eq!(queue.take().counts.get(&PostId(5)), Some(&(3, frame("30"))));
        // Written (taken): the socket is no longer behind.
        assert!(!queue.has_like_count(PostId(5)));
    }
}
