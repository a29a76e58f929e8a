//! `tracker-sim run` against a UDP socket playing the tracker: it opens every report by the
//! rules of `docs/tracker-devices.md` with its own decoder (not the crate's), acknowledges most
//! of them, forges one acknowledgement, and checks counters, positions and the printed figures.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

const CENTRE: (f64, f64) = (52.37, 4.89);

fn key_of(id: u64) -> [u8; 32] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(31) ^ id as u8)
}

/// One opened report.
#[derive(Debug)]
struct Report {
    device_id: u64,
    counter: u64,
    ack_wanted: bool,
    time_ms: u64,
    lat: f64,
    lon: f64,
    speed: f32,
    accuracy: f32,
}

/// Opens a report by the document's rules; `None` for anything malformed.
fn open(datagram: &[u8]) -> Option<Report> {
    if datagram.len() < 34 || datagram.len() > 512 || datagram[0] != 1 || datagram[1] & !1 != 0 {
        return None;
    }
    let device_id = u64::from_le_bytes(datagram[2..10].try_into().ok()?);
    let counter = u64::from_le_bytes(datagram[10..18].try_into().ok()?);
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&datagram[10..18]);
    let (body, tag) = datagram[18..].split_at(datagram.len() - 34);
    let mut plain = body.to_vec();
    ChaCha20Poly1305::new(&Key::from(key_of(device_id)))
        .decrypt_in_place_detached(
            &Nonce::from(nonce),
            &datagram[..18],
            &mut plain,
            &Tag::from(<[u8; 16]>::try_from(tag).ok()?),
        )
        .ok()?;
    // FlatBuffers by hand: root offset, then the vtable's field offsets.
    let b = &plain;
    let u16_at = |at: usize| Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize);
    let table = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    let vtable =
        table.checked_sub(i32::from_le_bytes(b.get(table..table + 4)?.try_into().ok()?) as usize)?;
    let field = |i: usize, size: usize| -> Option<&[u8]> {
        let at = table + u16_at(vtable + 4 + 2 * i)?;
        b.get(at..at + size)
    };
    Some(Report {
        device_id,
        counter,
        ack_wanted: datagram[1] == 1,
        time_ms: u64::from_le_bytes(field(0, 8)?.try_into().ok()?),
        lat: f64::from_le_bytes(field(1, 8)?.try_into().ok()?),
        lon: f64::from_le_bytes(field(2, 8)?.try_into().ok()?),
        speed: f32::from_le_bytes(field(3, 4)?.try_into().ok()?),
        accuracy: f32::from_le_bytes(field(5, 4)?.try_into().ok()?),
    })
}

fn ack(device_id: u64, counter: u64, key: [u8; 32]) -> Vec<u8> {
    let mut head = vec![1, 0x80];
    head.extend_from_slice(&device_id.to_le_bytes());
    head.extend_from_slice(&counter.to_le_bytes());
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&counter.to_le_bytes());
    nonce[8] = 1;
    let tag = ChaCha20Poly1305::new(&Key::from(key))
        .encrypt_in_place_detached(&Nonce::from(nonce), &head, &mut [])
        .unwrap();
    head.extend_from_slice(&tag);
    head
}

struct Outcome {
    reports: BTreeMap<u64, Vec<Report>>,
    acked: u64,
    stdout: String,
}

/// Runs the simulator for `duration` against a socket here, acknowledging all but every fifth
/// report and sending one forged acknowledgement.
fn run_once(dir: &std::path::Path, devices: &[u64], duration: &str) -> Outcome {
    let tracker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ingest = tracker.local_addr().unwrap();
    let uris: Vec<String> = devices
        .iter()
        .map(|&id| {
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key_of(id));
            format!("rpcgen-tracker:v1?id={id}&key={key}&ingest={ingest}&name=Device%20{id}")
        })
        .collect();
    let file = dir.join("devices.txt");
    std::fs::write(&file, format!("# test devices\n{}\n", uris.join("\n"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tracker-sim"))
        .args([
            "run",
            "--rate",
            "20",
            "--speedup",
            "10",
            "--ack",
            "--duration",
            duration,
            "--stats-every",
            "300ms",
            "--devices",
        ])
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tracker.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut reports: BTreeMap<u64, Vec<Report>> = BTreeMap::new();
    let (mut acked, mut forged) = (0, false);
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut quiet = 0;
    // Until the simulator has gone quiet for a second.
    while Instant::now() < deadline && quiet < 5 {
        let Ok((len, from)) = tracker.recv_from(&mut buf) else {
            quiet += 1;
            continue;
        };
        quiet = 0;
        let report = open(&buf[..len]).expect("every datagram opens by the document's rules");
        assert!(report.ack_wanted);
        if !forged {
            let mut bad = ack(report.device_id, report.counter, key_of(report.device_id));
            bad[20] ^= 1;
            tracker.send_to(&bad, from).unwrap();
            forged = true;
        } else if report.counter % 5 != 0 {
            tracker
                .send_to(&ack(report.device_id, report.counter, key_of(report.device_id)), from)
                .unwrap();
            acked += 1;
        }
        reports.entry(report.device_id).or_default().push(report);
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    Outcome { reports, acked, stdout: String::from_utf8(output.stdout).unwrap() }
}

#[test]
fn run_sends_sealed_reports_with_rising_counters_and_counts_acks() {
    let dir = tempfile::tempdir().unwrap();
    let devices = [3, 1_000_000_007, u64::MAX];
    let before =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    let first = run_once(dir.path(), &devices, "2s");
    let sent: usize = first.reports.values().map(Vec::len).sum();
    assert_eq!(first.reports.keys().copied().collect::<Vec<_>>(), devices.to_vec());
    for (id, reports) in &first.reports {
        // 20 a second for 2 s: allow for a slow machine.
        assert!(
            reports.len() >= 15 && reports.len() <= 45,
            "device {id}: {} reports",
            reports.len()
        );
        let counters: Vec<u64> = reports.iter().map(|r| r.counter).collect();
        assert_eq!(counters, (1..=reports.len() as u64).collect::<Vec<_>>(), "device {id}");
        let mut last_time = 0;
        for r in reports {
            assert!(
                r.time_ms > last_time && r.time_ms >= before && r.time_ms < before + 60_000,
                "time {}",
                r.time_ms
            );
            last_time = r.time_ms;
            // Within the city (its ring road is about 2 km out), with plausible readings.
            assert!(
                (r.lat - CENTRE.0).abs() < 0.025 && (r.lon - CENTRE.1).abs() < 0.04,
                "{}, {}",
                r.lat,
                r.lon
            );
            assert!(r.speed >= 0.0 && r.speed < 25.0 && r.accuracy > 0.0 && r.accuracy < 60.0);
        }
    }
    let last = first.stdout.lines().last().unwrap();
    assert_eq!(
        last,
        format!("done: sent={sent} acked={} errors=1", first.acked),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.lines().filter(|l| l.contains("sent=")).count() >= 4,
        "periodic statistics: {}",
        first.stdout
    );

    // A second run never reuses a counter: it starts above the first run's reservation.
    let second = run_once(dir.path(), &devices, "500ms");
    for (id, reports) in &second.reports {
        assert_eq!(reports[0].counter, tracker_sim::counters::BLOCK + 1, "device {id}");
    }
}

#[test]
fn bad_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("devices.txt");
    std::fs::write(&file, "rpcgen-tracker:v1?id=0&key=x&ingest=h:1\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tracker-sim"))
            .arg("run")
            .arg("--devices")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let err = run(&[]);
    assert!(err.contains("devices.txt line 1") && err.contains("id \"0\""), "{err}");
    assert!(run(&["--rate", "0"]).contains("--rate 0 is out of range"));
    assert!(run(&["--speedup=-1"]).contains("--speedup -1 is out of range"));
}
