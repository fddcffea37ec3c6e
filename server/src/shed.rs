//! Load shedding: how many API requests run at once, and how long the rest may wait for a turn
//! before they are refused with 503 and `Retry-After`.
//!
//! Without it, a server offered three times what it can do queued requests for seconds (for a
//! database connection, up to the pool's wait) and answered nearly all of them late. Here at
//! most `max_in_flight` requests run; others wait in arrival order. A burst (the queue empties
//! again soon) is absorbed: a request may wait up to `queue_timeout`. Once the queue has not
//! emptied for `overload_after`, the instance is overloaded, and new arrivals wait at most
//! `overloaded_queue_timeout`: the requests that are admitted stay fast and the rest are
//! refused within milliseconds, which a client can retry elsewhere or later (the idea of
//! CoDel: judge the queue by how long it stands, not by how long it is). More than
//! `max_queued` waiting: refused at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// The limits of a [`Shedder`] (from `Limits`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShedLimits {
    pub(crate) max_in_flight: usize,
    pub(crate) max_queued: usize,
    pub(crate) queue_timeout: Duration,
    pub(crate) overload_after: Duration,
    pub(crate) overloaded_queue_timeout: Duration,
}

/// The gate every API request passes (see the module docs). One per instance.
pub(crate) struct Shedder {
    turns: Semaphore,
    limits: ShedLimits,
    waiting: AtomicUsize,
    /// When the queue was last seen empty, in ms since `epoch`.
    last_empty_ms: AtomicU64,
    epoch: Instant,
}

/// Why a request was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shed {
    /// `max_queued` requests were already waiting.
    QueueFull,
    /// No turn came within the wait allowed.
    TimedOut,
}

impl Shedder {
    pub(crate) fn new(limits: ShedLimits) -> Self {
        Shedder {
            turns: Semaphore::new(limits.max_in_flight.max(1)),
            limits,
            waiting: AtomicUsize::new(0),
            last_empty_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Waits for a turn; the request runs while the permit lives.
    pub(crate) async fn admit(&self) -> Result<SemaphorePermit<'_>, Shed> {
        if let Ok(permit) = self.turns.try_acquire() {
            self.mark_empty_if_nobody_waits();
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.limits.max_queued {
            self.leave_queue();
            return Err(Shed::QueueFull);
        }
        let wait = self.wait_allowed();
        let turn = tokio::time::timeout(wait, self.turns.acquire()).await;
        self.leave_queue();
        match turn {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Shed::TimedOut),
        }
    }

    /// The burst allowance while the queue empties now and then; the overloaded one once it
    /// has stood for `overload_after`.
    fn wait_allowed(&self) -> Duration {
        let since_empty = self
            .now_ms()
            .saturating_sub(self.last_empty_ms.load(Ordering::Acquire));
        match Duration::from_millis(since_empty) > self.limits.overload_after {
            true => self.limits.overloaded_queue_timeout,
            false => self.limits.queue_timeout,
        }
    }

    fn leave_queue(&self) {
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.last_empty_ms.store(self.now_ms(), Ordering::Release);
        }
    }

    fn mark_empty_if_nobody_waits(&self) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            self.last_empty_ms.store(self.now_ms(), Ordering::Release);
        }
    }

    #[cfg(test)]
    fn leave_queue_for_test(&self) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.leave_queue();
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Requests waiting for a turn now.
    pub(crate) fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shedder(max_in_flight: usize, max_queued: usize, timeout_ms: u64) -> Shedder {
        Shedder::new(ShedLimits {
            max_in_flight,
            max_queued,
            queue_timeout: Duration::from_millis(timeout_ms),
            overload_after: Duration::from_millis(100),
            overloaded_queue_timeout: Duration::from_millis(5),
        })
    }

    #[tokio::test]
    async fn requests_within_the_limit_run_at_once() {
        let gate = shedder(2, 0, 10);
        let first = gate.admit().await;
        let second = gate.admit().await;
        assert!(first.is_ok() && second.is_ok());
    }

    #[tokio::test]
    async fn beyond_the_queue_a_request_is_refused_at_once() {
        let gate = shedder(1, 0, 10_000);
        let _running = gate.admit().await;
        assert_eq!(gate.admit().await.err(), Some(Shed::QueueFull));
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_turn_a_finished_one_frees() {
        let gate = shedder(1, 4, 5_000);
        let running = gate.admit().await;
        let waiting = gate.admit();
        drop(running);
        assert!(waiting.await.is_ok());
        assert_eq!(gate.queued(), 0);
    }

    #[tokio::test]
    async fn a_request_that_gets_no_turn_in_time_is_refused_and_leaves_the_queue() {
        let gate = shedder(1, 4, 50);
        let _running = gate.admit().await;
        assert_eq!(gate.admit().await.err(), Some(Shed::TimedOut));
        assert_eq!(gate.queued(), 0);
    }

    #[test]
    fn a_queue_that_stands_shortens_the_wait_to_the_overloaded_one() {
        let mut gate = shedder(1, 4, 50);
        assert_eq!(gate.wait_allowed(), Duration::from_millis(50));
        // Last empty at the epoch, half a second ago.
        gate.epoch = Instant::now()
            .checked_sub(Duration::from_millis(500))
            .unwrap_or_else(Instant::now);
        gate.last_empty_ms.store(0, Ordering::Release);
        assert_eq!(gate.wait_allowed(), Duration::from_millis(5));
        gate.leave_queue_for_test();
        assert_eq!(gate.wait_allowed(), Duration::from_millis(50));
    }
}
