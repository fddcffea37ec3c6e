//! A test client for the live socket: opens it with a bearer token or a ticket, reads frames
//! with a timeout around every read, answers protocol pings, and reports close codes.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::DEADLINE;

pub struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub hello: Value,
}

/// Frames that may come between notifications (counts, not events).
const COUNT_FRAMES: [&str; 2] = ["like_count", "read"];

/// What the server did instead of sending the expected frame.
#[derive(Debug)]
pub enum Ended {
    Closed(Option<u16>),
    TimedOut,
}

impl Socket {
    /// Opens a socket; `Err((status, body))` when the upgrade is refused.
    pub async fn open(
        url: &str,
        token: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Socket, (u16, String)> {
        let mut request = url.into_client_request().unwrap();
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let connected = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(request))
            .await
            .expect("socket handshake within the deadline");
        match connected {
            Ok((stream, _)) => {
                let mut socket = Socket {
                    stream,
                    hello: Value::Null,
                };
                let hello = socket.next().await;
                assert_eq!(hello["type"], "hello", "first frame must be hello: {hello}");
                socket.hello = hello;
                Ok(socket)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err((status, body))
            }
            Err(other) => panic!("socket failed: {other}"),
        }
    }

    /// Opens a socket whose TCP receive buffer is tiny, for clients that stop reading: the
    /// server's writes back up after a few frames instead of after megabytes.
    pub async fn open_small_buffer(url: &str, token: &str) -> Socket {
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let host = request.uri().host().unwrap().to_owned();
        let port = request.uri().port_u16().unwrap();
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.set_recv_buffer_size(4096).unwrap();
        let stream = tcp
            .connect(format!("{host}:{port}").parse().unwrap())
            .await
            .unwrap();
        let (stream, _) = tokio::time::timeout(
            DEADLINE,
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)),
        )
        .await
        .expect("handshake within the deadline")
        .expect("handshake succeeds");
        let mut socket = Socket {
            stream,
            hello: Value::Null,
        };
        socket.hello = socket.next().await;
        assert_eq!(socket.hello["type"], "hello");
        socket
    }

    /// The next JSON frame, within [`DEADLINE`]; panics on close or timeout.
    #[track_caller]
    pub fn next(&mut self) -> impl std::future::Future<Output = Value> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            match self.next_within(DEADLINE).await {
                Ok(frame) => frame,
                Err(ended) => panic!("expected a frame at {caller}, got {ended:?}"),
            }
        }
    }

    /// The next JSON frame within `limit`, or how the socket ended instead.
    pub async fn next_within(&mut self, limit: Duration) -> Result<Value, Ended> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => return Err(Ended::TimedOut),
                Ok(None) => return Err(Ended::Closed(None)),
                Ok(Some(Err(_))) => return Err(Ended::Closed(None)),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    return Ok(serde_json::from_str(&text).expect("frames are JSON"))
                }
                Message::Close(frame) => {
                    return Err(Ended::Closed(frame.map(|f| u16::from(f.code))))
                }
                Message::Binary(_) => panic!("the server sends text frames only"),
                _ => continue, // pings are answered by tungstenite on the next read/write
            }
        }
    }

    /// The next frame of `kind`, skipping others of the listed ignorable kinds.
    pub async fn next_of(&mut self, kind: &str, skipping: &[&str]) -> Value {
        loop {
            let frame = self.next().await;
            if frame["type"] == kind {
                return frame;
            }
            assert!(
                skipping.iter().any(|s| frame["type"] == *s),
                "expected a {kind} frame, got {frame}"
            );
        }
    }

    /// The next notification frame's notification (other frame kinds are a failure).
    pub async fn notification(&mut self) -> Value {
        let frame = self.next_of("notification", &COUNT_FRAMES).await;
        frame["notification"].clone()
    }

    /// [`Self::notification`] within `limit`, or how the socket ended instead.
    pub async fn notification_within(&mut self, limit: Duration) -> Result<Value, Ended> {
        loop {
            let frame = self.next_within(limit).await?;
            if frame["type"] == "notification" {
                return Ok(frame["notification"].clone());
            }
            assert!(
                COUNT_FRAMES.iter().any(|k| frame["type"] == *k),
                "expected a notification frame, got {frame}"
            );
        }
    }

    /// Waits for the server to close the socket and returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.next_within(DEADLINE).await {
                Ok(_) => continue,
                Err(Ended::Closed(code)) => return code,
                Err(Ended::TimedOut) => panic!("socket still open after {DEADLINE:?}"),
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::text(text))
            .await
            .expect("frame sent");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.stream
            .send(Message::binary(bytes))
            .await
            .expect("frame sent");
    }

    pub async fn send_json(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn close(mut self) {
        let _ = self
            .stream
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
    }
}
