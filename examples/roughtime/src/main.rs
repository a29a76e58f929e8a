//! `roughtime`: make a long-term key, run the server, or ask a server for the time.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::{Parser, Subcommand};
use roughtime::keys::{LongTermKey, random_seed};
use roughtime::protocol::{Version, request_packet};
use roughtime::server::{Config, Metrics, Server};
use roughtime::verify::verify;

/// Roughtime (RFC 10049): authenticated rough time, answered in batches.
#[derive(Debug, Parser)]
#[command(name = "roughtime", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a new long-term key (its secret, base64) to FILE with mode 0600; print the public
    /// key.
    Keygen {
        /// Where to write the key; an existing file is not overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Answer Roughtime requests over UDP.
    Serve(Serve),
    /// Ask a server for the time and verify the answer.
    Query {
        /// The server, HOST:PORT.
        #[arg(long)]
        server: String,
        /// The server's long-term public key, base64.
        #[arg(long)]
        public_key: String,
        /// The version to ask for: 1 or the draft 0x8000000c.
        #[arg(long, default_value = "1", value_parser = ["1", "draft"])]
        version: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// The long-term key file (from `roughtime keygen`).
    #[arg(long, env = "ROUGHTIME_KEY", value_name = "FILE")]
    key: PathBuf,
    /// The UDP address to answer on (IANA's port is 5319).
    #[arg(long, env = "ROUGHTIME_BIND", default_value = "0.0.0.0:5319")]
    bind: SocketAddr,
    /// Sockets sharing the address (SO_REUSEPORT), one receive thread each.
    #[arg(long, env = "ROUGHTIME_SOCKETS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    sockets: u16,
    /// Signing threads [default: one per core]; 0: each receive thread answers what it
    /// receives itself (no pipeline, no hand-offs; --max-delay and --queue do not apply).
    #[arg(long, env = "ROUGHTIME_WORKERS", value_parser = clap::value_parser!(u16).range(0..=256))]
    workers: Option<u16>,
    /// The most requests under one signature.
    #[arg(long, env = "ROUGHTIME_MAX_BATCH", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_batch: u32,
    /// The longest a request waits for others to share its batch.
    #[arg(long, env = "ROUGHTIME_MAX_DELAY", default_value = "1ms", value_parser = humantime::parse_duration)]
    max_delay: Duration,
    /// Requests waiting for the batcher; beyond this the oldest are dropped.
    #[arg(long, env = "ROUGHTIME_QUEUE", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1..))]
    queue: u32,
    /// RADI: the server's uncertainty, in seconds.
    #[arg(long, env = "ROUGHTIME_RADIUS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    radius: u32,
    /// How long each online key is delegated for (replaced at 3/4 of it).
    #[arg(long, env = "ROUGHTIME_KEY_LIFETIME", default_value = "24h", value_parser = humantime::parse_duration)]
    key_lifetime: Duration,
    /// Serve Prometheus metrics on this TCP address (`GET /metrics`).
    #[arg(long, env = "ROUGHTIME_METRICS")]
    metrics: Option<SocketAddr>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Keygen { out } => keygen(&out),
        Command::Serve(serve) => run(serve),
        Command::Query { server, public_key, version, timeout } => {
            query(&server, &public_key, &version, timeout)
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

fn keygen(out: &Path) -> ExitCode {
    let seed = match random_seed() {
        Ok(seed) => seed,
        Err(e) => return fail(format!("no randomness: {e}")),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(out).and_then(|mut file| writeln!(file, "{}", b64(&seed)));
    if let Err(e) = written {
        return fail(format!("writing `{}`: {e}", out.display()));
    }
    println!("{}", b64(&LongTermKey::from_seed(&seed).public()));
    ExitCode::SUCCESS
}

/// Reads a key file: the base64 of a 32-byte secret.
fn read_key(path: &Path) -> Result<LongTermKey, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading `{}`: {e}", path.display()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("`{}` is not a key file (base64 of 32 bytes): {e}", path.display()))?;
    let seed: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        format!("`{}` holds {} bytes, not a 32-byte key", path.display(), b.len())
    })?;
    Ok(LongTermKey::from_seed(&seed))
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn run(serve: Serve) -> ExitCode {
    let key = match read_key(&serve.key) {
        Ok(key) => key,
        Err(e) => return fail(e),
    };
    let public = b64(&key.public());
    let config = Config {
        bind: serve.bind,
        sockets: usize::from(serve.sockets),
        workers: serve.workers.map_or_else(|| Config::default().workers, usize::from),
        max_batch: serve.max_batch as usize,
        max_delay: serve.max_delay,
        queue: serve.queue as usize,
        radius: serve.radius,
        key_lifetime: serve.key_lifetime,
    };
    let server = match Server::start(config.clone(), key) {
        Ok(server) => server,
        Err(e) => return fail(format!("starting on {}: {e}", serve.bind)),
    };
    eprintln!(
        "roughtime: answering on {} (public key {public}; {} sockets, {} workers, batches of up to {} within {:?})",
        server.local_addr(),
        config.sockets,
        config.workers,
        config.max_batch,
        config.max_delay,
    );
    if let Some(addr) = serve.metrics {
        match TcpListener::bind(addr) {
            Ok(listener) => {
                eprintln!(
                    "roughtime: metrics on http://{}/metrics",
                    listener.local_addr().unwrap_or(addr)
                );
                let metrics = server.metrics().clone();
                std::thread::spawn(move || serve_metrics(&listener, &metrics));
            }
            Err(e) => return fail(format!("metrics on {addr}: {e}")),
        }
    }
    // Safety: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    while !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("roughtime: stopping: answering what is queued");
    let metrics = server.metrics().clone();
    server.shutdown();
    eprintln!("roughtime: stopped after {} responses", metrics.responses.load(Ordering::Relaxed));
    ExitCode::SUCCESS
}

/// A minimal HTTP responder: every request gets the metrics.
fn serve_metrics(listener: &TcpListener, metrics: &Arc<Metrics>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let body = metrics.render();
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

fn query(server: &str, public_key: &str, version: &str, timeout: Duration) -> ExitCode {
    let public: [u8; 32] = match base64::engine::general_purpose::STANDARD.decode(public_key.trim())
    {
        Ok(bytes) => match bytes.try_into() {
            Ok(key) => key,
            Err(_) => return fail("the public key is not 32 bytes"),
        },
        Err(e) => return fail(format!("the public key is not base64: {e}")),
    };
    let Some(addr) = server.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return fail(format!("cannot resolve `{server}`"));
    };
    let nonce = match random_seed() {
        Ok(nonce) => nonce,
        Err(e) => return fail(format!("no randomness for a nonce: {e}")),
    };
    let versions: &[Version] = if version == "draft" { &[Version::Draft] } else { &[Version::Rfc] };
    let request = request_packet(&nonce, versions, None);
    let socket = match UdpSocket::bind(if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }) {
        Ok(socket) => socket,
        Err(e) => return fail(format!("a UDP socket: {e}")),
    };
    let sent = Instant::now();
    if let Err(e) =
        socket.set_read_timeout(Some(timeout)).and_then(|()| socket.send_to(&request, addr))
    {
        return fail(format!("sending to {addr}: {e}"));
    }
    let mut buffer = [0u8; 1500];
    let len = match socket.recv_from(&mut buffer) {
        Ok((len, _)) => len,
        Err(e) => return fail(format!("no answer from {addr} within {timeout:?}: {e}")),
    };
    let rtt = sent.elapsed();
    match verify(&request, &buffer[..len], &public) {
        Ok(v) => {
            println!(
                "{addr}: midp {} ± {} s (version {:#x}, round trip {:?}, online key valid {}..={})",
                v.midp,
                v.radius,
                v.version.number(),
                rtt,
                v.mint,
                v.maxt
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{addr} answered, but the answer is not valid: {e}")),
    }
}
