//! One client connection, from HELLO to close (`docs/protocol.md` is normative), over either
//! transport ([`Transport`]: TCP or WebSocket).
//!
//! **One task per connection.** The session's task owns everything of its connection: the
//! transport, the read buffer, the [`Outbox`], the calls in flight ([`Calls`]), the
//! subscriptions, the credentials. On each wake-up it does, in turn:
//!
//! 1. reads what the client sent and handles each frame: a REQUEST is checked (method,
//!    permission, operator switches, in-flight caps) and started on the bus; a call that
//!    finishes on its first poll (a service in this process that does not wait) is answered at
//!    once, one that waits joins [`Calls`];
//! 2. polls the calls that were waiting and answers those that ended;
//! 3. takes the events its subscriptions received from the hub ([`Mailbox`]);
//! 4. writes everything queued in one write.
//!
//! So a burst of pipelined requests is read with one read and answered with one write, with no
//! task, no channel and no lock per call. The session stops reading (and taking answers and
//! events) while its outbox holds more than `send_queue_bytes`: a client that stops reading holds
//! up only itself, and memory per connection stays under that bound plus the answers of its
//! calls in flight. One timer serves the connection: the earliest of its calls' deadlines, the
//! idle timeout, the token's expiry and (WebSocket) the keepalive ping.
//!
//! How a session ends:
//! - the client closes or sends GOAWAY: its calls are cancelled (the services are told),
//!   nothing more is sent;
//! - the client breaks the protocol, or idles past `idle_timeout`: GOAWAY with the reason, calls
//!   cancelled, close;
//! - the gateway drains: GOAWAY `shutting_down` naming the last request it will answer, the calls
//!   in flight finish (CANCELs are still honoured, new REQUESTs are not started), close. If the
//!   drain bound passes first, the calls left are cancelled and answered `unavailable`.

mod pubsub;
pub(crate) mod transport;

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use gateway_bus::{CallMeta, RouteCache};
use gateway_core::{Code, Status};
use gateway_protocol::{
    Auth, CAPABILITY_HISTORY, Frame, Goaway, GoawayReason, Hello, MIN_MAX_FRAME_SIZE, Request,
    Subscribe, SubscribeFrom, VERSION, Welcome,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tracing::{debug, info};

use self::pubsub::Control;
pub(crate) use self::transport::{ReadError, Transport};
use crate::auth::{AuthError, AuthErrorKind, Grant, Permissions};
use crate::call::{self, Calls, Ended};
use crate::hub::HubSubscription;
use crate::limits::{Handshaking, UserSlot};
use crate::mailbox::{Mailbox, signal};
use crate::metrics::Shed;
use crate::outbox::{Outbox, Wire, opcode};
use crate::router::Route;
use crate::state::{CallIdBlock, ConnectionInfo, Shared};
use crate::switches::SwitchView;

/// How long a closing connection may take to flush its last frames, and then to let the client
/// read them before the socket is dropped. Closing a socket with unread input makes the kernel
/// send a reset, which can destroy the GOAWAY before the client reads it; reading until the
/// client's EOF (bounded by this) avoids that.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Room made for a read: at first the least (an idle connection, welcomed and quiet, holds no
/// more), then twice what the last read brought, shrinking by at most half per read, up to the
/// most: a busy connection reads in large gulps within a few reads, and a read always has room
/// for more than the rest of its frame.
const READ_ROOM_MIN: usize = 1024;
const READ_ROOM_MAX: usize = 256 * 1024;
/// A read buffer up to this size is kept when empty; a larger one is given back.
const READ_KEEP: usize = 16 * 1024;

/// When the gateway has few connections, a read's answers are written every this many frames,
/// without waiting for the rest of the read's frames (see `Session::early_writes`). Measured at
/// 1 connection x 64 in flight: 8 costs more in system calls than it gains, 16 and 32 gain
/// 10-20% over one write per read, 32 the most steadily.
const EARLY_WRITE: u32 = 32;

/// Bytes of events taken from the mailbox in one turn.
const EVENT_BATCH: usize = 64 * 1024;

/// Turns of work one wake-up may take before the session lets the other tasks run.
const MAX_TURNS: u32 = 32;

/// The message of the GOAWAY `shutting_down` a draining gateway sends.
const SHUTTING_DOWN: &str = "the gateway is shutting down";
/// Its message when an operator closed this one connection (`POST /connections/<id>/close`).
const CLOSED_BY_OPERATOR: &str = "an operator closed this connection; reconnect";

/// Refused AUTH refreshes in a row a connection may have; the next refusal closes it, so that a
/// connection cannot try tokens one after another for as long as it likes.
const MAX_REFUSED_REFRESHES: u32 = 3;

/// Why a phase of the session ended.
#[derive(Debug)]
enum End {
    /// The client closed the connection, sent GOAWAY, or the socket failed.
    ClientGone,
    /// The client sent GOAWAY `done`: its calls in flight are answered, then the connection
    /// closes.
    ClientDone,
    /// Every call the client left in flight with GOAWAY `done` is answered.
    Done,
    /// The gateway closes the connection with this GOAWAY, abandoning the calls in flight.
    Close(Goaway),
    /// The gateway drains: GOAWAY `shutting_down`, then the calls in flight finish.
    Drain,
    /// Drained: every call is answered.
    Drained,
    /// The drain bound passed with calls left: they are answered `unavailable`.
    Abandoned,
}

fn close(reason: GoawayReason, message: impl Into<String>) -> End {
    End::Close(Goaway::new(reason, message))
}

fn slow_consumer() -> End {
    close(GoawayReason::SLOW_CONSUMER, "the client did not read its events fast enough")
}

/// Whether the session's permissions allow a route, as last checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Allowed {
    #[default]
    Unknown,
    Yes,
    No,
}

/// What a session keeps of each route it calls.
#[derive(Debug, Default)]
struct RouteState {
    allowed: Allowed,
    /// Where the bus sent the route's calls (`Bus::call_cached`).
    cache: RouteCache,
}

/// Serves one connection, whatever its transport, until it closes: HELLO must arrive by
/// `handshake_deadline`, and frames are limited to [`MIN_MAX_FRAME_SIZE`] until WELCOME.
/// `read` holds bytes the transport already read (after a WebSocket upgrade). `_permit` is the
/// connection's place under `max_connections`, released when this returns; `handshaking` counts
/// it among the connections in their handshake, until the handshake ends.
pub(crate) async fn serve<T: Transport>(
    io: T,
    read: BytesMut,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
    handshake_deadline: Instant,
    handshaking: Handshaking,
) {
    shared.metrics.connection_opened(T::KIND);
    let mailbox = Arc::new(Mailbox::new(shared.config.send_queue_bytes, shared.metrics.clone()));
    let info = Arc::new(ConnectionInfo {
        peer,
        transport: T::KIND,
        tls: shared.tls.is_some(),
        since: SystemTime::now(),
        hello: std::sync::OnceLock::new(),
    });
    let key = shared.connections.add(mailbox.clone(), info.clone());
    // A drain that began before this connection was listed has not signalled it.
    if shared.draining.is_cancelled() {
        mailbox.signal(signal::DRAIN);
    }
    let mut session = Session::new(io, read, peer, shared.clone(), mailbox, handshake_deadline);
    session.info = Some(info);
    let handshake = session.handshake().await;
    drop(handshaking);
    let end = match handshake {
        Ok(()) => match session.open().await {
            End::Drain => session.drain().await,
            End::ClientDone => session.answer_in_flight().await,
            end => end,
        },
        Err(end) => end,
    };
    session.finish(end).await;
    shared.connections.remove(key);
    shared.metrics.connection_closed(T::KIND);
}

/// One open connection.
struct Session<T: Transport> {
    io: T,
    shared: Arc<Shared>,
    peer: SocketAddr,
    mailbox: Arc<Mailbox>,
    /// Bytes read and not yet taken as frames.
    read: BytesMut,
    /// Room to make for the next read.
    read_room: usize,
    outbox: Outbox,
    /// The outbox's bytes as last counted in the queued-bytes metric.
    counted: usize,
    /// The largest frame accepted: [`MIN_MAX_FRAME_SIZE`] until WELCOME.
    max_frame_size: u32,
    /// Who the client is and what it may do: set by the handshake, replaced by AUTH.
    grant: Arc<Grant>,
    /// What the console shows of this connection.
    info: Option<Arc<ConnectionInfo>>,
    /// Each route's permission (as checked under the current grant) and bus cache, by index.
    routes: Vec<RouteState>,
    /// The operator switches, as of the last request.
    switches: Option<SwitchView>,
    calls: Calls,
    /// Call ids, taken from the gateway's in blocks.
    ids: Option<CallIdBlock>,
    subscriptions: HashMap<u32, HubSubscription>,
    /// The client announced `HISTORY` in HELLO: its subscriptions to topics with history are
    /// answered with SUBSCRIBED_AT and EVENT_AT.
    positions: bool,
    /// AUTH refreshes refused since the last one accepted.
    refused_refreshes: u32,
    /// Subscriptions the hub ended, taken from the mailbox.
    ended: Vec<u32>,
    /// Calls that ended this turn, `(route, code, received)`, for the metrics: counted all at
    /// once at the turn's end, with one reading of the clock (the answers leave then too).
    finished: Vec<(usize, Code, Instant)>,
    /// A SUBSCRIBE or PUBLISH the bus is working on; frames after it wait.
    control: Option<Control>,
    /// The id of the last request taken (answered at once or started), which a drain's GOAWAY
    /// names. Fire-and-forget requests count: they were processed, so a client must not resend
    /// them.
    last_request_id: u32,
    /// The connection's one timer, and when it is set to fire.
    timer: Pin<Box<Sleep>>,
    timer_at: Instant,
    /// When the last frame came (the idle timeout).
    last_frame: Instant,
    /// When the client was last heard from, bytes of any kind (the WebSocket keepalive).
    heard: Instant,
    /// This silence was pinged.
    pinged: bool,
    /// When the credentials expire.
    expires: Option<Instant>,
    /// The connection's place under its user's connection limit.
    _user: Option<UserSlot>,
}

impl<T: Transport> Session<T> {
    fn new(
        io: T,
        read: BytesMut,
        peer: SocketAddr,
        shared: Arc<Shared>,
        mailbox: Arc<Mailbox>,
        handshake_deadline: Instant,
    ) -> Session<T> {
        let now = Instant::now();
        Session {
            io,
            peer,
            mailbox,
            read,
            read_room: READ_ROOM_MIN,
            outbox: Outbox::new(T::WIRE, MIN_MAX_FRAME_SIZE),
            counted: 0,
            max_frame_size: MIN_MAX_FRAME_SIZE,
            // Nothing is allowed until the handshake authenticates the client.
            grant: Arc::new(Grant {
                identity: None,
                permissions: Arc::new(Permissions::default()),
                expires_at: None,
            }),
            info: None,
            routes: Vec::new(),
            switches: None,
            calls: Calls::default(),
            ids: None,
            subscriptions: HashMap::new(),
            positions: false,
            refused_refreshes: 0,
            ended: Vec::new(),
            finished: Vec::new(),
            control: None,
            last_request_id: 0,
            timer: Box::pin(tokio::time::sleep_until(handshake_deadline)),
            timer_at: handshake_deadline,
            last_frame: now,
            heard: now,
            pinged: false,
            expires: None,
            _user: None,
            shared,
        }
    }

    /// Whether a long read's answers leave in parts. With no more connections than the runtime
    /// has threads, the cores would otherwise wait: the client for the first answers while the
    /// gateway works through the read, then the gateway while the client sends the next ones.
    /// With more connections, the others keep the cores busy, and one write per read costs
    /// fewer system calls.
    fn early_writes(&self) -> bool {
        self.shared.metrics.connections_open() <= self.shared.workers
    }

    /// Whether the outbox has room for more answers.
    fn room(&self) -> bool {
        self.outbox.len() < self.shared.config.send_queue_bytes
    }

    /// Queues a frame the gateway made (small, within any peer's limit).
    fn push(&mut self, frame: &Frame) {
        if let Err(e) = self.outbox.push(frame) {
            debug!(cause = %e, "a frame could not be encoded");
        }
    }

    /// Keeps the queued-bytes metric true for the outbox.
    fn count_queued(&mut self) {
        let now = self.outbox.len();
        if now != self.counted {
            self.shared.metrics.queued(now as i64 - self.counted as i64);
            self.counted = now;
        }
    }

    /// Reads more bytes: `Ok(true)` if some came, `Ok(false)` if none are there now (woken when
    /// some are).
    fn fill(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
        // Room for more than the rest of a frame: a read sized to what one frame still needs
        // would take frames one at a time.
        if self.read.capacity() - self.read.len() < self.read_room {
            self.read.reserve(self.read_room);
        }
        match self.io.poll_read(cx, &mut self.read) {
            Poll::Ready(Ok(0)) => Err(End::ClientGone),
            Poll::Ready(Ok(n)) => {
                self.read_room =
                    (2 * n).max(self.read_room / 2).clamp(READ_ROOM_MIN, READ_ROOM_MAX);
                self.heard = Instant::now();
                Ok(true)
            }
            Poll::Ready(Err(e)) => {
                debug!(peer = %self.peer, cause = %e, "reading from the client failed");
                Err(End::ClientGone)
            }
            Poll::Pending => Ok(false),
        }
    }

    /// The next whole frame read, if any.
    fn next_frame(&mut self) -> Result<Option<Frame>, End> {
        self.io.next_frame(&mut self.read, self.max_frame_size, &mut self.outbox).map_err(|e| {
            match e {
                ReadError::Left => End::ClientGone,
                ReadError::Close(goaway) => End::Close(goaway),
            }
        })
    }

    /// Writes what is queued: `Ok(true)` if the outbox is empty now.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
        if self.outbox.is_empty() {
            return Ok(true);
        }
        match self.io.poll_write(cx, &mut self.outbox) {
            Poll::Ready(Ok(())) => Ok(true),
            Poll::Ready(Err(e)) => {
                debug!(peer = %self.peer, cause = %e, "writing to the client failed");
                Err(End::ClientGone)
            }
            Poll::Pending => Ok(false),
        }
    }

    /// Gives back a read buffer that grew past [`READ_KEEP`] once nothing is in it. One of that
    /// size or less is kept for the next read (under load, allocating it afresh for every read
    /// costs more than the rest of the read's work); after HELLO it is 1 KiB.
    fn idle_buffers(&mut self) {
        if self.read.is_empty() && self.read.capacity() > READ_KEEP {
            self.read = BytesMut::new();
        }
    }

    // ----- the handshake -----

    /// Waits for HELLO, authenticates it and answers WELCOME, or says how the connection ends.
    async fn handshake(&mut self) -> Result<(), End> {
        let hello = poll_fn(|cx| self.poll_hello(cx)).await?;
        let shared = self.shared.clone();
        if hello.version < VERSION {
            let what = format!(
                "version {} is not spoken here; this server speaks version {VERSION}",
                hello.version
            );
            return Err(close(GoawayReason::UNSUPPORTED_VERSION, what));
        }
        if hello.max_frame_size < MIN_MAX_FRAME_SIZE {
            let what =
                format!("max_frame_size {} is below {MIN_MAX_FRAME_SIZE}", hello.max_frame_size);
            return Err(close(GoawayReason::PROTOCOL_ERROR, what));
        }
        self.outbox.set_peer_max(hello.max_frame_size);
        let now = SystemTime::now();
        let grant = match shared.auth.authenticate(&hello.token, now) {
            Ok(grant) => grant,
            Err(e) => return Err(refused(&shared, self.peer, &e)),
        };
        if let Some(subject) = grant.subject() {
            match shared.users.take(subject) {
                Some(slot) => self._user = Some(slot),
                None => {
                    let what = format!("too many connections for user `{subject}`");
                    return Err(close(GoawayReason::TOO_MANY_CONNECTIONS, what));
                }
            }
        }
        let auth_expires_in_ms = grant.expires_in_ms(now);
        self.expires = expiry(&grant);
        self.grant = Arc::new(grant);
        // The largest frame whose payload the bus carries (with the call's headers), if that is
        // below the configured limit: the limit a client may use is the one WELCOME states.
        let max_frame_size =
            shared.config.max_frame_size.min(bus_frame_limit(shared.bus.max_payload()));
        self.positions = hello.capabilities & CAPABILITY_HISTORY != 0;
        self.push(&Frame::Welcome(Welcome {
            capabilities: CAPABILITY_HISTORY,
            version: VERSION,
            max_frame_size,
            max_in_flight: shared.config.max_in_flight_per_connection,
            idle_timeout_ms: shared.config.idle_timeout_ms(),
            server_id: shared.config.server_id.clone(),
            auth_expires_in_ms,
        }));
        self.max_frame_size = max_frame_size;
        self.io.welcomed();
        self.switches = Some(SwitchView::new(shared.switches.follow()));
        self.last_frame = Instant::now();
        if let Some(info) = &self.info {
            let subject = self.grant.subject().map(str::to_owned);
            let _ = info.hello.set((hello.client_name.clone(), subject));
        }
        let who = self.grant.subject().unwrap_or("anonymous");
        debug!(peer = %self.peer, client = %hello.client_name, %who, "session open");
        Ok(())
    }

    fn poll_hello(&mut self, cx: &mut Context<'_>) -> Poll<Result<Hello, End>> {
        self.mailbox.register(cx.waker());
        if self.mailbox.signals() & (signal::DRAIN | signal::ABANDON) != 0 {
            return Poll::Ready(Err(close(GoawayReason::SHUTTING_DOWN, SHUTTING_DOWN)));
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            let what = "no HELLO within the handshake timeout";
            return Poll::Ready(Err(close(GoawayReason::HANDSHAKE_TIMEOUT, what)));
        }
        loop {
            // Transport answers (WebSocket pongs) before HELLO.
            if let Err(end) = self.write(cx) {
                return Poll::Ready(Err(end));
            }
            match self.next_frame() {
                Err(end) => return Poll::Ready(Err(end)),
                Ok(Some(Frame::Hello(hello))) => return Poll::Ready(Ok(hello)),
                Ok(Some(other)) => {
                    let what = format!("expected HELLO, got {}", other.frame_type().name());
                    return Poll::Ready(Err(close(GoawayReason::PROTOCOL_ERROR, what)));
                }
                Ok(None) => {}
            }
            if !self.room() {
                return Poll::Pending;
            }
            match self.fill(cx) {
                Err(end) => return Poll::Ready(Err(end)),
                Ok(true) => {}
                Ok(false) => return Poll::Pending,
            }
        }
    }

    // ----- the open session -----

    async fn open(&mut self) -> End {
        let now = Instant::now();
        self.heard = now;
        self.arm(now);
        poll_fn(|cx| self.poll_open(cx)).await
    }

    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        self.mailbox.register(cx.waker());
        let mut turns = 0;
        loop {
            let signals = self.mailbox.signals();
            if signals & signal::SLOW != 0 {
                return Poll::Ready(slow_consumer());
            }
            if signals & (signal::DRAIN | signal::ABANDON | signal::CLOSE) != 0 {
                return Poll::Ready(End::Drain);
            }
            let now = Instant::now();
            if let Some(end) = self.poll_timer(cx, now, false) {
                return Poll::Ready(end);
            }
            let mut progress = false;
            if self.room() {
                progress |= self.poll_control(cx);
                if self.control.is_none() {
                    match self.read_frames(cx, now, false) {
                        Ok(read) => progress |= read,
                        Err(end) => return Poll::Ready(end),
                    }
                }
            }
            progress |= self.take_ended(cx);
            progress |= self.take_events();
            match self.write(cx) {
                Ok(_) => {}
                Err(end) => return Poll::Ready(end),
            }
            self.count_finished();
            if !progress {
                self.count_queued();
                self.idle_buffers();
                return Poll::Pending;
            }
            turns += 1;
            if turns == MAX_TURNS {
                self.count_queued();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }

    /// Takes the frames read so far, reading once more when they run out: `Ok(true)` if
    /// anything happened. While draining (`draining`), only CANCEL and UNSUBSCRIBE are taken.
    fn read_frames(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        draining: bool,
    ) -> Result<bool, End> {
        let mut progress = false;
        let mut filled = false;
        let mut taken = 0u32;
        // One reference for the whole run of frames, not one per request.
        let shared = Arc::clone(&self.shared);
        loop {
            while self.room() && self.control.is_none() {
                let Some(frame) = self.next_frame()? else { break };
                progress = true;
                self.last_frame = now;
                if draining {
                    self.on_frame_draining(frame)?;
                } else {
                    self.on_frame(frame, &shared, cx, now)?;
                }
                // Long runs of frames answered at once: the first answers leave while the rest
                // are worked on, so the client is not idle meanwhile.
                taken += 1;
                if taken % EARLY_WRITE == 0 && self.early_writes() {
                    self.write(cx)?;
                }
            }
            // One read per turn: what it brings is answered before the next.
            if filled || !self.room() || self.control.is_some() {
                return Ok(progress);
            }
            filled = true;
            if !self.fill(cx)? {
                return Ok(progress);
            }
            progress = true;
        }
    }

    fn on_frame(
        &mut self,
        frame: Frame,
        shared: &Shared,
        cx: &mut Context<'_>,
        now: Instant,
    ) -> Result<(), End> {
        match frame {
            Frame::Request(request) => self.on_request(request, shared, cx, now)?,
            Frame::Cancel { request_id } => self.on_cancel(request_id),
            Frame::Ping { data } => self.push(&Frame::Pong { data }),
            Frame::Pong { .. } => {}
            // A client's GOAWAY `done`: it wants its answers, then the connection closes.
            Frame::Goaway(goaway) if goaway.reason == GoawayReason::DONE => {
                return Err(End::ClientDone);
            }
            // Any other GOAWAY: it is leaving, and its calls are cancelled.
            Frame::Goaway(_) => return Err(End::ClientGone),
            Frame::Hello(_) => return Err(close(GoawayReason::PROTOCOL_ERROR, "a second HELLO")),
            Frame::Subscribe(subscribe) => self.subscribe(subscribe, None, cx)?,
            Frame::SubscribeFrom(from) => {
                let SubscribeFrom { subscription_id, topic_id, all_keys, key, position } = from;
                let subscribe = Subscribe { subscription_id, topic_id, all_keys, key };
                self.subscribe(subscribe, Some(position), cx)?;
            }
            Frame::Unsubscribe { subscription_id } => self.unsubscribe(subscription_id),
            Frame::Publish(publish) => self.publish(publish, cx)?,
            Frame::Auth(auth) => self.refresh(auth)?,
            other @ (Frame::Welcome(_)
            | Frame::Response(_)
            | Frame::Error(_)
            | Frame::Subscribed { .. }
            | Frame::SubscribedAt(_)
            | Frame::Event(_)
            | Frame::EventAt(_)
            | Frame::Missed { .. }
            | Frame::SubscriptionEnded(_)
            | Frame::AuthOk { .. }) => {
                let what = format!("{} goes from server to client", other.frame_type().name());
                return Err(close(GoawayReason::PROTOCOL_ERROR, what));
            }
        }
        Ok(())
    }

    /// Takes one REQUEST: refuses it at once (unknown method, not permitted, stopped by an
    /// operator switch, over a bound) or starts its call.
    fn on_request(
        &mut self,
        request: Request,
        shared: &Shared,
        cx: &mut Context<'_>,
        now: Instant,
    ) -> Result<(), End> {
        let id = request.request_id;
        if id == 0 {
            return Err(close(GoawayReason::PROTOCOL_ERROR, "request id 0"));
        }
        let wants_reply = !request.fire_and_forget;
        if wants_reply && self.calls.contains(id) {
            let what = format!("request id {id} is in flight");
            return Err(close(GoawayReason::PROTOCOL_ERROR, what));
        }
        self.last_request_id = id;
        let Some(route) = shared.registry.route(request.method_id) else {
            shared.metrics.unknown_method();
            let message = format!("unknown method id {:#010x}", request.method_id);
            self.refuse(&request, Status::unimplemented(message));
            return Ok(());
        };
        if !self.may_call(route) {
            shared.metrics.call_refused(route.index, Code::PermissionDenied);
            let message = format!("not allowed to call {}", route.method.name);
            self.refuse(&request, Status::permission_denied(message));
            return Ok(());
        }
        // After the permission check, so that a client learns nothing of a service it may not
        // call; before taking in-flight places, which a refused call does not need.
        if let Some(Err((refusal, status))) = self.switches.as_mut().map(|s| s.check(route)) {
            shared.metrics.switch_refused(route.index, refusal, status.code());
            self.refuse(&request, status);
            return Ok(());
        }
        let bound = if wants_reply
            && self.calls.len() >= shared.config.max_in_flight_per_connection as usize
        {
            Some(Shed::Connection)
        } else if !shared.metrics.try_start_call(shared.config.max_in_flight_total) {
            Some(Shed::Global)
        } else {
            None
        };
        if let Some(bound) = bound {
            shared.metrics.shed(bound);
            shared.metrics.call_refused(route.index, Code::ResourceExhausted);
            let message = match bound {
                Shed::Connection => "too many requests in flight on this connection",
                Shed::Global => "the gateway has too many requests in flight",
            };
            self.refuse(&request, Status::resource_exhausted(message));
            return Ok(());
        }
        let timeout = match request.timeout_ms {
            0 => shared.config.default_timeout,
            ms => Duration::from_millis(u64::from(ms)),
        }
        .min(shared.config.max_timeout);
        let deadline = now + timeout;
        let ids = self.ids.get_or_insert_with(|| shared.call_ids.block());
        let meta = CallMeta {
            method_id: route.method.id,
            deadline: Some(deadline.into_std()),
            call_id: Some(ids.next(&shared.call_ids)),
            // Built from the connection's grant only: a client has no way to send bus headers.
            identity: self.grant.identity.clone(),
            received: Some(now.into_std()),
        };
        let mut call = if request.fire_and_forget || route.method.is_fire_and_forget() {
            // Published without a reply subject (`docs/bus.md`: `-> void` methods have none):
            // the call is over once the bus has it. A client that wants a reply to a `-> void`
            // method (no FIRE_AND_FORGET flag) gets an empty RESPONSE then, or the bus's error.
            let sent = shared.bus.send(&route.bus, meta, request.payload);
            gateway_bus::Call::boxed(async move {
                sent.await.map(|()| Bytes::new()).map_err(gateway_bus::Failure::from)
            })
        } else {
            // `may_call` made the route's state.
            let cache = &mut self.routes[route.index].cache;
            shared.bus.call_cached(&route.bus, cache, meta, request.payload)
        };
        match Pin::new(&mut call).poll(cx) {
            Poll::Ready(answer) => {
                let reply_to = if wants_reply { id } else { 0 };
                self.on_ended(Ended {
                    request_id: reply_to,
                    route: route.index,
                    received: now,
                    answer: Some(answer),
                });
            }
            Poll::Pending => {
                let reply_to = if wants_reply { id } else { 0 };
                self.calls.insert(reply_to, route.index, now, deadline, call);
                if wants_reply {
                    self.arm_for(deadline);
                }
            }
        }
        Ok(())
    }

    /// Whether the current grant allows calling `route` (checked once per grant and route).
    fn may_call(&mut self, route: &Route) -> bool {
        if self.routes.len() <= route.index {
            let len = self.shared.registry.routes().len().max(route.index + 1);
            self.routes.resize_with(len, RouteState::default);
        }
        let state = &mut self.routes[route.index];
        match state.allowed {
            Allowed::Yes => true,
            Allowed::No => false,
            Allowed::Unknown => {
                let yes = self.grant.permissions.may_call(route.method);
                state.allowed = if yes { Allowed::Yes } else { Allowed::No };
                yes
            }
        }
    }

    /// Answers `request` at once with `status`, unless it is fire-and-forget (those are dropped
    /// silently, as the protocol says).
    fn refuse(&mut self, request: &Request, status: Status) {
        if !request.fire_and_forget {
            let _ = self.outbox.error(request.request_id, status, Bytes::new());
        }
    }

    /// A call ended by itself: its answer is queued (fire-and-forget ones have none) and it is
    /// counted.
    fn on_ended(&mut self, ended: Ended) {
        let Ended { request_id, route, received, answer } = ended;
        let code = match (request_id, answer) {
            (0, Some(answer)) => answer.map_or_else(|f| f.status.code(), |_| Code::Ok),
            (id, Some(answer)) => call::answer(&mut self.outbox, id, answer),
            (_, None) => Code::Cancelled,
        };
        self.finish_call(route, code, received);
    }

    /// Counts a call that ended (see `finished`).
    fn finish_call(&mut self, route: usize, code: Code, received: Instant) {
        self.finished.push((route, code, received));
    }

    /// Hands the calls that ended to the metrics and their places under the global cap back.
    fn count_finished(&mut self) {
        if self.finished.is_empty() {
            return;
        }
        let now = Instant::now();
        let calls = self
            .finished
            .drain(..)
            .map(|(route, code, received)| (route, code, now.saturating_duration_since(received)));
        self.shared.metrics.calls_finished(calls);
    }

    fn take_ended(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while self.room() {
            match self.calls.poll_ended(cx) {
                Poll::Ready(Some(ended)) => {
                    self.on_ended(ended);
                    progress = true;
                }
                _ => break,
            }
        }
        progress
    }

    fn on_cancel(&mut self, request_id: u32) {
        // An id not in flight: the answer crossed the CANCEL on the wire; ignored.
        if let Some((route, received)) = self.calls.cancel(request_id) {
            let status = Status::cancelled("the call was cancelled");
            let _ = self.outbox.error(request_id, status, Bytes::new());
            self.finish_call(route, Code::Cancelled, received);
        }
    }

    /// Takes events and ended subscriptions from the mailbox, while the outbox has room.
    fn take_events(&mut self) -> bool {
        if !self.room() || !self.mailbox.has_pending() {
            return false;
        }
        self.mailbox.drain_into(&mut self.outbox, EVENT_BATCH, &mut self.ended);
        for id in self.ended.drain(..) {
            self.subscriptions.remove(&id);
        }
        true
    }

    // ----- the timer -----

    /// Handles what is due (deadlines; unless `draining`, idle, expiry, keepalive) and sets the
    /// timer for what comes next. Returns how the session ends, if something due ends it.
    fn poll_timer(
        &mut self,
        cx: &mut Context<'_>,
        mut now: Instant,
        draining: bool,
    ) -> Option<End> {
        loop {
            while let Some((id, route, received, deadline)) = self.calls.expire(now) {
                let status = call::deadline_exceeded(deadline.saturating_duration_since(received));
                let _ = self.outbox.error(id, status, Bytes::new());
                self.finish_call(route, Code::DeadlineExceeded, received);
            }
            if draining {
                self.arm(now);
                if self.timer.as_mut().poll(cx).is_pending() {
                    return None;
                }
                now = Instant::now();
                continue;
            }
            let idle = self.shared.config.idle_timeout;
            if !idle.is_zero() && now >= self.last_frame + idle {
                if !self.calls.is_idle() || self.control.is_some() {
                    // Only a connection with nothing in flight is idle; with calls running, the
                    // clock starts again (so it closes within twice the timeout of going quiet).
                    self.last_frame = now;
                } else {
                    return Some(close(GoawayReason::IDLE_TIMEOUT, "the connection was idle"));
                }
            }
            if self.expires.is_some_and(|at| now >= at) {
                let what = "the token expired; reconnect with a fresh one";
                return Some(close(GoawayReason::TOKEN_EXPIRED, what));
            }
            if let Some(end) = self.keepalive(now) {
                return Some(end);
            }
            self.arm(now);
            if self.timer.as_mut().poll(cx).is_pending() {
                return None;
            }
            now = Instant::now();
        }
    }

    /// WebSocket: pings a client silent for `ws_ping_interval`, closes one silent for twice that.
    fn keepalive(&mut self, now: Instant) -> Option<End> {
        let interval = self.shared.config.ws_ping_interval;
        if T::WIRE != Wire::WebSocket || interval.is_zero() {
            return None;
        }
        let silent = now.saturating_duration_since(self.heard);
        if silent >= interval * 2 {
            let message = format!(
                "nothing heard from the client, not even a pong, for {} ms",
                silent.as_millis()
            );
            return Some(close(GoawayReason::IDLE_TIMEOUT, message));
        }
        if silent >= interval {
            if !self.pinged {
                self.pinged = true;
                self.outbox.ws_control(opcode::PING, b"");
            }
        } else {
            self.pinged = false;
        }
        None
    }

    /// The next moment something may be due.
    fn next_wake(&mut self, now: Instant) -> Instant {
        let mut next = now + Duration::from_secs(3600);
        if let Some(at) = self.calls.next_deadline() {
            next = next.min(at);
        }
        let idle = self.shared.config.idle_timeout;
        if !idle.is_zero() {
            next = next.min(self.last_frame + idle);
        }
        if let Some(at) = self.expires {
            next = next.min(at);
        }
        let interval = self.shared.config.ws_ping_interval;
        if T::WIRE == Wire::WebSocket && !interval.is_zero() {
            next = next.min(self.heard + if self.pinged { interval * 2 } else { interval });
        }
        next
    }

    /// Sets the timer for the next moment something may be due, unless it is set earlier
    /// already (it then fires early, and is set again): a reset costs more than a spare wake-up.
    fn arm(&mut self, now: Instant) {
        let next = self.next_wake(now);
        if next < self.timer_at || self.timer_at <= now {
            self.timer.as_mut().reset(next);
            self.timer_at = next;
        }
    }

    /// Makes sure the timer fires by `at`.
    fn arm_for(&mut self, at: Instant) {
        if at < self.timer_at {
            self.timer.as_mut().reset(at);
            self.timer_at = at;
        }
    }

    // ----- credentials -----

    /// Takes an AUTH: a fresh token for the same subject replaces the connection's grant
    /// (subscriptions it no longer allows end) and is answered AUTH_OK; a refused one is answered
    /// ERROR `unauthenticated` and changes nothing.
    fn refresh(&mut self, auth: Auth) -> Result<(), End> {
        let shared = self.shared.clone();
        let id = auth.request_id;
        if id == 0 || self.calls.contains(id) {
            let what = format!("AUTH with request id {id}, which is 0 or in flight");
            return Err(close(GoawayReason::PROTOCOL_ERROR, what));
        }
        self.last_request_id = id;
        let now = SystemTime::now();
        let checked = shared.auth.authenticate(&auth.token, now).and_then(|grant| {
            if grant.subject().is_some() && grant.subject() == self.grant.subject() {
                Ok(grant)
            } else {
                Err(AuthError {
                    kind: AuthErrorKind::SubjectChanged,
                    message: format!(
                        "a refresh must be for the connection's subject `{}`",
                        self.grant.subject().unwrap_or("(anonymous)")
                    ),
                })
            }
        });
        let grant = match checked {
            Ok(grant) => Arc::new(grant),
            Err(e) => {
                shared.metrics.auth_failed(e.kind);
                info!(reason = e.kind.name(), message = %e.message, "token refresh refused");
                let _ = self.outbox.error(id, e.to_status(), Bytes::new());
                self.refused_refreshes += 1;
                if self.refused_refreshes > MAX_REFUSED_REFRESHES {
                    let what =
                        format!("{} token refreshes in a row were refused", self.refused_refreshes);
                    return Err(close(GoawayReason::UNAUTHENTICATED, what));
                }
                return Ok(());
            }
        };
        self.refused_refreshes = 0;
        self.grant = grant.clone();
        for state in &mut self.routes {
            state.allowed = Allowed::Unknown;
        }
        self.end_forbidden_subscriptions(&grant.permissions);
        self.expires = expiry(&grant);
        if let Some(at) = self.expires {
            self.arm_for(at);
        }
        self.push(&Frame::AuthOk { request_id: id, expires_in_ms: grant.expires_in_ms(now) });
        Ok(())
    }

    // ----- draining -----

    /// Drains the session: GOAWAY `shutting_down`, then waits for the calls in flight (still
    /// honouring CANCEL) until they are done, the client leaves, or the drain bound passes.
    async fn drain(&mut self) -> End {
        let signals = self.mailbox.signals();
        let why = if signals & signal::DRAIN == 0 && signals & signal::CLOSE != 0 {
            CLOSED_BY_OPERATOR
        } else {
            SHUTTING_DOWN
        };
        let goaway = Frame::Goaway(Goaway {
            last_request_id: self.last_request_id,
            ..Goaway::new(GoawayReason::SHUTTING_DOWN, why)
        });
        self.shared.metrics.goaway_sent(GoawayReason::SHUTTING_DOWN);
        self.push(&goaway);
        poll_fn(|cx| self.poll_drain(cx)).await
    }

    /// After the client's GOAWAY `done`: its subscriptions end, its calls in flight are answered
    /// (each within its deadline; CANCEL still honoured), nothing else is sent, then the
    /// connection closes. The gateway's own drain, if one starts meanwhile, bounds the wait.
    async fn answer_in_flight(&mut self) -> End {
        self.unsubscribe_all();
        match poll_fn(|cx| self.poll_drain(cx)).await {
            End::Drained => End::Done,
            end => end,
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        self.mailbox.register(cx.waker());
        loop {
            let signals = self.mailbox.signals();
            if signals & signal::SLOW != 0 {
                return Poll::Ready(slow_consumer());
            }
            if signals & signal::ABANDON != 0 {
                return Poll::Ready(End::Abandoned);
            }
            let now = Instant::now();
            // Only the calls' deadlines: idle and expiry no longer matter, the connection is
            // closing anyway.
            self.poll_timer(cx, now, true);
            let mut progress = self.poll_control(cx);
            if self.room() {
                match self.read_frames(cx, now, true) {
                    Ok(read) => progress |= read,
                    Err(end) => return Poll::Ready(end),
                }
            }
            progress |= self.take_ended(cx);
            progress |= self.take_events();
            if let Err(end) = self.write(cx) {
                return Poll::Ready(end);
            }
            self.count_finished();
            if self.calls.is_idle() && self.control.is_none() {
                return Poll::Ready(End::Drained);
            }
            if !progress {
                self.count_queued();
                return Poll::Pending;
            }
        }
    }

    /// After GOAWAY no new work starts and nothing but answers is sent (so no PONG): the client
    /// knows from `last_request_id` what to send elsewhere.
    fn on_frame_draining(&mut self, frame: Frame) -> Result<(), End> {
        match frame {
            // The client wants its answers, which a drain gives anyway.
            Frame::Goaway(goaway) if goaway.reason == GoawayReason::DONE => Ok(()),
            Frame::Goaway(_) => Err(End::ClientGone),
            Frame::Cancel { request_id } => {
                self.on_cancel(request_id);
                Ok(())
            }
            Frame::Unsubscribe { subscription_id } => {
                self.unsubscribe(subscription_id);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    // ----- the end -----

    /// Ends the connection as `end` says: the calls left are stopped (answered `unavailable` if
    /// the gateway abandoned them), the last frames written, the transport closed.
    async fn finish(mut self, end: End) {
        self.unsubscribe_all();
        self.mailbox.close();
        self.control = None;
        let (farewell, client_left, answer_left) = match end {
            End::ClientGone => (None, true, false),
            // Everything is answered: the client reads to the end, and WebSocket closes 1000.
            End::Done | End::ClientDone => (None, false, false),
            End::Close(goaway) => {
                info!(peer = %self.peer, reason = %goaway.reason, message = %goaway.message, "closing connection");
                self.shared.metrics.goaway_sent(goaway.reason);
                let farewell = (goaway.reason, goaway.message.clone());
                self.stop_calls(false);
                // GOAWAY is the last frame.
                self.push(&Frame::Goaway(goaway));
                (Some(farewell), false, false)
            }
            End::Drain | End::Drained => {
                (Some((GoawayReason::SHUTTING_DOWN, SHUTTING_DOWN.to_owned())), false, false)
            }
            End::Abandoned => {
                (Some((GoawayReason::SHUTTING_DOWN, SHUTTING_DOWN.to_owned())), false, true)
            }
        };
        self.stop_calls(answer_left);
        if client_left {
            // Nothing more can reach a client that left.
            self.outbox.clear();
        }
        self.count_queued();
        let Session { mut io, mut outbox, shared, peer, .. } = self;
        let closing = async {
            let written = poll_fn(|cx| io.poll_write(cx, &mut outbox)).await;
            if let Err(e) = written {
                debug!(%peer, cause = %e, "writing the last frames failed");
            }
            io.close(outbox, farewell, client_left).await;
        };
        if tokio::time::timeout(CLOSE_GRACE, closing).await.is_err() {
            debug!(%peer, "connection did not close in time; dropping it");
        }
        shared.metrics.queued(0);
    }

    /// Stops every call left: answered `unavailable` (not retryable: it may have run) when
    /// `answer`, else not answered; counted either way.
    fn stop_calls(&mut self, answer: bool) {
        for (id, route, received) in self.calls.stop_all() {
            let code = if answer && id != 0 {
                let status = Status::unavailable("the gateway shut down before the call finished")
                    // It may have run: sending it again is not known to be safe.
                    .with_retryable(false);
                let _ = self.outbox.error(id, status, Bytes::new());
                Code::Unavailable
            } else {
                Code::Cancelled
            };
            self.finish_call(route, code, received);
        }
        self.count_finished();
    }
}

/// A HELLO whose credentials were refused: GOAWAY `unauthenticated`, saying why. The failure
/// counts against the client's address (`auth_failure_burst`).
fn refused(shared: &Shared, peer: SocketAddr, e: &AuthError) -> End {
    shared.metrics.auth_failed(e.kind);
    shared.auth_failures.admit(peer.ip(), std::time::Instant::now());
    info!(reason = e.kind.name(), message = %e.message, "authentication refused");
    close(GoawayReason::UNAUTHENTICATED, e.message.clone())
}

/// When `grant` expires, on the session's clock.
fn expiry(grant: &Grant) -> Option<Instant> {
    let left = grant.expires_at?.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    Some(Instant::now() + left)
}

/// Room kept in a bus message for a call's headers (method, deadline, call id, identity).
const HEADER_ROOM: usize = 4096;

/// The largest frame whose payload fits a bus message of `max_payload` bytes with its call's
/// headers, never below the protocol's minimum.
fn bus_frame_limit(max_payload: usize) -> u32 {
    u32::try_from(max_payload.saturating_sub(HEADER_ROOM))
        .unwrap_or(u32::MAX)
        .max(MIN_MAX_FRAME_SIZE)
}
