//! The publisher: one connection that publishes stamped events to the topic, paced to a target
//! rate (open loop) or as fast as acknowledgements allow (closed loop, a window of publishes in
//! flight), until the measured period ends.
//!
//! The socket is split: this side writes, a reader task takes what the server sends back
//! (acknowledgements in the closed loop; in both modes an ERROR or GOAWAY fails the run, since a
//! publisher that is refused measures nothing).

use std::time::Duration;

use bytes::BytesMut;
use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, Decoded, Frame, Publish, decode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::connection::{Window, nanos_since};
use crate::error::LoadError;
use crate::fanout::Opened;
use crate::fanout::config::Pace;
use crate::fanout::stamp::Stamp;

/// The most events one write of the open loop carries when it has fallen behind its schedule, so
/// that catching up does not build one huge buffer.
const MAX_BATCH: u64 = 1024;

/// What the publisher did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Published {
    /// Events sent during the measured period.
    pub(crate) in_window: u64,
    /// The sequence number of the last event sent (warm-up included); 0 when none was.
    pub(crate) last_seq: u64,
    /// How far the open loop fell behind its schedule at worst: the longest an event left after
    /// its scheduled time (0 for the closed loop).
    pub(crate) max_behind: Duration,
}

/// The publisher's connection, between the handshake and the run.
#[derive(Debug)]
pub(crate) struct Publisher {
    pub(crate) opened: Opened,
    pub(crate) topic_id: u32,
    pub(crate) payload: usize,
}

impl Publisher {
    /// Publishes as `pace` says from now until `window.end`.
    ///
    /// # Errors
    ///
    /// An I/O failure, the server closing the connection, or refusing a publish.
    pub(crate) async fn run(self, pace: Pace, window: Window) -> Result<Published, LoadError> {
        let (read_half, write_half) = self.opened.stream.into_split();
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_answers(read_half, self.opened.read_buf, acks_tx));
        let mut writer = Writer {
            half: write_half,
            topic_id: self.topic_id,
            payload: self.payload,
            max_frame_size: self.opened.max_frame_size,
            window,
            out: BytesMut::new(),
            published: Published::default(),
        };
        let written = tokio::select! {
            written = async {
                match pace {
                    Pace::Rate { events_per_s } => writer.paced(events_per_s).await,
                    Pace::Max { window: in_flight } => writer.acknowledged(in_flight, acks_rx).await,
                }
            } => written,
            // The reader ends early only with a failure (or the server closing).
            read = reader => Err(match read {
                Ok(Err(e)) => e,
                Ok(Ok(())) => LoadError::Closed("while publishing".into()),
                Err(e) => LoadError::Task(e.to_string()),
            }),
        };
        written.map(|()| writer.published)
    }
}

/// The writing half and its counts.
struct Writer {
    half: OwnedWriteHalf,
    topic_id: u32,
    payload: usize,
    max_frame_size: u32,
    window: Window,
    out: BytesMut,
    published: Published,
}

impl Writer {
    /// The open loop: event `n` (from 0) is due at `n / rate` after the start; every wake-up
    /// sends all the events due by then in one write, stamped with the time of that write. The
    /// timer wakes at most once a millisecond, so at rates above 1,000/s events leave in small
    /// bursts.
    async fn paced(&mut self, rate: f64) -> Result<(), LoadError> {
        let origin = Instant::now();
        let due_at = |n: u64| origin + Duration::from_secs_f64(n as f64 / rate);
        let mut sent = 0u64;
        loop {
            let now = Instant::now();
            if now >= self.window.end {
                return Ok(());
            }
            let due = ((now - origin).as_secs_f64() * rate) as u64 + 1;
            let batch = due.saturating_sub(sent).min(MAX_BATCH);
            if batch > 0 {
                let behind = now.saturating_duration_since(due_at(sent));
                self.published.max_behind = self.published.max_behind.max(behind);
                for _ in 0..batch {
                    self.put(0, now)?;
                }
                self.flush().await?;
                sent += batch;
            }
            if sent >= due {
                sleep_until(due_at(sent).min(self.window.end)).await;
            }
        }
    }

    /// The closed loop: request ids 1..=`in_flight`, each sent again as soon as its answer
    /// (RESPONSE) comes back; everything freed since the last write goes in one write.
    async fn acknowledged(
        &mut self,
        in_flight: u32,
        mut acks: mpsc::UnboundedReceiver<u32>,
    ) -> Result<(), LoadError> {
        let mut free: Vec<u32> = (1..=in_flight).collect();
        loop {
            if free.is_empty() {
                tokio::select! {
                    ack = acks.recv() => match ack {
                        Some(id) => free.push(id),
                        None => return Err(LoadError::Closed("while publishing".into())),
                    },
                    () = sleep_until(self.window.end) => return Ok(()),
                }
            }
            while let Ok(id) = acks.try_recv() {
                free.push(id);
            }
            let now = Instant::now();
            if now >= self.window.end {
                return Ok(());
            }
            for id in free.drain(..) {
                self.put(id, now)?;
            }
            self.flush().await?;
        }
    }

    /// Encodes the next event, sent at `now`, into the write buffer.
    fn put(&mut self, request_id: u32, now: Instant) -> Result<(), LoadError> {
        self.published.last_seq += 1;
        if (self.window.start..self.window.end).contains(&now) {
            self.published.in_window += 1;
        }
        let stamp =
            Stamp { seq: self.published.last_seq, sent_ns: nanos_since(self.window.epoch, now) };
        let mut payload = BytesMut::with_capacity(self.payload);
        stamp.put(&mut payload, self.payload);
        let publish = Frame::Publish(Publish {
            request_id,
            topic_id: self.topic_id,
            key: String::new(),
            payload: payload.freeze(),
        });
        publish.encode(&mut self.out, self.max_frame_size).map_err(LoadError::encode)
    }

    async fn flush(&mut self) -> Result<(), LoadError> {
        self.half.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }
}

/// Reads the publisher's connection: hands acknowledged request ids to the writer, ignores
/// keep-alive, fails on anything else. Ends with `Ok` when the server closes the connection.
async fn read_answers(
    mut half: OwnedReadHalf,
    mut buf: BytesMut,
    acks: mpsc::UnboundedSender<u32>,
) -> Result<(), LoadError> {
    loop {
        loop {
            match decode(&mut buf, DEFAULT_MAX_FRAME_SIZE)? {
                Decoded::Frame(Frame::Response(response)) => {
                    // The writer has stopped when nobody receives: nothing left to do.
                    if acks.send(response.request_id).is_err() {
                        return Ok(());
                    }
                }
                Decoded::Frame(Frame::Ping { .. } | Frame::Pong { .. })
                | Decoded::Skipped { .. } => {}
                Decoded::Frame(Frame::Error(error)) => {
                    return Err(LoadError::Protocol(format!(
                        "publish {} refused: {}",
                        error.request_id, error.status
                    )));
                }
                Decoded::Frame(Frame::Goaway(goaway)) => {
                    return Err(LoadError::Closed(format!(
                        "GOAWAY `{}`: {}",
                        goaway.reason, goaway.message
                    )));
                }
                Decoded::Frame(other) => {
                    return Err(LoadError::Protocol(format!(
                        "unexpected {} frame on the publisher's connection",
                        other.frame_type().name()
                    )));
                }
                Decoded::Incomplete { .. } => break,
            }
        }
        if half.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}
