//! [`Client`]: the handle applications hold, cheap to clone, shared by every generated client.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::Delays;
use crate::config::{ClientConfig, ConfigError};
use crate::error::ConnectError;
use crate::supervisor::{self, Opened, State, Supervisor};

/// A connection to the gateway that reconnects by itself; implements
/// [`Transport`](gateway_core::Transport), so every rpcgen-generated client calls through it.
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
    /// Wakes the supervisor of a lazy client at its first call.
    pub(crate) wake: Arc<Notify>,
    shutdown: CancellationToken,
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
    /// no endpoint completed the handshake, [`ConnectError::Refused`] when a gateway refused
    /// the client for good.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn connect(config: ClientConfig) -> Result<Client, ConnectError> {
        config.validate()?;
        let opened = supervisor::first_round(&config).await?;
        Ok(Client::start(config, State::Connecting { last_error: None }, Some(opened)))
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
        Ok(Client::start(config, State::Idle, None))
    }

    fn start(config: ClientConfig, initial: State, opened: Option<Opened>) -> Client {
        let config = Arc::new(config);
        let (state_tx, state) = watch::channel(initial);
        let wake = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor {
            delays: Delays::new(config.backoff.clone()),
            config: config.clone(),
            state: state_tx,
            wake: wake.clone(),
            shutdown: shutdown.clone(),
            next_endpoint: 0,
        };
        let task = tokio::spawn(supervisor.run(opened));
        let inner = Inner { config, state, wake, shutdown, supervisor: Mutex::new(Some(task)) };
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

    /// Closes the client: calls in flight fail with `cancelled`, the server is told with a
    /// GOAWAY, and later calls fail at once. Returns when the connection is closed.
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        let task = self.inner.supervisor.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            // The supervisor only ends by returning; a join error would be a panic already
            // reported by the runtime.
            let _ = task.await;
        }
    }
}
