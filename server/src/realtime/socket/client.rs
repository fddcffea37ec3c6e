//! What the client sends: control frames, and the JSON commands `ping`, `subscribe` and
//! `unsubscribe` (watching posts' like counts). Bad frames get an `error` frame; too many in a
//! row close the socket (1008).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix_ws::AggregatedMessage;
use pulse_schema::{blocks, PostId};

use super::{Close, Liveness, SocketTask};
use crate::realtime::protocol::{parse_client_frame, ClientFrame, ServerFrame};

/// How long a `subscribe` waits for the bus to confirm before answering with an error frame.
const SUBSCRIBE_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A client frame's answer: `Ok(Some(frame))` to send, `Ok(None)` for nothing to say, or the
/// error code and message of a bad frame.
type Reply = Result<Option<String>, (&'static str, String)>;

impl SocketTask {
    /// Handles one message from the client (or the end of its stream).
    pub(super) async fn on_client(
        &mut self,
        message: Option<Result<AggregatedMessage, actix_ws::ProtocolError>>,
        liveness: &mut Liveness,
        watched: &mut HashSet<PostId>,
    ) -> Result<(), Close> {
        liveness.last_heard = Instant::now();
        let reply = match message {
            None => return Err(None),
            Some(Err(error)) => {
                tracing::debug!(%error, "socket protocol error");
                return Err(Some((1009, "frame too large or malformed")));
            }
            Some(Ok(AggregatedMessage::Close(_))) => return Err(Some((1000, "bye"))),
            Some(Ok(AggregatedMessage::Ping(bytes))) => {
                let _ = self.outbox.pong(&bytes).await;
                return Ok(());
            }
            Some(Ok(AggregatedMessage::Pong(_))) => return Ok(()),
            Some(Ok(AggregatedMessage::Binary(_))) => {
                Err(("binary_unsupported", "frames must be JSON text".to_owned()))
            }
            Some(Ok(AggregatedMessage::Text(text))) => self.command(&text, watched).await,
        };
        self.answer(reply, liveness).await
    }

    /// Sends a command's answer, or its error frame (closing after too many bad frames).
    pub(super) async fn answer(
        &mut self,
        reply: Reply,
        liveness: &mut Liveness,
    ) -> Result<(), Close> {
        match reply {
            Ok(answer) => {
                liveness.bad_frames = 0;
                match answer {
                    Some(frame) => self.send(frame).await,
                    None => Ok(()),
                }
            }
            Err((code, message)) => {
                liveness.bad_frames += 1;
                if liveness.bad_frames > self.context.limits.ws_max_bad_frames {
                    return Err(Some((1008, "too many invalid frames")));
                }
                let frame = ServerFrame::Error {
                    code,
                    message: &message,
                };
                self.send(frame.to_json()).await
            }
        }
    }

    /// Runs a JSON command from the client.
    async fn command(&self, text: &str, watched: &mut HashSet<PostId>) -> Reply {
        match parse_client_frame(text)? {
            ClientFrame::Ping => Ok(Some(ServerFrame::Pong.to_json())),
            ClientFrame::Subscribe { post_ids } => self.subscribe(&post_ids, watched).await,
            ClientFrame::Unsubscribe { post_ids } => {
                for post in post_ids.into_iter().map(PostId) {
                    if watched.remove(&post) {
                        self.context.hub.unwatch(&self.queue, post);
                    }
                }
                Ok(None)
            }
        }
    }

    /// Watches `post_ids` (at most `ws_max_subscriptions` in all) and confirms them once the
    /// bus listens, so a like made right after `subscribed` (through any instance) is reported.
    pub(super) async fn subscribe(&self, post_ids: &[i64], watched: &mut HashSet<PostId>) -> Reply {
        let max = self.context.limits.ws_max_subscriptions;
        let mut new: HashSet<PostId> = post_ids
            .iter()
            .copied()
            .filter(|id| *id > 0)
            .map(PostId)
            .filter(|p| !watched.contains(p))
            .collect();
        if watched.len() + new.len() > max {
            return Err((
                "too_many_subscriptions",
                format!("a socket may watch at most {max} posts"),
            ));
        }
        self.drop_hidden(&mut new).await?;
        let mut acks = Vec::with_capacity(new.len());
        for post in new {
            acks.push(self.context.hub.watch(&self.queue, post));
            watched.insert(post);
        }
        for ack in acks {
            if !matches!(
                tokio::time::timeout(SUBSCRIBE_ACK_TIMEOUT, ack).await,
                Ok(Ok(()))
            ) {
                return Err((
                    "subscribe_failed",
                    "the bus could not subscribe; retry".to_owned(),
                ));
            }
        }
        let mut confirmed: Vec<i64> = post_ids
            .iter()
            .copied()
            .filter(|id| watched.contains(&PostId(*id)))
            .collect();
        confirmed.sort_unstable();
        confirmed.dedup();
        let frame = ServerFrame::Subscribed {
            post_ids: &confirmed,
        };
        Ok(Some(frame.to_json()))
    }

    /// Removes from `posts` those of someone who blocked this socket's user: to them such posts
    /// do not exist, so they are not confirmed.
    async fn drop_hidden(&self, posts: &mut HashSet<PostId>) -> Result<(), (&'static str, String)> {
        if posts.is_empty() {
            return Ok(());
        }
        let candidates: Vec<PostId> = posts.iter().copied().collect();
        let user = self.claims.user_id;
        match blocks::hidden_posts(&self.context.db, user, &candidates).await {
            Ok(hidden) => {
                hidden.iter().for_each(|post| {
                    posts.remove(post);
                });
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "subscribe could not read blocks");
                Err(("subscribe_failed", "retry".to_owned()))
            }
        }
    }
}
