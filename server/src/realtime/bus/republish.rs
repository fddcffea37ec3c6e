//! Failed publishes, sent again: one background task per instance takes them in order and
//! retries each with capped back-off until Redis takes it or it is older than the window.
//!
//! A failed publish reaches this instance's sockets at once (`publish_failed`), but the other
//! instances' subscribers may never have lost Redis (a publisher's own connection timing out,
//! a shard failing over): without a second try their sockets would see the notification only
//! when a later one revealed the gap. Only events that every receiver can take twice are sent
//! again (notifications and group changes by their sequence, like counts by theirs,
//! revocations): the copy also reaches this instance's subscriber, which drops it.
//! Past the window the others have surely lost their subscription too, and catch up from the
//! database when it is back.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::MIN_BACKOFF;
use crate::realtime::event::Event;
use crate::telemetry::Metrics;

/// How long and how many failed publishes are kept for another try.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RepublishLimits {
    /// A failed publish older than this is given up (`PULSE_REPUBLISH_WINDOW_MS`).
    pub(crate) window: Duration,
    /// Failed publishes waiting at once; more are given up (`PULSE_REPUBLISH_QUEUE_LEN`).
    pub(crate) queue_len: usize,
    /// Longest pause between two tries (`PULSE_REDIS_MAX_BACKOFF_MS`).
    pub(crate) max_backoff: Duration,
}

#[derive(Clone)]
pub(super) struct Republisher {
    queue: mpsc::Sender<(Instant, Event)>,
    metrics: Arc<Metrics>,
}

impl Republisher {
    /// Starts the task that sends queued events with `publish` (on the process-wide connection).
    pub(super) fn start<P, F>(publish: P, limits: RepublishLimits, metrics: Arc<Metrics>) -> Self
    where
        P: Fn(Event) -> F + Send + Sync + 'static,
        F: Future<Output = redis::RedisResult<()>> + Send + 'static,
    {
        let (queue, waiting) = mpsc::channel(limits.queue_len.max(1));
        tokio::spawn(run(waiting, publish, limits, metrics.clone()));
        Republisher { queue, metrics }
    }

    /// Queues `event`, whose publish just failed, for another try (if receivers can take it twice).
    pub(super) fn offer(&self, event: &Event) {
        if !event.repeatable() {
            return;
        }
        if self
            .queue
            .try_send((Instant::now(), event.clone()))
            .is_err()
        {
            self.metrics
                .republish_abandoned
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn run<P, F>(
    mut waiting: mpsc::Receiver<(Instant, Event)>,
    publish: P,
    limits: RepublishLimits,
    metrics: Arc<Metrics>,
) where
    P: Fn(Event) -> F,
    F: Future<Output = redis::RedisResult<()>>,
{
    while let Some((failed_at, event)) = waiting.recv().await {
        let counter = if retry(&publish, event, failed_at, &limits).await {
            &metrics.republished
        } else {
            &metrics.republish_abandoned
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Tries `event` until it is published (true) or older than the window (false).
async fn retry<P, F>(
    publish: &P,
    event: Event,
    failed_at: Instant,
    limits: &RepublishLimits,
) -> bool
where
    P: Fn(Event) -> F,
    F: Future<Output = redis::RedisResult<()>>,
{
    let mut backoff = MIN_BACKOFF;
    while failed_at.elapsed() < limits.window {
        match publish(event.clone()).await {
            Ok(()) => return true,
            Err(error) => tracing::debug!(%error, "publish tried again, failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(limits.max_backoff);
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use pulse_schema::UserId;

    use super::*;

    fn revoke(token: &str) -> Event {
        Event::Revoke {
            user: UserId(1),
            token_id: token.into(),
        }
    }

    fn limits(window_ms: u64) -> RepublishLimits {
        RepublishLimits {
            window: Duration::from_millis(window_ms),
            queue_len: 4,
            max_backoff: Duration::from_millis(100),
        }
    }

    type Tried = Arc<Mutex<Vec<Event>>>;

    /// A publisher that fails its first `failures` calls and records what it was handed.
    fn flaky(
        failures: usize,
    ) -> (
        Tried,
        impl Fn(Event) -> std::future::Ready<redis::RedisResult<()>>,
    ) {
        let tried = Arc::new(Mutex::new(Vec::new()));
        let log = tried.clone();
        let publish = move |event: Event| {
            let mut log = log.lock().unwrap();
            log.push(event);
            std::future::ready(if log.len() > failures {
                Ok(())
            } else {
                Err(redis::RedisError::from((redis::ErrorKind::Io, "down")))
            })
        };
        (tried, publish)
    }

    async fn settled(metrics: &Metrics, events: u64) {
        for _ in 0..200 {
            let done = metrics.republished.load(Ordering::Relaxed)
                + metrics.republish_abandoned.load(Ordering::Relaxed);
            if done >= events {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the republisher did not settle {events} events");
    }

    #[tokio::test]
    async fn a_failed_publish_is_sent_again_in_order_until_it_goes_through() {
        let metrics = Arc::new(Metrics::default());
        let (tried, publish) = flaky(2);
        let republisher = Republisher::start(publish, limits(5_000), metrics.clone());
        republisher.offer(&revoke("a"));
        republisher.offer(&revoke("b"));
        settled(&metrics, 2).await;
        let tried = tried.lock().unwrap().clone();
        assert_eq!(tried, [revoke("a"), revoke("a"), revoke("a"), revoke("b")]);
        assert_eq!(metrics.republished.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn an_event_receivers_cannot_take_twice_is_not_sent_again() {
        let metrics = Arc::new(Metrics::default());
        let (tried, publish) = flaky(0);
        let republisher = Republisher::start(publish, limits(5_000), metrics.clone());
        republisher.offer(&Event::Frame {
            user: UserId(1),
            frame: "{}".into(),
        });
        republisher.offer(&revoke("a"));
        settled(&metrics, 1).await;
        assert_eq!(*tried.lock().unwrap(), [revoke("a")]);
    }

    #[tokio::test]
    async fn past_the_window_a_publish_is_given_up() {
        let metrics = Arc::new(Metrics::default());
        let (_, publish) = flaky(usize::MAX);
        let republisher = Republisher::start(publish, limits(120), metrics.clone());
        republisher.offer(&revoke("a"));
        settled(&metrics, 1).await;
        assert_eq!(metrics.republish_abandoned.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.republished.load(Ordering::Relaxed), 0);
    }
}
