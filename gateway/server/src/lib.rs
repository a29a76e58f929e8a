//! The gateway server: clients connect over TCP or WebSocket and speak the wire protocol
//! (`docs/protocol.md`); each call is routed by its method id to the service that owns it, over
//! the bus (`gateway_bus::Bus`); replies come back in whatever order they finish. Clients
//! subscribe to topics and publish to them; the hub holds one bus subscription per topic (or
//! pattern) and fans each event out to the local subscribers.
//!
//! The library holds the whole server so that tests (and other programs) start a gateway
//! in-process on port 0 with [`run`]; the `gateway` binary only reads its configuration, sets up
//! logging, starts the example services on the in-process bus and calls [`run`].
//!
//! # Layout: the life of one call
//!
//! One module per line, each using only those after it (`scripts/module-graph` checks it).
//!
//! - `fuzz` (with the `fuzz` feature only): entry points into the parsers of untrusted bytes
//!   below (WebSocket frames and upgrades, tokens, key sets, admin requests) for the fuzz
//!   targets of `gateway/fuzz`.
//! - [`mod@server`]: [`run`] and its [`Listeners`]: accepting connections on both transports
//!   under the connection limits, and the graceful shutdown (it tells every session to drain
//!   through its mailbox).
//! - `admin`: `/healthz`, `/readyz`, `/metrics`, `/switches` and the operator's console
//!   (`admin/console`), HTTP/1.1 by hyper.
//! - `ws` (with `ws/upgrade` and `ws/codec`): the WebSocket transport: the HTTP upgrade and its
//!   origin check, then our own framing (one protocol frame per binary message).
//! - `tcp`: the TCP transport, each frame after its `u32` length.
//! - `session`: one connection, one task. It reads the client's bytes, takes each frame out of
//!   them (`session/transport`), and for a REQUEST checks the method (the registry), the
//!   permission, the operator switches and the in-flight caps, then starts the call on the bus
//!   with the call's metadata as a struct (`gateway_bus::CallMeta`: method, deadline, call id,
//!   identity). `session/pubsub`: SUBSCRIBE, UNSUBSCRIBE and PUBLISH.
//! - `call`: the calls of a connection. A call is a future the session polls, not a task: on
//!   the in-process bus the service's handler runs right there (the bus hands the call to the
//!   service runtime directly), and a call that finishes on its first poll is answered at once.
//!   One that waits (NATS, a slow service) joins the connection's set, with one deadline queue
//!   and one timer per connection; CANCEL and the deadline drop it, which tells the service.
//! - `outbox`: the connection's outgoing bytes. Answers and events are encoded straight into it,
//!   in the transport's form, and leave in one (vectored) write per wake-up.
//! - `state`: what every session shares (`Shared`): settings, registry, bus, hub, limits, the
//!   call ids, and the open connections' mailboxes (and what the console shows of each).
//! - [`mod@tls`]: TLS on the client listeners (`tls_cert`, `tls_key`), its reloading, and the
//!   connection either way (`Stream`).
//! - `hub`: the topic subscriptions on the bus, one per topic (or pattern), and the fan-out of
//!   each event to the local subscribers' mailboxes. `hub/history`: the histories of topics that
//!   keep one, in memory or the bus's (JetStream), and recovery from a position.
//! - `mailbox`: what other tasks hand one connection (events, ended subscriptions, the drain and
//!   slow-consumer signals), and the waking of its session.
//! - `events`: a connection's pending topic events and the lag policies.
//! - `switches`: the operator switches as sessions check them, and the log of their changes.
//! - `limits`: connections per user and per address.
//! - [`mod@config`]: [`Config`], each setting defined once, from flags, environment and a TOML
//!   file, validated at start-up.
//! - [`mod@metrics`]: the counters and their Prometheus rendering.
//! - [`mod@router`]: [`Registry`]: method id → route (descriptor, bus subjects, index); topic id →
//!   descriptor.
//! - [`mod@auth`]: tokens, identities and permissions.
//!
//! So a call over TCP to a service in the same process: `tcp` → `session` (read, decode, check)
//! → `gateway_bus::LocalBus::call` → the service's `Dispatch` future, polled by the session →
//! `call::answer` into the `outbox` → one write. No task, no channel, no timer, and no string is
//! made for it.
//!
//! # Example
//!
//! ```no_run
//! # async fn example(bus: std::sync::Arc<dyn gateway_bus::Bus>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use gateway::{Config, Listeners, Registry};
//! use gateway_bus::MemorySwitches;
//! use tokio_util::sync::CancellationToken;
//!
//! let config = Config::default();
//! let listeners = Listeners::bind(&config).await?; // TCP, WebSocket and admin
//! let registry = Registry::new(); // then `registry.register(&some_api::DESCRIPTOR)?`
//! let switches = Arc::new(MemorySwitches::new()); // operator switches: none set
//! let shutdown = CancellationToken::new(); // cancel it to drain and stop
//! gateway::run(config, listeners, bus, switches, registry, shutdown).await?;
//! # Ok(())
//! # }
//! ```

mod admin;
pub mod auth;
mod call;
pub mod config;
mod events;
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod fuzz;
mod hub;
mod limits;
mod mailbox;
pub mod metrics;
mod outbox;
pub mod router;
pub mod server;
mod session;
mod state;
mod switches;
mod tcp;
pub mod tls;
mod ws;

pub use config::{Args, Config, ConfigError, NatsAuthKeys};
pub use router::{RegisterError, Registry, Route};
pub use server::{Error, Listeners, run};
