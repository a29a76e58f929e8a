//! The `gateway` command. By default one process with the gateway, the in-process bus and the
//! example services (`examples/some_api`'s `Calculator`, `examples/echo`'s `Echoer`). With
//! `--nats URL` the gateway alone, routing over NATS to services that run as their own
//! processes (`some-api-service`, `echo-service`); run as many gateways as you like.
//!
//! Run with: `cargo run -p gateway -- --help`
//!
//! Settings come from flags, `GATEWAY_*` environment variables and a TOML file (`--config`), in
//! that order of precedence (see `gateway::config`). Logs go to stderr, filtered by `RUST_LOG`
//! (default `info`). SIGINT or SIGTERM starts a graceful shutdown.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use echo::{EchoServer, Echoer};
use gateway::{Args, Config, Listeners, NatsAuthKeys, Registry};
use gateway_bus::nats::{NatsAuth, NatsAuthSettings};
use gateway_bus::{
    Bus, BusTopics, LocalBus, MemorySwitches, NatsBus, NatsOptions, NatsSwitches, ServiceRuntime,
    SwitchStore,
};
use some_api::{Calculator, SomeApiServer};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = Args::parse();
    gateway_bus::process::log_to_stderr();
    let config = match Config::load(&args, |var| std::env::var(var).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("gateway: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.worker_threads {
        runtime.worker_threads(threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("gateway: worker_threads={}", runtime.metrics().num_workers());
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The services this gateway routes to.
fn registry() -> anyhow::Result<Registry> {
    let mut registry = Registry::new();
    registry.register(&some_api::DESCRIPTOR)?;
    registry.register(&echo::DESCRIPTOR)?;
    registry.register(&roughtime::service::DESCRIPTOR)?;
    // The timestamp oracle (docs/tso.md): its instances serve over NATS only.
    registry.register(&tso::service::DESCRIPTOR)?;
    // The mailbox relay (docs/mailbox.md): in process, or `mailbox-service` over NATS.
    registry.register(&mailbox::service::DESCRIPTOR)?;
    Ok(registry)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    match config.nats.clone() {
        None => serve_in_process(config).await,
        Some(url) => serve_over_nats(config, &url).await,
    }
}

/// The gateway alone, on NATS: the services run elsewhere.
async fn serve_over_nats(config: Config, url: &str) -> anyhow::Result<()> {
    let auth = nats_auth(&config.nats_auth)?;
    let options = NatsOptions {
        name: config.server_id.clone(),
        auth,
        subscription_capacity: config.nats_subscription_capacity,
        ..NatsOptions::default()
    };
    let nats = NatsBus::connect(url, options).await?;
    // Calls take a connection of their own (docs/bus.md): open, so the first calls find it.
    nats.open_call_lane();
    // Operator switches (docs/operations.md): in a JetStream key-value bucket every gateway
    // follows.
    let switches: Arc<dyn SwitchStore> = Arc::new(
        NatsSwitches::new(nats.client().clone())
            .await
            .context("cannot open the operator switches' key-value bucket (is JetStream on?)")?,
    );
    let bus: Arc<dyn Bus> = Arc::new(nats);
    let listeners = Listeners::bind(&config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    gateway::run(config, listeners, bus, switches, registry()?, shutdown).await?;
    Ok(())
}

/// The NATS credentials and TLS settings checked, their files read.
fn nats_auth(keys: &NatsAuthKeys) -> anyhow::Result<NatsAuth> {
    let set = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let file = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
    let settings = NatsAuthSettings {
        user: set(&keys.user),
        password: set(&keys.password),
        token: set(&keys.token),
        nkey: file(&keys.nkey),
        creds: file(&keys.creds),
        ca: file(&keys.ca),
        cert: file(&keys.cert),
        key: file(&keys.key),
    };
    settings.load(|kind| format!("nats_{kind}")).context("invalid NATS settings")
}

/// Gateway, bus and example services in this one process.
async fn serve_in_process(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let bus: Arc<dyn Bus> = Arc::new(LocalBus::new());

    // The services stop after the gateway has drained, so calls in flight can still finish.
    let services_stop = CancellationToken::new();
    // The calculator publishes its running total on the `pub` topic of the same bus.
    let calculator = Calculator::with_topics(BusTopics::new(bus.clone()));
    let calculator = Arc::new(SomeApiServer::new(calculator));
    let some_api = ServiceRuntime::new(bus.clone(), calculator)
        .start(services_stop.clone())
        .await
        .context("cannot start the SomeApi example service")?;
    let echo = ServiceRuntime::new(bus.clone(), Arc::new(EchoServer::new(Echoer)))
        .start(services_stop.clone())
        .await
        .context("cannot start the Echo example service")?;
    // Roughtime (docs/roughtime.md), with a long-term key made for this run: clients get it from
    // `public_key`, or from this log line.
    let time_seed = roughtime::keys::random_seed()
        .map_err(|e| anyhow::anyhow!("no randomness for a Roughtime key: {e}"))?;
    let time_service = roughtime::service::TimeService::start(
        roughtime::keys::LongTermKey::from_seed(&time_seed),
        roughtime::service::ServiceConfig::default(),
    )
    .context("cannot start the Roughtime service")?;
    let time_public = base64::engine::general_purpose::STANDARD.encode(time_service.public_key());
    let roughtime = ServiceRuntime::new(
        bus.clone(),
        Arc::new(roughtime::service::RoughtimeServer::new(time_service)),
    )
    .start(services_stop.clone())
    .await
    .context("cannot start the Roughtime example service")?;
    eprintln!("gateway: Roughtime service examples.roughtime.Roughtime, public key {time_public}");
    let mailbox = start_mailbox(&bus, &config, &services_stop).await?;
    let listeners = Listeners::bind(&config).await?;
    // Operator switches (docs/operations.md): in memory with the in-process bus.
    let switches: Arc<dyn SwitchStore> = Arc::new(MemorySwitches::new());
    tokio::spawn(signals(shutdown.clone()));
    gateway::run(config, listeners, bus, switches, registry()?, shutdown).await?;
    services_stop.cancel();
    some_api.stopped().await;
    echo.stopped().await;
    roughtime.stopped().await;
    mailbox.stopped().await;
    Ok(())
}

/// The mailbox relay in process (docs/mailbox.md): `$MAILBOX_SHARDS` shards (default 1), an
/// epoch every `$MAILBOX_EPOCH` (default 5 ms), with
/// their stores and keys in `$MAILBOX_DIR`, or in a temporary directory removed at exit when
/// that is not set; with several, they route to each other over the in-process bus and a
/// sequencer ends their epochs. Anonymous callers may use it when the gateway lets them do
/// everything (`--anonymous-roles all`).
struct Mailbox {
    services: Vec<gateway_bus::Serving>,
    /// Ends the epochs (and the shards' service to each other) once the calls have drained.
    epochs_stop: CancellationToken,
    epochs: Vec<tokio::task::JoinHandle<()>>,
    _temporary: Option<TemporaryStore>,
}

impl Mailbox {
    async fn stopped(self) {
        for service in self.services {
            service.stopped().await;
        }
        self.epochs_stop.cancel();
        for epochs in self.epochs {
            let _ = epochs.await;
        }
    }
}

/// The mailbox's store when `MAILBOX_DIR` is not set: a directory `gateway-mailbox-*` in the
/// system's temporary directory, removed when the gateway exits. A gateway killed (SIGKILL, a
/// crash) cannot remove it, so each one holds a lock on its directory (`flock`, released by the
/// kernel when the process dies), and the next gateway to start removes those whose lock is free.
struct TemporaryStore {
    dir: tempfile::TempDir,
    _lock: std::fs::File,
}

impl TemporaryStore {
    const PREFIX: &str = "gateway-mailbox-";
    /// Written once the directory is locked: a directory without it is still being made (or was
    /// made by a gateway that predates the lock), and is left alone.
    const LOCKED: &str = ".locked";

    fn make(parent: &std::path::Path) -> anyhow::Result<TemporaryStore> {
        Self::remove_abandoned(parent);
        let dir = tempfile::Builder::new()
            .prefix(Self::PREFIX)
            .tempdir_in(parent)
            .context("cannot make a temporary directory for the mailbox")?;
        let lock = std::fs::File::open(dir.path())
            .and_then(|lock| {
                // Blocking: a gateway sweeping at this moment holds the lock for an instant.
                rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
                std::fs::write(dir.path().join(Self::LOCKED), b"")?;
                Ok(lock)
            })
            .with_context(|| format!("cannot lock {}", dir.path().display()))?;
        Ok(TemporaryStore { dir, _lock: lock })
    }

    /// Removes the stores of gateways that were killed: locked once, and the lock free now.
    fn remove_abandoned(parent: &std::path::Path) {
        let Ok(entries) = std::fs::read_dir(parent) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let ours = entry.file_name().to_str().is_some_and(|n| n.starts_with(Self::PREFIX));
            if !ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(lock) = std::fs::File::open(&path) else { continue };
            let free =
                rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive);
            if free.is_ok() && path.join(Self::LOCKED).exists() {
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => eprintln!(
                        "gateway: removed {}, the mailbox store of a gateway that was killed",
                        path.display()
                    ),
                    Err(e) => eprintln!("gateway: cannot remove {}: {e}", path.display()),
                }
            }
        }
    }
}

async fn start_mailbox(
    bus: &Arc<dyn Bus>,
    config: &Config,
    stop: &CancellationToken,
) -> anyhow::Result<Mailbox> {
    let shards: u32 = match std::env::var("MAILBOX_SHARDS") {
        Ok(n) => n
            .parse()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .with_context(|| format!("MAILBOX_SHARDS={n:?} is not 1 to 64"))?,
        Err(_) => 1,
    };
    let (dir, temporary) = match std::env::var_os("MAILBOX_DIR") {
        Some(dir) => (std::path::PathBuf::from(dir), None),
        None => {
            let temporary = TemporaryStore::make(&std::env::temp_dir())?;
            eprintln!(
                "gateway: the mailbox's store is {} (removed at exit: set MAILBOX_DIR to keep it)",
                temporary.dir.path().display()
            );
            (temporary.dir.path().to_owned(), Some(temporary))
        }
    };
    let every = match std::env::var("MAILBOX_EPOCH") {
        Ok(every) => mailbox::shard::epoch_interval(&every)
            .map_err(|e| anyhow::anyhow!("MAILBOX_EPOCH={e}"))?,
        Err(_) => std::time::Duration::from_millis(5),
    };
    let anonymous = config.auth.anonymous_roles.iter().any(|role| role == "all");
    let epochs_stop = CancellationToken::new();
    let mut mailbox = Mailbox {
        services: Vec::new(),
        epochs_stop: epochs_stop.clone(),
        epochs: Vec::new(),
        _temporary: temporary,
    };
    for number in 0..shards {
        let shard = mailbox::shard::open_in(&dir, number, shards, every)
            .map_err(anyhow::Error::msg)
            .context("cannot open the mailbox shard")?;
        let mut service =
            mailbox::service::MailboxService::new(shard.clone()).allow_anonymous(anonymous);
        if shards > 1 {
            service = service.with_peers(bus.clone());
            mailbox::peers::serve(shard.clone(), bus.clone(), epochs_stop.clone())
                .await
                .context("cannot serve the mailbox shards to each other")?;
            service
                .clone()
                .serve_reads(bus.clone(), epochs_stop.clone())
                .await
                .context("cannot serve the mailbox shards to each other")?;
        }
        let running = mailbox::service::runtime(bus.clone(), service)
            .start(stop.clone())
            .await
            .context("cannot start the Mailbox example service")?;
        mailbox.services.push(running);
        let publisher = mailbox::service::MailboxClient::new(BusTopics::new(bus.clone()));
        tokio::spawn(mailbox::service::publish_batches(
            shard.clone(),
            publisher,
            epochs_stop.clone(),
        ));
        if shards == 1 {
            let stop = epochs_stop.clone();
            mailbox.epochs.push(tokio::spawn(async move { shard.run(stop).await }));
        }
    }
    if shards > 1 {
        let (bus, stop) = (bus.clone(), epochs_stop.clone());
        mailbox.epochs.push(tokio::spawn(mailbox::sequencer::run(bus, shards, every, stop)));
    }
    eprintln!(
        "gateway: mailbox relay examples.mailbox.Mailbox, {shards} shard(s) in {}, an epoch every {every:?}",
        dir.display()
    );
    Ok(mailbox)
}

/// Cancels `shutdown` on the first SIGINT (Ctrl-C) or SIGTERM.
async fn signals(shutdown: CancellationToken) {
    gateway_bus::process::signal().await;
    shutdown.cancel();
}
