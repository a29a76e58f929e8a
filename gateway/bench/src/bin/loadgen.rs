//! Drives a gateway's echo method or its broadcast topic, or the matching baseline (raw echo,
//! raw fan-out, the echo service called directly over NATS), and reports throughput and latency.
//!
//! Run with:
//!
//! ```sh
//! # RPC: C connections x D requests in flight
//! cargo run --release -p gateway-bench --bin raw-echo -- --listen 127.0.0.1:7001 &
//! cargo run --release -p gateway-bench --bin loadgen -- --addr 127.0.0.1:7001 --target raw \
//!     --connections 1 --depth 64 --payload 1024 --json raw.json
//! # RPC to the echo service over NATS, without a gateway (the baseline of `gateway --nats`)
//! nats-server -a 127.0.0.1 -p 4222 &
//! cargo run --release -p echo --bin echo-service -- --nats nats://127.0.0.1:4222 &
//! cargo run --release -p gateway-bench --bin loadgen -- --addr 127.0.0.1:4222 --target nats \
//!     --connections 16 --depth 64 --json nats.json
//! # Fan-out: one publisher, N subscribers
//! cargo run --release -p gateway-bench --bin raw-fanout -- --listen 127.0.0.1:7002 &
//! cargo run --release -p gateway-bench --bin loadgen -- fanout --addr 127.0.0.1:7002 \
//!     --target raw --subscribers 100 --rate 2000 --json fanout.json
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use gateway_bench::fanout::{FanoutConfig, Pace};
use gateway_bench::idle::{IdleConfig, IdleTransport};
use gateway_bench::{LoadConfig, Target, open_files};
use tokio_util::sync::CancellationToken;

/// Load generator for the gateway: RPC (C connections × D requests in flight × S-byte payloads)
/// by default, or fan-out (`loadgen fanout --help`).
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    rpc: RpcArgs,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// One publisher, N subscribers on one topic: deliveries/s and publish-to-deliver latency.
    Fanout(FanoutArgs),
    /// N connections that say HELLO and then nothing, held open (prints `ready: N ...` once all
    /// are welcomed), to measure what an idle connection costs the server.
    Idle(IdleArgs),
    /// The time a client that comes back takes to receive the N events it missed on a topic
    /// with history (`examples.echo.Echo.journal`), beside the time they take live.
    Recovery(RecoveryArgs),
}

/// The recovery mode.
#[derive(Debug, ClapArgs)]
struct RecoveryArgs {
    /// The gateway's address.
    #[arg(long)]
    addr: SocketAddr,
    /// Events missed per round (at most the gateway's `recovery_max_events`).
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Bytes of each event's data (at least 8: its number).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Acknowledged publishes in flight.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Rounds; the medians are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The idle mode.
#[derive(Debug, ClapArgs)]
struct IdleArgs {
    /// The server's address (its TCP or its WebSocket listener).
    #[arg(long)]
    addr: SocketAddr,
    /// Connections to open.
    #[arg(long, default_value_t = 1_000)]
    connections: usize,
    /// Connect over WebSocket (an HTTP upgrade first) instead of TCP.
    #[arg(long)]
    websocket: bool,
    /// The token HELLO carries (a JWT); none by default.
    #[arg(long, default_value = "")]
    token: String,
    /// Connections opened at once while setting up.
    #[arg(long, default_value_t = 200)]
    connect_batch: usize,
    /// Seconds to hold the connections open once all are welcomed (SIGTERM or Ctrl-C ends it
    /// sooner).
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
}

/// The RPC mode: calls of `examples.echo.Echo.echo`.
#[derive(Debug, ClapArgs)]
struct RpcArgs {
    /// The server's address: the gateway's, raw-echo's, or with `--target nats` the NATS
    /// server's (required; an `Option` only because the `fanout` subcommand has its own).
    #[arg(long, required = true)]
    addr: Option<SocketAddr>,
    /// What the server is: a gateway serving `examples.echo.Echo`, `raw-echo`, or a NATS server
    /// through which the echo service (`echo-service --nats`) is called directly.
    #[arg(long, value_enum, default_value_t = RpcTargetArg::Gateway)]
    target: RpcTargetArg,
    /// Connections to open (NATS client connections with `--target nats`).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Requests kept in flight on each connection.
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Bytes of data in each request's `Blob`.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Each request's deadline, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u32,
    /// Speak TLS to the gateway (started with `--tls-cert`), trusting the CA certificates in
    /// this PEM file.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// The name the gateway's certificate must be for, with `--tls-ca`.
    #[arg(long, value_name = "NAME", default_value = "localhost", requires = "tls_ca")]
    tls_name: String,
    #[command(flatten)]
    run: RunArgs,
}

/// The fan-out mode: events on `examples.echo.Echo.broadcast`.
#[derive(Debug, ClapArgs)]
struct FanoutArgs {
    /// The server's address.
    #[arg(long)]
    addr: SocketAddr,
    /// What the server is: a gateway serving `examples.echo.Echo`, or `raw-fanout`.
    #[arg(long, value_enum, default_value_t = TargetArg::Gateway)]
    target: TargetArg,
    /// Subscriber connections, one subscription each.
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// The topic: `broadcast`, or `journal` (the same with a history the gateway keeps).
    #[arg(long, value_enum, default_value_t = TopicArg::Broadcast)]
    topic: TopicArg,
    /// Bytes of each event's payload (at least 16: sequence number and send time).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Events published per second, on a fixed schedule (open loop, unacknowledged publishes).
    #[arg(long, default_value_t = 1_000.0, conflicts_with = "max")]
    rate: f64,
    /// Publish as fast as acknowledgements allow instead, `--window` publishes in flight.
    #[arg(long)]
    max: bool,
    /// Acknowledged publishes in flight with `--max`.
    #[arg(long, default_value_t = 16, requires = "max")]
    window: u32,
    /// Seconds subscribers wait, after publishing ends, for events still on their way.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Tasks the subscribers are read by.
    #[arg(long, default_value_t = 16)]
    reader_tasks: usize,
    /// Subscriber connections opened at once while setting up.
    #[arg(long, default_value_t = 200)]
    connect_batch: usize,
    #[command(flatten)]
    run: RunArgs,
}

/// What both modes share: timing, threads, output.
#[derive(Debug, ClapArgs)]
struct RunArgs {
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds to measure.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The fan-out mode's topics.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum TopicArg {
    Broadcast,
    Journal,
}

impl TopicArg {
    fn name(self) -> &'static str {
        match self {
            TopicArg::Broadcast => "examples.echo.Echo.broadcast",
            TopicArg::Journal => "examples.echo.Echo.journal",
        }
    }
}

/// The RPC mode's targets.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum RpcTargetArg {
    Gateway,
    Raw,
    Nats,
}

impl From<RpcTargetArg> for Target {
    fn from(target: RpcTargetArg) -> Target {
        match target {
            RpcTargetArg::Gateway => Target::Gateway,
            RpcTargetArg::Raw => Target::Raw,
            RpcTargetArg::Nats => Target::Nats,
        }
    }
}

/// The fan-out mode's targets.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum TargetArg {
    Gateway,
    Raw,
}

impl From<TargetArg> for Target {
    fn from(target: TargetArg) -> Target {
        match target {
            TargetArg::Gateway => Target::Gateway,
            TargetArg::Raw => Target::Raw,
        }
    }
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("`--{flag}` must be a number of seconds, not `{value}`"))
}

fn write_json(path: Option<&Path>, json: String) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.mode {
        Some(Mode::Fanout(args)) => fanout(args),
        Some(Mode::Idle(args)) => idle(args),
        Some(Mode::Recovery(args)) => recovery(args),
        None => rpc(cli.rpc),
    }
}

fn rpc(args: RpcArgs) -> anyhow::Result<()> {
    // clap requires `--addr` when no subcommand is given.
    let Some(addr) = args.addr else { bail!("give `--addr`, or the `fanout` subcommand") };
    let mut config = LoadConfig::new(addr, args.target.into());
    config.connections = args.connections;
    config.depth = args.depth;
    config.payload = args.payload;
    config.warmup = seconds("warmup", args.run.warmup)?;
    config.duration = seconds("duration", args.run.duration)?;
    config.timeout_ms = args.timeout_ms;
    if let Some(ca) = &args.tls_ca {
        let pem = std::fs::read(ca).with_context(|| format!("cannot read `{}`", ca.display()))?;
        let tls = gateway_bench::TlsTarget::new(&pem, &args.tls_name)
            .map_err(|e| anyhow::anyhow!("--tls-ca `{}`: {e}", ca.display()))?;
        config.tls = Some(tls);
    }
    if let Err(message) = config.validate() {
        bail!(message);
    }
    let summary =
        gateway_bench::runtime(args.run.threads)?.block_on(gateway_bench::run(&config))?;
    println!("{summary}");
    write_json(args.run.json.as_deref(), summary.to_json())
}

fn idle(args: IdleArgs) -> anyhow::Result<()> {
    let config = IdleConfig {
        addr: args.addr,
        connections: args.connections,
        transport: if args.websocket { IdleTransport::WebSocket } else { IdleTransport::Tcp },
        token: args.token,
        connect_batch: args.connect_batch,
        hold: seconds("hold", args.hold)?,
    };
    open_files::raise_to_hard_limit().context("cannot raise RLIMIT_NOFILE")?;
    let stop = CancellationToken::new();
    let runtime = gateway_bench::runtime(1)?;
    runtime.spawn(gateway_bench::stop_on_signal(stop.clone()));
    runtime.block_on(gateway_bench::idle::run(&config, stop.cancelled()))?;
    Ok(())
}

fn recovery(args: RecoveryArgs) -> anyhow::Result<()> {
    let config = gateway_bench::recovery::RecoveryConfig {
        addr: args.addr,
        events: args.events,
        payload: args.payload,
        window: args.window.max(1),
        rounds: args.rounds.max(1),
    };
    let summary =
        gateway_bench::runtime(args.threads)?.block_on(gateway_bench::recovery::run(&config))?;
    println!(
        "recovery of {} missed events ({} B): {:.1} ms (median of {}); the same number live: {:.1} ms",
        summary.events,
        summary.payload,
        summary.recovery_ms,
        summary.rounds.len(),
        summary.live_ms
    );
    write_json(args.json.as_deref(), serde_json::to_string_pretty(&summary)?)
}

fn fanout(args: FanoutArgs) -> anyhow::Result<()> {
    let mut config = FanoutConfig::new(args.addr, args.target.into());
    config.topic = args.topic.name();
    config.subscribers = args.subscribers;
    config.payload = args.payload;
    config.pace = if args.max {
        Pace::Max { window: args.window }
    } else {
        Pace::Rate { events_per_s: args.rate }
    };
    config.warmup = seconds("warmup", args.run.warmup)?;
    config.duration = seconds("duration", args.run.duration)?;
    config.drain = seconds("drain", args.drain)?;
    config.reader_tasks = args.reader_tasks;
    config.connect_batch = args.connect_batch;
    if let Err(message) = config.validate() {
        bail!(message);
    }
    open_files::raise_to_hard_limit().context("cannot raise RLIMIT_NOFILE")?;
    let summary =
        gateway_bench::runtime(args.run.threads)?.block_on(gateway_bench::fanout::run(&config))?;
    println!("{summary}");
    write_json(args.run.json.as_deref(), summary.to_json())
}
