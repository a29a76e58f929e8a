//! The UDP ingest over real loopback sockets, a real SQLite file and the in-process bus. Reports
//! are encrypted here with the AEAD crate directly, following docs/tracker-devices.md, so a
//! mistake shared by `packet::seal` and `packet::open` would not go unnoticed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use futures::StreamExt;
use gateway_bus::{BusTopics, LocalBus};
use tokio::net::UdpSocket;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracker::ingest::{Ingest, IngestOptions, IngestStats};
use tracker::packet::{self, DropReason};
use tracker::store::Store;
use tracker::{DeviceReportT, TrackerClient};

const WAIT: Duration = Duration::from_secs(10);

/// A report datagram, built from the document alone.
fn report_datagram(key: &[u8; 32], id: u64, counter: u64, flags: u8, plaintext: &[u8]) -> Vec<u8> {
    let mut header = vec![1, flags];
    header.extend_from_slice(&id.to_le_bytes());
    header.extend_from_slice(&counter.to_le_bytes());
    let mut nonce = counter.to_le_bytes().to_vec();
    nonce.extend_from_slice(&[0, 0, 0, 0]);
    let mut ciphertext = plaintext.to_vec();
    let tag = ChaCha20Poly1305::new(key.into())
        .encrypt_in_place_detached(nonce.as_slice().into(), &header, &mut ciphertext)
        .unwrap();
    [header, ciphertext, tag.to_vec()].concat()
}

fn fix(i: u64) -> DeviceReportT {
    DeviceReportT {
        time_ms: 1_700_000_000_000 + i * 1000,
        lat: 52.52 + i as f64 * 1e-4,
        lon: 13.405,
        speed_mps: 2.0,
        heading_deg: 0.0,
        accuracy_m: 5.0,
        battery: Some(80),
    }
}

fn report(key: &[u8; 32], id: u64, counter: u64) -> Vec<u8> {
    report_datagram(key, id, counter, 1, &packet::encode_report(&fix(counter)))
}

struct Running {
    addr: SocketAddr,
    stats: Arc<IngestStats>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        timeout(WAIT, self.task).await.unwrap().unwrap().unwrap();
    }
}

async fn start(store: Arc<Store>, topics: Option<BusTopics>) -> Running {
    // Two sockets on one port, as in production: the devices' reports are spread over both.
    let sockets = tracker::ingest::bind("127.0.0.1:0".parse().unwrap(), 2).unwrap();
    let options = IngestOptions { reload_interval: Duration::ZERO, ..IngestOptions::default() };
    let ingest = Ingest::new(sockets, store, options).unwrap();
    let addr = ingest.local_addr().unwrap();
    let stats = ingest.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(ingest.run(topics.map(TrackerClient::new), shutdown.clone()));
    Running { addr, stats, shutdown, task }
}

/// A device's socket, connected to the ingest.
async fn device(ingest: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(ingest).await.unwrap();
    socket
}

/// Waits for the next acknowledgement and checks it with `key`.
async fn ack(socket: &UdpSocket, key: &[u8; 32]) -> (u64, u64) {
    let mut buf = [0; 600];
    let len = timeout(WAIT, socket.recv(&mut buf)).await.expect("an ack in time").unwrap();
    packet::verify_ack(&buf[..len], key).expect("a valid ack")
}

fn temp_store() -> (tempfile::TempDir, std::path::PathBuf, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.db");
    let store = Arc::new(Store::open(&path).unwrap());
    (dir, path, store)
}

#[tokio::test]
async fn accepted_reports_are_stored_acknowledged_and_published() {
    let (_dir, _path, store) = temp_store();
    let key = [3; 32];
    store.add_device(11, "bike", &key, 0).unwrap();
    let bus = Arc::new(LocalBus::new());
    let topics = BusTopics::new(bus);
    let mut positions = TrackerClient::new(topics.clone()).subscribe_position_all().await.unwrap();
    // The tile the fixes fall in (about 52.52, 13.405: Berlin, 8802/5373 at zoom 14).
    let tile = tracker::tiles::tile_of(fix(1).lat, fix(1).lon);
    assert_eq!(tile, 8802 * tracker::tiles::TILES + 5373);
    let mut tiles = TrackerClient::new(topics.clone()).subscribe_tile(tile).await.unwrap();
    let ingest = start(Arc::clone(&store), Some(topics)).await;
    let socket = device(ingest.addr).await;

    for counter in 1..=3 {
        socket.send(&report(&key, 11, counter)).await.unwrap();
        assert_eq!(ack(&socket, &key).await, (11, counter));
    }
    // Stored before it was acknowledged.
    let stored = store.history(11, 0, u64::MAX, 10, false).unwrap();
    assert_eq!(stored.iter().map(|p| p.counter).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(stored[1].lat, fix(2).lat);
    assert_eq!(stored[1].battery, Some(80));
    for counter in 1..=3 {
        let event = timeout(WAIT, positions.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(event.key(), "11");
        let position = event.message().unpack();
        assert_eq!((position.device_id, position.counter), (11, counter));
        assert_eq!(position.time_ms, fix(counter).time_ms);
        assert!(position.received_ms > 0);
    }
    // And by tile: each commit's positions in the tile, in one event.
    let mut by_tile = Vec::new();
    while by_tile.len() < 3 {
        let event = timeout(WAIT, tiles.next()).await.unwrap().unwrap().unwrap();
        let batch = event.message().unpack();
        assert_eq!((event.key(), batch.tile), (tile.to_string().as_str(), tile));
        by_tile.extend(batch.positions.unwrap_or_default().iter().map(|p| p.counter));
    }
    assert_eq!(by_tile, [1, 2, 3]);
    // Without ACK_WANTED: stored and published, no answer.
    socket.send(&report_datagram(&key, 11, 4, 0, &packet::encode_report(&fix(4)))).await.unwrap();
    let event = timeout(WAIT, positions.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(event.message().get().counter(), 4);
    assert_eq!((ingest.stats.accepted(), ingest.stats.acks()), (4, 3));
    let line = ingest.stats.to_string();
    assert!(line.starts_with("accepted=4 transactions=") && line.contains(" acks=3 "), "{line}");
    assert!(!line.contains("bad_"), "no drop reason without drops: {line}");
    assert_eq!(store.device(11).unwrap().unwrap().highest_counter, 4);
    ingest.stop().await;
}

#[tokio::test]
async fn bad_datagrams_are_dropped_and_counted_while_other_devices_are_served() {
    let (_dir, _path, store) = temp_store();
    let (key_a, key_b) = ([1; 32], [2; 32]);
    store.add_device(1, "a", &key_a, 0).unwrap();
    store.add_device(2, "b", &key_b, 0).unwrap();
    store.add_device(3, "off", &[9; 32], 0).unwrap();
    store.set_enabled(3, false).unwrap();
    let ingest = start(Arc::clone(&store), None).await;
    let a = device(ingest.addr).await;
    let b = device(ingest.addr).await;

    a.send(&report(&key_a, 1, 10)).await.unwrap();
    assert_eq!(ack(&a, &key_a).await, (1, 10));

    let too_big = report_datagram(&key_a, 1, 20, 1, &[0; 512]);
    let mut version_2 = report(&key_a, 1, 21);
    version_2[0] = 2;
    let mut bad_flags = report(&key_a, 1, 22);
    bad_flags[1] |= 0x40;
    let mut tampered = report(&key_a, 1, 23);
    tampered[25] ^= 1;
    let out_of_range = DeviceReportT { lat: 91.0, ..fix(24) };
    let garbage: Vec<Vec<u8>> = vec![
        vec![],                                                                   // bad_length
        vec![1; 33],                                                              // bad_length
        too_big,                                                                  // bad_length
        version_2,                                                                // bad_version
        bad_flags,                                                                // bad_version
        report(&key_a, 99, 1),                                                    // unknown_device
        report(&[9; 32], 3, 1), // unknown_device (disabled)
        report(&key_b, 1, 25),  // bad_tag: b's key
        tampered,               // bad_tag
        report(&key_a, 1, 10),  // replayed
        report(&key_a, 1, 0),   // replayed: never valid
        report_datagram(&key_a, 1, 26, 1, b"no flatbuffer"), // bad_report
        report_datagram(&key_a, 1, 27, 1, &packet::encode_report(&out_of_range)), // bad_report
    ];
    for datagram in &garbage {
        a.send(datagram).await.unwrap();
    }
    // Device b is served meanwhile; its ack comes after every datagram above was handled.
    b.send(&report(&key_b, 2, 1)).await.unwrap();
    assert_eq!(ack(&b, &key_b).await, (2, 1));
    // Device a is still served, out of order within its window...
    a.send(&report(&key_a, 1, 5)).await.unwrap();
    assert_eq!(ack(&a, &key_a).await, (1, 5), "no ack for any dropped datagram came first");
    // ... and a bad report's counter is not consumed: the device may send it again fixed.
    a.send(&report(&key_a, 1, 27)).await.unwrap();
    assert_eq!(ack(&a, &key_a).await, (1, 27));

    let stats = &ingest.stats;
    let expected = [
        (DropReason::BadLength, 3),
        (DropReason::BadVersion, 2),
        (DropReason::UnknownDevice, 2),
        (DropReason::BadTag, 2),
        (DropReason::Replayed, 2),
        (DropReason::BadReport, 2),
    ];
    for (reason, count) in expected {
        assert_eq!(stats.dropped(reason), count, "{reason}");
    }
    assert_eq!(stats.accepted(), 4);
    let metrics = stats.metrics_text();
    assert!(metrics.contains("tracker_ingest_dropped_total{reason=\"bad_tag\"} 2"), "{metrics}");
    assert!(metrics.contains("tracker_ingest_accepted_total 4"), "{metrics}");
    let stored = store.history(1, 0, u64::MAX, 10, false).unwrap();
    assert_eq!(stored.iter().map(|p| p.counter).collect::<Vec<_>>(), [5, 10, 27]);
    ingest.stop().await;
}

#[tokio::test]
async fn a_restarted_ingest_refuses_every_counter_up_to_the_stored_highest() {
    let (_dir, path, store) = temp_store();
    let key = [5; 32];
    store.add_device(7, "car", &key, 0).unwrap();
    let ingest = start(Arc::clone(&store), None).await;
    let socket = device(ingest.addr).await;
    socket.send(&report(&key, 7, 100)).await.unwrap();
    assert_eq!(ack(&socket, &key).await, (7, 100));
    ingest.stop().await;
    drop(store);

    let store = Arc::new(Store::open(&path).unwrap());
    let ingest = start(Arc::clone(&store), None).await;
    let socket = device(ingest.addr).await;
    for counter in [100, 99, 50] {
        socket.send(&report(&key, 7, counter)).await.unwrap();
    }
    socket.send(&report(&key, 7, 101)).await.unwrap();
    assert_eq!(ack(&socket, &key).await, (7, 101));
    assert_eq!(ingest.stats.dropped(DropReason::Replayed), 3);
    assert!(ingest.stats.to_string().ends_with(" replayed=3"), "{}", ingest.stats);
    assert_eq!(store.history(7, 0, u64::MAX, 10, false).unwrap().len(), 2);
    ingest.stop().await;
}

#[tokio::test]
async fn a_device_enrolled_while_running_is_served() {
    let (_dir, _path, store) = temp_store();
    let ingest = start(Arc::clone(&store), None).await;
    let key = [8; 32];
    store.add_device(70, "late", &key, 0).unwrap();
    let socket = device(ingest.addr).await;
    socket.send(&report(&key, 70, 1)).await.unwrap();
    assert_eq!(ack(&socket, &key).await, (70, 1));
    ingest.stop().await;
}

#[tokio::test]
async fn one_replay_window_per_device_whichever_socket_its_reports_reach() {
    let (_dir, _path, store) = temp_store();
    let key = [9; 32];
    store.add_device(90, "roaming", &key, 0).unwrap();
    let ingest = start(Arc::clone(&store), None).await;
    // Sixteen source addresses: the kernel spreads them over the ingest's two sockets.
    let mut sockets = Vec::new();
    for _ in 0..16 {
        sockets.push(device(ingest.addr).await);
    }
    for (counter, socket) in (1..).zip(&sockets) {
        socket.send(&report(&key, 90, counter)).await.unwrap();
        assert_eq!(ack(socket, &key).await, (90, counter), "acknowledged to its sender");
    }
    // Each report again, from every other address: all replays, whichever thread reads them.
    for (counter, _) in (1..).zip(&sockets) {
        for socket in &sockets {
            socket.send(&report(&key, 90, counter)).await.unwrap();
        }
    }
    let replays = 16 * 16;
    let deadline = tokio::time::Instant::now() + WAIT;
    while ingest.stats.dropped(DropReason::Replayed) < replays {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} replays seen",
            ingest.stats.dropped(DropReason::Replayed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ingest.stats.accepted(), 16);
    assert_eq!(store.history(90, 0, u64::MAX, 100, false).unwrap().len(), 16);
    ingest.stop().await;
}
