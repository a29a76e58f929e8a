//! The fan-out benchmark: one publisher, N subscribers on one topic, publish-to-deliver latency
//! and deliveries per second.
//!
//! A run opens the N subscriber connections first (HELLO, SUBSCRIBE, SUBSCRIBED), then one
//! publisher connection, which publishes stamped events (sequence number and send time, see
//! `stamp`) to `examples.echo.Echo.broadcast` at a target rate or as fast as acknowledgements
//! allow, through a warm-up and then the measured period. Events sent during the measured period
//! are the ones counted: their deliveries and latencies, however late they arrive, within a drain
//! period after publishing stops. The same frames go to a gateway and to `raw-fanout`, the
//! baseline (see [`crate::raw_fanout`]).
//!
//! # Layout
//!
//! - [`config`]: [`FanoutConfig`] and [`Pace`].
//! - `publisher`: the publishing connection, open or closed loop.
//! - `subscribers`: opening the subscribers and reading them, a few tasks for all of them.
//! - `stamp`: what an event's payload carries.
//! - [`summary`]: [`FanoutSummary`], the report.

pub mod config;
mod publisher;
pub(crate) mod stamp;
mod subscribers;
pub mod summary;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gateway_protocol::{Event, Frame, LENGTH_PREFIX_SIZE};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

pub use config::{FanoutConfig, MIN_EVENT_PAYLOAD, Pace};
pub use summary::FanoutSummary;

use crate::connection::{Window, hello};
use crate::error::LoadError;
use publisher::Publisher;

/// The topic runs publish to unless told otherwise: `examples.echo.Echo.broadcast`, unkeyed,
/// `drop_oldest`.
pub const TOPIC_NAME: &str = "examples.echo.Echo.broadcast";

/// How long connecting and the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection after HELLO and WELCOME.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) stream: TcpStream,
    /// Bytes read past the WELCOME.
    pub(crate) read_buf: BytesMut,
    /// The largest frame the server accepts.
    pub(crate) max_frame_size: u32,
}

impl Opened {
    /// Connects to `addr` and says HELLO (the gateway and the raw server both answer WELCOME).
    async fn open(addr: SocketAddr, read_buffer: usize) -> Result<Opened, LoadError> {
        let connect = |source| LoadError::Connect { addr, source };
        let mut stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| connect(std::io::ErrorKind::TimedOut.into()))?
            .map_err(connect)?;
        stream.set_nodelay(true).map_err(connect)?;
        let mut read_buf = BytesMut::with_capacity(read_buffer);
        let welcome = timeout(CONNECT_TIMEOUT, hello(&mut stream, &mut read_buf))
            .await
            .map_err(|_| LoadError::Handshake("no WELCOME within 10 s".into()))??;
        Ok(Opened { stream, read_buf, max_frame_size: welcome.max_frame_size })
    }
}

/// The id of the Echo service's topic `name`, from its generated descriptor.
///
/// # Errors
///
/// [`LoadError::Config`] if the descriptor has no such topic (the service file changed).
pub fn topic_id(name: &str) -> Result<u32, LoadError> {
    echo::DESCRIPTOR
        .topics
        .iter()
        .find(|topic| topic.name == name)
        .map(|topic| topic.id)
        .ok_or_else(|| LoadError::Config(format!("the Echo service has no topic `{name}`")))
}

/// Runs the fan-out `config` describes and summarises what was measured.
///
/// # Errors
///
/// An invalid configuration, or the first failure of any connection (see [`LoadError`]).
pub async fn run(config: &FanoutConfig) -> Result<FanoutSummary, LoadError> {
    config.validate().map_err(LoadError::Config)?;
    let topic_id = topic_id(config.topic)?;
    let epoch = Instant::now();
    let subscribers =
        subscribers::open(config.addr, topic_id, config.subscribers, config.connect_batch).await?;
    let publisher = Publisher {
        opened: Opened::open(config.addr, 64 * 1024).await?,
        topic_id,
        payload: config.payload,
    };
    let start = Instant::now() + config.warmup;
    let window = Window { epoch, start, end: start + config.duration };
    let deadline = window.end + config.drain;

    let (last_tx, last_rx) = watch::channel(None);
    let mut readers = JoinSet::new();
    let per_task = config.subscribers.div_ceil(config.reader_tasks);
    let mut subscribers = subscribers.into_iter();
    loop {
        let group: Vec<_> = subscribers.by_ref().take(per_task).collect();
        if group.is_empty() {
            break;
        }
        readers.spawn(subscribers::read_group(group, window, last_rx.clone(), deadline));
    }
    let published = publisher.run(config.pace, window).await;
    // Subscribers wait for the last event, or for the deadline if publishing failed.
    let _ = last_tx.send(Some(published.as_ref().map_or(0, |p| p.last_seq)));
    let published = published?;

    let mut seen = subscribers::Seen::default();
    while let Some(joined) = readers.join_next().await {
        let group = joined.map_err(|e| LoadError::Task(e.to_string()))?;
        seen.merge(&group?);
    }
    Ok(FanoutSummary::new(config, event_frame_bytes(config.payload)?, &published, &seen))
}

/// The size of one EVENT on the wire for a `payload`-byte event, length prefix included.
fn event_frame_bytes(payload: usize) -> Result<usize, LoadError> {
    let event = Frame::Event(Event {
        subscription_id: subscribers::SUBSCRIPTION_ID,
        key: String::new(),
        payload: Bytes::from(vec![0; payload]),
    });
    let len = event.encoded_len().map_err(LoadError::encode)?;
    Ok(LENGTH_PREFIX_SIZE + len)
}
