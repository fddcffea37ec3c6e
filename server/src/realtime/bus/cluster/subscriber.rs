//! The one sharded subscriber of an instance: a cluster connection (one connection per node)
//! that `SSUBSCRIBE`s each channel the hub wants on the shard owning its slot, and hands
//! `smessage` pushes to the hub.
//!
//! Any sign that a subscription may be gone (a node connection closed, a node dropped a wanted
//! channel because its slot moved or it became a replica) ends the session: the bus's loop
//! connects again with back-off, which learns the current slot owners, subscribes everything
//! again and then catches every local socket up from the database, as on one Redis. So does
//! the periodic check (`PULSE_REDIS_PING_MS`) of every master: one that does not answer (hung
//! or cut off, it tells nobody that its replica took its slots over), or fewer subscriptions
//! held than wanted (one was dropped without a word).

use std::collections::HashSet;

use futures_util::{stream, TryStreamExt};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{PushInfo, RedisError, RedisResult, Value};
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

/// Asks every master of the cluster (as the connection knows it) how many shard channels this
/// connection subscribes there (`CLIENT INFO`'s `ssub`). A master that does not answer within
/// a second, or fewer subscriptions in all than `wanted`, ends the session: a subscription is
/// gone without a word (a hung master, a node connection redis-rs replaced, a channel left on
/// a replica that was then promoted away).
async fn check_masters(connection: &ClusterConnection, wanted: usize) -> RedisResult<()> {
    let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let mut connection = connection.clone();
    let info = redis::cmd("CLIENT").arg("INFO").clone();
    let answer = answers(connection.route_command(info, routing)).await?;
    match shard_subscriptions(&answer) {
        Some(held) if held < wanted => Err(lost("fewer shard subscriptions than wanted")),
        _ => Ok(()),
    }
}

/// The `ssub=` counts of a `CLIENT INFO` answered by several nodes, summed (`None` if an
/// answer does not have one: the check is then only a ping).
fn shard_subscriptions(answer: &Value) -> Option<usize> {
    let Value::Map(per_node) = answer else {
        return None;
    };
    per_node.iter().map(|(_node, info)| ssub(info)).sum()
}

fn ssub(info: &Value) -> Option<usize> {
    let text = match info {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?,
        Value::VerbatimString { text, .. } => text.as_str(),
        Value::SimpleString(text) => text.as_str(),
        _ => return None,
    };
    text.split_ascii_whitespace()
        .find_map(|field| field.strip_prefix("ssub="))?
        .parse()
        .ok()
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
                _ = pings.tick() => check_masters(&connection, wanted.len()).await?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn info(ssub: &str) -> Value {
        let text = format!("id=7 addr=127.0.0.1:5000 db=0 sub=0 psub=0 {ssub} multi=-1");
        Value::VerbatimString {
            format: redis::VerbatimFormat::Text,
            text,
        }
    }

    fn per_node(infos: Vec<Value>) -> Value {
        let node = |i: usize| Value::BulkString(format!("127.0.0.1:700{i}").into_bytes());
        Value::Map(
            infos
                .into_iter()
                .enumerate()
                .map(|(i, v)| (node(i), v))
                .collect(),
        )
    }

    #[test]
    fn the_shard_subscriptions_of_every_master_are_summed() {
        let answer = per_node(vec![info("ssub=3"), info("ssub=0"), info("ssub=2")]);
        assert_eq!(shard_subscriptions(&answer), Some(5));
    }

    #[test]
    fn an_answer_without_counts_is_no_verdict() {
        let answer = per_node(vec![info("ssub=3"), info("")]);
        assert_eq!(shard_subscriptions(&answer), None);
        assert_eq!(shard_subscriptions(&Value::Okay), None);
    }
}
