//! The WebSocket opening handshake, server side (RFC 6455 §4.2): an HTTP/1.1 `GET` with
//! `Upgrade: websocket`, answered `101 Switching Protocols` with the key's accept value. Written
//! here rather than taken from a library so that the bytes a client sends after its request stay
//! in the session's read buffer, and an upgraded connection costs nothing but that buffer.
//!
//! A browser's `Origin` must be allowed (else `403`, naming it); a request that is not a
//! WebSocket upgrade gets `400` (or `426` for another WebSocket version) and the connection
//! closes. No subprotocol or extension is negotiated.

use base64::Engine as _;
use bytes::{Buf, BytesMut};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tls::Stream;

/// The longest request head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// The GUID a key is hashed with (RFC 6455 §1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why an upgrade failed.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The origin is not allowed (answered 403).
    Origin(String),
    /// Not a WebSocket upgrade, or a broken one (answered with an HTTP error), or the
    /// connection failed.
    Failed(String),
}

/// Reads the upgrade request from `stream`, checks it (`origin_allowed` for a browser's
/// `Origin`), and answers it. Returns the bytes read after the request, which are already the
/// client's WebSocket frames.
///
/// # Errors
///
/// [`Refused`], once the HTTP error (if any) is sent.
pub(crate) async fn accept(
    stream: &mut Stream,
    origin_allowed: impl Fn(&str) -> bool,
) -> Result<BytesMut, Refused> {
    let mut buf = BytesMut::with_capacity(1024);
    // The socket's low-water mark: woken only when the head can have ended.
    let mut low_water = 1;
    let head_len = loop {
        if let Some(end) = find_head_end(&buf) {
            if low_water != 1 {
                stream.set_low_water(1);
            }
            break end;
        }
        let needs = head_needs(&buf);
        if needs != low_water {
            stream.set_low_water(needs);
            low_water = needs;
        }
        if buf.len() >= MAX_HEAD {
            let _ = respond(
                stream,
                "431 Request Header Fields Too Large",
                "",
                "request head too large\n",
            )
            .await;
            return Err(Refused::Failed("the request head is over 8 KiB".into()));
        }
        buf.reserve(1024);
        match stream.read_buf(&mut buf).await {
            Ok(0) => {
                return Err(Refused::Failed("the connection closed before the request".into()));
            }
            Ok(_) => {}
            Err(e) => return Err(Refused::Failed(e.to_string())),
        }
    };
    let head = std::str::from_utf8(&buf[..head_len])
        .map_err(|_| Refused::Failed("the request head is not text".into()));
    let request = match head.and_then(|head| Request::parse(head).map_err(Refused::Failed)) {
        Ok(request) => request,
        Err(refused) => {
            let _ =
                respond(stream, "400 Bad Request", "", "not a WebSocket upgrade request\n").await;
            return Err(refused);
        }
    };
    if request.version.as_deref() != Some("13") {
        let _ = respond(
            stream,
            "426 Upgrade Required",
            "Sec-WebSocket-Version: 13\r\n",
            "only WebSocket version 13 is spoken here\n",
        )
        .await;
        return Err(Refused::Failed("not WebSocket version 13".into()));
    }
    if let Some(origin) = &request.origin {
        if !origin_allowed(origin) {
            let body = format!("origin `{origin}` is not allowed here\n");
            let _ = respond(stream, "403 Forbidden", "", &body).await;
            return Err(Refused::Origin(body));
        }
    }
    let accept = accept_key(request.key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await.map_err(|e| Refused::Failed(e.to_string()))?;
    buf.advance(head_len);
    Ok(buf)
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// Sends an HTTP error response and closes the write side.
async fn respond(
    stream: &mut Stream,
    status: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{headers}\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Where the head ends (after its blank line), if it is all there.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4)
}

/// The fewest bytes that could end a head `buf` has not ended yet: 4 for the blank line's
/// `\r\n\r\n`, less what `buf` ends with of it.
fn head_needs(buf: &[u8]) -> usize {
    const END: &[u8] = b"\r\n\r\n";
    let started = (1..END.len()).rev().find(|&k| buf.ends_with(&END[..k])).unwrap_or(0);
    END.len() - started
}

/// What an upgrade request says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) key: String,
    version: Option<String>,
    origin: Option<String>,
}

impl Request {
    pub(crate) fn parse(head: &str) -> Result<Request, String> {
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or_default();
        let mut parts = start.split(' ');
        let (method, _target, http) = (parts.next(), parts.next(), parts.next());
        if method != Some("GET") || http != Some("HTTP/1.1") {
            return Err(format!("`{}` is not an HTTP/1.1 GET", start.escape_debug()));
        }
        let (mut upgrade, mut connection) = (false, false);
        let (mut key, mut version, mut origin) = (None, None, None);
        for line in lines.filter(|l| !l.is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!("a header line without `:`: `{}`", line.escape_debug()));
            };
            let value = value.trim();
            let has_token =
                |token: &str| value.split(',').any(|v| v.trim().eq_ignore_ascii_case(token));
            match name.trim().to_ascii_lowercase().as_str() {
                "upgrade" => upgrade |= has_token("websocket"),
                "connection" => connection |= has_token("upgrade"),
                "sec-websocket-key" => key = Some(value.to_owned()),
                "sec-websocket-version" => version = Some(value.to_owned()),
                "origin" => origin = Some(value.to_owned()),
                _ => {}
            }
        }
        if !upgrade || !connection {
            return Err("no `Upgrade: websocket` and `Connection: upgrade`".into());
        }
        let key = key.ok_or("no `Sec-WebSocket-Key`")?;
        Ok(Request { key, version, origin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_key_gets_its_accept_value() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn requests_are_read_with_any_header_case_and_token_lists() {
        let head = "GET /chat HTTP/1.1\r\nHost: x\r\nupgrade: WebSocket\r\n\
                    Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: abc==\r\n\
                    sec-websocket-version: 13\r\nOrigin: http://app.test\r\n\r\n";
        assert_eq!(
            Request::parse(head),
            Ok(Request {
                key: "abc==".into(),
                version: Some("13".into()),
                origin: Some("http://app.test".into())
            })
        );
        assert_eq!(find_head_end(head.as_bytes()), Some(head.len()));
        assert!(Request::parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_err());
        assert!(Request::parse("POST / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n").is_err());
        let no_key = "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
        assert!(Request::parse(no_key).unwrap_err().contains("Key"));
    }

    #[test]
    fn a_head_needs_the_rest_of_its_blank_line_and_never_more() {
        assert_eq!(head_needs(b""), 4);
        assert_eq!(head_needs(b"GET / HTTP/1.1"), 4);
        assert_eq!(head_needs(b"GET / HTTP/1.1\r"), 3);
        assert_eq!(head_needs(b"GET / HTTP/1.1\r\n"), 2);
        assert_eq!(head_needs(b"GET / HTTP/1.1\r\nHost: x\r\n\r"), 1);
        // A lone `\n` or `\r\r` starts nothing.
        assert_eq!(head_needs(b"GET /\n"), 4);
        assert_eq!(head_needs(b"GET /\r\r"), 3);
        // Adding what it says it needs can always end the head.
        for buf in [&b"x"[..], b"x\r", b"x\r\n", b"x\r\n\r"] {
            let mut whole = buf.to_vec();
            whole.extend_from_slice(&b"\r\n\r\n"[4 - head_needs(buf)..]);
            assert_eq!(find_head_end(&whole), Some(whole.len()), "{buf:?}");
        }
    }
}
