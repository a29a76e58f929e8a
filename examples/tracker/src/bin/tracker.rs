//! The tracker's command line: the demo (everything in one command), enrol devices, list them,
//! manage users, serve (UDP ingest + the `Tracker` and `TrackerAccounts` services over NATS, as a
//! process of its own), and ingest (one shard of the devices' reports, stored through `serve`
//! over NATS, as more processes).
//!
//! ```text
//! cargo run -p tracker -- demo          # then open the printed dashboard URLs
//! cargo run -p tracker -- enrol --db tracker.db --name bike --ingest 127.0.0.1:7403 --qr bike.svg
//! cargo run -p tracker -- devices --db tracker.db
//! cargo run -p tracker -- serve --db tracker.db --ingest 127.0.0.1:7403 --nats nats://127.0.0.1:4222
//! cargo run -p tracker -- user add --db tracker.db alice --role admin   # the password from stdin
//! # Two ingest processes, each serving half the devices, storing through `serve`:
//! cargo run -p tracker -- serve --db tracker.db --no-ingest --remote-ingest \
//!     --public-ingest 127.0.0.1:7403,127.0.0.1:7404
//! cargo run -p tracker -- ingest --listen 127.0.0.1:7403 --shard 0/2
//! cargo run -p tracker -- ingest --listen 127.0.0.1:7404 --shard 1/2
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway_bus::{BusTopics, ServiceRuntime, process};
use tokio_util::sync::CancellationToken;
use tracker::accounts::AccountsService;
use tracker::accounts::tokens::{self, Tokens};
use tracker::demo::{Demo, DemoConfig};
use tracker::enrol::enrol;
use tracker::ingest::{Ingest, IngestError, IngestOptions, Shard, StorageError, now_ms};
use tracker::retention::{Downsample, EVERY, Policy};
use tracker::service::TrackerService;
use tracker::storage::{RemoteStorage, StorageService};
use tracker::store::Store;
use tracker::store::accounts::Role;
use tracker::{TrackerAccountsServer, TrackerClient, TrackerServer, TrackerStorageServer};

#[derive(Debug, Parser)]
#[command(name = "tracker", version, about = "The device tracker (docs/tracker.md).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the whole tracker in one process: the gateway with tokens, the service and its
    /// ingest, simulated devices, and the dashboard's web server (docs/tracker.md, "The demo").
    /// Prints every address and each demo user's dashboard URL; Ctrl-C stops it gracefully.
    Demo(DemoArgs),
    /// Enrols a device: prints its enrolment URI, and writes its QR code with --qr.
    Enrol {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        #[arg(long)]
        name: String,
        /// The ingest address devices send to (host:port).
        #[arg(long, value_name = "HOST:PORT")]
        ingest: String,
        /// Writes the QR code of the enrolment URI to this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        qr: Option<PathBuf>,
    },
    /// Lists the enrolled devices.
    Devices {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
    },
    /// Manages the users who sign in to the dashboard (docs/tracker.md, "Accounts").
    #[command(subcommand)]
    User(UserCommand),
    /// Receives reports on UDP and serves the Tracker and TrackerAccounts services over NATS
    /// until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Receives reports on UDP for one shard of the devices and stores them through `tracker
    /// serve --remote-ingest` over NATS, then acknowledges and publishes them, until SIGINT or
    /// SIGTERM (docs/tracker.md, "Ingest processes on NATS").
    Ingest {
        /// The UDP address to receive reports on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7403")]
        listen: String,
        /// The devices this process serves: INDEX/COUNT, those whose id modulo COUNT is INDEX.
        /// Reports of other devices are dropped as from unknown devices.
        #[arg(long, value_name = "INDEX/COUNT", default_value = "0/1")]
        shard: Shard,
        /// Receive threads, each with a socket sharing the address. Default: one per core.
        #[arg(long, value_name = "N")]
        receivers: Option<usize>,
        #[command(flatten)]
        nats: gateway_bus::process::NatsArgs,
    },
}

/// `tracker serve`'s arguments.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
    /// The UDP address to receive reports on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7403")]
    ingest: String,
    /// The devices this process's ingest serves: INDEX/COUNT, those whose id modulo COUNT is
    /// INDEX; `tracker ingest` processes serve the other shards.
    #[arg(long, value_name = "INDEX/COUNT", default_value = "0/1")]
    ingest_shard: Shard,
    /// No ingest in this process: reports come through `tracker ingest` processes.
    #[arg(long, conflicts_with = "ingest_shard")]
    no_ingest: bool,
    /// Also serve `TrackerStorage` on the bus, through which `tracker ingest` processes read
    /// their devices (keys included) and store their reports.
    #[arg(long)]
    remote_ingest: bool,
    #[command(flatten)]
    nats: gateway_bus::process::NatsArgs,
    /// Let callers without an identity see every device (development only).
    #[arg(long)]
    allow_anonymous: bool,
    #[command(flatten)]
    retention: RetentionArgs,
    #[command(flatten)]
    tokens: TokenArgs,
}

/// What happens to old positions (docs/tracker.md, "Storage").
#[derive(Debug, clap::Args)]
struct RetentionArgs {
    /// Delete positions older than this (by fix time: `90d`, `12h`), at start and hourly.
    /// Without it every position is kept.
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    retain: Option<Duration>,
    /// Thin positions older than this (by fix time: `7d`) to one per --downsample-to, at start
    /// and hourly. Without it every position is kept as it came.
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    downsample_after: Option<Duration>,
    /// The interval downsampled positions keep one of (`1m`, `5m`).
    #[arg(long, value_name = "INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    downsample_to: Duration,
}

impl RetentionArgs {
    fn policy(&self) -> anyhow::Result<Policy> {
        anyhow::ensure!(
            self.downsample_to >= Duration::from_secs(1),
            "--downsample-to {} is shorter than a second",
            humantime::format_duration(self.downsample_to)
        );
        if let (Some(retain), Some(after)) = (self.retain, self.downsample_after) {
            anyhow::ensure!(
                after < retain,
                "--downsample-after {} is not shorter than --retain {}: nothing would be downsampled",
                humantime::format_duration(after),
                humantime::format_duration(retain)
            );
        }
        Ok(Policy {
            retain: self.retain,
            downsample: self
                .downsample_after
                .map(|after| Downsample { after, interval: self.downsample_to }),
        })
    }
}

/// How `serve` signs the tokens it issues on login; the gateway verifies them with the same
/// secret (HS256).
#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The HS256 secret (at least 32 bytes, the file's bytes exactly). Default: `<db>.token-secret`,
    /// made with 256 random bits if missing.
    #[arg(long, value_name = "FILE")]
    token_secret_file: Option<PathBuf>,
    /// How long an issued token lasts; clients refresh it before.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    token_ttl: Duration,
    /// The ingest address written into new devices' enrolments (HOST:PORT, as devices reach
    /// it); with ingest shards, one per shard in shard order, comma-separated (a device goes to
    /// shard `id % COUNT`). Default: --ingest.
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT...]")]
    public_ingest: Option<String>,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Adds a user; its password is read from the first line of standard input.
    Add {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        name: String,
        /// `admin` (sees every device, manages users) or `viewer` (its own and shared devices).
        #[arg(long, default_value = "viewer", value_parser = ["admin", "viewer"])]
        role: String,
    },
    /// Lists the users.
    List {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
    },
    /// Sets a user's password, read from the first line of standard input.
    Passwd {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        name: String,
    },
    /// Deletes a user; the devices it owned have no owner after.
    Delete {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        name: String,
    },
    /// Gives a device to a user (its owner sees it, shares it, describes its trips).
    Own {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// The device's id (`tracker devices` lists them).
        device: u64,
        name: String,
    },
}

/// `tracker demo`'s flags.
#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// The SQLite file, reused across runs; the simulated devices' enrolment URIs and report
    /// counters are kept next to it (`<db>.devices`, `<db>.counters`).
    #[arg(long, value_name = "FILE", default_value = "tracker-demo.db")]
    db: PathBuf,
    /// How many simulated devices (enrolled on the first start, reused after; more are
    /// enrolled if a later start asks for more).
    #[arg(long, value_name = "N", default_value_t = 12)]
    devices: usize,
    /// The dashboard's built folder (`node examples/tracker/web/build.mjs` builds it).
    #[arg(long, value_name = "DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist"))]
    web: PathBuf,
    /// The dashboard's web server.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// The gateway's TCP listener (Rust clients).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// The gateway's WebSocket listener (the dashboard).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7402")]
    ws_listen: SocketAddr,
    /// The gateway's admin HTTP (/healthz, /readyz, /metrics).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7401")]
    admin_listen: SocketAddr,
    /// The UDP ingest the devices report to; with --nats, that of `tracker serve`.
    #[arg(long, alias = "ingest-addr", value_name = "ADDR", default_value = "127.0.0.1:7500")]
    ingest: SocketAddr,
    /// NATS server URL(s): the bus is NATS and the service runs as `tracker serve`.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    #[command(flatten)]
    nats_auth: gateway_bus::process::NatsAuthArgs,
    /// Where the gateway keeps the `position` topic's history (the gateway's `history_store`):
    /// `bus` (with --nats, JetStream: one stored message per position) or `memory` (the
    /// gateway's).
    #[arg(long, value_name = "bus|memory", default_value = "bus", value_parser = ["bus", "memory"])]
    history_store: String,
    /// The city's seed: the basemap and the vehicles.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Retention and downsampling (with --nats, `tracker serve` has the flags).
    #[command(flatten)]
    retention: RetentionArgs,
}

impl DemoArgs {
    fn config(self) -> anyhow::Result<DemoConfig> {
        anyhow::ensure!(
            (1..=MAX_DEMO_DEVICES).contains(&self.devices),
            "--devices {} is out of range (1 to {MAX_DEMO_DEVICES})",
            self.devices
        );
        Ok(DemoConfig {
            db: self.db,
            devices: self.devices,
            web: self.web,
            http: self.http,
            listen: self.listen,
            ws_listen: self.ws_listen,
            admin_listen: self.admin_listen,
            ingest: self.ingest,
            nats_auth: self.nats_auth.load()?,
            nats: self.nats,
            history_store: if self.history_store == "memory" {
                gateway::config::HistoryStore::Memory
            } else {
                gateway::config::HistoryStore::Bus
            },
            seed: self.seed,
            retention: self.retention.policy()?,
        })
    }
}

/// The most simulated devices (the scale the tracker is measured at, docs/benchmarks.md).
const MAX_DEMO_DEVICES: usize = 100_000;

fn main() -> ExitCode {
    let cli = Cli::parse();
    gateway_bus::process::log_to_stderr();
    let result = match cli.command {
        Command::Demo(args) => args.config().and_then(run_demo),
        Command::Enrol { db, name, ingest, qr } => run_enrol(&db, &name, &ingest, qr),
        Command::Devices { db } => run_devices(&db),
        Command::User(command) => run_user(command),
        Command::Serve(args) => {
            let policy = match args.retention.policy() {
                Ok(policy) => policy,
                Err(e) => {
                    eprintln!("tracker: {e:#}");
                    return ExitCode::from(2);
                }
            };
            return serve(args, policy);
        }
        Command::Ingest { listen, shard, receivers, nats } => {
            return run_ingest(&listen, shard, receivers, &nats);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_enrol(db: &PathBuf, name: &str, ingest: &str, qr: Option<PathBuf>) -> anyhow::Result<()> {
    let store = Store::open(db)?;
    let enrolment = enrol(&store, name, ingest)?;
    println!("device {} ({})", enrolment.id, enrolment.name);
    println!("{}", enrolment.uri());
    if let Some(path) = qr {
        std::fs::write(&path, enrolment.qr_svg()?)
            .with_context(|| format!("cannot write the QR code to `{}`", path.display()))?;
        println!("QR code written to {}", path.display());
    }
    Ok(())
}

fn run_demo(config: DemoConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(async {
        let demo = Demo::start(config).await?;
        print!("{}", demo.banner());
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            process::signal().await;
            on_signal.cancel();
        });
        demo.run_until(shutdown).await?;
        Ok(())
    })
}

fn run_devices(db: &PathBuf) -> anyhow::Result<()> {
    let store = Store::open(db)?;
    println!("{:>20}  {:<8}  {:>12}  {:>15}  name", "id", "enabled", "highest", "last seen (ms)");
    for d in store.devices()? {
        println!(
            "{:>20}  {:<8}  {:>12}  {:>15}  {}",
            d.id, d.enabled, d.highest_counter, d.last_seen_ms, d.name
        );
    }
    Ok(())
}

/// The first line of standard input, without its line end.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

fn run_user(command: UserCommand) -> anyhow::Result<()> {
    let named = |store: &Store, name: &str| {
        store.user_named(name)?.ok_or_else(|| anyhow::anyhow!("no user named {name:?}"))
    };
    match command {
        UserCommand::Add { db, name, role } => {
            let store = Store::open(&db)?;
            let role = if role == "admin" { Role::Admin } else { Role::Viewer };
            let id = store.add_user(&name, &read_password()?, role, now_ms())?;
            println!("user {id} {name} ({role}) added");
        }
        UserCommand::List { db } => {
            let store = Store::open(&db)?;
            println!("{:>6}  {:<7}  name", "id", "role");
            for user in store.users()? {
                println!("{:>6}  {:<7}  {}", user.id, user.role, user.name);
            }
        }
        UserCommand::Passwd { db, name } => {
            let store = Store::open(&db)?;
            let user = named(&store, &name)?;
            store.set_password(user.id, &read_password()?)?;
            println!("password of {} changed", user.name);
        }
        UserCommand::Delete { db, name } => {
            let store = Store::open(&db)?;
            let user = named(&store, &name)?;
            store.delete_user(user.id)?;
            println!("user {} deleted", user.name);
        }
        UserCommand::Own { db, device, name } => {
            let store = Store::open(&db)?;
            let user = named(&store, &name)?;
            store.set_owner(device, Some(user.id))?;
            println!("device {device} is {}'s", user.name);
        }
    }
    Ok(())
}

/// Runs `main` on a new multi-threaded runtime, or says why there is none.
fn on_runtime(main: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(main),
        Err(e) => {
            eprintln!("tracker: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds the ingest's sockets at `addr` (a name or an address), naming it in the error.
fn bind_ingest(addr: &str, receivers: usize) -> Result<Vec<std::net::UdpSocket>, String> {
    addr.to_socket_addrs()
        .and_then(|mut addrs| {
            addrs.next().ok_or_else(|| std::io::Error::other("the name has no address"))
        })
        .and_then(|resolved| tracker::ingest::bind(resolved, receivers))
        .map_err(|e| format!("cannot bind the ingest to `{addr}`: {e}"))
}

fn serve(args: ServeArgs, retention: Policy) -> ExitCode {
    let ServeArgs { db, ingest, ingest_shard, no_ingest, remote_ingest, nats, .. } = args;
    let token_args = args.tokens;
    let secret_path = token_args.token_secret_file.unwrap_or_else(|| tokens::secret_path(&db));
    let secret = match tokens::load_or_create_secret(&secret_path) {
        Ok(secret) => secret,
        Err(e) => {
            eprintln!("tracker: the token secret `{}`: {e}", secret_path.display());
            return ExitCode::FAILURE;
        }
    };
    let tokens = Tokens::new(&secret, token_args.token_ttl);
    let public_ingest: Vec<String> = token_args
        .public_ingest
        .unwrap_or_else(|| ingest.clone())
        .split(',')
        .map(|addr| addr.trim().to_owned())
        .collect();
    if public_ingest.iter().any(String::is_empty) {
        eprintln!("tracker: --public-ingest has an empty address");
        return ExitCode::from(2);
    }
    on_runtime(async {
        let store = match Store::open(&db) {
            Ok(store) => Arc::new(store),
            Err(e) => {
                eprintln!("tracker: {e}");
                return ExitCode::FAILURE;
            }
        };
        let ingest = if no_ingest {
            None
        } else {
            let options = IngestOptions { shard: ingest_shard, ..IngestOptions::default() };
            let ingest = bind_ingest(&ingest, options.receivers).and_then(|sockets| {
                Ingest::new(sockets, Arc::clone(&store), options).map_err(|e| e.to_string())
            });
            match ingest {
                Ok(ingest) => {
                    if let Ok(addr) = ingest.local_addr() {
                        tracing::info!(%addr, shard = %ingest_shard, "ingest listening");
                    }
                    Some(ingest)
                }
                Err(e) => {
                    eprintln!("tracker: {e}");
                    return ExitCode::FAILURE;
                }
            }
        };
        let shutdown = CancellationToken::new();
        if retention.is_active() {
            let store = Arc::clone(&store);
            tokio::spawn(tracker::retention::run(store, retention, EVERY, shutdown.clone()));
        }
        let code = process::run("tracker", &nats, |bus| {
            if let Some(ingest) = ingest {
                let publisher = TrackerClient::new(BusTopics::new(bus.clone()));
                let stop_ingest = shutdown.clone();
                tokio::spawn(ingest.stats().log_every(Duration::from_secs(60), shutdown.clone()));
                tokio::spawn(async move {
                    if let Err(e) = ingest.run(Some(publisher), stop_ingest).await {
                        tracing::error!(cause = %e, "the ingest stopped");
                    }
                });
            }
            let accounts = AccountsService::new(Arc::clone(&store), tokens, public_ingest);
            let service =
                TrackerService::new(Arc::clone(&store)).allow_anonymous(args.allow_anonymous);
            let mut runtimes = vec![
                ServiceRuntime::new(bus.clone(), Arc::new(TrackerServer::new(service))),
                ServiceRuntime::new(bus.clone(), Arc::new(TrackerAccountsServer::new(accounts))),
            ];
            if remote_ingest {
                let storage = TrackerStorageServer::new(StorageService::new(store));
                runtimes.push(ServiceRuntime::new(bus, Arc::new(storage)));
            }
            runtimes
        })
        .await;
        shutdown.cancel();
        code
    })
}

/// How long `tracker ingest` waits at start for the storage service to answer.
const STORAGE_PATIENCE: Duration = Duration::from_secs(30);

/// `tracker ingest`: one shard's reports, stored through `tracker serve --remote-ingest`.
fn run_ingest(
    listen: &str,
    shard: Shard,
    receivers: Option<usize>,
    nats: &process::NatsArgs,
) -> ExitCode {
    on_runtime(async {
        let bus = match process::connect(nats, &format!("tracker-ingest {shard}")).await {
            Ok(bus) => bus,
            Err(e) => {
                eprintln!("tracker: {e}");
                return ExitCode::FAILURE;
            }
        };
        let options = IngestOptions {
            shard,
            receivers: receivers.unwrap_or(IngestOptions::default().receivers).max(1),
            // Each reload reads the shard's devices over the bus: not more than every 5 s.
            reload_interval: Duration::from_secs(5),
            ..IngestOptions::default()
        };
        let storage = match RemoteStorage::new(bus.clone(), tokio::runtime::Handle::current()) {
            Ok(storage) => Arc::new(storage),
            Err(e) => {
                eprintln!("tracker: {e}");
                return ExitCode::FAILURE;
            }
        };
        // The storage service may not be up yet (the processes start in any order): its
        // absence is waited out, for a while.
        let waiting_since = std::time::Instant::now();
        let ingest = loop {
            let sockets = match bind_ingest(listen, options.receivers) {
                Ok(sockets) => sockets,
                Err(e) => {
                    eprintln!("tracker: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // Reading the shard's devices blocks on calls to the storage service.
            let (storage, options) = (Arc::clone(&storage), options.clone());
            let made =
                tokio::task::spawn_blocking(move || Ingest::new(sockets, storage, options)).await;
            match made {
                Ok(Ok(ingest)) => break ingest,
                Ok(Err(IngestError::Storage(StorageError::Remote(status))))
                    if status.code() == gateway_core::Code::Unavailable
                        && waiting_since.elapsed() < STORAGE_PATIENCE =>
                {
                    tracing::info!(cause = %status, "waiting for the storage service");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Ok(Err(e)) => {
                    eprintln!(
                        "tracker: cannot start the ingest (is `tracker serve --remote-ingest` \
                         running on this NATS?): {e}"
                    );
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("tracker: {e}");
                    return ExitCode::FAILURE;
                }
            }
        };
        if let Ok(addr) = ingest.local_addr() {
            tracing::info!(%addr, %shard, devices = ingest.devices(), "ingest listening");
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(ingest.stats().log_every(Duration::from_secs(60), shutdown.clone()));
        let publisher = TrackerClient::new(BusTopics::new(bus));
        let mut running = tokio::spawn(ingest.run(Some(publisher), shutdown.clone()));
        let ended = tokio::select! {
            _ = process::signal() => {
                // What was received is stored, acknowledged and published before it returns.
                shutdown.cancel();
                running.await
            }
            // Only a socket's failure ends it by itself.
            ended = &mut running => ended,
        };
        shutdown.cancel();
        match ended {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("tracker: the ingest failed: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("tracker: the ingest panicked: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
