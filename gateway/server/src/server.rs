//! The listeners: accepting connections (TCP, and WebSocket when `ws_listen` is set) under the
//! connection limits they share, and graceful shutdown.
//!
//! [`run`] serves until its shutdown token is cancelled, then drains from the front door
//! inward: it stops accepting (the listener is closed, so new connections are refused), marks
//! the gateway not ready, tells every session to send GOAWAY `shutting_down` and finish its calls,
//! waits for them up to `drain_timeout`, abandons the calls still running (answered
//! `unavailable`), and returns once the sessions have flushed and closed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gateway_bus::Bus;
use gateway_bus::switches::SwitchStore;
use gateway_protocol::GoawayReason;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin;
use crate::auth::AuthConfigError;
use crate::config::Config;
use crate::hub::{Hub, HubOptions};
use crate::limits::{ConnectionRate, Pace, UserConnections};
use crate::mailbox::signal;
use crate::metrics::{Metrics, Transport};
use crate::router::Registry;
use crate::session::CLOSE_GRACE;
use crate::state::{CallIds, Shared};
use crate::tls::Tls;
use crate::{switches, tcp, ws};

/// Connections being turned away at the connection limit at once; past it, further ones are
/// closed without a GOAWAY (a flood must not cost a task each).
const MAX_REJECTING: usize = 64;

/// After an accept error (out of file descriptors, typically), wait this long before accepting
/// again rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Connections an accept loop turns away a second ([`Pace`]); past it, it pauses. A flood then
/// waits in the kernel's accept queue (and past it, is dropped by the kernel) instead of taking
/// the gateway's time from the connections it serves.
const REFUSED_PER_SECOND: u32 = 500;
/// How many connections an accept loop turns away one after another when its pace allows: few,
/// so that the refusals come spread out (one every 2 ms) rather than in bursts that served
/// clients queue behind; enough (10 ms of the pace) that the timer's overshoot on each pause does
/// not slow the pace.
const REFUSED_AT_ONCE: u32 = 5;
/// While at least [`PACING_FROM_HANDSHAKES`] connections are in their handshake, an accept loop
/// lets in this many a second ([`Pace`]), and the connections it accepts meanwhile wait
/// in its lobby ([`Lobby`]). Clients that connect and say HELLO at once never hold that many
/// handshakes open, and are let in as fast as they come; a wave of connections that say nothing
/// (or say it slowly) is let in at this pace instead of all at once while the served clients
/// wait (docs/reliability.md, "Attacks").
const ADMITTED_PER_SECOND: u32 = 2_000;
/// How many connections a paced accept loop lets in one after another: few, so that the
/// connections let in, and 5 s later their handshake timeouts, come a few at a time rather than
/// in bursts of a hundred that served clients would queue behind; enough (2.5 ms of the pace)
/// that the timer's overshoot on each pause does not slow the pace.
const ADMITTED_AT_ONCE: u32 = 5;
/// How many connections in their handshake at once make an accept loop pace the new ones.
const PACING_FROM_HANDSHAKES: usize = 128;

/// The sockets a gateway listens on, bound before [`run`] so that a caller can bind port 0 and
/// learn the ports chosen.
#[derive(Debug)]
pub struct Listeners {
    /// Clients over TCP (`listen`).
    pub tcp: TcpListener,
    /// Clients over WebSocket (`ws_listen`), if any.
    pub websocket: Option<TcpListener>,
    /// The admin HTTP endpoints (`admin_listen`).
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds the addresses `config` names.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] naming the setting whose address cannot be bound.
    pub async fn bind(config: &Config) -> Result<Listeners, Error> {
        let bind = |key: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| Error::Bind { key, addr, source })
        };
        let tcp = bind("listen", config.listen).await?;
        let websocket = match config.ws_listen {
            Some(addr) => Some(bind("ws_listen", addr).await?),
            None => None,
        };
        let admin = bind("admin_listen", config.admin_listen).await?;
        Ok(Listeners { tcp, websocket, admin })
    }
}

/// Why the gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener's address cannot be bound.
    #[error("cannot listen on {addr} (`{key}`): {source}")]
    Bind { key: &'static str, addr: SocketAddr, source: std::io::Error },
    /// A listener handed to [`run`] is unusable.
    #[error("the {which} listener is unusable: {source}")]
    Listener { which: &'static str, source: std::io::Error },
    /// The authentication settings are unusable.
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The bus refused the subscriptions the gateway holds for `retain` topics.
    #[error("the bus refused a topic subscription: {0}")]
    Bus(gateway_core::Status),
}

/// Serves clients on the TCP and WebSocket listeners and the admin HTTP on the admin one, routing
/// calls of the services in `registry` over `bus`, until `shutdown` is cancelled; then shuts down
/// gracefully and returns.
/// Calls are checked against the operator `switches` first (a `MemorySwitches` with the
/// in-process bus, a `NatsSwitches` shared by every gateway on NATS); the admin endpoint sets
/// them.
///
/// # Errors
///
/// [`Error::Listener`] if a listener's address cannot be read. Failures of single connections
/// are logged and never end the gateway.
pub async fn run(
    config: Config,
    listeners: Listeners,
    bus: Arc<dyn Bus>,
    switches: Arc<dyn SwitchStore>,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let Listeners { tcp: listener, websocket, admin } = listeners;
    let local =
        listener.local_addr().map_err(|source| Error::Listener { which: "client", source })?;
    let admin_addr =
        admin.local_addr().map_err(|source| Error::Listener { which: "admin", source })?;
    let ws_addr = match &websocket {
        Some(ws) => {
            Some(ws.local_addr().map_err(|source| Error::Listener { which: "WebSocket", source })?)
        }
        None => None,
    };
    let auth = config.authenticator()?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(Tls::load(cert, key)?)),
        _ => None,
    };
    if config.auth.anonymous_roles.iter().any(|r| r == crate::auth::ROLE_ALL) {
        warn!("anonymous connections may do everything (anonymous_roles = all): development only");
    }
    let metrics = Arc::new(Metrics::new(&registry));
    let hub = Hub::new(bus.clone(), metrics.clone(), HubOptions::from(&config));
    if let Err(status) = hub.hold(registry.topics()).await {
        return Err(Error::Bus(status));
    }
    let users = UserConnections::new(config.max_connections_per_user);
    let rate = ConnectionRate::new(config.connection_rate, config.connection_burst);
    let auth_failures =
        ConnectionRate::new(u32::from(config.auth_failure_burst > 0), config.auth_failure_burst);
    let shared = Arc::new(Shared {
        config,
        registry,
        bus,
        switches,
        metrics: metrics.clone(),
        draining: shutdown.clone(),
        call_ids: CallIds::new(),
        hub,
        auth,
        users,
        rate,
        auth_failures,
        connections: Arc::default(),
        handshakes: Arc::default(),
        workers: tokio::runtime::Handle::current().metrics().num_workers(),
        tls: tls.clone(),
    });
    let admin_stop = CancellationToken::new();
    let switch_log = tokio::spawn(switches::log_changes(
        shared.switches.follow(),
        shared.config.server_id.clone(),
        admin_stop.clone(),
    ));
    let admin_task =
        tokio::spawn(admin::serve(admin, admin::Admin::new(&shared), admin_stop.clone()));
    let tls_watch = tls.map(|tls| tokio::spawn(tls.watch(admin_stop.clone())));
    let tls_on = shared.tls.is_some();
    match ws_addr {
        Some(ws) => {
            info!(listen = %local, websocket = %ws, admin = %admin_addr, tls = tls_on, "gateway listening")
        }
        None => info!(listen = %local, admin = %admin_addr, tls = tls_on, "gateway listening"),
    }
    metrics.set_ready(true);

    let sessions = TaskTracker::new();
    let front = Front {
        shared: shared.clone(),
        sessions: sessions.clone(),
        connections: Arc::new(Semaphore::new(shared.config.max_connections)),
        rejecting: Arc::new(Semaphore::new(MAX_REJECTING)),
    };
    // The accept loops are tasks of the runtime, not part of this future: a caller that
    // `block_on`s `run` would otherwise accept on its own thread, which competes with the
    // workers for the cores (on one core, served clients waited for the OS to switch threads:
    // milliseconds under a connection flood, docs/reliability.md, "Attacks").
    let accept = |listener, transport| {
        let (front, shutdown) = (front.clone(), shutdown.clone());
        tokio::spawn(async move { front.accept(listener, transport, &shutdown).await })
    };
    let tcp_loop = accept(listener, Transport::Tcp);
    let ws_loop = websocket.map(|ws| accept(ws, Transport::WebSocket));
    let _ = tcp_loop.await;
    if let Some(ws_loop) = ws_loop {
        let _ = ws_loop.await;
    }

    metrics.set_ready(false);
    sessions.close();
    let drain_timeout = shared.config.drain_timeout;
    info!(sessions = sessions.len(), ?drain_timeout, "draining");
    // `shutdown` is cancelled: a session listed from now on sees it when it starts.
    shared.connections.signal_all(signal::DRAIN);
    if tokio::time::timeout(drain_timeout, sessions.wait()).await.is_err() {
        warn!(sessions = sessions.len(), "drain timeout passed; abandoning the calls left");
        shared.connections.signal_all(signal::ABANDON);
        let _ = tokio::time::timeout(CLOSE_GRACE * 2, sessions.wait()).await;
    }
    shared.hub.close();
    admin_stop.cancel();
    let _ = admin_task.await;
    if let Some(watch) = tls_watch {
        let _ = watch.await;
    }
    let _ = switch_log.await;
    info!("gateway stopped");
    Ok(())
}

/// What the accept loops share: the connection limits.
#[derive(Clone)]
struct Front {
    shared: Arc<Shared>,
    sessions: TaskTracker,
    /// `max_connections`, over both transports.
    connections: Arc<Semaphore>,
    /// Connections being turned away at once ([`MAX_REJECTING`]).
    rejecting: Arc<Semaphore>,
}

impl Front {
    /// Accepts connections on `listener` until `shutdown`; the listener is dropped (closed) on
    /// return, and with it the connections still in the lobby.
    ///
    /// The loop accepts as fast as the kernel hands connections over, so that a wave of them
    /// never overflows the kernel's accept queue: past it, the kernel drops their SYNs and each
    /// comes back a second later, then three, then seven, thousands at once, costing far more
    /// than an accept (docs/reliability.md, "Attacks"). While a wave is in its handshake, the
    /// connections it accepts wait in the [`Lobby`] and are let in at [`ADMITTED_PER_SECOND`].
    async fn accept(
        &self,
        listener: TcpListener,
        transport: Transport,
        shutdown: &CancellationToken,
    ) {
        let shared = &self.shared;
        let start = std::time::Instant::now();
        let mut refusals = Pace::new(REFUSED_PER_SECOND, REFUSED_AT_ONCE, start);
        let mut admissions = Pace::new(ADMITTED_PER_SECOND, ADMITTED_AT_ONCE, start);
        let mut lobby = Lobby::new(shared.metrics.clone());
        loop {
            // One connection per turn: the tasks of the connections being served run between
            // two accepts. Without it, a backlog of thousands (a flood, a wave of idle
            // connections) is accepted in bursts of up to tokio's budget of 128 operations,
            // milliseconds during which served clients wait (docs/reliability.md, "Attacks").
            tokio::task::yield_now().await;
            let now = std::time::Instant::now();
            let admission = self.admission_pause(&admissions, now);
            if admission.is_none() {
                if let Some(waiting) = lobby.pop() {
                    admissions.count(now);
                    self.serve(waiting, transport);
                    continue;
                }
            }
            let refusal = refusals.pause(now);
            let accepted = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                () = tokio::time::sleep(admission.unwrap_or_default()),
                    if admission.is_some() && !lobby.is_empty() => continue,
                () = tokio::time::sleep(refusal.unwrap_or_default()), if refusal.is_some() => continue,
                accepted = listener.accept(), if refusal.is_none() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(cause = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            if !shared.rate.admit(peer.ip(), std::time::Instant::now()) {
                shared.metrics.connection_rejected();
                self.reject(stream, peer, transport, "too many new connections from this address");
                refusals.count(std::time::Instant::now());
                continue;
            }
            if !shared.auth_failures.allows(peer.ip(), std::time::Instant::now()) {
                shared.metrics.connection_rejected();
                let why = "too many failed authentications from this address; wait a second";
                self.reject(stream, peer, transport, why);
                refusals.count(std::time::Instant::now());
                continue;
            }
            match self.connections.clone().try_acquire_owned() {
                Ok(permit) => {
                    let waiting = Waiting { stream, peer, permit };
                    let now = std::time::Instant::now();
                    if lobby.is_empty() && self.admission_pause(&admissions, now).is_none() {
                        admissions.count(now);
                        self.serve(waiting, transport);
                    } else {
                        lobby.push(waiting);
                    }
                }
                Err(_) => {
                    shared.metrics.connection_rejected();
                    self.reject(stream, peer, transport, "the gateway is at its connection limit");
                    refusals.count(std::time::Instant::now());
                }
            }
        }
    }

    /// How long before the next connection may be let in at `now`: none unless a wave of
    /// handshakes is being paced and the pace has no token left.
    fn admission_pause(&self, admissions: &Pace, now: std::time::Instant) -> Option<Duration> {
        if self.shared.handshakes.pending() < PACING_FROM_HANDSHAKES {
            return None;
        }
        admissions.pause(now)
    }

    /// Serves a connection let in, in a task of its own; its handshake (and the handshake
    /// timeout) starts now.
    fn serve(&self, waiting: Waiting, transport: Transport) {
        let Waiting { stream, peer, permit } = waiting;
        let handshaking = self.shared.handshakes.start();
        let shared = self.shared.clone();
        match transport {
            Transport::Tcp => {
                self.sessions.spawn(tcp::serve(stream, peer, shared, permit, handshaking));
            }
            Transport::WebSocket => {
                self.sessions.spawn(ws::serve(stream, peer, shared, permit, handshaking));
            }
        }
    }

    /// Turns a connection away with GOAWAY `too_many_connections`, in a task of its own, unless
    /// [`MAX_REJECTING`] are being turned away already (then it is just closed).
    /// Under TLS the connection is closed without a word: a GOAWAY would cost a handshake, which
    /// a flood must not get.
    fn reject(&self, stream: TcpStream, peer: SocketAddr, transport: Transport, why: &'static str) {
        if self.shared.tls.is_some() {
            return;
        }
        let Ok(permit) = self.rejecting.clone().try_acquire_owned() else { return };
        self.shared.metrics.goaway_sent(GoawayReason::TOO_MANY_CONNECTIONS);
        match transport {
            Transport::Tcp => {
                tokio::spawn(async move {
                    tcp::reject(stream, peer, why).await;
                    drop(permit);
                });
            }
            Transport::WebSocket => {
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    ws::reject(stream, peer, &shared, why).await;
                    drop(permit);
                });
            }
        }
    }
}

/// A connection accepted and not yet let in: its place under `max_connections` is taken.
struct Waiting {
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
}

/// The connections an accept loop has taken from the kernel while a wave of handshakes is let in
/// at the pace, oldest first. They cost a file descriptor and a few bytes each, and no task: what
/// they send waits in the kernel until their turn, when their handshake timeout starts. Counted
/// in `gateway_connections_waiting` and `gateway_connections_waited_total`. Dropped (closed) when
/// the accept loop ends.
struct Lobby {
    waiting: VecDeque<Waiting>,
    metrics: Arc<Metrics>,
}

impl Lobby {
    fn new(metrics: Arc<Metrics>) -> Lobby {
        Lobby { waiting: VecDeque::new(), metrics }
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn push(&mut self, waiting: Waiting) {
        self.metrics.connection_waits();
        self.waiting.push_back(waiting);
    }

    fn pop(&mut self) -> Option<Waiting> {
        let waiting = self.waiting.pop_front()?;
        self.metrics.connections_done_waiting(1);
        Some(waiting)
    }
}

impl Drop for Lobby {
    fn drop(&mut self) {
        self.metrics.connections_done_waiting(self.waiting.len());
    }
}
