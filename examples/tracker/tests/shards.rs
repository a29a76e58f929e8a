//! Ingest processes on NATS (docs/tracker.md, "Ingest processes on NATS"): a real nats-server,
//! `tracker serve --no-ingest --remote-ingest` holding the database, and two `tracker ingest`
//! processes each serving half the devices. Reports are sealed as devices seal them and sent
//! over real loopback UDP; what is acknowledged must be stored and published, and a report sent
//! to the wrong shard's ingest must be neither.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway_bus::{BusTopics, NatsBus, NatsOptions};
use gateway_testkit::{Child, NatsServer};
use tokio::net::UdpSocket;
use tracker::TrackerClient;
use tracker::packet::{ACK_LEN, verify_ack};
use tracker::store::Store;
use tracker_sim::device::{encode_report, seal_report};
use tracker_sim::motion::Fix;

const WAIT: Duration = Duration::from_secs(30);
const DEVICES: u64 = 20;

fn key(id: u64) -> [u8; 32] {
    [id as u8; 32]
}

fn report(id: u64, counter: u64) -> Vec<u8> {
    let fix = Fix {
        time_ms: 1_700_000_000_000 + counter * 1000,
        lat: 52.0 + id as f64 * 1e-3,
        lon: 4.0,
        speed_mps: 3.0,
        heading_deg: 90.0,
        accuracy_m: 4.0,
        battery: Some(70),
    };
    seal_report(&key(id), id, counter, true, &encode_report(&fix)).unwrap()
}

fn free_udp() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn tracker(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tracker"));
    command.args(args);
    command
}

/// Acknowledgements arriving within `for_`: (device, counter) each.
async fn acks(socket: &UdpSocket, for_: Duration) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    let until = tokio::time::Instant::now() + for_;
    let mut buf = [0u8; 256];
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, socket.recv(&mut buf)).await {
        if n != ACK_LEN {
            continue;
        }
        let id = u64::from_le_bytes(buf[2..10].try_into().unwrap());
        got.extend(verify_ack(&buf[..n], &key(id)));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_processes_store_acknowledge_and_publish_their_own_shards() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let store = Store::open(&db).unwrap();
    let keys: Vec<(u64, [u8; 32])> = (1..=DEVICES).map(|id| (id, key(id))).collect();
    store.add_devices(keys.iter().map(|(id, key)| (*id, "d", key)), 0).unwrap();
    drop(store);

    let shards = [free_udp(), free_udp()];
    let url = nats.url();
    let public = format!("{},{}", shards[0], shards[1]);
    let db_arg = db.to_str().unwrap();
    // The ingests first: they wait for the storage service.
    let _ingests: Vec<Child> = (0..2)
        .map(|i| {
            let (listen, shard) = (shards[i].to_string(), format!("{i}/2"));
            let args = ["ingest", "--listen", &listen, "--shard", &shard, "--nats", &url];
            Child::spawn("tracker ingest", tracker(&args))
        })
        .collect();
    let serve_args = [
        "serve",
        "--db",
        db_arg,
        "--no-ingest",
        "--remote-ingest",
        "--public-ingest",
        &public,
        "--nats",
        &url,
    ];
    let _serve = Child::spawn("tracker serve", tracker(&serve_args));

    let bus = Arc::new(NatsBus::connect(&url, NatsOptions::default()).await.unwrap());
    let topics = TrackerClient::new(BusTopics::new(bus));
    let mut positions = topics.subscribe_position_all().await.unwrap();

    // Every device reports to its shard's ingest, a fresh counter each round, until each has an
    // acknowledgement (the processes may still be starting).
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut counters: BTreeMap<u64, u64> = (1..=DEVICES).map(|id| (id, 0)).collect();
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    while acked.len() < DEVICES as usize {
        assert!(Instant::now() < deadline, "acknowledged after {WAIT:?}: {acked:?}");
        for (&id, counter) in counters.iter_mut().filter(|(id, _)| !acked.contains_key(id)) {
            *counter += 1;
            socket.send_to(&report(id, *counter), shards[(id % 2) as usize]).await.unwrap();
        }
        for (id, counter) in acks(&socket, Duration::from_millis(300)).await {
            acked.entry(id).or_insert(counter);
        }
    }

    // A report sent to the other shard's ingest: that ingest does not know the device. A
    // report of its own sent after it, from the same socket, is handled after it: once that one
    // is acknowledged, the stray one would have been too.
    let stray = counters[&3] + 1;
    socket.send_to(&report(3, stray), shards[0]).await.unwrap();
    let marker = counters[&2] + 1;
    socket.send_to(&report(2, marker), shards[0]).await.unwrap();
    let mut after = Vec::new();
    let marker_deadline = Instant::now() + WAIT;
    while !after.contains(&(2, marker)) {
        assert!(Instant::now() < marker_deadline, "no ack of {marker} after {WAIT:?}: {after:?}");
        after.extend(acks(&socket, Duration::from_millis(100)).await);
    }
    assert!(!after.contains(&(3, stray)), "a stray report acknowledged: {after:?}");

    // Every acknowledged report was published on the bus.
    let mut unseen: BTreeSet<(u64, u64)> = acked.iter().map(|(&id, &c)| (id, c)).collect();
    while !unseen.is_empty() {
        let event = tokio::time::timeout(WAIT, positions.next())
            .await
            .unwrap_or_else(|_| panic!("not published: {unseen:?}"))
            .expect("the subscription is open")
            .expect("an event");
        let position = event.message().get();
        unseen.remove(&(position.device_id(), position.counter()));
    }

    // And stored, in the one database; the stray report is not.
    let store = Store::open(&db).unwrap();
    for (&id, &counter) in &acked {
        let stored = store.history(id, 0, u64::MAX, 1000, false).unwrap();
        assert!(stored.iter().any(|p| p.counter == counter), "device {id} counter {counter}");
        assert!(stored.iter().all(|p| p.device_id == id));
    }
    let three = store.history(3, 0, u64::MAX, 1000, false).unwrap();
    assert!(three.iter().all(|p| p.counter != stray), "the stray report was stored");
}

#[test]
fn a_bad_shard_or_an_unreachable_nats_is_refused_clearly() {
    let output = tracker(&["ingest", "--shard", "2/2"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("INDEX below COUNT (`0/2`), not `2/2`"), "{stderr}");

    let nats = "nats://127.0.0.1:1";
    let output = tracker(&["ingest", "--nats", nats, "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot connect to NATS at {nats}")), "{stderr}");
}
