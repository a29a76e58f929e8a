//! The Rust client of the gateway: typed calls and topic subscriptions over one pipelined TCP
//! connection (or TLS), with deadlines, cancellation, reconnection and token refresh.
//!
//! [`Client`] implements [`gateway_core::Transport`] and [`gateway_core::Topics`], so every
//! client rpcgen generates works over it. It depends on the protocol and the shared core only: a program that calls the
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
//! # Closing
//!
//! [`Client::close`] ends everything now: calls in flight fail with `cancelled` (the gateway
//! cancels them in the services) and subscriptions end. [`Client::finish`] is for a program that
//! is done but wants its answers: it takes no new calls, tells the gateway with GOAWAY `done`,
//! waits for the replies of the calls in flight (each within its deadline), then closes
//! (`docs/protocol.md`, "Closing").
//!
//! # TLS
//!
//! An endpoint written `tls://host:port` is the protocol inside TLS (the gateway's `tls_cert`):
//! its certificate must chain to [`ClientConfig::tls_ca`] (PEM), or to the system's CA
//! certificates without it, and name `host`. A certificate the client refuses fails the attempt
//! with `TLS handshake failed: ...` and the reason.
//!
//! # Topics
//!
//! [`Topics::subscribe`](gateway_core::Topics::subscribe) sends SUBSCRIBE and resolves when the
//! gateway confirms it (SUBSCRIBED) with a [`RawSubscription`], a stream of events in the order
//! the gateway sent them, or with the gateway's refusal. Like a call, it waits for a connection
//! and for the answer within [`ClientConfig::default_timeout`]. Generated clients wrap the
//! stream into typed events.
//!
//! - Each subscription holds up to [`ClientConfig::subscription_buffer`] events the
//!   application has not read. When it is full the oldest event is dropped, and the next event's
//!   `missed` counts it, together with the events the gateway dropped for this subscriber
//!   (MISSED). The connection never waits for a slow reader and memory never grows.
//! - When the connection is lost, the stream waits; the next connection subscribes again with
//!   the same topic and selector, and the first event after that has `resumed` set. For a topic
//!   without history, what was published in between is lost. A topic with history is
//!   subscribed again from the subscription's last position (SUBSCRIBE_FROM, `docs/protocol.md`,
//!   "History and recovery"): the events missed come first, and the resumed event also has
//!   `recovered` set; when the gateway cannot give them whole (too old, its history restarted)
//!   the stream yields an `Err` with code `data_loss` where the gap is, and goes on, so that the
//!   application reloads what it shows. If the new gateway refuses, the stream yields its
//!   status and ends.
//! - The stream ends with an `Err` item, then `None`, when the gateway ends the subscription
//!   (SUBSCRIPTION_ENDED), when a GOAWAY without the reconnect flag stops the client (the status
//!   carries the reason), or when the client is closed (`cancelled`).
//! - Dropping the stream sends UNSUBSCRIBE; events already on their way are discarded.
//!
//! [`Topics::publish`](gateway_core::Topics::publish) sends PUBLISH as a request: it shares the
//! request ids and the in-flight limit with calls, and resolves when the gateway has handed the
//! event to the bus (or refused it), within [`ClientConfig::default_timeout`]. A publish lost
//! with its connection is not retryable: the event may have been published.
//!
//! # Authentication
//!
//! HELLO carries a token: the one a [`TokenProvider`] returns, asked before every connection
//! attempt, or else [`ClientConfig::token`] (or the last one [`Client::refresh_token`] got
//! accepted). A gateway that rejects it closes the connection with GOAWAY `unauthenticated`:
//! [`Client::connect`] fails with [`ConnectError::Refused`] naming the reason, and a client
//! that was connected stops.
//!
//! When WELCOME or AUTH_OK say the credentials expire in `T` (0: never), the connection asks the
//! provider for a fresh token at a random moment between 75 and 85 % of `T`, and presents it
//! with AUTH. A failed refresh (the provider fails or the gateway refuses the token; the
//! connection stays up with the old credentials) is logged and tried again halfway to the
//! expiry, three times in all. If the credentials expire anyway, the gateway sends GOAWAY
//! `token_expired` and the client reconnects with a token from the provider. Without a
//! provider nothing is refreshed automatically: the application calls
//! [`Client::refresh_token`] itself.
//!
//! # Layout
//!
//! The files in the order they depend on each other: each uses only those listed after it
//! (`scripts/module-graph gateway/client/src` checks it). Read top-down, the list follows one
//! call: `client` takes it, `call` hands it over as a `command`, `connection` sends it and
//! matches the reply, which comes back on the oneshot the command carried.
//!
//! - `topics`: the [`Topics`](gateway_core::Topics) implementation. PUBLISH goes the way of a
//!   call; SUBSCRIBE hands the connection a `Feed` and returns the [`RawSubscription`] stream
//!   that reads it.
//! - `client`: the [`Client`] handle and its [`Transport`](gateway_core::Transport)
//!   implementation. A generated stub's call lands in `Client::unary`, which waits (within the
//!   call's deadline) for the connection the supervisor publishes, hands the call to `call`, and
//!   tries the next connection if this one closed before taking it.
//! - `supervisor`: the task that connects and reconnects, with `backoff`'s delays, and publishes
//!   the current connection's `Handle` for calls to use.
//! - `connection`: the task that owns one connection. It takes the call from its channel, gives
//!   it a request id in `connection::inflight`, its table of requests awaiting replies, and
//!   encodes it into `connection::outbox`, the bytes waiting for the socket. When the RESPONSE
//!   comes back it finds the call's entry by id and sends the outcome to the waiting caller.
//!   `connection::subscriptions` is its side of the subscriptions: ids, SUBSCRIBE and
//!   UNSUBSCRIBE, events pushed into feeds.
//! - `refresh`: the companion task that presents a fresh token (AUTH, itself a call) before the
//!   connection's credentials expire.
//! - `call`: one call on one connection, from the caller's side: check the size against the
//!   server's limit, send the command, wait for the outcome until the deadline, and send CANCEL
//!   if the caller gives up after the request left.
//! - `registry`: the live subscriptions, which each new connection restores.
//! - `command`: what the caller's side sends a connection's task and what comes back: the
//!   `Handle` with its channels, `Command` (a call or a SUBSCRIBE), `Control` (CANCEL,
//!   UNSUBSCRIBE), `Outcome` and `Answer`. Both sides use it; neither uses the other.
//! - `feed`: one subscription's bounded queue of events, pushed by the connection, read by its
//!   stream.
//! - [`mod@error`]: [`ConnectError`], why connecting failed.
//! - `handshake`: TCP connect (and TLS for a `tls://` endpoint), HELLO and WELCOME.
//! - `backoff`: the delays between connection attempts.
//! - `tls`: the TLS connector of `tls://` endpoints, trusting [`ClientConfig::tls_ca`] or the
//!   system's CA certificates.
//! - [`mod@config`]: [`ClientConfig`] and [`Backoff`], their defaults and validation.
//! - `endpoint`: an endpoint's address and transport (`host:port`, `tls://host:port`).
//! - `credentials`: [`TokenProvider`] and the token for HELLO.

mod backoff;
mod call;
mod client;
mod command;
pub mod config;
mod connection;
mod credentials;
mod endpoint;
pub mod error;
mod feed;
mod handshake;
mod refresh;
mod registry;
mod supervisor;
mod tls;
mod topics;

pub use client::Client;
pub use config::{Backoff, ClientConfig, ConfigError};
pub use credentials::TokenProvider;
pub use error::ConnectError;
pub use topics::RawSubscription;
