//! The task that keeps the client connected: it opens connections, publishes the current one
//! to callers, and reconnects with backoff when one ends.
//!
//! Endpoints are tried in order, starting after the one that was last used, so a client that
//! loses a gateway tries another first. Before every attempt but a client's very first, it waits
//! a delay from [`Delays`]; a successful handshake starts the delays over.

use std::sync::Arc;

use gateway_core::{Code, Status};
use gateway_protocol::{Goaway, GoawayReason};
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::Delays;
use crate::command::Handle;
use crate::config::ClientConfig;
use crate::connection::{self, Closing};
use crate::credentials::Credentials;
use crate::error::ConnectError;
use crate::handshake::{self, AttemptError, Established, describe_goaway};
use crate::registry::Registry;

/// What callers see of the client's connection.
#[derive(Clone, Debug)]
pub(crate) enum State {
    /// A lazy client before its first call.
    Idle,
    /// Between connections; the error of the last failed attempt, if any.
    Connecting { last_error: Option<Arc<str>> },
    /// Calls go to this connection.
    Connected(Arc<Handle>),
    /// The client will not connect again: every call fails with this status.
    Stopped(Status),
}

/// A connection whose handshake succeeded, and the index of its endpoint.
pub(crate) type Opened = (Established, usize);

/// Tries every endpoint once, in order, for [`Client::connect`](crate::Client::connect).
pub(crate) async fn first_round(
    config: &ClientConfig,
    credentials: &Credentials,
    tls: Option<&TlsConnector>,
) -> Result<Opened, ConnectError> {
    let mut failures = Vec::new();
    for (index, endpoint) in config.endpoints.iter().enumerate() {
        match handshake::connect(endpoint, config, credentials, tls).await {
            Ok(established) => return Ok((established, index)),
            Err(AttemptError::Refused(goaway)) if !goaway.reconnect => {
                return Err(ConnectError::Refused { endpoint: endpoint.clone(), goaway });
            }
            Err(e) => failures.push((endpoint.clone(), e.to_string())),
        }
    }
    Err(ConnectError::Unreachable(failures))
}

/// The reconnecting task's state.
pub(crate) struct Supervisor {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) credentials: Arc<Credentials>,
    /// For the `tls://` endpoints.
    pub(crate) tls: Option<TlsConnector>,
    pub(crate) state: watch::Sender<State>,
    /// Notified by the first call of a lazy client.
    pub(crate) wake: Arc<Notify>,
    pub(crate) shutdown: CancellationToken,
    /// [`Client::finish`](crate::Client::finish): the connection drains, none follows.
    pub(crate) finishing: CancellationToken,
    pub(crate) delays: Delays,
    pub(crate) next_endpoint: usize,
}

impl Supervisor {
    /// Runs until the client is closed or a gateway refuses it for good. `opened` is the
    /// connection [`first_round`] made; without one, the task waits for the first call.
    pub(crate) async fn run(mut self, mut opened: Option<Opened>) {
        if opened.is_none() {
            tokio::select! {
                () = self.wake.notified() => {}
                () = self.shutdown.cancelled() => return self.closed(),
                () = self.finishing.cancelled() => return self.closed(),
            }
        }
        let mut first_attempt = true;
        loop {
            let (established, index) = match opened.take() {
                Some(opened) => opened,
                None => match self.reconnect(first_attempt).await {
                    Some(opened) => opened,
                    None => return,
                },
            };
            first_attempt = false;
            self.delays.reset();
            self.next_endpoint = (index + 1) % self.config.endpoints.len();
            let endpoint: Arc<str> = self.config.endpoints[index].as_str().into();
            info!(%endpoint, server_id = %established.welcome.server_id, "connected to the gateway");
            let shared = connection::Shared {
                config: &self.config,
                registry: &self.registry,
                credentials: &self.credentials,
                shutdown: self.shutdown.clone(),
                finishing: self.finishing.clone(),
            };
            let (handle, closing, task) = connection::spawn(established, endpoint.clone(), shared);
            self.state.send_replace(State::Connected(handle));
            let closing = tokio::select! {
                // First: a connection ended by the shutdown reports that too.
                biased;
                () = self.shutdown.cancelled() => {
                    // The connection says goodbye to the server; wait for it (it bounds itself).
                    let _ = task.await;
                    return self.closed();
                }
                closing = closing => closing,
            };
            if self.finishing.is_cancelled() {
                // The connection drained what it had; the client stops.
                let _ = task.await;
                return self.closed();
            }
            let last_error = match closing {
                Ok(Closing::Goaway(goaway)) if !goaway.reconnect => {
                    return self.stop(refused(&endpoint, &goaway));
                }
                Ok(Closing::Goaway(goaway)) => {
                    format!("gateway {endpoint} went away ({})", describe_goaway(&goaway))
                }
                Ok(Closing::Lost(reason)) => format!("connection to {endpoint} lost: {reason}"),
                Err(_) => format!("connection to {endpoint} ended"),
            };
            warn!(error = %last_error, "reconnecting");
            self.state.send_replace(State::Connecting { last_error: Some(last_error.into()) });
        }
    }

    /// Attempts connections until one succeeds; `None` when the client stops instead.
    async fn reconnect(&mut self, first_attempt: bool) -> Option<Opened> {
        let mut wait = !first_attempt;
        self.state.send_if_modified(|state| {
            let idle = matches!(state, State::Idle);
            if idle {
                *state = State::Connecting { last_error: None };
            }
            idle
        });
        loop {
            let index = self.next_endpoint;
            self.next_endpoint = (index + 1) % self.config.endpoints.len();
            if wait {
                let delay = self.delays.next_delay();
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.shutdown.cancelled() => {
                        self.closed();
                        return None;
                    }
                    () = self.finishing.cancelled() => {
                        self.closed();
                        return None;
                    }
                }
            }
            wait = true;
            let endpoint = &self.config.endpoints[index];
            let attempt = tokio::select! {
                attempt = handshake::connect(endpoint, &self.config, &self.credentials, self.tls.as_ref()) => attempt,
                () = self.shutdown.cancelled() => {
                    self.closed();
                    return None;
                }
                () = self.finishing.cancelled() => {
                    self.closed();
                    return None;
                }
            };
            match attempt {
                Ok(established) => return Some((established, index)),
                Err(AttemptError::Refused(goaway)) if !goaway.reconnect => {
                    self.stop(refused(endpoint, &goaway));
                    return None;
                }
                Err(e) => {
                    warn!(%endpoint, error = %e, "connection attempt failed");
                    let last_error = format!("{endpoint}: {e}").into();
                    self.state.send_replace(State::Connecting { last_error: Some(last_error) });
                }
            }
        }
    }

    fn closed(&self) {
        self.stop(Status::cancelled("the client was closed"));
    }

    /// The client will not connect again: calls and subscriptions end with `status`.
    fn stop(&self, status: Status) {
        self.registry.end_all(&status);
        self.state.send_replace(State::Stopped(status));
    }
}

/// The status of every call and subscription after a gateway closed the connection without the
/// reconnect flag.
fn refused(endpoint: &str, goaway: &Goaway) -> Status {
    let code = match goaway.reason {
        GoawayReason::UNAUTHENTICATED => Code::Unauthenticated,
        _ => Code::Unavailable,
    };
    let message = format!(
        "gateway {endpoint} closed the connection for good ({}); the client does not reconnect",
        describe_goaway(goaway)
    );
    Status::new(code, message).with_retryable(false)
}
