//! `tso-http-load`: answers per second from the timestamp oracle's HTTP endpoint (docs/tso.md,
//! "HTTP"), in the shape of EpicEpoch's published benchmark: `clients` HTTP/1.1 keep-alive
//! connections, each one `GET /timestamp?n=N` at a time, as k6's virtual users make them. Every
//! answer is checked: status 200, 16·N bytes, each client's timestamps increasing. Prints one
//! JSON line: requests and timestamps per second, latency percentiles, failed requests, and
//! answers out of order (must be 0). Measuring starts a second after every client has had its
//! first answer.
//!
//! ```sh
//! cargo run --release -p gateway-bench --bin tso-http-load -- --addr 127.0.0.1:8881 --clients 100
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tso::Timestamp;

/// Requests per second against the oracle's HTTP endpoint.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The endpoint's address.
    #[arg(long, default_value = "127.0.0.1:8881")]
    addr: SocketAddr,
    /// Concurrent clients, each on its own connection, one request at a time.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Timestamps per request (`?n=`).
    #[arg(long, default_value_t = 1)]
    n: u64,
    #[command(flatten)]
    window: gateway_bench::Window,
}

#[derive(Debug, Default)]
struct Totals {
    /// Clients that have had their first answer: measuring starts a second after all have.
    started: AtomicU64,
    requests: AtomicU64,
    failed: AtomicU64,
    out_of_order: AtomicU64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = gateway_bench::runtime(args.window.threads)?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (measuring, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let totals = Arc::new(Totals::default());
    let path =
        if args.n == 1 { "/timestamp".to_owned() } else { format!("/timestamp?n={}", args.n) };
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..args.clients.max(1) {
        let (measuring, stop, totals) = (measuring.clone(), stop.clone(), totals.clone());
        let (addr, n, path) = (args.addr, args.n, path.clone());
        clients.spawn(async move {
            let mut latencies = hdrhistogram::Histogram::<u64>::new(3).expect("a histogram");
            let mut last: Option<Timestamp> = None;
            let mut answered = false;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut sender) = connect(addr).await else {
                    if measuring.load(Ordering::Relaxed) {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let answer = get(&mut sender, addr, &path).await;
                    let measured = measuring.load(Ordering::Relaxed);
                    let body = match answer {
                        Ok((200, body)) if body.len() == Timestamp::LEN * n as usize => body,
                        failed => {
                            if measured {
                                totals.failed.fetch_add(1, Ordering::Relaxed);
                            }
                            if failed.is_err() {
                                break;
                            }
                            continue;
                        }
                    };
                    let first =
                        Timestamp::from_bytes(body[..16].try_into().expect("16 bytes checked"));
                    if last.is_some_and(|last| first <= last) {
                        totals.out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                    last = Some(Timestamp::from_bytes(
                        body[body.len() - 16..].try_into().expect("16 bytes checked"),
                    ));
                    if !answered {
                        answered = true;
                        totals.started.fetch_add(1, Ordering::Relaxed);
                    }
                    if measured {
                        totals.requests.fetch_add(1, Ordering::Relaxed);
                        let _ = latencies.record(started.elapsed().as_micros() as u64);
                    }
                }
            }
            latencies
        });
    }
    // Every client connected and answered once (10,000 connections take a while to be
    // accepted), then a second of warm-up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while totals.started.load(Ordering::Relaxed) < args.clients.max(1) as u64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {} clients had an answer within a minute",
            totals.started.load(Ordering::Relaxed),
            args.clients
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (seconds, latencies) =
        gateway_bench::measure(&measuring, &stop, args.window.duration, &mut clients).await?;
    let requests = totals.requests.load(Ordering::Relaxed);
    println!(
        "{{\"requests_per_s\": {:.0}, \"timestamps_per_s\": {:.0}, \"mean_us\": {:.0}, \"p50_us\": {}, \"p99_us\": {}, \"failed\": {}, \"out_of_order\": {}, \"clients\": {}, \"n\": {}, \"seconds\": {seconds:.2}}}",
        requests as f64 / seconds,
        (requests * args.n) as f64 / seconds,
        latencies.mean(),
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99),
        totals.failed.load(Ordering::Relaxed),
        totals.out_of_order.load(Ordering::Relaxed),
        args.clients,
        args.n,
    );
    Ok(())
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One request on the connection: the status and the body.
async fn get(sender: &mut Sender, addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::new())
        .expect("a request");
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}
