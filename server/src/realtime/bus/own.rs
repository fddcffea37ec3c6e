//! A worker's own connection: opened once, in the background, on the worker's thread (redis-rs
//! drives a connection from tasks spawned where it is opened), with the process-wide one used
//! until then, or if it cannot be opened. The single-Redis and the cluster publishers share it.
//! A connection that failed a publish can be forgotten: the next call opens another.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

pub(super) struct OwnConnection<C> {
    connection: RwLock<Option<C>>,
    /// Set while a connection attempt runs (cleared when one fails, so a later call retries).
    connecting: AtomicBool,
}

impl<C> Default for OwnConnection<C> {
    fn default() -> Self {
        OwnConnection {
            connection: RwLock::new(None),
            connecting: AtomicBool::new(false),
        }
    }
}

impl<C: Clone + Send + Sync + 'static> OwnConnection<C> {
    /// The worker's own connection once it is open, else `shared()`; the first call (and the
    /// first after a failed attempt) starts `open` on this thread's runtime.
    pub(super) fn here<F>(
        self: &Arc<Self>,
        shared: impl FnOnce() -> C,
        open: impl FnOnce() -> F,
    ) -> C
    where
        F: Future<Output = redis::RedisResult<C>> + Send + 'static,
    {
        if let Some(connection) = self.opened() {
            return connection;
        }
        if !self.connecting.swap(true, Ordering::AcqRel) {
            let own = self.clone();
            let opening = open();
            tokio::spawn(async move {
                match opening.await {
                    Ok(connection) => own.set(Some(connection)),
                    Err(error) => {
                        tracing::debug!(%error, "worker publisher not connected; using the shared one");
                        own.connecting.store(false, Ordering::Release);
                    }
                }
            });
        }
        shared()
    }

    /// Drops the connection (a publish on it failed): the next [`Self::here`] opens another,
    /// with the shared one serving meanwhile.
    pub(super) fn forget(&self) {
        if self.opened().is_some() {
            self.set(None);
            self.connecting.store(false, Ordering::Release);
        }
    }

    fn opened(&self) -> Option<C> {
        let connection = self
            .connection
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        connection.clone()
    }

    fn set(&self, connection: Option<C>) {
        *self
            .connection
            .write()
            .unwrap_or_else(PoisonError::into_inner) = connection;
    }
}
