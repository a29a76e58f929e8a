//! Running services as a process of their own, as a service binary's `main` does: connect to
//! NATS, serve until SIGINT or SIGTERM, then stop gracefully (no new calls; calls in flight
//! finish within the drain timeout).
//!
//! ```no_run
//! use std::process::ExitCode;
//! use std::sync::Arc;
//!
//! use gateway_bus::process::{self, NatsArgs};
//! use gateway_bus::ServiceRuntime;
//! use some_api::{Calculator, SomeApiServer};
//!
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     // In a binary, `#[command(flatten)] nats: NatsArgs` in its clap arguments.
//!     let nats = NatsArgs::new("nats://127.0.0.1:4222");
//!     process::run("some-api-service", &nats, |bus| {
//!         let service = Arc::new(SomeApiServer::new(Calculator::default()));
//!         vec![ServiceRuntime::new(bus, service)]
//!     })
//!     .await
//! }
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::nats::{ConnectError, NatsAuth, NatsAuthError, NatsAuthSettings};
use crate::{BusError, NatsBus, NatsOptions, ServiceRuntime};

/// The NATS settings every service binary takes: the servers, credentials of one kind, and TLS
/// (`docs/operations.md`, "NATS credentials and TLS"). Flatten it into a binary's arguments
/// with `#[command(flatten)]`. Each has an environment variable, named as the `nats` command
/// line tool names them; secrets are better given there than as flags, which `ps` shows.
#[derive(Clone, Debug, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated (`tls://` for TLS).
    #[arg(
        long = "nats",
        env = "NATS_URL",
        value_name = "URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,
    #[command(flatten)]
    pub auth: NatsAuthArgs,
}

/// The credentials and TLS flags of [`NatsArgs`], for a binary whose `--nats` is optional.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct NatsAuthArgs {
    /// NATS user name (with --nats-password).
    #[arg(long, env = "NATS_USER", value_name = "USER")]
    pub nats_user: Option<String>,
    /// NATS password (with --nats-user).
    #[arg(long, env = "NATS_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS authentication token.
    #[arg(long, env = "NATS_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// File holding the NKey seed (`SU…`) to authenticate with.
    #[arg(long, env = "NATS_NKEY", value_name = "FILE")]
    pub nats_nkey: Option<PathBuf>,
    /// `.creds` file (user JWT and NKey seed) to authenticate with.
    #[arg(long, env = "NATS_CREDS", value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// PEM file of the CA certificates the NATS servers' certificates chain to; turns on TLS.
    #[arg(long, env = "NATS_CA", value_name = "FILE")]
    pub nats_ca: Option<PathBuf>,
    /// PEM client certificate chain to present over TLS (with --nats-key).
    #[arg(long, env = "NATS_CERT", value_name = "FILE")]
    pub nats_cert: Option<PathBuf>,
    /// PEM private key of --nats-cert.
    #[arg(long, env = "NATS_KEY", value_name = "FILE")]
    pub nats_key: Option<PathBuf>,
}

impl NatsArgs {
    /// The servers at `url`, without credentials or TLS.
    pub fn new(url: &str) -> NatsArgs {
        NatsArgs { url: url.to_owned(), auth: NatsAuthArgs::default() }
    }

    /// The credentials and TLS settings checked, their files read.
    ///
    /// # Errors
    ///
    /// What [`NatsAuthSettings::load`] finds wrong, naming the flags.
    pub fn auth(&self) -> Result<NatsAuth, NatsAuthError> {
        self.auth.load()
    }
}

impl NatsAuthArgs {
    /// The settings checked, their files read.
    ///
    /// # Errors
    ///
    /// What [`NatsAuthSettings::load`] finds wrong, naming the flags.
    pub fn load(&self) -> Result<NatsAuth, NatsAuthError> {
        self.settings().load(|kind| format!("--nats-{kind}"))
    }

    /// The settings as given, for [`NatsAuthSettings::load`].
    pub fn settings(&self) -> NatsAuthSettings {
        NatsAuthSettings {
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            token: self.nats_token.clone(),
            nkey: self.nats_nkey.clone(),
            creds: self.nats_creds.clone(),
            ca: self.nats_ca.clone(),
            cert: self.nats_cert.clone(),
            key: self.nats_key.clone(),
        }
    }
}

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

/// A service binary's life once its arguments are read: connects to NATS as `nats` says, as `name`,
/// builds its runtimes on the bus with `runtimes`, serves until SIGINT or SIGTERM and stops
/// gracefully. Failures are printed to stderr as `<name>: <what went wrong>`.
pub async fn run(
    name: &str,
    nats: &NatsArgs,
    runtimes: impl FnOnce(Arc<NatsBus>) -> Vec<ServiceRuntime>,
) -> ExitCode {
    let bus = match connect(nats, name).await {
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

/// Connects to NATS as `nats` says, as `name` (what nats-server's `/connz` shows).
///
/// # Errors
///
/// Unusable credentials or TLS settings (naming the flag or file), or no server answers or
/// one refuses the credentials (see [`NatsBus::connect`]).
pub async fn connect(nats: &NatsArgs, name: &str) -> Result<Arc<NatsBus>, ConnectError> {
    let auth =
        nats.auth().map_err(|e| ConnectError { url: nats.url.clone(), reason: e.to_string() })?;
    let options = NatsOptions { name: name.to_owned(), auth, ..NatsOptions::default() };
    Ok(Arc::new(NatsBus::connect(&nats.url, options).await?))
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
