//! A live connection's outgoing frames, between its task and its connection: WebSocket frames
//! (`GET /api/v1/ws`) or server-sent events (`GET /api/v1/events`), chosen by [`Framing`].
//!
//! The socket task encodes each frame straight into the [`Outbox`]'s byte buffer; the
//! connection's response body ([`OutboxBody`]) hands the whole buffer to actix-http's writer
//! the next time the connection is polled. Both run on the worker thread that accepted the
//! connection, so they share the buffer through an `Rc<RefCell>`: no channel, no atomics, and
//! frames queued while the connection was busy go out in one write. actix-ws still does the
//! handshake and decodes the client's frames (`routes::live`); only its `Session`, a channel of
//! messages that the body encodes, is replaced (about 12% of a fan-out frame's CPU;
//! see CHANGELOG.md).
//!
//! Back-pressure: a send waits while `limit` bytes are buffered, and the body only takes bytes
//! when the connection's own write buffer has room, so a client that stops reading stalls the
//! sender (which closes it with 4008 after the stall timeout, see `socket`).

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix_http::ws::{CloseReason, OpCode, Parser};
use actix_web::body::{BodySize, MessageBody};
use actix_web::web::{Bytes, BytesMut};

/// RFC 6455: a control frame's payload is at most 125 bytes.
const MAX_CONTROL_PAYLOAD_BYTES: usize = 125;

/// How frames go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6455 frames.
    WebSocket,
    /// Server-sent events: each JSON frame is an event named by its `"type"`, pings are comment
    /// lines, and the close is a `close` event after which the response ends.
    EventStream,
}

/// The connection is gone, or the close frame has been written.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

#[derive(Debug)]
struct Shared {
    /// Encoded frames the body has not taken yet.
    buf: BytesMut,
    /// Sends wait while this many bytes are buffered.
    limit: usize,
    /// A close frame was written (nothing may follow it) or the connection was dropped.
    closed: bool,
    /// The sender is gone: the body ends once the buffer is taken.
    sender_gone: bool,
    /// The connection, waiting for frames.
    body_waker: Option<Waker>,
    /// The socket task, waiting for room.
    sender_waker: Option<Waker>,
}

/// Writing end, owned by the socket task.
#[derive(Debug)]
pub struct Outbox {
    shared: Rc<RefCell<Shared>>,
    framing: Framing,
}

/// Reading end: the WebSocket response's body.
pub struct OutboxBody {
    shared: Rc<RefCell<Shared>>,
    /// Dropped with the body, i.e. when the connection ends (actix-ws's inbound stream ends on
    /// its drop; see `routes::live`).
    _keep_alive: Box<dyn std::any::Any>,
}

fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn control_payload(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(MAX_CONTROL_PAYLOAD_BYTES)]
}

/// Writes one unmasked (server) frame, final and unfragmented.
fn frame(buf: &mut BytesMut, payload: &[u8], opcode: OpCode) {
    Parser::write_message(buf, payload, opcode, true, false);
}

/// The `"type"` a JSON frame starts with (every server frame does, see `protocol`), else
/// `message` (the event type `EventSource` reports for events without one).
fn frame_type(json: &str) -> &str {
    json.strip_prefix(r#"{"type":""#)
        .and_then(|rest| rest.split_once('"'))
        .map(|(kind, _)| kind)
        .filter(|kind| !kind.is_empty() && !kind.contains(['\n', '\r']))
        .unwrap_or("message")
}

/// Writes one server-sent event: `id:` when given, `event:` named by the frame's type, and one
/// `data:` line per line of `data`.
fn event(buf: &mut BytesMut, kind: &str, id: Option<&str>, data: &str) {
    if let Some(id) = id {
        buf.extend_from_slice(b"id: ");
        buf.extend_from_slice(id.as_bytes());
        buf.extend_from_slice(b"\n");
    }
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\n");
    for line in data.split(['\n', '\r']) {
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(line.as_bytes());
        buf.extend_from_slice(b"\n");
    }
    buf.extend_from_slice(b"\n");
}

impl Outbox {
    /// An outbox that waits while `limit` bytes are buffered, and the body that drains it.
    /// `keep_alive` is dropped with the body.
    pub fn new(
        framing: Framing,
        limit: usize,
        keep_alive: Box<dyn std::any::Any>,
    ) -> (Outbox, OutboxBody) {
        let shared = Rc::new(RefCell::new(Shared {
            buf: BytesMut::new(),
            limit: limit.max(1),
            closed: false,
            sender_gone: false,
            body_waker: None,
            sender_waker: None,
        }));
        (
            Outbox {
                shared: shared.clone(),
                framing,
            },
            OutboxBody {
                shared,
                _keep_alive: keep_alive,
            },
        )
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Queues a text frame, waiting while the buffer is full.
    pub async fn text(&self, text: &str) -> Result<(), Closed> {
        self.text_with_id(text, None).await
    }

    /// Queues a text frame; on an event stream `id` becomes the event's id (what a client
    /// resumes from with `Last-Event-ID`). A WebSocket has no ids: it is ignored.
    pub async fn text_with_id(&self, text: &str, id: Option<&str>) -> Result<(), Closed> {
        match self.framing {
            Framing::WebSocket => {
                self.write(|buf| frame(buf, text.as_bytes(), OpCode::Text), false)
                    .await
            }
            Framing::EventStream => {
                self.write(|buf| event(buf, frame_type(text), id, text), false)
                    .await
            }
        }
    }

    /// A WebSocket ping, or a comment line on an event stream (keeps proxies from timing out).
    pub async fn ping(&self, bytes: &[u8]) -> Result<(), Closed> {
        match self.framing {
            Framing::WebSocket => {
                self.write(
                    |buf| frame(buf, control_payload(bytes), OpCode::Ping),
                    false,
                )
                .await
            }
            Framing::EventStream => {
                self.write(|buf| buf.extend_from_slice(b":\n\n"), false)
                    .await
            }
        }
    }

    /// Answers a client's ping (event-stream clients send none: nothing to do).
    pub async fn pong(&self, bytes: &[u8]) -> Result<(), Closed> {
        if self.framing == Framing::EventStream {
            return Ok(());
        }
        self.write(
            |buf| frame(buf, control_payload(bytes), OpCode::Pong),
            false,
        )
        .await
    }

    /// Queues the close frame (its reason cut to fit a control frame), or on an event stream a
    /// `close` event carrying the same code and reason; nothing can follow it.
    pub async fn close(&self, mut reason: CloseReason) -> Result<(), Closed> {
        if self.framing == Framing::EventStream {
            let data = serde_json::json!({
                "type": "close",
                "code": u16::from(reason.code),
                "reason": reason.description.unwrap_or_default(),
            })
            .to_string();
            return self
                .write(|buf| event(buf, "close", None, &data), true)
                .await;
        }
        if let Some(description) = reason.description.as_mut() {
            let mut end = description.len().min(MAX_CONTROL_PAYLOAD_BYTES - 2);
            while !description.is_char_boundary(end) {
                end -= 1;
            }
            description.truncate(end);
        }
        self.write(|buf| Parser::write_close(buf, Some(reason), false), true)
            .await
    }

    /// Resolves once the connection is gone (its body was dropped): how an event stream, which
    /// the client never writes to, learns that its client left.
    pub async fn gone(&self) {
        poll_fn(|cx| {
            let mut shared = self.shared.borrow_mut();
            if shared.closed {
                return Poll::Ready(());
            }
            set_waker(&mut shared.sender_waker, cx);
            Poll::Pending
        })
        .await
    }

    /// Waits for room, then lets `encode` append one frame; `closes`: it is the close frame.
    async fn write(&self, encode: impl FnOnce(&mut BytesMut), closes: bool) -> Result<(), Closed> {
        let mut encode = Some(encode);
        poll_fn(|cx| self.poll_write(cx, &mut encode, closes)).await
    }

    fn poll_write(
        &self,
        cx: &mut Context<'_>,
        encode: &mut Option<impl FnOnce(&mut BytesMut)>,
        closes: bool,
    ) -> Poll<Result<(), Closed>> {
        let mut shared = self.shared.borrow_mut();
        if shared.closed {
            return Poll::Ready(Err(Closed));
        }
        if shared.buf.len() >= shared.limit {
            set_waker(&mut shared.sender_waker, cx);
            return Poll::Pending;
        }
        let Some(encode) = encode.take() else {
            return Poll::Ready(Ok(()));
        };
        encode(&mut shared.buf);
        shared.closed = closes;
        if let Some(waker) = shared.body_waker.take() {
            waker.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.sender_gone = true;
        if let Some(waker) = shared.body_waker.take() {
            waker.wake();
        }
    }
}

impl MessageBody for OutboxBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut shared = self.shared.borrow_mut();
        if !shared.buf.is_empty() {
            if let Some(waker) = shared.sender_waker.take() {
                waker.wake();
            }
            // Taken whole (not split), so no buffer stays allocated after a burst.
            return Poll::Ready(Some(Ok(std::mem::take(&mut shared.buf).freeze())));
        }
        if shared.closed || shared.sender_gone {
            return Poll::Ready(None);
        }
        set_waker(&mut shared.body_waker, cx);
        Poll::Pending
    }
}

impl Drop for OutboxBody {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.closed = true;
        shared.buf = BytesMut::new();
        if let Some(waker) = shared.sender_waker.take() {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::ws::CloseCode;
    use futures_util::task::noop_waker_ref;
    use std::future::Future;

    fn next(body: &mut OutboxBody) -> Poll<Option<Bytes>> {
        let mut cx = Context::from_waker(noop_waker_ref());
        Pin::new(body)
            .poll_next(&mut cx)
            .map(|item| item.map(|bytes| bytes.unwrap_or_else(|never| match never {})))
    }

    /// Decodes the frames a client would read from `bytes`: (opcode, payload), each final.
    fn frames(bytes: Bytes) -> Vec<(OpCode, Bytes)> {
        let mut buf = BytesMut::from(&bytes[..]);
        let mut frames = Vec::new();
        while let Ok(Some((finished, opcode, payload))) = Parser::parse(&mut buf, false, 1 << 20) {
            assert!(finished, "every frame is final");
            frames.push((opcode, payload.unwrap_or_default().freeze()));
        }
        assert!(buf.is_empty(), "the chunk holds whole frames only");
        frames
    }

    #[tokio::test]
    async fn frames_sent_while_the_connection_was_busy_go_out_in_one_chunk() {
        let (outbox, mut body) = Outbox::new(Framing::WebSocket, 1024, Box::new(()));
        assert_eq!(next(&mut body), Poll::Pending);
        assert_eq!(outbox.text("one").await, Ok(()));
        assert_eq!(outbox.text("two").await, Ok(()));
        let Poll::Ready(Some(chunk)) = next(&mut body) else {
            panic!("the body had frames to give");
        };
        let texts: Vec<_> = frames(chunk)
            .into_iter()
            .map(|frame| match frame {
                (OpCode::Text, text) => text,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(texts, vec![Bytes::from("one"), Bytes::from("two")]);
        assert_eq!(next(&mut body), Poll::Pending);
    }

    #[tokio::test]
    async fn a_send_waits_while_the_limit_is_buffered_and_resumes_once_taken() {
        let (outbox, mut body) = Outbox::new(Framing::WebSocket, 8, Box::new(()));
        assert_eq!(outbox.text("0123456789").await, Ok(()));
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut second = Box::pin(outbox.text("more"));
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert!(matches!(next(&mut body), Poll::Ready(Some(_))));
        assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    }

    #[tokio::test]
    async fn nothing_follows_a_close_frame_and_the_body_ends_after_it() {
        let (outbox, mut body) = Outbox::new(Framing::WebSocket, 1024, Box::new(()));
        let reason = CloseReason {
            code: CloseCode::from(4008),
            description: Some("é".repeat(200)),
        };
        assert_eq!(outbox.close(reason).await, Ok(()));
        assert_eq!(outbox.text("late").await, Err(Closed));
        let Poll::Ready(Some(chunk)) = next(&mut body) else {
            panic!("the close frame goes out");
        };
        match frames(chunk).as_slice() {
            [(OpCode::Close, payload)] => {
                let Ok(Some(reason)) = Parser::try_parse_close_payload(payload) else {
                    panic!("a close frame with a code, got {payload:?}");
                };
                assert_eq!(reason.code, CloseCode::from(4008));
                let description = reason.description.as_deref().unwrap_or_default();
                assert!(description.len() <= MAX_CONTROL_PAYLOAD_BYTES - 2);
            }
            other => panic!("expected one close frame, got {other:?}"),
        }
        assert_eq!(next(&mut body), Poll::Ready(None));
    }

    #[tokio::test]
    async fn an_event_stream_writes_events_named_by_type_comments_and_a_close_event() {
        let (outbox, mut body) = Outbox::new(Framing::EventStream, 1024, Box::new(()));
        let frame = r#"{"type":"notification","notification":{"id":7}}"#;
        assert_eq!(outbox.text_with_id(frame, Some("7")).await, Ok(()));
        assert_eq!(outbox.text("not json\nat all").await, Ok(()));
        assert_eq!(outbox.ping(b"").await, Ok(()));
        assert_eq!(outbox.pong(b"x").await, Ok(()));
        let reason = CloseReason {
            code: CloseCode::from(4401),
            description: Some("token revoked".to_owned()),
        };
        assert_eq!(outbox.close(reason).await, Ok(()));
        assert_eq!(outbox.text("late").await, Err(Closed));
        let Poll::Ready(Some(chunk)) = next(&mut body) else {
            panic!("the events go out");
        };
        let expected = format!(
            "id: 7\nevent: notification\ndata: {frame}\n\n\
             event: message\ndata: not json\ndata: at all\n\n\
             :\n\n\
             event: close\ndata: {{\"code\":4401,\"reason\":\"token revoked\",\"type\":\"close\"}}\n\n"
        );
        assert_eq!(std::str::from_utf8(&chunk), Ok(expected.as_str()));
        assert_eq!(next(&mut body), Poll::Ready(None));
    }

    #[tokio::test]
    async fn the_body_ends_when_the_sender_is_dropped_and_sends_fail_when_the_body_is() {
        let (outbox, mut body) = Outbox::new(Framing::WebSocket, 1024, Box::new(()));
        assert_eq!(outbox.text("last").await, Ok(()));
        drop(outbox);
        assert!(matches!(next(&mut body), Poll::Ready(Some(_))));
        assert_eq!(next(&mut body), Poll::Ready(None));

        let (outbox, body) = Outbox::new(Framing::WebSocket, 1024, Box::new(()));
        drop(body);
        assert_eq!(outbox.ping(b"").await, Err(Closed));
    }
}
