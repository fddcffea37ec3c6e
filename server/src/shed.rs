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
//! CoDel: judge the queue by how long it stands, not by how long it is). While overloaded, an
//! arrival that would wait longer than that (its place in the queue times the smoothed time
//! between turns) is refused at once instead of after the wait: the refusal costs no waiting,
//! and no admitted request waits behind a queue it cannot get through. More than `max_queued`
//! waiting: refused at once.

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
    /// When the last turn was given, in µs since `epoch`.
    last_turn_us: AtomicU64,
    /// The time between turns, smoothed, in µs: how fast a standing queue moves.
    turn_gap_us: AtomicU64,
    epoch: Instant,
}

/// Why a request was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shed {
    /// `max_queued` requests were already waiting.
    QueueFull,
    /// No turn came within the wait allowed.
    TimedOut,
    /// Overloaded, and the queue ahead would take longer than the wait allowed.
    TooFarBack,
}

impl Shedder {
    pub(crate) fn new(limits: ShedLimits) -> Self {
        Shedder {
            turns: Semaphore::new(limits.max_in_flight.max(1)),
            limits,
            waiting: AtomicUsize::new(0),
            last_empty_ms: AtomicU64::new(0),
            last_turn_us: AtomicU64::new(0),
            turn_gap_us: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Waits for a turn; the request runs while the permit lives.
    pub(crate) async fn admit(&self) -> Result<SemaphorePermit<'_>, Shed> {
        if let Ok(permit) = self.turns.try_acquire() {
            self.mark_empty_if_nobody_waits();
            self.note_turn();
            return Ok(permit);
        }
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        if ahead >= self.limits.max_queued {
            self.leave_queue();
            return Err(Shed::QueueFull);
        }
        let overloaded = self.overloaded();
        let wait = match overloaded {
            true => self.limits.overloaded_queue_timeout,
            false => self.limits.queue_timeout,
        };
        if overloaded && self.expected_wait(ahead + 1) > wait {
            self.leave_queue();
            return Err(Shed::TooFarBack);
        }
        let turn = tokio::time::timeout(wait, self.turns.acquire()).await;
        self.leave_queue();
        match turn {
            Ok(Ok(permit)) => {
                self.note_turn();
                Ok(permit)
            }
            _ => Err(Shed::TimedOut),
        }
    }

    /// Whether the queue has stood (not emptied) for longer than `overload_after`.
    fn overloaded(&self) -> bool {
        let since_empty = self
            .now_ms()
            .saturating_sub(self.last_empty_ms.load(Ordering::Acquire));
        Duration::from_millis(since_empty) > self.limits.overload_after
    }

    /// How long the request at `place` in the queue (1: next) can expect to wait.
    fn expected_wait(&self, place: usize) -> Duration {
        let gap = self.turn_gap_us.load(Ordering::Relaxed);
        Duration::from_micros(gap.saturating_mul(place as u64))
    }

    /// Folds the time since the previous turn into the smoothed gap (1/8 weight). A gap is
    /// counted as at most the overloaded wait, so a quiet spell does not make the next burst
    /// look slow. Concurrent turns may lose an update, which only blurs the average.
    fn note_turn(&self) {
        let now = self.epoch.elapsed().as_micros() as u64;
        let previous = self.last_turn_us.swap(now, Ordering::Relaxed);
        let cap = self.limits.overloaded_queue_timeout.as_micros() as u64;
        let gap = now.saturating_sub(previous).min(cap);
        let smoothed = self.turn_gap_us.load(Ordering::Relaxed);
        let next = smoothed - smoothed / 8 + gap / 8;
        self.turn_gap_us.store(next, Ordering::Relaxed);
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

    /// A gate whose queue last emptied half a second ago: overloaded.
    fn standing(gate: &mut Shedder) {
        gate.epoch = Instant::now()
            .checked_sub(Duration::from_millis(500))
            .unwrap_or_else(Instant::now);
        gate.last_empty_ms.store(0, Ordering::Release);
    }

    #[test]
    fn a_queue_that_stands_is_overload_until_it_empties() {
        let mut gate = shedder(1, 4, 50);
        assert!(!gate.overloaded());
        standing(&mut gate);
        assert!(gate.overloaded());
        gate.leave_queue_for_test();
        assert!(!gate.overloaded());
    }

    #[tokio::test]
    async fn overloaded_an_arrival_too_far_back_is_refused_without_waiting() {
        let mut gate = shedder(1, 4, 50);
        standing(&mut gate);
        // Turns come every 10 ms; the overloaded wait is 5 ms.
        gate.turn_gap_us.store(10_000, Ordering::Relaxed);
        let _running = gate.turns.try_acquire();
        assert_eq!(gate.admit().await.err(), Some(Shed::TooFarBack));
        assert_eq!(gate.queued(), 0);
        // Turns every 1 ms: the next in line may wait its 5 ms (and gets no turn here).
        gate.turn_gap_us.store(1_000, Ordering::Relaxed);
        assert_eq!(gate.admit().await.err(), Some(Shed::TimedOut));
    }

    #[test]
    fn the_gap_between_turns_is_smoothed_and_a_quiet_spell_counts_as_the_overloaded_wait() {
        let mut gate = shedder(1, 4, 50);
        gate.epoch = Instant::now()
            .checked_sub(Duration::from_secs(10))
            .unwrap_or_else(Instant::now);
        gate.note_turn();
        // Ten seconds since the (epoch's) previous turn count as 5 ms: 1/8 of it.
        assert_eq!(gate.turn_gap_us.load(Ordering::Relaxed), 5_000 / 8);
        for _ in 0..100 {
            gate.note_turn();
        }
        assert!(gate.turn_gap_us.load(Ordering::Relaxed) < 100);
    }
}
