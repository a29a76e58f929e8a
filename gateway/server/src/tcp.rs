//! The TCP transport: the protocol's byte-stream form, each frame after its `u32` length
//! (`docs/protocol.md`, "Transports").

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use gateway_protocol::{Decoded, Frame, Goaway, GoawayReason, MIN_MAX_FRAME_SIZE, decode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::limits::Handshaking;
use crate::metrics;
use crate::outbox::{Outbox, Wire};
use crate::session::{self, CLOSE_GRACE, ReadError, Transport};
use crate::state::Shared;
use crate::tls::Stream;

/// One client's TCP connection, inside TLS when the gateway has it.
#[derive(Debug)]
pub(crate) struct Tcp {
    stream: Stream,
    /// Until WELCOME, the socket's low-water mark as last set ([`Stream::set_low_water`]): the
    /// bytes HELLO still needs. `None` once welcomed, the mark back at 1.
    handshake_mark: Option<usize>,
}

/// Serves one accepted TCP connection until it closes. `permit` is the connection's place under
/// `max_connections`; `handshaking` counts it among the connections in their handshake until
/// HELLO is answered.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
    handshaking: Handshaking,
) {
    // Replies are small and latency matters more than packet count: coalescing is done by the
    // outbox, not by Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let Some(stream) = shared.secure(stream, peer, deadline).await else { return };
    let io = Tcp { stream, handshake_mark: Some(1) };
    session::serve(io, BytesMut::new(), peer, shared, permit, deadline, handshaking).await;
}

impl Transport for Tcp {
    const KIND: metrics::Transport = metrics::Transport::Tcp;
    const WIRE: Wire = Wire::Stream;

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, buf)
    }

    fn next_frame(
        &mut self,
        buf: &mut BytesMut,
        max_frame_size: u32,
        _out: &mut Outbox,
    ) -> Result<Option<Frame>, ReadError> {
        loop {
            match decode(buf, max_frame_size) {
                Ok(Decoded::Frame(frame)) => return Ok(Some(frame)),
                // An unknown frame type flagged ignorable.
                Ok(Decoded::Skipped { .. }) => {}
                Ok(Decoded::Incomplete { needed }) => {
                    // The length prefix was checked against the limit: room for the whole frame.
                    buf.reserve(needed);
                    // Before WELCOME, wake only when HELLO (or its length prefix) can be whole.
                    if let Some(mark) = &mut self.handshake_mark
                        && *mark != needed
                    {
                        self.stream.set_low_water(needed);
                        *mark = needed;
                    }
                    return Ok(None);
                }
                Err(e) => {
                    return Err(ReadError::Close(Goaway::new(e.goaway_reason(), e.to_string())));
                }
            }
        }
    }

    /// Every byte wakes the reader again.
    fn welcomed(&mut self) {
        if self.handshake_mark.take().is_some_and(|mark| mark != 1) {
            self.stream.set_low_water(1);
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, out: &mut Outbox) -> Poll<io::Result<()>> {
        out.poll_write(cx, &mut self.stream)
    }

    /// Shuts the write side down, so the client reads EOF after the last frame, then reads the
    /// bytes left until the client's EOF: closing a socket with unread input makes the kernel
    /// send a reset, which can destroy the GOAWAY before the client reads it.
    async fn close(mut self, _: Outbox, _: Option<(GoawayReason, String)>, client_left: bool) {
        let _ = self.stream.shutdown().await;
        if client_left {
            return;
        }
        // On the heap: an array here would be part of every session's future, idle or not.
        let mut sink = vec![0u8; 4096];
        while matches!(self.stream.read(&mut sink).await, Ok(n) if n > 0) {}
    }
}

/// Tells a connection over a limit to go elsewhere: GOAWAY `too_many_connections`, then close
/// once the client has read it (or [`CLOSE_GRACE`] passes).
pub(crate) async fn reject(mut stream: TcpStream, peer: SocketAddr, why: &'static str) {
    let goaway = Frame::Goaway(Goaway::new(GoawayReason::TOO_MANY_CONNECTIONS, why));
    let mut buf = BytesMut::new();
    if goaway.encode(&mut buf, MIN_MAX_FRAME_SIZE).is_err() {
        return;
    }
    let close = async {
        stream.write_all(&buf).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    if let Ok(Err(e)) = tokio::time::timeout(CLOSE_GRACE, close).await {
        tracing::debug!(%peer, cause = %e, "rejecting a connection failed");
    }
}
