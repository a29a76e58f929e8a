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
use roughtime::keys::{LongTermKey, random_seed, read_key_file};
use roughtime::measure::{Probe, chained_nonce, check_order, malfeasance_report};
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
    /// Ask servers for the time, chaining the nonces (RFC 10049 8.2), and verify every answer;
    /// with several servers, twice round, and write a malfeasance report if two answers
    /// contradict the order they came in.
    Query {
        /// A server, `HOST:PORT=PUBLIC_KEY` (the key in base64); repeatable, in query order.
        #[arg(long = "server", value_name = "HOST:PORT=KEY")]
        servers: Vec<String>,
        /// A server list (RFC 10049 8.3, JSON): every UDP server of it, in its order.
        #[arg(long, value_name = "FILE")]
        servers_file: Option<PathBuf>,
        /// The version to ask for: 1 or the draft 0x8000000c.
        #[arg(long, default_value = "1", value_parser = ["1", "draft"])]
        version: String,
        /// How long to wait for each answer.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Where to write a malfeasance report when answers contradict each other.
        #[arg(long, value_name = "FILE", default_value = "roughtime-malfeasance.json")]
        report: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// A TOML file of settings, named as the flags without `--` (`max_delay = "2ms"`); a flag
    /// or a variable wins over the file.
    #[arg(long, env = "ROUGHTIME_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The long-term key file (from `roughtime keygen`).
    #[arg(long, env = "ROUGHTIME_KEY", value_name = "FILE")]
    key: PathBuf,
    /// The UDP address to answer on (IANA's port is 5319).
    #[arg(long, env = "ROUGHTIME_BIND", default_value = "0.0.0.0:5319")]
    bind: SocketAddr,
    /// Sockets sharing the address (SO_REUSEPORT), one thread each [default: one per core].
    #[arg(long, env = "ROUGHTIME_SOCKETS", value_parser = clap::value_parser!(u16).range(1..=64))]
    sockets: Option<u16>,
    /// 0: each socket's thread answers what it receives itself, no hand-offs (--max-delay and
    /// --queue do not apply). N: the pipeline (receive, queue, batcher) with N signing threads.
    #[arg(long, env = "ROUGHTIME_WORKERS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    workers: u16,
    /// The most requests under one signature (at most 1024 without workers: one recvmmsg).
    #[arg(long, env = "ROUGHTIME_MAX_BATCH", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_batch: u32,
    /// The longest a request waits for others to share its batch.
    #[arg(long, env = "ROUGHTIME_MAX_DELAY", default_value = "1ms", value_parser = humantime::parse_duration)]
    max_delay: Duration,
    /// The shortest a request waits for others when a signing worker is idle (only with
    /// workers): more than 0 trades latency for fewer signatures.
    #[arg(long, env = "ROUGHTIME_MIN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    min_delay: Duration,
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
    /// Seconds added to the time signed: a lying server, for testing clients (never in
    /// production).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    clock_offset: i64,
}

/// The settings `serve` reads from its file: every flag of `serve` but `--config`.
const FILE_SETTINGS: &[&str] = &[
    "key",
    "bind",
    "sockets",
    "workers",
    "max_batch",
    "max_delay",
    "min_delay",
    "queue",
    "radius",
    "key_lifetime",
    "metrics",
    "clock_offset",
];

/// Parses the command line; for `serve --config FILE`, parses it again with the file's settings
/// added as flags where neither a flag nor a variable gave one, so that the file's values go
/// through the same checks.
fn parse() -> Result<Cli, String> {
    use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let configured = std::env::var_os("ROUGHTIME_CONFIG").is_some()
        || args
            .iter()
            .any(|a| a.to_str().is_some_and(|a| a == "--config" || a.starts_with("--config=")));
    if !configured {
        return Ok(Cli::parse());
    }
    // A first look, for the file's name and which settings flags and variables give; the file
    // may hold required ones (`key`), so missing settings are not errors yet.
    let matches = Cli::command().ignore_errors(true).get_matches_from(&args);
    let Some(("serve", serve)) = matches.subcommand() else {
        return Cli::from_arg_matches(&matches).map_err(|e| e.to_string());
    };
    let Some(file) = serve.get_one::<PathBuf>("config") else {
        return Cli::from_arg_matches(&matches).map_err(|e| e.to_string());
    };
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("reading `{}`: {e}", file.display()))?;
    let table: toml::Table =
        text.parse().map_err(|e| format!("`{}` is not TOML: {e}", file.display()))?;
    let mut extra = Vec::new();
    for (name, value) in &table {
        if !FILE_SETTINGS.contains(&name.as_str()) {
            return Err(format!(
                "`{}`: unknown setting `{name}` (known: {})",
                file.display(),
                FILE_SETTINGS.join(", ")
            ));
        }
        let given = matches!(
            serve.value_source(name),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if given {
            continue;
        }
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            other => {
                return Err(format!(
                    "`{}`: `{name}` must be a string or an integer, not {other}",
                    file.display()
                ));
            }
        };
        extra.push(format!("--{}={value}", name.replace('_', "-")));
    }
    let mut all = args;
    all.extend(extra.into_iter().map(Into::into));
    Cli::try_parse_from(all).map_err(|e| {
        format!("in `{}`: {}", file.display(), e.to_string().trim_start_matches("error: "))
    })
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => return fail(e),
    };
    match cli.command {
        Command::Keygen { out } => keygen(&out),
        Command::Serve(serve) => run(serve),
        Command::Query { servers, servers_file, version, timeout, report } => {
            query(&servers, servers_file.as_deref(), &version, timeout, &report)
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

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn run(serve: Serve) -> ExitCode {
    if serve.min_delay > serve.max_delay {
        return fail(format!(
            "--min-delay ({:?}) is longer than --max-delay ({:?})",
            serve.min_delay, serve.max_delay
        ));
    }
    let key = match read_key_file(&serve.key) {
        Ok(key) => key,
        Err(e) => return fail(e),
    };
    let public = b64(&key.public());
    let config = Config {
        bind: serve.bind,
        sockets: serve.sockets.map_or_else(|| Config::default().sockets, usize::from),
        workers: usize::from(serve.workers),
        max_batch: serve.max_batch as usize,
        max_delay: serve.max_delay,
        min_delay: serve.min_delay,
        queue: serve.queue as usize,
        radius: serve.radius,
        key_lifetime: serve.key_lifetime,
        clock_offset: serve.clock_offset,
    };
    let server = match Server::start(config.clone(), key) {
        Ok(server) => server,
        Err(e) => return fail(format!("starting on {}: {e}", serve.bind)),
    };
    let shape = if config.workers == 0 {
        format!("{} sockets, each answering batches of up to {}", config.sockets, config.max_batch)
    } else {
        format!(
            "{} sockets, {} signing workers, batches of up to {} within {:?}",
            config.sockets, config.workers, config.max_batch, config.max_delay
        )
    };
    eprintln!("roughtime: answering on {} (public key {public}; {shape})", server.local_addr());
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

/// Whether `packet` is a message whose NONC is `nonce`.
fn answers(packet: &[u8], nonce: &[u8; 32]) -> bool {
    roughtime::wire::unframe(packet)
        .ok()
        .and_then(|m| roughtime::wire::Message::parse(m).ok())
        .and_then(|m| m.get(roughtime::wire::Tag::NONC))
        .is_some_and(|n| n == nonce)
}

/// A server to query: a name for people, an address, its long-term public key.
struct Target {
    name: String,
    addr: SocketAddr,
    key: [u8; 32],
}

fn decode_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("the public key `{text}` is not base64: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("the public key `{text}` is {} bytes, not 32", b.len()))
}

fn resolve(address: &str) -> Result<SocketAddr, String> {
    address
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve `{address}`"))
}

/// The servers of a list file (RFC 10049 8.3): each server's UDP addresses.
fn read_server_list(path: &Path) -> Result<Vec<Target>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading `{}`: {e}", path.display()))?;
    let list: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("`{}` is not JSON: {e}", path.display()))?;
    let servers = list["servers"]
        .as_array()
        .ok_or_else(|| format!("`{}` has no \"servers\" list", path.display()))?;
    let mut targets = Vec::new();
    for server in servers {
        let name = server["name"].as_str().unwrap_or("(unnamed)").to_owned();
        if server["publicKeyType"].as_str() != Some("ed25519") {
            return Err(format!("server `{name}`: publicKeyType is not \"ed25519\""));
        }
        let key = decode_key(server["publicKey"].as_str().unwrap_or_default())
            .map_err(|e| format!("server `{name}`: {e}"))?;
        for address in server["addresses"].as_array().into_iter().flatten() {
            if address["protocol"].as_str() == Some("udp") {
                let addr = resolve(address["address"].as_str().unwrap_or_default())
                    .map_err(|e| format!("server `{name}`: {e}"))?;
                targets.push(Target { name: name.clone(), addr, key });
            }
        }
    }
    Ok(targets)
}

fn query(
    servers: &[String],
    file: Option<&Path>,
    version: &str,
    timeout: Duration,
    report: &Path,
) -> ExitCode {
    let mut targets = Vec::new();
    for server in servers {
        let Some((address, key)) = server.split_once('=') else {
            return fail(format!("`{server}` is not HOST:PORT=PUBLIC_KEY"));
        };
        match (resolve(address), decode_key(key)) {
            (Ok(addr), Ok(key)) => targets.push(Target { name: address.to_owned(), addr, key }),
            (Err(e), _) | (_, Err(e)) => return fail(e),
        }
    }
    if let Some(file) = file {
        match read_server_list(file) {
            Ok(listed) => targets.extend(listed),
            Err(e) => return fail(e),
        }
    }
    if targets.is_empty() {
        return fail("no server to ask: give --server HOST:PORT=KEY or --servers-file FILE");
    }
    let versions: &[Version] = if version == "draft" { &[Version::Draft] } else { &[Version::Rfc] };
    let socket = match UdpSocket::bind("[::]:0").or_else(|_| UdpSocket::bind("0.0.0.0:0")) {
        Ok(socket) => socket,
        Err(e) => return fail(format!("a UDP socket: {e}")),
    };
    if let Err(e) = socket.set_read_timeout(Some(timeout)) {
        return fail(format!("a UDP socket: {e}"));
    }
    // RFC 10049 8.2: with several servers, the sequence is run twice in the same order.
    let rounds = if targets.len() > 1 { 2 } else { 1 };
    let mut probes: Vec<Probe> = Vec::new();
    for target in targets.iter().cycle().take(rounds * targets.len()) {
        let (nonce, rand) = match probes.last() {
            None => match random_seed() {
                Ok(nonce) => (nonce, None),
                Err(e) => return fail(format!("no randomness for a nonce: {e}")),
            },
            Some(previous) => match random_seed() {
                Ok(rand) => (chained_nonce(&previous.response, &rand), Some(rand)),
                Err(e) => return fail(format!("no randomness for a nonce: {e}")),
            },
        };
        let request = request_packet(&nonce, versions, None);
        let addr = if socket.local_addr().is_ok_and(|a| a.is_ipv6()) && target.addr.is_ipv4() {
            SocketAddr::new(
                std::net::IpAddr::V6(match target.addr.ip() {
                    std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                    std::net::IpAddr::V6(v6) => v6,
                }),
                target.addr.port(),
            )
        } else {
            target.addr
        };
        let sent = Instant::now();
        if let Err(e) = socket.send_to(&request, addr) {
            return fail(format!("{}: sending: {e}", target.name));
        }
        let mut buffer = [0u8; 1500];
        let response = loop {
            match socket.recv_from(&mut buffer) {
                // A late answer to an earlier request carries another nonce: skip it.
                Ok((len, _)) if answers(&buffer[..len], &nonce) => break buffer[..len].to_vec(),
                Ok(_) => continue,
                Err(e) => {
                    return fail(format!("{}: no answer within {timeout:?}: {e}", target.name));
                }
            }
        };
        let rtt = sent.elapsed();
        let verified = match verify(&request, &response, &target.key) {
            Ok(v) => v,
            Err(e) => return fail(format!("{}: the answer is not valid: {e}", target.name)),
        };
        println!(
            "{}: midp {} ± {} s (version {:#x}, round trip {:?}, online key valid {}..={})",
            target.name,
            verified.midp,
            verified.radius,
            verified.version.number(),
            rtt,
            verified.mint,
            verified.maxt
        );
        probes.push(Probe {
            server: target.name.clone(),
            public_key: target.key,
            rand,
            request,
            response,
            verified,
        });
    }
    if let Some(c) = check_order(&probes) {
        let (a, b) = (&probes[c.earlier], &probes[c.later]);
        if let Err(e) = std::fs::write(report, malfeasance_report(&probes)) {
            return fail(format!("writing the malfeasance report `{}`: {e}", report.display()));
        }
        return fail(format!(
            "malfeasance: {} said {} ± {} s, then {} said {} ± {} s, earlier than possible; the proof is in `{}`",
            a.server,
            a.verified.midp,
            a.verified.radius,
            b.server,
            b.verified.midp,
            b.verified.radius,
            report.display()
        ));
    }
    ExitCode::SUCCESS
}
