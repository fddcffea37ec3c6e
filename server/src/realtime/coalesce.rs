//! Like-count coalescing on one instance: at most one `like_count` frame per watched post per
//! interval, with an interval that adapts to how fast this instance's sockets write.
//!
//! A post's interval starts at the configured one (`PULSE_LIKE_COUNT_INTERVAL_MS`). Half an
//! interval after each delivery the hub probes the post's watchers here: when at least
//! [`BEHIND_PERCENT`] of them have not yet written that count (their socket tasks are queued
//! behind fan-out work), the interval doubles, up to `PULSE_LIKE_COUNT_MAX_INTERVAL_MS`; when
//! they have, it shrinks by a quarter, back to the configured one. Writing a post's counts thus
//! takes at most about half of each interval, and the other half is left to requests and
//! notifications, which are never coalesced. Counts are "latest value" data, so a longer
//! interval only skips intermediate values (the last frame still carries the final count).
//! Without it, one post with thousands of watchers kept both workers busy writing counts while
//! likes waited for a database connection and failed (load-tests/RESULTS.md, fan-out).
//! With the maximum equal to the configured interval there is no back-off and no probe.

use std::time::{Duration, Instant};

/// Share of a post's watchers (percent) that must still hold an unwritten count of the post
/// for a probe to find the post "behind". A few slow clients stay below it: their own queues
/// merge counts, and they must not slow the post down for everyone else.
pub const BEHIND_PERCENT: usize = 5;

/// The configured bounds of a post's interval.
#[derive(Debug, Clone, Copy)]
pub struct Coalescing {
    pub base: Duration,
    pub max: Duration,
}

impl Coalescing {
    pub fn new(base: Duration, max: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        Coalescing {
            base,
            max: max.max(base),
        }
    }

    /// Whether intervals can back off at all (otherwise nothing is probed).
    pub fn adapts(&self) -> bool {
        self.max > self.base
    }
}

/// What [`CountState::offer`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Older than (or the same as) a count already seen: drop it.
    Stale,
    /// Send it now; the interval restarts.
    SendNow,
    /// Keep it for [`CountState::take_due`] on a later flush tick.
    Pending,
}

/// The newest like count seen for one watched post, and when one was last sent.
#[derive(Debug)]
pub struct CountState {
    pub seq: i64,
    pub count: i64,
    last_sent: Option<Instant>,
    pending: bool,
    interval: Duration,
    adapts: bool,
    /// When to probe the watchers after the last delivery (half an interval after it).
    probe_at: Option<Instant>,
}

impl CountState {
    pub fn new(policy: &Coalescing) -> Self {
        CountState {
            seq: i64::MIN,
            count: 0,
            last_sent: None,
            pending: false,
            interval: policy.base,
            adapts: policy.adapts(),
            probe_at: None,
        }
    }

    fn due(&self) -> bool {
        self.last_sent
            .is_none_or(|at| at.elapsed() >= self.interval)
    }

    /// A new count arrived (the newest `seq` wins).
    pub fn offer(&mut self, seq: i64, count: i64) -> Offer {
        if seq <= self.seq {
            return Offer::Stale;
        }
        self.seq = seq;
        self.count = count;
        if self.due() {
            self.mark_sent();
            Offer::SendNow
        } else {
            self.pending = true;
            Offer::Pending
        }
    }

    /// On a flush tick: whether a pending count is now due (and, if so, marks it sent).
    pub fn take_due(&mut self) -> bool {
        if self.pending && self.due() {
            self.mark_sent();
            true
        } else {
            false
        }
    }

    fn mark_sent(&mut self) {
        let now = Instant::now();
        self.pending = false;
        self.last_sent = Some(now);
        self.probe_at = self.adapts.then(|| now + self.interval / 2);
    }

    /// On a flush tick: whether the watchers should be probed now (half an interval after the
    /// last delivery; once per delivery).
    pub fn take_probe(&mut self) -> bool {
        match self.probe_at {
            Some(at) if Instant::now() >= at => {
                self.probe_at = None;
                true
            }
            _ => false,
        }
    }

    /// After a probe of `watchers` sockets of which `behind` had not yet written the count.
    pub fn adapt(&mut self, behind: usize, watchers: usize, policy: &Coalescing) {
        self.interval = if watchers > 0 && behind * 100 >= watchers * BEHIND_PERCENT {
            (self.interval * 2).min(policy.max)
        } else {
            (self.interval - self.interval / 4).max(policy.base)
        };
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Coalescing {
        Coalescing::new(Duration::from_millis(100), Duration::from_millis(2000))
    }

    #[test]
    fn the_interval_doubles_while_watchers_are_behind_and_shrinks_back_when_they_catch_up() {
        let policy = policy();
        let mut state = CountState::new(&policy);
        let mut seen = Vec::new();
        for _ in 0..6 {
            state.adapt(50, 1000, &policy);
            seen.push(state.interval().as_millis());
        }
        assert_eq!(seen, [200, 400, 800, 1600, 2000, 2000]);
        for _ in 0..20 {
            state.adapt(0, 1000, &policy);
        }
        assert_eq!(state.interval(), policy.base);
    }

    #[test]
    fn a_few_slow_watchers_do_not_slow_the_post_down() {
        let policy = policy();
        let mut state = CountState::new(&policy);
        state.adapt(49, 1000, &policy);
        assert_eq!(state.interval(), policy.base);
    }

    #[test]
    fn offers_send_the_first_count_then_hold_newer_ones_until_the_interval_passes() {
        let policy = Coalescing::new(Duration::from_secs(3600), Duration::from_secs(3600));
        let mut state = CountState::new(&policy);
        assert_eq!(state.offer(1, 10), Offer::SendNow);
        assert_eq!(state.offer(1, 10), Offer::Stale);
        assert_eq!(state.offer(3, 30), Offer::Pending);
        assert_eq!(state.offer(2, 20), Offer::Stale);
        assert_eq!((state.seq, state.count), (3, 30));
        assert!(!state.take_due(), "the interval has not passed");
        assert!(!state.take_probe(), "half the interval has not passed");
    }

    #[test]
    fn each_delivery_is_probed_once_half_an_interval_later() {
        let policy = Coalescing::new(Duration::from_millis(1), Duration::from_millis(10));
        let mut state = CountState::new(&policy);
        assert!(!state.take_probe(), "nothing delivered yet");
        assert_eq!(state.offer(1, 10), Offer::SendNow);
        std::thread::sleep(Duration::from_millis(2));
        assert!(state.take_probe());
        assert!(!state.take_probe());
    }

    #[test]
    fn without_back_off_nothing_is_probed() {
        let policy = Coalescing::new(Duration::from_millis(1), Duration::from_millis(1));
        let mut state = CountState::new(&policy);
        assert_eq!(state.offer(1, 10), Offer::SendNow);
        std::thread::sleep(Duration::from_millis(2));
        assert!(!state.take_probe());
    }
}
