//! The gate in front of password hashing: how many argon2id hashes run at once, and how many
//! requests may wait for one.
//!
//! A hash takes 19 MiB and a core for tens of milliseconds. Unbounded, a burst of 400
//! registrations from 32 clients ran about 32 at once on two cores: no faster, and the
//! instance's RSS went from 39 MB to 677-681 MB, and stayed there until the blocking threads
//! exited (`load-tests/regburst.sh`). Behind this gate at most
//! `PULSE_PASSWORD_HASH_CONCURRENCY` run; up to `PULSE_PASSWORD_HASH_QUEUE_LEN` more wait
//! (asynchronously, holding no thread), and the rest get 503 at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// A place to run one hash; dropping it frees the place.
type HashSlot = OwnedSemaphorePermit;

#[derive(Clone)]
pub struct HashGate {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

impl HashGate {
    /// `concurrency` hashes at once (at least one), `max_waiting` requests queued behind them.
    pub fn new(concurrency: usize, max_waiting: usize) -> Self {
        HashGate {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
        }
    }

    /// Runs `hash` on a blocking thread once a slot is free, holding the slot until it returns;
    /// `Unavailable` (503) when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let slot = self.enter().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            hash()
        })
        .await
        .map_err(|error| ApiError::Internal(error.into()))
    }

    /// A slot now, or after a wait in the queue; `Unavailable` (503) when the queue is full.
    async fn enter(&self) -> Result<HashSlot, ApiError> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        let _in_queue = InQueue::join(&self.waiting, self.max_waiting)?;
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Unavailable("password hashing stopped".into()))
    }
}

/// One request waiting at the gate, counted for as long as it waits (also if it is dropped).
struct InQueue<'a>(&'a AtomicUsize);

impl<'a> InQueue<'a> {
    fn join(waiting: &'a AtomicUsize, max_waiting: usize) -> Result<Self, ApiError> {
        let before = waiting.fetch_add(1, Ordering::AcqRel);
        if before >= max_waiting {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::Unavailable(
                "too many password checks are queued; retry shortly".into(),
            ));
        }
        Ok(InQueue(waiting))
    }
}

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    use futures_util::poll;

    use super::*;

    type Entering<'a> = Pin<Box<dyn Future<Output = Result<HashSlot, ApiError>> + 'a>>;

    /// A gate of one slot and one place in the queue, its slot taken and a request queued.
    async fn one_running_one_queued(gate: &HashGate) -> (HashSlot, Entering<'_>) {
        let Ok(running) = gate.enter().await else {
            panic!("the first request gets the free slot");
        };
        let mut queued: Entering<'_> = Box::pin(gate.enter());
        assert!(matches!(poll!(&mut queued), Poll::Pending));
        (running, queued)
    }

    #[tokio::test]
    async fn beyond_the_running_and_the_queued_a_request_is_refused_at_once() {
        let gate = HashGate::new(1, 1);
        let (running, queued) = one_running_one_queued(&gate).await;
        assert!(matches!(gate.enter().await, Err(ApiError::Unavailable(_))));
        drop(running);
        assert!(queued.await.is_ok());
        // The queue emptied: the next one waits again instead of being refused.
        let (_running, _queued) = one_running_one_queued(&gate).await;
    }

    #[tokio::test]
    async fn a_request_dropped_while_queued_leaves_its_place() {
        let gate = HashGate::new(1, 1);
        let (_running, queued) = one_running_one_queued(&gate).await;
        drop(queued);
        let mut again = Box::pin(gate.enter());
        assert!(matches!(poll!(&mut again), Poll::Pending));
    }

    #[tokio::test]
    async fn a_hash_runs_and_frees_its_slot() {
        let gate = HashGate::new(1, 0);
        assert_eq!(gate.run(|| 6 * 7).await.ok(), Some(42));
        assert_eq!(gate.run(|| 1).await.ok(), Some(1));
    }
}
