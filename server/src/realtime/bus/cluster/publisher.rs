//! Where a worker publishes on the cluster: a cluster connection of its own, opened in the
//! background on the worker's thread on its first publish (redis-rs drives a connection from
//! tasks spawned where it is opened, so a shared one makes every `SPUBLISH` hop threads), and
//! the process-wide connection until then, or if it cannot be opened.
//!
//! A publish that fails replaces the connections it may have used. redis-rs learns a new slot
//! owner from a closed connection or a `MOVED`, but a master that hangs (a frozen process, a
//! partition) only times out, and a connection keeps sending to it after its replica took the
//! slots over; a connection opened afresh asks the cluster who serves them now.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use redis::cluster_async::ClusterConnection;

use crate::realtime::bus::own::OwnConnection;

#[derive(Clone)]
pub(super) struct Publisher {
    /// The process-wide connection, opened at startup.
    shared: Arc<Shared>,
    /// The worker's own (`None` on the process-wide bus).
    own: Option<Arc<OwnConnection<ClusterConnection>>>,
    urls: Arc<[String]>,
}

/// The process-wide connection, replaced in the background after a failed publish.
struct Shared {
    connection: RwLock<ClusterConnection>,
    /// Set while a replacement is being opened.
    reopening: AtomicBool,
}

impl Publisher {
    pub(super) fn new(shared: ClusterConnection, urls: &[String]) -> Self {
        Publisher {
            shared: Arc::new(Shared {
                connection: RwLock::new(shared),
                reopening: AtomicBool::new(false),
            }),
            own: None,
            urls: urls.into(),
        }
    }

    /// The same, for one worker: its own connection is opened on its first publish.
    pub(super) fn for_worker(&self) -> Self {
        Publisher {
            own: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// The connection to publish on from this thread (on a worker, the first call starts
    /// opening its own).
    pub(super) fn here(&self) -> ClusterConnection {
        let Some(own) = &self.own else {
            return self.shared.current();
        };
        let urls = self.urls.clone();
        own.here(
            || self.shared.current(),
            move || async move { super::builder(&urls).build()?.get_async_connection().await },
        )
    }

    /// A publish on [`Self::here`]'s connection failed: the worker's own is forgotten (the next
    /// publish opens another) and the process-wide one replaced in the background.
    pub(super) fn failed(&self) {
        if let Some(own) = &self.own {
            own.forget();
        }
        if self.shared.reopening.swap(true, Ordering::AcqRel) {
            return;
        }
        let (shared, urls) = (self.shared.clone(), self.urls.clone());
        tokio::spawn(async move {
            let opening = async { super::builder(&urls).build()?.get_async_connection().await };
            match opening.await {
                Ok(connection) => shared.replace(connection),
                Err(error) => {
                    tracing::debug!(%error, "publisher not reopened; tried again on the next failure")
                }
            }
            shared.reopening.store(false, Ordering::Release);
        });
    }
}

impl Shared {
    fn current(&self) -> ClusterConnection {
        let connection = self
            .connection
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        connection.clone()
    }

    fn replace(&self, connection: ClusterConnection) {
        *self
            .connection
            .write()
            .unwrap_or_else(PoisonError::into_inner) = connection;
    }
}
