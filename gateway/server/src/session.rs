//! One client connection, from HELLO to close (`docs/protocol.md` is normative), over either
//! transport: the session reads decoded frames from an [`Inbound`] (TCP: `FrameCodec` on the
//! byte stream; WebSocket: one frame per binary message, `crate::ws`) and its writer sends them
//! through the matching [`Outbound`](crate::send_queue::Outbound).
//!
//! The session's own task reads: it waits for HELLO, answers WELCOME, then decodes frames and
//! starts each REQUEST as a task of its own ([`crate::call`]), so calls run side by side and are
//! answered in whatever order they finish. A writer task drains the connection's
//! [`SendQueue`]. The reader never waits for a call; it waits for the queue only when the client
//! stops reading its replies (see [`crate::send_queue`]).
//!
//! How a session ends:
//! - the client closes or sends GOAWAY: its calls are cancelled (the services are told), nothing
//!   more is sent;
//! - the client breaks the protocol, or idles past `idle_timeout`: GOAWAY with the reason, calls
//!   cancelled, close;
//! - the gateway drains: GOAWAY `shutting_down` naming the last request it will answer, the calls
//!   in flight finish (CANCELs are still honoured, new REQUESTs are not started), close. If the
//!   drain bound passes first, the calls left are cancelled and answered `unavailable`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use gateway_core::Status;
use gateway_protocol::{
    Auth, ErrorReply, Frame, FrameCodec, Goaway, GoawayReason, Hello, MIN_MAX_FRAME_SIZE, Request,
    VERSION, Welcome,
};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep_until};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

pub(crate) mod inbound;
mod pubsub;

pub(crate) use inbound::{Inbound, ReadError, TcpInbound};

use crate::auth::{AuthError, AuthErrorKind, Grant, Permissions};
use crate::call::{self, Call};
use crate::hub::HubSubscription;
use crate::limits::UserSlot;
use crate::metrics::Shed;
use crate::send_queue::{SendQueue, TcpOutbound, write_frames};
use crate::server::Shared;
use crate::switches::SwitchView;

/// How long a closing connection may take to flush its last frames, and then to let the client
/// read them before the socket is dropped. Closing a socket with unread input makes the kernel
/// send a reset, which can destroy the GOAWAY before the client reads it; reading until the
/// client's EOF (bounded by this) avoids that.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What one connection shares between its reader, its call tasks and its writer.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) shared: Arc<Shared>,
    pub(crate) queue: SendQueue,
    /// Cancellation of each call in flight that wants a reply, by request id. A std mutex:
    /// held only to insert, remove or look up, never across an `.await`.
    calls: Mutex<HashMap<u32, CancellationToken>>,
    /// The connection's share of in-flight calls (`max_in_flight_per_connection`).
    in_flight: Arc<Semaphore>,
    /// Cancelled when the connection's calls must stop: the client went away, broke the
    /// protocol, or the drain bound passed. Every call's token is a child of it.
    stop: CancellationToken,
    /// Set before `stop` is cancelled when the gateway gives up on the calls (drain bound) rather
    /// than the client: those calls are still answered, with `unavailable`.
    abandoned: AtomicBool,
    /// The call tasks.
    tasks: TaskTracker,
    /// The connection's topic subscriptions, by id. A std mutex, never held across an `.await`
    /// nor while calling into the hub.
    subscriptions: Mutex<HashMap<u32, HubSubscription>>,
    /// Cancelled by the hub when the client fell behind a topic whose lag policy is to
    /// disconnect it.
    slow: CancellationToken,
    /// Who the client is and what it may do: set by the handshake, replaced by AUTH. Read on
    /// every request (a read lock and an `Arc` clone), written rarely.
    grant: RwLock<Arc<Grant>>,
}

impl Connection {
    /// Forgets call `request_id`: its answer is about to be sent, so from now on a CANCEL for it
    /// is ignored and the client may reuse the id.
    pub(crate) fn finish_call(&self, request_id: u32) {
        self.calls.lock().expect("calls lock").remove(&request_id);
    }

    /// Whether the connection's calls were stopped all together (rather than one by a CANCEL).
    pub(crate) fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Whether a stopped call is answered: yes when the gateway abandoned it, no when the
    /// client went away or the connection broke.
    pub(crate) fn answers_stopped_calls(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// The connection's current credentials and permissions.
    pub(crate) fn grant(&self) -> Arc<Grant> {
        self.grant.read().expect("grant lock").clone()
    }

    fn calls_in_flight(&self) -> usize {
        let max = self.shared.config.max_in_flight_per_connection as usize;
        max - self.in_flight.available_permits()
    }
}

/// Why the reading loop stopped.
enum End {
    /// The client closed the connection, sent GOAWAY, or the socket failed.
    ClientGone,
    /// The gateway closes the connection with this GOAWAY, abandoning the calls in flight.
    Close(Goaway),
    /// The gateway is draining.
    Drain,
}

/// Serves one accepted TCP connection until it closes. `_permit` is the connection's place under
/// `max_connections`, released when this returns.
pub(crate) async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    // Replies are small and latency matters more than packet count: coalescing is done by the
    // send queue, not by Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    // Until the client is authenticated it may send only HELLO, which the protocol bounds to
    // MIN_MAX_FRAME_SIZE: reading it under `max_frame_size` would let anyone make the gateway
    // buffer that much per connection without a token.
    let inbound = TcpInbound(FramedRead::new(read_half, FrameCodec::new(MIN_MAX_FRAME_SIZE)));
    let handshake_deadline = Instant::now() + shared.config.handshake_timeout;
    serve(inbound, TcpOutbound(write_half), peer, shared, permit, handshake_deadline).await;
}

/// Serves one connection, whatever its transport, until it closes: HELLO must arrive by
/// `handshake_deadline`, and the reader must start under [`MIN_MAX_FRAME_SIZE`]. `_permit` is
/// the connection's place under `max_connections`, released when this returns.
pub(crate) async fn serve<I: Inbound>(
    mut reader: I,
    outbound: I::Outbound,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
    handshake_deadline: Instant,
) {
    shared.metrics.connection_opened(I::TRANSPORT);
    let max_frame_size = shared.config.max_frame_size;
    let conn = Arc::new(Connection {
        queue: SendQueue::new(
            shared.config.send_queue_bytes,
            MIN_MAX_FRAME_SIZE,
            shared.metrics.clone(),
        ),
        calls: Mutex::new(HashMap::new()),
        in_flight: Arc::new(Semaphore::new(shared.config.max_in_flight_per_connection as usize)),
        stop: CancellationToken::new(),
        abandoned: AtomicBool::new(false),
        tasks: TaskTracker::new(),
        subscriptions: Mutex::new(HashMap::new()),
        slow: CancellationToken::new(),
        // Nothing is allowed until the handshake authenticates the client.
        grant: RwLock::new(Arc::new(Grant {
            identity: None,
            permissions: Arc::new(Permissions::default()),
            expires_at: None,
        })),
        shared,
    });
    let writer = {
        let conn = conn.clone();
        tokio::spawn(async move {
            let (written, outbound) = write_frames(&conn.queue, outbound).await;
            if let Err(e) = written {
                debug!(cause = %e, "writing to the client failed");
            }
            outbound
        })
    };

    let end = match handshake(&mut reader, &conn, handshake_deadline).await {
        Ok((hello, _user)) => {
            reader.set_max_frame_size(max_frame_size);
            let grant = conn.grant();
            let who = grant.subject().unwrap_or("anonymous");
            debug!(%peer, client = %hello.client_name, %who, "session open");
            let switches = SwitchView::new(conn.shared.switches.follow());
            let mut session = Session { conn: conn.clone(), last_request_id: 0, switches };
            let end = session.read(&mut reader).await;
            match end {
                End::Drain => session.drain(&mut reader).await,
                end => end,
            }
        }
        Err(end) => end,
    };
    conn.unsubscribe_all();
    let client_left = match end {
        End::ClientGone => {
            conn.stop.cancel();
            conn.queue.close();
            true
        }
        // The client may still be sending (requests after our GOAWAY, which are not started).
        End::Drain => {
            conn.stop.cancel();
            conn.queue.set_farewell(GoawayReason::SHUTTING_DOWN, SHUTTING_DOWN);
            conn.queue.close();
            false
        }
        End::Close(goaway) => {
            info!(%peer, reason = %goaway.reason, message = %goaway.message, "closing connection");
            conn.shared.metrics.goaway_sent(goaway.reason);
            conn.stop.cancel();
            conn.queue.set_farewell(goaway.reason, &goaway.message);
            // GOAWAY is the last frame: queued and the queue closed at once, so that no reply of
            // a call stopping meanwhile slips in after it.
            let _ = conn.queue.finish(&Frame::Goaway(goaway));
            false
        }
    };
    conn.tasks.close();
    let closing = async {
        conn.tasks.wait().await;
        let outbound = writer.await.ok();
        reader.linger(outbound, client_left).await;
    };
    if tokio::time::timeout(CLOSE_GRACE, closing).await.is_err() {
        debug!(%peer, "connection did not close in time; dropping it");
    }
    conn.shared.metrics.connection_closed(I::TRANSPORT);
}

/// The message of the GOAWAY `shutting_down` a draining gateway sends.
const SHUTTING_DOWN: &str = "the gateway is shutting down";

/// Waits for HELLO, authenticates it and answers WELCOME, or says how the connection ends. The
/// slot returned holds the connection's place under its user's connection limit.
async fn handshake<I: Inbound>(
    reader: &mut I,
    conn: &Connection,
    deadline: Instant,
) -> Result<(Hello, Option<UserSlot>), End> {
    let shared = &conn.shared;
    let first = tokio::select! {
        biased;
        _ = shared.draining.cancelled() => {
            return Err(close(GoawayReason::SHUTTING_DOWN, SHUTTING_DOWN));
        }
        first = tokio::time::timeout_at(deadline, reader.next()) => first,
    };
    let hello = match first {
        Err(_) => {
            return Err(close(
                GoawayReason::HANDSHAKE_TIMEOUT,
                "no HELLO within the handshake timeout",
            ));
        }
        Ok(None) | Ok(Some(Err(ReadError::Gone))) => return Err(End::ClientGone),
        Ok(Some(Err(ReadError::Close(goaway)))) => return Err(End::Close(goaway)),
        Ok(Some(Ok(Frame::Hello(hello)))) => hello,
        Ok(Some(Ok(other))) => {
            let what = format!("expected HELLO, got {}", other.frame_type().name());
            return Err(close(GoawayReason::PROTOCOL_ERROR, what));
        }
    };
    if hello.version < VERSION {
        let what = format!(
            "version {} is not spoken here; this server speaks version {VERSION}",
            hello.version
        );
        return Err(close(GoawayReason::UNSUPPORTED_VERSION, what));
    }
    if hello.max_frame_size < MIN_MAX_FRAME_SIZE {
        let what = format!("max_frame_size {} is below {MIN_MAX_FRAME_SIZE}", hello.max_frame_size);
        return Err(close(GoawayReason::PROTOCOL_ERROR, what));
    }
    conn.queue.set_peer_max_frame_size(hello.max_frame_size);
    let now = SystemTime::now();
    let grant = match shared.auth.authenticate(&hello.token, now) {
        Ok(grant) => grant,
        Err(e) => return Err(refused(conn, &e)),
    };
    let user = match grant.subject() {
        Some(subject) => match shared.users.take(subject) {
            Some(slot) => Some(slot),
            None => {
                let what = format!("too many connections for user `{subject}`");
                return Err(close(GoawayReason::TOO_MANY_CONNECTIONS, what));
            }
        },
        None => None,
    };
    let auth_expires_in_ms = grant.expires_in_ms(now);
    *conn.grant.write().expect("grant lock") = Arc::new(grant);
    let welcome = Frame::Welcome(Welcome {
        version: VERSION,
        max_frame_size: shared.config.max_frame_size,
        max_in_flight: shared.config.max_in_flight_per_connection,
        idle_timeout_ms: shared.config.idle_timeout_ms(),
        server_id: shared.config.server_id.clone(),
        auth_expires_in_ms,
    });
    conn.queue.push(&welcome).await.map_err(|_| End::ClientGone)?;
    Ok((hello, user))
}

/// A HELLO whose credentials were refused: GOAWAY `unauthenticated`, saying why.
fn refused(conn: &Connection, e: &AuthError) -> End {
    conn.shared.metrics.auth_failed(e.kind);
    info!(reason = e.kind.name(), message = %e.message, "authentication refused");
    close(GoawayReason::UNAUTHENTICATED, e.message.clone())
}

/// When `grant` expires, on the session's clock.
fn expiry(grant: &Grant) -> Option<Instant> {
    let left = grant.expires_at?.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    Some(Instant::now() + left)
}

fn close(reason: GoawayReason, message: impl Into<String>) -> End {
    End::Close(Goaway::new(reason, message))
}

fn slow_consumer() -> End {
    close(GoawayReason::SLOW_CONSUMER, "the client did not read its events fast enough")
}

/// The reading side of an open session.
struct Session {
    conn: Arc<Connection>,
    /// The id of the last REQUEST taken (answered at once or started), which a drain's GOAWAY
    /// names. Fire-and-forget requests count: they were processed, so a client must not resend
    /// them.
    last_request_id: u32,
    /// The operator switches, as of the last request.
    switches: SwitchView,
}

impl Session {
    /// Reads frames until the connection must end.
    async fn read<I: Inbound>(&mut self, reader: &mut I) -> End {
        let shared = self.conn.shared.clone();
        let idle = shared.config.idle_timeout;
        // One timer for the session, re-armed only when it fires: receiving a frame just notes
        // the time, which keeps the per-frame cost to reading the clock.
        let mut last_frame = Instant::now();
        let idle_timer = sleep_until(last_frame + idle);
        tokio::pin!(idle_timer);
        let draining = shared.draining.cancelled();
        tokio::pin!(draining);
        // The credentials' expiry: reset by every accepted AUTH.
        let mut expires = expiry(&self.conn.grant());
        let expiry_timer = sleep_until(expires.unwrap_or(last_frame));
        tokio::pin!(expiry_timer);
        loop {
            let frame = tokio::select! {
                biased;
                _ = &mut draining => return End::Drain,
                _ = self.conn.slow.cancelled() => return slow_consumer(),
                _ = &mut expiry_timer, if expires.is_some() => {
                    return close(GoawayReason::TOKEN_EXPIRED, "the token expired; reconnect with a fresh one");
                }
                frame = reader.next() => frame,
                _ = &mut idle_timer, if !idle.is_zero() => {
                    let now = Instant::now();
                    if now < last_frame + idle {
                        idle_timer.as_mut().reset(last_frame + idle);
                    } else if self.conn.calls_in_flight() > 0 {
                        // Only a connection with nothing in flight is idle; with calls running,
                        // the clock starts again (so it closes within twice the timeout of
                        // going quiet).
                        idle_timer.as_mut().reset(now + idle);
                    } else {
                        return close(GoawayReason::IDLE_TIMEOUT, "the connection was idle");
                    }
                    continue;
                }
            };
            last_frame = Instant::now();
            let frame = match frame {
                None | Some(Err(ReadError::Gone)) => return End::ClientGone,
                Some(Err(ReadError::Close(goaway))) => return End::Close(goaway),
                Some(Ok(frame)) => frame,
            };
            match frame {
                Frame::Request(request) => {
                    if let Err(end) = self.request(request).await {
                        return end;
                    }
                }
                Frame::Cancel { request_id } => self.cancel(request_id),
                Frame::Ping { data } => {
                    if self.conn.queue.push(&Frame::Pong { data }).await.is_err() {
                        return End::ClientGone;
                    }
                }
                Frame::Pong { .. } => {}
                // A client's GOAWAY: it is leaving, and its calls are cancelled.
                Frame::Goaway(_) => return End::ClientGone,
                Frame::Hello(_) => return close(GoawayReason::PROTOCOL_ERROR, "a second HELLO"),
                Frame::Subscribe(subscribe) => {
                    if let Err(end) = self.subscribe(subscribe).await {
                        return end;
                    }
                }
                Frame::Unsubscribe { subscription_id } => self.unsubscribe(subscription_id),
                Frame::Publish(publish) => {
                    if let Err(end) = self.publish(publish).await {
                        return end;
                    }
                }
                Frame::Auth(auth) => match self.refresh(auth).await {
                    Ok(Some(grant)) => {
                        expires = expiry(&grant);
                        if let Some(at) = expires {
                            expiry_timer.as_mut().reset(at);
                        }
                    }
                    Ok(None) => {}
                    Err(end) => return end,
                },
                other @ (Frame::Welcome(_)
                | Frame::Response(_)
                | Frame::Error(_)
                | Frame::Subscribed { .. }
                | Frame::Event(_)
                | Frame::Missed { .. }
                | Frame::SubscriptionEnded(_)
                | Frame::AuthOk { .. }) => {
                    let what = format!("{} goes from server to client", other.frame_type().name());
                    return close(GoawayReason::PROTOCOL_ERROR, what);
                }
            }
        }
    }

    /// Takes one REQUEST: refuses it at once (unknown method, not permitted, stopped by an
    /// operator switch, over a bound) or starts its call.
    async fn request(&mut self, request: Request) -> Result<(), End> {
        let conn = &self.conn;
        let shared = &conn.shared;
        let id = request.request_id;
        if id == 0 {
            return Err(close(GoawayReason::PROTOCOL_ERROR, "request id 0"));
        }
        let wants_reply = !request.fire_and_forget;
        if wants_reply && conn.calls.lock().expect("calls lock").contains_key(&id) {
            return Err(close(
                GoawayReason::PROTOCOL_ERROR,
                format!("request id {id} is in flight"),
            ));
        }
        self.last_request_id = id;
        let Some(route) = shared.registry.route(request.method_id) else {
            shared.metrics.unknown_method();
            let message = format!("unknown method id {:#010x}", request.method_id);
            return self.refuse(&request, Status::unimplemented(message)).await;
        };
        if !conn.grant().permissions.may_call(route.method) {
            shared.metrics.call_refused(route.index, gateway_core::Code::PermissionDenied);
            let message = format!("not allowed to call {}", route.method.name);
            return self.refuse(&request, Status::permission_denied(message)).await;
        }
        // After the permission check, so that a client learns nothing of a service it may not
        // call; before taking in-flight places, which a refused call does not need.
        if let Err((refusal, status)) = self.switches.check(route) {
            shared.metrics.switch_refused(route.index, refusal, status.code());
            return self.refuse(&request, status).await;
        }
        let permits = match self.permits() {
            Ok(permits) => permits,
            Err(bound) => {
                shared.metrics.shed(bound);
                shared.metrics.call_refused(route.index, gateway_core::Code::ResourceExhausted);
                let message = match bound {
                    Shed::Connection => "too many requests in flight on this connection",
                    Shed::Global => "the gateway has too many requests in flight",
                };
                return self.refuse(&request, Status::resource_exhausted(message)).await;
            }
        };
        let timeout = match request.timeout_ms {
            0 => shared.config.default_timeout,
            ms => Duration::from_millis(u64::from(ms)),
        }
        .min(shared.config.max_timeout);
        let cancel = conn.stop.child_token();
        if wants_reply {
            conn.calls.lock().expect("calls lock").insert(id, cancel.clone());
        }
        let call = Call {
            conn: conn.clone(),
            route: route.index,
            request_id: id,
            fire_and_forget: request.fire_and_forget,
            payload: request.payload,
            timeout,
            cancel,
            received: std::time::Instant::now(),
            permits: Some(permits),
        };
        shared.metrics.call_started();
        // Boxed: the call's future is large, and spawning moves it several times before it
        // reaches the task's cell; a box moves as a pointer.
        conn.tasks.spawn(Box::pin(call::run(call)));
        Ok(())
    }

    /// A place under both in-flight caps, or the bound that is full.
    fn permits(&self) -> Result<[OwnedSemaphorePermit; 2], Shed> {
        let mine = self.conn.in_flight.clone().try_acquire_owned().map_err(|_| Shed::Connection)?;
        let global = self
            .conn
            .shared
            .in_flight_total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Shed::Global)?;
        Ok([mine, global])
    }

    /// Answers `request` at once with `status`, unless it is fire-and-forget (those are dropped
    /// silently, as the protocol says).
    async fn refuse(&self, request: &Request, status: Status) -> Result<(), End> {
        if request.fire_and_forget {
            return Ok(());
        }
        let frame = Frame::Error(ErrorReply {
            request_id: request.request_id,
            status,
            details: bytes::Bytes::new(),
        });
        self.conn.queue.push(&frame).await.map_err(|_| End::ClientGone)
    }

    /// Takes an AUTH: a fresh token for the same subject replaces the connection's grant
    /// (subscriptions it no longer allows end) and is answered AUTH_OK; a refused one is answered
    /// ERROR `unauthenticated` and changes nothing. Returns the new grant.
    async fn refresh(&mut self, auth: Auth) -> Result<Option<Arc<Grant>>, End> {
        let conn = self.conn.clone();
        let id = auth.request_id;
        if id == 0 || conn.calls.lock().expect("calls lock").contains_key(&id) {
            let what = format!("AUTH with request id {id}, which is 0 or in flight");
            return Err(close(GoawayReason::PROTOCOL_ERROR, what));
        }
        self.last_request_id = id;
        let now = SystemTime::now();
        let old = conn.grant();
        let checked = conn.shared.auth.authenticate(&auth.token, now).and_then(|grant| {
            if grant.subject().is_some() && grant.subject() == old.subject() {
                Ok(grant)
            } else {
                Err(AuthError {
                    kind: AuthErrorKind::SubjectChanged,
                    message: format!(
                        "a refresh must be for the connection's subject `{}`",
                        old.subject().unwrap_or("(anonymous)")
                    ),
                })
            }
        });
        let grant = match checked {
            Ok(grant) => Arc::new(grant),
            Err(e) => {
                conn.shared.metrics.auth_failed(e.kind);
                info!(reason = e.kind.name(), message = %e.message, "token refresh refused");
                let frame = Frame::Error(ErrorReply {
                    request_id: id,
                    status: e.to_status(),
                    details: bytes::Bytes::new(),
                });
                conn.queue.push(&frame).await.map_err(|_| End::ClientGone)?;
                return Ok(None);
            }
        };
        *conn.grant.write().expect("grant lock") = grant.clone();
        conn.end_forbidden_subscriptions(&grant.permissions);
        let frame = Frame::AuthOk { request_id: id, expires_in_ms: grant.expires_in_ms(now) };
        conn.queue.push(&frame).await.map_err(|_| End::ClientGone)?;
        Ok(Some(grant))
    }

    fn cancel(&self, request_id: u32) {
        // An id not in flight: the answer crossed the CANCEL on the wire; ignored.
        if let Some(call) = self.conn.calls.lock().expect("calls lock").get(&request_id) {
            call.cancel();
        }
    }

    /// Drains the session: GOAWAY `shutting_down`, then waits for the calls in flight (still
    /// honouring CANCEL) until they are done, the client leaves, or the drain bound passes.
    async fn drain<I: Inbound>(&self, reader: &mut I) -> End {
        let conn = &self.conn;
        let goaway = Frame::Goaway(Goaway {
            last_request_id: self.last_request_id,
            ..Goaway::new(GoawayReason::SHUTTING_DOWN, SHUTTING_DOWN)
        });
        conn.shared.metrics.goaway_sent(GoawayReason::SHUTTING_DOWN);
        if conn.queue.push(&goaway).await.is_err() {
            return End::ClientGone;
        }
        conn.tasks.close();
        loop {
            tokio::select! {
                biased;
                _ = conn.tasks.wait() => return End::Drain,
                _ = conn.slow.cancelled() => return slow_consumer(),
                _ = conn.shared.abandon.cancelled() => {
                    conn.abandoned.store(true, Ordering::Release);
                    conn.stop.cancel();
                    conn.tasks.wait().await;
                    return End::Drain;
                }
                frame = reader.next() => match frame {
                    None | Some(Err(_)) | Some(Ok(Frame::Goaway(_))) => return End::ClientGone,
                    Some(Ok(Frame::Cancel { request_id })) => self.cancel(request_id),
                    Some(Ok(Frame::Unsubscribe { subscription_id })) => {
                        self.unsubscribe(subscription_id);
                    }
                    // After GOAWAY no new work starts and nothing but replies is sent (so no
                    // PONG): the client knows from `last_request_id` what to send elsewhere.
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}
