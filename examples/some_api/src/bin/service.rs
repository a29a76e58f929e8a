//! The SomeApi example service as a process of its own, serving over NATS. Start as many as you
//! like: they share the calls (one NATS queue group), and each publishes its own running total on
//! the `pub` topic.
//!
//! ```text
//! cargo run -p some-api --bin some-api-service -- --nats nats://127.0.0.1:4222
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use gateway_bus::{BusTopics, ServeOptions, ServiceRuntime, process};
use some_api::{Calculator, SomeApiServer};

/// Serves the example SomeApi service over NATS until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "some-api-service", version, about)]
struct Cli {
    #[command(flatten)]
    nats: gateway_bus::process::NatsArgs,
    /// Calls served at once; more are refused with a retryable `resource_exhausted`.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    concurrency: usize,
    /// How long a shutdown waits for calls in flight.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    drain_timeout: std::time::Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    gateway_bus::process::log_to_stderr();
    let options = ServeOptions {
        concurrency: cli.concurrency,
        drain_timeout: cli.drain_timeout,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..ServeOptions::default()
    };
    process::run("some-api-service", &cli.nats, |bus| {
        // Each instance publishes its own running total on the `pub` topic.
        let calculator = Calculator::with_topics(BusTopics::new(bus.clone()));
        let service = Arc::new(SomeApiServer::new(calculator));
        vec![ServiceRuntime::new(bus, service).with_options(options)]
    })
    .await
}
