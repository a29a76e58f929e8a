//! What a session needs of its transport: bytes in, protocol frames out of them, the outbox's
//! bytes written, and a closing. TCP (`crate::tcp`) and WebSocket (`crate::ws`) implement it;
//! the session never knows which one it runs on.

use std::future::Future;
use std::io;
use std::task::{Context, Poll};

use bytes::BytesMut;
use gateway_protocol::{Frame, Goaway, GoawayReason};

use crate::metrics;
use crate::outbox::{Outbox, Wire};

/// Why a transport yields no frame.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The client closed its side (TCP end of stream, a WebSocket close frame): it left.
    Left,
    /// The client broke the protocol (or the transport's rules): the gateway closes the
    /// connection with this GOAWAY.
    Close(Goaway),
}

/// One client connection's transport, owned by its session.
pub(crate) trait Transport: Send + Sized + 'static {
    /// For the metrics.
    const KIND: metrics::Transport;
    /// How frames are laid out in the outbox.
    const WIRE: Wire;

    /// Reads what the client sent, appending to `buf` (which has room reserved). `Ready(Ok(0))`
    /// at the end of the stream.
    ///
    /// # Errors
    ///
    /// The read error: the connection is broken.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>>;

    /// Takes the next protocol frame out of `buf`, `Ok(None)` when it holds no whole one yet
    /// (with room reserved in `buf` for the rest of a long one). Messages of the transport's own
    /// (WebSocket pings, a close frame) are handled here, their answers queued in `out`. A frame
    /// larger than `max_frame_size` is refused as soon as its length is known.
    ///
    /// # Errors
    ///
    /// How the connection ends: [`ReadError`].
    fn next_frame(
        &mut self,
        buf: &mut BytesMut,
        max_frame_size: u32,
        out: &mut Outbox,
    ) -> Result<Option<Frame>, ReadError>;

    /// WELCOME is sent: the transport's own limits before it (WebSocket: HELLO's size) are
    /// lifted.
    fn welcomed(&mut self) {}

    /// Writes what `out` holds, until it is empty or the socket is full.
    ///
    /// # Errors
    ///
    /// The write error: the connection is broken.
    fn poll_write(&mut self, cx: &mut Context<'_>, out: &mut Outbox) -> Poll<io::Result<()>>;

    /// Ends the connection once the last frames are written: `farewell` is why the gateway
    /// closes it (its GOAWAY's reason and message), `None` when the client left or the
    /// connection broke. The transport says goodbye in its own way (WebSocket: a close frame),
    /// then reads and discards what the client still sends until it closes its side, so that
    /// closing ours does not reset the connection before the client has read the last frames.
    /// The caller bounds the wait.
    fn close(
        self,
        out: Outbox,
        farewell: Option<(GoawayReason, String)>,
        client_left: bool,
    ) -> impl Future<Output = ()> + Send;
}
