//! `mailbox-store-bare`: the baseline of the mailbox benchmark (docs/benchmarks.md): the durable
//! writes a mailbox shard makes, in a bare loop with nothing else — each epoch's record (its
//! bundles with their parts, and statements of the sizes the shard signs) committed to a
//! `mailbox::store::Store` in one transaction (WAL, `synchronous = FULL`: one fsync), one epoch
//! after another as fast as the disk allows. Prints one JSON line: messages stored per second,
//! epochs per second, commit latency percentiles.
//!
//! ```sh
//! cargo run --release -p gateway-bench --bin mailbox-store-bare -- --messages-per-epoch 1000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use mailbox::SeqId;
use mailbox::store::{EpochRecord, Store, StoredBundle};

/// Messages per second the mailbox's store can make durable.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Messages in each epoch's record.
    #[arg(long, default_value_t = 1000)]
    messages_per_epoch: usize,
    /// The bundles: to how many of how many devices (one attestation per device with
    /// messages, per epoch), of what size.
    #[command(flatten)]
    shape: gateway_bench::BundleShape,
    /// How long to run.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Where the store goes (a temporary directory by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.shape.check()?;
    let temporary = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temporary.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bare.sqlite");
    let _ = std::fs::remove_file(&path);
    let mut store = Store::open(&path).context("the store")?;
    let devices: Vec<String> = (0..args.shape.devices).map(|d| format!("device-{d}")).collect();
    let bundles = args.messages_per_epoch.div_ceil(args.shape.recipients);
    let messages = bundles * args.shape.recipients;
    let touched = args.shape.devices.min(messages);
    // The statements' sizes, as the shard stores them: a receipt (96 bytes) and an attestation
    // per device (70 + its id + 128 per message), and the batch's one signature.
    let mut statements = vec![Bytes::from(vec![0u8; 96]); bundles];
    let per_device = messages / touched;
    for device in devices.iter().take(touched) {
        statements.push(Bytes::from(vec![0u8; 70 + device.len() + 128 * per_device]));
    }
    let (common, part) =
        (Bytes::from(vec![0x5a; args.shape.common]), Bytes::from(vec![0xa5; args.shape.part]));
    let mut latencies = hdrhistogram::Histogram::<u64>::new(3)?;
    let started = Instant::now();
    let mut epoch = 0u64;
    while started.elapsed() < args.duration {
        epoch += 1;
        let record = EpochRecord {
            epoch,
            bundles: (0..bundles)
                .map(|b| {
                    let recipients: Arc<[String]> = (0..args.shape.recipients)
                        .map(|k| devices[(b * args.shape.recipients + k) % devices.len()].clone())
                        .collect();
                    StoredBundle {
                        bundle: SeqId {
                            epoch,
                            shard: 0,
                            index: (b * args.shape.recipients) as u32,
                        },
                        recipients,
                        common: common.clone(),
                        parts: (0..args.shape.recipients as u32)
                            .map(|i| (i, part.clone()))
                            .collect(),
                    }
                })
                .collect(),
            statements: statements.clone(),
            signature: Some([0x77; 64]),
        };
        let commit = Instant::now();
        store.commit(epoch, Some(&record), &[], &[], &[])?;
        let _ = latencies.record(commit.elapsed().as_micros() as u64);
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"messages_per_s\": {:.0}, \"epochs_per_s\": {:.0}, \"commit_p50_us\": {}, \"commit_p99_us\": {}, \"messages_per_epoch\": {messages}, \"seconds\": {seconds:.2}}}",
        (epoch as usize * messages) as f64 / seconds,
        epoch as f64 / seconds,
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99),
    );
    Ok(())
}
