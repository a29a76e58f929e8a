//! The gateway's load generator and its baselines.
//!
//! `loadgen` has two modes:
//!
//! - **RPC** (the default): C connections, D requests in flight on each with a payload of S
//!   bytes, every round trip in an HDR histogram: throughput, p50/p90/p99/p999/max, errors by
//!   status, printed for humans and as JSON. It calls `examples.echo.Echo.echo` (crate `echo`)
//!   through a gateway, or sends the same REQUEST frames to `raw-echo`, a length-framed TCP echo
//!   that does no work per frame, or (`--target nats`) calls the echo service directly over
//!   NATS with `async-nats` request/reply, as a gateway on NATS would, without the gateway.
//! - **Fan-out** (`loadgen fanout`): N subscribers on `examples.echo.Echo.broadcast`, one
//!   publisher, publish-to-deliver latency and deliveries per second, through a gateway or
//!   `raw-fanout`, a length-framed TCP server that relays each PUBLISH to every subscriber.
//! - **Idle** (`loadgen idle`): N connections over TCP or WebSocket that say HELLO and nothing
//!   more, held open while a script reads the gateway's memory.
//! - **Attack** (`loadgen attack`): RPC clients measured alone, then beside an attack
//!   (slowloris, floods, idle connections, readers that never read, lying payloads, forged
//!   tokens), and what the gateway did to the attackers: `scripts/bench-attacks`.
//! - **Soak** (`loadgen soak`): calls, pub/sub and connection churn at a steady rate for a long
//!   time, sampled every interval with the gateway's memory and open files: `scripts/soak`.
//!
//! The baselines are the limit of the transport (raw echo, raw fan-out) or of the bus (NATS),
//! against which the gateway's figures mean something. Both targets go through the same client code, written directly on
//! `gateway-protocol` frames so that the client's own cost is small and the same in both.
//! `scripts/bench-gateway`, `scripts/bench-nats` and `scripts/bench-fanout` run the comparisons;
//! `docs/benchmarks.md` has the results.
//!
//! # Layout
//!
//! One module per line, each using only those after it (`scripts/module-graph gateway/bench/src`
//! checks it).
//!
//! - [`load`]: [`run`], a whole RPC run: open, warm up, measure, merge.
//! - `nats`: the NATS target, `depth` `async-nats` requests in flight per client.
//! - [`soak`]: the soak mode, a steady mixed load (calls, pub/sub, connection churn) sampled over
//!   a long run with the gateway's memory and open files, for `scripts/soak`.
//! - [`attack`]: the attacks of the attack mode, on the bytes, and the well-behaved clients
//!   measured beside them.
//! - [`fanout`]: the fan-out mode, [`fanout::run`].
//! - `connection`: one RPC connection's writer and reader halves, and the handshake.
//! - [`summary`]: [`Tally`] (the histogram and error counts) and [`Summary`] (the report).
//! - [`config`]: [`LoadConfig`] and [`Target`], what an RPC run does.
//! - [`idle`]: the idle mode, connections that only say HELLO, for `scripts/bench-memory`.
//! - [`recovery`]: the recovery mode, the time to receive N missed events from a topic's
//!   history beside the time they take live.
//! - [`raw_echo`]: the baseline server of RPC runs, a length-framed TCP echo.
//! - [`raw_fanout`]: the baseline server of fan-out runs.
//! - [`raw_ws_echo`]: the WebSocket echo, the baseline of WebSocket clients' benchmarks
//!   (`raw-echo --websocket`).
//! - [`open_files`]: raising the open-files limit for thousands of connections.
//! - [`mod@error`]: [`LoadError`], why a run fails.
//!
//! # Example
//!
//! ```no_run
//! use gateway_bench::{LoadConfig, Target, run};
//!
//! # async fn example() -> Result<(), gateway_bench::LoadError> {
//! let mut config = LoadConfig::new("127.0.0.1:7000".parse().unwrap(), Target::Raw);
//! config.depth = 64;
//! let summary = run(&config).await?;
//! println!("{summary}");
//! # Ok(())
//! # }
//! ```

pub mod attack;
pub mod config;
mod connection;
pub mod error;
pub mod fanout;
pub mod idle;
pub mod load;
mod nats;
pub mod open_files;
pub mod raw_echo;
pub mod raw_fanout;
pub mod raw_ws_echo;
pub mod recovery;
pub mod soak;
pub mod summary;

pub use config::{LoadConfig, Target, TlsTarget};
pub use error::LoadError;
pub use load::run;
pub use summary::{Latency, Summary, Tally};

use tokio_util::sync::CancellationToken;

/// The window of the closed-loop load generators (`tso-load`, `tso-http-load`,
/// `mailbox-load`): how long they measure and on how many threads (`--duration`, `--threads`).
#[derive(Clone, Debug, clap::Args)]
pub struct Window {
    /// How long to measure, after a one-second warm-up.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// The shape of the mailbox benchmark's bundles, shared by its load generator and its
/// baseline (`mailbox-load`, `mailbox-store-bare`).
#[derive(Clone, Debug, clap::Args)]
pub struct BundleShape {
    /// Recipients per bundle.
    #[arg(long, default_value_t = 4)]
    pub recipients: usize,
    /// Devices the bundles go to.
    #[arg(long, default_value_t = 64)]
    pub devices: usize,
    /// Bytes of each bundle's common ciphertext.
    #[arg(long, default_value_t = 100)]
    pub common: usize,
    /// Bytes of each recipient's part.
    #[arg(long, default_value_t = 32)]
    pub part: usize,
}

impl BundleShape {
    /// # Errors
    ///
    /// Recipients out of 1 to `devices`.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=self.devices).contains(&self.recipients),
            "--recipients must be 1 to --devices"
        );
        Ok(())
    }
}

/// The measuring window of the closed-loop load generators (`tso-load`, `tso-http-load`,
/// `mailbox-load`): a one-second warm-up, then `duration` with `measuring` set, then `stop` set;
/// the seconds measured, and every task's latency histogram merged.
///
/// # Errors
///
/// A task that panicked, or histograms that cannot be merged.
pub async fn measure(
    measuring: &std::sync::atomic::AtomicBool,
    stop: &std::sync::atomic::AtomicBool,
    duration: std::time::Duration,
    tasks: &mut tokio::task::JoinSet<hdrhistogram::Histogram<u64>>,
) -> anyhow::Result<(f64, hdrhistogram::Histogram<u64>)> {
    use anyhow::Context as _;
    use std::sync::atomic::Ordering;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = std::time::Instant::now();
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = hdrhistogram::Histogram::<u64>::new(3).context("a histogram")?;
    while let Some(done) = tasks.join_next().await {
        latencies.add(done.context("a load task")?).context("merging histograms")?;
    }
    Ok((seconds, latencies))
}

/// The multi-threaded tokio runtime every program here runs on: `threads` workers, IO and time
/// on.
///
/// # Errors
///
/// `threads` of 0, or the runtime failing to start.
pub fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    anyhow::ensure!(threads > 0, "`--threads` must be at least 1, not `0`");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// Cancels `shutdown` at Ctrl-C or SIGTERM: how the baseline servers stop.
pub async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    shutdown.cancel();
}
