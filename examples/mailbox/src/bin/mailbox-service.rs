//! `mailbox-service`: one mailbox shard as a process of its own, serving
//! `examples.mailbox.Mailbox` over NATS behind any number of gateways (docs/mailbox.md). Its
//! store and signing key live in `--dir` (made on first run), so a restarted process carries on
//! every device's chain.
//!
//! ```sh
//! cargo run --release -p mailbox --bin mailbox-service -- --nats nats://127.0.0.1:4222 --dir mailbox-data
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gateway_bus::{BusTopics, ServiceRuntime, process};
use mailbox::service::{self, MailboxClient, MailboxService};
use mailbox::shard::{self, Config, Limits, Shard};
use tokio_util::sync::CancellationToken;

/// Serves mailboxes over NATS until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "mailbox-service", version)]
struct Cli {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", value_name = "URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The directory of the shard's store and signing key.
    #[arg(long, env = "MAILBOX_DIR", value_name = "DIR")]
    dir: PathBuf,
    /// How often an epoch ends.
    #[arg(long, env = "MAILBOX_EPOCH", default_value = "5ms", value_parser = humantime::parse_duration)]
    epoch: Duration,
    /// Let anonymous callers send and name the mailbox they read (development only).
    #[arg(long)]
    allow_anonymous: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    process::log_to_stderr();
    if cli.epoch < Duration::from_millis(1) || cli.epoch > Duration::from_secs(10) {
        eprintln!("mailbox-service: --epoch {:?} is outside 1ms to 10s", cli.epoch);
        return ExitCode::from(2);
    }
    let shard = match open(&cli) {
        Ok(shard) => shard,
        Err(e) => {
            eprintln!("mailbox-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(dir = %cli.dir.display(), epoch = ?cli.epoch, key = %hex(&shard.public_key()), "mailbox shard 0 open");
    let stop = CancellationToken::new();
    let epochs = tokio::spawn({
        let (shard, stop) = (shard.clone(), stop.clone());
        async move { shard.run(stop).await }
    });
    let service = MailboxService::new(shard.clone()).allow_anonymous(cli.allow_anonymous);
    let code = process::run("mailbox-service", &cli.nats, |bus| {
        let publisher = MailboxClient::new(BusTopics::new(bus.clone()));
        tokio::spawn(service::publish_batches(shard.clone(), publisher, stop.clone()));
        vec![ServiceRuntime::new(bus, service::server(service))]
    })
    .await;
    // The calls have drained: end the last epoch.
    stop.cancel();
    let _ = epochs.await;
    code
}

fn open(cli: &Cli) -> Result<Shard, String> {
    std::fs::create_dir_all(&cli.dir)
        .map_err(|e| format!("cannot make {}: {e}", cli.dir.display()))?;
    let key_path = cli.dir.join("shard-0.key");
    let key =
        shard::key_file(&key_path).map_err(|e| format!("the key {}: {e}", key_path.display()))?;
    Shard::open(Config {
        shard: 0,
        key,
        epoch_every: cli.epoch,
        limits: Limits::default(),
        store: cli.dir.join("shard-0.sqlite"),
    })
    .map_err(|e| e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
