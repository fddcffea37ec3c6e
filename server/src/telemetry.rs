//! Logging set-up and the process's metrics (Prometheus text at `/metrics`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

/// Installs the tracing subscriber (`RUST_LOG`, default `info`). Safe to call twice.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A fixed-bucket histogram with atomic counters.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Counters and gauges for the whole process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub sockets_open: AtomicU64,
    pub sockets_opened: AtomicU64,
    pub sockets_closed: DashMap<u16, AtomicU64>,
    /// Socket admission checks made (see the `admission` module).
    pub admission_checks: AtomicU64,
    /// The database batches those checks were made in.
    pub admission_batches: AtomicU64,
    /// API requests refused by load shedding (see the `shed` module).
    pub requests_shed: AtomicU64,
    /// Requests' token checks answered from this instance's memory, and from the database.
    pub auth_checks_memory: AtomicU64,
    pub auth_checks_database: AtomicU64,
    pub notifications_created: AtomicU64,
    pub frames_delivered: AtomicU64,
    pub queue_overflows: AtomicU64,
    pub replays: AtomicU64,
    /// Deliveries that left a notification or group change held behind a missing one, and
    /// database reads made when such a wait ran out (see `realtime::socket::reorder`).
    pub gaps_held: AtomicU64,
    pub gap_reads: AtomicU64,
    pub slow_disconnects: AtomicU64,
    pub redis_reconnects: AtomicU64,
    pub publish_failures: AtomicU64,
    /// Likes written in a transaction with other likes of their post (`like_queue`).
    pub likes_together: AtomicU64,
    /// Failed publishes that went through when tried again.
    pub republished: AtomicU64,
    /// Failed publishes given up (older than the window, or the queue full).
    pub republish_abandoned: AtomicU64,
    /// Notification commit → written to the socket.
    pub delivery_latency: Histogram,
    /// Notification commit → received from Redis by this instance's subscriber.
    pub bus_lag: Histogram,
    /// (method, route pattern, status) → count and latency.
    pub http: DashMap<(String, String, u16), Histogram>,
    pub push: PushMetrics,
}

/// What the Web Push workers did (see the `push` module).
#[derive(Debug, Default)]
pub struct PushMetrics {
    pub sent: AtomicU64,
    /// Failed for good, by reason (`rejected` 4xx, `keys` unusable subscription keys).
    pub failed: DashMap<&'static str, AtomicU64>,
    /// Attempts that will be made again (429, 5xx, timeouts, connection errors).
    pub retried: AtomicU64,
    /// Pushes dropped because their TTL ran out before delivery.
    pub expired: AtomicU64,
    /// Subscriptions deleted because the push service answered 404 or 410.
    pub subscriptions_dropped: AtomicU64,
    /// Pushes not sent because a socket showed the notification live.
    pub cancelled_live: AtomicU64,
    /// Pushes put back for a moment because their push service already had
    /// `PULSE_PUSH_PER_ORIGIN` in flight.
    pub deferred: AtomicU64,
    /// Notification commit → accepted by the push service.
    pub latency: Histogram,
}

impl PushMetrics {
    pub fn failed(&self, reason: &'static str) {
        self.failed
            .entry(reason)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let counters = [
            (
                "pulse_push_sent_total",
                "Pushes accepted by a push service.",
                &self.sent,
            ),
            (
                "pulse_push_retried_total",
                "Push attempts to be made again (429, 5xx, timeouts).",
                &self.retried,
            ),
            (
                "pulse_push_expired_total",
                "Pushes dropped when their TTL ran out.",
                &self.expired,
            ),
            (
                "pulse_push_deferred_total",
                "Pushes put back because their push service had PULSE_PUSH_PER_ORIGIN in flight.",
                &self.deferred,
            ),
            (
                "pulse_push_subscriptions_dropped_total",
                "Subscriptions deleted on 404/410.",
                &self.subscriptions_dropped,
            ),
            (
                "pulse_push_cancelled_live_total",
                "Pushes not sent because a socket showed the notification.",
                &self.cancelled_live,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP pulse_push_failed_total Pushes failed for good, by reason.\n# TYPE pulse_push_failed_total counter");
        for entry in self.failed.iter() {
            let _ = writeln!(
                out,
                "pulse_push_failed_total{{reason=\"{}\"}} {}",
                entry.key(),
                entry.value().load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP pulse_push_latency_seconds Notification commit to push accepted.\n# TYPE pulse_push_latency_seconds histogram");
        self.latency.render(out, "pulse_push_latency_seconds", "");
    }
}

impl Metrics {
    pub fn count_auth_check(&self, checked_in: crate::auth::CheckedIn) {
        let counter = match checked_in {
            crate::auth::CheckedIn::Memory => &self.auth_checks_memory,
            crate::auth::CheckedIn::Database => &self.auth_checks_database,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_close(&self, code: u16) {
        self.sockets_closed
            .entry(code)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Records a live delivery of a notification committed at `committed_ms` (Unix ms).
    pub fn observe_delivery(&self, committed_ms: i64) {
        self.frames_delivered.fetch_add(1, Ordering::Relaxed);
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.delivery_latency.observe(Duration::from_millis(
            now_ms.saturating_sub(committed_ms).max(0) as u64,
        ));
    }

    /// Records a notification event arriving from Redis, committed at `committed_ms` (Unix ms).
    pub fn observe_bus_lag(&self, committed_ms: i64) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.bus_lag.observe(Duration::from_millis(
            now_ms.saturating_sub(committed_ms).max(0) as u64,
        ));
    }

    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default()
            .observe(elapsed);
    }

    /// Prometheus text exposition. `pool` is (in use, open, max) database connections.
    pub fn render(&self, pool: (usize, usize, usize)) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP pulse_sockets_open Sockets open on this instance.\n# TYPE pulse_sockets_open gauge\npulse_sockets_open {}",
            self.sockets_open.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "pulse_sockets_opened_total",
            "Sockets opened.",
            self.sockets_opened.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_socket_admission_checks_total",
            "Socket opens checked for revocation after registration.",
            self.admission_checks.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_socket_admission_batches_total",
            "Database batches those checks were made in (checks / batches = mean batch size).",
            self.admission_batches.load(Ordering::Relaxed),
        );
        let _ = writeln!(out, "# HELP pulse_sockets_closed_total Sockets closed, by close code.\n# TYPE pulse_sockets_closed_total counter");
        for entry in self.sockets_closed.iter() {
            let _ = writeln!(
                out,
                "pulse_sockets_closed_total{{code=\"{}\"}} {}",
                entry.key(),
                entry.value().load(Ordering::Relaxed)
            );
        }
        counter(
            &mut out,
            "pulse_requests_shed_total",
            "API requests refused with 503 by load shedding (PULSE_MAX_IN_FLIGHT and its queue).",
            self.requests_shed.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP pulse_auth_checks_total Requests' token revocation checks, by where they were answered.\n\
             # TYPE pulse_auth_checks_total counter\n\
             pulse_auth_checks_total{{answered_in=\"memory\"}} {}\n\
             pulse_auth_checks_total{{answered_in=\"database\"}} {}",
            self.auth_checks_memory.load(Ordering::Relaxed),
            self.auth_checks_database.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_notifications_created_total",
            "Notifications committed by this instance.",
            self.notifications_created.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_frames_delivered_total",
            "Notification frames written to sockets.",
            self.frames_delivered.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_queue_overflows_total",
            "Per-socket queue overflows (followed by a database catch-up).",
            self.queue_overflows.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_replays_total",
            "Replays and catch-ups read from the database.",
            self.replays.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_socket_gaps_held_total",
            "Deliveries that held a notification or group change behind one still on its way (PULSE_WS_GAP_WAIT_MS).",
            self.gaps_held.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_socket_gap_reads_total",
            "Database reads for a missing notification or group change after the wait ran out.",
            self.gap_reads.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_slow_client_disconnects_total",
            "Sockets closed with 4008.",
            self.slow_disconnects.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_redis_reconnects_total",
            "Redis subscriber reconnections.",
            self.redis_reconnects.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_publish_failures_total",
            "Events that could not be published to Redis.",
            self.publish_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_likes_written_together_total",
            "Likes written by one statement with other likes of their author (they arrived while one was being written).",
            self.likes_together.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_republished_total",
            "Failed publishes that went through when tried again.",
            self.republished.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pulse_republish_abandoned_total",
            "Failed publishes given up: older than PULSE_REPUBLISH_WINDOW_MS, or PULSE_REPUBLISH_QUEUE_LEN waiting.",
            self.republish_abandoned.load(Ordering::Relaxed),
        );
        let _ = writeln!(out, "# HELP pulse_delivery_latency_seconds Notification commit to socket write.\n# TYPE pulse_delivery_latency_seconds histogram");
        self.delivery_latency
            .render(&mut out, "pulse_delivery_latency_seconds", "");
        let _ = writeln!(out, "# HELP pulse_bus_lag_seconds Notification commit to arrival from Redis pub/sub.\n# TYPE pulse_bus_lag_seconds histogram");
        self.bus_lag.render(&mut out, "pulse_bus_lag_seconds", "");
        let _ = writeln!(out, "# HELP pulse_http_request_duration_seconds HTTP requests by route and status.\n# TYPE pulse_http_request_duration_seconds histogram");
        for entry in self.http.iter() {
            let (method, route, status) = entry.key();
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            entry
                .value()
                .render(&mut out, "pulse_http_request_duration_seconds", &labels);
        }
        let _ = writeln!(
            out,
            "# HELP pulse_db_connections Database pool connections.\n# TYPE pulse_db_connections gauge\n\
             pulse_db_connections{{state=\"in_use\"}} {}\npulse_db_connections{{state=\"open\"}} {}\npulse_db_connections{{state=\"max\"}} {}",
            pool.0, pool.1, pool.2
        );
        self.push.render(&mut out);
        out
    }
}
