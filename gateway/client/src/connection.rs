//! The task that owns one connection to a gateway.
//!
//! Callers never touch the socket: they send [`Command`]s through a bounded channel and get the
//! outcome on a oneshot; cancellations come through a second channel (`crate::command`). The
//! task reads and writes in one `select!` loop, so replies are read while requests are written
//! and neither direction waits for the other. Each request takes an id in `inflight`, the table
//! its reply is matched against; calls that queue up while a write is in progress are encoded
//! into one buffer (`outbox`) and leave in one write.
//!
//! The task also serves the client's subscriptions on this connection (`subscriptions`): it
//! restores the live ones when it starts, and pushes events into their feeds without waiting.
//! When the credentials expire, a companion task refreshes them (`crate::refresh`).

mod inflight;
mod outbox;
mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gateway_core::Status;
use gateway_protocol::{CAPABILITY_HISTORY, Decoded, Frame, Goaway, GoawayReason, Welcome, decode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use self::inflight::{Entry, InFlight};
use self::outbox::Outbox;
use self::subscriptions::Subscriptions;
use crate::command::{Answer, Call, CallKind, Command, Control, Handle, Outcome, Outgoing};
use crate::config::ClientConfig;
use crate::credentials::Credentials;
use crate::handshake::{Established, Stream, describe_goaway};
use crate::refresh::{self, Grant};
use crate::registry::Registry;

/// Stop taking calls while this many bytes wait to be written: the socket is the bottleneck,
/// and callers wait in the bounded channel instead of in memory here.
const WRITE_HIGH_WATER: usize = 1024 * 1024;

/// Read in chunks of at least this much.
const READ_CHUNK: usize = 16 * 1024;

/// Why a connection stopped taking calls, for the task that reconnects.
#[derive(Debug)]
pub(crate) enum Closing {
    /// The server sent GOAWAY; the connection still waits for the replies it promised.
    Goaway(Goaway),
    /// The connection is gone.
    Lost(String),
}

/// What a connection shares with the rest of the client.
pub(crate) struct Shared<'a> {
    pub(crate) config: &'a ClientConfig,
    pub(crate) registry: &'a Arc<Registry>,
    pub(crate) credentials: &'a Arc<Credentials>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) finishing: CancellationToken,
}

/// Starts the task for an established connection, which takes the client's subscriptions over,
/// and the task that refreshes its credentials when they expire and a provider can renew
/// them. The receiver hears once, when the connection stops taking calls (never if `shutdown`
/// ends it).
pub(crate) fn spawn(
    established: Established,
    endpoint: Arc<str>,
    shared: Shared<'_>,
) -> (Arc<Handle>, oneshot::Receiver<Closing>, tokio::task::JoinHandle<()>) {
    let Established { stream, welcome, read_buf } = established;
    let (calls_tx, calls) = mpsc::channel(shared.config.queue_capacity);
    let (control_tx, control) = mpsc::unbounded_channel();
    let (closing_tx, closing) = oneshot::channel();
    let (grant_tx, grant) = watch::channel(Grant::from_ms(welcome.auth_expires_in_ms));
    let resubscribe = shared.registry.attach(control_tx.clone());
    let handle = Arc::new(Handle {
        calls: calls_tx,
        control: control_tx,
        max_frame_size: welcome.max_frame_size,
        endpoint: endpoint.clone(),
    });
    let channels = Channels {
        calls,
        control,
        closing: closing_tx,
        grant: grant_tx,
        shutdown: shared.shutdown,
        finishing: shared.finishing,
    };
    let mut connection =
        Connection::new(endpoint, &welcome, shared.config, channels, read_buf, shared.registry);
    connection.subscriptions.resubscribe(resubscribe, &mut connection.out);
    if let Some(provider) = shared.credentials.provider() {
        let refresher = refresh::Refresher {
            handle: handle.clone(),
            provider: provider.clone(),
            grant,
            timeout: shared.config.default_timeout,
        };
        tokio::spawn(refresher.run());
    }
    connection.flushes = matches!(stream, Stream::Tls(_));
    let task = match stream {
        Stream::Plain(tcp) => {
            let (reader, writer) = tcp.into_split();
            tokio::spawn(connection.run(reader, writer))
        }
        Stream::Tls(tls) => {
            let (reader, writer) = tokio::io::split(*tls);
            tokio::spawn(connection.run(reader, writer))
        }
    };
    (handle, closing, task)
}

/// The channels a connection task listens and reports on.
struct Channels {
    calls: mpsc::Receiver<Command>,
    control: mpsc::UnboundedReceiver<Control>,
    closing: oneshot::Sender<Closing>,
    /// The credentials' current expiry, for the refreshing task; dropped with the connection,
    /// which ends that task.
    grant: watch::Sender<Option<Grant>>,
    shutdown: CancellationToken,
    finishing: CancellationToken,
}

/// Why the task's loop ended.
enum End {
    /// GOAWAY was received and every promised reply has arrived, or its callers' deadlines have
    /// all passed.
    Drained,
    /// The connection failed (end of stream, I/O error, no answer to pings).
    Lost(String),
    /// The server broke the protocol; the client says so in a GOAWAY with this reason.
    Protocol(GoawayReason, String),
    /// The client is closing.
    Shutdown,
}

/// The state of one connection, owned by its task.
struct Connection {
    endpoint: Arc<str>,
    calls: mpsc::Receiver<Command>,
    control: mpsc::UnboundedReceiver<Control>,
    /// Taken when the reconnecting task has been told.
    closing: Option<oneshot::Sender<Closing>>,
    grant: watch::Sender<Option<Grant>>,
    shutdown: CancellationToken,
    /// [`Client::finish`](crate::Client::finish) was asked for: GOAWAY `done`, then drain.
    finishing: CancellationToken,
    /// GOAWAY `done` is queued.
    done_sent: bool,
    table: InFlight,
    subscriptions: Subscriptions,
    max_in_flight: usize,
    /// The largest frame the client accepts.
    max_recv: u32,
    read_buf: BytesMut,
    out: Outbox,
    keepalive: Option<Keepalive>,
    /// Set when GOAWAY arrives: the connection waits for the promised replies until then.
    drain_until: Option<Instant>,
    flush_timeout: Duration,
    /// Bytes were written since the last flush.
    unflushed: bool,
    /// Writes need flushing (TLS; on TCP a flush does nothing).
    flushes: bool,
}

/// Liveness: a PING every interval, and a peer that sent nothing between two pings is gone.
struct Keepalive {
    interval: Interval,
    /// A frame arrived since the last PING was sent.
    heard: bool,
    /// A PING was sent at the previous tick.
    pinged: bool,
    next_data: u64,
}

impl Connection {
    fn new(
        endpoint: Arc<str>,
        welcome: &Welcome,
        config: &ClientConfig,
        channels: Channels,
        read_buf: BytesMut,
        registry: &Arc<Registry>,
    ) -> Connection {
        // The protocol asks for a PING after half the server's idle timeout of silence.
        let server_idle = (welcome.idle_timeout_ms > 0).then(|| {
            Duration::from_millis(u64::from(welcome.idle_timeout_ms) / 2)
                .max(Duration::from_millis(1))
        });
        let period = match (config.keepalive_interval, server_idle) {
            (Some(ours), Some(theirs)) => Some(ours.min(theirs)),
            (ours, theirs) => ours.or(theirs),
        };
        let keepalive = period.map(|period| {
            let mut interval = tokio::time::interval_at(Instant::now() + period, period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            Keepalive { interval, heard: false, pinged: false, next_data: 1 }
        });
        Connection {
            out: Outbox::new(endpoint.clone(), welcome.max_frame_size, READ_CHUNK),
            endpoint,
            calls: channels.calls,
            control: channels.control,
            closing: Some(channels.closing),
            grant: channels.grant,
            shutdown: channels.shutdown,
            finishing: channels.finishing,
            done_sent: false,
            table: InFlight::new(),
            subscriptions: Subscriptions::new(
                registry.clone(),
                welcome.capabilities & CAPABILITY_HISTORY != 0,
            ),
            max_in_flight: usize::try_from(welcome.max_in_flight).unwrap_or(usize::MAX),
            max_recv: config.max_frame_size,
            read_buf,
            keepalive,
            drain_until: None,
            flush_timeout: config.connect_timeout,
            unflushed: false,
            flushes: false,
        }
    }

    async fn run<R, W>(mut self, mut reader: R, mut writer: W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let end = self.serve(&mut reader, &mut writer).await;
        self.finish(end, &mut writer).await;
    }

    async fn serve<R, W>(&mut self, reader: &mut R, writer: &mut W) -> End
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            let written = self.out.buf.is_empty() && !self.unflushed;
            if self.drain_until.is_some() && self.table.is_empty() && written {
                return End::Drained;
            }
            if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 2 {
                self.read_buf.reserve(READ_CHUNK);
            }
            let taking_calls = self.drain_until.is_none() && self.out.buf.len() < WRITE_HIGH_WATER;
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return End::Shutdown,
                () = self.finishing.cancelled(), if !self.done_sent => self.on_finishing(),
                read = reader.read_buf(&mut self.read_buf) => match read {
                    Ok(0) => return End::Lost("the gateway closed the connection".into()),
                    Ok(_) => {
                        if let Err(end) = self.on_readable() {
                            return end;
                        }
                    }
                    Err(e) => return End::Lost(format!("reading failed: {e}")),
                },
                Some(control) = self.control.recv() => {
                    self.on_control(control);
                    while let Ok(control) = self.control.try_recv() {
                        self.on_control(control);
                    }
                }
                Some(command) = self.calls.recv(), if taking_calls => {
                    self.on_command(command);
                    // Everything already queued goes into this write.
                    while self.out.buf.len() < WRITE_HIGH_WATER {
                        let Ok(command) = self.calls.try_recv() else { break };
                        self.on_command(command);
                    }
                }
                written = write_or_flush(writer, &mut self.out.buf),
                    if !self.out.buf.is_empty() || self.unflushed =>
                {
                    match written {
                        Ok(Some(0)) => return End::Lost("the socket accepts no more bytes".into()),
                        Ok(Some(n)) => {
                            self.unflushed = self.flushes;
                            self.out.on_written(n);
                        }
                        Ok(None) => self.unflushed = false,
                        Err(e) => return End::Lost(format!("writing failed: {e}")),
                    }
                }
                () = tick(&mut self.keepalive) => {
                    if let Err(end) = self.on_tick() {
                        return end;
                    }
                }
                () = sleep_until(self.drain_until) => return End::Drained,
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Call(call) => self.on_call(call),
            Command::Subscribe { feed, reply } => {
                self.subscriptions.on_subscribe(feed, reply, &mut self.out);
            }
        }
    }

    fn on_control(&mut self, control: Control) {
        match control {
            Control::Cancel(request_id) => self.on_cancel(request_id),
            Control::Unsubscribe(key) => self.subscriptions.on_unsubscribe(key, &mut self.out),
        }
    }

    fn on_call(&mut self, call: Call) {
        let Call { what, payload, timeout_ms, deadline, kind, reply } = call;
        let unary = matches!(kind, CallKind::Unary(_));
        // AUTH is not a call the server counts, and must go out when calls fill the connection.
        let counted = !matches!(what, Outgoing::Auth);
        if unary && counted && self.table.len() >= self.max_in_flight {
            let status = Status::resource_exhausted(format!(
                "{} requests already in flight to {}, the server's limit",
                self.max_in_flight, self.endpoint
            ));
            let _ = reply.send(Outcome::Done(Err(status)));
            return;
        }
        let request_id = self.table.allocate();
        if let CallKind::Unary(slot) = &kind
            && !slot.sent(request_id)
        {
            // The caller gave up before its request left: send nothing.
            return;
        }
        let frame = what.frame(request_id, timeout_ms, !unary, payload);
        if let Err(e) = self.out.queue(&frame) {
            // The caller checked the size against the server's limit; this is the last guard.
            let status = Status::resource_exhausted(format!("cannot send {}: {e}", what.name()))
                .with_retryable(false);
            let _ = reply.send(Outcome::Done(Err(status)));
            return;
        }
        if unary {
            let entry = Entry { reply: Some(reply), idempotent: what.idempotent(), deadline };
            self.table.insert(request_id, entry);
        } else {
            self.out.notify_when_written(reply);
        }
    }

    fn on_cancel(&mut self, request_id: u32) {
        if self.table.cancel(request_id) {
            self.out.queue_control(Frame::Cancel { request_id });
        }
    }

    fn on_readable(&mut self) -> Result<(), End> {
        loop {
            let decoded = decode(&mut self.read_buf, self.max_recv)
                .map_err(|e| End::Protocol(e.goaway_reason(), e.to_string()))?;
            match decoded {
                Decoded::Frame(frame) => self.on_frame(frame)?,
                Decoded::Skipped { frame_type } => {
                    debug!(frame_type, endpoint = %self.endpoint, "skipped an ignorable frame");
                }
                Decoded::Incomplete { needed } => {
                    self.read_buf.reserve(needed);
                    return Ok(());
                }
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), End> {
        if let Some(keepalive) = &mut self.keepalive {
            keepalive.heard = true;
        }
        match frame {
            Frame::Response(response) => {
                self.answer(response.request_id, Ok(Answer::Payload(response.payload)));
            }
            Frame::Error(error) => self.answer(error.request_id, Err(error.status)),
            Frame::Ping { data } => self.out.queue_control(Frame::Pong { data }),
            Frame::Pong { .. } => {}
            Frame::Goaway(goaway) => self.on_goaway(goaway),
            Frame::Subscribed { subscription_id } => {
                self.subscriptions.on_subscribed(subscription_id, None, &mut self.out);
            }
            Frame::SubscribedAt(at) => {
                self.subscriptions.on_subscribed(at.subscription_id, Some(at), &mut self.out);
            }
            Frame::Event(event) => self.subscriptions.on_event(event, &mut self.out),
            Frame::EventAt(event) => self.subscriptions.on_event_at(event, &mut self.out),
            Frame::Missed { subscription_id, count } => {
                self.subscriptions.on_missed(subscription_id, count, &mut self.out);
            }
            Frame::SubscriptionEnded(ended) => {
                debug!(subscription_id = ended.subscription_id, status = %ended.status,
                    endpoint = %self.endpoint, "the gateway ended a subscription");
                self.subscriptions.on_subscription_ended(ended);
            }
            Frame::AuthOk { request_id, expires_in_ms } => {
                // Whoever asked, the connection's credentials now expire later.
                self.grant.send_replace(Grant::from_ms(expires_in_ms));
                self.answer(request_id, Ok(Answer::Authenticated { expires_in_ms }));
            }
            other => {
                let what = format!("the server sent {}", other.frame_type().name());
                return Err(End::Protocol(GoawayReason::PROTOCOL_ERROR, what));
            }
        }
        Ok(())
    }

    fn answer(&mut self, request_id: u32, result: Result<Answer, Status>) {
        match self.table.remove(request_id) {
            Some(entry) => entry.finish(result),
            // A server bug, but not one that harms the calls that are in flight.
            None => warn!(request_id, endpoint = %self.endpoint, "reply to no request in flight"),
        }
    }

    fn on_goaway(&mut self, goaway: Goaway) {
        warn!(endpoint = %self.endpoint, reason = %goaway.reason, reconnect = goaway.reconnect,
            last_request_id = goaway.last_request_id, message = %goaway.message, "gateway going away");
        let not_processed = Status::unavailable(format!(
            "gateway {} is going away ({}) and did not process the request",
            self.endpoint,
            describe_goaway(&goaway)
        ))
        .with_retryable(goaway.reconnect);
        for entry in self.table.remove_sent_after(goaway.last_request_id) {
            entry.finish(Err(not_processed.clone()));
        }
        self.stop_taking_calls();
        // The next connection restores the subscriptions; this one only drains its calls.
        self.subscriptions.detach();
        self.drain_until = Some(self.table.latest_deadline().unwrap_or_else(Instant::now));
        if let Some(closing) = self.closing.take() {
            let _ = closing.send(Closing::Goaway(goaway));
        }
    }

    /// The client finishes: GOAWAY `done` tells the gateway to answer what it has and close; no
    /// new call is taken, and the connection ends once the calls in flight are answered (or
    /// their deadlines pass). Subscriptions end with the client.
    fn on_finishing(&mut self) {
        self.done_sent = true;
        let done = Goaway { reconnect: false, ..Goaway::new(GoawayReason::DONE, "") };
        self.out.queue_control(Frame::Goaway(done));
        self.stop_taking_calls();
        self.drain_until = Some(self.table.latest_deadline().unwrap_or_else(Instant::now));
    }

    fn on_tick(&mut self) -> Result<(), End> {
        let Some(keepalive) = &mut self.keepalive else { return Ok(()) };
        if keepalive.pinged && !keepalive.heard {
            let period = keepalive.interval.period();
            return Err(End::Lost(format!("the gateway answered no ping for {period:?}")));
        }
        keepalive.heard = false;
        keepalive.pinged = true;
        let data = keepalive.next_data;
        keepalive.next_data += 1;
        self.out.queue_control(Frame::Ping { data });
        Ok(())
    }

    /// Calls still queued in the channel never left: their callers may send them elsewhere.
    fn stop_taking_calls(&mut self) {
        self.calls.close();
        while let Ok(command) = self.calls.try_recv() {
            let _ = command.into_reply().send(Outcome::NotSent);
        }
    }

    /// Fails what is left, tells the reconnecting task, and says goodbye when there is someone
    /// to say it to.
    async fn finish<W: AsyncWrite + Unpin>(mut self, end: End, writer: &mut W) {
        let (reason, goodbye) = match end {
            End::Drained => ("the drain ended".to_owned(), None),
            End::Lost(reason) => (reason, None),
            End::Protocol(code, what) => {
                warn!(endpoint = %self.endpoint, error = %what, "protocol error from the gateway");
                (format!("protocol error: {what}"), Some(Goaway::new(code, what)))
            }
            End::Shutdown => (
                "the client was closed".to_owned(),
                Some(Goaway::new(GoawayReason::SHUTTING_DOWN, "")),
            ),
        };
        debug!(endpoint = %self.endpoint, %reason, "connection ends");
        self.stop_taking_calls();
        self.subscriptions.detach();
        let shutdown = self.shutdown.is_cancelled();
        for entry in self.table.drain() {
            let status = if shutdown {
                Status::cancelled("the client was closed")
            } else {
                // Without a reply the request may or may not have run: only a method that is
                // safe to run twice may be retried.
                Status::unavailable(format!(
                    "connection to {} lost ({reason}); the request may have run",
                    self.endpoint
                ))
                .with_retryable(entry.idempotent)
            };
            entry.finish(Err(status));
        }
        self.out.fail_waiters();
        if let Some(closing) = self.closing.take() {
            let _ = closing.send(Closing::Lost(reason));
        }
        if let Some(goaway) = goodbye {
            self.out.queue_control(Frame::Goaway(goaway));
            let flush = async {
                writer.write_all_buf(&mut self.out.buf).await?;
                writer.shutdown().await
            };
            // The peer may not be reading: the goodbye is worth a bounded wait, no more.
            let _ = tokio::time::timeout(self.flush_timeout, flush).await;
        }
    }
}

/// Writes some of `buf` (`Some(bytes written)`), or flushes when it is empty (`None`): TLS may
/// hold what was written until flushed (a flush costs nothing on TCP).
async fn write_or_flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    buf: &mut BytesMut,
) -> std::io::Result<Option<usize>> {
    if buf.is_empty() {
        writer.flush().await.map(|()| None)
    } else {
        writer.write_buf(buf).await.map(Some)
    }
}

async fn tick(keepalive: &mut Option<Keepalive>) {
    match keepalive {
        Some(keepalive) => {
            keepalive.interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use gateway_core::MethodDesc;
    use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, Welcome};

    use super::*;

    static NOTIFY: MethodDesc = MethodDesc {
        id: 9,
        name: "test.Notify.notify",
        request: "test.Any",
        response: None,
        idempotent: false,
        writes: true,
    };

    /// A socket's write half that accepts everything and records each write.
    #[derive(Clone, Default)]
    struct RecordingWriter(Arc<Mutex<Vec<Vec<u8>>>>);

    impl AsyncWrite for RecordingWriter {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0.lock().unwrap().push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn calls_that_queue_up_leave_in_one_write() {
        let config = ClientConfig::new(["127.0.0.1:1"]);
        let welcome = Welcome {
            capabilities: 0,
            version: 1,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_in_flight: 100,
            idle_timeout_ms: 0,
            server_id: String::new(),
            auth_expires_in_ms: 0,
        };
        let (calls_tx, calls) = mpsc::channel(100);
        let (_control_tx, control) = mpsc::unbounded_channel();
        let (closing, _closing_rx) = oneshot::channel();
        let (grant, _) = watch::channel(None);
        let shutdown = CancellationToken::new();
        let finishing = CancellationToken::new();
        let channels =
            Channels { calls, control, closing, grant, shutdown: shutdown.clone(), finishing };
        let registry = Arc::default();
        let connection =
            Connection::new("test".into(), &welcome, &config, channels, BytesMut::new(), &registry);

        let mut outcomes = Vec::new();
        for i in 0..100u8 {
            let (reply, outcome) = oneshot::channel();
            let call = Call {
                what: Outgoing::Request(&NOTIFY),
                payload: Bytes::from(vec![i]),
                timeout_ms: 1000,
                deadline: Instant::now(),
                kind: CallKind::FireAndForget,
                reply,
            };
            calls_tx.try_send(Command::Call(call)).unwrap();
            outcomes.push(outcome);
        }
        // The read half stays open and silent.
        let (reader, _server) = tokio::io::duplex(64);
        let writer = RecordingWriter::default();
        let task = tokio::spawn(connection.run(reader, writer.clone()));
        for outcome in outcomes {
            assert!(matches!(outcome.await.unwrap(), Outcome::Done(Ok(_))));
        }
        shutdown.cancel();
        task.await.unwrap();

        let writes = writer.0.lock().unwrap().clone();
        // One write for the 100 requests, one for the goodbye.
        assert_eq!(writes.len(), 2, "{} writes", writes.len());
        let mut first = BytesMut::from(&writes[0][..]);
        for i in 0..100u8 {
            let Decoded::Frame(Frame::Request(r)) = decode(&mut first, u32::MAX).unwrap() else {
                panic!("a REQUEST")
            };
            assert_eq!((r.request_id, &r.payload[..]), (u32::from(i) + 1, &[i][..]));
            assert!(r.fire_and_forget);
        }
        assert!(first.is_empty());
    }
}
