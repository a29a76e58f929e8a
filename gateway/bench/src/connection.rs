//! One load-generating connection: open it (with the handshake when the target is a gateway),
//! then keep `depth` requests in flight until the measured period ends.
//!
//! The socket is split into halves. The writer sends a REQUEST for every free request id, all the
//! ids freed since its last write in one write (the gateway coalesces its writes the same way).
//! The reader decodes every frame a read brings, records each reply's latency and hands its id
//! back to the writer. Ids run from 1 to `depth` and are reused, so the table of send times is a
//! fixed array and the channel between the halves never holds more than `depth` ids.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gateway_protocol::{
    DEFAULT_MAX_FRAME_SIZE, Decoded, Frame, Hello, Request, VERSION, Welcome, decode,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};

use crate::config::{LoadConfig, Target};
use crate::error::LoadError;
use crate::summary::Tally;

/// How long connecting and the handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The read buffer's starting capacity; it grows to the largest burst of replies.
const READ_BUFFER: usize = 64 * 1024;

/// What every connection of a run sends, built once.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// The method's id (`examples.echo.Echo.echo`).
    pub(crate) method_id: u32,
    /// The request's FlatBuffer, shared by every request.
    pub(crate) payload: Bytes,
    /// The requests' `timeout_ms`.
    pub(crate) timeout_ms: u32,
}

/// When the measured period runs, on the clock every connection shares.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// The instant send times are counted from (before any connection opened).
    pub(crate) epoch: Instant,
    /// Replies that arrive from here on are recorded.
    pub(crate) start: Instant,
    /// Nothing is sent or recorded from here on.
    pub(crate) end: Instant,
}

/// A connection to the server, inside TLS or not.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A connected, handshaken connection, ready to be driven.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: Stream,
    /// Bytes read after the WELCOME, which belong to the first replies.
    read_buf: BytesMut,
    /// The largest frame the server accepts.
    max_frame_size: u32,
}

impl Connection {
    /// Connects to `config.addr` and, for a gateway, says HELLO and waits for WELCOME.
    ///
    /// # Errors
    ///
    /// [`LoadError::Connect`] when connecting fails or times out, [`LoadError::Handshake`] when
    /// the gateway refuses, or its terms do not allow `config.depth` requests in flight.
    pub(crate) async fn open(config: &LoadConfig) -> Result<Connection, LoadError> {
        let connect = |source| LoadError::Connect { addr: config.addr, source };
        let stream = timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(config.addr))
            .await
            .map_err(|_| connect(std::io::ErrorKind::TimedOut.into()))?
            .map_err(connect)?;
        stream.set_nodelay(true).map_err(connect)?;
        let stream = match &config.tls {
            None => Stream::Plain(stream),
            Some(tls) => {
                let handshake = tls.connector.connect(tls.name.clone(), stream);
                let tls = timeout(HANDSHAKE_TIMEOUT, handshake)
                    .await
                    .map_err(|_| connect(std::io::ErrorKind::TimedOut.into()))?
                    .map_err(|e| LoadError::Handshake(format!("TLS: {e}")))?;
                Stream::Tls(Box::new(tls))
            }
        };
        let mut connection = Connection {
            stream,
            read_buf: BytesMut::with_capacity(READ_BUFFER),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        };
        if config.target == Target::Gateway {
            timeout(HANDSHAKE_TIMEOUT, connection.handshake(config.depth))
                .await
                .map_err(|_| LoadError::Handshake("no WELCOME within 5 s".into()))??;
        }
        Ok(connection)
    }

    async fn handshake(&mut self, depth: usize) -> Result<(), LoadError> {
        let welcome = match &mut self.stream {
            Stream::Plain(tcp) => hello(tcp, &mut self.read_buf).await?,
            Stream::Tls(tls) => hello(tls.as_mut(), &mut self.read_buf).await?,
        };
        if usize::try_from(welcome.max_in_flight).is_ok_and(|max| max < depth) {
            return Err(LoadError::Handshake(format!(
                "the gateway allows {} requests in flight per connection, fewer than depth `{depth}`",
                welcome.max_in_flight
            )));
        }
        self.max_frame_size = welcome.max_frame_size;
        Ok(())
    }

    /// Keeps `depth` calls in flight until `window.end`, recording the replies that arrive
    /// between `window.start` and `window.end`. Calls still in flight at the end are dropped with
    /// the connection.
    ///
    /// # Errors
    ///
    /// An I/O or protocol failure, the server closing the connection, or a reply that answers no
    /// call in flight; what was recorded before is lost with the run.
    pub(crate) async fn drive(
        self,
        call: Call,
        depth: usize,
        target: Target,
        window: Window,
    ) -> Result<Tally, LoadError> {
        let Connection { stream, read_buf, max_frame_size } = self;
        let run = Run { read_buf, max_frame_size, call, depth, target, window };
        match stream {
            Stream::Plain(tcp) => {
                let (read_half, write_half) = tcp.into_split();
                run.drive(read_half, write_half).await
            }
            Stream::Tls(tls) => {
                let (read_half, write_half) = tokio::io::split(*tls);
                run.drive(read_half, write_half).await
            }
        }
    }
}

/// What driving a connection takes besides its halves.
struct Run {
    read_buf: BytesMut,
    max_frame_size: u32,
    call: Call,
    depth: usize,
    target: Target,
    window: Window,
}

impl Run {
    /// [`Connection::drive`] on the connection's halves.
    async fn drive<R, W>(self, read_half: R, write_half: W) -> Result<Tally, LoadError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let Run { read_buf, max_frame_size, call, depth, target, window } = self;
        // Slot `id` holds the send time of request `id` in nanoseconds after the epoch, or 0
        // when it is not in flight.
        let sent_at: Arc<[AtomicU64]> = (0..=depth).map(|_| AtomicU64::new(0)).collect();
        let (free_tx, free_rx) = mpsc::channel(depth);
        let writer = Writer {
            half: write_half,
            call: call.clone(),
            max_frame_size,
            sent_at: sent_at.clone(),
            window,
        };
        let writer = tokio::spawn(writer.run(depth, free_rx));
        let reader = Reader {
            half: read_half,
            buf: read_buf,
            expected: call.payload.clone(),
            target,
            sent_at,
            window,
            tally: Tally::new(),
        };
        let read = reader.run(free_tx).await;
        // The reader dropped its sender, so the writer stops at its next wait.
        let write = writer.await.map_err(|e| LoadError::Task(e.to_string()))?;
        let tally = read?;
        write?;
        Ok(tally)
    }
}

/// The sending half of a driven connection.
struct Writer<W> {
    half: W,
    call: Call,
    max_frame_size: u32,
    sent_at: Arc<[AtomicU64]>,
    window: Window,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    async fn run(mut self, depth: usize, mut free: mpsc::Receiver<u32>) -> Result<(), LoadError> {
        // `depth` fits a `u32`: the configuration was validated.
        let mut ids: Vec<u32> = (1..=depth).filter_map(|id| u32::try_from(id).ok()).collect();
        let mut out = BytesMut::new();
        loop {
            if ids.is_empty() {
                match free.recv().await {
                    Some(id) => ids.push(id),
                    None => return Ok(()),
                }
            }
            while let Ok(id) = free.try_recv() {
                ids.push(id);
            }
            let now = Instant::now();
            if now >= self.window.end {
                return Ok(());
            }
            let sent = nanos_since(self.window.epoch, now);
            for id in ids.drain(..) {
                // Stored before the write that sends the request; the reader loads it after the
                // read that brings the reply, which the write precedes.
                self.sent_at[id as usize].store(sent, Ordering::Release);
                let request = Frame::Request(Request {
                    request_id: id,
                    method_id: self.call.method_id,
                    timeout_ms: self.call.timeout_ms,
                    fire_and_forget: false,
                    payload: self.call.payload.clone(),
                });
                request.encode(&mut out, self.max_frame_size).map_err(LoadError::encode)?;
            }
            self.half.write_all(&out).await?;
            // TLS holds what it could not write yet until flushed (a no-op on TCP).
            self.half.flush().await?;
            out.clear();
        }
    }
}

/// The receiving half of a driven connection.
struct Reader<R> {
    half: R,
    buf: BytesMut,
    /// The request's payload, which every reply's payload must equal byte for byte.
    expected: Bytes,
    target: Target,
    sent_at: Arc<[AtomicU64]>,
    window: Window,
    tally: Tally,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    async fn run(mut self, free: mpsc::Sender<u32>) -> Result<Tally, LoadError> {
        // Every reply a read brings arrived when the read returned.
        let mut now = Instant::now();
        loop {
            loop {
                match decode(&mut self.buf, DEFAULT_MAX_FRAME_SIZE)? {
                    Decoded::Frame(frame) => {
                        let Some(id) = self.reply(frame, now)? else { continue };
                        if free.try_send(id).is_err() {
                            // The writer has stopped: the window is over or it failed.
                            return Ok(self.tally);
                        }
                    }
                    Decoded::Skipped { .. } => {}
                    Decoded::Incomplete { .. } => break,
                }
            }
            match timeout_at(self.window.end, self.half.read_buf(&mut self.buf)).await {
                Err(_) => return Ok(self.tally),
                // The writer shuts its half down when the window ends, and the echo then closes
                // its side, possibly before this read's timer fires.
                Ok(Ok(0)) if Instant::now() >= self.window.end => return Ok(self.tally),
                Ok(Ok(0)) => return Err(LoadError::Closed("while calls were in flight".into())),
                Ok(Ok(_)) => now = Instant::now(),
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Records the reply `frame`, received at `now`, and returns the request id it frees; `None`
    /// for a frame that is not a reply.
    fn reply(&mut self, frame: Frame, now: Instant) -> Result<Option<u32>, LoadError> {
        let (id, outcome) = match frame {
            Frame::Response(response) => (response.request_id, Ok(response.payload)),
            // The raw echo sends the request back as it came.
            Frame::Request(request) if self.target == Target::Raw => {
                (request.request_id, Ok(request.payload))
            }
            Frame::Error(error) => (error.request_id, Err(error.status.code().name())),
            // Keep-alive is not needed: the connection is never idle while driven.
            Frame::Ping { .. } | Frame::Pong { .. } => return Ok(None),
            Frame::Goaway(goaway) => {
                return Err(LoadError::Closed(format!(
                    "GOAWAY `{}`: {}",
                    goaway.reason, goaway.message
                )));
            }
            other => {
                return Err(LoadError::Protocol(format!(
                    "unexpected {} frame",
                    other.frame_type().name()
                )));
            }
        };
        let sent = self
            .sent_at
            .get(id as usize)
            .map(|slot| slot.swap(0, Ordering::Acquire))
            .filter(|&sent| sent != 0)
            .ok_or_else(|| {
                LoadError::Protocol(format!("reply to request `{id}`, not in flight"))
            })?;
        if (self.window.start..self.window.end).contains(&now) {
            match outcome {
                Ok(payload) if payload == self.expected => {
                    let latency = nanos_since(self.window.epoch, now).saturating_sub(sent);
                    self.tally.record_ok(Duration::from_nanos(latency));
                }
                Ok(_) => self.tally.record_error("bad_payload"),
                Err(code) => self.tally.record_error(code),
            }
        }
        Ok(Some(id))
    }
}

/// Nanoseconds from `epoch` to `now`, at least 1 so that 0 can mean "not in flight".
pub(crate) fn nanos_since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Says HELLO on `stream` and waits for the WELCOME; bytes read past it stay in `read_buf`.
///
/// # Errors
///
/// [`LoadError::Handshake`] for a GOAWAY or any other frame first, [`LoadError::Closed`] when the
/// server closes the connection, or an I/O or decoding failure.
pub(crate) async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    read_buf: &mut BytesMut,
) -> Result<Welcome, LoadError> {
    let hello = Frame::Hello(Hello {
        capabilities: 0,
        version: VERSION,
        max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        client_name: "loadgen".into(),
        token: Bytes::new(),
    });
    let mut out = BytesMut::new();
    hello.encode(&mut out, DEFAULT_MAX_FRAME_SIZE).map_err(LoadError::encode)?;
    stream.write_all(&out).await?;
    stream.flush().await?;
    loop {
        match decode(read_buf, DEFAULT_MAX_FRAME_SIZE)? {
            Decoded::Frame(Frame::Welcome(welcome)) => return Ok(welcome),
            Decoded::Frame(Frame::Goaway(goaway)) => {
                return Err(LoadError::Handshake(format!(
                    "GOAWAY `{}`: {}",
                    goaway.reason, goaway.message
                )));
            }
            Decoded::Frame(other) => {
                return Err(LoadError::Handshake(format!(
                    "expected WELCOME, got {}",
                    other.frame_type().name()
                )));
            }
            Decoded::Skipped { .. } => {}
            Decoded::Incomplete { .. } => {
                if stream.read_buf(read_buf).await? == 0 {
                    return Err(LoadError::Closed("during the handshake".into()));
                }
            }
        }
    }
}
