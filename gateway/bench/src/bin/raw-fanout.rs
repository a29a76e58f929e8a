//! The fan-out benchmark's baseline: a length-framed TCP server that relays every PUBLISH to
//! every subscriber (see `gateway_bench::raw_fanout`).
//!
//! Run with:
//!
//! ```sh
//! cargo run --release -p gateway-bench --bin raw-fanout -- --listen 127.0.0.1:7002 --threads 1
//! ```
//!
//! It serves until Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use clap::Parser;
use gateway_bench::{open_files, raw_fanout};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Relays every PUBLISH's payload as an EVENT to every subscription.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:7002")]
    listen: SocketAddr,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Bytes of events a connection may have pending; past it the oldest are dropped (and
    /// reported with MISSED).
    #[arg(long, default_value_t = raw_fanout::DEFAULT_QUEUE_BYTES)]
    queue_bytes: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.queue_bytes == 0 {
        bail!("`--queue-bytes` must be at least 1, not `0`");
    }
    let open_files = open_files::raise_to_hard_limit().context("cannot raise RLIMIT_NOFILE")?;
    let runtime = gateway_bench::runtime(args.threads)?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on `{}`", args.listen))?;
        let limit = open_files.map_or("unlimited".to_owned(), |n| n.to_string());
        println!("raw-fanout listening on {} (open files: {limit})", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        tokio::spawn(gateway_bench::stop_on_signal(shutdown.clone()));
        raw_fanout::serve(listener, args.queue_bytes, shutdown).await.context("accept failed")
    })
}
