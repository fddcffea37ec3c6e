//! Where a worker publishes on the cluster: a cluster connection of its own, opened in the
//! background on the worker's thread on its first publish (redis-rs drives a connection from
//! tasks spawned where it is opened, so a shared one makes every `SPUBLISH` hop threads), and
//! the process-wide connection until then, or if it cannot be opened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use redis::cluster_async::ClusterConnection;

pub(super) struct Publisher {
    /// The process-wide connection, opened at startup.
    shared: ClusterConnection,
    /// The worker's own (`None` on the process-wide bus).
    own: Option<Arc<Own>>,
    urls: Arc<[String]>,
}

#[derive(Default)]
struct Own {
    connection: OnceLock<ClusterConnection>,
    /// Set while a connection attempt runs (cleared when one fails, so a later publish retries).
    connecting: AtomicBool,
}

impl Publisher {
    pub(super) fn new(shared: ClusterConnection, urls: &[String]) -> Self {
        Publisher {
            shared,
            own: None,
            urls: urls.into(),
        }
    }

    /// The same, for one worker: its own connection is opened on its first publish.
    pub(super) fn for_worker(&self) -> Self {
        Publisher {
            shared: self.shared.clone(),
            own: Some(Arc::default()),
            urls: self.urls.clone(),
        }
    }

    /// The connection to publish on from this thread (on a worker, the first call starts
    /// opening its own).
    pub(super) fn here(&self) -> ClusterConnection {
        let Some(own) = &self.own else {
            return self.shared.clone();
        };
        if let Some(connection) = own.connection.get() {
            return connection.clone();
        }
        if !own.connecting.swap(true, Ordering::AcqRel) {
            // Spawned here, on the worker's runtime, so the connection's tasks run here.
            tokio::spawn(open(own.clone(), self.urls.clone()));
        }
        self.shared.clone()
    }
}

async fn open(own: Arc<Own>, urls: Arc<[String]>) {
    let opened = match super::builder(&urls).build() {
        Ok(client) => client.get_async_connection().await,
        Err(error) => Err(error),
    };
    match opened {
        Ok(connection) => {
            let _ = own.connection.set(connection);
        }
        Err(error) => {
            tracing::debug!(%error, "worker publisher not connected; using the shared one");
            own.connecting.store(false, Ordering::Release);
        }
    }
}
