//! The bus: how an event committed on one instance reaches the hubs that need it.
//!
//! - In-process (no `REDIS_URL`): `publish` hands the event straight to this instance's hub.
//! - Redis: `publish` sends `PUBLISH <channel> <event>` after the database commit. One
//!   subscriber connection per instance receives only the channels the hub asked for (a user's
//!   channel while that user has a socket here, a post's while someone here watches it).
//! - Redis Cluster (`REDIS_CLUSTER_URLS`): the same with sharded pub/sub (`SPUBLISH`,
//!   `SSUBSCRIBE`), so each event goes to the one shard that owns its channel's slot; see
//!   [`cluster`].
//!
//! Each HTTP worker publishes over a Redis connection of its own, opened on its thread on first
//! use ([`Bus::for_worker`]): redis-rs drives a connection from a task spawned where it is
//! opened, so a shared publisher makes every PUBLISH hop to another thread and back. Until a
//! worker's own connection is up (or if it cannot be opened), the process-wide one serves.
//!
//! If Redis goes away, REST and local sockets keep working: a failed publish is delivered to
//! local sockets directly and tried again in the background (`republish`), the subscriber
//! reconnects with capped exponential back-off, resubscribes every channel, and then asks every
//! local socket to catch up from the database, so no connected client misses a notification
//! committed while Redis was away. A Redis that hangs instead of closing the connection (a
//! frozen process, a partition) is noticed by the subscriber's ping (`PULSE_REDIS_PING_MS`):
//! unanswered within [`REDIS_TIMEOUT`], it counts as lost the same way.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;

use super::event::Event;
use super::hub::{Hub, SubscriptionChange};

mod cluster;
mod own;
mod republish;

use own::OwnConnection;
pub(crate) use republish::RepublishLimits;
use republish::Republisher;

/// How long a Redis command may take before the publish counts as failed.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub enum Bus {
    InProcess(Arc<Hub>),
    Redis(Arc<RedisBus>),
    Cluster(Arc<cluster::ClusterBus>),
}

pub struct RedisBus {
    /// The process-wide publisher, opened at startup.
    publisher: ConnectionManager,
    /// A worker's own publisher (`None` on the process-wide bus).
    own_publisher: Option<Arc<OwnConnection<ConnectionManager>>>,
    client: redis::Client,
    max_backoff: Duration,
    /// Namespace in front of every channel name (`PULSE_REDIS_PREFIX`), so several deployments
    /// (or test runs) can share one Redis without hearing each other.
    prefix: String,
    hub: Arc<Hub>,
    connected: Arc<AtomicBool>,
    republisher: Republisher,
}

impl Bus {
    /// This bus for one HTTP worker thread: the same channels and hub, but publishing over a
    /// connection of the worker's own (see the module docs). Call it on that worker's thread;
    /// the connection is opened on its first publish. In-process, the bus itself.
    pub fn for_worker(&self) -> Bus {
        match self {
            Bus::InProcess(_) => self.clone(),
            Bus::Cluster(bus) => Bus::Cluster(Arc::new(bus.for_worker())),
            Bus::Redis(bus) => Bus::Redis(Arc::new(RedisBus {
                publisher: bus.publisher.clone(),
                own_publisher: Some(Arc::default()),
                client: bus.client.clone(),
                max_backoff: bus.max_backoff,
                prefix: bus.prefix.clone(),
                hub: bus.hub.clone(),
                connected: bus.connected.clone(),
                republisher: bus.republisher.clone(),
            })),
        }
    }

    /// Publishes a committed event. Never fails the caller: the database already has the truth.
    pub async fn publish(&self, event: Event) {
        match self {
            Bus::InProcess(hub) => hub.dispatch(event),
            Bus::Redis(bus) => {
                let conn = RedisBus::publisher_here(bus);
                if let Err(error) = publish_on(conn, "PUBLISH", &bus.prefix, &event).await {
                    publish_failed(&bus.hub, &bus.republisher, event, &error);
                }
            }
            Bus::Cluster(bus) => bus.publish(event).await,
        }
    }

    /// Whether the bus can reach its broker (always true in-process).
    pub fn is_connected(&self) -> bool {
        match self {
            Bus::InProcess(_) => true,
            Bus::Redis(bus) => bus.connected.load(Ordering::Relaxed),
            Bus::Cluster(bus) => bus.is_connected(),
        }
    }

    /// Connects to Redis and starts the single subscriber task feeding `hub`.
    ///
    /// `limits.max_backoff` caps the subscriber's and the publishers' reconnect back-off.
    pub(crate) async fn redis(
        url: &str,
        prefix: &str,
        hub: Arc<Hub>,
        changes: mpsc::Receiver<SubscriptionChange>,
        limits: RepublishLimits,
        ping: Duration,
    ) -> anyhow::Result<Self> {
        let max_backoff = limits.max_backoff;
        let client = redis::Client::open(url)?;
        let publisher = client
            .get_connection_manager_with_config(publisher_config(max_backoff))
            .await?;
        let connected = Arc::new(AtomicBool::new(false));
        let subscriber = Subscriber {
            client: client.clone(),
            feed: Feed {
                hub: hub.clone(),
                connected: connected.clone(),
                max_backoff,
                ping,
                prefix: prefix.to_owned(),
            },
        };
        tokio::spawn(keep_subscribed(subscriber, changes));
        let republisher = republisher(publisher.clone(), "PUBLISH", prefix, limits, &hub.metrics);
        Ok(Bus::Redis(Arc::new(RedisBus {
            publisher,
            own_publisher: None,
            client,
            max_backoff,
            prefix: prefix.to_owned(),
            hub,
            connected,
            republisher,
        })))
    }

    /// Connects to a Redis Cluster (seed nodes `urls`) and starts the subscriber feeding `hub`
    /// (see [`cluster`]).
    pub(crate) async fn cluster(
        urls: &[String],
        prefix: &str,
        hub: Arc<Hub>,
        changes: mpsc::Receiver<SubscriptionChange>,
        limits: RepublishLimits,
        ping: Duration,
    ) -> anyhow::Result<Self> {
        let feed = Feed {
            hub,
            connected: Arc::new(AtomicBool::new(false)),
            max_backoff: limits.max_backoff,
            ping,
            prefix: prefix.to_owned(),
        };
        let bus = cluster::ClusterBus::start(urls, feed, changes, limits).await?;
        Ok(Bus::Cluster(Arc::new(bus)))
    }
}

/// Publishes `event` on `connection` with `command`: `PUBLISH` on one Redis, `SPUBLISH` on a
/// cluster (which sends it to the shard of the event's channel).
async fn publish_on(
    mut connection: impl redis::aio::ConnectionLike,
    command: &str,
    prefix: &str,
    event: &Event,
) -> redis::RedisResult<()> {
    redis::cmd(command)
        .arg(format!("{prefix}{}", event.channel()))
        .arg(event.encode())
        .query_async::<i64>(&mut connection)
        .await
        .map(drop)
}

/// The republisher of a bus: failed publishes sent again with `command` on `connection` (the
/// process-wide one).
fn republisher<C>(
    connection: C,
    command: &'static str,
    prefix: &str,
    limits: RepublishLimits,
    metrics: &Arc<crate::telemetry::Metrics>,
) -> Republisher
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    let prefix = prefix.to_owned();
    let publish = move |event: Event| {
        let (connection, prefix) = (connection.clone(), prefix.clone());
        async move { publish_on(connection, command, &prefix, &event).await }
    };
    Republisher::start(publish, limits, metrics.clone())
}

/// A publish failed: local sockets get the event now, and it is tried again in the background
/// for the other instances' sockets (see [`republish`]); past that, they catch up from the
/// database when their subscriber reconnects.
fn publish_failed(
    hub: &Hub,
    republisher: &Republisher,
    event: Event,
    error: &dyn std::fmt::Display,
) {
    tracing::warn!(%error, "publish failed; delivering locally, trying again");
    hub.metrics.publish_failures.fetch_add(1, Ordering::Relaxed);
    republisher.offer(&event);
    hub.dispatch(event);
}

fn publisher_config(max_backoff: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_max_delay(max_backoff)
}

impl RedisBus {
    /// The connection to publish on from this thread: the worker's own once it is up, else the
    /// process-wide one (and, on a worker, the first call starts opening its own).
    fn publisher_here(bus: &Arc<RedisBus>) -> ConnectionManager {
        let Some(own) = &bus.own_publisher else {
            return bus.publisher.clone();
        };
        let (client, config) = (bus.client.clone(), publisher_config(bus.max_backoff));
        own.here(
            || bus.publisher.clone(),
            move || async move { client.get_connection_manager_with_config(config).await },
        )
    }
}

/// What a subscriber feeds and keeps across reconnects, whichever Redis it talks to.
struct Feed {
    hub: Arc<Hub>,
    /// Whether the subscription is up (what [`Bus::is_connected`] answers).
    connected: Arc<AtomicBool>,
    max_backoff: Duration,
    /// How often the subscriber checks that Redis still answers (`PULSE_REDIS_PING_MS`).
    ping: Duration,
    /// Namespace in front of every channel name (`PULSE_REDIS_PREFIX`).
    prefix: String,
}

impl Feed {
    /// The subscriber's ping clock: first tick one interval from now, and a late tick is not
    /// made up for.
    fn pings(&self) -> tokio::time::Interval {
        let start = tokio::time::Instant::now() + self.ping;
        let mut pings = tokio::time::interval_at(start, self.ping);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pings
    }

    fn namespaced(&self, mut change: SubscriptionChange) -> SubscriptionChange {
        change.channel.insert_str(0, &self.prefix);
        change
    }

    /// Everything wanted is subscribed (again). After a reconnect every local socket catches
    /// up from the database: messages published while the subscription was down are lost.
    fn subscribed(&self, channels: usize, reconnecting: bool) {
        self.connected.store(true, Ordering::Relaxed);
        if reconnecting {
            self.hub.bus_subscribed();
            tracing::info!(channels, "redis subscriber back; sockets catch up");
            self.hub
                .metrics
                .redis_reconnects
                .fetch_add(1, Ordering::Relaxed);
            self.hub.catch_up_all();
        }
    }

    /// A message from `channel`, to the hub.
    fn deliver(&self, channel: &str, payload: &[u8]) {
        match std::str::from_utf8(payload).ok().and_then(Event::decode) {
            Some(event) => {
                if let Event::Notification { committed_ms, .. } = &event {
                    self.hub.metrics.observe_bus_lag(*committed_ms);
                }
                self.hub.dispatch(event)
            }
            None => tracing::warn!(channel, "undecodable bus message"),
        }
    }
}

/// One subscriber connection's life: subscribe everything wanted, then relay messages and
/// subscription changes until the connection fails (`Err`) or the hub goes away (`Ok`).
trait Session: Send + Sync + 'static {
    fn feed(&self) -> &Feed;

    fn serve<'a>(
        &'a self,
        wanted: &'a mut HashSet<String>,
        changes: &'a mut mpsc::Receiver<SubscriptionChange>,
        reconnecting: bool,
    ) -> impl Future<Output = redis::RedisResult<()>> + Send + 'a;
}

/// Runs sessions one after the other, with capped exponential back-off between them, keeping
/// the channels the hub wants across reconnects.
async fn keep_subscribed(session: impl Session, mut changes: mpsc::Receiver<SubscriptionChange>) {
    let feed = session.feed();
    let mut wanted: HashSet<String> = HashSet::new();
    let mut backoff = MIN_BACKOFF;
    let mut reconnecting = false;
    loop {
        match session.serve(&mut wanted, &mut changes, reconnecting).await {
            Ok(()) => return, // the hub is gone: shutting down
            Err(error) => {
                feed.hub.bus_lost();
                // A session that was up starts the back-off over.
                if feed.connected.swap(false, Ordering::Relaxed) {
                    backoff = MIN_BACKOFF;
                }
                tracing::warn!(%error, backoff_ms = backoff.as_millis() as u64, "redis subscriber lost");
                reconnecting = true;
            }
        }
        if !wait_offline(feed, backoff, &mut wanted, &mut changes).await {
            return;
        }
        backoff = (backoff * 2).min(feed.max_backoff);
    }
}

/// Keeps acknowledging subscription changes for `backoff` while Redis is away, so sockets can
/// open; they catch up from the database once the subscription is back. False: the hub is gone.
async fn wait_offline(
    feed: &Feed,
    backoff: Duration,
    wanted: &mut HashSet<String>,
    changes: &mut mpsc::Receiver<SubscriptionChange>,
) -> bool {
    let sleep = tokio::time::sleep(backoff);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            change = changes.recv() => match change {
                Some(change) => apply_offline(wanted, feed.namespaced(change)),
                None => return false,
            },
        }
    }
}

/// The one pub/sub connection of this instance, on a single Redis.
struct Subscriber {
    client: redis::Client,
    feed: Feed,
}

impl Session for Subscriber {
    fn feed(&self) -> &Feed {
        &self.feed
    }

    async fn serve(
        &self,
        wanted: &mut HashSet<String>,
        changes: &mut mpsc::Receiver<SubscriptionChange>,
        reconnecting: bool,
    ) -> redis::RedisResult<()> {
        let (mut sink, mut stream) = self.client.get_async_pubsub().await?.split();
        if !wanted.is_empty() {
            let channels: Vec<&String> = wanted.iter().collect();
            sink.subscribe(channels).await?;
        }
        self.feed.subscribed(wanted.len(), reconnecting);
        let mut pings = self.feed.pings();
        loop {
            tokio::select! {
                _ = pings.tick() => drop(answers(sink.ping::<redis::Value>()).await?),
                message = stream.next() => {
                    let Some(message) = message else {
                        return Err(redis::RedisError::from((redis::ErrorKind::Io, "pub/sub connection closed")));
                    };
                    self.feed.deliver(message.get_channel_name(), message.get_payload_bytes());
                }
                change = changes.recv() => {
                    let Some(change) = change else { return Ok(()) };
                    let change = self.feed.namespaced(change);
                    // `wanted` changes first: if the command fails, the reconnect still applies it.
                    if change.subscribe {
                        if wanted.insert(change.channel.clone()) {
                            sink.subscribe(&change.channel).await?;
                        }
                    } else if wanted.remove(&change.channel) {
                        sink.unsubscribe(&change.channel).await?;
                    }
                    if let Some(ack) = change.ack {
                        let _ = ack.send(());
                    }
                }
            }
        }
    }
}

/// A check's answer within [`REDIS_TIMEOUT`], or the error that ends the session.
async fn answers<T>(check: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    match tokio::time::timeout(REDIS_TIMEOUT, check).await {
        Ok(answer) => answer,
        Err(_elapsed) => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "no answer to the subscriber's check",
        ))),
    }
}

fn apply_offline(wanted: &mut HashSet<String>, change: SubscriptionChange) {
    if change.subscribe {
        wanted.insert(change.channel);
    } else {
        wanted.remove(&change.channel);
    }
    if let Some(ack) = change.ack {
        let _ = ack.send(());
    }
}
