//! The gateway server: clients connect over TCP and speak the wire protocol
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
//! - [`server`]: [`run`]: the listener, the connection limit, graceful shutdown.
//! - `session`: one connection: handshake, the reader that starts calls, timeouts, GOAWAY;
//!   `session/pubsub`: its SUBSCRIBE, UNSUBSCRIBE and PUBLISH.
//! - `call`: one call: bus request with deadline and cancellation, its answer.
//! - `send_queue`: a connection's byte-bounded outgoing queue and the writer that coalesces it.
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
//! use gateway::{Config, Registry};
//! use gateway_bus::MemorySwitches;
//! use tokio::net::TcpListener;
//! use tokio_util::sync::CancellationToken;
//!
//! let config = Config::default();
//! let listener = TcpListener::bind(config.listen).await?;
//! let admin = TcpListener::bind(config.admin_listen).await?;
//! let registry = Registry::new(); // then `registry.register(&some_api::DESCRIPTOR)?`
//! let switches = Arc::new(MemorySwitches::new()); // operator switches: none set
//! let shutdown = CancellationToken::new(); // cancel it to drain and stop
//! gateway::run(config, listener, admin, bus, switches, registry, shutdown).await?;
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

pub use config::{Args, Config, ConfigError};
pub use router::{DuplicateMethod, Registry, Route};
pub use server::{Error, run};
