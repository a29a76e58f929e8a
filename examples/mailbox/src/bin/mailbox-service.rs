//! `mailbox-service`: a mailbox shard as a process of its own, serving
//! `examples.mailbox.Mailbox` over NATS behind any number of gateways (docs/mailbox.md). Its
//! store and signing key live in `--dir` (made on first run), so a restarted process carries on
//! every device's chain. One shard ends its own epochs; several (`--shards`, one process each)
//! need one sequencer (`mailbox-sequencer`, or `--sequencer` on one of them).
//!
//! ```sh
//! cargo run --release -p mailbox --bin mailbox-service -- --nats nats://127.0.0.1:4222 --dir mailbox-data
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gateway_bus::{Bus, BusTopics, process};
use mailbox::service::{self, MailboxClient, MailboxService};
use mailbox::{peers, sequencer, shard};
use tokio_util::sync::CancellationToken;

/// Serves a mailbox shard over NATS until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "mailbox-service", version)]
struct Cli {
    #[command(flatten)]
    nats: gateway_bus::process::NatsArgs,
    /// The directory of the shard's store and signing key (`shard-<n>.sqlite`, `shard-<n>.key`).
    #[arg(long, env = "MAILBOX_DIR", value_name = "DIR")]
    dir: PathBuf,
    /// This shard's number, from 0.
    #[arg(long, env = "MAILBOX_SHARD", default_value_t = 0)]
    shard: u32,
    /// How many shards the relay has (the same for every shard, for the life of their stores).
    #[arg(long, env = "MAILBOX_SHARDS", default_value_t = 1)]
    shards: u32,
    /// With several shards, also run the sequencer in this process (one per relay).
    #[arg(long)]
    sequencer: bool,
    /// How often an epoch ends.
    #[arg(long, env = "MAILBOX_EPOCH", default_value = "5ms", value_parser = mailbox::shard::epoch_interval)]
    epoch: Duration,
    /// Let anonymous callers send and name the mailbox they read (development only).
    #[arg(long)]
    allow_anonymous: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    process::log_to_stderr();
    if cli.shards == 0 || cli.shards > 1024 {
        eprintln!("mailbox-service: --shards {} is outside 1 to 1024", cli.shards);
        return ExitCode::from(2);
    }
    if cli.sequencer && cli.shards == 1 {
        eprintln!(
            "mailbox-service: --sequencer is for a relay of several shards; one shard ends its own epochs"
        );
        return ExitCode::from(2);
    }
    let shard = match shard::open_in(&cli.dir, cli.shard, cli.shards, cli.epoch) {
        Ok(shard) => shard,
        Err(e) => {
            eprintln!("mailbox-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (closed, committed) = shard.progress();
    tracing::info!(dir = %cli.dir.display(), shard = cli.shard, shards = cli.shards, epoch = ?cli.epoch, closed, committed, key = %hex(&shard.public_key()), "mailbox shard open");
    let stop = CancellationToken::new();
    let alone = cli.shards == 1;
    let epochs = tokio::spawn({
        let (shard, stop) = (shard.clone(), stop.clone());
        async move {
            if alone {
                shard.run(stop).await;
            }
        }
    });
    let peers_stop = CancellationToken::new();
    let mut service = MailboxService::new(shard.clone()).allow_anonymous(cli.allow_anonymous);
    let code = process::run("mailbox-service", &cli.nats, |bus| {
        let publisher = MailboxClient::new(BusTopics::new(bus.clone()));
        tokio::spawn(service::publish_batches(shard.clone(), publisher, stop.clone()));
        let bus: Arc<dyn Bus> = bus;
        if !alone {
            service = service.clone().with_peers(bus.clone());
            let (shard, service, bus, stop) =
                (shard.clone(), service.clone(), bus.clone(), peers_stop.clone());
            let sequence = cli.sequencer.then_some((cli.shards, cli.epoch));
            tokio::spawn(async move {
                if let Err(e) = peers::serve(shard, bus.clone(), stop.clone()).await {
                    tracing::error!(error = %e, "cannot serve the other shards");
                }
                if let Err(e) = service.serve_reads(bus.clone(), stop.clone()).await {
                    tracing::error!(error = %e, "cannot serve reads for the other shards");
                }
                if let Some((shards, every)) = sequence {
                    sequencer::run(bus, shards, every, stop).await;
                }
            });
        }
        vec![service::runtime(bus, service)]
    })
    .await;
    // The calls have drained: end the last epoch (alone; with several shards, the sequencer's
    // next close ends it before the calls could drain).
    shard.stop();
    stop.cancel();
    peers_stop.cancel();
    let _ = epochs.await;
    code
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
