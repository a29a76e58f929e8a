//! The Roughtime gateway service (`schemas/roughtime/roughtime.service`, docs/roughtime.md) as a
//! process of its own, serving over NATS with the long-term key from a file, for a gateway
//! deployed over NATS (the `gateway` binary runs the service itself only on its in-process bus,
//! with a key made for the run).
//!
//! ```text
//! cargo run --release -p roughtime --bin roughtime-service -- --key roughtime.key --nats nats://127.0.0.1:4222
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use clap::Parser;
use gateway_bus::{ServeOptions, ServiceRuntime, process};
use roughtime::keys::read_key_file;
use roughtime::service::{RoughtimeServer, ServiceConfig, TimeService};

/// Serves Roughtime to gateway clients over NATS until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "roughtime-service", version, about)]
struct Cli {
    /// The long-term key file (from `roughtime keygen`).
    #[arg(long, env = "ROUGHTIME_KEY", value_name = "FILE")]
    key: PathBuf,
    #[command(flatten)]
    nats: gateway_bus::process::NatsArgs,
    /// The most calls under one signature.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_batch: u32,
    /// RADI: the server's uncertainty, in seconds.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    radius: u32,
    /// How long each online key is delegated for (replaced at 3/4 of it).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    key_lifetime: Duration,
    /// Calls served at once; more are refused with a retryable `resource_exhausted`.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    concurrency: usize,
    /// How long a shutdown waits for calls in flight.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    gateway_bus::process::log_to_stderr();
    let key = match read_key_file(&cli.key) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("roughtime-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = ServiceConfig {
        max_batch: cli.max_batch as usize,
        radius: cli.radius,
        key_lifetime: cli.key_lifetime,
    };
    let service = match TimeService::start(key, config) {
        Ok(service) => service,
        Err(e) => {
            eprintln!("roughtime-service: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "roughtime-service: public key {}",
        base64::engine::general_purpose::STANDARD.encode(service.public_key())
    );
    let options = ServeOptions {
        concurrency: cli.concurrency,
        drain_timeout: cli.drain_timeout,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..ServeOptions::default()
    };
    let server: Arc<dyn gateway_core::Dispatch> = Arc::new(RoughtimeServer::new(service));
    process::run("roughtime-service", &cli.nats, |bus| {
        vec![ServiceRuntime::new(bus, server).with_options(options)]
    })
    .await
}
