//! The Echo example service as a process of its own, serving over NATS. `--delay` makes every
//! call take that long (for tests and demonstrations of calls in flight).
//!
//! ```text
//! cargo run -p echo --bin echo-service -- --nats nats://127.0.0.1:4222
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use echo::{BlobT, DelayT, Echo, EchoServer, Echoer};
use gateway_bus::{ServeOptions, ServiceRuntime, process};
use gateway_core::{CallContext, Message, Status};

/// Serves the example Echo service over NATS until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "echo-service", version, about)]
struct Cli {
    #[command(flatten)]
    nats: gateway_bus::process::NatsArgs,
    /// Calls served at once; more are refused with a retryable `resource_exhausted`.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    concurrency: usize,
    /// Answer each call only after this long (e.g. `200ms`).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    delay: Duration,
    /// How long a shutdown waits for calls in flight.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
}

/// [`Echoer`], answering after a delay.
#[derive(Clone, Copy, Debug)]
struct Delayed(Duration);

impl Echo for Delayed {
    async fn echo(
        &self,
        ctx: CallContext,
        request: Message<BlobT>,
    ) -> Result<Message<BlobT>, Status> {
        tokio::time::sleep(self.0).await;
        Echoer.echo(ctx, request).await
    }

    async fn delay(
        &self,
        ctx: CallContext,
        request: Message<DelayT>,
    ) -> Result<Message<BlobT>, Status> {
        Echoer.delay(ctx, request).await
    }
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
    let service: Arc<dyn gateway_core::Dispatch> = if cli.delay.is_zero() {
        Arc::new(EchoServer::new(Echoer))
    } else {
        Arc::new(EchoServer::new(Delayed(cli.delay)))
    };
    process::run("echo-service", &cli.nats, |bus| {
        vec![ServiceRuntime::new(bus, service).with_options(options)]
    })
    .await
}
