//! Drives a gateway's echo method, or the raw echo, and reports throughput and latency.
//!
//! Run with:
//!
//! ```sh
//! cargo run --release -p gateway-bench --bin raw-echo -- --listen 127.0.0.1:7001 &
//! cargo run --release -p gateway-bench --bin loadgen -- --addr 127.0.0.1:7001 --target raw \
//!     --connections 1 --depth 64 --payload 1024 --json raw.json
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use gateway_bench::{LoadConfig, Target};

/// Load generator for the gateway: C connections × D requests in flight × S-byte payloads.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The server's address.
    #[arg(long)]
    addr: SocketAddr,
    /// What the server is: a gateway serving `examples.echo.Echo`, or `raw-echo`.
    #[arg(long, value_enum, default_value_t = TargetArg::Gateway)]
    target: TargetArg,
    /// TCP connections to open.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Requests kept in flight on each connection.
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Bytes of data in each request's `Blob`.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds to measure.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Each request's deadline, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u32,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TargetArg {
    Gateway,
    Raw,
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("`--{flag}` must be a number of seconds, not `{value}`"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = LoadConfig::new(
        args.addr,
        match args.target {
            TargetArg::Gateway => Target::Gateway,
            TargetArg::Raw => Target::Raw,
        },
    );
    config.connections = args.connections;
    config.depth = args.depth;
    config.payload = args.payload;
    config.warmup = seconds("warmup", args.warmup)?;
    config.duration = seconds("duration", args.duration)?;
    config.timeout_ms = args.timeout_ms;
    if let Err(message) = config.validate() {
        bail!(message);
    }
    if args.threads == 0 {
        bail!("`--threads` must be at least 1, not `0`");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let summary = runtime.block_on(gateway_bench::run(&config))?;
    println!("{summary}");
    if let Some(path) = args.json {
        std::fs::write(&path, summary.to_json() + "\n")
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(())
}
