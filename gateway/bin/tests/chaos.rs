//! Chaos under load (`docs/reliability.md`, "Chaos"): two gateways, a cluster of three
//! nats-servers with JetStream, two instances of each example service (echo, the Roughtime
//! server, the timestamp oracle), two trackers (`tracker serve`, one SQLite database) and the
//! mailbox relay (two shards and the sequencer), as processes on loopback, under steady load. Each component in turn is killed (SIGKILL) or paused (SIGSTOP), then
//! restarted or resumed, while:
//!
//! - four callers call `echo` every 5 ms with a 1 s deadline, each through both gateways (the
//!   client fails over);
//! - a publisher publishes numbered events on `journal` (a topic with history) every 10 ms, and
//!   a subscriber, through both gateways, reads them;
//! - a Roughtime client asks the time every 10 ms with a fresh nonce and verifies every answer
//!   against the server's key;
//! - an oracle client takes a timestamp every 10 ms, each above the one before;
//! - two senders send mailbox bundles to eight devices (four on each shard) every 10 ms, through
//!   both gateways, with a 1 s deadline;
//! - sixteen devices send sealed position reports asking for acknowledgement every 100 ms, half
//!   to each tracker's UDP ingest.
//!
//! Then it checks what the issue asks: no call hangs (each ends within its deadline and a
//! margin), every failed call says it may be retried or ran out its deadline, calls and sends
//! succeed again and reports are acknowledged again within a bound after each component is back
//! (the times are measured and printed), nothing acknowledged is lost (every journal event
//! reaches the subscriber once and in order, every answered bundle is in each recipient's
//! verified mailbox once, every acknowledged report is in the tracker's database), the gateways'
//! open files come back and their memory stays under its bound.
//!
//! Ignored in the test command: `scripts/chaos` runs it (about five minutes).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use echo::{BlobT, EchoClient};
use futures::StreamExt as _;
use gateway_client::{Client, ClientConfig};
use gateway_testkit::NatsCluster;
use mailbox::service::MailboxClient;
use roughtime::service::{RoughtimeClient, TimeRequestT};
use tracker::packet::{self, FLAG_ACK_WANTED, Header};
use tso::service::{TimestampsRequestT, TsoClient};

mod support;
use support::mailbox::{bundle, id, key_ring, read_mailboxes};
use support::{Gateway, Process, System, WAIT};

/// Each call's deadline.
const DEADLINE: Duration = Duration::from_secs(1);
/// How much later than its deadline a call may end before it counts as hung.
const HANG_MARGIN: Duration = Duration::from_secs(2);
/// How long a fault lasts before the component is brought back.
const FAULT: Duration = Duration::from_secs(3);
/// How long after bringing it back before the next fault.
const SETTLE: Duration = Duration::from_secs(6);
/// The longest time calls may keep failing, or reports go unacknowledged, once the component
/// is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
/// The timestamp oracle's bound after a nats-server comes back: its instances write their
/// lease to a JetStream key-value bucket, whose stream elects a leader again when a node leaves
/// and when it rejoins; until then nobody may serve (docs/tso.md). Measured: up to 5.03 s.
const TSO_AFTER_NATS_BOUND: Duration = Duration::from_secs(10);
/// The most resident memory a gateway may reach under this load (its connections are few: the
/// bound is what a leak or an unbounded queue during a fault would break).
const GATEWAY_RSS_BOUND_MIB: u64 = 128;
/// Tracker devices, and how often each reports.
const DEVICES: u64 = 16;
const REPORT_EVERY: Duration = Duration::from_millis(100);
/// The Roughtime servers' key.
const ROUGHTIME_SEED: [u8; 32] = [42; 32];
/// Mailbox shards, and the devices bundles go to.
const SHARDS: u32 = 2;
const MAILBOX_DEVICES: usize = 8;

/// One call's (or send's) end, in time since the start.
#[derive(Clone, Debug)]
struct Call {
    started: Duration,
    ended: Duration,
    /// `None`: answered. Otherwise the status code and what the caller may do.
    failed: Option<(&'static str, Failure)>,
}

/// What a failed call tells its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    /// It may be sent again (`retryable`).
    Retryable,
    /// It may have run: `deadline_exceeded` (the caller's own bound ran out), or `unavailable`
    /// for a call of a method that is not idempotent whose connection was lost with the call in
    /// flight. Whether to send it again is the caller's decision.
    MayHaveRun,
    /// Neither: no such failure is allowed.
    Other,
    /// Not ended within its deadline and a margin.
    Hung,
}

impl Call {
    fn of<T>(
        started: Duration,
        ended: Duration,
        answer: &Result<Result<T, gateway_core::Status>, tokio::time::error::Elapsed>,
    ) -> Call {
        let failed = match answer {
            Ok(Ok(_)) => None,
            Ok(Err(status)) => {
                let code = status.code().name();
                let failure = if status.retryable() {
                    Failure::Retryable
                } else if code == "deadline_exceeded"
                    || (code == "unavailable" && status.message().contains("may have run"))
                {
                    Failure::MayHaveRun
                } else {
                    Failure::Other
                };
                Some((code, failure))
            }
            Err(_) => Some(("none", Failure::Hung)),
        };
        Call { started, ended, failed }
    }
}

/// A fault injected: on what, how, when it began, when the component was back.
#[derive(Clone, Debug)]
struct Fault {
    component: Component,
    what: String,
    began: Duration,
    restored: Duration,
}

/// Every component a fault is injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Component {
    Gateway(usize),
    Echo(usize),
    Roughtime(usize),
    Tso(usize),
    Tracker(usize),
    Shard(usize),
    Sequencer,
    Nats(usize),
}

/// The system's processes, restarted in place.
struct Fleet {
    system: System<NatsCluster>,
    gateways: Vec<Gateway>,
    echo: Vec<Process>,
    roughtime: Vec<Process>,
    tso: Vec<Process>,
    trackers: Vec<Process>,
    shards: Vec<Process>,
    /// `None` only while the fleet starts.
    sequencer: Option<Process>,
    /// The trackers' database and their UDP ingest addresses.
    tracker_db: PathBuf,
    ingests: Vec<SocketAddr>,
    /// The mailbox shards' directory.
    mailbox_dir: tempfile::TempDir,
}

impl Fleet {
    async fn start(tracker_db: PathBuf) -> Fleet {
        let system = System::start_cluster(3);
        let gateways = vec![system.gateway("gw-a").await, system.gateway("gw-b").await];
        let mut fleet = Fleet {
            system,
            gateways,
            echo: Vec::new(),
            roughtime: Vec::new(),
            tso: Vec::new(),
            trackers: Vec::new(),
            shards: Vec::new(),
            sequencer: None,
            tracker_db,
            ingests: (0..2).map(|_| free_udp_addr()).collect(),
            mailbox_dir: tempfile::tempdir().expect("a directory for the mailbox shards"),
        };
        std::fs::write(
            fleet.roughtime_key(),
            base64::engine::general_purpose::STANDARD.encode(ROUGHTIME_SEED),
        )
        .expect("the Roughtime key file");
        fleet.echo = (0..2).map(|i| fleet.start_echo(i)).collect();
        fleet.roughtime = (0..2).map(|i| fleet.start_roughtime(i)).collect();
        fleet.tso = (0..2).map(|i| fleet.start_tso(i)).collect();
        fleet.trackers = (0..2).map(|i| fleet.start_tracker(i)).collect();
        fleet.shards = (0..SHARDS as usize).map(|i| fleet.start_shard(i)).collect();
        fleet.sequencer = Some(fleet.start_sequencer());
        fleet
    }

    fn start_echo(&self, i: usize) -> Process {
        self.system.service("echo-service", &format!("echo-{}", i + 1), &[])
    }

    fn roughtime_key(&self) -> PathBuf {
        self.system.logs.path().join("roughtime.key")
    }

    /// Both instances sign with the same key (from one file), as a deployment's would.
    fn start_roughtime(&self, i: usize) -> Process {
        let key = self.roughtime_key().display().to_string();
        self.system.service("roughtime-service", &format!("roughtime-{}", i + 1), &["--key", &key])
    }

    fn start_tso(&self, i: usize) -> Process {
        let id = (i + 1).to_string();
        self.system.service("tso", &format!("tso-{id}"), &["--id", &id, "--lease", "1s"])
    }

    fn start_tracker(&self, i: usize) -> Process {
        let args = [
            "serve".to_owned(),
            "--nats".to_owned(),
            self.system.nats.urls(),
            "--db".to_owned(),
            self.tracker_db.display().to_string(),
            "--ingest".to_owned(),
            self.ingests[i].to_string(),
            "--allow-anonymous".to_owned(),
        ];
        let program = support::sibling_binary("tracker");
        Process::spawn(self.system.logs.path(), &format!("tracker-{}", i + 1), &program, &args)
    }

    fn start_shard(&self, i: usize) -> Process {
        let dir = self.mailbox_dir.path().to_str().expect("a UTF-8 path");
        let (shards, shard) = (SHARDS.to_string(), i.to_string());
        let args =
            ["--dir", dir, "--allow-anonymous", "--shards", shards.as_str(), "--shard", &shard];
        self.system.service("mailbox-service", &format!("shard-{i}"), &args)
    }

    fn start_sequencer(&self) -> Process {
        let shards = SHARDS.to_string();
        self.system.service("mailbox-sequencer", "sequencer", &["--shards", shards.as_str()])
    }

    /// Every component, or with `CHAOS_FAULTS` (comma-separated parts of names, e.g.
    /// `shard,sequencer`) those whose names hold one of them.
    fn every_component(&self) -> Vec<Component> {
        let only = std::env::var("CHAOS_FAULTS").unwrap_or_default();
        let wanted: Vec<&str> = only.split(',').filter(|w| !w.is_empty()).collect();
        let mut all = self.all_components();
        all.retain(|&c| wanted.is_empty() || wanted.iter().any(|w| self.name(c).contains(w)));
        all
    }

    fn all_components(&self) -> Vec<Component> {
        let mut all: Vec<Component> = (0..2).map(Component::Gateway).collect();
        all.extend((0..2).map(Component::Echo));
        all.extend((0..2).map(Component::Roughtime));
        all.extend((0..2).map(Component::Tso));
        all.extend((0..2).map(Component::Tracker));
        all.extend((0..SHARDS as usize).map(Component::Shard));
        all.push(Component::Sequencer);
        all.extend((0..3).map(Component::Nats));
        all
    }

    fn name(&self, component: Component) -> String {
        match component {
            Component::Gateway(i) => format!("gateway {}", self.gateways[i].name),
            Component::Echo(i) => format!("echo-{}", i + 1),
            Component::Roughtime(i) => format!("roughtime-{}", i + 1),
            Component::Tso(i) => format!("tso-{}", i + 1),
            Component::Tracker(i) => format!("tracker-{}", i + 1),
            Component::Shard(i) => format!("mailbox shard-{i}"),
            Component::Sequencer => "mailbox sequencer".to_owned(),
            Component::Nats(i) => format!("nats {}", self.system.nats.name(i)),
        }
    }

    fn process(&self, component: Component) -> Option<&Process> {
        match component {
            Component::Gateway(i) => Some(&self.gateways[i].process),
            Component::Echo(i) => Some(&self.echo[i]),
            Component::Roughtime(i) => Some(&self.roughtime[i]),
            Component::Tso(i) => Some(&self.tso[i]),
            Component::Tracker(i) => Some(&self.trackers[i]),
            Component::Shard(i) => Some(&self.shards[i]),
            Component::Sequencer => self.sequencer.as_ref(),
            Component::Nats(_) => None,
        }
    }

    /// Kills it with SIGKILL, waits [`FAULT`], starts it again (a gateway on its addresses, a
    /// service on its files, a nats-server on its store).
    async fn kill_and_restart(&mut self, component: Component) {
        match component {
            Component::Nats(i) => self.system.nats.kill(i),
            Component::Gateway(i) => self.gateways[i].process.kill(),
            Component::Echo(i) => self.echo[i].kill(),
            Component::Roughtime(i) => self.roughtime[i].kill(),
            Component::Tso(i) => self.tso[i].kill(),
            Component::Tracker(i) => self.trackers[i].kill(),
            Component::Shard(i) => self.shards[i].kill(),
            Component::Sequencer => self.sequencer.as_mut().expect("the sequencer").kill(),
        }
        tokio::time::sleep(FAULT).await;
        match component {
            Component::Nats(i) => self.system.nats.restart(i),
            Component::Gateway(i) => {
                let old = self.gateways.remove(i);
                let again = self.system.restart(old).await;
                self.gateways.insert(i, again);
            }
            Component::Echo(i) => self.echo[i] = self.start_echo(i),
            Component::Roughtime(i) => self.roughtime[i] = self.start_roughtime(i),
            Component::Tso(i) => self.tso[i] = self.start_tso(i),
            Component::Tracker(i) => self.trackers[i] = self.start_tracker(i),
            Component::Shard(i) => self.shards[i] = self.start_shard(i),
            Component::Sequencer => self.sequencer = Some(self.start_sequencer()),
        }
    }

    /// Pauses it with SIGSTOP for [`FAULT`], then resumes it.
    async fn pause_and_resume(&self, component: Component) {
        match (component, self.process(component)) {
            (Component::Nats(i), _) => self.system.nats.pause(i),
            (_, Some(process)) => process.child.pause(),
            (_, None) => unreachable!("every other component is a process"),
        }
        tokio::time::sleep(FAULT).await;
        match (component, self.process(component)) {
            (Component::Nats(i), _) => self.system.nats.resume(i),
            (_, Some(process)) => process.child.resume(),
            (_, None) => unreachable!("every other component is a process"),
        }
    }

    /// Both gateways, `first` first: the order a client tries them in.
    fn both(&self, first: usize) -> [&Gateway; 2] {
        [&self.gateways[first], &self.gateways[1 - first]]
    }

    fn gateway_pids(&self) -> Vec<u32> {
        self.gateways.iter().filter_map(|g| g.process.child.id()).collect()
    }
}

/// A free UDP port on loopback.
fn free_udp_addr() -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    socket.local_addr().expect("its address")
}

fn blob(text: String) -> BlobT {
    BlobT { data: Some(text.into_bytes()) }
}

async fn client(gateways: &[&Gateway]) -> Client {
    let mut config = ClientConfig::new(gateways.iter().map(|g| g.addr.to_string()));
    config.default_timeout = DEADLINE;
    tokio::time::timeout(WAIT, Client::connect(config)).await.unwrap().unwrap()
}

/// Open files of process `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Resident memory of process `pid`, in KiB.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

/// Enrols the tracker's devices in a new database: (id, key) each.
fn enrol_devices(db: &std::path::Path) -> Vec<(u64, packet::DeviceKey)> {
    let store = tracker::store::Store::open(db).expect("the tracker's database");
    (1..=DEVICES)
        .map(|id| {
            let key: packet::DeviceKey =
                std::array::from_fn(|i| (id as u8).wrapping_mul(31) ^ i as u8);
            store.add_device(id, &format!("chaos device {id}"), &key, now_ms()).expect("enrolled");
            (id, key)
        })
        .collect()
}

/// One device: a report every [`REPORT_EVERY`] to `ingest`, each with a new counter and asking
/// for an acknowledgement (never sent again: an unacknowledged report may or may not be stored);
/// the acknowledged counters with the time each acknowledgement came.
async fn device(
    (device_id, key): (u64, packet::DeviceKey),
    ingest: SocketAddr,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> (u64, Vec<(u64, Duration)>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("a UDP socket");
    let mut acked = Vec::new();
    let mut counter = 0u64;
    let mut tick = tokio::time::interval(REPORT_EVERY);
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            _ = tick.tick() => {
                counter += 1;
                let report = tracker::DeviceReportT {
                    time_ms: now_ms(),
                    lat: 52.52 + counter as f64 * 1e-5,
                    lon: 13.405,
                    speed_mps: 3.0,
                    heading_deg: 90.0,
                    accuracy_m: 5.0,
                    battery: Some(80),
                };
                let header = Header { flags: FLAG_ACK_WANTED, device_id, counter };
                let datagram = packet::seal(&header, &key, &packet::encode_report(&report));
                // Unconnected: a tracker that is down costs the send nothing but the report.
                let _ = socket.send_to(&datagram, ingest).await;
            }
            received = socket.recv_from(&mut buf) => {
                if let Ok((n, _)) = received
                    && let Some((id, acknowledged)) = packet::verify_ack(&buf[..n], &key)
                {
                    assert_eq!(id, device_id, "an acknowledgement for another device");
                    acked.push((acknowledged, start.elapsed()));
                }
            }
        }
    }
    (device_id, acked)
}

/// Calls (or sends) grouped by the fault they ended in: how many, how many failed, and for how
/// long after the component was back they kept failing (the end of the last failed one that
/// started after it was back).
fn recoveries(calls: &[Call], faults: &[Fault]) -> Vec<(usize, usize, Duration)> {
    faults
        .iter()
        .enumerate()
        .map(|(k, fault)| {
            let until = faults.get(k + 1).map_or(Duration::MAX, |next| next.began);
            // A call belongs to the last fault that began before it ended.
            let during: Vec<&Call> =
                calls.iter().filter(|c| c.ended >= fault.began && c.ended < until).collect();
            let failed = during.iter().filter(|c| c.failed.is_some()).count();
            let last_failure = during
                .iter()
                .filter(|c| c.failed.is_some() && c.started >= fault.restored)
                .map(|c| c.ended)
                .max();
            (during.len(), failed, last_failure.map_or(Duration::ZERO, |end| end - fault.restored))
        })
        .collect()
}

/// Failures by status and what they tell the caller.
fn by_code(calls: &[Call]) -> BTreeMap<(&'static str, Failure), usize> {
    let mut counts = BTreeMap::new();
    for failed in calls.iter().filter_map(|c| c.failed) {
        *counts.entry(failed).or_default() += 1;
    }
    counts
}

/// Asserts that no call hung and that every failure either may be retried or says the call may
/// have run ([`Failure`]). Nothing else: no `internal`, no unexplained loss.
fn assert_honest_failures(what: &str, calls: &[Call]) {
    let failed =
        |kind: Failure| calls.iter().filter(move |c| c.failed.is_some_and(|(_, f)| f == kind));
    let hung: Vec<&Call> = failed(Failure::Hung).collect();
    assert!(
        hung.is_empty(),
        "{what}: {} hung past their deadline: {:?}",
        hung.len(),
        &hung[..hung.len().min(5)]
    );
    let other = failed(Failure::Other).count();
    assert_eq!(
        other,
        0,
        "{what}: failures neither retryable nor of a call that may have run: {:?}",
        by_code(calls)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: scripts/chaos runs it"]
async fn every_component_killed_and_paused_in_turn_under_load() {
    let tracker_dir = tempfile::tempdir().expect("a directory for the tracker's database");
    let tracker_db = tracker_dir.path().join("tracker.db");
    let devices = enrol_devices(&tracker_db);
    let mut fleet = Fleet::start(tracker_db.clone()).await;
    let probe = EchoClient::new(client(&fleet.both(0)).await);
    let mailbox = MailboxClient::new(client(&fleet.both(0)).await);
    let time = RoughtimeClient::new(client(&fleet.both(0)).await);
    let oracle = TsoClient::new(client(&fleet.both(0)).await);
    let deadline = Instant::now() + 3 * WAIT;
    while probe.echo(blob("probe".into())).await.is_err()
        || mailbox.keys(mailbox::service::KeysRequestT {}).await.is_err()
        || time.time(TimeRequestT { nonce: vec![0; 32], draft: false }).await.is_err()
        || oracle.timestamps(TimestampsRequestT { n: 1 }).await.is_err()
    {
        assert!(Instant::now() < deadline, "a service never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let files_before: Vec<usize> = fleet.gateway_pids().into_iter().map(open_files).collect();

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();

    // Echo: four callers.
    let calls = Arc::new(Mutex::new(Vec::<Call>::new()));
    for caller in 0..4 {
        let echo = EchoClient::new(client(&fleet.both(caller % 2)).await);
        let (stop, calls) = (stop.clone(), calls.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = start.elapsed();
                let answer =
                    tokio::time::timeout(DEADLINE + HANG_MARGIN, echo.echo(blob("x".into()))).await;
                calls.lock().unwrap().push(Call::of(started, start.elapsed(), &answer));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    // Roughtime: a fresh nonce every 10 ms, every answer verified.
    let times = Arc::new(Mutex::new(Vec::<Call>::new()));
    let bad_times = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let time = RoughtimeClient::new(client(&fleet.both(1)).await);
        let public = roughtime::keys::LongTermKey::from_seed(&ROUGHTIME_SEED).public();
        let (stop, times, bad) = (stop.clone(), times.clone(), bad_times.clone());
        load.push(tokio::spawn(async move {
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let mut nonce = [7u8; 32];
                nonce[..8].copy_from_slice(&i.to_le_bytes());
                let request = TimeRequestT { nonce: nonce.to_vec(), draft: false };
                let started = start.elapsed();
                let answer = tokio::time::timeout(DEADLINE + HANG_MARGIN, time.time(request)).await;
                times.lock().unwrap().push(Call::of(started, start.elapsed(), &answer));
                if let Ok(Ok(reply)) = answer {
                    let reply = reply.get().unpack();
                    if let Err(e) =
                        roughtime::verify::verify(&reply.request, &reply.response, &public)
                    {
                        bad.lock().unwrap().push(format!("answer {i}: {e}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    // The oracle: a timestamp every 10 ms, each above every one before.
    let stamps = Arc::new(Mutex::new(Vec::<Call>::new()));
    let backwards = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let oracle = TsoClient::new(client(&fleet.both(0)).await);
        let (stop, stamps, backwards) = (stop.clone(), stamps.clone(), backwards.clone());
        load.push(tokio::spawn(async move {
            let mut last = tso::Timestamp { epoch: 0, index: 0 };
            while !stop.load(Ordering::Relaxed) {
                let started = start.elapsed();
                let answer = tokio::time::timeout(
                    DEADLINE + HANG_MARGIN,
                    oracle.timestamps(TimestampsRequestT { n: 1 }),
                )
                .await;
                stamps.lock().unwrap().push(Call::of(started, start.elapsed(), &answer));
                if let Ok(Ok(reply)) = answer {
                    let first: [u8; 16] = reply.get().first().bytes().try_into().expect("16 bytes");
                    let stamp = tso::Timestamp::from_bytes(&first);
                    if stamp <= last {
                        backwards.lock().unwrap().push(format!("{stamp:?} after {last:?}"));
                    }
                    last = last.max(stamp);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    // The journal: numbered events, what was acknowledged, and what the subscriber read.
    let acknowledged = Arc::new(Mutex::new(Vec::<(u64, Duration)>::new()));
    let received = Arc::new(Mutex::new(Vec::<u64>::new()));
    let lost = Arc::new(Mutex::new(Vec::<String>::new()));
    let subscriber = EchoClient::new(client(&fleet.both(1)).await);
    let mut journal = subscriber.subscribe_journal().await.expect("subscribed to journal");
    let stop_reading = Arc::new(AtomicBool::new(false));
    let reader = {
        let (received, lost, stop) = (received.clone(), lost.clone(), stop_reading.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), journal.next()).await {
                    Ok(Some(Ok(event))) => {
                        let data = event.message().get().data().map(|d| d.bytes().to_vec());
                        let n = String::from_utf8(data.unwrap_or_default()).unwrap();
                        received.lock().unwrap().push(n.parse().unwrap());
                    }
                    Ok(Some(Err(status))) => lost.lock().unwrap().push(status.to_string()),
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
        })
    };
    {
        let publisher = EchoClient::new(client(&fleet.both(0)).await);
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sent = tokio::time::timeout(
                    DEADLINE + HANG_MARGIN,
                    publisher.publish_journal(blob(n.to_string())),
                )
                .await;
                if let Ok(Ok(())) = sent {
                    acknowledged.lock().unwrap().push((n, start.elapsed()));
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    // The mailbox: two senders, bundles to one or two of eight devices.
    let mailbox_devices: Vec<String> =
        (0..MAILBOX_DEVICES).map(|d| format!("device-{d}")).collect();
    assert!(
        (0..SHARDS).all(|s| mailbox_devices.iter().any(|d| mailbox::hash::owner(d, SHARDS) == s)),
        "mailbox devices on every shard"
    );
    let sends = Arc::new(Mutex::new(Vec::<Call>::new()));
    let answered = Arc::new(Mutex::new(Vec::new()));
    for sender in 0..2usize {
        let mailbox = MailboxClient::new(client(&fleet.both(sender % 2)).await);
        let (stop, sends, answered, devices) =
            (stop.clone(), sends.clone(), answered.clone(), mailbox_devices.clone());
        load.push(tokio::spawn(async move {
            for i in 0usize.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let first = &devices[(sender + i) % MAILBOX_DEVICES];
                let second = &devices[(sender + 3 * i + 1) % MAILBOX_DEVICES];
                let to: Vec<&str> = if first == second { vec![first] } else { vec![first, second] };
                let common = format!("s{sender} m{i}");
                let started = start.elapsed();
                let answer = tokio::time::timeout(
                    DEADLINE + HANG_MARGIN,
                    mailbox.send(bundle(&to, &common)),
                )
                .await;
                sends.lock().unwrap().push(Call::of(started, start.elapsed(), &answer));
                if let Ok(Ok(reply)) = answer {
                    let to: Vec<String> = to.iter().map(|d| (*d).to_owned()).collect();
                    answered.lock().unwrap().push((id(&reply.unpack().bundle), to, common));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    // The tracker: sixteen devices, half on each tracker's ingest.
    let reporting: Vec<_> = devices
        .iter()
        .map(|&device_and_key| {
            let ingest = fleet.ingests[(device_and_key.0 % 2) as usize];
            tokio::spawn(device(device_and_key, ingest, start, stop.clone()))
        })
        .collect();

    // The gateways' memory, sampled every 100 ms (their process ids change at restarts).
    let gateway_pids = Arc::new(Mutex::new(fleet.gateway_pids()));
    let peak_rss_kib = Arc::new(Mutex::new(0u64));
    let sampler = {
        let (pids, peak, stop) = (gateway_pids.clone(), peak_rss_kib.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let pids = pids.lock().unwrap().clone();
                for rss in pids.into_iter().filter_map(resident_kib) {
                    let mut peak = peak.lock().unwrap();
                    *peak = (*peak).max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut faults = Vec::new();
    for kill in [true, false] {
        for component in fleet.every_component() {
            let began = start.elapsed();
            if kill {
                fleet.kill_and_restart(component).await;
            } else {
                fleet.pause_and_resume(component).await;
            }
            *gateway_pids.lock().unwrap() = fleet.gateway_pids();
            let how = if kill { "kill -9" } else { "SIGSTOP" };
            let what = format!("{how} {}", fleet.name(component));
            faults.push(Fault { component, what, began, restored: start.elapsed() });
            tokio::time::sleep(SETTLE).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    sampler.await.unwrap();
    let mut acked_reports = HashMap::new();
    for device in reporting {
        let (id, acked) = device.await.unwrap();
        acked_reports.insert(id, acked);
    }
    // The last acknowledged events are on their way to the subscriber: wait for them (bounded).
    let last = acknowledged.lock().unwrap().last().map(|&(n, _)| n);
    let deadline = Instant::now() + WAIT;
    while last.is_some_and(|last| !received.lock().unwrap().contains(&last))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_reading.store(true, Ordering::Relaxed);
    reader.await.unwrap();

    // What happened, fault by fault: each client's calls, and the trackers' acknowledgements.
    let kinds: Vec<(&str, Vec<Call>)> = vec![
        ("echo", calls.lock().unwrap().clone()),
        ("roughtime", times.lock().unwrap().clone()),
        ("tso", stamps.lock().unwrap().clone()),
        ("mailbox", sends.lock().unwrap().clone()),
    ];
    let kind_recoveries: Vec<Vec<(usize, usize, Duration)>> =
        kinds.iter().map(|(_, calls)| recoveries(calls, &faults)).collect();
    // Reports, fault by fault (for a tracker's own faults, its own devices'): the longest time
    // without an acknowledgement, and the time from the component's return to the first one.
    let report_recoveries: Vec<(Duration, Duration)> = faults
        .iter()
        .enumerate()
        .map(|(k, fault)| {
            let until = faults.get(k + 1).map_or(Duration::MAX, |next| next.began);
            let mine = |id: u64| match fault.component {
                Component::Tracker(i) => (id % 2) as usize == i,
                _ => true,
            };
            let mut times: Vec<Duration> = acked_reports
                .iter()
                .filter(|(id, _)| mine(**id))
                .flat_map(|(_, acked)| acked.iter().map(|&(_, at)| at))
                .filter(|&at| at >= fault.began && at < until)
                .collect();
            times.sort();
            let gap = std::iter::once(fault.began)
                .chain(times.iter().copied())
                .zip(times.iter().copied())
                .map(|(a, b)| b - a)
                .max()
                .unwrap_or(Duration::MAX);
            let first_back = times.iter().find(|&&at| at >= fault.restored);
            (gap, first_back.map_or(Duration::MAX, |&at| at - fault.restored))
        })
        .collect();
    let total: usize = kinds.iter().map(|(_, calls)| calls.len()).sum();
    println!("chaos: {total} calls in {:.0} s", start.elapsed().as_secs_f64());
    println!(
        "  each column: calls ended during the fault / failed / seconds failing after it was back"
    );
    let mut header = format!("  {:<28}", "fault");
    for (name, _) in &kinds {
        header += &format!(" {name:>18}");
    }
    println!("{header} {:>18}", "reports gap/back");
    for (k, fault) in faults.iter().enumerate() {
        let mut line = format!("  {:<28}", fault.what);
        for recoveries in &kind_recoveries {
            let (n, failed, back) = recoveries[k];
            line += &format!(" {:>18}", format!("{n}/{failed}/{:.2}", back.as_secs_f64()));
        }
        let (gap, back) = report_recoveries[k];
        let report = format!("{:.2}/{:.2}", gap.as_secs_f64(), back.as_secs_f64());
        println!("{line} {report:>18}");
    }
    for (name, calls) in &kinds {
        println!("  {name} failures by status: {:?}", by_code(calls));
    }
    let bad_times = bad_times.lock().unwrap().clone();
    let backwards = backwards.lock().unwrap().clone();
    println!(
        "  roughtime answers that did not verify: {}; timestamps not above the last: {}",
        bad_times.len(),
        backwards.len()
    );

    // The journal.
    let acknowledged = acknowledged.lock().unwrap().clone();
    let received = received.lock().unwrap().clone();
    let lost = lost.lock().unwrap().clone();
    println!(
        "  journal: {} acknowledged, {} received, losses reported: {lost:?}",
        acknowledged.len(),
        received.len()
    );
    let received_set: HashSet<u64> = received.iter().copied().collect();
    let missing: Vec<(u64, Duration)> =
        acknowledged.iter().copied().filter(|(n, _)| !received_set.contains(n)).collect();
    let mut missing_by_fault = BTreeMap::<String, Vec<u64>>::new();
    for &(n, at) in &missing {
        let fault = faults.iter().rev().find(|f| f.began <= at).map_or("none", |f| f.what.as_str());
        missing_by_fault.entry(fault.to_owned()).or_default().push(n);
    }
    for (fault, numbers) in &missing_by_fault {
        println!(
            "  journal: {} acknowledged events never received, acknowledged during {fault}: {}..={}",
            numbers.len(),
            numbers[0],
            numbers[numbers.len() - 1]
        );
    }

    // The mailbox: every answered bundle, read back through a gateway and verified.
    let answered = answered.lock().unwrap().clone();
    let reader = MailboxClient::new(client(&fleet.both(0)).await);
    let ring = key_ring(&reader).await;
    let held = read_mailboxes(&reader, &mailbox_devices, &ring, Some(SHARDS)).await;
    let bundles_lost: Vec<String> = answered
        .iter()
        .flat_map(|(bundle, to, common)| {
            to.iter()
                .filter(|device| held.get(&((*device).clone(), *bundle)) != Some(common))
                .map(move |device| format!("{bundle} to {device}"))
        })
        .collect();
    println!(
        "  mailbox: {} bundles answered, {} messages held, {} answered and not held",
        answered.len(),
        held.len(),
        bundles_lost.len()
    );

    // The tracker: every acknowledged report in the database.
    let store = tracker::store::Store::open(&tracker_db).expect("the tracker's database");
    let (mut acked_total, mut reports_lost) = (0, Vec::new());
    for (device_id, acked) in &acked_reports {
        let stored: HashSet<u64> = store
            .history(*device_id, 0, u64::MAX, u32::MAX, false)
            .expect("a device's history")
            .iter()
            .map(|p| p.counter)
            .collect();
        acked_total += acked.len();
        reports_lost.extend(
            acked
                .iter()
                .filter(|(counter, _)| !stored.contains(counter))
                .map(|(c, _)| (*device_id, *c)),
        );
    }
    println!(
        "  tracker: {} reports acknowledged, {} of them not in the database",
        acked_total,
        reports_lost.len()
    );

    let files_after: Vec<usize> = fleet.gateway_pids().into_iter().map(open_files).collect();
    let peak_mib = *peak_rss_kib.lock().unwrap() / 1024;
    println!(
        "  gateways: open files before {files_before:?}, after {files_after:?}; peak resident memory {peak_mib} MiB"
    );

    for (name, calls) in &kinds {
        assert_honest_failures(name, calls);
    }
    for (k, fault) in faults.iter().enumerate() {
        let what = &fault.what;
        for ((name, _), recoveries) in kinds.iter().zip(&kind_recoveries) {
            let back = recoveries[k].2;
            let bound = match (*name, fault.component) {
                ("tso", Component::Nats(_)) => TSO_AFTER_NATS_BOUND,
                _ => RECOVERY_BOUND,
            };
            assert!(back <= bound, "{what}: {name} calls failed for {back:?} after it was back");
        }
        let back = report_recoveries[k].1;
        assert!(
            back <= RECOVERY_BOUND,
            "{what}: no report acknowledged for {back:?} after it was back"
        );
    }
    let mut seen = HashSet::new();
    let repeats: Vec<u64> = received.iter().copied().filter(|n| !seen.insert(*n)).collect();
    assert!(repeats.is_empty(), "events received twice: {repeats:?}");
    assert!(received.windows(2).all(|w| w[0] < w[1]), "events out of order");
    assert!(missing.is_empty(), "acknowledged events never received (losses reported: {lost:?})");
    assert!(bad_times.is_empty(), "Roughtime answers that do not verify: {bad_times:?}");
    assert!(backwards.is_empty(), "timestamps not above the one before: {backwards:?}");
    assert!(answered.len() > 1000, "only {} bundles answered", answered.len());
    assert!(
        bundles_lost.is_empty(),
        "answered bundles not held: {:?}",
        &bundles_lost[..bundles_lost.len().min(10)]
    );
    assert!(acked_total > 1000, "only {acked_total} reports acknowledged");
    assert!(
        reports_lost.is_empty(),
        "acknowledged reports not stored: {:?}",
        &reports_lost[..reports_lost.len().min(10)]
    );
    for (before, after) in files_before.iter().zip(&files_after) {
        assert!(*after <= before + 16, "a gateway's open files grew from {before} to {after}");
    }
    assert!(peak_mib <= GATEWAY_RSS_BOUND_MIB, "a gateway reached {peak_mib} MiB");
    drop(fleet);
}
