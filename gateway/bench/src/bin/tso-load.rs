//! `tso-load`: timestamps per second from the timestamp oracle through a gateway, with the
//! collapsing client (docs/tso.md): `connections` gateway connections, each with one
//! `tso::client::Collapsing` shared by `callers` callers that each ask for `n` timestamps in a
//! loop (`--plain`: each caller calls the oracle itself, one call per request). Prints one JSON
//! line: timestamps and caller calls per second, caller latency percentiles, and failed calls.
//!
//! ```sh
//! cargo run --release -p gateway-bench --bin tso-load -- --gateway 127.0.0.1:7000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use gateway_client::{Client, ClientConfig};
use tso::client::Collapsing;
use tso::service::{TimestampsRequestT, TsoClient};

/// Timestamps per second through a gateway with the collapsing client.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The gateway's TCP address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    gateway: String,
    /// Gateway connections, each with its own collapsing client.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Callers per connection.
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// Timestamps each caller asks for per call.
    #[arg(long, default_value_t = 1)]
    n: u32,
    #[command(flatten)]
    window: gateway_bench::Window,
    /// Call the oracle directly, one call per caller's request (no collapsing).
    #[arg(long)]
    plain: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = gateway_bench::runtime(args.window.threads)?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (measuring, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (timestamps, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..args.connections.max(1) {
        let client = Client::connect(ClientConfig::new([args.gateway.clone()]))
            .await
            .with_context(|| format!("cannot connect to the gateway at {}", args.gateway))?;
        let oracle = TsoClient::new(client);
        let collapsing = Collapsing::new(oracle.clone());
        for _ in 0..args.callers.max(1) {
            let (collapsing, measuring, stop) =
                (collapsing.clone(), measuring.clone(), stop.clone());
            let (timestamps, failed, n) = (timestamps.clone(), failed.clone(), args.n);
            let (oracle, plain) = (oracle.clone(), args.plain);
            callers.spawn(async move {
                let mut latencies = hdrhistogram::Histogram::<u64>::new(3).expect("a histogram");
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let ok = if plain {
                        oracle.timestamps(TimestampsRequestT { n }).await.is_ok()
                    } else {
                        collapsing.timestamps(n).await.is_ok()
                    };
                    if measuring.load(Ordering::Relaxed) {
                        if ok {
                            timestamps.fetch_add(u64::from(n), Ordering::Relaxed);
                            let _ = latencies.record(started.elapsed().as_micros() as u64);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            });
        }
    }
    let (seconds, latencies) =
        gateway_bench::measure(&measuring, &stop, args.window.duration, &mut callers).await?;
    let total = timestamps.load(Ordering::Relaxed);
    println!(
        "{{\"timestamps_per_s\": {:.0}, \"calls_per_s\": {:.0}, \"p50_us\": {}, \"p99_us\": {}, \"failed\": {}, \"connections\": {}, \"callers\": {}, \"n\": {}, \"plain\": {}, \"seconds\": {seconds:.2}}}",
        total as f64 / seconds,
        latencies.len() as f64 / seconds,
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99),
        failed.load(Ordering::Relaxed),
        args.connections,
        args.callers,
        args.n,
        args.plain,
    );
    Ok(())
}
