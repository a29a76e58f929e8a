//! The subscribers: N connections, each subscribed once to the topic, read by a few tasks.
//!
//! Connections are opened in parallel batches (`connect_batch` at a time), each saying HELLO,
//! then SUBSCRIBE, then waiting for SUBSCRIBED, so the run starts with every subscription in
//! place. They are then spread over `reader_tasks` tasks rather than one task each: a task keeps
//! one HDR histogram (about 220 KB), which 10,000 tasks could not afford, and polls its sockets
//! through a `FuturesUnordered`, which wakes only the sockets that have something to read.
//!
//! A subscriber is done when it has received the publisher's last event (or a later one): the
//! server keeps order per subscription, and the lag policy drops the oldest events, never the
//! newest, so the last event reaches every subscriber that is still connected.

use std::time::Duration;

use bytes::BytesMut;
use futures::stream::{FuturesUnordered, StreamExt, TryStreamExt};
use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, Decoded, Frame, Subscribe, decode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

use crate::connection::{Window, nanos_since};
use crate::error::LoadError;
use crate::fanout::Opened;
use crate::fanout::stamp::Stamp;
use crate::summary::Tally;

/// The id every subscriber gives its one subscription. The same on every connection, which lets
/// the raw server encode each EVENT once for all of them.
pub(crate) const SUBSCRIPTION_ID: u32 = 1;

/// How long subscribing may take, once connected.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A subscriber's read buffer to start with: a few events; it grows if a burst needs more.
const READ_BUFFER: usize = 4 * 1024;

/// What a group of subscribers saw.
#[derive(Clone, Debug, Default)]
pub(crate) struct Seen {
    /// Latencies of the events sent during the measured period, one per delivery.
    pub(crate) tally: Tally,
    /// Events that arrived during the measured period, whenever they were sent: the rate at
    /// which the server delivers, even when it delivers late.
    pub(crate) arrived: u64,
    /// The sum of the MISSED counts received (whole run).
    pub(crate) missed: u64,
    /// Holes in the sequence numbers a subscriber received: events skipped between two it got
    /// (whole run). A server that reports every drop has `gaps == missed`.
    pub(crate) gaps: u64,
    /// Events after a subscriber's last received one, up to the publisher's last: still queued
    /// (or lost) when the drain period ended.
    pub(crate) tail: u64,
    /// Events that came with a sequence number lower than one already received.
    pub(crate) out_of_order: u64,
    /// Subscribers that had not received the last event when the drain period ended.
    pub(crate) unfinished: u64,
}

impl Seen {
    /// Adds another group's counts to these.
    pub(crate) fn merge(&mut self, other: &Seen) {
        self.tally.merge(&other.tally);
        self.arrived += other.arrived;
        self.missed += other.missed;
        self.gaps += other.gaps;
        self.tail += other.tail;
        self.out_of_order += other.out_of_order;
        self.unfinished += other.unfinished;
    }
}

/// One subscribed connection.
#[derive(Debug)]
pub(crate) struct Subscriber {
    stream: TcpStream,
    buf: BytesMut,
    /// Its position in the group that reads it, where its highest sequence number is kept.
    index: usize,
}

/// Opens `count` subscribers to `topic_id`, `batch` at a time.
///
/// # Errors
///
/// The first connection that fails to connect, handshake or subscribe.
pub(crate) async fn open(
    addr: std::net::SocketAddr,
    topic_id: u32,
    count: usize,
    batch: usize,
) -> Result<Vec<Subscriber>, LoadError> {
    futures::stream::iter(0..count)
        .map(|_| subscribe(addr, topic_id))
        .buffer_unordered(batch)
        .try_collect()
        .await
}

async fn subscribe(addr: std::net::SocketAddr, topic_id: u32) -> Result<Subscriber, LoadError> {
    let Opened { mut stream, read_buf: mut buf, .. } = Opened::open(addr, READ_BUFFER).await?;
    let subscribe = Frame::Subscribe(Subscribe {
        subscription_id: SUBSCRIPTION_ID,
        topic_id,
        all_keys: false,
        key: String::new(),
    });
    let mut out = BytesMut::new();
    subscribe.encode(&mut out, DEFAULT_MAX_FRAME_SIZE).map_err(LoadError::encode)?;
    stream.write_all(&out).await?;
    let subscribed = async {
        loop {
            match decode(&mut buf, DEFAULT_MAX_FRAME_SIZE)? {
                Decoded::Frame(Frame::Subscribed { subscription_id: SUBSCRIPTION_ID }) => {
                    return Ok(());
                }
                Decoded::Frame(Frame::SubscriptionEnded(ended)) => {
                    return Err(LoadError::Handshake(format!(
                        "SUBSCRIBE refused: {}",
                        ended.status
                    )));
                }
                Decoded::Frame(Frame::Ping { .. } | Frame::Pong { .. })
                | Decoded::Skipped { .. } => {}
                Decoded::Frame(other) => {
                    return Err(LoadError::Handshake(format!(
                        "expected SUBSCRIBED, got {}",
                        other.frame_type().name()
                    )));
                }
                Decoded::Incomplete { .. } => {
                    if stream.read_buf(&mut buf).await? == 0 {
                        return Err(LoadError::Closed("while subscribing".into()));
                    }
                }
            }
        }
    };
    timeout(SUBSCRIBE_TIMEOUT, subscribed)
        .await
        .map_err(|_| LoadError::Handshake("no SUBSCRIBED within 10 s".into()))??;
    // Numbered by the group that reads it.
    Ok(Subscriber { stream, buf, index: 0 })
}

/// Reads a group of subscribers until each has received the publisher's last event (whose
/// sequence number `last` announces once publishing is over) or `deadline` passes.
///
/// # Errors
///
/// A subscriber's connection failing or closing, or a frame a subscriber cannot get.
pub(crate) async fn read_group(
    subscribers: Vec<Subscriber>,
    window: Window,
    mut last: watch::Receiver<Option<u64>>,
    deadline: Instant,
) -> Result<Seen, LoadError> {
    let mut group = Group {
        highest: vec![0; subscribers.len()],
        measured: (nanos_since(window.epoch, window.start), nanos_since(window.epoch, window.end)),
        epoch: window.epoch,
        seen: Seen::default(),
    };
    let mut reading: FuturesUnordered<_> = subscribers
        .into_iter()
        .enumerate()
        .map(|(index, subscriber)| read_more(Subscriber { index, ..subscriber }))
        .collect();
    let mut last_seq = None;
    let mut done = 0;
    let total = group.highest.len();
    loop {
        if let Some(last_seq) = last_seq
            && done == total
        {
            return Ok(group.finish(last_seq));
        }
        tokio::select! {
            Some((mut subscriber, read)) = reading.next() => {
                let now = Instant::now();
                if read? == 0 {
                    return Err(LoadError::Closed("on a subscriber".into()));
                }
                let before = group.highest[subscriber.index];
                group.take(&mut subscriber, now)?;
                match last_seq {
                    // Counted once, when it gets there; a subscriber that is there is not read
                    // again (its socket closes with it).
                    Some(last_seq) if group.highest[subscriber.index] >= last_seq => {
                        if before < last_seq {
                            done += 1;
                        }
                    }
                    _ => reading.push(read_more(subscriber)),
                }
            }
            changed = last.changed(), if last_seq.is_none() => {
                if changed.is_err() {
                    return Err(LoadError::Task("the publisher ended without a count".into()));
                }
                if let Some(seq) = *last.borrow_and_update() {
                    last_seq = Some(seq);
                    // Those already there stay in `reading`, never to be woken: counted now.
                    done = group.highest.iter().filter(|&&h| h >= seq).count();
                }
            }
            () = sleep_until(deadline) => return Ok(group.finish(last_seq.unwrap_or(0))),
        }
    }
}

/// Waits for more bytes on `subscriber`'s socket and gives it back with the read's outcome.
async fn read_more(mut subscriber: Subscriber) -> (Subscriber, std::io::Result<usize>) {
    let read = subscriber.stream.read_buf(&mut subscriber.buf).await;
    (subscriber, read)
}

/// A reading task's state.
struct Group {
    /// The highest sequence number each subscriber received.
    highest: Vec<u64>,
    /// The measured period, in nanoseconds after the epoch: events sent in it are counted, and
    /// so are the events that arrive in it.
    measured: (u64, u64),
    epoch: Instant,
    seen: Seen,
}

impl Group {
    /// Takes every complete frame in `subscriber`'s buffer, read at `now`.
    fn take(&mut self, subscriber: &mut Subscriber, now: Instant) -> Result<(), LoadError> {
        let now_ns = nanos_since(self.epoch, now);
        loop {
            match decode(&mut subscriber.buf, DEFAULT_MAX_FRAME_SIZE)? {
                Decoded::Frame(Frame::Event(event)) => {
                    let stamp = Stamp::read(&event.payload).ok_or_else(|| {
                        LoadError::Protocol(format!(
                            "an event of {} bytes carries no stamp",
                            event.payload.len()
                        ))
                    })?;
                    let highest = &mut self.highest[subscriber.index];
                    if stamp.seq <= *highest {
                        self.seen.out_of_order += 1;
                    } else {
                        self.seen.gaps += stamp.seq - *highest - 1;
                        *highest = stamp.seq;
                    }
                    if (self.measured.0..self.measured.1).contains(&now_ns) {
                        self.seen.arrived += 1;
                    }
                    if (self.measured.0..self.measured.1).contains(&stamp.sent_ns) {
                        let latency = now_ns.saturating_sub(stamp.sent_ns);
                        self.seen.tally.record_ok(Duration::from_nanos(latency));
                    }
                }
                Decoded::Frame(Frame::Missed { count, .. }) => self.seen.missed += u64::from(count),
                Decoded::Frame(Frame::Ping { .. } | Frame::Pong { .. })
                | Decoded::Skipped { .. } => {}
                Decoded::Frame(Frame::SubscriptionEnded(ended)) => {
                    return Err(LoadError::Closed(format!("subscription ended: {}", ended.status)));
                }
                Decoded::Frame(Frame::Goaway(goaway)) => {
                    return Err(LoadError::Closed(format!(
                        "GOAWAY `{}` to a subscriber: {}",
                        goaway.reason, goaway.message
                    )));
                }
                Decoded::Frame(other) => {
                    return Err(LoadError::Protocol(format!(
                        "unexpected {} frame on a subscriber",
                        other.frame_type().name()
                    )));
                }
                Decoded::Incomplete { .. } => return Ok(()),
            }
        }
    }

    /// The group's counts, with the events after each subscriber's highest up to `last_seq`
    /// counted as its tail, and the subscribers that did not get there as unfinished.
    fn finish(mut self, last_seq: u64) -> Seen {
        for &highest in &self.highest {
            if highest < last_seq {
                self.seen.tail += last_seq - highest;
                self.seen.unfinished += 1;
            }
        }
        self.seen
    }
}
