//! `roughtime-load`: a UDP load generator for Roughtime servers. It keeps W requests in flight
//! (per socket), each a 1024-byte version 1 request with its own nonce, and reports responses
//! per second, latency percentiles and requests that got no answer within the timeout. Answers
//! are matched by nonce; with `--verify KEY` each is also checked against the server's key
//! (which costs the generator CPU: leave it off for throughput runs).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::Parser;
use roughtime::protocol::{Version, request_packet};
use roughtime::udp::{self, Datagram};
use roughtime::verify::verify;
use roughtime::wire::{Message, Tag, unframe};

/// Load a Roughtime server with W requests in flight per socket.
#[derive(Debug, Parser)]
#[command(name = "roughtime-load", version, about)]
struct Args {
    /// The server, IP:PORT.
    #[arg(long)]
    server: SocketAddr,
    /// Requests in flight per socket.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Client sockets, one thread each.
    #[arg(long, default_value_t = 1)]
    sockets: usize,
    /// How long to measure (after a one-second warm-up).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// A request unanswered for this long counts as lost and is replaced.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Verify every answer against this long-term public key (base64).
    #[arg(long)]
    verify: Option<String>,
}

#[derive(Default)]
struct Tally {
    answered: u64,
    lost: u64,
    invalid: u64,
    latencies_us: Vec<u32>,
}

fn main() {
    let args = Args::parse();
    let key: Option<[u8; 32]> = args.verify.as_ref().map(|k| {
        let bytes = base64::engine::general_purpose::STANDARD.decode(k.trim()).expect("base64 key");
        bytes.try_into().expect("a 32-byte key")
    });
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..args.sockets.max(1))
        .map(|t| {
            let (stop, measuring) = (stop.clone(), measuring.clone());
            let (server, window, timeout) = (args.server, args.window.max(1), args.timeout);
            std::thread::spawn(move || {
                run(t as u32, server, window, timeout, key, &stop, &measuring)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(args.duration);
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for thread in threads {
        let tally = thread.join().expect("a load thread");
        total.answered += tally.answered;
        total.lost += tally.lost;
        total.invalid += tally.invalid;
        total.latencies_us.extend(tally.latencies_us);
    }
    total.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let v = &total.latencies_us;
        if v.is_empty() { 0 } else { v[((v.len() as f64 * p) as usize).min(v.len() - 1)] }
    };
    println!(
        "{{\"responses_per_s\": {:.0}, \"answered\": {}, \"lost\": {}, \"invalid\": {}, \"p50_us\": {}, \"p99_us\": {}, \"p999_us\": {}, \"window\": {}, \"sockets\": {}, \"seconds\": {:.2}}}",
        total.answered as f64 / elapsed,
        total.answered,
        total.lost,
        total.invalid,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        args.window,
        args.sockets,
        elapsed
    );
}

fn run(
    thread: u32,
    server: SocketAddr,
    window: usize,
    timeout: Duration,
    key: Option<[u8; 32]>,
    stop: &AtomicBool,
    measuring: &AtomicBool,
) -> Tally {
    // Buffers as large as the system allows: with the default (about 200 KB) a window of 1024
    // answers arriving together overflows it, and the drops would be counted against the server.
    let domain = if server.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, None).expect("a socket");
    socket.set_recv_buffer_size(8 << 20).ok();
    socket.set_send_buffer_size(8 << 20).ok();
    let any = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    socket.bind(&any.parse::<SocketAddr>().expect("an address").into()).expect("bound");
    let socket = UdpSocket::from(socket);
    socket.set_read_timeout(Some(Duration::from_millis(5))).expect("timeout");
    let mut receiver = udp::Receiver::new(64);
    let mut tally = Tally::default();
    // In flight: nonce → (sent at, request).
    let mut in_flight: HashMap<[u8; 32], (Instant, Vec<u8>)> = HashMap::with_capacity(window * 2);
    let mut counter: u64 = 0;
    let mut next_request = || {
        counter += 1;
        let mut nonce = [0u8; 32];
        nonce[..4].copy_from_slice(&thread.to_le_bytes());
        nonce[4..12].copy_from_slice(&counter.to_le_bytes());
        (nonce, request_packet(&nonce, &[Version::Rfc], None))
    };
    let mut received = Vec::with_capacity(64);
    let mut last_sweep = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Fill the window.
        let mut fresh = Vec::new();
        while in_flight.len() + fresh.len() < window {
            fresh.push(next_request());
        }
        if !fresh.is_empty() {
            let now = Instant::now();
            let datagrams: Vec<(SocketAddr, &[u8])> =
                fresh.iter().map(|(_, r)| (server, r.as_slice())).collect();
            udp::send(&socket, &datagrams);
            for (nonce, request) in fresh {
                in_flight.insert(nonce, (now, request));
            }
        }
        received.clear();
        let _ = receiver.receive(&socket, &mut received);
        let now = Instant::now();
        for Datagram { bytes, .. } in &received {
            let Some(nonce) = nonce_of(bytes) else { continue };
            let Some((sent, request)) = in_flight.remove(&nonce) else { continue };
            if !measuring.load(Ordering::Relaxed) {
                continue;
            }
            if let Some(key) = &key {
                if verify(&request, bytes, key).is_err() {
                    tally.invalid += 1;
                    continue;
                }
            }
            tally.answered += 1;
            tally.latencies_us.push((now - sent).as_micros().min(u32::MAX as u128) as u32);
        }
        if now - last_sweep > timeout / 4 {
            last_sweep = now;
            let before = in_flight.len();
            in_flight.retain(|_, (sent, _)| now - *sent < timeout);
            if measuring.load(Ordering::Relaxed) {
                tally.lost += (before - in_flight.len()) as u64;
            }
        }
    }
    tally
}

fn nonce_of(response: &[u8]) -> Option<[u8; 32]> {
    let message = Message::parse(unframe(response).ok()?).ok()?;
    message.get(Tag::NONC)?.try_into().ok()
}
