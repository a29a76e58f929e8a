//! The baselines of the RPC benchmarks: a raw length-framed TCP echo (see
//! `gateway_bench::raw_echo`), what `loadgen --target raw` measures; with `--websocket`, a raw
//! WebSocket echo (see `gateway_bench::raw_ws_echo`), what WebSocket clients' benchmarks compare
//! the gateway's WebSocket endpoint against (`scripts/bench-ws`).
//!
//! Run with:
//!
//! ```sh
//! cargo run --release -p gateway-bench --bin raw-echo -- --listen 127.0.0.1:7001 --threads 1
//! cargo run --release -p gateway-bench --bin raw-echo -- --websocket --listen 127.0.0.1:7003
//! ```
//!
//! It serves until Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Echoes every length-prefixed frame (or, with --websocket, every binary WebSocket message) back
/// unchanged.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:7001")]
    listen: SocketAddr,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Speak WebSocket: echo binary messages rather than length-prefixed frames.
    #[arg(long)]
    websocket: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = gateway_bench::runtime(args.threads)?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on `{}`", args.listen))?;
        let what = if args.websocket { "WebSocket" } else { "framed TCP" };
        println!("raw-echo ({what}) listening on {}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        tokio::spawn(gateway_bench::stop_on_signal(shutdown.clone()));
        let served = if args.websocket {
            gateway_bench::raw_ws_echo::serve(listener, shutdown).await
        } else {
            gateway_bench::raw_echo::serve(listener, shutdown).await
        };
        served.context("accept failed")
    })
}
