//! Rate limits: windowed counters per (bucket, subject) with the sliding-window approximation
//! (see [`Window`]), answered with 429 and `Retry-After`. With Redis the counters live there (`INCR` + `EXPIRE`), so every instance
//! shares them; without Redis, or while Redis is unreachable, they live in this process.
//! On a Redis Cluster too: a subject's keys carry a hash tag (`{likes:42}`), so the two windows
//! one check reads (a pipeline, an `MGET`) are in one slot.
//!
//! The buckets and their defaults are in `config.rs` (`PULSE_RATE_*`); a limit of 0 turns a
//! bucket off. Per-user buckets guard each kind of write; one per-IP bucket guards every write
//! and socket connect; registrations are counted per IP; failed logins per username, in a window
//! long enough to make guessing useless but short enough never to lock the real user out for good.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::HttpRequest;
use dashmap::DashMap;

use crate::config::Limits;
use crate::error::ApiError;
pub(crate) use shared::SharedRedis;
use window::{LocalCount, Window};

mod shared;
mod window;

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
    redis: Option<(SharedRedis, String)>,
    /// (bucket, subject) → counts of this and the previous window; purged by [`Self::purge`].
    local: DashMap<(Bucket, String), LocalCount>,
}

impl RateLimiter {
    pub(crate) fn new(limits: Limits, redis: Option<(SharedRedis, String)>) -> Self {
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

    /// The counter of one window. The braces are a Redis Cluster hash tag: only what they
    /// enclose picks the slot, so every window of a (bucket, subject) is in one slot.
    fn key(&self, prefix: &str, bucket: Bucket, subject: &str, index: u64) -> String {
        format!("{prefix}rl:{{{}:{subject}}}:{index}", bucket.name())
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
