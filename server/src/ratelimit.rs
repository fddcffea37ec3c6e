//! Rate limits: windowed counters per (bucket, subject) with the sliding-window approximation
//! (see [`Window`]), answered with 429 and `Retry-After`. With Redis the counters live there (`INCR` + `EXPIRE`), so every instance
//! shares them; without Redis, or while Redis is unreachable, they live in this process.
//!
//! The buckets and their defaults are in `config.rs` (`PULSE_RATE_*`); a limit of 0 turns a
//! bucket off. Per-user buckets guard each kind of write; one per-IP bucket guards every write
//! and socket connect; registrations are counted per IP; failed logins per username, in a window
//! long enough to make guessing useless but short enough never to lock the real user out for good.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::HttpRequest;
use dashmap::DashMap;
use redis::aio::ConnectionManager;

use crate::config::Limits;
use crate::error::ApiError;

/// How long a Redis round trip may take before this instance counts locally instead.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Likes and unlikes, per user.
    Likes,
    /// Comments, per user.
    Comments,
    /// Posts, per user.
    Posts,
    /// Follows and unfollows, per user.
    Follows,
    /// Blocks, unblocks, mutes and unmutes, per user.
    Blocks,
    /// Socket connects, per user.
    SocketConnects,
    /// Every write and socket connect, per client IP.
    IpWrites,
    /// Registrations, per client IP.
    Registrations,
    /// Failed logins, per username.
    LoginFailures,
}

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Bucket::Likes => "likes",
            Bucket::Comments => "comments",
            Bucket::Posts => "posts",
            Bucket::Follows => "follows",
            Bucket::Blocks => "blocks",
            Bucket::SocketConnects => "sockets",
            Bucket::IpWrites => "ip",
            Bucket::Registrations => "register",
            Bucket::LoginFailures => "login",
        }
    }
}

/// At most `limit` events per `window` (0: unlimited).
#[derive(Clone, Copy, Debug)]
struct Rule {
    limit: u64,
    window_secs: u64,
}

pub struct RateLimiter {
    limits: Limits,
    redis: Option<(ConnectionManager, String)>,
    /// (bucket, subject) → counts of this and the previous window; purged by [`Self::purge`].
    local: DashMap<(Bucket, String), LocalCount>,
}

impl RateLimiter {
    pub fn new(limits: Limits, redis: Option<(ConnectionManager, String)>) -> Self {
        RateLimiter {
            limits,
            redis,
            local: DashMap::new(),
        }
    }

    fn rule(&self, bucket: Bucket) -> Rule {
        let l = &self.limits;
        let per_minute = |limit| Rule {
            limit,
            window_secs: 60,
        };
        match bucket {
            Bucket::Likes => per_minute(l.rate_likes_per_min),
            Bucket::Comments => per_minute(l.rate_comments_per_min),
            Bucket::Posts => per_minute(l.rate_posts_per_min),
            Bucket::Follows => per_minute(l.rate_follows_per_min),
            Bucket::Blocks => per_minute(l.rate_blocks_per_min),
            Bucket::SocketConnects => per_minute(l.rate_socket_connects_per_min),
            Bucket::IpWrites => per_minute(l.rate_ip_writes_per_min),
            Bucket::Registrations => Rule {
                limit: l.rate_registrations_per_hour,
                window_secs: 3600,
            },
            Bucket::LoginFailures => Rule {
                limit: l.rate_login_failures,
                window_secs: l.rate_login_window_secs.max(1),
            },
        }
    }

    /// Counts one event; `Err(429)` when the subject is over its limit. A refused event is not
    /// counted, so a client that keeps retrying never extends its own wait.
    pub async fn hit(&self, bucket: Bucket, subject: &str) -> Result<(), ApiError> {
        let rule = self.rule(bucket);
        if rule.limit == 0 {
            return Ok(());
        }
        let now = Window::now(rule.window_secs);
        let counts = self.increment(bucket, subject, &now).await;
        if now.estimate(counts) > rule.limit {
            self.uncount(bucket, subject, &now).await;
            let before = (counts.0.saturating_sub(1), counts.1);
            return Err(ApiError::RateLimited {
                retry_after_secs: now.secs_until_allowed(before, rule.limit),
            });
        }
        Ok(())
    }

    /// Checks without counting (failed logins are counted only once they have failed).
    pub async fn check(&self, bucket: Bucket, subject: &str) -> Result<(), ApiError> {
        let rule = self.rule(bucket);
        if rule.limit == 0 {
            return Ok(());
        }
        let now = Window::now(rule.window_secs);
        let counts = self.current(bucket, subject, &now).await;
        if now.estimate(counts) >= rule.limit {
            return Err(ApiError::RateLimited {
                retry_after_secs: now.secs_until_allowed(counts, rule.limit),
            });
        }
        Ok(())
    }

    fn key(&self, prefix: &str, bucket: Bucket, subject: &str, index: u64) -> String {
        format!("{prefix}rl:{}:{subject}:{index}", bucket.name())
    }

    /// Adds one to the current window; returns (current, previous) window counts.
    async fn increment(&self, bucket: Bucket, subject: &str, now: &Window) -> (u64, u64) {
        if let Some((conn, prefix)) = &self.redis {
            let current = self.key(prefix, bucket, subject, now.index);
            let previous = self.key(prefix, bucket, subject, now.index.saturating_sub(1));
            let mut conn = conn.clone();
            let mut pipe = redis::pipe();
            pipe.atomic()
                .incr(&current, 1u64)
                .expire(&current, 2 * now.window_secs as i64 + 1)
                .ignore()
                .get(&previous);
            let counted = pipe.query_async::<(u64, Option<u64>)>(&mut conn);
            match tokio::time::timeout(REDIS_TIMEOUT, counted).await {
                Ok(Ok((count, before))) => return (count, before.unwrap_or(0)),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "rate limit counted locally: redis failed")
                }
                Err(_) => tracing::debug!("rate limit counted locally: redis timed out"),
            }
        }
        let mut entry = self
            .local
            .entry((bucket, subject.to_owned()))
            .or_insert(LocalCount {
                index: now.index,
                current: 0,
                previous: 0,
            });
        entry.roll(now.index);
        entry.current += 1;
        (entry.current, entry.previous)
    }

    /// Takes back the event [`Self::increment`] just counted (it was refused).
    async fn uncount(&self, bucket: Bucket, subject: &str, now: &Window) {
        if let Some((conn, prefix)) = &self.redis {
            let current = self.key(prefix, bucket, subject, now.index);
            let mut conn = conn.clone();
            let mut decrement = redis::cmd("DECR");
            decrement.arg(&current);
            let decremented = decrement.query_async::<i64>(&mut conn);
            if let Ok(Ok(_)) = tokio::time::timeout(REDIS_TIMEOUT, decremented).await {
                return;
            }
        }
        if let Some(mut entry) = self.local.get_mut(&(bucket, subject.to_owned())) {
            entry.roll(now.index);
            entry.current = entry.current.saturating_sub(1);
        }
    }

    /// (current, previous) window counts, without counting.
    async fn current(&self, bucket: Bucket, subject: &str, now: &Window) -> (u64, u64) {
        if let Some((conn, prefix)) = &self.redis {
            let current = self.key(prefix, bucket, subject, now.index);
            let previous = self.key(prefix, bucket, subject, now.index.saturating_sub(1));
            let mut conn = conn.clone();
            let mut get = redis::cmd("MGET");
            get.arg(&current).arg(&previous);
            let read = get.query_async::<(Option<u64>, Option<u64>)>(&mut conn);
            if let Ok(Ok((count, before))) = tokio::time::timeout(REDIS_TIMEOUT, read).await {
                return (count.unwrap_or(0), before.unwrap_or(0));
            }
        }
        match self.local.get(&(bucket, subject.to_owned())) {
            Some(entry) => {
                let mut copy = *entry;
                copy.roll(now.index);
                (copy.current, copy.previous)
            }
            None => (0, 0),
        }
    }

    /// Drops local counters no longer needed (called periodically), keeping memory bounded by
    /// the subjects active in the current and previous windows.
    pub fn purge(&self) {
        self.local.retain(|(bucket, _), count| {
            let rule = self.rule(*bucket);
            count.index + 1 >= Window::now(rule.window_secs).index
        });
    }
}

/// A subject's counts in this process: the window they belong to, and the one before.
#[derive(Clone, Copy, Debug)]
struct LocalCount {
    index: u64,
    current: u64,
    previous: u64,
}

impl LocalCount {
    /// Moves the counts forward to window `index`.
    fn roll(&mut self, index: u64) {
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
struct Window {
    index: u64,
    window_secs: u64,
    /// How far into the current window now is, 0.0..1.0.
    elapsed: f64,
}

impl Window {
    fn now(window_secs: u64) -> Window {
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
    fn secs_until_allowed(&self, (current, previous): (u64, u64), limit: u64) -> u64 {
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
    fn estimate(&self, (current, previous): (u64, u64)) -> u64 {
        current + (previous as f64 * (1.0 - self.elapsed)) as u64
    }
}

/// The client's address: the peer, or with `PULSE_TRUST_FORWARDED_FOR` the first
/// `X-Forwarded-For`/`Forwarded` hop (only behind a proxy that sets it).
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> String {
    let info = req.connection_info();
    let raw = if trust_forwarded_for {
        info.realip_remote_addr()
    } else {
        info.peer_addr()
    };
    let raw = raw.unwrap_or("unknown");
    // Strip a port ("1.2.3.4:5678", "[::1]:5678") so all connections of a client count together.
    raw.parse::<std::net::SocketAddr>()
        .map(|addr| addr.ip())
        .or_else(|_| raw.parse::<IpAddr>())
        .map(|ip| ip.to_string())
        .unwrap_or_else(|_| raw.to_owned())
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
