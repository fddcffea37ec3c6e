//! `AppState`: the one cloneable bundle every handler gets (database, bus, hub, keys, media
//! store, settings, metrics), and its per-worker copy ([`AppState::for_worker`]).

use std::sync::Arc;

use pulse_schema::Db;

use crate::admission::Admissions;
use crate::auth::{Keys, Passwords, Sessions};
use crate::config::Settings;
use crate::like_queue::LikeQueue;
use crate::media::MediaStore;
use crate::push::Push;
use crate::ratelimit::RateLimiter;
use crate::realtime::bus::Bus;
use crate::realtime::hub::Hub;
use crate::realtime::publish::Publisher;
use crate::realtime::socket::SocketContext;
use crate::shed::Shedder;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Socket opens' revocation checks, batched over this state's pool.
    pub admissions: Admissions,
    pub bus: Bus,
    pub hub: Arc<Hub>,
    pub keys: Keys,
    /// Revoked tokens and users' names, so a request's token is checked without a round trip.
    pub sessions: Arc<Sessions>,
    pub passwords: Passwords,
    pub media: MediaStore,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<RateLimiter>,
    /// Likes of one post written together (one queue per worker, over its pool).
    pub(crate) likes: LikeQueue,
    /// The turns API requests take (one gate per instance, shared by its workers).
    pub(crate) shedder: Arc<Shedder>,
    /// What this state's socket tasks share (its pool, the hub, metrics, limits).
    pub(crate) sockets: Arc<SocketContext>,
    /// Web Push: the sender and the VAPID key.
    pub push: Push,
}

impl AppState {
    /// This state for the calling HTTP worker thread: a database pool of its own, at most
    /// `connections` strong (see `Db::for_worker`), and its own Redis publisher (see
    /// `Bus::for_worker`), so a request's I/O stays on its thread. Call it on the worker thread.
    /// Should the pool fail to build, the worker shares the process-wide one (slower, not wrong).
    pub fn for_worker(&self, connections: usize) -> AppState {
        let db = self.db.for_worker(connections).unwrap_or_else(|error| {
            tracing::warn!(%error, "no pool of its own for this worker; sharing the process's");
            self.db.clone()
        });
        ready_connections(&db);
        AppState {
            admissions: self.admissions.with_db(db.clone()),
            likes: self.likes.with_db(db.clone()),
            sockets: socket_context(&db, &self.hub, &self.metrics, &self.settings, &self.push),
            db,
            bus: self.bus.for_worker(),
            ..self.clone()
        }
    }

    /// Where routes hand committed changes to live delivery.
    pub(crate) fn publisher(&self) -> Publisher<'_> {
        Publisher {
            bus: &self.bus,
            metrics: &self.metrics,
            push: &self.push,
        }
    }
}

/// Opens the worker's database connections and plans the like's statements on each, in the
/// background on the calling worker's runtime, so that the first likes do not (see
/// `pulse_schema::likes::warm`). A failure only means they are opened as they are needed.
fn ready_connections(db: &Db) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let db = db.clone();
    runtime.spawn(async move {
        if let Err(error) = pulse_schema::likes::warm(&db).await {
            tracing::warn!(%error, "the worker's database connections are opened as needed");
        }
    });
}

/// The context the socket tasks of a state with this pool share.
pub(crate) fn socket_context(
    db: &Db,
    hub: &Arc<Hub>,
    metrics: &Arc<Metrics>,
    settings: &Settings,
    push: &Push,
) -> Arc<SocketContext> {
    Arc::new(SocketContext {
        db: db.clone(),
        hub: hub.clone(),
        metrics: metrics.clone(),
        limits: settings.limits.clone(),
        push: push.clone(),
    })
}
