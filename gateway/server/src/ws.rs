//! The WebSocket transport (`docs/protocol.md`, "Transports"): the same protocol as TCP, one frame
//! per binary WebSocket message, without the length prefix.
//!
//! A connection to `ws_listen` first goes through the HTTP upgrade ([`upgrade`]): a browser's
//! `Origin` must be in `allowed_origins` (else HTTP 403, naming it), and the whole upgrade falls
//! under `handshake_timeout`, as does the HELLO after it. Then it is an ordinary session
//! ([`crate::session::serve`]) over a [`WsInbound`] and a [`WsOutbound`], the two halves of one
//! tokio-tungstenite stream: every limit, permission and lag policy is the session's, whatever
//! the transport.
//!
//! What WebSocket adds:
//!
//! - **Message size.** A message is one frame, so its size is bounded by the session's current
//!   maximum frame size: 65,536 bytes until WELCOME, `max_frame_size` after. tungstenite enforces
//!   the larger one as it reads; before WELCOME a [`Guard`] on the socket refuses WebSocket
//!   frames announced larger than the smaller one, and stops reading past it, so that an
//!   unauthenticated client cannot make the gateway buffer (or reserve room for) more.
//! - **Pings.** After `ws_ping_interval` without hearing from the client the writer sends a
//!   WebSocket ping; a client silent for two intervals is closed (GOAWAY `idle_timeout`).
//!   tungstenite answers the client's pings.
//! - **Closing.** The GOAWAY goes first, as a binary message, then a close frame whose code
//!   matches its reason ([`close_code`]) and whose reason is the GOAWAY's message, cut to the 123
//!   bytes a close frame holds. The gateway then waits (within `CLOSE_GRACE`) for the client's
//!   close frame before dropping the connection. A client that closes first gets its own close
//!   frame echoed back, as RFC 6455 suggests (tungstenite does this).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, Stream, StreamExt};
use gateway_protocol::{Frame, Goaway, GoawayReason, MIN_MAX_FRAME_SIZE, decode_message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tracing::debug;

use crate::metrics::Transport;
use crate::send_queue::{Outbound, SendQueue};
use crate::server::Shared;
use crate::session::{self, CLOSE_GRACE, Inbound, ReadError};

/// tungstenite's read buffer, allocated for every connection (its default, 128 KiB, is a lot per
/// idle browser tab); larger messages still arrive, in more reads.
const READ_BUFFER: usize = 16 * 1024;

/// The most a close frame's reason holds: 125 bytes of payload less the 2-byte code.
const MAX_CLOSE_REASON: usize = 123;

/// Bytes a client may send before WELCOME beyond its HELLO's 65,536: the largest WebSocket frame
/// header (14 bytes), and room for a few control frames (pings, a close).
const PRE_WELCOME_SLACK: usize = 1024;

type Ws = WebSocketStream<Metered>;

/// Serves one connection accepted on `ws_listen`: the HTTP upgrade, then a session. `permit` is
/// its place under `max_connections`.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let guard = Arc::new(Guard::new());
    let max = shared.config.max_frame_size as usize;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let upgraded = tokio::select! {
        biased;
        // Not a session yet: nothing to drain, and no WebSocket to say GOAWAY on.
        _ = shared.draining.cancelled() => return,
        upgraded = tokio::time::timeout_at(deadline, upgrade(stream, peer, &shared, &guard, config)) => upgraded,
    };
    let ws = match upgraded {
        Ok(Some(ws)) => ws,
        Ok(None) => return,
        Err(_) => {
            shared.metrics.upgrade_failed();
            debug!(%peer, "no WebSocket upgrade within the handshake timeout");
            return;
        }
    };
    guard.arm();
    let (sink, stream) = ws.split();
    let link = Arc::new(Link::default());
    let interval = shared.config.ws_ping_interval;
    let inbound = WsInbound {
        stream,
        max_frame_size: MIN_MAX_FRAME_SIZE,
        guard,
        link: link.clone(),
        pinger: (!interval.is_zero()).then(|| Pinger::new(interval)),
        broken: false,
    };
    let outbound = WsOutbound { sink, link };
    session::serve(inbound, outbound, peer, shared, permit, deadline).await;
}

/// Turns away a connection to `ws_listen` over a connection limit: upgrades it (the origin check
/// included), sends GOAWAY `too_many_connections`, then a close frame `1013` (try again later),
/// and waits briefly for the client's close frame.
pub(crate) async fn reject(stream: TcpStream, peer: SocketAddr, shared: &Shared, why: &str) {
    // tungstenite's own limits are the pre-WELCOME ones here, since they never grow.
    let guard = Arc::new(Guard::new());
    let limit = MIN_MAX_FRAME_SIZE as usize;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let upgrade = upgrade(stream, peer, shared, &guard, config);
    let Ok(Some(mut ws)) = tokio::time::timeout(shared.config.handshake_timeout, upgrade).await
    else {
        return;
    };
    let goaway = Goaway::new(GoawayReason::TOO_MANY_CONNECTIONS, why);
    let mut message = BytesMut::new();
    if Frame::Goaway(goaway).encode_message(&mut message, MIN_MAX_FRAME_SIZE).is_err() {
        return;
    }
    let close = async {
        ws.send(Message::Binary(message.freeze())).await?;
        let frame = close_frame(GoawayReason::TOO_MANY_CONNECTIONS, why);
        ws.send(Message::Close(Some(frame))).await?;
        while let Some(read) = ws.next().await {
            read?;
        }
        Ok::<(), WsError>(())
    };
    if let Ok(Err(e)) = tokio::time::timeout(CLOSE_GRACE, close).await {
        debug!(%peer, cause = %e, "turning a WebSocket away failed");
    }
}

/// The HTTP upgrade, with the origin check. `None` when it failed (logged and counted).
async fn upgrade(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    guard: &Arc<Guard>,
    config: WebSocketConfig,
) -> Option<Ws> {
    // As on TCP: the send queue coalesces, not Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let stream = Metered { inner: stream, guard: guard.clone(), scan: None };
    // The error type is tungstenite's callback contract, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let check_origin = |request: &Request, response: Response| {
        let Some(origin) = request.headers().get(header::ORIGIN) else {
            // Not a browser: browsers always send it on a WebSocket upgrade.
            return Ok(response);
        };
        match origin.to_str() {
            Ok(origin) if shared.config.origin_allowed(origin) => Ok(response),
            Ok(origin) => Err(forbidden(&format!("origin `{origin}` is not allowed here\n"))),
            Err(_) => Err(forbidden("the Origin header is not text\n")),
        }
    };
    match tokio_tungstenite::accept_hdr_async_with_config(stream, check_origin, Some(config)).await
    {
        Ok(ws) => Some(ws),
        Err(WsError::Http(response)) if response.status() == StatusCode::FORBIDDEN => {
            shared.metrics.origin_refused();
            let body = response.body().as_deref().unwrap_or_default();
            let why = String::from_utf8_lossy(body);
            debug!(%peer, why = why.trim_end(), "WebSocket upgrade refused");
            None
        }
        Err(e) => {
            shared.metrics.upgrade_failed();
            debug!(%peer, cause = %e, "WebSocket upgrade failed");
            None
        }
    }
}

/// HTTP 403 with a short text body.
fn forbidden(body: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(body.to_owned()));
    *response.status_mut() = StatusCode::FORBIDDEN;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(body.len()));
    headers.insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    response
}

/// The close code that goes with a GOAWAY reason (the table in `docs/protocol.md`,
/// "Transports").
pub(crate) fn close_code(reason: GoawayReason) -> CloseCode {
    match reason {
        GoawayReason::SHUTTING_DOWN => CloseCode::Away,
        GoawayReason::IDLE_TIMEOUT => CloseCode::Normal,
        GoawayReason::PROTOCOL_ERROR | GoawayReason::UNSUPPORTED_VERSION => CloseCode::Protocol,
        GoawayReason::FRAME_TOO_LARGE => CloseCode::Size,
        GoawayReason::TOO_MANY_CONNECTIONS | GoawayReason::SLOW_CONSUMER => CloseCode::Again,
        // unauthenticated, token_expired, policy, handshake_timeout, and any later reason.
        _ => CloseCode::Policy,
    }
}

/// A close frame for a GOAWAY: its code ([`close_code`]) and its message as the reason.
fn close_frame(reason: GoawayReason, message: &str) -> CloseFrame {
    CloseFrame { code: close_code(reason), reason: close_reason(message).into() }
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

/// What the two halves of one WebSocket session tell each other.
#[derive(Debug, Default)]
struct Link {
    /// Set by the reader when the client has been silent for a ping interval.
    ping_due: AtomicBool,
    /// Wakes the writer for a ping.
    wake: Notify,
    /// A close code the reader chose for what the client did, overriding the one of the GOAWAY's
    /// reason (a text message: `1003`, not `1002`); 0 for none.
    close_code: AtomicU16,
}

/// The limits a WebSocket session's socket enforces before WELCOME, below tungstenite, which
/// cannot change its own limits once the connection is open: every WebSocket frame's announced
/// length at most 65,536 bytes (tungstenite would reserve room for the whole announced frame at
/// once), and 65,536 bytes plus [`PRE_WELCOME_SLACK`] read in all. Shared by the socket wrapper
/// ([`Metered`]) and the session's reader, which lifts the guard at WELCOME.
#[derive(Debug)]
struct Guard {
    /// [`Guard::UPGRADING`], [`Guard::ARMED`] or [`Guard::LIFTED`].
    state: AtomicU8,
    /// What tripped it: 0 for nothing, the announced length of a frame over the limit, or
    /// `u64::MAX` for too many bytes in all.
    tripped: AtomicU64,
}

impl Guard {
    /// During the HTTP upgrade: the bytes are HTTP, not WebSocket frames.
    const UPGRADING: u8 = 0;
    const ARMED: u8 = 1;
    const LIFTED: u8 = 2;

    fn new() -> Guard {
        Guard { state: AtomicU8::new(Guard::UPGRADING), tripped: AtomicU64::new(0) }
    }

    fn arm(&self) {
        self.state.store(Guard::ARMED, Ordering::Release);
    }

    fn lift(&self) {
        self.state.store(Guard::LIFTED, Ordering::Release);
    }

    fn armed(&self) -> bool {
        self.state.load(Ordering::Acquire) == Guard::ARMED
    }

    /// Why reading failed, if the guard made it fail.
    fn tripped(&self) -> Option<String> {
        match self.tripped.load(Ordering::Relaxed) {
            0 => None,
            u64::MAX => Some(format!(
                "more than {MIN_MAX_FRAME_SIZE} bytes before WELCOME: HELLO may be at most \
                 {MIN_MAX_FRAME_SIZE} bytes"
            )),
            len => Some(format!(
                "a message of {len} bytes before WELCOME: HELLO may be at most \
                 {MIN_MAX_FRAME_SIZE} bytes"
            )),
        }
    }
}

/// The guard's view of the bytes read while it is armed: how many more may come, and where the
/// next WebSocket frame header starts (RFC 6455, section 5.2).
#[derive(Debug)]
struct FrameScan {
    left: usize,
    /// The header being read: at most 2 bytes, 8 of extended length, 4 of mask.
    header: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to pass over.
    skip: u64,
}

impl FrameScan {
    fn new() -> FrameScan {
        FrameScan {
            left: MIN_MAX_FRAME_SIZE as usize + PRE_WELCOME_SLACK,
            header: [0; 14],
            have: 0,
            skip: 0,
        }
    }

    /// Checks bytes just read; the `Guard::tripped` value when they break a limit.
    fn check(&mut self, mut data: &[u8]) -> Result<(), u64> {
        if data.len() > self.left {
            return Err(u64::MAX);
        }
        self.left -= data.len();
        while !data.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip).unwrap_or(usize::MAX).min(data.len());
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            self.header[self.have] = data[0];
            self.have += 1;
            data = &data[1..];
            if let Some(len) = self.payload_len() {
                if len > u64::from(MIN_MAX_FRAME_SIZE) {
                    return Err(len);
                }
                (self.skip, self.have) = (len, 0);
            }
        }
        Ok(())
    }

    /// The current frame's payload length, once its whole header has been read.
    fn payload_len(&self) -> Option<u64> {
        if self.have < 2 {
            return None;
        }
        let h = &self.header;
        let (short, masked) = (h[1] & 0x7f, h[1] & 0x80 != 0);
        let extended = match short {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        if self.have < 2 + extended + if masked { 4 } else { 0 } {
            return None;
        }
        Some(match extended {
            0 => u64::from(short),
            2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            _ => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
        })
    }
}

/// The TCP stream under tungstenite, failing reads that break the pre-WELCOME [`Guard`].
#[derive(Debug)]
struct Metered {
    inner: TcpStream,
    guard: Arc<Guard>,
    scan: Option<FrameScan>,
}

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if !self.guard.armed() {
            self.scan = None;
            return Poll::Ready(Ok(()));
        }
        let scan = self.scan.get_or_insert_with(FrameScan::new);
        match scan.check(&buf.filled()[before..]) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(tripped) => {
                self.guard.tripped.store(tripped, Ordering::Relaxed);
                let e = io::Error::new(io::ErrorKind::InvalidData, "too much before WELCOME");
                Poll::Ready(Err(e))
            }
        }
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// When to ping a silent client, and when to give up on it.
#[derive(Debug)]
struct Pinger {
    interval: Duration,
    /// When the client was last heard from (any message, pongs included).
    heard: Instant,
    /// Whether this silence has been pinged.
    pinged: bool,
    /// Fires at the next moment something may be due; re-armed only when it fires, so that
    /// hearing from the client costs a clock read, not a timer update.
    timer: Pin<Box<Sleep>>,
}

impl Pinger {
    fn new(interval: Duration) -> Pinger {
        let heard = Instant::now();
        Pinger {
            interval,
            heard,
            pinged: false,
            timer: Box::pin(tokio::time::sleep_until(heard + interval)),
        }
    }

    fn heard(&mut self) {
        self.heard = Instant::now();
        self.pinged = false;
    }

    /// Asks the writer for a ping after one silent interval; ready with the GOAWAY to close
    /// with after two.
    fn poll_silence(&mut self, cx: &mut Context<'_>, link: &Link) -> Poll<Goaway> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let silent = self.heard.elapsed();
            if silent >= self.interval * 2 {
                let message = format!(
                    "nothing heard from the client, not even a pong, for {} ms",
                    silent.as_millis()
                );
                return Poll::Ready(Goaway::new(GoawayReason::IDLE_TIMEOUT, message));
            }
            if silent >= self.interval && !self.pinged {
                self.pinged = true;
                link.ping_due.store(true, Ordering::Release);
                link.wake.notify_one();
            }
            let next = self.heard + if self.pinged { self.interval * 2 } else { self.interval };
            self.timer.as_mut().reset(next);
        }
        Poll::Pending
    }
}

/// The frames of a WebSocket session: one per binary message.
#[derive(Debug)]
pub(crate) struct WsInbound {
    stream: SplitStream<Ws>,
    /// The session's current limit: a larger message is `frame_too_large`.
    max_frame_size: u32,
    guard: Arc<Guard>,
    link: Arc<Link>,
    pinger: Option<Pinger>,
    /// tungstenite failed (the stream is over) rather than the closing handshake finishing.
    broken: bool,
}

impl WsInbound {
    /// What a tungstenite error means for the session.
    fn read_error(&mut self, e: WsError) -> ReadError {
        self.broken = true;
        let close = |reason, message: String| ReadError::Close(Goaway::new(reason, message));
        match e {
            WsError::Capacity(e) => close(
                GoawayReason::FRAME_TOO_LARGE,
                format!("{e}: the largest message accepted is {} bytes", self.max_frame_size),
            ),
            WsError::Io(e) => match self.guard.tripped() {
                Some(message) => close(GoawayReason::FRAME_TOO_LARGE, message),
                None => {
                    debug!(cause = %e, "reading from the WebSocket failed");
                    ReadError::Gone
                }
            },
            WsError::Utf8(_) => {
                self.link.close_code.store(CloseCode::Invalid.into(), Ordering::Relaxed);
                close(
                    GoawayReason::PROTOCOL_ERROR,
                    "a text message, and not even UTF-8: frames go in binary messages".to_owned(),
                )
            }
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => ReadError::Gone,
            WsError::Protocol(e) => {
                close(GoawayReason::PROTOCOL_ERROR, format!("WebSocket protocol error: {e}"))
            }
            _ => ReadError::Gone,
        }
    }
}

impl Stream for WsInbound {
    type Item = Result<Frame, ReadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let message = match this.stream.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(message))) => message,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(this.read_error(e)))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => break,
            };
            if let Some(pinger) = &mut this.pinger {
                pinger.heard();
            }
            match message {
                Message::Binary(bytes) => {
                    let max = this.max_frame_size;
                    if bytes.len() > max as usize {
                        let message = format!(
                            "message of {} bytes is larger than the maximum frame size of {max}",
                            bytes.len()
                        );
                        let goaway = Goaway::new(GoawayReason::FRAME_TOO_LARGE, message);
                        return Poll::Ready(Some(Err(ReadError::Close(goaway))));
                    }
                    match decode_message(bytes) {
                        Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                        // An unknown frame type flagged ignorable.
                        Ok(None) => {}
                        Err(e) => {
                            let goaway = Goaway::new(e.goaway_reason(), e.to_string());
                            return Poll::Ready(Some(Err(ReadError::Close(goaway))));
                        }
                    }
                }
                Message::Text(_) => {
                    this.link.close_code.store(CloseCode::Unsupported.into(), Ordering::Relaxed);
                    let goaway = Goaway::new(
                        GoawayReason::PROTOCOL_ERROR,
                        "a text message: frames go in binary messages",
                    );
                    return Poll::Ready(Some(Err(ReadError::Close(goaway))));
                }
                // The client closes: tungstenite answers with a close frame, which the session
                // sends while it lingers.
                Message::Close(_) => return Poll::Ready(None),
                // tungstenite answers pings itself; a pong only shows the client is alive.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
        if let Some(pinger) = &mut this.pinger {
            if let Poll::Ready(goaway) = pinger.poll_silence(cx, &this.link) {
                return Poll::Ready(Some(Err(ReadError::Close(goaway))));
            }
        }
        Poll::Pending
    }
}

impl Inbound for WsInbound {
    type Outbound = WsOutbound;
    const TRANSPORT: Transport = Transport::WebSocket;

    fn set_max_frame_size(&mut self, max: u32) {
        self.max_frame_size = max;
        self.guard.lift();
    }

    /// Reads messages until the client's close frame ends the closing handshake. When tungstenite
    /// failed instead (an oversized message, a broken frame), or the session ended before
    /// WELCOME (whose limits no longer matter, but must not be lifted for tungstenite), the rest
    /// of the client's bytes are read raw until it stops sending, so that closing the socket does
    /// not reset it before the client has read the GOAWAY.
    async fn linger(mut self, out: Option<WsOutbound>, _client_left: bool) {
        if !self.broken && !self.guard.armed() {
            loop {
                match self.stream.next().await {
                    Some(Ok(_)) => {}
                    Some(Err(_)) => break,
                    // The closing handshake is over.
                    None => return,
                }
            }
        }
        let Some(out) = out else { return };
        let Ok(ws) = self.stream.reunite(out.sink) else { return };
        let mut tcp = ws.into_inner();
        tcp.guard.lift();
        let mut sink = vec![0u8; 4096];
        // Until EOF, or the client pauses: it has read the close frame and is waiting for us.
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut sink)).await
        {
            if n == 0 {
                break;
            }
        }
    }
}

/// The writing half of a WebSocket session: each frame of a batch as one binary message, all of
/// them flushed together; pings when the reader asks.
#[derive(Debug)]
pub(crate) struct WsOutbound {
    sink: SplitSink<Ws, Message>,
    link: Arc<Link>,
}

fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        e => io::Error::other(e),
    }
}

impl Outbound for WsOutbound {
    async fn next_batch(&mut self, queue: &SendQueue) -> io::Result<Option<(BytesMut, usize)>> {
        loop {
            if self.link.ping_due.swap(false, Ordering::AcqRel) {
                self.sink.send(Message::Ping(Bytes::new())).await.map_err(io_error)?;
            }
            tokio::select! {
                biased;
                taken = queue.take() => return Ok(taken),
                () = self.link.wake.notified() => {}
            }
        }
    }

    async fn write(&mut self, batch: &mut BytesMut) -> io::Result<()> {
        let mut frames = batch.split().freeze();
        while frames.len() >= gateway_protocol::LENGTH_PREFIX_SIZE {
            let len = frames.get_u32_le() as usize;
            if len > frames.len() {
                return Err(io::Error::other("a queued batch ends inside a frame"));
            }
            // A slice of the batch: no copy until tungstenite frames it into its write buffer.
            let frame = frames.split_to(len);
            self.sink.feed(Message::Binary(frame)).await.map_err(io_error)?;
        }
        self.sink.flush().await.map_err(io_error)
    }

    /// The close frame: for the GOAWAY's reason when the gateway closes, `1000` when the client
    /// left with a GOAWAY of its own; when the client closed first, only tungstenite's answer
    /// to its close frame goes out.
    async fn finish(&mut self, farewell: Option<(GoawayReason, String)>) -> io::Result<()> {
        let frame = match &farewell {
            Some((reason, message)) => {
                let mut frame = close_frame(*reason, message);
                let code = self.link.close_code.load(Ordering::Relaxed);
                if code != 0 {
                    frame.code = CloseCode::from(code);
                }
                frame
            }
            None => CloseFrame { code: CloseCode::Normal, reason: "".into() },
        };
        match self.sink.send(Message::Close(Some(frame))).await {
            // The client's close frame came first: flushing sends the answer to it.
            Err(WsError::Protocol(ProtocolError::SendAfterClosing)) => {
                self.sink.flush().await.map_err(io_error)
            }
            sent => sent.map_err(io_error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header announcing `len` bytes, in the shortest form.
    fn header(len: u64) -> Vec<u8> {
        let mut h = vec![0x82];
        match len {
            0..=125 => h.push(0x80 | len as u8),
            126..=0xffff => {
                h.push(0x80 | 126);
                h.extend((len as u16).to_be_bytes());
            }
            _ => {
                h.push(0x80 | 127);
                h.extend(len.to_be_bytes());
            }
        }
        h.extend([1, 2, 3, 4]); // the mask
        h
    }

    #[test]
    fn the_scan_follows_frames_across_reads_and_refuses_one_announced_too_large() {
        let limit = u64::from(MIN_MAX_FRAME_SIZE);
        let mut stream = header(5);
        stream.extend([0; 5]);
        stream.extend(header(limit));
        // Byte by byte: headers and payloads split anywhere.
        let mut scan = FrameScan::new();
        for byte in &stream {
            assert_eq!(scan.check(std::slice::from_ref(byte)), Ok(()));
        }
        assert_eq!(scan.skip, limit, "inside the second frame's payload");
        assert_eq!(scan.check(&vec![0; limit as usize]), Ok(()));
        // The third frame is one byte over: refused from its header.
        assert_eq!(scan.check(&header(limit + 1)), Err(limit + 1));

        let mut scan = FrameScan::new();
        assert_eq!(scan.check(&header(u64::MAX / 2)), Err(u64::MAX / 2));
    }

    #[test]
    fn the_scan_counts_every_byte_read() {
        let mut scan = FrameScan::new();
        let mut small = header(100);
        small.extend([0; 100]);
        let mut read = 0;
        let refused = loop {
            match scan.check(&small) {
                Ok(()) => read += small.len(),
                Err(tripped) => break tripped,
            }
        };
        assert_eq!(refused, u64::MAX);
        let allowed = MIN_MAX_FRAME_SIZE as usize + PRE_WELCOME_SLACK;
        assert!(read <= allowed && read + small.len() > allowed, "{read}");
    }

    #[test]
    fn close_reasons_fit_a_close_frame_and_stay_utf8() {
        assert_eq!(close_reason("short"), "short");
        let ascii = "x".repeat(200);
        assert_eq!(close_reason(&ascii).len(), 123);
        // 'é' is 2 bytes: 61 of them are 122 bytes, and the 62nd would end at 124.
        let accents = "é".repeat(100);
        assert_eq!(close_reason(&accents), "é".repeat(61));
    }

    #[test]
    fn each_goaway_reason_has_its_close_code() {
        let code = |reason| u16::from(close_code(reason));
        assert_eq!(code(GoawayReason::SHUTTING_DOWN), 1001);
        assert_eq!(code(GoawayReason::IDLE_TIMEOUT), 1000);
        assert_eq!(code(GoawayReason::PROTOCOL_ERROR), 1002);
        assert_eq!(code(GoawayReason::UNSUPPORTED_VERSION), 1002);
        assert_eq!(code(GoawayReason::FRAME_TOO_LARGE), 1009);
        for reason in [
            GoawayReason::UNAUTHENTICATED,
            GoawayReason::TOKEN_EXPIRED,
            GoawayReason::POLICY,
            GoawayReason::HANDSHAKE_TIMEOUT,
        ] {
            assert_eq!(code(reason), 1008, "{reason}");
        }
        assert_eq!(code(GoawayReason::TOO_MANY_CONNECTIONS), 1013);
        assert_eq!(code(GoawayReason::SLOW_CONSUMER), 1013);
    }
}
