//! Rate limits: fixed-window counters per (bucket, subject), answered with 429 and
//! `Retry-After`. With Redis the counters live there (`INCR` + `EXPIRE`), so every instance
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
    /// (bucket, subject) → (window index, count). Old windows are purged by [`Self::purge`].
    local: DashMap<(Bucket, String), (u64, u64)>,
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

    /// Counts one event; `Err(429)` when the subject is over its limit in this window.
    pub async fn hit(&self, bucket: Bucket, subject: &str) -> Result<(), ApiError> {
        let rule = self.rule(bucket);
        if rule.limit == 0 {
            return Ok(());
        }
        let (index, retry_after_secs) = window(rule.window_secs);
        let count = self
            .increment(bucket, subject, index, rule.window_secs)
            .await;
        if count > rule.limit {
            return Err(ApiError::RateLimited { retry_after_secs });
        }
        Ok(())
    }

    /// Checks without counting (failed logins are counted only once they have failed).
    pub async fn check(&self, bucket: Bucket, subject: &str) -> Result<(), ApiError> {
        let rule = self.rule(bucket);
        if rule.limit == 0 {
            return Ok(());
        }
        let (index, retry_after_secs) = window(rule.window_secs);
        if self.current(bucket, subject, index).await >= rule.limit {
            return Err(ApiError::RateLimited { retry_after_secs });
        }
        Ok(())
    }

    async fn increment(&self, bucket: Bucket, subject: &str, index: u64, window_secs: u64) -> u64 {
        if let Some((conn, prefix)) = &self.redis {
            let key = format!("{prefix}rl:{}:{subject}:{index}", bucket.name());
            let mut conn = conn.clone();
            let mut pipe = redis::pipe();
            pipe.atomic()
                .incr(&key, 1u64)
                .expire(&key, window_secs as i64 + 1)
                .ignore();
            let counted = pipe.query_async::<(u64,)>(&mut conn);
            match tokio::time::timeout(REDIS_TIMEOUT, counted).await {
                Ok(Ok((count,))) => return count,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "rate limit counted locally: redis failed")
                }
                Err(_) => tracing::debug!("rate limit counted locally: redis timed out"),
            }
        }
        let mut entry = self
            .local
            .entry((bucket, subject.to_owned()))
            .or_insert((index, 0));
        if entry.0 != index {
            *entry = (index, 0);
        }
        entry.1 += 1;
        entry.1
    }

    async fn current(&self, bucket: Bucket, subject: &str, index: u64) -> u64 {
        if let Some((conn, prefix)) = &self.redis {
            let key = format!("{prefix}rl:{}:{subject}:{index}", bucket.name());
            let mut conn = conn.clone();
            let mut get = redis::cmd("GET");
            get.arg(&key);
            let read = get.query_async::<Option<u64>>(&mut conn);
            if let Ok(Ok(count)) = tokio::time::timeout(REDIS_TIMEOUT, read).await {
                return count.unwrap_or(0);
            }
        }
        self.local
            .get(&(bucket, subject.to_owned()))
            .filter(|entry| entry.0 == index)
            .map(|entry| entry.1)
            .unwrap_or(0)
    }

    /// Drops local counters of finished windows (called periodically), keeping memory bounded
    /// by the subjects active in the current windows.
    pub fn purge(&self) {
        self.local.retain(|(bucket, _), (index, _)| {
            let rule = self.rule(*bucket);
            *index == window(rule.window_secs).0
        });
    }
}

/// The current window's index and the seconds until it ends (at least 1).
fn window(window_secs: u64) -> (u64, u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let window_secs = window_secs.max(1);
    let index = now / window_secs;
    (index, ((index + 1) * window_secs - now).max(1))
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
