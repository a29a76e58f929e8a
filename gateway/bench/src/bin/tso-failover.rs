//! `tso-failover`: how long the timestamp oracle goes without serving when its leader dies
//! (docs/tso.md, issue 16; the bar: within the lease plus a second). Starts a 3-node nats-server
//! cluster on loopback (gateway-testkit's), three `tso` instances and a gateway (the binaries
//! next to this one), and callers asking for timestamps through the gateway without pause. Then,
//! `rounds` times, a lease and a random part of the renewal period after the oracle last started
//! serving: the leader (the instance whose `/ready` names itself) is killed with SIGKILL, and
//! the time until the first timestamp the next leader serves is measured; the killed instance is
//! started again. Every timestamp is checked to be above all those returned before its call
//! began. Prints one JSON line per round and one for the whole run.
//!
//! ```sh
//! cargo build --release -p tso -p gateway -p gateway-bench --bin tso-failover
//! target/release/tso-failover --lease 3s --rounds 5
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use gateway_client::{Client, ClientConfig};
use gateway_testkit::{Child, NatsCluster, free_addr, http_get};
use tso::Timestamp;
use tso::service::{TimestampsRequestT, TsoClient};

/// Time from the oracle leader's death to the next timestamp served.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The instances' lease (`tso --lease`).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    lease: Duration,
    /// Leaders to kill.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Concurrent callers through the gateway.
    #[arg(long, default_value_t = 8)]
    callers: usize,
    /// Keep the instances' and the gateway's logs here (default: a temporary directory,
    /// removed at the end).
    #[arg(long, value_name = "DIR")]
    logs: Option<PathBuf>,
}

/// The largest timestamp returned, and when it was returned.
#[derive(Debug)]
struct Served {
    highest: Mutex<Option<(Timestamp, Instant)>>,
    calls: AtomicU64,
    unavailable: AtomicU64,
    regressions: AtomicU64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = gateway_bench::runtime(1)?;
    runtime.block_on(run(args))
}

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("this program's path")?;
    let path = me.parent().map(|dir| dir.join(name)).context("this program's directory")?;
    ensure!(
        path.exists(),
        "{} is missing: build it (cargo build --release -p tso -p gateway)",
        path.display()
    );
    Ok(path)
}

struct Instance {
    id: String,
    http: SocketAddr,
    process: Option<Child>,
}

impl Instance {
    fn start(
        &mut self,
        tso: &Path,
        nats: &str,
        lease: Duration,
        logs: &Path,
    ) -> anyhow::Result<()> {
        let log = std::fs::File::options()
            .append(true)
            .create(true)
            .open(logs.join(format!("tso-{}.log", self.id)))?;
        let mut command = Command::new(tso);
        command
            .args(["--id", &self.id, "--nats", nats, "--http", &self.http.to_string()])
            .arg("--lease")
            .arg(humantime::format_duration(lease).to_string())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.process = Some(Child::spawn(&format!("tso {}", self.id), command));
        Ok(())
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (tso_bin, gateway_bin) = (sibling("tso")?, sibling("gateway")?);
    let temporary = tempfile::tempdir()?;
    let logs = match &args.logs {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => temporary.path().to_owned(),
    };
    let cluster = NatsCluster::start(3);
    let nats = cluster.urls();
    let mut instances: Vec<Instance> =
        (1..=3).map(|i| Instance { id: i.to_string(), http: free_addr(), process: None }).collect();
    for instance in &mut instances {
        instance.start(&tso_bin, &nats, args.lease, &logs)?;
    }
    let gateway_addr = free_addr();
    let mut gateway_command = Command::new(&gateway_bin);
    gateway_command
        .args(["--nats", &nats, "--anonymous-roles", "all", "--listen", &gateway_addr.to_string()])
        .args(["--admin-listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(logs.join("gateway.log"))?);
    let _gateway = Child::spawn("gateway", gateway_command);

    let served = Arc::new(Served {
        highest: Mutex::new(None),
        calls: AtomicU64::new(0),
        unavailable: AtomicU64::new(0),
        regressions: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let client = connect(gateway_addr).await?;
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..args.callers.max(1) {
        let (oracle, served, stop) = (TsoClient::new(client.clone()), served.clone(), stop.clone());
        callers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let floor = served.highest.lock().expect("served").map(|(t, _)| t);
                match oracle.timestamps(TimestampsRequestT { n: 1 }).await {
                    Ok(reply) => {
                        let Ok(bytes) = <[u8; 16]>::try_from(reply.get().first().bytes()) else {
                            continue;
                        };
                        let t = Timestamp::from_bytes(&bytes);
                        served.calls.fetch_add(1, Ordering::Relaxed);
                        if floor.is_some_and(|floor| t <= floor) {
                            served.regressions.fetch_add(1, Ordering::Relaxed);
                        }
                        let mut highest = served.highest.lock().expect("served");
                        if highest.is_none_or(|(h, _)| t > h) {
                            *highest = Some((t, Instant::now()));
                        }
                    }
                    Err(_) => {
                        served.unavailable.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        });
    }

    let mut figures = Vec::new();
    for round in 1..=args.rounds {
        // Serving steadily for a couple of renewals.
        until(Duration::from_secs(60), || {
            served
                .highest
                .lock()
                .expect("served")
                .is_some_and(|(_, at)| at.elapsed() < Duration::from_millis(50))
        })
        .await
        .context("the oracle does not serve")?;
        // A lease, then a random part of the renewal period (`lease / 3`), so that the leader
        // dies at any point between two renewals, not just after one.
        let jitter = Duration::from_nanos(wall_ns() % (args.lease / 3).as_nanos().max(1) as u64);
        tokio::time::sleep(args.lease + jitter).await;
        let killed = leader(&instances).context("no instance names a leader")?;
        let killed_ns = wall_ns();
        let victim =
            instances.iter_mut().find(|i| i.id == killed).context("the leader is not ours")?;
        if let Some(mut process) = victim.process.take() {
            process.kill();
        }
        // Epochs are the leader's wall clock (this machine's) when opened: one above the
        // moment of the kill can only come from the next leader. (Checked every millisecond.)
        let after = until(args.lease * 4 + Duration::from_secs(30), || {
            served.highest.lock().expect("served").is_some_and(|(t, _)| t.epoch > killed_ns)
        })
        .await
        .context("no new leader served")?;
        let mut new_leader = String::new();
        let _ = until(Duration::from_secs(5), || {
            new_leader = leader(&instances).unwrap_or_default();
            !new_leader.is_empty()
        })
        .await;
        println!(
            "{{\"round\": {round}, \"killed\": \"{killed}\", \"new_leader\": \"{new_leader}\", \"failover_ms\": {:.0}}}",
            after.as_secs_f64() * 1000.0
        );
        figures.push(after);
        victim_restart(&mut instances, &killed, &tso_bin, &nats, args.lease, &logs)?;
    }
    stop.store(true, Ordering::Relaxed);
    while callers.join_next().await.is_some() {}
    figures.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let regressions = served.regressions.load(Ordering::Relaxed);
    println!(
        "{{\"lease_ms\": {:.0}, \"rounds\": {}, \"failover_min_ms\": {:.0}, \"failover_median_ms\": {:.0}, \"failover_max_ms\": {:.0}, \"bar_ms\": {:.0}, \"calls\": {}, \"unavailable\": {}, \"regressions\": {regressions}}}",
        ms(args.lease),
        figures.len(),
        figures.first().copied().map_or(0.0, ms),
        figures.get(figures.len() / 2).copied().map_or(0.0, ms),
        figures.last().copied().map_or(0.0, ms),
        ms(args.lease + Duration::from_secs(1)),
        served.calls.load(Ordering::Relaxed),
        served.unavailable.load(Ordering::Relaxed),
    );
    if regressions > 0 {
        bail!("{regressions} timestamps were not above one returned before their call began");
    }
    Ok(())
}

fn victim_restart(
    instances: &mut [Instance],
    id: &str,
    tso: &Path,
    nats: &str,
    lease: Duration,
    logs: &Path,
) -> anyhow::Result<()> {
    let victim = instances.iter_mut().find(|i| i.id == id).context("the killed instance")?;
    victim.start(tso, nats, lease, logs)
}

/// The instance that says it leads (`/ready`: `leader=<id> nodeID=<id> …`).
fn leader(instances: &[Instance]) -> Option<String> {
    instances.iter().filter(|i| i.process.is_some()).find_map(|instance| {
        let (status, body) = http_get(instance.http, "/ready").ok()?;
        let leader = body.strip_prefix("leader=")?.split_whitespace().next()?;
        (status == 200 && body.contains(&format!(" nodeID={leader} "))).then(|| leader.to_owned())
    })
}

async fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(ClientConfig::new([addr.to_string()])).await {
            Ok(client) => return Ok(client),
            Err(e) if Instant::now() > deadline => {
                bail!("cannot connect to the gateway at {addr}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Polls `check` every millisecond; how long it took to hold.
async fn until(within: Duration, mut check: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !check() {
        ensure!(started.elapsed() < within, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(started.elapsed())
}
