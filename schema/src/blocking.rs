//! Where SQLite's statements run: tokio's blocking threads, through a handle that is safe to
//! drop on any runtime.
//!
//! diesel-async's `SyncConnectionWrapper` sends every statement to a blocking thread. Its
//! default runtime waits, when a caller drops the statement's future before it finished (a
//! client that resets its connection, a timeout, a shutdown), with `block_in_place`: that
//! panics on a current-thread runtime, and every actix worker is one, so one reset request
//! took down a worker and every socket on it. The wait itself is needed: the statement still
//! holds the connection, and the wrapper expects to hold it alone again when it is next used.
//! [`BlockingThreads`] keeps the wait and drops the `block_in_place`: the dropping thread waits
//! for the statement to finish (a statement takes microseconds to milliseconds, bounded by
//! SQLite's busy timeout), on any runtime, without panicking.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll};

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;

/// Runs a connection's statements on tokio's blocking threads; see the module docs.
pub struct BlockingThreads;

impl SpawnBlocking for BlockingThreads {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Box::pin(async { Err("SQLite statement run outside a tokio runtime".into()) });
        };
        let finished = Arc::new(Finished::default());
        let signal = FinishOnDrop(finished.clone());
        let handle = runtime.spawn_blocking(move || {
            let _signal = signal;
            task()
        });
        Box::pin(Statement { handle, finished })
    }

    fn get_runtime() -> Self {
        BlockingThreads
    }
}

/// Whether a statement's blocking job has ended (returned or panicked).
#[derive(Default)]
struct Finished {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Finished {
    fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        while !*done {
            done = self
                .changed
                .wait(done)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Moved into the blocking job; marks it finished when the job ends, however it ends, after
/// the job has released everything it captured (the connection).
struct FinishOnDrop(Arc<Finished>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        *self.0.done.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.0.changed.notify_all();
    }
}

/// A statement running on a blocking thread. Dropped before it finished, it waits for it.
struct Statement<R> {
    handle: JoinHandle<R>,
    finished: Arc<Finished>,
}

impl<R> Future for Statement<R> {
    type Output = Result<R, Box<dyn Error + Send + Sync + 'static>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle)
            .poll(cx)
            .map(|result| result.map_err(Into::into))
    }
}

impl<R> Drop for Statement<R> {
    fn drop(&mut self) {
        if !self.handle.is_finished() {
            self.finished.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_statement_dropped_mid_flight_on_a_current_thread_runtime_is_waited_for() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let ran = Arc::new(Mutex::new(false));
        let flag = ran.clone();
        runtime.block_on(async move {
            let statement = BlockingThreads.spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(50));
                *flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
            });
            // Dropped before it finished, as a reset request drops its query.
            let _ = tokio::time::timeout(Duration::from_millis(1), statement).await;
        });
        assert!(*ran.lock().unwrap_or_else(PoisonError::into_inner));
    }
}
