//! `tracker demo`: the whole tracker in one command. The gateway (the `gateway` library) with
//! token authentication, the `Tracker` service and its UDP ingest on a SQLite file, simulated
//! devices driving through a synthetic city (`tracker_sim`), and a web server for the dashboard
//! (`docs/tracker.md`, "The demo").
//!
//! With [`DemoConfig::nats`] the bus is NATS and the service runs as its own process
//! (`tracker serve`); the demo then runs the gateway, the web server and the simulator, sending
//! to that process's ingest.
//!
//! - [`fleet`]: the simulated devices, enrolled once and kept next to the database;
//! - [`users`]: the demo's users, their tokens, and the gateway's `[auth]` that accepts them;
//! - [`http`]: the web server.

pub mod fleet;
pub mod http;
pub mod users;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle as ThreadHandle;
use std::time::Duration;

use gateway::auth::Authenticator;
use gateway::config::HistoryStore;
use gateway::{Config, Listeners, Registry};
use gateway_bus::{
    Bus, BusTopics, LocalBus, LocalBusOptions, MemorySwitches, NatsBus, NatsOptions, NatsSwitches,
    ServiceRuntime, Serving, SwitchStore,
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracker_sim::city::{City, CityConfig, DEFAULT_CENTRE};
use tracker_sim::counters::Counters;
use tracker_sim::sim::{self, RunConfig};

use crate::accounts::AccountsService;
use crate::accounts::tokens::{self, Tokens};
use crate::ingest::{Ingest, IngestOptions};
use crate::service::TrackerService;
use crate::store::Store;
use crate::{TrackerAccountsServer, TrackerClient, TrackerServer};

/// The dashboard's initial zoom level.
const ZOOM: u32 = 14;
/// Reports per second per simulated device.
const RATE: f64 = 1.0;
/// How often the simulator's and the ingest's figures are logged.
const SIM_STATS_EVERY: Duration = Duration::from_secs(60);

/// Messages each of the demo gateway's bus subscriptions holds while it catches up (on NATS, the
/// gateway's `nats_subscription_capacity`): two thirds of a second at 100,000 positions a second,
/// where the default 8,192 is 80 ms.
const BUS_SUBSCRIPTION_CAPACITY: usize = 65_536;
/// How long the gateway lets calls in flight finish on shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The demo's settings, checked (the command line's flags, with their defaults, are in
/// `src/bin/tracker.rs`).
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// The SQLite file; the simulated devices' enrolments and counters are kept next to it.
    pub db: PathBuf,
    /// How many simulated devices (enrolled on the first start, reused after).
    pub devices: usize,
    /// The dashboard's built folder (must hold `index.html`).
    pub web: PathBuf,
    /// The web server.
    pub http: SocketAddr,
    /// The gateway's TCP, WebSocket and admin listeners.
    pub listen: SocketAddr,
    pub ws_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// The UDP ingest: bound here, or with `nats` the address of `tracker serve`'s.
    pub ingest: SocketAddr,
    /// NATS URL(s): the service runs elsewhere (`tracker serve`).
    pub nats: Option<String>,
    /// Credentials and TLS for `nats` (`docs/operations.md`, "NATS credentials and TLS").
    pub nats_auth: gateway_bus::nats::NatsAuth,
    /// Where the gateway keeps the `position` topic's history (its `history_store`): over NATS,
    /// `Bus` is JetStream (a stored message per position), `Memory` the gateway's.
    pub history_store: HistoryStore,
    /// The city's seed (the basemap and the vehicles).
    pub seed: u64,
    /// Retention and downsampling of old positions (`crate::retention`). Only for the
    /// in-process service: over NATS, `tracker serve` has the flags.
    pub retention: crate::retention::Policy,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Dashboard(String),
    #[error("cannot listen on {addr} (`--{flag}`): {source}")]
    Bind { flag: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("--{0} and --{1} are both {2}: each needs its own address")]
    SameAddress(&'static str, &'static str, SocketAddr),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Fleet(#[from] fleet::FleetError),
    #[error(transparent)]
    Counters(#[from] tracker_sim::counters::CounterError),
    #[error("the token secret `{path}`: {source}")]
    Secret { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Users(#[from] users::UsersError),
    #[error("the gateway's authentication settings: {0}")]
    Auth(#[from] gateway::auth::AuthConfigError),
    #[error(transparent)]
    Registry(#[from] gateway::RegisterError),
    #[error("{0}")]
    Nats(String),
    #[error("cannot start the Tracker service on the bus: {0}")]
    Service(gateway_bus::BusError),
    #[error("cannot start the ingest: {0}")]
    Ingest(std::io::Error),
    #[error(transparent)]
    IngestSetup(#[from] crate::ingest::IngestError),
    #[error("cannot start the simulator: {0}")]
    Simulator(std::io::Error),
}

/// A running demo: [`Demo::start`] it, print [`Demo::banner`], then [`Demo::run_until`] a
/// shutdown.
#[derive(Debug)]
pub struct Demo {
    banner: String,
    users: Vec<users::User>,
    gateway: JoinHandle<Result<(), gateway::Error>>,
    gateway_stop: CancellationToken,
    http: JoinHandle<()>,
    http_stop: CancellationToken,
    /// The in-process service and its ingest; `None` over NATS.
    local: Option<Local>,
    simulator: ThreadHandle<()>,
    simulator_stop: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Local {
    service: Serving,
    accounts: Serving,
    service_stop: CancellationToken,
    ingest: JoinHandle<std::io::Result<()>>,
    ingest_stats: Arc<crate::ingest::IngestStats>,
    ingest_stop: CancellationToken,
    store: Arc<Store>,
}

/// Loopback for an unspecified address (`0.0.0.0`), for the URLs a browser opens.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

async fn bind(flag: &'static str, addr: SocketAddr) -> Result<TcpListener, DemoError> {
    TcpListener::bind(addr).await.map_err(|source| DemoError::Bind { flag, addr, source })
}

impl Demo {
    /// Checks the dashboard's folder, binds every listener, opens the database, enrols the
    /// simulated devices if needed, and starts everything.
    ///
    /// # Errors
    ///
    /// The dashboard is not built, an address is in use (naming its flag), the database or
    /// the devices' files cannot be used, NATS does not answer, or a part fails to start.
    pub async fn start(config: DemoConfig) -> Result<Demo, DemoError> {
        let no_site = http::Site::new(&config.web, Vec::new(), Vec::new());
        no_site.map_err(DemoError::Dashboard)?;
        let tcp = [
            ("http", config.http),
            ("listen", config.listen),
            ("ws-listen", config.ws_listen),
            ("admin-listen", config.admin_listen),
        ];
        for (i, (a, addr)) in tcp.iter().enumerate() {
            if let Some((b, _)) = tcp[i + 1..].iter().find(|(_, o)| o == addr && addr.port() != 0) {
                return Err(DemoError::SameAddress(a, b, *addr));
            }
        }
        let http_listener = bind("http", config.http).await?;
        let listeners = Listeners {
            tcp: bind("listen", config.listen).await?,
            websocket: Some(bind("ws-listen", config.ws_listen).await?),
            admin: bind("admin-listen", config.admin_listen).await?,
        };
        let local_addr = |l: &TcpListener, flag| {
            l.local_addr().map_err(|source| DemoError::Bind { flag, addr: config.http, source })
        };
        let http_addr = reachable(local_addr(&http_listener, "http")?);
        let ws_addr =
            reachable(local_addr(listeners.websocket.as_ref().expect("bound"), "ws-listen")?);
        let tcp_addr = local_addr(&listeners.tcp, "listen")?;
        let admin_addr = local_addr(&listeners.admin, "admin-listen")?;
        let ingest_options = IngestOptions::default();
        let udp = match config.nats {
            Some(_) => None,
            None => Some(crate::ingest::bind(config.ingest, ingest_options.receivers).map_err(
                |source| DemoError::Bind { flag: "ingest", addr: config.ingest, source },
            )?),
        };
        let ingest_addr = match &udp {
            Some(sockets) => sockets[0].local_addr().map_err(DemoError::Ingest)?,
            None => config.ingest,
        };

        let store = Arc::new(Store::open(&config.db)?);
        let devices = fleet::prepare(
            &store,
            &fleet::devices_path(&config.db),
            config.devices,
            &ingest_addr.to_string(),
            config.seed,
        )?;
        // Never send a counter the tracker has accepted already (a lost counter file).
        let counters_path = fleet::counters_path(&config.db);
        let mut counters = Counters::open(&counters_path)?;
        let stored: std::collections::HashMap<u64, u64> =
            store.devices()?.into_iter().map(|d| (d.id, d.highest_counter)).collect();
        let used = devices.iter().filter_map(|d| Some((d.id, *stored.get(&d.id)?)));
        counters.mark_all_used_through(used)?;
        drop(counters);

        let secret_path = tokens::secret_path(&config.db);
        let secret = tokens::load_or_create_secret(&secret_path)
            .map_err(|source| DemoError::Secret { path: secret_path, source })?;
        let tokens = Tokens::new(&secret, tokens::DEFAULT_TTL);
        let ids: Vec<u64> = devices.iter().map(|d| d.id).collect();
        let users = users::ensure(&store, &config.db, &ids, &tokens)?;
        let mut allowed_origins = vec![format!("http://{http_addr}")];
        if http_addr.ip().is_loopback() {
            allowed_origins.push(format!("http://localhost:{}", http_addr.port()));
        }
        let mut gateway_config = Config {
            listen: tcp_addr,
            ws_listen: Some(ws_addr),
            admin_listen: admin_addr,
            allowed_origins,
            drain_timeout: DRAIN_TIMEOUT,
            server_id: "tracker-demo".into(),
            nats: config.nats.clone(),
            history_store: config.history_store,
            auth: tokens::gateway_auth(&secret),
            ..Config::default()
        };
        // Checked before anything starts; `gateway::run` uses this one.
        gateway_config.authenticator = Some(Authenticator::new(&gateway_config.auth)?);
        let mut registry = Registry::new();
        registry.register(&crate::DESCRIPTOR)?;
        registry.register(&crate::ACCOUNTS_DESCRIPTOR)?;

        let city = CityConfig { seed: config.seed, centre: DEFAULT_CENTRE };
        let config_json = json!({
            "gateway": format!("ws://{ws_addr}"),
            "center": [city.centre.lat, city.centre.lon],
            "zoom": ZOOM,
        });
        let geojson = City::generate(city).to_geojson();
        let site = http::Site::new(
            &config.web,
            config_json.to_string().into_bytes(),
            geojson.to_string().into_bytes(),
        )
        .map_err(DemoError::Dashboard)?;

        let (bus, switches, local): (Arc<dyn Bus>, Arc<dyn SwitchStore>, _) = match &config.nats {
            Some(url) => {
                let options = NatsOptions {
                    name: "tracker-demo".into(),
                    auth: config.nats_auth.clone(),
                    // The `position` topic carries every device's reports: up to 100,000 a
                    // second with a large fleet.
                    subscription_capacity: BUS_SUBSCRIPTION_CAPACITY,
                    ..NatsOptions::default()
                };
                let nats = NatsBus::connect(url, options)
                    .await
                    .map_err(|e| DemoError::Nats(e.to_string()))?;
                let switches = NatsSwitches::new(nats.client().clone()).await.map_err(|e| {
                    DemoError::Nats(format!(
                        "cannot open the operator switches' key-value bucket (is JetStream on? \
                         `nats-server -js`): {e}"
                    ))
                })?;
                (Arc::new(nats), Arc::new(switches), None)
            }
            None => {
                // Each subscription's queue as deep as over NATS (the hub's of `position`
                // carries every report).
                let options = LocalBusOptions {
                    queue_capacity: BUS_SUBSCRIPTION_CAPACITY,
                    ..LocalBusOptions::default()
                };
                let bus: Arc<dyn Bus> = Arc::new(LocalBus::with_options(options));
                let service_stop = CancellationToken::new();
                let server = TrackerServer::new(TrackerService::new(Arc::clone(&store)));
                let service = ServiceRuntime::new(bus.clone(), Arc::new(server))
                    .start(service_stop.clone())
                    .await
                    .map_err(DemoError::Service)?;
                let accounts = AccountsService::new(
                    Arc::clone(&store),
                    tokens.clone(),
                    vec![ingest_addr.to_string()],
                );
                let accounts = ServiceRuntime::new(
                    bus.clone(),
                    Arc::new(TrackerAccountsServer::new(accounts)),
                )
                .start(service_stop.clone())
                .await
                .map_err(DemoError::Service)?;
                let udp = udp.expect("bound without NATS");
                let ingest = Ingest::new(udp, Arc::clone(&store), ingest_options)?;
                let ingest_stop = CancellationToken::new();
                let publisher = TrackerClient::new(BusTopics::new(bus.clone()));
                tokio::spawn(ingest.stats().log_every(SIM_STATS_EVERY, ingest_stop.clone()));
                if config.retention.is_active() {
                    let store = Arc::clone(&store);
                    let (policy, every) = (config.retention, crate::retention::EVERY);
                    tokio::spawn(crate::retention::run(store, policy, every, ingest_stop.clone()));
                }
                let ingest_stats = ingest.stats();
                let ingest = tokio::spawn(ingest.run(Some(publisher), ingest_stop.clone()));
                let local = Local {
                    service,
                    accounts,
                    service_stop,
                    ingest,
                    ingest_stats,
                    ingest_stop,
                    store,
                };
                (bus, Arc::new(MemorySwitches::new()), Some(local))
            }
        };

        let gateway_stop = CancellationToken::new();
        let gateway = tokio::spawn(gateway::run(
            gateway_config,
            listeners,
            bus,
            switches,
            registry,
            gateway_stop.clone(),
        ));
        let http_stop = CancellationToken::new();
        let http = tokio::spawn(http::serve(http_listener, Arc::new(site), http_stop.clone()));

        let simulator_stop = Arc::new(AtomicBool::new(false));
        let run = RunConfig {
            devices: devices.iter().map(to_sim).collect(),
            rate: RATE,
            speedup: 1.0,
            ack: true,
            duration: None,
            stats_every: SIM_STATS_EVERY,
            city,
            counters: counters_path,
        };
        let stop = Arc::clone(&simulator_stop);
        let simulator = std::thread::Builder::new()
            .name("simulator".into())
            .spawn(move || {
                match sim::run(run, &stop, |stats| tracing::info!(%stats, "simulator")) {
                    Ok(_) => {}
                    // `--devices 0`: a tracker without simulated devices, by choice.
                    Err(sim::RunError::NoDevices) => tracing::info!("no simulated devices"),
                    Err(e) => tracing::error!(cause = %e, "the simulator stopped"),
                }
            })
            .map_err(DemoError::Simulator)?;

        let mut banner = String::new();
        let line = |banner: &mut String, text: String| {
            banner.push_str(&text);
            banner.push('\n');
        };
        line(
            &mut banner,
            format!(
                "tracker demo: {} simulated devices, database {}",
                devices.len(),
                config.db.display()
            ),
        );
        line(
            &mut banner,
            format!("  gateway       tcp://{tcp_addr}  ws://{ws_addr}  admin http://{admin_addr}"),
        );
        match &config.nats {
            Some(url) => line(
                &mut banner,
                format!(
                    "  bus           NATS {url} (the service: `tracker serve`, ingest udp://{ingest_addr})"
                ),
            ),
            None => line(&mut banner, format!("  ingest        udp://{ingest_addr}")),
        }
        line(&mut banner, format!("  dashboard     http://{http_addr}/"));
        line(&mut banner, "Sign in to the dashboard as (passwords in `<db>.users`):".into());
        for user in &users {
            line(
                &mut banner,
                format!(
                    "  {} ({}, {}): password {}  or open http://{http_addr}/#token={}",
                    user.name, user.role, user.sees, user.password, user.token
                ),
            );
        }
        Ok(Demo {
            banner,
            users,
            gateway,
            gateway_stop,
            http,
            http_stop,
            local,
            simulator,
            simulator_stop,
        })
    }

    /// What to print at start: every address, then each user's dashboard URL with its token.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// The demo's users and their tokens.
    pub fn users(&self) -> &[users::User] {
        &self.users
    }

    /// The in-process ingest's counters; `None` over NATS (the ingest runs in `tracker serve`).
    pub fn ingest_stats(&self) -> Option<Arc<crate::ingest::IngestStats>> {
        self.local.as_ref().map(|local| Arc::clone(&local.ingest_stats))
    }

    /// Serves until `shutdown` is cancelled (or the gateway stops by itself), then stops
    /// gracefully: the simulator stops, the gateway drains, the service and the ingest stop, the
    /// database is closed.
    ///
    /// # Errors
    ///
    /// The gateway's, if it failed.
    pub async fn run_until(mut self, shutdown: CancellationToken) -> Result<(), gateway::Error> {
        let early = tokio::select! {
            _ = shutdown.cancelled() => None,
            result = &mut self.gateway => Some(result),
        };
        self.simulator_stop.store(true, Ordering::Relaxed);
        let simulator = self.simulator;
        let _ = tokio::task::spawn_blocking(move || simulator.join()).await;
        self.gateway_stop.cancel();
        let result = match early {
            Some(result) => result,
            None => (&mut self.gateway).await,
        };
        if let Some(local) = self.local {
            local.service_stop.cancel();
            local.service.stopped().await;
            local.accounts.stopped().await;
            local.ingest_stop.cancel();
            match local.ingest.await {
                Ok(Err(e)) => tracing::error!(cause = %e, "the ingest failed"),
                Err(e) => tracing::error!(cause = %e, "the ingest panicked"),
                Ok(Ok(())) => {}
            }
            drop(local.store);
        }
        self.http_stop.cancel();
        let _ = self.http.await;
        tracing::info!("demo stopped");
        match result {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(cause = %e, "the gateway panicked");
                Ok(())
            }
        }
    }
}

/// The simulator's view of an enrolment.
fn to_sim(device: &crate::enrol::Enrolment) -> tracker_sim::enrolment::Enrolment {
    tracker_sim::enrolment::Enrolment {
        device_id: device.id,
        key: device.key,
        ingest: device.ingest.clone(),
        name: device.name.clone(),
    }
}
