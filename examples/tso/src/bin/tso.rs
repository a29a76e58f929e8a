//! A timestamp oracle instance (docs/tso.md): follows the fencing state in the NATS cluster's
//! JetStream, leads when it may, and while it leads serves `examples.tso.Tso` on the bus.
//!
//! ```text
//! cargo run --release -p tso -- --id 1 --nats nats://127.0.0.1:4222 --http 127.0.0.1:8881
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gateway_bus::{Bus, ServeOptions, process};
use tokio_util::sync::CancellationToken;
use tso::fence::Fence;
use tso::oracle::{Oracle, ShiftedByFile, SystemClock, Timing, WallClock};

/// Serves unique, increasing timestamps while leading, until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "tso", version, about)]
struct Cli {
    /// This instance's id, unique among the oracle's instances: 1 to 64 letters, digits, `-`
    /// and `_` (a number, for EpicEpoch's clients of `/members`).
    #[arg(long, env = "TSO_ID")]
    id: String,
    #[command(flatten)]
    nats: gateway_bus::process::NatsArgs,
    /// The key-value bucket holding the fencing state.
    #[arg(long, env = "TSO_BUCKET", default_value = "tso")]
    bucket: String,
    /// The bucket's replicas when this instance creates it (3 on a 3-node cluster).
    #[arg(long, env = "TSO_REPLICAS", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=5))]
    replicas: u16,
    /// How long a silent leader is presumed alive (docs/tso.md).
    #[arg(long, env = "TSO_LEASE", default_value = "3s", value_parser = humantime::parse_duration)]
    lease: Duration,
    /// Serve the EpicEpoch-compatible HTTP endpoint (and `/metrics`) at this address.
    #[arg(long, env = "TSO_HTTP", value_name = "HOST:PORT")]
    http: Option<std::net::SocketAddr>,
    /// The HTTP address other instances list in `/members` (default: the bound address).
    #[arg(long, env = "TSO_ADVERTISE", value_name = "HOST:PORT", requires = "http")]
    advertise: Option<String>,
    /// For fault tests: a file holding signed nanoseconds added to this instance's wall clock,
    /// read at every use (a missing file is 0).
    #[arg(long, value_name = "FILE")]
    clock_offset_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    process::log_to_stderr();
    if !tso::fence::valid_id(&cli.id) {
        eprintln!("tso: --id {:?}: use 1 to 64 letters, digits, `-` and `_`", cli.id);
        return ExitCode::FAILURE;
    }
    if cli.lease < Duration::from_millis(300) {
        eprintln!("tso: --lease {:?} is shorter than 300ms", cli.lease);
        return ExitCode::FAILURE;
    }
    let timing = Timing {
        lease: cli.lease,
        margin: cli.lease / 30,
        renew_every: cli.lease / 3,
        ahead: cli.lease,
        ..Timing::default()
    };
    let name = format!("tso-{}", cli.id);
    let bus: Arc<dyn Bus> = match process::connect(&cli.nats, &name).await {
        Ok(bus) => bus,
        Err(e) => {
            eprintln!("tso: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Leadership (renewals, epochs, following) runs on a thread of its own, with its own NATS
    // connection: however busy serving keeps the main runtime, a renewal is not held up until
    // the lease runs out.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tso-leadership")
        .enable_all()
        .build()
    {
        Ok(runtime) => Detached(Some(runtime)),
        Err(e) => {
            eprintln!("tso: cannot start the leadership thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    let leadership = runtime.0.as_ref().expect("just built").handle().clone();
    let (bucket, replicas) = (cli.bucket.clone(), usize::from(cli.replicas));
    let nats = cli.nats.clone();
    let opened = leadership.spawn(async move {
        // Checked by `process::connect` above.
        let auth = nats.auth().map_err(|e| e.to_string())?;
        let client =
            gateway_bus::nats::connect_client(&nats.url, &auth, &format!("{name} (leadership)"))
                .await
                .map_err(|e| e.to_string())?;
        let js = async_nats::jetstream::new(client);
        Fence::open(&js, &bucket, replicas).await.map_err(|e| e.to_string())
    });
    let fence = match opened.await {
        Ok(Ok(fence)) => fence,
        Ok(Err(e)) => {
            eprintln!("tso: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("tso: {e}");
            return ExitCode::FAILURE;
        }
    };
    let oracle = Oracle::new(&cli.id);
    let stop = CancellationToken::new();
    let mut http = None;
    if let Some(addr) = cli.http {
        let listener = match tso::http::listen(addr) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("tso: cannot listen for HTTP on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let bound = listener.local_addr().map_or(addr, |bound| bound);
        let advertise = cli.advertise.clone().unwrap_or_else(|| bound.to_string());
        // The bucket may have just been made by another instance and not be writable yet on
        // every node: announce until it is.
        tokio::spawn({
            let (fence, id, stop) = (fence.clone(), cli.id.clone(), stop.clone());
            async move {
                let mut failures = 0;
                while let Err(e) = fence.announce(&id, &advertise).await {
                    if failures == 0 {
                        eprintln!("tso: cannot announce the HTTP address yet ({e}); retrying");
                    }
                    failures += 1;
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
                if failures > 0 {
                    eprintln!("tso: announced the HTTP address {advertise}");
                }
            }
        });
        eprintln!("tso: HTTP on {bound}");
        let endpoint = tso::http::Endpoint::new(oracle.clone(), fence.clone());
        http = Some(tokio::spawn(endpoint.serve(listener, stop.clone())));
    }
    eprintln!("tso: instance {} following bucket `{}`", cli.id, cli.bucket);
    // An instance that leads but cannot serve must not keep the lead: if serving fails, the
    // whole instance stops (renewing no more), and another takes over after the lease.
    let serving = tokio::spawn({
        let (oracle, stop) = (oracle.clone(), stop.clone());
        async move {
            let options = ServeOptions {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..ServeOptions::default()
            };
            let served =
                tso::service::serve_while_leading(oracle, bus, options, stop.clone()).await;
            stop.cancel();
            served
        }
    });
    let mut leading = oracle.leadership();
    let id = cli.id.clone();
    tokio::spawn(async move {
        while leading.changed().await.is_ok() {
            let leads = *leading.borrow_and_update();
            eprintln!("tso: instance {id} {}", if leads { "leads" } else { "follows" });
        }
    });
    tokio::spawn({
        let stop = stop.clone();
        async move {
            process::signal().await;
            stop.cancel();
        }
    });
    let clock: Box<dyn WallClock> = match cli.clock_offset_file {
        Some(path) => Box::new(ShiftedByFile(path)),
        None => Box::new(SystemClock),
    };
    let following = leadership.spawn({
        let (oracle, stop) = (oracle.clone(), stop.clone());
        async move { oracle.run(&fence, timing, &*clock, stop.cancelled_owned()).await }
    });
    let _ = following.await;
    drop(runtime);
    stop.cancel();
    if let Some(http) = http {
        let _ = http.await;
    }
    match serving.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("tso: cannot serve: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tso: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A runtime that, dropped, stops without waiting for its tasks (a runtime dropped inside
/// another would block, which tokio refuses).
struct Detached(Option<tokio::runtime::Runtime>);

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
