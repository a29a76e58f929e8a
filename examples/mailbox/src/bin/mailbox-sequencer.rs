//! `mailbox-sequencer`: ends the epochs of a mailbox relay of several shards
//! (`mailbox-service --shards N`), over NATS (docs/mailbox.md, "Epochs"). It keeps no state:
//! a restarted sequencer asks the shards where they are and carries on. Run one per relay.
//!
//! ```sh
//! cargo run --release -p mailbox --bin mailbox-sequencer -- --nats nats://127.0.0.1:4222 --shards 2
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gateway_bus::{Bus, process};
use tokio_util::sync::CancellationToken;

/// Ends a mailbox relay's epochs until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "mailbox-sequencer", version)]
struct Cli {
    #[command(flatten)]
    nats: gateway_bus::process::NatsArgs,
    /// How many shards the relay has.
    #[arg(long, env = "MAILBOX_SHARDS")]
    shards: u32,
    /// How often an epoch ends.
    #[arg(long, env = "MAILBOX_EPOCH", default_value = "5ms", value_parser = mailbox::shard::epoch_interval)]
    epoch: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    process::log_to_stderr();
    if cli.shards < 2 || cli.shards > 1024 {
        eprintln!(
            "mailbox-sequencer: --shards {} is outside 2 to 1024 (one shard ends its own epochs)",
            cli.shards
        );
        return ExitCode::from(2);
    }
    let bus: Arc<dyn Bus> = match process::connect(&cli.nats, "mailbox-sequencer").await {
        Ok(bus) => bus,
        Err(e) => {
            eprintln!("mailbox-sequencer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = CancellationToken::new();
    let running = tokio::spawn(mailbox::sequencer::run(bus, cli.shards, cli.epoch, stop.clone()));
    process::signal().await;
    tracing::info!("the sequencer stops");
    stop.cancel();
    let _ = running.await;
    ExitCode::SUCCESS
}
