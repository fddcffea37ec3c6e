//! Live delivery: everything behind `GET /api/v1/ws`.
//!
//! - [`protocol`]: the JSON frames of the socket, both directions.
//! - [`event`]: what travels between instances (a committed notification, a like count, a
//!   read-count change, a revoked token) and its compact wire encoding.
//! - [`queue`]: one socket's bounded outbound queue; pushing never waits.
//! - [`relay`]: wake-ups of socket tasks, batched per worker thread.
//! - [`hub`]: this instance's live map (user → sockets, post → watchers).
//! - [`coalesce`]: like-count coalescing, with an interval that backs off when sockets fall behind.
//! - [`bus`]: how events reach every instance's hub: in-process, or Redis pub/sub.
//! - [`socket`]: the per-socket task (replay, catch-up, heartbeats, client frames).
//! - [`outbox`]: a socket's encoded outgoing frames, shared by its task and its connection.
//!
//! Flow of a like: the route commits the like and the notification in one transaction, then
//! [`bus::Bus::publish`]es the event, serialised once. Each instance's single subscriber hands
//! it to its hub, which puts it on the queue of every local socket of the recipient without
//! waiting on any of them; each socket's own task encodes its queue into its [`outbox`], which
//! the connection writes to the wire.

use std::sync::{Mutex, MutexGuard};

pub mod bus;
pub mod coalesce;
pub mod event;
pub mod hub;
pub mod outbox;
pub mod protocol;
pub mod queue;
pub mod relay;
pub mod socket;

/// Locks a mutex whose data every holder leaves consistent (a push or a swap), so a panic
/// elsewhere while it was held (poisoning) is no reason to stop delivering.
fn lock_unpoisoned<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
