//! The WebSocket baseline: a raw WebSocket echo (see `gateway_bench::raw_ws_echo`), what a
//! WebSocket client's benchmark compares the gateway's WebSocket endpoint against.
//!
//! Run with:
//!
//! ```sh
//! cargo run --release -p gateway-bench --bin raw-ws-echo -- --listen 127.0.0.1:7003 --threads 1
//! ```
//!
//! It serves until Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Echoes every binary WebSocket message back unchanged.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:7003")]
    listen: SocketAddr,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.threads == 0 {
        bail!("`--threads` must be at least 1, not `0`");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on `{}`", args.listen))?;
        println!("raw-ws-echo listening on {}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        tokio::spawn(gateway_bench::stop_on_signal(shutdown.clone()));
        gateway_bench::raw_ws_echo::serve(listener, shutdown).await.context("accept failed")
    })
}
