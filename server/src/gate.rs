//! Gates in front of blocking work heavy in memory and CPU (password hashes, image decodes): how
//! much of it runs at once, how many requests may wait for a place, and 503 for the rest.
//!
//! A hash takes 19 MiB and a core for tens of milliseconds. Unbounded, a burst of 400
//! registrations from 32 clients ran about 32 at once on two cores: no faster, and the
//! instance's RSS went from 39 MB to 677-681 MB, and stayed there until the blocking threads
//! exited (`load-tests/regburst.sh`). Behind a [`HashGate`] at most
//! `PULSE_PASSWORD_HASH_CONCURRENCY` run; up to `PULSE_PASSWORD_HASH_QUEUE_LEN` more wait
//! (asynchronously, holding no thread), and the rest get 503 at once. Image decodes go through
//! a [`Gate`] of their own (`media::intake`), where one job may take more than one place.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The places one job holds; dropping them frees them.
type Slots = OwnedSemaphorePermit;

/// Runs blocking jobs on tokio's blocking pool, at most `places` worth at once, with a bounded
/// queue in front.
#[derive(Clone)]
pub struct Gate {
    places: Arc<Semaphore>,
    capacity: u32,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    busy: Busy,
}

/// What a request turned away from a full queue is told.
#[derive(Debug, Clone, Copy)]
pub struct Busy {
    /// Why, in a few words ("too many images are being processed").
    pub detail: &'static str,
    /// `Some`: a 503 with this `Retry-After` and the detail shown. `None`: a plain 503 whose
    /// detail is only logged.
    pub retry_after_secs: Option<u64>,
}

impl Busy {
    fn refusal(self) -> ApiError {
        match self.retry_after_secs {
            Some(retry_after_secs) => ApiError::Overloaded {
                detail: self.detail,
                retry_after_secs,
            },
            None => ApiError::Unavailable(self.detail.to_owned()),
        }
    }
}

impl Gate {
    /// `places` at once (at least one), `max_waiting` requests queued behind them, and what
    /// the rest are told.
    pub fn new(places: usize, max_waiting: usize, busy: Busy) -> Self {
        let capacity = u32::try_from(places.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        Gate {
            places: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            busy,
        }
    }

    /// How many places the gate has.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Runs `job` on a blocking thread once `weight` places are free (at least one, at most all
    /// of them), holding them until it returns; the [`Busy`] refusal (503) when the queue is
    /// full.
    pub async fn run<T: Send + 'static>(
        &self,
        weight: u32,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let slots = self.enter(weight).await?;
        tokio::task::spawn_blocking(move || {
            let _slots = slots;
            job()
        })
        .await
        .map_err(|error| ApiError::Internal(error.into()))
    }

    /// The places now, or after a wait in the queue; the [`Busy`] refusal when the queue is
    /// full.
    async fn enter(&self, weight: u32) -> Result<Slots, ApiError> {
        let weight = weight.clamp(1, self.capacity);
        if let Ok(slots) = self.places.clone().try_acquire_many_owned(weight) {
            return Ok(slots);
        }
        let _in_queue =
            InQueue::join(&self.waiting, self.max_waiting).ok_or_else(|| self.busy.refusal())?;
        // The semaphore is never closed: an error here would be a bug, refused the same way.
        self.places
            .clone()
            .acquire_many_owned(weight)
            .await
            .map_err(|_| self.busy.refusal())
    }
}

/// The gate in front of password hashing: one place per hash.
#[derive(Clone)]
pub struct HashGate(Gate);

impl HashGate {
    /// `concurrency` hashes at once (at least one), `max_waiting` requests queued behind them.
    pub fn new(concurrency: usize, max_waiting: usize) -> Self {
        HashGate(Gate::new(
            concurrency,
            max_waiting,
            Busy {
                detail: "too many password checks are queued; retry shortly",
                retry_after_secs: None,
            },
        ))
    }

    /// Runs `hash` on a blocking thread once a place is free; `Unavailable` (503) when the
    /// queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.0.run(1, hash).await
    }
}

/// One request waiting at a gate, counted for as long as it waits (also if it is dropped).
struct InQueue<'a>(&'a AtomicUsize);

impl<'a> InQueue<'a> {
    /// A place in the queue, or `None` when all `max_waiting` are taken.
    fn join(waiting: &'a AtomicUsize, max_waiting: usize) -> Option<Self> {
        let before = waiting.fetch_add(1, Ordering::AcqRel);
        if before >= max_waiting {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InQueue(waiting))
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

    const BUSY: Busy = Busy {
        detail: "tests",
        retry_after_secs: Some(1),
    };

    type Entering<'a> = Pin<Box<dyn Future<Output = Result<Slots, ApiError>> + 'a>>;

    /// A gate of one place and one place in the queue, its place taken and a request queued.
    async fn one_running_one_queued(gate: &Gate) -> (Slots, Entering<'_>) {
        let Ok(running) = gate.enter(1).await else {
            panic!("the first request gets the free place");
        };
        let mut queued: Entering<'_> = Box::pin(gate.enter(1));
        assert!(matches!(poll!(&mut queued), Poll::Pending));
        (running, queued)
    }

    #[tokio::test]
    async fn beyond_the_running_and_the_queued_a_request_is_refused_at_once() {
        let gate = Gate::new(1, 1, BUSY);
        let (running, queued) = one_running_one_queued(&gate).await;
        assert!(matches!(
            gate.enter(1).await,
            Err(ApiError::Overloaded {
                retry_after_secs: 1,
                ..
            })
        ));
        drop(running);
        assert!(queued.await.is_ok());
        // The queue emptied: the next one waits again instead of being refused.
        let (_running, _queued) = one_running_one_queued(&gate).await;
    }

    #[tokio::test]
    async fn a_request_dropped_while_queued_leaves_its_place() {
        let gate = Gate::new(1, 1, BUSY);
        let (_running, queued) = one_running_one_queued(&gate).await;
        drop(queued);
        let mut again = Box::pin(gate.enter(1));
        assert!(matches!(poll!(&mut again), Poll::Pending));
    }

    #[tokio::test]
    async fn a_password_check_beyond_the_queue_gets_a_plain_503() {
        let gate = HashGate::new(1, 0);
        let Ok(_running) = gate.0.enter(1).await else {
            panic!("the first check gets the free place");
        };
        assert!(matches!(
            gate.run(|| ()).await,
            Err(ApiError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_hash_runs_and_frees_its_slot() {
        let gate = HashGate::new(1, 0);
        assert_eq!(gate.run(|| 6 * 7).await.ok(), Some(42));
        assert_eq!(gate.run(|| 1).await.ok(), Some(1));
    }

    #[tokio::test]
    async fn a_heavy_job_waits_for_every_place_it_needs() {
        let gate = Gate::new(2, 1, BUSY);
        let Ok(light) = gate.enter(1).await else {
            panic!("a light job gets one of two free places");
        };
        let mut heavy: Entering<'_> = Box::pin(gate.enter(2));
        assert!(matches!(poll!(&mut heavy), Poll::Pending));
        drop(light);
        assert!(heavy.await.is_ok());
    }

    #[tokio::test]
    async fn a_job_heavier_than_the_gate_runs_alone_instead_of_never() {
        let gate = Gate::new(2, 0, BUSY);
        assert_eq!(gate.run(5, || "alone").await.ok(), Some("alone"));
    }
}
