//! The bus on a Redis Cluster, with sharded pub/sub: `SPUBLISH` reaches only the shard that
//! owns the channel's slot (plain `PUBLISH` would be copied to every node of the cluster), and
//! the [`subscriber`] holds `SSUBSCRIBE`s on the shards that own the channels the hub wants.
//!
//! Each worker publishes over a cluster connection of its own ([`publisher`]). A failed
//! publish is delivered to local sockets and tried again in the background, as on one Redis,
//! and the connections it may have gone through are replaced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use tokio::sync::mpsc;

use super::republish::{RepublishLimits, Republisher};
use super::{keep_subscribed, publish_failed, publish_on, Feed, REDIS_TIMEOUT};
use crate::realtime::event::Event;
use crate::realtime::hub::{Hub, SubscriptionChange};
use publisher::Publisher;
use subscriber::ShardSubscriber;

mod publisher;
mod pushes;
mod subscriber;

pub struct ClusterBus {
    publisher: Publisher,
    prefix: String,
    hub: Arc<Hub>,
    /// Whether the subscriber is up (shared with it).
    connected: Arc<AtomicBool>,
    republisher: Republisher,
}

impl ClusterBus {
    /// Connects the publisher and starts the subscriber feeding `feed.hub`.
    pub(super) async fn start(
        urls: &[String],
        feed: Feed,
        changes: mpsc::Receiver<SubscriptionChange>,
        limits: RepublishLimits,
    ) -> anyhow::Result<ClusterBus> {
        let connection = builder(urls).build()?.get_async_connection().await?;
        let publisher = Publisher::new(connection, urls);
        let republisher = republisher(publisher.clone(), &feed.prefix, limits, &feed.hub);
        let bus = ClusterBus {
            publisher,
            prefix: feed.prefix.clone(),
            hub: feed.hub.clone(),
            connected: feed.connected.clone(),
            republisher,
        };
        let subscriber = ShardSubscriber::new(urls.to_vec(), feed);
        tokio::spawn(keep_subscribed(subscriber, changes));
        Ok(bus)
    }

    /// This bus for one HTTP worker thread, publishing over a connection of the worker's own.
    pub(super) fn for_worker(&self) -> ClusterBus {
        ClusterBus {
            publisher: self.publisher.for_worker(),
            prefix: self.prefix.clone(),
            hub: self.hub.clone(),
            connected: self.connected.clone(),
            republisher: self.republisher.clone(),
        }
    }

    /// `SPUBLISH`es a committed event; on failure, delivers it to local sockets and tries it
    /// again in the background.
    pub(super) async fn publish(&self, event: Event) {
        if let Err(error) = spublish(&self.publisher, &self.prefix, &event).await {
            publish_failed(&self.hub, &self.republisher, event, &error);
        }
    }

    pub(super) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// `SPUBLISH`es `event` over `publisher`, whose connections are replaced if it fails.
async fn spublish(publisher: &Publisher, prefix: &str, event: &Event) -> redis::RedisResult<()> {
    let published = publish_on(publisher.here(), "SPUBLISH", prefix, event).await;
    if published.is_err() {
        publisher.failed();
    }
    published
}

/// The republisher of the cluster bus: failed publishes sent again over the process-wide
/// `publisher`.
fn republisher(
    publisher: Publisher,
    prefix: &str,
    limits: RepublishLimits,
    hub: &Hub,
) -> Republisher {
    let prefix: Arc<str> = prefix.into();
    let publish = move |event: Event| {
        let (publisher, prefix) = (publisher.clone(), prefix.clone());
        async move { spublish(&publisher, &prefix, &event).await }
    };
    Republisher::start(publish, limits, hub.metrics.clone())
}

/// A cluster client for `urls` (seed nodes; the rest is discovered). Every command, retries
/// after `MOVED` or a lost node included, is bounded by [`REDIS_TIMEOUT`]; retries start
/// after 10 to 400 ms, so a few fit in it.
fn builder(urls: &[String]) -> ClusterClientBuilder {
    ClusterClient::builder(urls.iter().map(String::as_str))
        .connection_timeout(REDIS_TIMEOUT)
        .response_timeout(REDIS_TIMEOUT)
        .min_retry_wait(10)
        .max_retry_wait(400)
}
