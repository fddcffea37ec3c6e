//! The one sharded subscriber of an instance: a cluster connection (one connection per node)
//! that `SSUBSCRIBE`s each channel the hub wants on the shard owning its slot, and hands
//! `smessage` pushes to the hub.
//!
//! Any sign that a subscription may be gone (a node connection closed, a node dropped a wanted
//! channel because its slot moved or it became a replica) ends the session: the bus's loop
//! connects again with back-off, which learns the current slot owners, subscribes everything
//! again and then catches every local socket up from the database, as on one Redis. So does a
//! master that stops answering the subscriber's ping: hung or cut off, it tells nobody that its
//! replica took its slots over, and the channels subscribed on it would stay silent.

use std::collections::HashSet;

use futures_util::{stream, TryStreamExt};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{PushInfo, RedisError, RedisResult};
use tokio::sync::mpsc;

use super::pushes::{self, Push, Unsubscribing};
use crate::realtime::bus::{answers, Feed, Session};
use crate::realtime::hub::SubscriptionChange;

/// `SSUBSCRIBE`s in flight at once while subscribing everything again (each names one
/// channel: channels of different slots cannot share one command).
const RESUBSCRIBE_CONCURRENCY: usize = 64;

pub(super) struct ShardSubscriber {
    urls: Vec<String>,
    feed: Feed,
}

impl ShardSubscriber {
    pub(super) fn new(urls: Vec<String>, feed: Feed) -> Self {
        ShardSubscriber { urls, feed }
    }

    /// A fresh cluster connection whose pushes (messages, confirmations, closed node
    /// connections) arrive on the returned receiver.
    async fn connect(&self) -> RedisResult<(ClusterConnection, mpsc::UnboundedReceiver<PushInfo>)> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let connection = super::builder(&self.urls)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(sender)
            .build()?
            .get_async_connection()
            .await?;
        Ok((connection, receiver))
    }

    /// Applies one change from the hub, then acknowledges it.
    async fn apply(
        &self,
        connection: &mut ClusterConnection,
        change: SubscriptionChange,
        wanted: &mut HashSet<String>,
        unsubscribing: &mut Unsubscribing,
    ) -> RedisResult<()> {
        let change = self.feed.namespaced(change);
        // `wanted` changes first: if the command fails, the reconnect still applies it.
        if change.subscribe {
            if wanted.insert(change.channel.clone()) {
                connection.ssubscribe(&change.channel).await?;
            }
        } else if wanted.remove(&change.channel) {
            unsubscribing.sent(&change.channel);
            connection.sunsubscribe(&change.channel).await?;
        }
        if let Some(ack) = change.ack {
            let _ = ack.send(());
        }
        Ok(())
    }
}

/// `SSUBSCRIBE`s every channel, a bounded number at a time.
async fn subscribe_all(
    connection: &ClusterConnection,
    wanted: &HashSet<String>,
) -> RedisResult<()> {
    stream::iter(wanted.iter().map(Ok))
        .try_for_each_concurrent(RESUBSCRIBE_CONCURRENCY, |channel| {
            let mut connection = connection.clone();
            async move { connection.ssubscribe(channel).await }
        })
        .await
}

/// `PING` on every master of the cluster (as the connection knows it).
async fn ping_masters(connection: &ClusterConnection) -> RedisResult<()> {
    let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let mut connection = connection.clone();
    answers(connection.route_command(redis::cmd("PING"), routing)).await
}

fn lost(why: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::Io, why))
}

impl Session for ShardSubscriber {
    fn feed(&self) -> &Feed {
        &self.feed
    }

    async fn serve(
        &self,
        wanted: &mut HashSet<String>,
        changes: &mut mpsc::Receiver<SubscriptionChange>,
        reconnecting: bool,
    ) -> RedisResult<()> {
        let (mut connection, mut received) = self.connect().await?;
        subscribe_all(&connection, wanted).await?;
        self.feed.subscribed(wanted.len(), reconnecting);
        let mut unsubscribing = Unsubscribing::default();
        let mut pings = self.feed.pings();
        loop {
            tokio::select! {
                _ = pings.tick() => ping_masters(&connection).await?,
                push = received.recv() => {
                    let push = push.ok_or_else(|| lost("cluster connection closed"))?;
                    match pushes::read(push, &mut unsubscribing, |channel| wanted.contains(channel)) {
                        Push::Message { channel, payload } => self.feed.deliver(&channel, &payload),
                        Push::Lost(why) => return Err(lost(why)),
                        Push::Nothing => {}
                    }
                }
                change = changes.recv() => {
                    let Some(change) = change else { return Ok(()) };
                    self.apply(&mut connection, change, wanted, &mut unsubscribing).await?;
                }
            }
        }
    }
}
