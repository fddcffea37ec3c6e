//! A test client for the event stream (`GET /api/v1/events`), over a plain TCP connection so a
//! test can shrink its receive buffer (a reader that stops reading). It speaks HTTP/1.1, undoes
//! chunked transfer encoding, parses events as `EventSource` does, and reports comment lines.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::socket::Ended;
use super::DEADLINE;

/// One event: its `id:` (if any), its `event:` name and its `data:` parsed as JSON.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Option<String>,
    pub kind: String,
    pub data: Value,
}

pub struct EventStream {
    reader: BufReader<TcpStream>,
    /// Decoded body bytes not yet parsed into events.
    text: String,
    /// The response's headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Comment lines (heartbeats) read so far.
    pub comments: usize,
    pub hello: Value,
    ended: bool,
}

/// How a stream is opened: the path and query under `/api/v1`, and extra request headers.
pub struct Request<'a> {
    pub port: u16,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
    /// `Some(bytes)`: the client's TCP receive buffer (a reader that falls behind fast).
    pub recv_buffer: Option<u32>,
}

impl EventStream {
    /// Opens the stream and reads `hello`; `Err((status, body))` when it is refused.
    pub async fn open(request: Request<'_>) -> Result<EventStream, (u16, String)> {
        tokio::time::timeout(DEADLINE, Self::connect(request))
            .await
            .expect("the stream answers within the deadline")
    }

    async fn connect(request: Request<'_>) -> Result<EventStream, (u16, String)> {
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(bytes) = request.recv_buffer {
            tcp.set_recv_buffer_size(bytes).unwrap();
        }
        let address = format!("127.0.0.1:{}", request.port).parse().unwrap();
        let mut stream = tcp.connect(address).await.expect("connects");
        let mut head = format!(
            "GET /api/v1{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\n",
            request.path, request.port
        );
        if let Some(token) = request.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in request.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader).await;
        let mut events = EventStream {
            reader,
            text: String::new(),
            headers,
            comments: 0,
            hello: Value::Null,
            ended: false,
        };
        if status != 200 {
            return Err((status, events.read_whole_body().await));
        }
        let hello = events.next().await;
        assert_eq!(
            hello.kind, "hello",
            "the first event must be hello: {hello:?}"
        );
        events.hello = hello.data;
        Ok(events)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next event within [`DEADLINE`]; panics on the end of the stream or a timeout.
    pub async fn next(&mut self) -> Event {
        match self.next_within(DEADLINE).await {
            Ok(event) => event,
            Err(ended) => panic!("expected an event, got {ended:?}"),
        }
    }

    /// The next event within `limit`. A `close` event ends the stream: `Closed(code)`.
    pub async fn next_within(&mut self, limit: Duration) -> Result<Event, Ended> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(event) = self.parse_one() {
                if event.kind == "close" {
                    let code = event.data["code"].as_u64().map(|c| c as u16);
                    return Err(Ended::Closed(code));
                }
                return Ok(event);
            }
            if self.ended {
                return Err(Ended::Closed(None));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.read_chunk()).await {
                Err(_) => return Err(Ended::TimedOut),
                Ok(Some(chunk)) => self.text.push_str(&chunk),
                Ok(None) => self.ended = true,
            }
        }
    }

    /// The next notification event's notification (like counts and read events are skipped).
    pub async fn notification(&mut self) -> (Option<String>, Value) {
        loop {
            let event = self.next().await;
            match event.kind.as_str() {
                "notification" => return (event.id, event.data["notification"].clone()),
                "like_count" | "read" => continue,
                other => panic!("expected a notification, got {other}: {event:?}"),
            }
        }
    }

    /// Reads until the stream ends; the code of its `close` event, if it sent one.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.next_within(DEADLINE).await {
                Ok(_) => continue,
                Err(Ended::Closed(code)) => return code,
                Err(Ended::TimedOut) => panic!("stream still open after {DEADLINE:?}"),
            }
        }
    }

    /// Parses one whole event (or skips one comment) from what was read.
    fn parse_one(&mut self) -> Option<Event> {
        loop {
            let end = self.text.find("\n\n")?;
            let block: String = self.text.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, "message".to_owned(), Vec::new());
            let mut comment = false;
            for line in block.lines().filter(|l| !l.is_empty()) {
                match line.split_once(':') {
                    Some(("", _)) => comment = true,
                    Some(("id", v)) => id = Some(v.trim_start().to_owned()),
                    Some(("event", v)) => kind = v.trim_start().to_owned(),
                    Some(("data", v)) => data.push(v.strip_prefix(' ').unwrap_or(v).to_owned()),
                    _ => panic!("not an event-stream line: {line:?}"),
                }
            }
            if comment && data.is_empty() {
                self.comments += 1;
                continue;
            }
            let data = serde_json::from_str(&data.join("\n")).expect("event data is JSON");
            return Some(Event { id, kind, data });
        }
    }

    /// One chunk of the chunked body; `None` at its end.
    async fn read_chunk(&mut self) -> Option<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let size = usize::from_str_radix(line.trim(), 16).expect("a chunk size");
        if size == 0 {
            return None;
        }
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk).await.ok()?;
        chunk.truncate(size);
        Some(String::from_utf8(chunk).expect("UTF-8 events"))
    }

    /// A refusal's body (fixed length or chunked).
    async fn read_whole_body(&mut self) -> String {
        if let Some(length) = self.header("content-length") {
            let mut body = vec![0; length.parse().unwrap()];
            self.reader.read_exact(&mut body).await.unwrap();
            return String::from_utf8_lossy(&body).into_owned();
        }
        let mut body = String::new();
        while let Some(chunk) = self.read_chunk().await {
            body.push_str(&chunk);
        }
        body
    }
}

/// The status line and headers.
async fn read_head(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line, got {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            return (status, headers);
        }
        let (name, value) = trimmed.split_once(':').expect("a header line");
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
}
