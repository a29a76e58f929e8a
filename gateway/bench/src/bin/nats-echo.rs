//! The baseline of the echo service over NATS: the least an async-nats program does to answer
//! the echo method's calls. It subscribes to the service's subjects in the service's queue group
//! and publishes each call's payload back to its reply subject, with no headers, no verification
//! and no deadline; what `echo-service` (the generated service on `ServiceRuntime`) does on top
//! of that is what `scripts/bench-nats` measures against it.
//!
//! Run with:
//!
//! ```sh
//! cargo run --release -p gateway-bench --bin nats-echo -- --nats nats://127.0.0.1:4222
//! ```
//!
//! It serves until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use futures::StreamExt as _;
use gateway_bus::contract;
use tokio_util::sync::CancellationToken;

/// Echoes every call of `examples.echo.Echo` back to its caller.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = gateway_bench::runtime(args.threads)?;
    runtime.block_on(async {
        let client = async_nats::connect(&args.nats)
            .await
            .with_context(|| format!("cannot connect to NATS at `{}`", args.nats))?;
        let service = &echo::DESCRIPTOR;
        let mut calls = client
            .queue_subscribe(
                contract::service_pattern(service),
                contract::queue_group(service).into(),
            )
            .await
            .context("cannot subscribe")?;
        println!("nats-echo serving {} on {}", service.name, args.nats);
        let shutdown = CancellationToken::new();
        tokio::spawn(gateway_bench::stop_on_signal(shutdown.clone()));
        loop {
            let call = tokio::select! {
                () = shutdown.cancelled() => break,
                call = calls.next() => match call {
                    Some(call) => call,
                    None => break,
                },
            };
            if let Some(reply) = call.reply {
                client.publish(reply, call.payload).await.context("cannot answer")?;
            }
        }
        Ok(())
    })
}
