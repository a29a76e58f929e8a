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
//! # Layout
//!
//! - [`config`]: [`Config`], from flags, environment and a TOML file, validated at start-up.
//! - [`server`]: [`run`] and its [`Listeners`]: accepting on both transports, the connection
//!   limits, graceful shutdown.
//! - `session`: one connection over either transport: handshake, the reader that starts calls,
//!   timeouts, GOAWAY; `session/inbound`: the frames a transport yields (TCP's `FrameCodec`);
//!   `session/pubsub`: its SUBSCRIBE, UNSUBSCRIBE and PUBLISH.
//! - `ws`: the WebSocket transport: the HTTP upgrade and its origin check, one frame per binary
//!   message, pings, close codes.
//! - `call`: one call: bus request with deadline and cancellation, its answer.
//! - `send_queue`: a connection's byte-bounded outgoing queue and the writer that coalesces it
//!   (the TCP writer; the WebSocket one is in `ws`).
//! - `events`: a connection's pending topic events and the lag policies.
//! - `hub`: the topic subscriptions on the bus and the fan-out to local subscribers.
//! - [`router`]: [`Registry`]: method id → descriptor → bus subject; topic id → descriptor.
//! - `switches`: the operator switches (`gateway_bus::switches`) as sessions check them, and the
//!   log of their changes.
//! - `admin`: `/healthz`, `/readyz`, `/metrics` and `/switches` over a small HTTP/1.1 responder;
//!   `admin/switches`: reading and setting the switches.
//! - [`metrics`]: the counters and their Prometheus rendering.
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
mod hub;
mod limits;
pub mod metrics;
pub mod router;
mod send_queue;
pub mod server;
mod session;
mod switches;
mod ws;

pub use config::{Args, Config, ConfigError};
pub use router::{DuplicateMethod, Registry, Route};
pub use server::{Error, Listeners, run};
