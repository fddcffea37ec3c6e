//! Rate limits: windowed counters per (bucket, subject) with the sliding-window approximation
//! (see [`Window`]), answered with 429 and `Retry-After`. With Redis the counters live there
//! (`INCR` + `EXPIRE`), so every instance shares them; without Redis they live in this process,
//! and while Redis is unreachable each instance counts on from the shared counts it saw last.
//! On a Redis Cluster too: a subject's keys carry a hash tag (`{likes:42}`), so the two windows
//! one check reads (a script, an `MGET`) are in one slot.
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

/// Where an event was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// In Redis, shared by every instance.
    Shared,
    /// In this process only (no Redis, or Redis failed).
    Local,
}

/// At most `limit` events per `window` (0: unlimited).
#[derive(Clone, Copy, Debug)]
struct Rule {
    limit: u64,
    window_secs: u64,
}

/// Counts one event in window `KEYS[1]` (expiring after `ARGV[1]` seconds) and reads the
/// previous window `KEYS[2]`. One script rather than a `MULTI` transaction: a Redis Cluster
/// client follows a moved slot for a single command, but aborts a transaction (so during a
/// reshard every count fell back to the instance's own).
const COUNT_SCRIPT: &str = r"
local current = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {current, tonumber(redis.call('GET', KEYS[2]) or '0')}
";

pub struct RateLimiter {
    limits: Limits,
    redis: Option<(SharedRedis, String)>,
    count_script: redis::Script,
    /// (bucket, subject) → counts of this and the previous window; purged by [`Self::purge`].
    local: DashMap<(Bucket, String), LocalCount>,
}

impl RateLimiter {
    pub(crate) fn new(limits: Limits, redis: Option<(SharedRedis, String)>) -> Self {
        RateLimiter {
            limits,
            redis,
            count_script: redis::Script::new(COUNT_SCRIPT),
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
        let (counts, place) = self.increment(bucket, subject, &now).await;
        if now.estimate(counts) > rule.limit {
            self.uncount(bucket, subject, &now, place).await;
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

    /// Adds one to the current window; returns (current, previous) window counts. Counted in
    /// Redis, the shared counts are also kept here, so that while Redis fails this instance
    /// goes on from where the shared counts stood instead of from zero.
    async fn increment(&self, bucket: Bucket, subject: &str, now: &Window) -> ((u64, u64), Place) {
        let shared = match &self.redis {
            Some((conn, prefix)) => {
                self.increment_shared(conn, prefix, bucket, subject, now)
                    .await
            }
            None => None,
        };
        let mut entry = self
            .local
            .entry((bucket, subject.to_owned()))
            .or_insert(LocalCount {
                index: now.index,
                current: 0,
                previous: 0,
            });
        entry.roll(now.index);
        let place = match shared {
            Some((current, previous)) => {
                entry.current = current;
                entry.previous = previous;
                Place::Shared
            }
            None => {
                entry.current += 1;
                Place::Local
            }
        };
        ((entry.current, entry.previous), place)
    }

    /// [`Self::increment`] in Redis; `None` when Redis failed or was too slow.
    async fn increment_shared(
        &self,
        conn: &SharedRedis,
        prefix: &str,
        bucket: Bucket,
        subject: &str,
        now: &Window,
    ) -> Option<(u64, u64)> {
        let current = self.key(prefix, bucket, subject, now.index);
        let previous = self.key(prefix, bucket, subject, now.index.saturating_sub(1));
        let mut conn = conn.clone();
        let mut invocation = self.count_script.key(&current);
        invocation.key(&previous).arg(2 * now.window_secs + 1);
        let counted = invocation.invoke_async::<(u64, u64)>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, counted).await {
            Ok(Ok(counts)) => Some(counts),
            Ok(Err(error)) => {
                tracing::debug!(%error, "rate limit counted locally: redis failed");
                None
            }
            Err(_) => {
                tracing::debug!("rate limit counted locally: redis timed out");
                None
            }
        }
    }

    /// Takes back the event [`Self::increment`] just counted (it was refused), where it was
    /// counted: a hit counted here while Redis failed is not taken off the shared count.
    async fn uncount(&self, bucket: Bucket, subject: &str, now: &Window, place: Place) {
        if let (Some((conn, prefix)), Place::Shared) = (&self.redis, place) {
            let current = self.key(prefix, bucket, subject, now.index);
            let mut conn = conn.clone();
            let mut decrement = redis::cmd("DECR");
            decrement.arg(&current);
            let decremented = decrement.query_async::<i64>(&mut conn);
            let _ = tokio::time::timeout(REDIS_TIMEOUT, decremented).await;
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
