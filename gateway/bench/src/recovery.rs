//! The recovery benchmark (`loadgen recovery`): how long a client that comes back takes to
//! receive the N events it missed, beside the time the same N events take to reach it live.
//!
//! Each round, on `examples.echo.Echo.journal` (a topic with history):
//!
//! 1. **Live, the baseline.** A subscriber that speaks positions (HELLO with `HISTORY`)
//!    subscribes; a publisher publishes N stamped events, `window` acknowledged publishes in
//!    flight; the time from the first publish to the N-th EVENT_AT received is the live time.
//! 2. **Away.** The subscriber closes its connection; the publisher publishes N more.
//! 3. **Recovery.** A new connection sends SUBSCRIBE_FROM with the last offset received; the
//!    time from sending it to the N-th EVENT_AT received is the recovery time. Every event must
//!    come, in order, once: the round fails otherwise.
//!
//! Everything is raw frames over TCP ([`gateway_protocol`]), as the other modes.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use gateway_core::Message;
use gateway_protocol::{
    CAPABILITY_HISTORY, DEFAULT_MAX_FRAME_SIZE, Frame, FrameCodec, Hello, Position, Publish,
    Subscribe, SubscribeFrom, VERSION,
};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_util::codec::Framed;

use crate::error::LoadError;

/// The topic: `broadcast` with a history.
pub const TOPIC_NAME: &str = "examples.echo.Echo.journal";

/// How long any one frame may take to come.
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// What a run does.
#[derive(Clone, Debug)]
pub struct RecoveryConfig {
    pub addr: SocketAddr,
    /// Events missed (and, first, delivered live) per round.
    pub events: usize,
    /// Bytes of each event's data.
    pub payload: usize,
    /// Acknowledged publishes in flight.
    pub window: usize,
    pub rounds: usize,
}

/// One round's times, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Round {
    pub live_ms: f64,
    pub recovery_ms: f64,
}

/// What a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct RecoverySummary {
    pub events: usize,
    pub payload: usize,
    pub rounds: Vec<Round>,
    /// Medians over the rounds.
    pub live_ms: f64,
    pub recovery_ms: f64,
}

type Conn = Framed<TcpStream, FrameCodec>;

async fn connect(addr: SocketAddr, capabilities: u32) -> Result<Conn, LoadError> {
    let stream =
        TcpStream::connect(addr).await.map_err(|source| LoadError::Connect { addr, source })?;
    stream.set_nodelay(true).map_err(|source| LoadError::Connect { addr, source })?;
    let mut conn = Framed::new(stream, FrameCodec::new(DEFAULT_MAX_FRAME_SIZE));
    let hello = Hello {
        version: VERSION,
        max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        client_name: "loadgen-recovery".into(),
        token: Bytes::new(),
        capabilities,
    };
    send(&mut conn, Frame::Hello(hello)).await?;
    match recv(&mut conn).await? {
        Frame::Welcome(welcome) if welcome.capabilities & CAPABILITY_HISTORY != 0 => {
            conn.codec_mut().set_peer_max_frame_size(welcome.max_frame_size);
            Ok(conn)
        }
        Frame::Welcome(_) => Err(LoadError::Handshake("the gateway keeps no history".into())),
        other => Err(LoadError::Handshake(format!("expected WELCOME, got {other:?}"))),
    }
}

async fn send(conn: &mut Conn, frame: Frame) -> Result<(), LoadError> {
    conn.send(frame).await.map_err(|e| LoadError::Protocol(e.to_string()))
}

async fn recv(conn: &mut Conn) -> Result<Frame, LoadError> {
    match timeout(FRAME_TIMEOUT, conn.next()).await {
        Ok(Some(Ok(frame))) => Ok(frame),
        Ok(Some(Err(e))) => Err(LoadError::Protocol(e.to_string())),
        Ok(None) => Err(LoadError::Protocol("the gateway closed the connection".into())),
        Err(_) => Err(LoadError::Protocol(format!("no frame within {FRAME_TIMEOUT:?}"))),
    }
}

/// The journal's id, from the Echo service's descriptor.
fn topic_id() -> Result<u32, LoadError> {
    echo::DESCRIPTOR
        .topics
        .iter()
        .find(|topic| topic.name == TOPIC_NAME)
        .map(|topic| topic.id)
        .ok_or_else(|| LoadError::Config(format!("the Echo service has no topic `{TOPIC_NAME}`")))
}

/// Publishes `count` events numbered from `first`, `window` in flight, each acknowledged.
async fn publish(
    conn: &mut Conn,
    topic_id: u32,
    first: u64,
    count: usize,
    payload: usize,
    window: usize,
) -> Result<(), LoadError> {
    let (mut sent, mut acked) = (0usize, 0usize);
    while acked < count {
        while sent < count && sent - acked < window {
            let mut data = vec![0u8; payload.max(8)];
            data[..8].copy_from_slice(&(first + sent as u64).to_le_bytes());
            let event = Message::pack(&echo::BlobT { data: Some(data) }).into_bytes();
            let request_id = (sent % window) as u32 + 1;
            let publish = Publish { request_id, topic_id, key: String::new(), payload: event };
            conn.feed(Frame::Publish(publish))
                .await
                .map_err(|e| LoadError::Protocol(e.to_string()))?;
            sent += 1;
        }
        conn.flush().await.map_err(|e| LoadError::Protocol(e.to_string()))?;
        match recv(conn).await? {
            Frame::Response(_) => acked += 1,
            other => return Err(LoadError::Protocol(format!("a publish was answered {other:?}"))),
        }
    }
    Ok(())
}

/// The number an event carries.
fn number(payload: &Bytes) -> Result<u64, LoadError> {
    let blob = Message::<echo::BlobT>::from_bytes(payload.clone())
        .map_err(|e| LoadError::Protocol(format!("an event is not a Blob: {e}")))?;
    let data = blob.get().data().map(|d| d.bytes().to_vec()).unwrap_or_default();
    let bytes: [u8; 8] = data.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default();
    Ok(u64::from_le_bytes(bytes))
}

/// Reads `count` EVENT_AT frames, which must carry `first..first + count` in order; returns the
/// last offset.
async fn receive(conn: &mut Conn, first: u64, count: usize) -> Result<u64, LoadError> {
    let mut offset = 0;
    for want in first..first + count as u64 {
        match recv(conn).await? {
            Frame::EventAt(event) => {
                let got = number(&event.payload)?;
                if got != want {
                    return Err(LoadError::Protocol(format!(
                        "event {got} came where {want} was due"
                    )));
                }
                offset = event.offset;
            }
            other => return Err(LoadError::Protocol(format!("expected EVENT_AT, got {other:?}"))),
        }
    }
    Ok(offset)
}

/// Runs `config.rounds` rounds.
///
/// # Errors
///
/// The first failure: connecting, a refusal, an event missing or out of order.
pub async fn run(config: &RecoveryConfig) -> Result<RecoverySummary, LoadError> {
    let topic_id = topic_id()?;
    let mut publisher = connect(config.addr, CAPABILITY_HISTORY).await?;
    let mut rounds = Vec::new();
    let mut next = 0u64;
    for _ in 0..config.rounds {
        let mut subscriber = connect(config.addr, CAPABILITY_HISTORY).await?;
        let subscribe =
            Subscribe { subscription_id: 1, topic_id, all_keys: false, key: String::new() };
        send(&mut subscriber, Frame::Subscribe(subscribe)).await?;
        let epoch = match recv(&mut subscriber).await? {
            Frame::SubscribedAt(at) => at.position.epoch,
            other => {
                return Err(LoadError::Protocol(format!("expected SUBSCRIBED_AT, got {other:?}")));
            }
        };
        let started = Instant::now();
        let (live, _) = tokio::join!(
            receive(&mut subscriber, next, config.events),
            publish(&mut publisher, topic_id, next, config.events, config.payload, config.window),
        );
        let last = live?;
        let live_time = started.elapsed();
        next += config.events as u64;
        drop(subscriber);

        publish(&mut publisher, topic_id, next, config.events, config.payload, config.window)
            .await?;
        let mut back = connect(config.addr, CAPABILITY_HISTORY).await?;
        let position = Position { epoch, offset: last };
        let from = SubscribeFrom {
            subscription_id: 1,
            topic_id,
            all_keys: false,
            key: String::new(),
            position,
        };
        let started = Instant::now();
        send(&mut back, Frame::SubscribeFrom(from)).await?;
        match recv(&mut back).await? {
            Frame::SubscribedAt(at) if at.recovery.is_recovered() => {}
            other => return Err(LoadError::Protocol(format!("not recovered: {other:?}"))),
        }
        receive(&mut back, next, config.events).await?;
        let recovery_time = started.elapsed();
        next += config.events as u64;
        rounds.push(Round {
            live_ms: live_time.as_secs_f64() * 1e3,
            recovery_ms: recovery_time.as_secs_f64() * 1e3,
        });
    }
    let median = |pick: fn(&Round) -> f64| {
        let mut all: Vec<f64> = rounds.iter().map(pick).collect();
        all.sort_by(f64::total_cmp);
        all.get(all.len() / 2).copied().unwrap_or(0.0)
    };
    Ok(RecoverySummary {
        events: config.events,
        payload: config.payload,
        live_ms: median(|r| r.live_ms),
        recovery_ms: median(|r| r.recovery_ms),
        rounds,
    })
}
