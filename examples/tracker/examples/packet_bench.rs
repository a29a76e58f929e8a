//! What a report costs the ingest's receive thread before storage (docs/benchmarks.md, "Tracker
//! ingest at scale"): [`packet::Header::parse`], [`packet::open`] (ChaCha20-Poly1305 under the
//! device's own key), [`packet::parse_report`], and the acknowledgement's
//! [`packet::encode_ack`], over `--reports` sealed reports of `--devices` devices, one thread.
//! Prints nanoseconds a report for each step and for all of them.
//!
//! Run: `cargo run --release -p tracker --example packet_bench -- [--reports 1000000]
//! [--devices 1000]`. The workspace builds ChaCha20-Poly1305's portable backends
//! (`.cargo/config.toml`); to measure the AVX2 backends the crates would otherwise pick, set
//! `RUSTFLAGS=" "`, which replaces the configured flags.

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, bail};
use tracker::DeviceReportT;
use tracker::packet::{self, FLAG_ACK_WANTED, Header, VERSION};

fn main() -> anyhow::Result<()> {
    let (mut reports, mut devices) = (1_000_000usize, 1_000u64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--reports" => reports = value()?.parse().context("--reports")?,
            "--devices" => devices = value()?.parse().context("--devices")?,
            "--help" | "-h" => {
                println!("packet_bench [--reports N] [--devices N]");
                return Ok(());
            }
            other => bail!("unknown argument {other} (try --help)"),
        }
    }
    if devices == 0 || reports == 0 {
        bail!("--reports and --devices must be at least 1");
    }

    // Each device its own key, as the ingest sees them: a key set up for every report.
    let key = |device: u64| -> packet::DeviceKey { [(device % 251) as u8 + 1; 32] };
    let datagrams: Vec<Vec<u8>> = (0..reports as u64)
        .map(|i| {
            let device = i % devices;
            let fix = DeviceReportT {
                time_ms: 1_796_000_000_000 + i,
                lat: 48.85 + (i % 1000) as f64 * 1e-5,
                lon: 2.35,
                speed_mps: 12.5,
                heading_deg: 90.0,
                accuracy_m: 4.0,
                battery: Some(80),
            };
            let header =
                Header { flags: FLAG_ACK_WANTED, device_id: device, counter: 1 + i / devices };
            packet::seal(&header, &key(device), &packet::encode_report(&fix))
        })
        .collect();
    println!(
        "{reports} reports of {} bytes from {devices} devices (version {VERSION})",
        datagrams[0].len()
    );

    let time = |name: &str, step: &dyn Fn(&[u8]) -> usize| {
        let start = Instant::now();
        let mut total = 0usize;
        for datagram in &datagrams {
            total += step(black_box(datagram));
        }
        let ns = start.elapsed().as_nanos() as f64 / reports as f64;
        println!("{name:<28} {ns:>8.0} ns a report");
        black_box(total)
    };
    time("header", &|d| Header::parse(d).map_or(0, |h| h.counter as usize));
    time("open (ChaCha20-Poly1305)", &|d| {
        let header = Header::parse(d).expect("sealed here");
        packet::open(d, &header, &key(header.device_id)).map_or(0, |p| p.len())
    });
    let plaintexts: Vec<Vec<u8>> = datagrams
        .iter()
        .map(|d| {
            let header = Header::parse(d).expect("sealed here");
            packet::open(d, &header, &key(header.device_id)).expect("sealed here")
        })
        .collect();
    let start = Instant::now();
    for plaintext in &plaintexts {
        black_box(packet::parse_report(black_box(plaintext)).expect("encoded here"));
    }
    println!(
        "{:<28} {:>8.0} ns a report",
        "parse_report",
        start.elapsed().as_nanos() as f64 / reports as f64
    );
    time("encode_ack", &|d| {
        let header = Header::parse(d).expect("sealed here");
        packet::encode_ack(&header, &key(header.device_id))[0] as usize
    });
    let opened = time("all four", &|d| {
        let Ok(header) = Header::parse(d) else { return 0 };
        let key = key(header.device_id);
        let Ok(plaintext) = packet::open(d, &header, &key) else { return 0 };
        let Ok(report) = packet::parse_report(&plaintext) else { return 0 };
        black_box(report);
        usize::from(packet::encode_ack(&header, &key)[0] == VERSION)
    });
    if opened != reports {
        bail!("only {opened} of {reports} reports opened");
    }
    Ok(())
}
