//! The tracker's benchmark: positions per second from encrypted UDP reports to a client
//! subscribed through the gateway, next to a raw UDP receive of the same datagrams in the same
//! run (docs/benchmarks.md, "Tracker").
//!
//! For each offered rate, two runs of the same length, back to back:
//! - **raw**: a thread sends sealed reports (`tracker_sim::device`, a fresh counter each, sealed
//!   as they are sent) at the rate to a plain UDP socket, whose thread counts what arrives;
//! - **tracker**: the same sender, to `tracker demo`'s pieces in this process (no simulated
//!   devices): the ingest decrypts, checks, commits to SQLite, acknowledges nothing (no ack is
//!   asked), publishes on `position`; the gateway relays to a `gateway_client` subscribed to
//!   every key over TCP, which counts the events and their age (now − the report's fix time,
//!   set when the report was sealed).
//!
//! Run: `cargo run --release -p tracker --example ingest_bench -- [--rates 1000,4000,16000]
//! [--devices 200] [--seconds 5]`

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
use tracker::store::Store;
use tracker_sim::device::{encode_report, seal_report};
use tracker_sim::motion::Fix;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

struct Settings {
    rates: Vec<u64>,
    devices: u64,
    seconds: u64,
}

fn settings() -> anyhow::Result<Settings> {
    let mut s = Settings { rates: vec![1000, 4000, 16000], devices: 200, seconds: 5 };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rates" => {
                s.rates = value.split(',').map(str::parse).collect::<Result<_, _>>().with_context(
                    || format!("--rates takes reports per second like 1000,4000, not {value:?}"),
                )?;
            }
            "--devices" => s.devices = value.parse().context("--devices takes a count")?,
            "--seconds" => s.seconds = value.parse().context("--seconds takes a count")?,
            other => bail!("unknown flag {other} (--rates, --devices, --seconds)"),
        }
    }
    if s.devices == 0 || s.seconds == 0 || s.rates.contains(&0) {
        bail!("--devices, --seconds and every rate must be at least 1");
    }
    Ok(s)
}

/// The bench's devices: ids and keys enrolled in the store, each with its next counter.
struct Devices {
    keys: Vec<(u64, [u8; 32])>,
    counters: Vec<u64>,
}

/// Sends sealed reports round-robin over `devices` to `to` at `rate` per second for `for_`,
/// paced per millisecond; returns how many were sent.
fn send(devices: &mut Devices, to: SocketAddr, rate: u64, for_: Duration) -> anyhow::Result<u64> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(to)?;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut next = 0usize;
    while start.elapsed() < for_ {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let (id, key) = devices.keys[next];
            devices.counters[next] += 1;
            let fix = Fix {
                time_ms: now_ms(),
                lat: 52.37 + (sent % 1000) as f64 * 1e-5,
                lon: 4.89,
                speed_mps: 10.0,
                heading_deg: 90.0,
                accuracy_m: 5.0,
                battery: Some(90),
            };
            let datagram =
                seal_report(&key, id, devices.counters[next], false, &encode_report(&fix))?;
            // A full socket buffer drops the datagram, as the network would.
            let _ = socket.send(&datagram);
            sent += 1;
            next = (next + 1) % devices.keys.len();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(sent)
}

/// The raw baseline: what a plain UDP socket receives of `rate` reports per second.
fn raw(devices: &mut Devices, rate: u64, seconds: u64) -> anyhow::Result<(u64, u64)> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let addr = socket.local_addr()?;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = [0u8; 600];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf)
                    && n > 34
                {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let sent = send(devices, addr, rate, Duration::from_secs(seconds))?;
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    receiver.join().expect("the receiver thread");
    Ok((sent, received.load(Ordering::Relaxed)))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
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
    let ingest = UdpSocket::bind(any(0))?.local_addr()?;
    let demo = Demo::start(DemoConfig {
        db: db.clone(),
        devices: 0,
        web,
        http: free_tcp()?,
        listen: tcp,
        ws_listen: free_tcp()?,
        admin_listen: free_tcp()?,
        ingest,
        nats: None,
        nats_auth: gateway_bus::nats::NatsAuth::default(),
        seed: 1,
    })
    .await?;
    let token = demo
        .users()
        .iter()
        .find(|u| u.devices.is_none())
        .map(|u| u.token.clone())
        .context("the demo has no user who sees every device")?;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(demo.run_until(shutdown.clone()));

    // The bench's devices, enrolled while the demo runs (its ingest reloads them).
    let store = Store::open(&db)?;
    let mut devices = Devices { keys: Vec::new(), counters: Vec::new() };
    for i in 0..s.devices {
        let id = 1_000_000 + i;
        let key = [(i % 251) as u8 + 1; 32];
        store.add_device(id, &format!("bench {i}"), &key, now_ms())?;
        devices.keys.push((id, key));
        devices.counters.push(0);
    }
    drop(store);

    let mut config = ClientConfig::new([tcp.to_string()]);
    config.token = Some(token.into_bytes());
    let client = Client::connect(config).await.context("connecting to the demo's gateway")?;
    // Held to the end: the last handle of a client closes it.
    let api = TrackerClient::new(client);
    let mut positions = api.subscribe_position_all().await?;
    let ages = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let counted = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    {
        let (ages, counted, counting) =
            (Arc::clone(&ages), Arc::clone(&counted), Arc::clone(&counting));
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
                    let age = now_ms().saturating_sub(event.message().get().time_ms());
                    ages.lock().expect("ages").push(age);
                }
            }
        });
    }
    // Wait for the ingest to know the bench's devices: one report must come through.
    let probe_until = Instant::now() + Duration::from_secs(10);
    counting.store(true, Ordering::Relaxed);
    while counted.load(Ordering::Relaxed) == 0 {
        if Instant::now() > probe_until {
            bail!("no report reached the subscriber within 10 s (ingest {ingest}, gateway {tcp})");
        }
        let mut one = Devices { keys: vec![devices.keys[0]], counters: vec![devices.counters[0]] };
        tokio::task::block_in_place(|| send(&mut one, ingest, 100, Duration::from_millis(20)))?;
        devices.counters[0] = one.counters[0];
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    println!(
        "| offered reports/s | raw received/s | tracker → subscriber positions/s | ratio | age p50 ms | age p99 ms |"
    );
    println!("|---|---|---|---|---|---|");
    for &rate in &s.rates {
        let (sent_raw, got_raw) =
            tokio::task::block_in_place(|| raw(&mut devices, rate, s.seconds))?;
        counting.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        counted.store(0, Ordering::Relaxed);
        ages.lock().expect("ages").clear();
        counting.store(true, Ordering::Relaxed);
        let sent = tokio::task::block_in_place(|| {
            send(&mut devices, ingest, rate, Duration::from_secs(s.seconds))
        })?;
        // Let what is in the pipeline arrive, then stop counting.
        tokio::time::sleep(Duration::from_secs(1)).await;
        counting.store(false, Ordering::Relaxed);
        let got = counted.load(Ordering::Relaxed);
        let mut sorted = ages.lock().expect("ages").clone();
        sorted.sort_unstable();
        let secs = s.seconds as f64;
        println!(
            "| {:.0} | {:.0} | {:.0} | {:.2} | {} | {} |",
            sent as f64 / secs,
            got_raw as f64 / secs,
            got as f64 / secs,
            got as f64 / got_raw.max(1) as f64,
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99),
        );
        eprintln!(
            "rate {rate}: raw sent {sent_raw} received {got_raw}; tracker sent {sent} delivered {got}"
        );
    }
    drop(api);
    shutdown.cancel();
    running.await??;
    Ok(())
}
