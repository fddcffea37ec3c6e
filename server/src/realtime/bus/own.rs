//! A worker's own connection: opened once, in the background, on the worker's thread (redis-rs
//! drives a connection from tasks spawned where it is opened), with the process-wide one used
//! until then, or if it cannot be opened. The single-Redis and the cluster publishers share it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

pub(super) struct OwnConnection<C> {
    connection: OnceLock<C>,
    /// Set while a connection attempt runs (cleared when one fails, so a later call retries).
    connecting: AtomicBool,
}

impl<C> Default for OwnConnection<C> {
    fn default() -> Self {
        OwnConnection {
            connection: OnceLock::new(),
            connecting: AtomicBool::new(false),
        }
    }
}

impl<C: Clone + Send + Sync + 'static> OwnConnection<C> {
    /// The worker's own connection once it is open, else `shared`; the first call (and the
    /// first after a failed attempt) starts `open` on this thread's runtime.
    pub(super) fn here<F>(self: &Arc<Self>, shared: &C, open: impl FnOnce() -> F) -> C
    where
        F: Future<Output = redis::RedisResult<C>> + Send + 'static,
    {
        if let Some(connection) = self.connection.get() {
            return connection.clone();
        }
        if !self.connecting.swap(true, Ordering::AcqRel) {
            let own = self.clone();
            let opening = open();
            tokio::spawn(async move {
                match opening.await {
                    Ok(connection) => {
                        let _ = own.connection.set(connection);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "worker publisher not connected; using the shared one");
                        own.connecting.store(false, Ordering::Release);
                    }
                }
            });
        }
        shared.clone()
    }
}
