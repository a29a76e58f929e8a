//! The baseline of the timestamp oracle: `examples.tso.Tso` served over NATS from a counter in
//! memory, with no fencing, no lease and no leadership (one instance, its epochs from its clock).
//! What `tso` (the highly available instance) does on top of it is what `scripts/bench-tso`
//! measures against it. Not an oracle: two of these would hand out the same timestamps.
//! With `--http`, it also answers `GET /timestamp?n=` from the same counter on the same HTTP
//! server as `tso --http` (hyper, `tso::http::serve`): the baseline of the HTTP benchmark.
//!
//! ```sh
//! cargo run --release -p gateway-bench --bin tso-bare -- --nats nats://127.0.0.1:4222
//! ```

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
use gateway_bus::{ServeOptions, ServiceRuntime, process};
use gateway_core::{CallContext, Message, Status};
use tso::Timestamp;
use tso::service::{TimestampsRequestT, TimestampsT, Tso, TsoServer};

/// Serves timestamps from memory over NATS until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// Also answer `GET /timestamp?n=` over HTTP at this address.
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<std::net::SocketAddr>,
}

/// The last timestamp handed out.
#[derive(Clone, Debug)]
struct Bare(Arc<Mutex<Timestamp>>);

impl Tso for Bare {
    async fn timestamps(
        &self,
        _ctx: CallContext,
        request: Message<TimestampsRequestT>,
    ) -> Result<Message<TimestampsT>, Status> {
        let n = request.get().n().max(1);
        let first = self.take(u64::from(n));
        Ok(Message::pack(&TimestampsT { first: first.to_bytes().to_vec(), n }))
    }
}

impl Bare {
    /// `n` timestamps: the first is returned.
    fn take(&self, n: u64) -> Timestamp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut last = self.0.lock().expect("counter");
        let first = if now > last.epoch {
            Timestamp { epoch: now, index: 0 }
        } else {
            Timestamp { epoch: last.epoch, index: last.index + 1 }
        };
        *last = Timestamp { index: first.index + n - 1, ..first };
        first
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    process::log_to_stderr();
    let bare = Bare(Arc::new(Mutex::new(Timestamp { epoch: 0, index: 0 })));
    if let Some(addr) = args.http {
        let listener = match tso::http::listen(addr) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("tso-bare: cannot listen for HTTP on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let bare = bare.clone();
        let answer = move |request: hyper::Request<hyper::body::Incoming>| {
            let answer = match (request.uri().path(), tso::http::count(request.uri().query())) {
                ("/timestamp", Ok(n)) => tso::http::timestamps(bare.take(n), n),
                ("/timestamp", Err(message)) => {
                    tso::http::text(hyper::StatusCode::BAD_REQUEST, message)
                }
                _ => tso::http::text(hyper::StatusCode::NOT_FOUND, "only /timestamp\n"),
            };
            std::future::ready(answer)
        };
        tokio::spawn(tso::http::serve(
            listener,
            answer,
            tokio_util::sync::CancellationToken::new(),
        ));
    }
    let service: Arc<dyn gateway_core::Dispatch> = Arc::new(TsoServer::new(bare));
    let options = ServeOptions::default();
    process::run("tso-bare", &process::NatsArgs::new(&args.nats), |bus| {
        vec![ServiceRuntime::new(bus, service).with_options(options)]
    })
    .await
}
