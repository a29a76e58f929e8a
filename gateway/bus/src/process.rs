//! Running services as a process of their own, as a service binary's `main` does: connect to
//! NATS, serve until SIGINT or SIGTERM, then stop gracefully (no new calls; calls in flight
//! finish within the drain timeout).
//!
//! ```no_run
//! use std::process::ExitCode;
//! use std::sync::Arc;
//!
//! use gateway_bus::{ServiceRuntime, process};
//! use some_api::{Calculator, SomeApiServer};
//!
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     process::run("some-api-service", "nats://127.0.0.1:4222", |bus| {
//!         let service = Arc::new(SomeApiServer::new(Calculator::default()));
//!         vec![ServiceRuntime::new(bus, service)]
//!     })
//!     .await
//! }
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::nats::ConnectError;
use crate::{BusError, NatsBus, NatsOptions, ServiceRuntime};

/// Logs to stderr for a binary: the level from `RUST_LOG` (`info` without it), colours only on
/// a terminal.
pub fn log_to_stderr() {
    use tracing_subscriber::EnvFilter;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// A service binary's life once its arguments are read: connects to NATS at `url` as `name`,
/// builds its runtimes on the bus with `runtimes`, serves until SIGINT or SIGTERM and stops
/// gracefully. Failures are printed to stderr as `<name>: <what went wrong>`.
pub async fn run(
    name: &str,
    url: &str,
    runtimes: impl FnOnce(Arc<NatsBus>) -> Vec<ServiceRuntime>,
) -> ExitCode {
    let bus = match connect(url, name).await {
        Ok(bus) => bus,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match serve_until_signal(runtimes(bus)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: cannot serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Connects to NATS at `url` as `name` (what nats-server's `/connz` shows).
///
/// # Errors
///
/// When no server answers (see [`NatsBus::connect`]).
pub async fn connect(url: &str, name: &str) -> Result<Arc<NatsBus>, ConnectError> {
    let options = NatsOptions { name: name.to_owned(), ..NatsOptions::default() };
    Ok(Arc::new(NatsBus::connect(url, options).await?))
}

/// Starts every runtime, serves until the process gets SIGINT or SIGTERM, then stops them all
/// gracefully and returns once they have.
///
/// # Errors
///
/// The bus's error if it refuses a runtime's subscriptions at start; the runtimes already
/// started are stopped first.
pub async fn serve_until_signal(runtimes: Vec<ServiceRuntime>) -> Result<(), BusError> {
    let shutdown = CancellationToken::new();
    let mut serving = Vec::with_capacity(runtimes.len());
    for runtime in runtimes {
        match runtime.start(shutdown.clone()).await {
            Ok(started) => serving.push(started),
            Err(e) => {
                shutdown.cancel();
                for started in serving {
                    started.stopped().await;
                }
                return Err(e);
            }
        }
    }
    signal().await;
    shutdown.cancel();
    for started in serving {
        started.stopped().await;
    }
    Ok(())
}

/// Returns on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            },
            Err(e) => {
                tracing::warn!(cause = %e, "cannot listen for SIGTERM; only Ctrl-C stops this");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
