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
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use gateway_bench::fanout::{FanoutConfig, Pace};
use gateway_bench::idle::{IdleConfig, IdleTransport};
use gateway_bench::soak::{process_cpu, process_use};
use gateway_bench::{Latency, LoadConfig, Tally, Target, open_files};
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
    /// Well-behaved RPC clients measured alone, then beside an attack on the gateway; their
    /// latency both times and what the gateway did to the attackers.
    Attack(AttackArgs),
    /// Calls, pub/sub and connection churn at a steady rate for a long time, one sample (calls,
    /// latency, events, the gateway's memory and open files) per interval, as JSON lines.
    Soak(SoakArgs),
}

/// The soak mode.
#[derive(Debug, ClapArgs)]
struct SoakArgs {
    /// The gateway's TCP address.
    #[arg(long)]
    addr: SocketAddr,
    /// Echo calls a second, all call connections together (open loop).
    #[arg(long, default_value_t = 10_000.0)]
    calls_per_s: f64,
    /// Connections the calls are spread over.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Unanswered calls allowed per connection; a call due past that is counted `behind`.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// Bytes of each call's `Blob`.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Subscriber connections on `broadcast`.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Events published a second on `broadcast` (each delivered to every subscriber).
    #[arg(long, default_value_t = 100.0)]
    events_per_s: f64,
    /// Short-lived connections a second (HELLO, SUBSCRIBE, one call, close).
    #[arg(long, default_value_t = 20.0)]
    churn_per_s: f64,
    /// How long the load runs.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How often a sample is taken.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// The gateway's process id: its resident memory and open files go in every sample.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also append every sample to this file, one JSON object a line.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The attack mode.
#[derive(Debug, ClapArgs)]
struct AttackArgs {
    /// The gateway's TCP address (the well-behaved clients' and most attacks').
    #[arg(long)]
    addr: SocketAddr,
    /// The gateway's WebSocket address (slowloris-ws).
    #[arg(long)]
    ws_addr: Option<SocketAddr>,
    /// The gateway's admin address (slowloris-admin; its metrics are read before and after).
    #[arg(long)]
    admin_addr: Option<SocketAddr>,
    /// The attack: slowloris-tcp, slowloris-ws, slowloris-admin, flood, rate-flood, idle,
    /// never-reads, oversized, bad-tokens; or none, the control (nothing attacks).
    #[arg(long)]
    attack: String,
    /// Attacking connections at once.
    #[arg(long, default_value_t = 200)]
    connections: usize,
    /// Loopback source addresses to spread the attackers over (127.0.1.0 onwards); 0: the
    /// well-behaved clients' own (127.0.0.1).
    #[arg(long, default_value_t = 0)]
    sources: u32,
    /// Milliseconds between two bytes of a slowloris client.
    #[arg(long, default_value_t = 500)]
    trickle_ms: u64,
    /// Well-behaved connections.
    #[arg(long, default_value_t = 4)]
    victims: usize,
    /// Milliseconds each well-behaved connection waits between an answer and its next call.
    #[arg(long, default_value_t = 1)]
    think_ms: u64,
    /// Seconds the attack runs before the attacked measurement starts.
    #[arg(long, default_value_t = 3.0)]
    ramp: f64,
    /// Seconds of each measurement (alone, then attacked).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Rounds of a measurement alone then one attacked; the median of the rounds' p99 ratios
    /// is reported beside the pooled figures.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Seconds between an attack's end and the next round's measurement alone.
    #[arg(long, default_value_t = 8.0)]
    cooldown: f64,
    /// The attack's thread's nice value (0 to 19): how far behind the well-behaved clients it
    /// is scheduled when they share a core.
    #[arg(long, default_value_t = 19)]
    attack_nice: i32,
    /// Run the attack's thread under SCHED_IDLE: only when the core has nothing else to run.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    attack_idle: bool,
    /// The core the attack's thread runs on (default: wherever loadgen runs). On the gateway's
    /// core, the kernel's work for the attack's traffic (the loopback's receive side runs in the
    /// sender's context) lands where a real attack's would, on the server, instead of on the
    /// well-behaved clients' core.
    #[arg(long)]
    attack_cpu: Option<usize>,
    /// The gateway's process id: its resident memory and open files are read before and after.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
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
        Some(Mode::Attack(args)) => attack(args),
        Some(Mode::Soak(args)) => soak(args),
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

fn soak(args: SoakArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let config = gateway_bench::soak::SoakConfig {
        addr: args.addr,
        calls_per_s: args.calls_per_s,
        connections: args.connections,
        in_flight: args.in_flight,
        payload: args.payload,
        subscribers: args.subscribers,
        events_per_s: args.events_per_s,
        churn_per_s: args.churn_per_s,
        duration: args.duration,
        interval: args.interval,
        gateway_pid: args.gateway_pid,
    };
    let mut out = match &args.json {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create `{}`", path.display()))?,
        ),
        None => None,
    };
    open_files::raise_to_hard_limit().context("cannot raise RLIMIT_NOFILE")?;
    let mut written = Ok(());
    gateway_bench::runtime(args.threads)?.block_on(gateway_bench::soak::run(&config, |sample| {
        let failed: u64 = sample.call_errors.values().sum::<u64>() + sample.calls_unanswered;
        println!(
            "{:>7.0} s  calls {:>7} (p50 {:>6.0} p99 {:>6.0} max {:>7.0} us, {} failed, {} behind)  \
             events {:>7} ({} missed)  churned {} ({} failed)  rss {} KiB  fds {}",
            sample.t_s,
            sample.calls,
            sample.p50_us,
            sample.p99_us,
            sample.max_us,
            failed,
            sample.calls_behind,
            sample.events,
            sample.events_missed,
            sample.churned,
            sample.churn_failed,
            sample.rss_kib.map_or("?".into(), |v| v.to_string()),
            sample.fds.map_or("?".into(), |v| v.to_string()),
        );
        if let (Some(file), Ok(())) = (out.as_mut(), &written) {
            let line = serde_json::to_string(sample).expect("a sample serialises");
            written = writeln!(file, "{line}");
        }
    }))?;
    written.context("cannot write the samples")
}

/// The `gateway_goaway_total` lines of the admin port's metrics, by reason.
async fn goaways(admin: Option<SocketAddr>) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let Some(admin) = admin else { return out };
    let request = "GET /metrics HTTP/1.1\r\nHost: loadgen\r\nConnection: close\r\n\r\n";
    let text = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(admin).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        Some(text)
    };
    let Ok(Some(text)) = tokio::time::timeout(Duration::from_secs(5), text).await else {
        return out;
    };
    for line in text.lines().filter(|l| l.starts_with("gateway_goaway_total{reason=\"")) {
        let Some((labels, value)) = line.rsplit_once(' ') else { continue };
        let reason =
            labels.trim_start_matches("gateway_goaway_total{reason=\"").trim_end_matches("\"}");
        if let Ok(value) = value.parse::<f64>() {
            out.insert(reason.to_owned(), value as u64);
        }
    }
    out
}

fn attack(args: AttackArgs) -> anyhow::Result<()> {
    use gateway_bench::attack::{self, Attack, AttackConfig, Counters, Victims};
    let Some(kind) = Attack::from_name(&args.attack) else {
        let names: Vec<&str> = Attack::ALL.iter().map(|a| a.name()).collect();
        bail!("no attack `{}`; the attacks are {}", args.attack, names.join(", "));
    };
    let needs = |addr: Option<SocketAddr>, flag: &str| {
        addr.ok_or_else(|| anyhow::anyhow!("`--attack {}` needs `--{flag}`", args.attack))
    };
    let config = AttackConfig {
        attack: kind,
        addr: args.addr,
        ws_addr: if kind == Attack::SlowlorisWs {
            needs(args.ws_addr, "ws-addr")?
        } else {
            args.addr
        },
        admin_addr: if kind == Attack::SlowlorisAdmin {
            needs(args.admin_addr, "admin-addr")?
        } else {
            args.addr
        },
        connections: args.connections,
        sources: args.sources,
        trickle: Duration::from_millis(args.trickle_ms),
    };
    let (ramp, duration) = (seconds("ramp", args.ramp)?, seconds("duration", args.duration)?);
    let cooldown = seconds("cooldown", args.cooldown)?;
    open_files::raise_to_hard_limit().context("cannot raise RLIMIT_NOFILE")?;
    // The attack and the well-behaved clients on runtimes (threads) of their own, the attack's
    // at `--attack-nice`: on a machine where the attackers share a core with the well-behaved
    // clients, the clients' latency should be the gateway's, not a wait for the attackers' own
    // work (attackers are other machines, in a real attack).
    let nice = args.attack_nice;
    let idle = args.attack_idle;
    let attack_cpu = args.attack_cpu;
    let attack_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(move || {
            let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice);
            if idle {
                // SCHED_IDLE: the thread runs only when no other wants the core, and a client
                // thread that wakes takes the core at once. Nice 19 alone is not enough: the
                // scheduler may let a nice-19 thread finish its slice (milliseconds) first.
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: plain system call on the calling thread (0) with a valid parameter.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
            }
            if let Some(cpu) = attack_cpu {
                let mut set = rustix::thread::CpuSet::new();
                if cpu < rustix::thread::CpuSet::MAX_CPU {
                    set.set(cpu);
                }
                // An empty set (a core past the largest) is refused too, and said so.
                if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
                    eprintln!("loadgen: the attack's thread cannot run on core {cpu}: {e}");
                }
            }
        })
        .build()
        .context("cannot start the attack's runtime")?;
    let runtime = gateway_bench::runtime(1)?;
    runtime.block_on(async {
        let mut victims = Victims::open(args.addr, args.victims, Duration::from_millis(args.think_ms)).await?;
        // Warm up (connections, caches), then measure.
        victims.measure(Duration::from_secs(1)).await;
        let before = args.gateway_pid.and_then(process_use);
        let goaways_before = goaways(args.admin_addr).await;
        // Rounds of a window alone then a window attacked, each pair compared on its own: this
        // machine's latency drifts over minutes, and adjacent windows share its conditions.
        let counters = Arc::new(Counters::default());
        let (mut alone_tally, mut tally) = (Tally::new(), Tally::new());
        let mut rounds = Vec::new();
        let mut during_use = None;
        let mut after = None;
        // The gateway's CPU time and context switches over the windows alone and attacked.
        let cpu = || args.gateway_pid.and_then(process_cpu);
        let (mut cpu_alone, mut cpu_attacked) = ((0, 0), (0, 0));
        let add = |sum: &mut (u64, u64), from: Option<(u64, u64)>, to: Option<(u64, u64)>| {
            if let (Some(from), Some(to)) = (from, to) {
                // Saturating: a thread that ended takes its context switches with it.
                sum.0 += to.0.saturating_sub(from.0);
                sum.1 += to.1.saturating_sub(from.1);
            }
        };
        for round in 0..args.rounds.max(1) {
            if round > 0 {
                // The attack's connections closed, timed out and freed before measuring alone.
                tokio::time::sleep(cooldown).await;
            }
            let start = cpu();
            let alone_round = victims.measure(duration).await;
            add(&mut cpu_alone, start, cpu());
            let stop = CancellationToken::new();
            let attacking =
                attack_runtime.spawn(attack::run(config.clone(), counters.clone(), stop.clone()));
            tokio::time::sleep(ramp).await;
            during_use = during_use.or_else(|| args.gateway_pid.and_then(process_use));
            let start = cpu();
            let attacked_round = victims.measure(duration).await;
            add(&mut cpu_attacked, start, cpu());
            after = args.gateway_pid.and_then(process_use);
            stop.cancel();
            let _ = attacking.await;
            let (a, b) = (Latency::of(&alone_round), Latency::of(&attacked_round));
            eprintln!(
                "{} round {}: p99 {:.0} -> {:.0} us ({:.2}x)",
                kind.name(),
                round + 1,
                a.p99,
                b.p99,
                b.p99 / a.p99
            );
            rounds.push((a, b));
            alone_tally.merge(&alone_round);
            tally.merge(&attacked_round);
        }
        let alone = Latency::of(&alone_tally);
        let attacked = Latency::of(&tally);
        let mut ratios: Vec<f64> = rounds.iter().map(|(a, b)| b.p99 / a.p99).collect();
        ratios.sort_by(f64::total_cmp);
        let median_ratio = ratios[ratios.len() / 2];
        let goaways_after = goaways(args.admin_addr).await;
        let sent_goaways: std::collections::BTreeMap<String, u64> = goaways_after
            .iter()
            .map(|(reason, n)| (reason.clone(), n - goaways_before.get(reason).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let report = serde_json::json!({
            "attack": kind.name(),
            "attackers": args.connections,
            "sources": args.sources,
            "attack_nice": args.attack_nice,
            "attack_idle": args.attack_idle,
            "attack_cpu": args.attack_cpu,
            "alone_us": { "p50": alone.p50, "p99": alone.p99, "max": alone.max, "calls": alone_tally.ok() },
            "attacked_us": { "p50": attacked.p50, "p99": attacked.p99, "max": attacked.max, "calls": tally.ok() },
            "p50_ratio": (attacked.p50 / alone.p50 * 100.0).round() / 100.0,
            "p99_ratio": (attacked.p99 / alone.p99 * 100.0).round() / 100.0,
            "rounds": rounds.iter().map(|(a, b)| serde_json::json!({
                "alone_p99_us": a.p99.round(), "attacked_p99_us": b.p99.round(),
                "p99_ratio": (b.p99 / a.p99 * 100.0).round() / 100.0,
            })).collect::<Vec<_>>(),
            "median_round_p99_ratio": (median_ratio * 100.0).round() / 100.0,
            "victim_errors": tally.errors().iter().map(|(k, n)| ((*k).to_owned(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
            "attack": {
                "name": kind.name(),
                "opened": load(&counters.opened),
                "connect_failed": load(&counters.connect_failed),
                "closed_by_gateway": load(&counters.closed),
                "welcomed": load(&counters.welcomed),
                "calls_answered": load(&counters.answered),
                "calls_refused": load(&counters.refused_calls),
                "bytes_sent": load(&counters.sent),
                "longest_open_ms": load(&counters.longest_open_ms),
                "goaways_seen": counters.goaways(),
            },
            "gateway": {
                "goaways_sent": sent_goaways,
                "rss_kib_before": before.map(|u| u.0),
                "rss_kib_attacked": during_use.map(|u| u.0),
                "rss_kib_after": after.map(|u| u.0),
                "fds_before": before.map(|u| u.1),
                "fds_attacked": during_use.map(|u| u.1),
                "fds_after": after.map(|u| u.1),
                "cpu_ms_alone": cpu_alone.0,
                "cpu_ms_attacked": cpu_attacked.0,
                "context_switches_alone": cpu_alone.1,
                "context_switches_attacked": cpu_attacked.1,
            },
        });
        println!(
            "{}: victims p50 {:.0} -> {:.0} us ({:.2}x), p99 {:.0} -> {:.0} us ({:.2}x), median of {} rounds' p99 ratios {:.2}x, {} failed calls",
            kind.name(),
            alone.p50,
            attacked.p50,
            attacked.p50 / alone.p50,
            alone.p99,
            attacked.p99,
            attacked.p99 / alone.p99,
            rounds.len(),
            median_ratio,
            tally.failed()
        );
        println!("{}", serde_json::to_string_pretty(&report["attack"])?);
        println!("{}", serde_json::to_string_pretty(&report["gateway"])?);
        write_json(args.json.as_deref(), serde_json::to_string_pretty(&report)?)
    })
}
