//! The Rust client of the gateway: typed calls over one pipelined TCP connection, with
//! deadlines, cancellation and reconnection.
//!
//! [`Client`] implements [`gateway_core::Transport`], so every client rpcgen generates works
//! over it. It depends on the protocol and the shared core only: a program that calls the
//! gateway does not compile the server or the bus. The wire protocol is `docs/protocol.md`.
//!
//! # Example
//!
//! ```no_run
//! use gateway_client::{Client, ClientConfig};
//! use some_api::{RequestSumT, SomeApiClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect(ClientConfig::new(["127.0.0.1:7000"])).await?;
//! let api = SomeApiClient::new(client);
//! let reply = api.sum(RequestSumT { a: 40, b: 2 }).await?;
//! assert_eq!(reply.get().sum(), 42);
//! # Ok(())
//! # }
//! ```
//!
//! # Calls
//!
//! Calls are pipelined: any number are in flight on the connection at once (up to the server's
//! `max_in_flight`) and their replies are matched by request id in whatever order they come.
//! Each call has a deadline, its timeout or [`ClientConfig::default_timeout`]; the time left
//! travels with the request, and the caller stops waiting when it passes
//! (`deadline_exceeded`). Dropping a call's future, or its deadline passing, sends CANCEL.
//!
//! # Reconnection
//!
//! When a connection is lost, its calls in flight fail at once with `unavailable` (retryable
//! for idempotent methods only, since the request may have run), and the client reconnects in
//! the background: endpoints in order, starting with the one after the lost one, each attempt
//! after a delay drawn by [`Backoff`]. Calls made meanwhile wait for the new connection until
//! their deadline, then fail with `unavailable`. A GOAWAY with the reconnect flag fails the
//! requests the server did not take (`unavailable`, retryable), lets the ones it promised to
//! answer finish, and reconnects at once; one without the flag fails every later call with the
//! server's reason and the client stops. A PING goes out every
//! [`ClientConfig::keepalive_interval`]; a server silent for two intervals is a lost connection.
//!
//! # Layout
//!
//! - [`mod@config`]: [`ClientConfig`] and [`Backoff`], their defaults and validation.
//! - `client`: the [`Client`] handle.
//! - `call`: one call from the caller's side, and the [`Transport`](gateway_core::Transport)
//!   implementation.
//! - `supervisor`: the task that connects and reconnects, with `backoff`'s delays.
//! - `handshake`: TCP connect, HELLO and WELCOME.
//! - `connection`: the task that owns one connection, with `inflight`, its table of requests.
//! - [`mod@error`]: [`ConnectError`], why connecting failed.

mod backoff;
mod call;
mod client;
pub mod config;
mod connection;
mod credentials;
pub mod error;
mod feed;
mod handshake;
mod inflight;
mod refresh;
mod registry;
mod supervisor;
mod topics;

pub use client::Client;
pub use config::{Backoff, ClientConfig, ConfigError};
pub use credentials::TokenProvider;
pub use error::ConnectError;
pub use feed::RawSubscription;
