//! The tracker's command line: enrol devices, list them, and serve (UDP ingest + the `Tracker`
//! service over NATS, as a process of its own).
//!
//! ```text
//! cargo run -p tracker -- enrol --db tracker.db --name bike --ingest 127.0.0.1:7403 --qr bike.svg
//! cargo run -p tracker -- devices --db tracker.db
//! cargo run -p tracker -- serve --db tracker.db --ingest 127.0.0.1:7403 --nats nats://127.0.0.1:4222
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway_bus::{BusTopics, ServiceRuntime, process};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracker::enrol::enrol;
use tracker::ingest::{Ingest, IngestOptions};
use tracker::service::TrackerService;
use tracker::store::Store;
use tracker::{TrackerClient, TrackerServer};

#[derive(Debug, Parser)]
#[command(name = "tracker", version, about = "The device tracker (docs/tracker.md).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enrols a device: prints its enrolment URI, and writes its QR code with --qr.
    Enrol {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        #[arg(long)]
        name: String,
        /// The ingest address devices send to (host:port).
        #[arg(long, value_name = "HOST:PORT")]
        ingest: String,
        /// Writes the QR code of the enrolment URI to this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        qr: Option<PathBuf>,
    },
    /// Lists the enrolled devices.
    Devices {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
    },
    /// Receives reports on UDP and serves the Tracker service over NATS until SIGINT or SIGTERM.
    Serve {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// The UDP address to receive reports on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7403")]
        ingest: String,
        /// NATS server URL(s), comma-separated.
        #[arg(long, env = "NATS_URL", value_name = "URL", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Let callers without an identity see every device (development only).
        #[arg(long)]
        allow_anonymous: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Enrol { db, name, ingest, qr } => run_enrol(&db, &name, &ingest, qr),
        Command::Devices { db } => run_devices(&db),
        Command::Serve { db, ingest, nats, allow_anonymous } => {
            return serve(&db, &ingest, &nats, allow_anonymous);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_enrol(db: &PathBuf, name: &str, ingest: &str, qr: Option<PathBuf>) -> anyhow::Result<()> {
    let store = Store::open(db)?;
    let enrolment = enrol(&store, name, ingest)?;
    println!("device {} ({})", enrolment.id, enrolment.name);
    println!("{}", enrolment.uri());
    if let Some(path) = qr {
        std::fs::write(&path, enrolment.qr_svg()?)
            .with_context(|| format!("cannot write the QR code to `{}`", path.display()))?;
        println!("QR code written to {}", path.display());
    }
    Ok(())
}

fn run_devices(db: &PathBuf) -> anyhow::Result<()> {
    let store = Store::open(db)?;
    println!("{:>20}  {:<8}  {:>12}  {:>15}  name", "id", "enabled", "highest", "last seen (ms)");
    for d in store.devices()? {
        println!(
            "{:>20}  {:<8}  {:>12}  {:>15}  {}",
            d.id, d.enabled, d.highest_counter, d.last_seen_ms, d.name
        );
    }
    Ok(())
}

fn serve(db: &PathBuf, ingest: &str, nats: &str, allow_anonymous: bool) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tracker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let store = match Store::open(db) {
            Ok(store) => Arc::new(store),
            Err(e) => {
                eprintln!("tracker: {e}");
                return ExitCode::FAILURE;
            }
        };
        let socket = match tokio::net::UdpSocket::bind(ingest).await {
            Ok(socket) => socket,
            Err(e) => {
                eprintln!("tracker: cannot bind the ingest to `{ingest}`: {e}");
                return ExitCode::FAILURE;
            }
        };
        let ingest = match Ingest::new(socket, Arc::clone(&store), IngestOptions::default()) {
            Ok(ingest) => ingest,
            Err(e) => {
                eprintln!("tracker: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Ok(addr) = ingest.local_addr() {
            tracing::info!(%addr, "ingest listening");
        }
        let shutdown = CancellationToken::new();
        let stop_ingest = shutdown.clone();
        let code = process::run("tracker", nats, |bus| {
            let publisher = TrackerClient::new(BusTopics::new(bus.clone()));
            tokio::spawn(async move {
                if let Err(e) = ingest.run(Some(publisher), stop_ingest).await {
                    tracing::error!(cause = %e, "the ingest stopped");
                }
            });
            let service = TrackerService::new(store).allow_anonymous(allow_anonymous);
            vec![ServiceRuntime::new(bus, Arc::new(TrackerServer::new(service)))]
        })
        .await;
        shutdown.cancel();
        code
    })
}
