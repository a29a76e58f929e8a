//! The reading side of a session's transport: a stream of decoded frames, whatever carries them.
//!
//! TCP ([`TcpInbound`]) decodes length-prefixed frames off the byte stream with `FrameCodec`;
//! WebSocket (`crate::ws`) decodes one frame per binary message. Either way the session sees
//! frames, or a [`ReadError`] that says how the connection ends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::{Stream, StreamExt};
use gateway_protocol::{CodecError, Frame, FrameCodec, Goaway};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::FramedRead;

use crate::metrics::Transport;
use crate::send_queue::{Outbound, TcpOutbound};

/// Why a transport yields no frame.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The connection broke: nothing can be told to the client any more.
    Gone,
    /// The client broke the protocol (or the transport's rules): the gateway closes the
    /// connection with this GOAWAY.
    Close(Goaway),
}

/// What a session reads frames from. The stream ends when the client closes the connection.
pub(crate) trait Inbound:
    Stream<Item = Result<Frame, ReadError>> + Unpin + Send + 'static
{
    /// The writing side of the same connection.
    type Outbound: Outbound;

    /// For the metrics.
    const TRANSPORT: Transport;

    /// Changes the largest frame accepted: [`MIN_MAX_FRAME_SIZE`] until WELCOME, then the
    /// gateway's `max_frame_size`.
    ///
    /// [`MIN_MAX_FRAME_SIZE`]: gateway_protocol::MIN_MAX_FRAME_SIZE
    fn set_max_frame_size(&mut self, max: u32);

    /// Once the session has ended and its writer has finished (handing `out` back, unless it
    /// did not finish in time): reads and discards what the client still sends until it closes
    /// its side, so that closing ours does not reset the connection before the client has read
    /// the last frames. `client_left` says the client closed first. The caller bounds the wait.
    fn linger(
        self,
        out: Option<Self::Outbound>,
        client_left: bool,
    ) -> impl Future<Output = ()> + Send;
}

/// Frames off a TCP connection's read half.
#[derive(Debug)]
pub(crate) struct TcpInbound(pub(crate) FramedRead<OwnedReadHalf, FrameCodec>);

impl Stream for TcpInbound {
    type Item = Result<Frame, ReadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(match ready!(self.0.poll_next_unpin(cx)) {
            None => None,
            Some(Ok(frame)) => Some(Ok(frame)),
            Some(Err(CodecError::Decode(e))) => {
                Some(Err(ReadError::Close(Goaway::new(e.goaway_reason(), e.to_string()))))
            }
            Some(Err(CodecError::Io(_) | CodecError::Encode(_))) => Some(Err(ReadError::Gone)),
        })
    }
}

impl Inbound for TcpInbound {
    type Outbound = TcpOutbound;
    const TRANSPORT: Transport = Transport::Tcp;

    fn set_max_frame_size(&mut self, max: u32) {
        self.0.decoder_mut().set_max_frame_size(max);
    }

    /// Reads the raw bytes left until the client's EOF: closing a socket with unread input makes
    /// the kernel send a reset, which can destroy the GOAWAY before the client reads it.
    async fn linger(mut self, _: Option<TcpOutbound>, client_left: bool) {
        if client_left {
            return;
        }
        let mut sink = [0u8; 4096];
        let inner = self.0.get_mut();
        while matches!(inner.read(&mut sink).await, Ok(n) if n > 0) {}
    }
}
