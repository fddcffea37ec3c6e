//! Counting in fixed windows with the sliding-window approximation, and when the next event
//! would be allowed.

use std::time::{SystemTime, UNIX_EPOCH};

/// A subject's counts in this process: the window they belong to, and the one before.
#[derive(Clone, Copy, Debug)]
pub(super) struct LocalCount {
    pub(super) index: u64,
    pub(super) current: u64,
    pub(super) previous: u64,
}

impl LocalCount {
    /// Moves the counts forward to window `index`.
    pub(super) fn roll(&mut self, index: u64) {
        if self.index == index {
            return;
        }
        self.previous = if self.index + 1 == index {
            self.current
        } else {
            0
        };
        self.current = 0;
        self.index = index;
    }
}

/// Where "now" falls among fixed windows. Counting is the sliding-window approximation: the
/// previous window's count weighs by how much of it still lies within one window length of now,
/// rounded up, so a limit cannot be doubled (nor passed by one) by bursting on both sides of a
/// window boundary, and a counter never resets all at once.
pub(super) struct Window {
    pub(super) index: u64,
    pub(super) window_secs: u64,
    /// How far into the current window now is, 0.0..1.0.
    pub(super) elapsed: f64,
}

impl Window {
    pub(super) fn now(window_secs: u64) -> Window {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let window_secs = window_secs.max(1);
        let index = now.as_secs() / window_secs;
        let start = (index * window_secs) as f64;
        let elapsed = ((now.as_secs_f64() - start) / window_secs as f64).clamp(0.0, 1.0);
        Window {
            index,
            window_secs,
            elapsed,
        }
    }

    /// Whole seconds (at least 1) until one more event would be allowed, if nothing else is
    /// counted meanwhile: the previous window's weight fades as time passes, and at the window's
    /// end this window's count becomes the fading one.
    pub(super) fn secs_until_allowed(&self, (current, previous): (u64, u64), limit: u64) -> u64 {
        // Allowed once `current + ceil(previous * (1 - elapsed)) + 1 <= limit`, that is once
        // `previous * (1 - elapsed) <= limit - current - 1`: the fraction of a window after
        // which `count` has faded to `room - 1` events.
        let fades_below = |count: u64, room: u64| -> f64 {
            match count {
                0 => 0.0,
                _ => (1.0 - room.saturating_sub(1) as f64 / count as f64).max(0.0),
            }
        };
        let windows = if current < limit {
            (fades_below(previous, limit - current) - self.elapsed).max(0.0)
        } else {
            (1.0 - self.elapsed) + fades_below(current, limit)
        };
        let secs = windows * self.window_secs as f64;
        // Just past the point where it is allowed, so a client that waits exactly this long
        // is not refused by rounding.
        (secs + 0.001).ceil().max(1.0) as u64
    }

    /// The estimated number of events in the last window length. The previous window's share
    /// is rounded up: rounded down, 5 events just before a boundary and 1 just after weighed 5
    /// (5 × 0.999 → 4, plus 1), and a limit of 5 let a sixth through.
    pub(super) fn estimate(&self, (current, previous): (u64, u64)) -> u64 {
        current + (previous as f64 * (1.0 - self.elapsed)).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_roll_into_the_previous_window_and_are_forgotten_after_it() {
        let mut count = LocalCount {
            index: 10,
            current: 7,
            previous: 3,
        };
        count.roll(10);
        assert_eq!((count.current, count.previous), (7, 3));
        count.roll(11);
        assert_eq!((count.index, count.current, count.previous), (11, 0, 7));
        count.current = 2;
        count.roll(13);
        assert_eq!((count.current, count.previous), (0, 0));
    }

    #[test]
    fn the_previous_window_weighs_by_how_much_of_it_is_still_recent() {
        let at = |elapsed| Window {
            index: 5,
            window_secs: 60,
            elapsed,
        };
        assert_eq!(at(0.0).estimate((0, 10)), 10);
        assert_eq!(at(0.5).estimate((2, 10)), 7);
        // The previous window's last tenth of an event still counts as one.
        assert_eq!(at(0.99).estimate((4, 10)), 5);
        // Five just before a boundary and one just after are six, not five.
        assert_eq!(at(0.001).estimate((1, 5)), 6);
    }

    #[test]
    fn retry_after_is_when_the_next_event_would_be_allowed() {
        let at = |elapsed| Window {
            index: 5,
            window_secs: 60,
            elapsed,
        };
        // 10 allowed; 4 now and 10 in the previous window, half of it still recent: 9 of 10.
        // One more fits once 10 * (1 - e) <= 5: e >= 0.5, true at 0.5 (allowed now).
        assert_eq!(at(0.5).secs_until_allowed((4, 10), 10), 1);
        // 8 now, 10 before, at e = 0.1: needs 10 * (1 - e) <= 1, e >= 0.9: 48 s from now.
        assert_eq!(at(0.1).secs_until_allowed((8, 10), 10), 49);
        // The whole limit used in this window: the rest of it, then until 10 * (1 - e) <= 9,
        // a tenth into the next window.
        assert_eq!(at(0.5).secs_until_allowed((10, 0), 10), 37);
        // Twice the limit counted (requests counted before refusals stopped counting): until
        // 20 * (1 - e) <= 9 in the next window.
        assert_eq!(at(0.5).secs_until_allowed((20, 0), 10), 64);
    }

    #[test]
    fn waiting_the_advertised_time_is_always_enough() {
        let window = |elapsed| Window {
            index: 5,
            window_secs: 60,
            elapsed,
        };
        for (current, previous) in (0..=20u64).flat_map(|c| (0..=20u64).map(move |p| (c, p))) {
            for tenth in 0..10 {
                let now = window(f64::from(tenth) / 10.0);
                let wait = now.secs_until_allowed((current, previous), 10) as f64 / 60.0;
                let later = now.elapsed + wait;
                // Where the counts stand then, with nothing counted meanwhile.
                let (then, counts) = match later {
                    l if l < 1.0 => (window(l), (current, previous)),
                    l if l < 2.0 => (window(l - 1.0), (0, current)),
                    _ => (window(0.0), (0, 0)),
                };
                assert!(
                    then.estimate(counts) < 10,
                    "({current}, {previous}) at {tenth}/10: still refused after {wait} windows"
                );
            }
        }
    }
}
