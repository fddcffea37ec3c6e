//! What the cluster's push messages mean to the subscriber: a message to deliver, a
//! confirmation to ignore, or a sign that a subscription is gone and must be made again.

use std::collections::HashMap;

use redis::{PushInfo, PushKind, Value};

/// One push, read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Push {
    /// A message published on a channel this instance subscribes.
    Message { channel: String, payload: Vec<u8> },
    /// A subscription may be gone: a node connection closed (a restart, a failover), or a
    /// node dropped a channel this instance still wants (its slot moved, or the node became a
    /// replica).
    Lost(&'static str),
    /// A confirmation, or anything else that needs nothing.
    Nothing,
}

/// The `SUNSUBSCRIBE`s this instance sent and whose confirmation has not come yet, per
/// channel: a confirmation is expected, any other `sunsubscribe` push is the cluster's doing.
#[derive(Debug, Default)]
pub(super) struct Unsubscribing(HashMap<String, u32>);

impl Unsubscribing {
    pub(super) fn sent(&mut self, channel: &str) {
        *self.0.entry(channel.to_owned()).or_default() += 1;
    }

    /// Whether a `sunsubscribe` for `channel` answers one of ours (and forgets that one).
    fn confirms(&mut self, channel: &str) -> bool {
        let Some(pending) = self.0.get_mut(channel) else {
            return false;
        };
        *pending -= 1;
        if *pending == 0 {
            self.0.remove(channel);
        }
        true
    }
}

/// Reads one push; `wanted(channel)` says whether the hub still wants that channel.
pub(super) fn read(
    push: PushInfo,
    unsubscribing: &mut Unsubscribing,
    wanted: impl Fn(&str) -> bool,
) -> Push {
    match push.kind {
        PushKind::SMessage => message(push.data),
        PushKind::Disconnection => Push::Lost("a cluster node connection closed"),
        PushKind::SUnsubscribe => match push.data.first().and_then(text) {
            Some(channel) if !unsubscribing.confirms(&channel) && wanted(&channel) => {
                Push::Lost("the cluster dropped a subscribed channel")
            }
            _ => Push::Nothing,
        },
        _ => Push::Nothing,
    }
}

/// `smessage <channel> <payload>`.
fn message(data: Vec<Value>) -> Push {
    let mut data = data.into_iter();
    match (data.next().as_ref().and_then(text), data.next()) {
        (Some(channel), Some(Value::BulkString(payload))) => Push::Message { channel, payload },
        _ => Push::Nothing,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(kind: PushKind, data: &[&str]) -> PushInfo {
        let data = data
            .iter()
            .map(|d| Value::BulkString(d.as_bytes().to_vec()))
            .collect();
        PushInfo { kind, data }
    }

    #[test]
    fn a_sharded_message_is_delivered() {
        let read = read(
            push(PushKind::SMessage, &["p:u:1", "N 1"]),
            &mut Unsubscribing::default(),
            |_| true,
        );
        let expected = Push::Message {
            channel: "p:u:1".into(),
            payload: b"N 1".to_vec(),
        };
        assert_eq!(read, expected);
    }

    #[test]
    fn only_an_unrequested_sunsubscribe_of_a_wanted_channel_is_a_loss() {
        let mut unsubscribing = Unsubscribing::default();
        let sunsubscribe = || push(PushKind::SUnsubscribe, &["p:u:1"]);
        // Ours (the channel may be wanted again already): expected.
        unsubscribing.sent("p:u:1");
        assert_eq!(
            read(sunsubscribe(), &mut unsubscribing, |_| true),
            Push::Nothing
        );
        // The cluster's, for a channel no longer wanted: nothing to do.
        assert_eq!(
            read(sunsubscribe(), &mut unsubscribing, |_| false),
            Push::Nothing
        );
        // The cluster's, for a wanted channel: subscribe again.
        assert!(matches!(
            read(sunsubscribe(), &mut unsubscribing, |_| true),
            Push::Lost(_)
        ));
    }

    #[test]
    fn a_closed_node_connection_is_a_loss_and_confirmations_are_nothing() {
        let mut unsubscribing = Unsubscribing::default();
        let closed = read(
            push(PushKind::Disconnection, &[]),
            &mut unsubscribing,
            |_| true,
        );
        assert!(matches!(closed, Push::Lost(_)));
        let confirmed = read(
            push(PushKind::SSubscribe, &["p:u:1"]),
            &mut unsubscribing,
            |_| true,
        );
        assert_eq!(confirmed, Push::Nothing);
    }
}
