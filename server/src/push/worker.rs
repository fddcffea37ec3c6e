//! The push worker every instance runs: claims due jobs (see `pulse_schema::push`), sends each
//! to its push service with bounded concurrency per origin, and records the outcome.
//!
//! | push service answers | then |
//! | --- | --- |
//! | 2xx | done (`pulse_push_sent_total`, commit→push latency) |
//! | 404, 410 | the subscription is gone: deleted with its pending pushes (so is one whose token expired, or whose push service's name now resolves to no public address) |
//! | 429 | again after `Retry-After` (or the back-off), while the TTL lasts |
//! | 5xx, timeout, no connection | again after the back-off (1 s doubling up to `PULSE_PUSH_MAX_BACKOFF_SECS`) |
//! | other 4xx | dropped (`pulse_push_failed_total{reason="rejected"}`) |

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::NaiveDateTime;
use dashmap::DashMap;
use pulse_schema::push::{self, PushWork};
use pulse_schema::{notifications, Db};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::encrypt::Receiver;
use super::endpoint::{self, PublicResolver};
use super::payload;
use super::vapid::Vapid;
use crate::config::Settings;
use crate::telemetry::Metrics;
use crate::views::{Notification, NotificationGroup};

/// How long a push waits before it is claimed again when its push service already has
/// `PULSE_PUSH_PER_ORIGIN` pushes in flight from this instance.
const ORIGIN_BUSY_DEFER: chrono::Duration = chrono::Duration::milliseconds(500);

/// Push services whose in-flight counts are kept; past it, idle ones are forgotten.
const MAX_ORIGINS_KEPT: usize = 10_000;

/// One instance's sender: the client, the key, and the limits.
pub(crate) struct Pusher {
    db: Db,
    client: reqwest::Client,
    vapid: Vapid,
    contact: String,
    metrics: Arc<Metrics>,
    batch: i64,
    lease: chrono::Duration,
    poll: Duration,
    max_backoff_secs: i64,
    /// `PULSE_PUSH_ALLOW_PRIVATE`: endpoints may be loopback or private addresses.
    allow_private: bool,
    in_flight: Arc<Semaphore>,
    per_origin: usize,
    origins: DashMap<String, Arc<Semaphore>>,
    /// Woken when this instance queued pushes, so they leave without waiting for the poll.
    wake: Notify,
    /// Set on shutdown: claim nothing more.
    stopped: std::sync::atomic::AtomicBool,
}

/// What to do with a job after one attempt.
enum Outcome {
    Sent,
    Gone,
    Retry(Option<Duration>),
    Failed(&'static str),
}

impl Pusher {
    pub(crate) fn new(
        db: Db,
        vapid: Vapid,
        settings: &Settings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let limits = &settings.limits;
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(PublicResolver {
                allow_private: settings.push_allow_private,
            }))
            .timeout(Duration::from_millis(limits.push_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve names itself, past `PublicResolver`.
            .no_proxy()
            .build()?;
        Ok(Pusher {
            db,
            client,
            vapid,
            contact: settings.push_contact.clone(),
            metrics,
            batch: limits.push_batch.max(1),
            lease: chrono::Duration::seconds(limits.push_lease_secs.max(1)),
            poll: Duration::from_millis(limits.push_poll_ms.max(10)),
            max_backoff_secs: limits.push_max_backoff_secs.max(1),
            allow_private: settings.push_allow_private,
            in_flight: Arc::new(Semaphore::new(limits.push_concurrency.max(1))),
            per_origin: limits.push_per_origin.max(1),
            origins: DashMap::new(),
            wake: Notify::new(),
            stopped: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub(crate) fn vapid(&self) -> &Vapid {
        &self.vapid
    }

    /// Pushes were queued on this instance: look for due ones after `delay`.
    pub(crate) fn queued(self: &Arc<Self>, delay: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            this.wake.notify_one();
        });
    }

    /// Claims nothing more (pushes being sent finish); on shutdown.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Runs until [`Self::stop`]: claim, send, repeat.
    pub(crate) async fn run(self: Arc<Self>) {
        while !self.stopped.load(Ordering::Relaxed) {
            let claimed = match self.claim_batch().await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "push worker could not claim jobs");
                    0
                }
            };
            if claimed < self.batch as usize {
                let _ = tokio::time::timeout(self.poll, self.wake.notified()).await;
            }
        }
    }

    /// Claims one batch and starts sending it; returns how many were claimed. The sends' turns
    /// (`PULSE_PUSH_CONCURRENCY`) are taken before the claim, and only as many jobs as turns
    /// are claimed: the loop waits for a turn holding no job, so a claim never outlives its
    /// lease waiting here, however many push services are slow.
    async fn claim_batch(self: &Arc<Self>) -> Result<usize, pulse_schema::DbError> {
        let mut turns = self.free_turns().await;
        let now = pulse_schema::now_millis();
        let jobs = push::claim(&self.db, now, now + self.lease, turns.len() as i64).await?;
        let claimed = jobs.len();
        let (live, expired): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|j| j.expires_at > now);
        for job in expired {
            self.metrics.push.expired.fetch_add(1, Ordering::Relaxed);
            push::done(&self.db, job.id).await?;
        }
        if live.is_empty() {
            return Ok(claimed);
        }
        let mut busy = Vec::new();
        for work in push::load(&self.db, live).await? {
            // A push service already busy with its share is not waited for: its pushes stay
            // claimed a moment longer (their place in the queue kept), so a slow service holds
            // neither the claim loop nor the turns that pushes to every other service need.
            let (Some(turn), Some(permit)) = (self.turn_at(&work), turns.pop()) else {
                busy.push(work.job.id);
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let _permits = (permit, turn);
                this.deliver(work).await;
            });
        }
        if !busy.is_empty() {
            self.metrics
                .push
                .deferred
                .fetch_add(busy.len() as u64, Ordering::Relaxed);
            let until = pulse_schema::now_millis() + ORIGIN_BUSY_DEFER;
            push::hold(&self.db, &busy, until).await?;
        }
        Ok(claimed)
    }

    /// At least one free send turn (waited for), and as many more as are free now, up to a
    /// batch.
    async fn free_turns(&self) -> Vec<OwnedSemaphorePermit> {
        let mut turns = Vec::new();
        if let Ok(first) = self.in_flight.clone().acquire_owned().await {
            turns.push(first);
        }
        while turns.len() < self.batch as usize {
            match self.in_flight.clone().try_acquire_owned() {
                Ok(turn) => turns.push(turn),
                Err(_) => break,
            }
        }
        turns
    }

    /// One of the `PULSE_PUSH_PER_ORIGIN` sends to the job's push service, if one is free. A
    /// job whose endpoint does not parse needs none (it is dropped without a request).
    fn turn_at(&self, work: &PushWork) -> Option<Option<OwnedSemaphorePermit>> {
        let Ok(url) = url::Url::parse(&work.subscription.endpoint) else {
            return Some(None);
        };
        if self.origins.len() > MAX_ORIGINS_KEPT {
            let idle = self.per_origin;
            self.origins
                .retain(|_, gate| gate.available_permits() < idle);
        }
        let gate = self
            .origins
            .entry(endpoint::origin(&url))
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_origin)))
            .clone();
        gate.try_acquire_owned().ok().map(Some)
    }

    /// One attempt of one job, and what follows from it.
    async fn deliver(&self, work: PushWork) {
        let job = work.job.id;
        let attempts = work.job.attempts;
        let expires_at = work.job.expires_at;
        let committed = work.notification.created_at;
        let subscription = work.subscription.id;
        let outcome = self.attempt(work).await;
        let result = match outcome {
            Outcome::Sent => {
                self.metrics.push.sent.fetch_add(1, Ordering::Relaxed);
                let waited = pulse_schema::now_millis() - committed;
                self.metrics.push.latency.observe(Duration::from_millis(
                    waited.num_milliseconds().max(0) as u64,
                ));
                push::done(&self.db, job).await
            }
            Outcome::Gone => {
                self.metrics
                    .push
                    .subscriptions_dropped
                    .fetch_add(1, Ordering::Relaxed);
                push::drop_subscription(&self.db, subscription).await
            }
            Outcome::Failed(reason) => {
                self.metrics.push.failed(reason);
                push::done(&self.db, job).await
            }
            Outcome::Retry(after) => self.retry(job, attempts, after, expires_at).await,
        };
        if let Err(error) = result {
            tracing::warn!(%error, job, "push outcome not recorded; the job is claimed again after its lease");
        }
    }

    /// Schedules another attempt, or drops the job when that would be past its TTL.
    async fn retry(
        &self,
        job: i64,
        attempts: i32,
        after: Option<Duration>,
        expires_at: NaiveDateTime,
    ) -> Result<(), pulse_schema::DbError> {
        // The push service's own `Retry-After` is honoured whatever it says (the TTL still
        // bounds it); the back-off is capped.
        let backoff = (1u64 << (attempts.clamp(1, 21) - 1)).min(self.max_backoff_secs as u64);
        let wait = after.map_or(backoff, |d| d.as_secs()).max(1);
        let now = pulse_schema::now_millis();
        let left_ms = (expires_at - now).num_milliseconds();
        if i64::try_from(wait.saturating_mul(1000)).map_or(true, |wait_ms| wait_ms >= left_ms) {
            self.metrics.push.expired.fetch_add(1, Ordering::Relaxed);
            return push::done(&self.db, job).await;
        }
        let due = now + chrono::Duration::seconds(wait as i64);
        self.metrics.push.retried.fetch_add(1, Ordering::Relaxed);
        push::retry(&self.db, job, due).await
    }

    /// Encrypts and sends one push; classifies the answer.
    async fn attempt(&self, work: PushWork) -> Outcome {
        if work.subscription.expires_at <= pulse_schema::now_millis() {
            // The device's token expired after the push was queued: the device is signed out.
            return Outcome::Gone;
        }
        let decode = |text: &str| URL_SAFE_NO_PAD.decode(text.trim_end_matches('='));
        let (Ok(p256dh), Ok(auth)) = (
            decode(&work.subscription.p256dh),
            decode(&work.subscription.auth),
        ) else {
            return Outcome::Failed("keys");
        };
        let Ok(receiver) = Receiver::new(&p256dh, &auth) else {
            return Outcome::Failed("keys");
        };
        let Ok(url) = url::Url::parse(&work.subscription.endpoint) else {
            return Outcome::Gone;
        };
        // A name is checked as it resolves (`PublicResolver`); an address is checked here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !self.allow_private && !endpoint::is_public(ip)) {
            return Outcome::Gone;
        }
        let recipient = work.notification.recipient_id;
        let unread = notifications::unread_count(&self.db, recipient)
            .await
            .unwrap_or(0);
        let group = work
            .group
            .as_ref()
            .filter(|g| !g.removed)
            .map(NotificationGroup::from);
        let topic = work.notification.group_id.map_or_else(
            || format!("n{}", work.notification.id.0),
            |g| format!("g{}", g.0),
        );
        let notification = Notification::from((work.notification, work.actor));
        let body = receiver.encrypt(&payload::build(notification, unread, group.as_ref()));
        let ttl = (work.job.expires_at - pulse_schema::now_millis())
            .num_seconds()
            .max(0);
        let origin = endpoint::origin(&url);
        let request = self
            .client
            .post(url)
            .header("TTL", ttl.to_string())
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Urgency", "normal")
            .header("Topic", topic)
            .header(
                "Authorization",
                self.vapid.authorization(&origin, &self.contact),
            )
            .body(body);
        classify(request.send().await)
    }
}

/// The outcome of one request (see the module docs).
fn classify(answer: Result<reqwest::Response, reqwest::Error>) -> Outcome {
    let response = match answer {
        Ok(response) => response,
        // The endpoint's name now points at a private address: never to be sent to.
        Err(error) if endpoint::is_not_public(&error) => return Outcome::Gone,
        Err(_timeout_or_connection) => return Outcome::Retry(None),
    };
    let status = response.status().as_u16();
    match status {
        200..=299 => Outcome::Sent,
        404 | 410 => Outcome::Gone,
        429 => {
            let after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, chrono::Utc::now()));
            Outcome::Retry(after)
        }
        500..=599 => Outcome::Retry(None),
        _ => Outcome::Failed("rejected"),
    }
}

/// A `Retry-After` value, seconds or an HTTP date (RFC 9110), as a wait from `now`.
fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate, and the obsolete RFC 850 and asctime forms recipients must accept.
    let at = httpdate::parse_http_date(value).ok()?;
    let wait = at
        .duration_since(std::time::SystemTime::from(now))
        .unwrap_or_default();
    Some(wait.max(Duration::from_secs(1)))
}

/// Notifications shown on a socket: their pushes are cancelled in batches, off the socket's path.
/// The queue is bounded; a notification that does not fit is pushed as if no socket had shown it.
pub(crate) struct SeenLive {
    sender: tokio::sync::mpsc::Sender<i64>,
}

/// Notifications waiting for their pushes to be cancelled, per instance.
const SEEN_QUEUE_LEN: usize = 65_536;

impl SeenLive {
    /// Starts the task that deletes the pushes of notifications shown live.
    pub(crate) fn start(db: Db, metrics: Arc<Metrics>) -> Self {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<i64>(SEEN_QUEUE_LEN);
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while receiver.recv_many(&mut ids, 512).await > 0 {
                match push::cancel_seen(&db, &ids).await {
                    Ok(n) => {
                        metrics
                            .push
                            .cancelled_live
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(error) => tracing::warn!(%error, "could not cancel pushes shown live"),
                }
                ids.clear();
            }
        });
        SeenLive { sender }
    }

    pub(crate) fn seen(&self, notification_id: i64) {
        let _ = self.sender.try_send(notification_id);
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_or_as_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 02 Dec 2026 10:00:00 GMT")
            .map(|t| t.with_timezone(&chrono::Utc))
            .expect("a date");
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 02 Dec 2026 10:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        // A date already past: at once, but not in a loop.
        assert_eq!(
            retry_after("Wed, 02 Dec 2026 09:00:00 GMT", now),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_after("Wednesday, 02-Dec-26 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Wed Dec  2 10:00:10 2026", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
