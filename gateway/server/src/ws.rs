//! The WebSocket transport (`docs/protocol.md`, "Transports"): the same protocol as TCP, one frame
//! per binary WebSocket message, without the length prefix.
//!
//! A connection to `ws_listen` first goes through the HTTP upgrade (`ws/upgrade.rs`): a browser's
//! `Origin` must be in `allowed_origins` (else HTTP 403, naming it), and the whole upgrade falls
//! under `handshake_timeout`, as does the HELLO after it. Then it is an ordinary session
//! ([`crate::session::serve`]) over [`Ws`]: every limit, permission and lag policy is the
//! session's, whatever the transport. The WebSocket framing is our own (`ws/codec.rs` reads the
//! client's frames in the session's read buffer, unmasking in place; the outbox writes the
//! server's), so a WebSocket session costs what a TCP one does.
//!
//! What WebSocket adds:
//!
//! - **Message size.** A message is one frame, so its size is bounded by the session's current
//!   maximum frame size: 65,536 bytes until WELCOME, `max_frame_size` after, refused from the
//!   WebSocket frame header before the message is read.
//! - **Pings.** After `ws_ping_interval` without hearing from the client the session sends a
//!   WebSocket ping; a client silent for two intervals is closed (GOAWAY `idle_timeout`). The
//!   client's pings are answered with pongs.
//! - **Closing.** The GOAWAY goes first, as a binary message, then a close frame whose code
//!   matches its reason ([`codec::close_code`]) and whose reason is the GOAWAY's message, cut to
//!   the 123 bytes a close frame holds. The gateway then waits (within `CLOSE_GRACE`) for the
//!   client's close frame before dropping the connection. A client that closes first gets its
//!   own close frame echoed back (RFC 6455 §5.5.1).

pub(crate) mod codec;
pub(crate) mod upgrade;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use gateway_protocol::{Frame, Goaway, GoawayReason, MIN_MAX_FRAME_SIZE};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::debug;

use self::codec::{Reader, Stop};
use self::upgrade::Refused;
use crate::limits::Handshaking;
use crate::metrics;
use crate::outbox::{Outbox, Wire, opcode};
use crate::session::{self, CLOSE_GRACE, ReadError, Transport};
use crate::state::Shared;
use crate::tls::Stream;

pub(crate) use self::codec::close_code;

/// The most a close frame's reason holds: 125 bytes of payload less the 2-byte code.
const MAX_CLOSE_REASON: usize = 123;

/// One client's WebSocket connection, after the upgrade.
#[derive(Debug)]
pub(crate) struct Ws {
    stream: Stream,
    reader: Reader,
    /// The client's close frame (its code and reason), to echo.
    peer_close: Option<Bytes>,
    /// The close code for what the client broke, when it is not the GOAWAY reason's (a text
    /// message: 1003).
    close_code: Option<u16>,
    /// Reading failed on a broken frame: what follows it cannot be read as frames.
    broken: bool,
}

/// Serves one connection accepted on `ws_listen`: the HTTP upgrade, then a session. `permit` is
/// its place under `max_connections`; `handshaking` counts it among the connections in their
/// handshake until HELLO is answered.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
    handshaking: Handshaking,
) {
    let deadline = Instant::now() + shared.config.handshake_timeout;
    // As on TCP: the outbox coalesces, not Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let Some(mut stream) = shared.secure(stream, peer, deadline).await else { return };
    let Some(read) = upgrade(&mut stream, peer, &shared, deadline).await else { return };
    let ws =
        Ws { stream, reader: Reader::default(), peer_close: None, close_code: None, broken: false };
    session::serve(ws, read, peer, shared, permit, deadline, handshaking).await;
}

/// The upgrade under the handshake deadline, counted and logged when it fails.
async fn upgrade(
    stream: &mut Stream,
    peer: SocketAddr,
    shared: &Shared,
    deadline: Instant,
) -> Option<BytesMut> {
    let accept = upgrade::accept(stream, |origin| shared.config.origin_allowed(origin));
    let upgraded = tokio::select! {
        biased;
        // Not a session yet: nothing to drain, and no WebSocket to say GOAWAY on.
        _ = shared.draining.cancelled() => return None,
        upgraded = tokio::time::timeout_at(deadline, accept) => upgraded,
    };
    match upgraded {
        Ok(Ok(read)) => Some(read),
        Ok(Err(Refused::Origin(why))) => {
            shared.metrics.origin_refused();
            debug!(%peer, why = why.trim_end(), "WebSocket upgrade refused");
            None
        }
        Ok(Err(Refused::Failed(why))) => {
            shared.metrics.upgrade_failed();
            debug!(%peer, cause = why, "WebSocket upgrade failed");
            None
        }
        Err(_) => {
            shared.metrics.upgrade_failed();
            debug!(%peer, "no WebSocket upgrade within the handshake timeout");
            None
        }
    }
}

/// Turns away a connection to `ws_listen` over a connection limit: upgrades it (the origin check
/// included), sends GOAWAY `too_many_connections`, then a close frame `1013` (try again later),
/// and waits briefly for the client's close frame.
pub(crate) async fn reject(stream: TcpStream, peer: SocketAddr, shared: &Shared, why: &str) {
    let deadline = Instant::now() + shared.config.handshake_timeout;
    // Never under TLS (the front closes those at once).
    let mut stream = Stream::Plain(stream);
    let Some(_) = upgrade(&mut stream, peer, shared, deadline).await else { return };
    let ws =
        Ws { stream, reader: Reader::default(), peer_close: None, close_code: None, broken: false };
    let mut out = Outbox::new(Wire::WebSocket, MIN_MAX_FRAME_SIZE);
    let goaway = Goaway::new(GoawayReason::TOO_MANY_CONNECTIONS, why);
    if out.push(&Frame::Goaway(goaway)).is_err() {
        return;
    }
    let farewell = Some((GoawayReason::TOO_MANY_CONNECTIONS, why.to_owned()));
    let _ = tokio::time::timeout(CLOSE_GRACE, ws.close(out, farewell, false)).await;
}

impl Transport for Ws {
    const KIND: metrics::Transport = metrics::Transport::WebSocket;
    const WIRE: Wire = Wire::WebSocket;

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, buf)
    }

    fn next_frame(
        &mut self,
        buf: &mut BytesMut,
        max_frame_size: u32,
        out: &mut Outbox,
    ) -> Result<Option<Frame>, ReadError> {
        match self.reader.next(buf, max_frame_size, out) {
            Ok(frame) => Ok(frame),
            Err(Stop::Closed(payload)) => {
                self.peer_close = Some(payload);
                Err(ReadError::Left)
            }
            Err(Stop::Broken { reason, message, code }) => {
                self.close_code = Some(code);
                self.broken = true;
                Err(ReadError::Close(Goaway::new(reason, message)))
            }
        }
    }

    fn welcomed(&mut self) {
        self.reader.welcomed();
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, out: &mut Outbox) -> Poll<io::Result<()>> {
        out.poll_write(cx, &mut self.stream)
    }

    /// The close frame: the client's own echoed when it closed first; for the GOAWAY's reason
    /// when the gateway closes; `1000` when the client left with a GOAWAY of its own. Then waits
    /// for the client's close frame (or, after a broken frame, for the client to stop sending).
    async fn close(mut self, mut out: Outbox, farewell: Option<(GoawayReason, String)>, _: bool) {
        let mut payload = BytesMut::with_capacity(125);
        match (&self.peer_close, &farewell) {
            (Some(echo), _) => payload.put_slice(echo),
            (None, Some((reason, message))) => {
                payload.put_u16(self.close_code.unwrap_or_else(|| close_code(*reason)));
                payload.put_slice(close_reason(message).as_bytes());
            }
            (None, None) => payload.put_u16(1000),
        }
        out.ws_control(opcode::CLOSE, &payload);
        let written = std::future::poll_fn(|cx| out.poll_write(cx, &mut self.stream)).await;
        if written.is_err() || self.peer_close.is_some() {
            return;
        }
        // Until the client's close frame, its EOF, or (after a broken frame, whose followers
        // cannot be read) a pause: it has read our close frame and waits for us.
        let mut buf = BytesMut::new();
        let pause = if self.broken { Duration::from_millis(100) } else { CLOSE_GRACE };
        let mut sink = Outbox::new(Wire::WebSocket, MIN_MAX_FRAME_SIZE);
        loop {
            buf.reserve(4096);
            match tokio::time::timeout(pause, self.stream.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            if self.broken {
                buf.clear();
                continue;
            }
            loop {
                match self.reader.next(&mut buf, u32::MAX, &mut sink) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }
}

/// `message` cut to the 123 bytes a close frame's reason holds, on a character boundary.
pub(crate) fn close_reason(message: &str) -> &str {
    if message.len() <= MAX_CLOSE_REASON {
        return message;
    }
    let mut end = MAX_CLOSE_REASON;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame_and_stay_utf8() {
        assert_eq!(close_reason("short"), "short");
        let ascii = "x".repeat(200);
        assert_eq!(close_reason(&ascii).len(), 123);
        // 'é' is 2 bytes: 61 of them are 122 bytes, and the 62nd would end at 124.
        let accents = "é".repeat(100);
        assert_eq!(close_reason(&accents), "é".repeat(61));
    }
}
