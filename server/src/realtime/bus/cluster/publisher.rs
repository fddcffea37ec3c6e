//! Where a worker publishes on the cluster: a cluster connection of its own, opened in the
//! background on the worker's thread on its first publish (redis-rs drives a connection from
//! tasks spawned where it is opened, so a shared one makes every `SPUBLISH` hop threads), and
//! the process-wide connection until then, or if it cannot be opened.

use std::sync::Arc;

use redis::cluster_async::ClusterConnection;

use crate::realtime::bus::own::OwnConnection;

pub(super) struct Publisher {
    /// The process-wide connection, opened at startup.
    shared: ClusterConnection,
    /// The worker's own (`None` on the process-wide bus).
    own: Option<Arc<OwnConnection<ClusterConnection>>>,
    urls: Arc<[String]>,
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
        let urls = self.urls.clone();
        own.here(&self.shared, move || async move {
            super::builder(&urls).build()?.get_async_connection().await
        })
    }
}
