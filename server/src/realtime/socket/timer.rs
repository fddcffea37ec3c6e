//! The socket's one timer: the next heartbeat, the token's expiry and the end of a wait for a
//! missing notification, served by a single registration (one timer to poll per loop turn).

use std::time::{Duration, SystemTime};

/// Longest wait the timer is set for: a token still valid then is checked again.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365);

/// The socket's deadlines, served by one timer: the next heartbeat, the token's expiry and,
/// while something is held back (`reorder`), when to stop waiting for what it follows.
pub(super) struct Deadlines {
    heartbeat: tokio::time::Instant,
    period: Duration,
    expires: tokio::time::Instant,
    gap: Option<tokio::time::Instant>,
}

impl Deadlines {
    pub(super) fn start(period: Duration, token_expires_at: SystemTime) -> Self {
        let now = tokio::time::Instant::now();
        Deadlines {
            heartbeat: now + period,
            period,
            expires: Self::expiry(now, token_expires_at),
            gap: None,
        }
    }

    /// The timer's expiry deadline for a token: its expiry, or `FAR_FUTURE` away at most
    /// (reached, it is computed again from the token).
    fn expiry(now: tokio::time::Instant, token_expires_at: SystemTime) -> tokio::time::Instant {
        let valid_for = token_expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        now + valid_for.min(FAR_FUTURE)
    }

    /// When the timer must fire next.
    pub(super) fn next(&self) -> tokio::time::Instant {
        let next = self.heartbeat.min(self.expires);
        self.gap.map_or(next, |gap| gap.min(next))
    }

    /// Sets (or clears) the end of the wait for a missing notification; true when it changed
    /// (the timer must then be reset).
    pub(super) fn set_gap(&mut self, gap: Option<tokio::time::Instant>) -> bool {
        let changed = self.gap != gap;
        self.gap = gap;
        changed
    }

    /// Whether the wait for a missing notification has run out.
    pub(super) fn gap_due(&self) -> bool {
        self.gap
            .is_some_and(|gap| gap <= tokio::time::Instant::now())
    }

    /// What is due now that the timer fired. An expiry capped at `FAR_FUTURE` is set again
    /// from the token.
    pub(super) fn due(&mut self, token_expires_at: SystemTime) -> Due {
        let now = tokio::time::Instant::now();
        if now >= self.expires {
            if token_expires_at <= SystemTime::now() {
                return Due::Expiry;
            }
            self.expires = Self::expiry(now, token_expires_at);
        }
        match now >= self.heartbeat {
            true => Due::Heartbeat,
            false => Due::Nothing,
        }
    }

    /// The heartbeat went out: the next one is a period from now.
    pub(super) fn heartbeat_sent(&mut self) {
        self.heartbeat = tokio::time::Instant::now() + self.period;
    }
}

/// What a firing of the socket's timer found due.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Due {
    Expiry,
    Heartbeat,
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEARTBEAT: Duration = Duration::from_secs(20);

    #[test]
    fn the_timer_fires_for_the_heartbeat_when_the_token_outlives_it() {
        let deadlines = Deadlines::start(HEARTBEAT, SystemTime::now() + HEARTBEAT * 10);
        assert_eq!(deadlines.next(), deadlines.heartbeat);
        assert!(deadlines.expires > deadlines.heartbeat);
    }

    #[test]
    fn the_timer_fires_for_the_expiry_when_the_token_expires_before_the_heartbeat() {
        let deadlines = Deadlines::start(HEARTBEAT, SystemTime::now() + HEARTBEAT / 4);
        assert_eq!(deadlines.next(), deadlines.expires);
        assert!(deadlines.expires < deadlines.heartbeat);
    }

    #[test]
    fn an_expired_token_is_due_at_once() {
        let before = tokio::time::Instant::now();
        let deadlines = Deadlines::start(HEARTBEAT, SystemTime::now() - HEARTBEAT);
        assert!(deadlines.next() <= tokio::time::Instant::now());
        assert!(deadlines.next() >= before);
    }

    #[test]
    fn a_token_valid_for_decades_is_checked_again_after_far_future() {
        let now = tokio::time::Instant::now();
        let decades = Duration::from_secs(86_400 * 365 * 30);
        let expires = Deadlines::expiry(now, SystemTime::now() + decades);
        assert_eq!(expires, now + FAR_FUTURE);
    }

    #[test]
    fn a_firing_reports_the_expiry_of_an_expired_token_before_anything_else() {
        let mut deadlines = Deadlines::start(Duration::ZERO, SystemTime::now() - HEARTBEAT);
        assert_eq!(deadlines.due(SystemTime::now() - HEARTBEAT), Due::Expiry);
    }

    #[test]
    fn a_firing_reports_a_due_heartbeat_until_it_is_sent() {
        let valid = SystemTime::now() + HEARTBEAT * 10;
        let mut deadlines = Deadlines::start(Duration::ZERO, valid);
        assert_eq!(deadlines.due(valid), Due::Heartbeat);
        deadlines.period = HEARTBEAT;
        deadlines.heartbeat_sent();
        assert_eq!(deadlines.due(valid), Due::Nothing);
        assert_eq!(deadlines.next(), deadlines.heartbeat);
    }

    #[test]
    fn a_wait_for_a_missing_notification_fires_first_and_is_due_once_reached() {
        let valid = SystemTime::now() + HEARTBEAT * 10;
        let mut deadlines = Deadlines::start(HEARTBEAT, valid);
        let soon = tokio::time::Instant::now() + Duration::from_millis(10);
        assert!(deadlines.set_gap(Some(soon)));
        assert!(!deadlines.set_gap(Some(soon)), "unchanged: no reset needed");
        assert_eq!(deadlines.next(), soon);
        assert!(!deadlines.gap_due());
        assert!(deadlines.set_gap(Some(tokio::time::Instant::now())));
        assert!(deadlines.gap_due());
        assert!(deadlines.set_gap(None));
        assert!(!deadlines.gap_due());
        assert_eq!(deadlines.next(), deadlines.heartbeat);
    }

    #[test]
    fn a_capped_expiry_that_is_reached_is_set_again_from_the_token() {
        let valid = SystemTime::now() + HEARTBEAT * 10;
        let mut deadlines = Deadlines::start(HEARTBEAT, valid);
        // As if the cap had been reached: the token is still valid, so nothing is due and the
        // expiry moves back to the token's.
        deadlines.expires = tokio::time::Instant::now();
        assert_eq!(deadlines.due(valid), Due::Nothing);
        assert!(deadlines.expires > tokio::time::Instant::now() + HEARTBEAT * 9);
    }
}
