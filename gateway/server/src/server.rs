//! The listener: accepting connections under the connection limit, and graceful shutdown.
//!
//! [`run`] serves until its shutdown token is cancelled, then drains from the front door
//! inward: it stops accepting (the listener is closed, so new connections are refused), marks
//! the gateway not ready, tells every session to send GOAWAY `shutting_down` and finish its calls,
//! waits for them up to `drain_timeout`, abandons the calls still running (answered
//! `unavailable`), and returns once the sessions have flushed and closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gateway_bus::Bus;
use gateway_bus::switches::SwitchStore;
use gateway_protocol::{Frame, Goaway, GoawayReason, MIN_MAX_FRAME_SIZE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin;
use crate::auth::{AuthConfigError, Authenticator};
use crate::call::CallIds;
use crate::config::Config;
use crate::hub::Hub;
use crate::limits::{ConnectionRate, UserConnections};
use crate::metrics::Metrics;
use crate::router::Registry;
use crate::session::{self, CLOSE_GRACE};
use crate::switches;

/// Connections being turned away at the connection limit at once; past it, further ones are
/// closed without a GOAWAY (a flood must not cost a task each).
const MAX_REJECTING: usize = 64;

/// After an accept error (out of file descriptors, typically), wait this long before accepting
/// again rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why the gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener handed to [`run`] is unusable.
    #[error("the {which} listener is unusable: {source}")]
    Listener { which: &'static str, source: std::io::Error },
    /// The authentication settings are unusable.
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    /// The bus refused the subscriptions the gateway holds for `retain` topics.
    #[error("the bus refused a topic subscription: {0}")]
    Bus(gateway_core::Status),
}

/// What every session of one gateway shares. Built once by [`run`]; read-only but for atomics.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) bus: Arc<dyn Bus>,
    /// The operator switches, which every call is checked against (`crate::switches`).
    pub(crate) switches: Arc<dyn SwitchStore>,
    pub(crate) metrics: Arc<Metrics>,
    /// The global in-flight cap (`max_in_flight_total`).
    pub(crate) in_flight_total: Arc<Semaphore>,
    /// Cancelled when the graceful shutdown starts: sessions send GOAWAY and drain.
    pub(crate) draining: CancellationToken,
    /// Cancelled when `drain_timeout` has passed: sessions abandon their calls.
    pub(crate) abandon: CancellationToken,
    pub(crate) call_ids: CallIds,
    pub(crate) hub: Arc<Hub>,
    pub(crate) auth: Authenticator,
    pub(crate) users: Arc<UserConnections>,
    pub(crate) rate: ConnectionRate,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Serves clients on `listener` and the admin HTTP on `admin`, routing calls of the services in
/// `registry` over `bus`, until `shutdown` is cancelled; then shuts down gracefully and returns.
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
    listener: TcpListener,
    admin: TcpListener,
    bus: Arc<dyn Bus>,
    switches: Arc<dyn SwitchStore>,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let local =
        listener.local_addr().map_err(|source| Error::Listener { which: "client", source })?;
    let admin_addr =
        admin.local_addr().map_err(|source| Error::Listener { which: "admin", source })?;
    let auth = Authenticator::new(&config.auth)?;
    if config.auth.anonymous_roles.iter().any(|r| r == crate::auth::ROLE_ALL) {
        warn!("anonymous connections may do everything (anonymous_roles = all): development only");
    }
    let metrics = Arc::new(Metrics::new(&registry));
    let hub = Hub::new(bus.clone(), metrics.clone(), config.topic_linger, config.retain_max_keys);
    if let Err(status) = hub.hold_retained(registry.topics()).await {
        return Err(Error::Bus(status));
    }
    let users = UserConnections::new(config.max_connections_per_user);
    let rate = ConnectionRate::new(config.connection_rate, config.connection_burst);
    let shared = Arc::new(Shared {
        in_flight_total: Arc::new(Semaphore::new(config.max_in_flight_total)),
        config,
        registry,
        bus,
        switches,
        metrics: metrics.clone(),
        draining: shutdown.clone(),
        abandon: CancellationToken::new(),
        call_ids: CallIds::new(),
        hub,
        auth,
        users,
        rate,
    });
    let admin_stop = CancellationToken::new();
    let switch_log = tokio::spawn(switches::log_changes(
        shared.switches.follow(),
        shared.config.server_id.clone(),
        admin_stop.clone(),
    ));
    let admin_task =
        tokio::spawn(admin::serve(admin, admin::Admin::new(&shared), admin_stop.clone()));
    info!(listen = %local, admin = %admin_addr, "gateway listening");
    metrics.set_ready(true);

    let sessions = TaskTracker::new();
    accept(listener, &shared, &sessions, &shutdown).await;

    metrics.set_ready(false);
    sessions.close();
    let drain_timeout = shared.config.drain_timeout;
    info!(sessions = sessions.len(), ?drain_timeout, "draining");
    if tokio::time::timeout(drain_timeout, sessions.wait()).await.is_err() {
        warn!(sessions = sessions.len(), "drain timeout passed; abandoning the calls left");
        shared.abandon.cancel();
        let _ = tokio::time::timeout(CLOSE_GRACE * 2, sessions.wait()).await;
    }
    shared.hub.close();
    admin_stop.cancel();
    let _ = admin_task.await;
    let _ = switch_log.await;
    info!("gateway stopped");
    Ok(())
}

/// Accepts connections until `shutdown`; the listener is dropped (closed) on return.
async fn accept(
    listener: TcpListener,
    shared: &Arc<Shared>,
    sessions: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let connections = Arc::new(Semaphore::new(shared.config.max_connections));
    let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
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
            if let Ok(permit) = rejecting.clone().try_acquire_owned() {
                shared.metrics.goaway_sent(GoawayReason::TOO_MANY_CONNECTIONS);
                tokio::spawn(async move {
                    reject(stream, peer, "too many new connections from this address").await;
                    drop(permit);
                });
            }
            continue;
        }
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                sessions.spawn(session::serve(stream, peer, shared.clone(), permit));
            }
            Err(_) => {
                shared.metrics.connection_rejected();
                if let Ok(permit) = rejecting.clone().try_acquire_owned() {
                    shared.metrics.goaway_sent(GoawayReason::TOO_MANY_CONNECTIONS);
                    tokio::spawn(async move {
                        reject(stream, peer, "the gateway is at its connection limit").await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

/// Tells a connection over a limit to go elsewhere: GOAWAY `too_many_connections`, then close
/// once the client has read it (or [`CLOSE_GRACE`] passes).
async fn reject(mut stream: TcpStream, peer: SocketAddr, why: &'static str) {
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
