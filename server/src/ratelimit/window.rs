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
/// so a limit cannot be doubled by bursting on both sides of a window boundary, and a counter
/// never resets all at once.
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
        // Allowed once `current + floor(previous * (1 - elapsed)) + 1 <= limit`, that is once
        // `previous * (1 - elapsed) < limit - current`.
        let fades_below = |count: u64, room: u64| -> f64 {
            match count {
                0 => 0.0,
                _ => (1.0 - room as f64 / count as f64).max(0.0),
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

    /// The estimated number of events in the last window length.
    pub(super) fn estimate(&self, (current, previous): (u64, u64)) -> u64 {
        current + (previous as f64 * (1.0 - self.elapsed)) as u64
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
        assert_eq!(at(0.99).estimate((4, 10)), 4);
    }

    #[test]
    fn retry_after_is_when_the_next_event_would_be_allowed() {
        let at = |elapsed| Window {
            index: 5,
            window_secs: 60,
            elapsed,
        };
        // 10 allowed; 4 now and 10 in the previous window, half of it still recent: 9 of 10.
        // One more fits once 10 * (1 - e) < 6: e > 0.4, already true at 0.5 (allowed now).
        assert_eq!(at(0.5).secs_until_allowed((4, 10), 10), 1);
        // 8 now, 10 before, at e = 0.1: needs 10 * (1 - e) < 2, e > 0.8: 42 s from now.
        assert_eq!(at(0.1).secs_until_allowed((8, 10), 10), 43);
        // The whole limit used in this window: the rest of it, then until 10 * (1 - e) < 10,
        // just after the next window starts.
        assert_eq!(at(0.5).secs_until_allowed((10, 0), 10), 31);
        // Twice the limit counted (requests counted before refusals stopped counting): the
        // next window must be half over.
        assert_eq!(at(0.5).secs_until_allowed((20, 0), 10), 61);
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
