//! The tracker's ingest against the simulator's devices: two implementations of
//! docs/tracker-devices.md, written apart from each other, must agree on the enrolment URI, the
//! report datagram and the acknowledgement.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracker::enrol::enrol;
use tracker::ingest::{Ingest, IngestOptions};
use tracker::store::Store;
use tracker_sim::device::{encode_report, seal_report, verify_ack};
use tracker_sim::enrolment::Enrolment;
use tracker_sim::motion::Fix;

const WAIT: Duration = Duration::from_secs(10);

fn fix(i: u64) -> Fix {
    Fix {
        time_ms: 1_700_000_000_000 + i * 1000,
        lat: 52.37 + i as f64 * 1e-4,
        lon: 4.89 - i as f64 * 1e-4,
        speed_mps: 8.5,
        heading_deg: 271.5,
        accuracy_m: 4.0,
        battery: if i % 2 == 0 { Some(77) } else { None },
    }
}

#[tokio::test]
async fn reports_sealed_by_the_simulator_are_stored_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("tracker.db")).unwrap());
    let sockets = tracker::ingest::bind("127.0.0.1:0".parse().unwrap(), 1).unwrap();
    let options = IngestOptions { reload_interval: Duration::ZERO, ..IngestOptions::default() };
    let ingest = Ingest::new(sockets, Arc::clone(&store), options).unwrap();
    let addr = ingest.local_addr().unwrap();
    let stats = ingest.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        ingest.run(None::<tracker::TrackerClient<gateway_bus::BusTopics>>, shutdown.clone()),
    );

    // The tracker enrols; the simulator reads what a phone would scan.
    let enrolled = enrol(&store, "Van 3 (Zuid)", &addr.to_string()).unwrap();
    let device: Enrolment = enrolled.uri().parse().expect("the simulator reads the tracker's URI");
    assert_eq!(device.device_id, enrolled.id);
    assert_eq!(device.key, enrolled.key);
    assert_eq!(device.name, "Van 3 (Zuid)");
    assert_eq!(device.ingest, addr.to_string());

    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(addr).await.unwrap();
    let mut buf = [0; 600];
    for counter in 1..=6 {
        let plaintext = encode_report(&fix(counter));
        let datagram =
            seal_report(&device.key, device.device_id, counter, true, &plaintext).unwrap();
        socket.send(&datagram).await.unwrap();
        let len = timeout(WAIT, socket.recv(&mut buf)).await.expect("an ack in time").unwrap();
        let ack =
            verify_ack(&device.key, &buf[..len]).expect("the simulator accepts the tracker's ack");
        assert_eq!((ack.device_id, ack.counter), (device.device_id, counter));
    }
    // A replay from the device side is refused: no ack comes back, and it is counted.
    let replay =
        seal_report(&device.key, device.device_id, 3, true, &encode_report(&fix(3))).unwrap();
    socket.send(&replay).await.unwrap();
    assert!(timeout(Duration::from_millis(300), socket.recv(&mut buf)).await.is_err());

    let stored = store.history(device.device_id, 0, u64::MAX, 100, false).unwrap();
    assert_eq!(stored.len(), 6);
    for (position, counter) in stored.iter().zip(1..) {
        let sent = fix(counter);
        assert_eq!(position.counter, counter);
        assert_eq!(position.time_ms, sent.time_ms);
        assert_eq!((position.lat, position.lon), (sent.lat, sent.lon));
        assert_eq!(position.speed_mps, sent.speed_mps);
        assert_eq!(position.heading_deg, sent.heading_deg);
        assert_eq!(position.accuracy_m, sent.accuracy_m);
        assert_eq!(position.battery, sent.battery);
    }
    assert_eq!(stats.accepted(), 6);
    assert_eq!(stats.acks(), 6);

    shutdown.cancel();
    timeout(WAIT, task).await.unwrap().unwrap().unwrap();
}
