//! Live delivery: everything behind `GET /api/v1/ws`.
//!
//! - [`protocol`]: the JSON frames of the socket, both directions.
//! - [`event`]: what travels between instances (a committed notification, a like count, a
//!   read-count change, a revoked token) and its compact wire encoding.
//! - [`queue`]: one socket's bounded outbound queue; pushing never waits.
//! - [`relay`]: wake-ups of socket tasks, batched per worker thread.
//! - [`hub`]: this instance's live map (user → sockets, post → watchers).
//! - [`coalesce`]: like-count coalescing, with an interval that backs off when sockets fall behind.
//! - [`bus`]: how events reach every instance's hub: in-process, Redis pub/sub, or sharded
//!   pub/sub on a Redis Cluster.
//! - [`socket`]: the per-socket task (replay, catch-up, heartbeats, client frames).
//! - [`publish`]: how routes hand committed changes to the bus, the one entry point they use.
//! - [`outbox`]: a socket's encoded outgoing frames, shared by its task and its connection.
//!
//! Flow of a like: the route commits the like and the notification in one transaction, then
//! hands it to [`publish::Publisher`], which serialises the event once and publishes it. Each instance's single subscriber hands
//! it to its hub, which puts it on the queue of every local socket of the recipient without
//! waiting on any of them; each socket's own task encodes its queue into its [`outbox`], which
//! the connection writes to the wire.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{FanOut, Settings};
use crate::telemetry::Metrics;
use bus::{Bus, RepublishLimits};
use coalesce::Coalescing;
use hub::Hub;

pub mod bus;
pub mod coalesce;
pub mod event;
pub mod hub;
pub mod outbox;
pub mod protocol;
pub(crate) mod publish;
pub mod queue;
pub mod relay;
pub(crate) mod socket;

/// Locks a mutex whose data every holder leaves consistent (a push or a swap), so a panic
/// elsewhere while it was held (poisoning) is no reason to stop delivering.
fn lock_unpoisoned<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The like-count coalescing window (see [`coalesce`]); the flusher runs twice per window.
pub(crate) fn like_count_interval(limits: &crate::config::Limits) -> Duration {
    Duration::from_millis(limits.like_count_interval_ms.max(1))
}

/// Builds this instance's hub and the bus that feeds it: Redis pub/sub when `REDIS_URL` is
/// set, sharded pub/sub on a Redis Cluster with `REDIS_CLUSTER_URLS` (the hub tells the bus
/// which channels to subscribe), else the hub itself.
/// The hub keeps `sessions` (this instance's copy of the revocations) current from the bus.
pub(crate) async fn start(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    sessions: &Arc<crate::auth::Sessions>,
) -> anyhow::Result<(Arc<Hub>, Bus)> {
    let limits = &settings.limits;
    let coalescing = Coalescing::new(
        like_count_interval(limits),
        Duration::from_millis(limits.like_count_max_interval_ms),
    );
    let hub = |subscriptions| {
        Arc::new(
            Hub::new(
                limits.ws_queue_len,
                limits.ws_max_sockets_per_user,
                coalescing,
                subscriptions,
                metrics.clone(),
            )
            .with_sessions(sessions.clone()),
        )
    };
    let (changes_tx, changes_rx) = mpsc::channel(limits.bus_command_queue_len.max(1));
    let republish = RepublishLimits {
        window: Duration::from_millis(limits.republish_window_ms),
        queue_len: limits.republish_queue_len,
        max_backoff: Duration::from_millis(limits.redis_max_backoff_ms),
    };
    let prefix = &settings.redis_prefix;
    let ping = Duration::from_millis(limits.redis_ping_ms.max(1));
    let (hub, bus) = match settings.fan_out().map_err(anyhow::Error::msg)? {
        FanOut::InProcess => {
            let hub = hub(None);
            (hub.clone(), Bus::InProcess(hub))
        }
        FanOut::Redis(url) => {
            let hub = hub(Some(changes_tx));
            let bus = Bus::redis(url, prefix, hub.clone(), changes_rx, republish, ping).await?;
            (hub, bus)
        }
        FanOut::Cluster(urls) => {
            let hub = hub(Some(changes_tx));
            let bus = Bus::cluster(urls, prefix, hub.clone(), changes_rx, republish, ping).await?;
            (hub, bus)
        }
    };
    Ok((hub, bus))
}
