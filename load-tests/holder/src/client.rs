//! One held socket: connect from the chosen source address, upgrade with a bearer token, wait
//! for `hello`, then answer pings until the process ends. Only what an idle Pulse client needs
//! of RFC 6455: frames from the server are read (text ignored), pings answered with masked
//! pongs, a close frame reported with its code.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::plan::Target;

/// RFC 6455's sample key and the accept value a server must answer it with.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Longest upgrade answer read before giving up on it.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest frame kept (Pulse's hello is about 100 bytes; nothing else comes to an idle socket).
const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Read buffer kept while the socket idles.
const IDLE_BUFFER_BYTES: usize = 256;

pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;

/// What happened to a socket, as it happens.
pub enum Report {
    /// The 101 answer came at `upgraded`, the `hello` frame at `hello`.
    Opened { upgraded: Instant, hello: Instant },
    /// Never opened: why (`timeout`, `http_408`, `connect_ConnectionRefused`, ...).
    Failed(String),
    /// Opened, then closed before the process ended: why (`closed_1001`, `eof`, ...).
    Closed(String),
}

/// Opens the socket and holds it; returns only if it fails or closes.
pub async fn hold_socket(target: Target, mut report: impl FnMut(Report)) {
    let opened = tokio::time::timeout(target.timeout, open(&target)).await;
    let (mut stream, mut buffer, upgraded, hello) = match opened {
        Err(_elapsed) => return report(Report::Failed("timeout".into())),
        Ok(Err(why)) => return report(Report::Failed(why)),
        Ok(Ok(opened)) => opened,
    };
    report(Report::Opened { upgraded, hello });
    drop(target);
    buffer.shrink_to(IDLE_BUFFER_BYTES);
    let why = loop {
        match next_frame(&mut stream, &mut buffer).await {
            Err(why) => break why,
            Ok((OP_CLOSE, payload)) => break close_reason(&payload),
            Ok((OP_PING, payload)) => {
                if let Err(e) = stream.write_all(&pong(&payload)).await {
                    break format!("write_{:?}", e.kind());
                }
            }
            Ok(_) => {}
        }
        buffer.shrink_to(IDLE_BUFFER_BYTES);
    };
    report(Report::Closed(why));
}

pub type Opened = (TcpStream, Vec<u8>, Instant, Instant);

pub async fn open(target: &Target) -> Result<Opened, String> {
    open_with_query(target, "").await
}

/// [`open`] with a query string (`?since=42`) on the socket's path.
pub async fn open_with_query(target: &Target, query: &str) -> Result<Opened, String> {
    let mut stream = connect(target)
        .await
        .map_err(|e| format!("connect_{:?}", e.kind()))?;
    let request = format!(
        "GET /api/v1/ws{query} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\nAuthorization: Bearer {}\r\n\r\n",
        target.host, target.token
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write_{:?}", e.kind()))?;
    let mut buffer = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err("bad_response".into());
        }
        read_more(&mut stream, &mut buffer).await?;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap_or("none").to_owned();
    if status != "101" {
        return Err(format!("http_{status}"));
    }
    if !head.contains(&format!(
        "sec-websocket-accept: {}",
        ACCEPT.to_ascii_lowercase()
    )) {
        return Err("bad_accept".into());
    }
    let upgraded = Instant::now();
    buffer.drain(..head_end);
    loop {
        match next_frame(&mut stream, &mut buffer).await? {
            (OP_TEXT, _hello) => return Ok((stream, buffer, upgraded, Instant::now())),
            (OP_CLOSE, _) => return Err("closed_before_hello".into()),
            (OP_PING, payload) => stream
                .write_all(&pong(&payload))
                .await
                .map_err(|e| format!("write_{:?}", e.kind()))?,
            _ => {}
        }
    }
}

async fn connect(target: &Target) -> std::io::Result<TcpStream> {
    let socket = match target.server {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(local) = target.local {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    let stream = socket.connect(target.server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<(), String> {
    buffer.reserve(512);
    match stream.read_buf(buffer).await {
        Ok(0) => Err("eof".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read_{:?}", e.kind())),
    }
}

/// Reads frames until the socket closes or fails, answering pings and handing each text
/// frame's payload to `on_text`; returns why it ended (`closed_1001`, `eof`, `write_<kind>`).
pub async fn read_text_frames(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    mut on_text: impl FnMut(&[u8]),
) -> String {
    loop {
        match next_frame(stream, buffer).await {
            Ok((OP_TEXT, payload)) => on_text(&payload),
            Ok((OP_PING, payload)) => {
                if let Err(e) = stream.write_all(&pong(&payload)).await {
                    return format!("write_{:?}", e.kind());
                }
            }
            Ok((OP_CLOSE, payload)) => return close_reason(&payload),
            Ok(_) => {}
            Err(why) => return why,
        }
    }
}

/// `closed_<code>` for a close frame's payload (1005: no code given).
fn close_reason(payload: &[u8]) -> String {
    let code = match payload {
        [high, low, ..] => u16::from_be_bytes([*high, *low]),
        _ => 1005,
    };
    format!("closed_{code}")
}

/// The next whole frame from the server: (opcode, payload), taken out of `buffer`.
pub async fn next_frame(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Result<(u8, Vec<u8>), String> {
    loop {
        match parse_frame(buffer)? {
            Some((opcode, start, end)) => {
                let payload = buffer[start..end].to_vec();
                buffer.drain(..end);
                return Ok((opcode, payload));
            }
            None => read_more(stream, buffer).await?,
        }
    }
}

/// A complete unmasked server frame at the start of `buffer`: (opcode, payload start, end).
fn parse_frame(buffer: &[u8]) -> Result<Option<(u8, usize, usize)>, String> {
    let [first, second, rest @ ..] = buffer else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        return Err("masked_server_frame".into());
    }
    let (length, header) = match second & 0x7f {
        126 => match rest {
            [a, b, ..] => (u16::from_be_bytes([*a, *b]) as usize, 4),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => {
                let mut eight = [0u8; 8];
                eight.copy_from_slice(bytes);
                (u64::from_be_bytes(eight) as usize, 10)
            }
            None => return Ok(None),
        },
        short => (short as usize, 2),
    };
    if length > MAX_FRAME_BYTES {
        return Err("frame_too_large".into());
    }
    let end = header + length;
    Ok((buffer.len() >= end).then_some((first & 0x0f, header, end)))
}

/// A masked pong echoing `payload` (pings carry at most 125 bytes). The all-zero mask leaves
/// the payload as it is; any mask is valid on the wire.
pub fn pong(payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(125)];
    let mut frame = Vec::with_capacity(6 + payload.len());
    frame.push(0x80 | 0xA);
    frame.push(0x80 | payload.len() as u8);
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// A masked text frame (client frames must be masked; the all-zero mask keeps the payload).
pub fn masked_text(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.push(0x80 | OP_TEXT);
    match payload.len() {
        short @ 0..=125 => frame.push(0x80 | short as u8),
        medium @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(medium as u16).to_be_bytes());
        }
        long => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(long as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_parsed_whole_or_not_at_all() {
        assert_eq!(parse_frame(&[0x81]), Ok(None));
        assert_eq!(parse_frame(&[0x81, 3, b'a', b'b']), Ok(None));
        assert_eq!(
            parse_frame(&[0x81, 3, b'a', b'b', b'c']),
            Ok(Some((1, 2, 5)))
        );
        assert_eq!(parse_frame(&[0x89, 0]), Ok(Some((9, 2, 2))));
        let mut long = vec![0x81, 126, 0x01, 0x00];
        long.extend(std::iter::repeat_n(b'x', 256));
        assert_eq!(parse_frame(&long), Ok(Some((1, 4, 260))));
        assert!(parse_frame(&[0x81, 0x83, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn a_text_frame_is_masked_with_its_length() {
        assert_eq!(masked_text(b"ab"), vec![0x81, 0x82, 0, 0, 0, 0, b'a', b'b']);
        let long = masked_text(&[b'x'; 300]);
        assert_eq!(&long[..4], &[0x81, 0x80 | 126, 0x01, 0x2c]);
        assert_eq!(long.len(), 4 + 4 + 300);
    }

    #[test]
    fn a_close_reason_carries_the_code_or_1005() {
        assert_eq!(close_reason(&[0x03, 0xE9, b'b', b'y', b'e']), "closed_1001");
        assert_eq!(close_reason(&[]), "closed_1005");
    }

    #[test]
    fn a_pong_echoes_the_ping_masked() {
        assert_eq!(pong(b"hi"), vec![0x8A, 0x82, 0, 0, 0, 0, b'h', b'i']);
    }
}
