//! The attack mode (`loadgen attack`): clients that misbehave on purpose, from loopback, while
//! well-behaved clients call the echo method, so that `scripts/bench-attacks` can show what each
//! attack costs the others (their latency beside an unattacked run of the same process) and
//! that the gateway holds its bounds. `docs/reliability.md` lists the attacks and the figures.
//!
//! Every attack is written here on the bytes (frames, WebSocket frames, HTTP heads), as an
//! attacker would, and runs until stopped; counters say what the gateway did to it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gateway_protocol::{
    DEFAULT_MAX_FRAME_SIZE, Decoded, Frame, Hello, Publish, Request, Subscribe, VERSION, decode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::LoadError;

/// The attacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// TCP connections that send HELLO one byte at a time and never finish it.
    SlowlorisTcp,
    /// WebSocket connections that send the upgrade request one byte at a time.
    SlowlorisWs,
    /// Admin connections that send a request head one byte at a time, forever.
    SlowlorisAdmin,
    /// Welcomed connections, held, past `max_connections`.
    Flood,
    /// Connections opened and closed as fast as they go, from one address, past the per-IP rate.
    RateFlood,
    /// TCP connections that send nothing at all, one wave (the handshake timeout frees them).
    Idle,
    /// Clients that never read: half subscribe to `broadcast` (a publisher sends it 2,000 events
    /// of 4 KiB a second), half send calls of 16 KiB without reading their answers.
    NeverReads,
    /// Frames announcing a length past the gateway's maximum, and calls whose FlatBuffers lie
    /// (a vector claiming 2^31 bytes, a root offset past the end, a vtable outside the buffer,
    /// 10,000 bytes of offsets to offsets).
    Oversized,
    /// HELLOs with forged tokens, one connection each, as fast as they go.
    BadTokens,
    /// No attack: the control. Its rounds are measured like the others', with nothing running
    /// in the attacked window, so its ratios are what this host's noise alone makes of the
    /// figure.
    None,
}

impl Attack {
    pub const ALL: [Attack; 10] = [
        Attack::SlowlorisTcp,
        Attack::SlowlorisWs,
        Attack::SlowlorisAdmin,
        Attack::Flood,
        Attack::RateFlood,
        Attack::Idle,
        Attack::NeverReads,
        Attack::Oversized,
        Attack::BadTokens,
        Attack::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::SlowlorisTcp => "slowloris-tcp",
            Attack::SlowlorisWs => "slowloris-ws",
            Attack::SlowlorisAdmin => "slowloris-admin",
            Attack::Flood => "flood",
            Attack::RateFlood => "rate-flood",
            Attack::Idle => "idle",
            Attack::NeverReads => "never-reads",
            Attack::Oversized => "oversized",
            Attack::BadTokens => "bad-tokens",
            Attack::None => "none",
        }
    }

    pub fn from_name(name: &str) -> Option<Attack> {
        Attack::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// Where and how hard to attack.
#[derive(Clone, Debug)]
pub struct AttackConfig {
    pub attack: Attack,
    /// The gateway's TCP, WebSocket and admin addresses.
    pub addr: SocketAddr,
    pub ws_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Attacking connections at once.
    pub connections: usize,
    /// Loopback source addresses to spread them over (127.0.1.0 onwards), so that per-IP limits
    /// see many clients; 0: the default source (127.0.0.1, as the well-behaved clients).
    pub sources: u32,
    /// The time between two bytes of a slowloris client.
    pub trickle: Duration,
}

/// What the gateway did to the attackers.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections the attack opened (TCP connects that succeeded).
    pub opened: AtomicU64,
    /// Connects that failed (refused, or no port left).
    pub connect_failed: AtomicU64,
    /// Connections the gateway closed.
    pub closed: AtomicU64,
    /// Connections the gateway welcomed.
    pub welcomed: AtomicU64,
    /// Calls answered with a RESPONSE, and with an ERROR.
    pub answered: AtomicU64,
    pub refused_calls: AtomicU64,
    /// Bytes the attack wrote.
    pub sent: AtomicU64,
    /// The longest time from connect to the gateway's close (ms), for the idle wave.
    pub longest_open_ms: AtomicU64,
    goaways: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn goaway(&self, reason: &str) {
        *self.goaways.lock().expect("counters").entry(reason.to_owned()).or_default() += 1;
    }

    /// GOAWAY reasons the attackers were sent, with their counts.
    pub fn goaways(&self) -> BTreeMap<String, u64> {
        self.goaways.lock().expect("counters").clone()
    }
}

/// Runs the attack until `stop`; the counters are updated as it goes.
pub async fn run(config: AttackConfig, counters: Arc<Counters>, stop: CancellationToken) {
    if config.attack == Attack::None {
        stop.cancelled().await;
        return;
    }
    let mut tasks = tokio::task::JoinSet::new();
    let attackers = match config.attack {
        Attack::NeverReads => config.connections + 1,
        _ => config.connections,
    };
    for i in 0..attackers {
        let (config, counters, stop) = (config.clone(), counters.clone(), stop.clone());
        tasks.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = attacker(&config, i, &counters) => {}
            }
        });
        if i % 256 == 255 {
            tokio::task::yield_now().await;
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// One attacking client, for as long as it is polled (the idle wave ends by itself).
async fn attacker(config: &AttackConfig, i: usize, counters: &Counters) {
    loop {
        let target = match config.attack {
            Attack::SlowlorisWs => config.ws_addr,
            Attack::SlowlorisAdmin => config.admin_addr,
            _ => config.addr,
        };
        let source = source(config.sources, i);
        let opened = Instant::now();
        let Ok(mut stream) = connect(target, source).await else {
            counters.connect_failed.fetch_add(1, Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        counters.opened.fetch_add(1, Relaxed);
        let outcome = match config.attack {
            Attack::SlowlorisTcp => {
                trickle(&mut stream, &hello_bytes(""), false, config, counters).await
            }
            Attack::SlowlorisWs => {
                let head = format!(
                    "GET / HTTP/1.1\r\nHost: {target}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                );
                trickle(&mut stream, head.as_bytes(), false, config, counters).await
            }
            Attack::SlowlorisAdmin => {
                let head = b"GET /metrics HTTP/1.1\r\nHost: gateway\r\nX-Slow: ";
                trickle(&mut stream, head, true, config, counters).await
            }
            Attack::Flood => hold_welcomed(&mut stream, counters).await,
            Attack::RateFlood => {
                let outcome = hello(&mut stream, "", counters).await;
                if outcome.is_ok() {
                    // Welcomed: close at once and connect again.
                    continue;
                }
                outcome
            }
            Attack::Idle => {
                let mut buf = [0u8; 64];
                let _ = stream.read(&mut buf).await;
                counters.closed.fetch_add(1, Relaxed);
                let open_ms = opened.elapsed().as_millis() as u64;
                counters.longest_open_ms.fetch_max(open_ms, Relaxed);
                // One wave: stay out until stopped.
                std::future::pending::<()>().await;
                return;
            }
            Attack::NeverReads if i == 0 => publish_steadily(&mut stream, counters).await,
            Attack::NeverReads if i % 2 == 1 => {
                subscribe_and_never_read(&mut stream, counters).await
            }
            Attack::NeverReads => call_and_never_read(&mut stream, counters).await,
            Attack::Oversized => oversized_calls(&mut stream, i, counters).await,
            Attack::BadTokens => {
                let token = format!(
                    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjo5OTk5OTk5OTk5fQ.{:0>43}",
                    i
                );
                hello(&mut stream, &token, counters).await
            }
            Attack::None => unreachable!("the control opens no connection"),
        };
        if outcome.is_err() {
            counters.closed.fetch_add(1, Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Source address `i` of `sources` loopback addresses (127.0.1.0/16 onwards).
fn source(sources: u32, i: usize) -> Option<IpAddr> {
    if sources == 0 {
        return None;
    }
    let n = 256 + (i as u32 % sources);
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, (n >> 8) as u8, n as u8)))
}

async fn connect(target: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else { return TcpStream::connect(target).await };
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

fn hello_bytes(token: &str) -> Vec<u8> {
    let hello = Frame::Hello(Hello {
        capabilities: 0,
        version: VERSION,
        max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        client_name: "loadgen-attack".into(),
        token: Bytes::from(token.to_owned()),
    });
    let mut out = BytesMut::new();
    hello.encode(&mut out, DEFAULT_MAX_FRAME_SIZE).expect("HELLO encodes");
    out.to_vec()
}

/// Sends `bytes` one at a time, `config.trickle` apart, all but the last (or cycling the rest
/// forever when `forever`), until the gateway closes the connection. Always an `Err`: the end.
async fn trickle(
    stream: &mut TcpStream,
    bytes: &[u8],
    forever: bool,
    config: &AttackConfig,
    counters: &Counters,
) -> Result<(), LoadError> {
    let (mut reader, mut writer) = stream.split();
    let closed = async {
        let mut buf = [0u8; 512];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let send = async {
        let body = &bytes[..bytes.len() - 1];
        let mut at = 0;
        loop {
            if at == body.len() {
                if !forever {
                    std::future::pending::<()>().await;
                }
                at = body.len() - 8;
            }
            if writer.write_all(&body[at..at + 1]).await.is_err() {
                return;
            }
            counters.sent.fetch_add(1, Relaxed);
            at += 1;
            tokio::time::sleep(config.trickle).await;
        }
    };
    tokio::select! {
        () = closed => {}
        () = send => {}
    }
    Err(LoadError::Closed("by the gateway".into()))
}

/// Reads the next frame, or `Err` when the connection closes.
pub(crate) async fn next_frame(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Frame, LoadError> {
    loop {
        match decode(buf, u32::MAX)? {
            Decoded::Frame(frame) => return Ok(frame),
            Decoded::Skipped { .. } => {}
            Decoded::Incomplete { .. } => {
                if stream.read_buf(buf).await? == 0 {
                    return Err(LoadError::Closed("by the gateway".into()));
                }
            }
        }
    }
}

/// HELLO with `token`: `Ok` when welcomed, the GOAWAY counted otherwise.
async fn hello(stream: &mut TcpStream, token: &str, counters: &Counters) -> Result<(), LoadError> {
    let bytes = hello_bytes(token);
    stream.write_all(&bytes).await?;
    counters.sent.fetch_add(bytes.len() as u64, Relaxed);
    let mut buf = BytesMut::new();
    match next_frame(stream, &mut buf).await? {
        Frame::Welcome(_) => {
            counters.welcomed.fetch_add(1, Relaxed);
            Ok(())
        }
        Frame::Goaway(goaway) => {
            counters.goaway(&goaway.reason.to_string());
            Err(LoadError::Handshake(goaway.message))
        }
        other => Err(LoadError::Handshake(format!("{:?}", other.frame_type()))),
    }
}

/// A welcomed connection held open (answering pings) until the gateway closes it.
async fn hold_welcomed(stream: &mut TcpStream, counters: &Counters) -> Result<(), LoadError> {
    hello(stream, "", counters).await?;
    let mut buf = BytesMut::new();
    loop {
        match next_frame(stream, &mut buf).await? {
            Frame::Ping { data } => {
                let mut out = BytesMut::new();
                Frame::Pong { data }.encode(&mut out, u32::MAX).map_err(LoadError::encode)?;
                stream.write_all(&out).await?;
            }
            Frame::Goaway(goaway) => counters.goaway(&goaway.reason.to_string()),
            _ => {}
        }
    }
}

async fn send(stream: &mut TcpStream, frame: &Frame, counters: &Counters) -> Result<(), LoadError> {
    let mut out = BytesMut::new();
    frame.encode(&mut out, u32::MAX).map_err(LoadError::encode)?;
    stream.write_all(&out).await?;
    counters.sent.fetch_add(out.len() as u64, Relaxed);
    Ok(())
}

/// Subscribes to `broadcast` and never reads again: the gateway's send queue for it fills.
async fn subscribe_and_never_read(
    stream: &mut TcpStream,
    counters: &Counters,
) -> Result<(), LoadError> {
    hello(stream, "", counters).await?;
    let topic_id = crate::fanout::topic_id(crate::fanout::TOPIC_NAME)?;
    let subscribe = Frame::Subscribe(Subscribe {
        subscription_id: 1,
        topic_id,
        all_keys: true,
        key: String::new(),
    });
    send(stream, &subscribe, counters).await?;
    // Never read. The gateway's close shows only as the connection's end, which this client
    // does not look for: it waits until stopped.
    std::future::pending::<()>().await;
    Ok(())
}

/// Publishes 4 KiB events on `broadcast`, 2,000 a second (unacknowledged), reading and dropping
/// whatever the gateway sends.
async fn publish_steadily(stream: &mut TcpStream, counters: &Counters) -> Result<(), LoadError> {
    hello(stream, "", counters).await?;
    let topic_id = crate::fanout::topic_id(crate::fanout::TOPIC_NAME)?;
    let payload = blob(&[0x5a; 4096]);
    let (mut reader, mut writer) = stream.split();
    let drain = async {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let publish = async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut batch = BytesMut::new();
        loop {
            tick.tick().await;
            for _ in 0..20 {
                // Request id 0: no acknowledgement wanted.
                let publish = Frame::Publish(Publish {
                    request_id: 0,
                    topic_id,
                    key: String::new(),
                    payload: payload.clone(),
                });
                publish.encode(&mut batch, u32::MAX).expect("PUBLISH encodes");
            }
            if writer.write_all(&batch).await.is_err() {
                return;
            }
            counters.sent.fetch_add(batch.len() as u64, Relaxed);
            batch.clear();
        }
    };
    tokio::select! {
        () = drain => {}
        () = publish => {}
    }
    Err(LoadError::Closed("by the gateway".into()))
}

/// Sends echo calls of 16 KiB, one after another, and never reads an answer: the gateway's
/// answers pile up until its bound for the connection.
async fn call_and_never_read(stream: &mut TcpStream, counters: &Counters) -> Result<(), LoadError> {
    hello(stream, "", counters).await?;
    let payload = blob(&[0x33; 16 * 1024]);
    for request_id in 1u32.. {
        let request = Frame::Request(Request {
            request_id,
            method_id: echo::examples::echo::echo::method::ECHO,
            timeout_ms: 60_000,
            fire_and_forget: false,
            payload: payload.clone(),
        });
        send(stream, &request, counters).await?;
    }
    Ok(())
}

/// An echo `Blob` holding `data`.
pub(crate) fn blob(data: &[u8]) -> Bytes {
    let mut fbb = gateway_core::flatbuffers::FlatBufferBuilder::with_capacity(data.len() + 64);
    let data = fbb.create_vector(data);
    let blob = echo::examples::echo::Blob::create(
        &mut fbb,
        &echo::examples::echo::BlobArgs { data: Some(data) },
    );
    fbb.finish(blob, None);
    Bytes::copy_from_slice(fbb.finished_data())
}

/// In turn: a frame whose length prefix announces 1 GiB (past any maximum: the gateway must
/// refuse it from the prefix, without waiting for the bytes), then echo calls whose
/// FlatBuffers lie (a vector claiming 2^31 bytes, a root offset past the end, a vtable outside
/// the buffer, 10,000 bytes of offsets to offsets). Each answer is counted.
async fn oversized_calls(
    stream: &mut TcpStream,
    i: usize,
    counters: &Counters,
) -> Result<(), LoadError> {
    hello(stream, "", counters).await?;
    if i % 2 == 0 {
        let mut prefix = (1u32 << 30).to_le_bytes().to_vec();
        prefix.extend_from_slice(&[0x05, 0x00, 0, 0, 0, 1]);
        stream.write_all(&prefix).await?;
        counters.sent.fetch_add(prefix.len() as u64, Relaxed);
        let mut buf = BytesMut::new();
        loop {
            if let Frame::Goaway(goaway) = next_frame(stream, &mut buf).await? {
                counters.goaway(&goaway.reason.to_string());
            }
        }
    }
    let mut lying_vector = blob(b"small").to_vec();
    let len_at = lying_vector.len() - 12;
    lying_vector[len_at..len_at + 4].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    let past_the_end = Bytes::from_static(&[0xff, 0xff, 0x00, 0x00, 0, 0, 0, 0]);
    let bad_vtable = Bytes::from_static(&[8, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x80]);
    let mut nested = Vec::with_capacity(10_004);
    for _ in 0..2_501 {
        nested.extend_from_slice(&4u32.to_le_bytes());
    }
    let payloads = [Bytes::from(lying_vector), past_the_end, bad_vtable, Bytes::from(nested)];
    let mut buf = BytesMut::new();
    for n in (i..).map(|n| n % payloads.len()) {
        let request = Frame::Request(Request {
            request_id: 1,
            method_id: echo::examples::echo::echo::method::ECHO,
            timeout_ms: 5_000,
            fire_and_forget: false,
            payload: payloads[n].clone(),
        });
        send(stream, &request, counters).await?;
        loop {
            match next_frame(stream, &mut buf).await? {
                Frame::Response(_) => counters.answered.fetch_add(1, Relaxed),
                Frame::Error(_) => counters.refused_calls.fetch_add(1, Relaxed),
                Frame::Goaway(goaway) => {
                    counters.goaway(&goaway.reason.to_string());
                    continue;
                }
                _ => continue,
            };
            break;
        }
    }
    Ok(())
}

/// The well-behaved clients: `connections` connections, each calling the echo method with a
/// 64-byte payload, waiting for the answer, then `think` before the next call (a light, steady
/// load, so that the figure is the latency the attack adds, not the clients' own contention).
#[derive(Debug)]
pub struct Victims {
    connections: Vec<TcpStream>,
    think: Duration,
}

impl Victims {
    /// Opens and welcomes the connections.
    ///
    /// # Errors
    ///
    /// The first connection that fails.
    pub async fn open(
        addr: SocketAddr,
        connections: usize,
        think: Duration,
    ) -> Result<Victims, LoadError> {
        let counters = Counters::default();
        let mut open = Vec::with_capacity(connections);
        for _ in 0..connections {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            hello(&mut stream, "", &counters).await?;
            open.push(stream);
        }
        Ok(Victims { connections: open, think })
    }

    /// Calls for `duration`; every call's latency and every failure (an ERROR's status, a
    /// deadline of 5 s missed, the connection lost) in the tally.
    pub async fn measure(&mut self, duration: Duration) -> crate::Tally {
        let payload = blob(&[0x42; 64]);
        let until = Instant::now() + duration;
        let think = self.think;
        let tallies = futures::future::join_all(self.connections.iter_mut().map(|stream| {
            let payload = payload.clone();
            async move {
                let mut tally = crate::Tally::new();
                let mut buf = BytesMut::new();
                let mut id = 0u32;
                while Instant::now() < until {
                    id = id.wrapping_add(1);
                    let request = Frame::Request(Request {
                        request_id: id,
                        method_id: echo::examples::echo::echo::method::ECHO,
                        timeout_ms: 5_000,
                        fire_and_forget: false,
                        payload: payload.clone(),
                    });
                    let mut out = BytesMut::new();
                    request.encode(&mut out, u32::MAX).expect("REQUEST encodes");
                    let sent = Instant::now();
                    if stream.write_all(&out).await.is_err() {
                        tally.record_error("connection_lost");
                        return tally;
                    }
                    let answer = tokio::time::timeout(Duration::from_secs(6), async {
                        loop {
                            match next_frame(stream, &mut buf).await {
                                Ok(Frame::Response(r)) if r.request_id == id => return Ok(()),
                                Ok(Frame::Error(e)) if e.request_id == id => {
                                    return Err(e.status.code().name());
                                }
                                Ok(Frame::Ping { data }) => {
                                    let mut out = BytesMut::new();
                                    let _ = Frame::Pong { data }.encode(&mut out, u32::MAX);
                                    let _ = stream.write_all(&out).await;
                                }
                                Ok(_) => {}
                                Err(_) => return Err("connection_lost"),
                            }
                        }
                    })
                    .await;
                    match answer {
                        Ok(Ok(())) => tally.record_ok(sent.elapsed()),
                        Ok(Err(status)) => tally.record_error(status),
                        Err(_) => tally.record_error("deadline_missed"),
                    }
                    tokio::time::sleep(think).await;
                }
                tally
            }
        }))
        .await;
        let mut all = crate::Tally::new();
        for tally in &tallies {
            all.merge(tally);
        }
        all
    }
}
