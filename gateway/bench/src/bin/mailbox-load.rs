//! `mailbox-load`: messages per second through the mailbox relay (docs/mailbox.md), from sending
//! to delivery on the recipients' subscriptions. `devices` devices each follow their key of
//! `batches` (spread over `subscriber-connections` gateway connections); `connections` sender
//! connections keep `depth` sends in flight each, every bundle to `recipients` devices chosen in
//! turn, with a `common`-byte ciphertext and a `part`-byte part per recipient. Prints one JSON
//! line: messages delivered per second (counted in the batches the subscriptions receive; each
//! device acknowledges each batch as it comes, as a device would),
//! bundles answered per second, send latency percentiles, failed sends, and batches received.
//!
//! ```sh
//! cargo run --release -p gateway-bench --bin mailbox-load -- --gateway 127.0.0.1:7000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use gateway_client::{Client, ClientConfig};
use mailbox::service::{AckRequestT, MailboxClient, PartT, SendRequestT};

/// Messages per second through the mailbox relay.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The gateway's TCP address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    gateway: String,
    /// Sender connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Sends in flight per sender connection.
    #[arg(long, default_value_t = 64)]
    depth: usize,
    /// The bundles: to how many of how many devices (each subscribed to its batches), of what
    /// size.
    #[command(flatten)]
    shape: gateway_bench::BundleShape,
    /// Connections the devices' subscriptions are spread over.
    #[arg(long, default_value_t = 4)]
    subscriber_connections: usize,
    /// Bundles sent per second in all, on a fixed schedule, each sender in turn (0: each as
    /// soon as the one before it is answered). A send's latency is counted from when the
    /// schedule meant it to go, so a relay that falls behind shows in the latency (no
    /// coordinated omission); `depth` still bounds the sends in flight.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    #[command(flatten)]
    window: gateway_bench::Window,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.shape.check()?;
    gateway_bench::runtime(args.window.threads)?.block_on(run(args))
}

async fn connect(addr: &str) -> anyhow::Result<MailboxClient<Client>> {
    let client = Client::connect(ClientConfig::new([addr.to_owned()]))
        .await
        .with_context(|| format!("cannot connect to the gateway at {addr}"))?;
    Ok(MailboxClient::new(client))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (measuring, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (delivered, batches) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let devices: Vec<String> = (0..args.shape.devices).map(|d| format!("device-{d}")).collect();

    let mut subscribers = Vec::new();
    // The subscribing clients: their subscriptions live on their connections.
    let mut keep = Vec::new();
    for c in 0..args.subscriber_connections.max(1) {
        let mailbox = connect(&args.gateway).await?;
        for device in devices.iter().skip(c).step_by(args.subscriber_connections.max(1)) {
            let mut subscription = mailbox.subscribe_batches(device).await.map_err(|status| {
                anyhow::anyhow!("cannot subscribe to {device}'s batches: {status}")
            })?;
            let (measuring, delivered, batches) =
                (measuring.clone(), delivered.clone(), batches.clone());
            let (mailbox, device) = (mailbox.clone(), device.clone());
            subscribers.push(tokio::spawn(async move {
                while let Some(event) = subscription.next().await {
                    let Ok(event) = event else { break };
                    let batch = event.message().get();
                    let messages = batch.messages();
                    if measuring.load(Ordering::Relaxed) {
                        delivered.fetch_add(messages.len() as u64, Ordering::Relaxed);
                        batches.fetch_add(1, Ordering::Relaxed);
                    }
                    // The device has it: acknowledged, as a device would, so mailboxes do not
                    // fill (not awaited: acknowledgements are idempotent).
                    if let Some(last) = messages.iter().next_back() {
                        let upto = last.id().bytes().to_vec();
                        let mailbox = mailbox.clone();
                        let device = Some(device.clone());
                        tokio::spawn(
                            async move { mailbox.ack(AckRequestT { device, upto }).await },
                        );
                    }
                }
            }));
        }
        keep.push(mailbox);
    }

    let failed = Arc::new(AtomicU64::new(0));
    let first_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let common = vec![0x5a; args.shape.common];
    let part = vec![0xa5; args.shape.part];
    let mut senders = tokio::task::JoinSet::new();
    let mut turn = 0usize;
    let tasks = args.connections.max(1) * args.depth.max(1);
    // With a rate, sender `i` of `tasks` sends at `epoch + (i + k * tasks) / rate`.
    let schedule =
        (args.rate > 0.0).then(|| (tokio::time::Instant::now(), tasks as f64 / args.rate));
    let mut task = 0usize;
    for _ in 0..args.connections.max(1) {
        let mailbox = connect(&args.gateway).await?;
        for _ in 0..args.depth.max(1) {
            let (mailbox, measuring, stop, failed) =
                (mailbox.clone(), measuring.clone(), stop.clone(), failed.clone());
            let first_error = first_error.clone();
            let (devices, common, part) = (devices.clone(), common.clone(), part.clone());
            let (recipients, start) = (args.shape.recipients, turn);
            turn += recipients;
            let offset = task as f64 / tasks as f64;
            task += 1;
            senders.spawn(async move {
                let mut latencies = hdrhistogram::Histogram::<u64>::new(3).expect("a histogram");
                let mut next = start;
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // When this send is due: now, or on the schedule.
                    let due = match schedule {
                        Some((epoch, every)) => {
                            let due = epoch
                                + std::time::Duration::from_secs_f64(
                                    every * (offset + round as f64),
                                );
                            round += 1;
                            tokio::time::sleep_until(due).await;
                            due.into_std()
                        }
                        None => Instant::now(),
                    };
                    let to: Vec<String> = (0..recipients)
                        .map(|k| devices[(next + k) % devices.len()].clone())
                        .collect();
                    next = (next + recipients) % devices.len();
                    let request = SendRequestT {
                        parts: to.iter().map(|_| PartT { bytes: Some(part.clone()) }).collect(),
                        recipients: to,
                        common: Some(common.clone()),
                    };
                    let answer = mailbox.send(request).await;
                    if measuring.load(Ordering::Relaxed) {
                        match answer {
                            Ok(_) => {
                                let _ = latencies.record(due.elapsed().as_micros() as u64);
                            }
                            Err(status) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                first_error
                                    .lock()
                                    .expect("first error")
                                    .get_or_insert_with(|| status.to_string());
                            }
                        }
                    }
                }
                latencies
            });
        }
    }
    let (seconds, latencies) =
        gateway_bench::measure(&measuring, &stop, args.window.duration, &mut senders).await?;
    for subscriber in subscribers {
        subscriber.abort();
    }
    println!(
        "{{\"messages_per_s\": {:.0}, \"bundles_per_s\": {:.0}, \"p50_us\": {}, \"p99_us\": {}, \"failed\": {}, \"batches_per_s\": {:.0}, \"first_error\": {:?}, \"connections\": {}, \"depth\": {}, \"rate\": {}, \"recipients\": {}, \"devices\": {}, \"seconds\": {seconds:.2}}}",
        delivered.load(Ordering::Relaxed) as f64 / seconds,
        latencies.len() as f64 / seconds,
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99),
        failed.load(Ordering::Relaxed),
        batches.load(Ordering::Relaxed) as f64 / seconds,
        first_error.lock().expect("first error").clone().unwrap_or_default(),
        args.connections,
        args.depth,
        args.rate,
        args.shape.recipients,
        args.shape.devices,
    );
    drop(keep);
    Ok(())
}
