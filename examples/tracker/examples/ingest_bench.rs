//! The tracker's benchmark: positions per second from sealed UDP reports to a client subscribed
//! through the gateway, next to a raw UDP receive of the same datagrams in the same run
//! (docs/benchmarks.md, "Tracker").
//!
//! For each offered rate, two runs of the same length, back to back:
//! - **raw**: a sender thread seals reports (`tracker_sim::device`, a fresh counter each, sealed
//!   as they are sent, round-robin over the devices) at the rate, from `--sockets` source
//!   sockets in batches (`sendmmsg`), to as many receive sockets as the ingest has, sharing a
//!   port (`SO_REUSEPORT`), each read by a thread in batches (`recvmmsg`) that counts;
//! - **tracker**: the same sender, to `tracker demo`'s pieces in this process (no simulated
//!   devices): the ingest decrypts, checks, commits to SQLite, acknowledges (every report asks,
//!   unless `--no-ack`), publishes on `position`; the gateway relays to a `gateway_client`
//!   subscribed to every key over TCP, which counts the events and their age (now − the report's
//!   fix time, set when the report was sealed). A thread counts the acknowledgements that reach
//!   the senders' sockets. After the run the database's rows are counted.
//!
//! Positions that do not arrive are placed: not published (the ingest's counter), dropped by
//! the gateway's bus subscription or dropped or conflated for a slow subscriber (the gateway's
//! `/metrics`), or missed by the subscriber (the `missed` its events carry). The subscriber's queue holds `--buffer` events (default 131,072,
//! a little over a second at 100,000/s; the client's default of 1,024 is 10 ms of that, less
//! than the counting task may wait for a core here).
//!
//! With `--nats`, the tracker runs as separate processes on a real nats-server (started here,
//! `nats-server` on the PATH): `tracker serve --no-ingest --remote-ingest` holds the database,
//! two `tracker ingest` processes (one receive thread each) serve half the devices each (shards
//! `0/2` and `1/2`, each on its own port; the sender sends each device's reports to its
//! shard's), and the gateway here relays from NATS. The `tracker` binary must be built next to
//! this one (`cargo build --release -p tracker`). The raw run then receives on two ports too.
//! The `position` topic's history is then in JetStream, unless `--history-store memory` (the
//! gateway's `history_store`) keeps it in the gateway's memory.
//!
//! Run: `cargo run --release -p tracker --example ingest_bench -- [--rates 25000,50000,100000]
//! [--devices 100000] [--seconds 5] [--sockets 32] [--buffer 131072] [--no-ack] [--nats
//! [--history-store bus|memory]]`

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::StreamExt;
use gateway_client::{Client, ClientConfig};
use tokio_util::sync::CancellationToken;
use tracker::TrackerClient;
use tracker::demo::{Demo, DemoConfig};
use tracker::ingest::IngestOptions;
use tracker::store::Store;
use tracker_sim::device::{ACK_LEN, encode_report, seal_report};
use tracker_sim::motion::Fix;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

struct Settings {
    rates: Vec<u64>,
    devices: u64,
    seconds: u64,
    sockets: usize,
    ack: bool,
    buffer: usize,
    nats: bool,
    history_in_memory: bool,
}

fn settings() -> anyhow::Result<Settings> {
    let mut s = Settings {
        rates: vec![25_000, 50_000, 100_000],
        devices: 100_000,
        seconds: 5,
        sockets: 32,
        ack: true,
        buffer: 131_072,
        nats: false,
        history_in_memory: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--no-ack" {
            s.ack = false;
            continue;
        }
        if flag == "--nats" {
            s.nats = true;
            continue;
        }
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rates" => {
                s.rates = value.split(',').map(str::parse).collect::<Result<_, _>>().with_context(
                    || format!("--rates takes reports per second like 1000,4000, not {value:?}"),
                )?;
            }
            "--devices" => s.devices = value.parse().context("--devices takes a count")?,
            "--seconds" => s.seconds = value.parse().context("--seconds takes a count")?,
            "--sockets" => s.sockets = value.parse().context("--sockets takes a count")?,
            "--buffer" => s.buffer = value.parse().context("--buffer takes a count")?,
            "--history-store" => {
                s.history_in_memory = match value.as_str() {
                    "bus" => false,
                    "memory" => true,
                    other => bail!("--history-store takes `bus` or `memory`, not {other:?}"),
                }
            }
            other => {
                bail!(
                    "unknown flag {other} (--rates, --devices, --seconds,  --sockets, --buffer, --no-ack, --nats,
                     --history-store)"
                )
            }
        }
    }
    if s.devices == 0 || s.seconds == 0 || s.sockets == 0 || s.buffer == 0 || s.rates.contains(&0) {
        bail!("--devices, --seconds, --sockets, --buffer and every rate must be at least 1");
    }
    Ok(s)
}

/// The bench's devices (ids and keys enrolled in the store, each with its next counter) and the
/// sockets they send from.
struct Senders {
    keys: Vec<(u64, [u8; 32])>,
    counters: Vec<u64>,
    next: usize,
    sockets: Vec<UdpSocket>,
    ack: bool,
}

impl Senders {
    /// Sends sealed reports round-robin over the devices at `rate` per second for `for_`, each
    /// device's to its shard's address in `to` (`to[id % to.len()]`), paced per half
    /// millisecond, each tick's reports in one `sendmmsg` per socket; returns how many were sent.
    fn send(&mut self, to: &[SocketAddr], rate: u64, for_: Duration) -> anyhow::Result<u64> {
        let start = Instant::now();
        let mut sent = 0u64;
        let mut tick: Vec<Vec<(SocketAddr, Vec<u8>)>> = vec![Vec::new(); self.sockets.len()];
        while start.elapsed() < for_ {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            let mut n = 0;
            while sent < due {
                let (id, key) = self.keys[self.next];
                self.counters[self.next] += 1;
                let fix = Fix {
                    time_ms: now_ms(),
                    lat: 52.37 + (sent % 1000) as f64 * 1e-5,
                    lon: 4.89,
                    speed_mps: 10.0,
                    heading_deg: 90.0,
                    accuracy_m: 5.0,
                    battery: Some(90),
                };
                let counter = self.counters[self.next];
                let datagram = seal_report(&key, id, counter, self.ack, &encode_report(&fix))?;
                let shard = tracker::ingest::Shard::of(id, to.len() as u32) as usize;
                tick[n % self.sockets.len()].push((to[shard], datagram));
                n += 1;
                sent += 1;
                self.next = (self.next + 1) % self.keys.len();
            }
            for (socket, datagrams) in self.sockets.iter().zip(&mut tick) {
                let batch: Vec<(SocketAddr, &[u8])> =
                    datagrams.iter().map(|(to, d)| (*to, d.as_slice())).collect();
                // A full socket buffer drops the datagram, as the network would.
                udp_batch::send(socket, &batch);
                datagrams.clear();
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        Ok(sent)
    }

    /// Counts acknowledgement-sized datagrams arriving at the senders' sockets until `stop`.
    fn count_acks(
        sockets: Vec<UdpSocket>,
        count: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let mut receiver = udp_batch::Receiver::new(256);
            while !stop.load(Ordering::Relaxed) {
                // Each socket's receive waits at most its 1 µs timeout; when none had anything,
                // a millisecond's sleep.
                let mut idle = true;
                for socket in &sockets {
                    let Ok(n) = receiver.receive_held(socket) else { continue };
                    idle &= n == 0;
                    let acks = (0..n)
                        .filter(|&i| receiver.held(i).is_some_and(|(d, _)| d.len() == ACK_LEN))
                        .count();
                    count.fetch_add(acks as u64, Ordering::Relaxed);
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    }
}

/// The raw baseline: what `ports` ports, each with `receivers` sockets sharing it, receive of
/// `rate` reports per second (each device's to one port, as to its shard's ingest), read as the
/// ingest reads (batches).
fn raw(
    senders: &mut Senders,
    ports: usize,
    receivers: usize,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<(u64, u64)> {
    let mut sockets = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..ports {
        let bound = tracker::ingest::bind(SocketAddr::from(([127, 0, 0, 1], 0)), receivers)?;
        addrs.push(bound[0].local_addr()?);
        sockets.extend(bound);
    }
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = sockets
        .into_iter()
        .map(|socket| {
            let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut receiver = udp_batch::Receiver::new(256);
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = receiver.receive_held(&socket) else { continue };
                    let reports =
                        (0..n).filter(|&i| receiver.held(i).is_some_and(|(d, _)| d.len() > 34));
                    received.fetch_add(reports.count() as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let sent = senders.send(&addrs, rate, Duration::from_secs(seconds))?;
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("a receiver thread");
    }
    Ok((sent, received.load(Ordering::Relaxed)))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One counter from the gateway's `/metrics` at `admin` (0 when it is not there yet).
fn gateway_metric(admin: SocketAddr, name: &str) -> anyhow::Result<u64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(admin)?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text.lines().filter_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok()).sum())
}

fn stored_rows(db: &std::path::Path) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open(db)?;
    Ok(conn.query_row("SELECT count(*) FROM positions", [], |r| r.get::<_, i64>(0))? as u64)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = settings()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let dir = tempfile::tempdir()?;
    let web = dir.path().join("web");
    std::fs::create_dir(&web)?;
    std::fs::write(web.join("index.html"), "<!doctype html><title>bench</title>")?;
    let db = dir.path().join("tracker.db");
    let any = |port| SocketAddr::from(([127, 0, 0, 1], port));
    // Ports chosen here, so that the gateway's and the ingest's addresses are known.
    let free_tcp =
        || -> std::io::Result<SocketAddr> { std::net::TcpListener::bind(any(0))?.local_addr() };
    let tcp = free_tcp()?;
    let free_udp = || -> std::io::Result<SocketAddr> { UdpSocket::bind(any(0))?.local_addr() };
    // One ingest address in process; one per shard's process over NATS.
    let ingests: Vec<SocketAddr> =
        (0..if s.nats { 2 } else { 1 }).map(|_| free_udp()).collect::<Result<_, _>>()?;
    let admin = free_tcp()?;

    // The bench's devices, enrolled before the demo starts (one transaction).
    let store = Store::open(&db)?;
    let keys: Vec<(u64, [u8; 32])> =
        (0..s.devices).map(|i| (1_000_000 + i, [(i % 251) as u8 + 1; 32])).collect();
    let names: Vec<String> = (0..s.devices).map(|i| format!("bench {i}")).collect();
    store.add_devices(
        keys.iter().zip(&names).map(|((id, key), name)| (*id, &name[..], key)),
        now_ms(),
    )?;
    drop(store);

    // Over NATS: the server, then the tracker's processes (killed when the bench ends).
    let nats = s.nats.then(gateway_testkit::NatsServer::start);
    let mut processes = Vec::new();
    if let Some(nats) = &nats {
        let tracker = std::env::current_exe()?
            .parent()
            .and_then(|examples| examples.parent())
            .map(|dir| dir.join("tracker"))
            .filter(|path| path.exists())
            .context("no `tracker` binary next to the bench: cargo build --release -p tracker")?;
        let url = nats.url();
        // Their logs as quiet as the bench's own unless RUST_LOG says otherwise.
        let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let mut serve = std::process::Command::new(&tracker);
        serve.env("RUST_LOG", &log);
        serve.arg("serve").arg("--db").arg(&db);
        serve.args(["--no-ingest", "--remote-ingest", "--nats", &url]);
        processes.push(gateway_testkit::Child::spawn("tracker serve", serve));
        for (index, addr) in ingests.iter().enumerate() {
            let mut ingest = std::process::Command::new(&tracker);
            ingest.env("RUST_LOG", &log);
            let (listen, shard) = (addr.to_string(), format!("{index}/{}", ingests.len()));
            ingest.args(["ingest", "--listen", &listen, "--shard", &shard, "--receivers", "1"]);
            ingest.args(["--nats", &url]);
            processes.push(gateway_testkit::Child::spawn("tracker ingest", ingest));
        }
    }

    let demo = Demo::start(DemoConfig {
        db: db.clone(),
        devices: 0,
        web,
        http: free_tcp()?,
        listen: tcp,
        ws_listen: free_tcp()?,
        admin_listen: admin,
        ingest: ingests[0],
        nats: nats.as_ref().map(gateway_testkit::NatsServer::url),
        nats_auth: gateway_bus::nats::NatsAuth::default(),
        history_store: if s.history_in_memory {
            gateway::config::HistoryStore::Memory
        } else {
            gateway::config::HistoryStore::Bus
        },
        seed: 1,
        retention: tracker::retention::Policy::default(),
    })
    .await?;
    let token = demo
        .users()
        .iter()
        .find(|u| u.role == tracker::store::accounts::Role::Admin)
        .map(|u| u.token.clone())
        .context("the demo has no user who sees every device")?;
    // In process only: over NATS the ingests are processes of their own.
    let ingest_stats = demo.ingest_stats();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(demo.run_until(shutdown.clone()));

    let sockets = (0..s.sockets)
        .map(|_| udp_batch::bind_shared(any(0), Duration::from_micros(1)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let ack_sockets = sockets.iter().map(UdpSocket::try_clone).collect::<Result<_, _>>()?;
    let mut senders = Senders { counters: vec![0; keys.len()], keys, next: 0, sockets, ack: s.ack };
    let acks = Arc::new(AtomicU64::new(0));
    let acks_stop = Arc::new(AtomicBool::new(false));
    let acks_thread = Senders::count_acks(ack_sockets, Arc::clone(&acks), Arc::clone(&acks_stop));

    let mut config = ClientConfig::new([tcp.to_string()]);
    config.token = Some(token.into_bytes());
    config.subscription_buffer = s.buffer;
    let client = Client::connect(config).await.context("connecting to the demo's gateway")?;
    // Held to the end: the last handle of a client closes it.
    let api = TrackerClient::new(client);
    let mut positions = api.subscribe_position_all().await?;
    let ages = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let counted = Arc::new(AtomicU64::new(0));
    let missed = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    {
        let (ages, counted, missed, counting) =
            (Arc::clone(&ages), Arc::clone(&counted), Arc::clone(&missed), Arc::clone(&counting));
        tokio::spawn(async move {
            while let Some(event) = positions.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(status) => {
                        // Closing the client at the end ends it too; only a failure while
                        // measuring is news.
                        if counting.load(Ordering::Relaxed) {
                            eprintln!("the subscription failed: {status}");
                        }
                        return;
                    }
                };
                if counting.load(Ordering::Relaxed) {
                    counted.fetch_add(1, Ordering::Relaxed);
                    missed.fetch_add(event.missed(), Ordering::Relaxed);
                    let age = now_ms().saturating_sub(event.message().get().time_ms());
                    ages.lock().expect("ages").push(age);
                }
            }
        });
    }
    // Wait for the ingest to take reports: one must come through.
    let probe_until = Instant::now() + Duration::from_secs(10);
    counting.store(true, Ordering::Relaxed);
    while counted.load(Ordering::Relaxed) == 0 {
        if Instant::now() > probe_until {
            bail!(
                "no report reached the subscriber within 10 s (ingest {ingests:?}, gateway {tcp})"
            );
        }
        tokio::task::block_in_place(|| senders.send(&ingests, 100, Duration::from_millis(20)))?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The raw run receives as the tracker does: in process, one port read by the ingest's
    // threads; over NATS, one port per shard read by one thread each.
    let (ports, receivers) =
        if s.nats { (ingests.len(), 1) } else { (1, IngestOptions::default().receivers) };
    println!(
        "| offered reports/s | raw received/s | tracker → subscriber positions/s | ratio | acks/s | stored | age p50 ms | age p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &rate in &s.rates {
        let (sent_raw, got_raw) =
            tokio::task::block_in_place(|| raw(&mut senders, ports, receivers, rate, s.seconds))?;
        counting.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        counted.store(0, Ordering::Relaxed);
        missed.store(0, Ordering::Relaxed);
        ages.lock().expect("ages").clear();
        let rows_before = stored_rows(&db)?;
        let acks_before = acks.load(Ordering::Relaxed);
        let unpublished_before = ingest_stats.as_ref().map(|stats| stats.publish_errors());
        let lagged_before = gateway_metric(admin, "gateway_events_dropped_total")?
            + gateway_metric(admin, "gateway_events_conflated_total")?;
        let bus_dropped_before = gateway_metric(admin, "gateway_bus_dropped_total")?;
        counting.store(true, Ordering::Relaxed);
        let sent = tokio::task::block_in_place(|| {
            senders.send(&ingests, rate, Duration::from_secs(s.seconds))
        })?;
        // Let what is in the pipeline arrive (up to 2 s late), then stop counting.
        tokio::time::sleep(Duration::from_secs(2)).await;
        counting.store(false, Ordering::Relaxed);
        let got = counted.load(Ordering::Relaxed);
        let missed = missed.load(Ordering::Relaxed);
        let acked = acks.load(Ordering::Relaxed) - acks_before;
        let stored = stored_rows(&db)? - rows_before;
        // Over NATS each ingest process logs its own counters.
        let unpublished = match (&ingest_stats, unpublished_before) {
            (Some(stats), Some(before)) => (stats.publish_errors() - before).to_string(),
            _ => "(in the ingests' logs)".to_owned(),
        };
        let lagged = gateway_metric(admin, "gateway_events_dropped_total")?
            + gateway_metric(admin, "gateway_events_conflated_total")?
            - lagged_before;
        let bus_dropped = gateway_metric(admin, "gateway_bus_dropped_total")? - bus_dropped_before;
        let mut sorted = ages.lock().expect("ages").clone();
        sorted.sort_unstable();
        let secs = s.seconds as f64;
        println!(
            "| {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {} | {} | {} |",
            sent as f64 / secs,
            got_raw as f64 / secs,
            got as f64 / secs,
            got as f64 / got_raw.max(1) as f64,
            acked as f64 / secs,
            stored,
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99),
        );
        eprintln!(
            "rate {rate}: raw sent {sent_raw} received {got_raw}; tracker sent {sent} delivered {got} acknowledged {acked} stored {stored}; not published (ingest behind) {unpublished}, dropped by the gateway's bus subscription {bus_dropped}, dropped or conflated for the subscriber (gateway) {lagged}, missed by the subscriber (its queue or the gateway's) {missed}"
        );
        if acked > stored {
            bail!("{acked} acknowledgements for {stored} stored positions");
        }
    }
    acks_stop.store(true, Ordering::Relaxed);
    acks_thread.join().expect("the ack counter");
    drop(api);
    shutdown.cancel();
    running.await??;
    drop(processes);
    Ok(())
}
