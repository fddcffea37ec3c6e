//! Keep-alive HTTP/1.1 connections to one instance, for `pulse-hold likes`: at most one request
//! in flight per connection, at most `max` connections; a request waits for a free one. Only
//! what a like needs: a bodiless request with a bearer token, a `Content-Length` answer (a
//! chunked one is an error), `Connection: close` honoured.

use std::cell::RefCell;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Longest answer head read before giving up on it.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest answer body accepted (a like's answer is about 50 bytes).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An answer: its status and body. Status 0 is a transport error; the body then says which.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    fn transport(why: String) -> Answer {
        Answer {
            status: 0,
            body: why,
        }
    }
}

struct Connection {
    stream: TcpStream,
    /// Bytes read past the previous answer (none, as long as the server answers one at a time).
    buffer: Vec<u8>,
}

pub struct Pool {
    server: SocketAddr,
    host: String,
    idle: RefCell<Vec<Connection>>,
    slots: Semaphore,
}

impl Pool {
    pub fn new(server: SocketAddr, max: usize) -> Pool {
        Pool {
            server,
            host: server.to_string(),
            idle: RefCell::new(Vec::new()),
            slots: Semaphore::new(max.max(1)),
        }
    }

    /// Sends `method path` with `token` on an idle connection (a new one if `fresh`, or if
    /// none is idle and fewer than `max` are open; else waits for one) and reads the answer.
    pub async fn request(&self, method: &str, path: &str, token: &str, fresh: bool) -> Answer {
        let Ok(_slot) = self.slots.acquire().await else {
            return Answer::transport("pool closed".into());
        };
        let idle = if fresh { None } else { self.take_idle() };
        let mut connection = match idle {
            Some(connection) => connection,
            None => match TcpStream::connect(self.server).await {
                Ok(stream) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        return Answer::transport(format!("nodelay: {e}"));
                    }
                    Connection {
                        stream,
                        buffer: Vec::with_capacity(1024),
                    }
                }
                Err(e) => return Answer::transport(format!("connect: {e}")),
            },
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 0\r\n\r\n",
            self.host
        );
        if let Err(e) = connection.stream.write_all(request.as_bytes()).await {
            return Answer::transport(format!("write: {e}"));
        }
        match read_answer(&mut connection).await {
            Ok((answer, keep_alive)) => {
                if keep_alive {
                    self.idle.borrow_mut().push(connection);
                }
                answer
            }
            Err(why) => Answer::transport(why),
        }
    }

    /// The most recently used idle connection that the server has not closed meanwhile (it
    /// closes keep-alive connections idle for a few seconds; a closed one reads as end of file,
    /// a live one has nothing to read).
    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle.borrow_mut();
        while let Some(connection) = idle.pop() {
            let mut probe = [0u8; 1];
            match connection.stream.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(connection),
                _closed_or_unexpected => {}
            }
        }
        None
    }
}

/// Reads one answer off the connection: (answer, whether the connection may be reused).
async fn read_answer(connection: &mut Connection) -> Result<(Answer, bool), String> {
    loop {
        if let Some(parsed) = parse_answer(&connection.buffer)? {
            let (answer, keep_alive, end) = parsed;
            connection.buffer.drain(..end);
            return Ok((answer, keep_alive));
        }
        if connection.buffer.len() > MAX_HEAD_BYTES + MAX_BODY_BYTES {
            return Err("answer too long".into());
        }
        connection.buffer.reserve(1024);
        match connection.stream.read_buf(&mut connection.buffer).await {
            Ok(0) => return Err("connection closed".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// A whole answer at the start of `buffer`: (answer, keep-alive, bytes it took), or `None` if
/// more bytes are needed.
fn parse_answer(buffer: &[u8]) -> Result<Option<(Answer, bool, usize)>, String> {
    let Some(head_end) = crate::client::find(buffer, b"\r\n\r\n") else {
        if buffer.len() > MAX_HEAD_BYTES {
            return Err("answer head too long".into());
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let mut length = 0usize;
    let mut keep_alive = true;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match (name.trim(), value.trim()) {
            ("content-length", value) => {
                length = value
                    .parse()
                    .map_err(|_| format!("bad content-length {value:?}"))?;
            }
            ("transfer-encoding", value) => {
                return Err(format!("unsupported transfer-encoding {value:?}"));
            }
            ("connection", "close") => keep_alive = false,
            _ => {}
        }
    }
    if length > MAX_BODY_BYTES {
        return Err(format!("body of {length} bytes"));
    }
    let end = head_end + 4 + length;
    if buffer.len() < end {
        return Ok(None);
    }
    let body = String::from_utf8_lossy(&buffer[head_end + 4..end]).into_owned();
    Ok(Some((Answer { status, body }, keep_alive, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (status, body, keep-alive, bytes taken) of a whole answer.
    fn whole(bytes: &[u8]) -> (u16, String, bool, usize) {
        match parse_answer(bytes) {
            Ok(Some((answer, keep_alive, end))) => (answer.status, answer.body, keep_alive, end),
            other => panic!("not a whole answer: {other:?}"),
        }
    }

    #[test]
    fn an_answer_is_taken_whole_with_its_length() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_answer(&bytes[..bytes.len() - 1]), Ok(None));
        assert_eq!(whole(bytes), (200, "hello".into(), true, bytes.len()));
    }

    #[test]
    fn close_and_chunked_answers_are_recognised() {
        let close = b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(whole(close), (404, String::new(), false, close.len()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(parse_answer(chunked).is_err());
    }

    /// A server that answers each of `connections` connections once with `ok`, then closes it.
    async fn answer_once_per_connection(listener: tokio::net::TcpListener, connections: usize) {
        for _ in 0..connections {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            while crate::client::find(&head, b"\r\n\r\n").is_none() {
                if matches!(stream.read_buf(&mut head).await, Ok(0) | Err(_)) {
                    return;
                }
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_closed_is_not_reused() {
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("no loopback listener");
        };
        let Ok(server) = listener.local_addr() else {
            panic!("no listener address");
        };
        let serving = tokio::spawn(answer_once_per_connection(listener, 2));
        let pool = Pool::new(server, 4);
        let ok = Answer {
            status: 200,
            body: "ok".into(),
        };
        assert_eq!(pool.request("PUT", "/a", "t", false).await, ok);
        // The server has closed that connection; wait until the pool's copy has seen it.
        let idle = pool.idle.borrow_mut().pop();
        let Some(idle) = idle else {
            panic!("the answered connection was not kept for reuse");
        };
        assert!(idle.stream.readable().await.is_ok());
        pool.idle.borrow_mut().push(idle);
        // The server answers a connection once, so this answer came on a new one.
        assert_eq!(pool.request("PUT", "/b", "t", false).await, ok);
        serving.abort();
    }

    #[test]
    fn an_answer_without_a_length_has_an_empty_body() {
        let bytes = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1";
        assert_eq!(whole(bytes), (204, String::new(), true, 27));
    }
}
