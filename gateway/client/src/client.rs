//! [`Client`]: the handle applications hold, cheap to clone, shared by every generated client,
//! and its [`Transport`] implementation: a call waits for the connection the supervisor
//! publishes, goes to it (`crate::call`), and goes again to the next connection when one closed
//! before taking it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::{CallOptions, MethodDesc, Status, Transport};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Delays;
use crate::call::{far_deadline, payload, submit};
use crate::command::{Answer, Handle, Outcome, Outgoing};
use crate::config::{ClientConfig, ConfigError};
use crate::credentials::Credentials;
use crate::error::ConnectError;
use crate::registry::Registry;
use crate::supervisor::{self, Opened, State, Supervisor};

/// A connection to the gateway that reconnects by itself; implements [`Transport`], so every
/// rpcgen-generated client calls through it.
///
/// Clones share one connection. Dropping the last clone (or [`Client::close`]) closes it.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// What the clones of a client share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) state: watch::Receiver<State>,
    /// The live subscriptions, restored by every new connection.
    pub(crate) registry: Arc<Registry>,
    credentials: Arc<Credentials>,
    /// Wakes the supervisor of a lazy client at its first call.
    pub(crate) wake: Arc<Notify>,
    shutdown: CancellationToken,
    /// Cancelled by [`Client::finish`]: no new calls, the ones in flight answered, then closed.
    finishing: CancellationToken,
    /// The supervisor task, awaited by [`Client::close`]. A std mutex: never held across an
    /// `.await` (the handle is taken out first).
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Client {
    /// Connects to the first endpoint that completes the handshake, trying each once in order,
    /// and keeps the client connected from then on (see the crate docs, "Reconnection").
    ///
    /// # Errors
    ///
    /// [`ConnectError::Config`] for an invalid configuration, [`ConnectError::Unreachable`] when
    /// no endpoint completed the handshake (a failing token provider is reported there),
    /// [`ConnectError::Refused`] when a gateway refused the client for good (GOAWAY
    /// `unauthenticated` for credentials it rejects).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn connect(config: ClientConfig) -> Result<Client, ConnectError> {
        config.validate()?;
        let credentials = Arc::new(credentials(&config));
        let tls = crate::tls::connector(&config)?;
        let opened = supervisor::first_round(&config, &credentials, tls.as_ref()).await?;
        let initial = State::Connecting { last_error: None };
        Ok(Client::start(config, credentials, tls, initial, Some(opened)))
    }

    /// A client that connects in the background when its first call is made; calls wait for
    /// the connection within their deadlines.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for an invalid configuration.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(config: ClientConfig) -> Result<Client, ConfigError> {
        config.validate()?;
        let credentials = Arc::new(credentials(&config));
        let tls = crate::tls::connector(&config)?;
        Ok(Client::start(config, credentials, tls, State::Idle, None))
    }

    fn start(
        config: ClientConfig,
        credentials: Arc<Credentials>,
        tls: Option<tokio_rustls::TlsConnector>,
        initial: State,
        opened: Option<Opened>,
    ) -> Client {
        let config = Arc::new(config);
        let registry = Arc::new(Registry::default());
        let (state_tx, state) = watch::channel(initial);
        let wake = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let finishing = CancellationToken::new();
        let supervisor = Supervisor {
            delays: Delays::new(config.backoff.clone()),
            config: config.clone(),
            registry: registry.clone(),
            credentials: credentials.clone(),
            tls,
            state: state_tx,
            wake: wake.clone(),
            shutdown: shutdown.clone(),
            finishing: finishing.clone(),
            next_endpoint: 0,
        };
        let task = tokio::spawn(supervisor.run(opened));
        let supervisor = Mutex::new(Some(task));
        let inner =
            Inner { config, state, registry, credentials, wake, shutdown, finishing, supervisor };
        Client { inner: Arc::new(inner) }
    }

    /// The configuration the client runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Whether calls currently have a connection to go to.
    pub fn is_connected(&self) -> bool {
        matches!(*self.inner.state.borrow(), State::Connected(_))
    }

    /// Presents a fresh token on the current connection (AUTH), waiting for a connection like a
    /// call does, within [`ClientConfig::default_timeout`]. Once accepted, later connections
    /// present it in HELLO too, unless a [`token_provider`](ClientConfig::token_provider) is
    /// configured.
    ///
    /// # Errors
    ///
    /// The gateway's refusal (typically `unauthenticated`; the connection stays up with its
    /// previous credentials), or `unavailable` / `deadline_exceeded` as for a call.
    pub async fn refresh_token(&self, token: impl Into<Bytes>) -> Result<(), Status> {
        let token = token.into();
        let timeout = self.inner.config.default_timeout;
        match self.exchange(Outgoing::Auth, token.clone(), timeout, false).await? {
            Answer::Authenticated { .. } => {
                self.inner.credentials.replace(token);
                Ok(())
            }
            other => Err(Status::internal(format!("the gateway answered AUTH with {other:?}"))),
        }
    }

    /// Closes the client: calls in flight fail with `cancelled`, subscriptions end with
    /// `cancelled`, the server is told with a GOAWAY, and later calls fail at once. Returns when the connection is closed.
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        self.stopped().await;
    }

    /// Closes the client once the calls in flight are answered (`docs/protocol.md`,
    /// "Closing"): calls made from now on fail at once with `cancelled`; the gateway is told
    /// with GOAWAY `done` and answers the calls it has, each within its deadline; then the
    /// connection closes, subscriptions end with `cancelled`, and the client does not reconnect.
    /// Returns when the connection is closed. A client between connections closes at once.
    pub async fn finish(&self) {
        self.inner.finishing.cancel();
        self.stopped().await;
        self.inner.shutdown.cancel();
    }

    /// Waits for the supervisor to end.
    async fn stopped(&self) {
        let task = self.inner.supervisor.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            // The supervisor only ends by returning; a join error would be a panic already
            // reported by the runtime.
            let _ = task.await;
        }
    }
}

impl Transport for Client {
    /// Sends a REQUEST and waits for its RESPONSE or ERROR.
    ///
    /// The call's deadline is its timeout (or [`ClientConfig::default_timeout`]) from now; it
    /// bounds the whole call, and the time left travels in the REQUEST. Failures:
    /// `unavailable` when no connection came up in time, or when the connection was lost with
    /// the request in flight (retryable only for idempotent methods: the request may have run);
    /// `deadline_exceeded` when the reply did not come in time; `resource_exhausted`, not
    /// retryable, for a request larger than the gateway's maximum frame size.
    async fn unary(
        &self,
        method: &'static MethodDesc,
        request: Bytes,
        options: CallOptions,
    ) -> Result<Bytes, Status> {
        let timeout = options.timeout.unwrap_or(self.inner.config.default_timeout);
        let answer = self.exchange(Outgoing::Request(method), request, timeout, false).await?;
        payload(answer, method.name)
    }

    /// Sends a REQUEST flagged fire-and-forget and resolves once it is written to the socket.
    async fn fire_and_forget(
        &self,
        method: &'static MethodDesc,
        request: Bytes,
        options: CallOptions,
    ) -> Result<(), Status> {
        let timeout = options.timeout.unwrap_or(self.inner.config.default_timeout);
        self.exchange(Outgoing::Request(method), request, timeout, true).await.map(drop)
    }
}

impl Client {
    /// Sends `what` on the current connection (waiting for one), and again on the next one when
    /// a connection closed before taking it, all within `timeout`.
    pub(crate) async fn exchange(
        &self,
        what: Outgoing,
        payload: Bytes,
        timeout: Duration,
        fire_and_forget: bool,
    ) -> Result<Answer, Status> {
        let deadline = far_deadline(timeout);
        // A connection that closed before taking the request: wait for the next one.
        let mut closed: Option<Arc<Handle>> = None;
        loop {
            let handle = self.connection(deadline, timeout, closed.as_ref()).await?;
            let outcome = submit(&handle, &what, &payload, deadline, timeout, fire_and_forget);
            match outcome.await? {
                Outcome::Done(result) => return result,
                Outcome::NotSent => closed = Some(handle),
            }
        }
    }

    /// The current connection, other than `closed`, waiting for one until `deadline`.
    pub(crate) async fn connection(
        &self,
        deadline: Instant,
        timeout: Duration,
        closed: Option<&Arc<Handle>>,
    ) -> Result<Arc<Handle>, Status> {
        if self.inner.finishing.is_cancelled() {
            return Err(Status::cancelled("the client is finishing: it takes no new calls"));
        }
        let mut state = self.inner.state.clone();
        loop {
            match &*state.borrow_and_update() {
                State::Connected(handle) if closed.is_none_or(|c| !Arc::ptr_eq(c, handle)) => {
                    return Ok(handle.clone());
                }
                State::Stopped(status) => return Err(status.clone()),
                State::Idle => self.inner.wake.notify_one(),
                State::Connected(_) | State::Connecting { .. } => {}
            }
            match tokio::time::timeout_at(deadline, state.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Status::cancelled("the client was closed")),
                Err(_) => {
                    let last_error = match &*state.borrow() {
                        State::Connecting { last_error: Some(e) } => format!(" (last error: {e})"),
                        _ => String::new(),
                    };
                    return Err(Status::unavailable(format!(
                        "no connection to a gateway within {timeout:?}{last_error}"
                    )));
                }
            }
        }
    }
}

fn credentials(config: &ClientConfig) -> Credentials {
    Credentials::new(config.token_provider.clone(), config.token.as_deref())
}
