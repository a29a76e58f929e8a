//! A connection's outgoing frames: a byte-bounded queue that many call tasks fill and one writer
//! drains, coalescing everything queued into one write.
//!
//! Frames are encoded straight into one shared buffer as they are queued, so when the writer
//! wakes up it takes the whole buffer (however many replies finished meanwhile) and sends it with
//! one `write_all`: under load, replies leave in few syscalls; when idle, each leaves at once.
//!
//! **The bound.** Queued bytes are counted with a semaphore of `send_queue_bytes` permits. A
//! frame that does not fit waits for the writer to free room, so a client that stops reading
//! holds up its own replies, then (through the in-flight cap, whose permits the waiting calls
//! still hold) its own new requests, and finally its own reader: memory per connection stays
//! under the queue bound plus the replies of its calls in flight. A frame larger than the whole
//! bound waits for an empty queue and then goes alone, so no frame waits forever.
//!
//! **Transports.** The writer hands each batch, length-prefixed frames back to back, to an
//! [`Outbound`]: a TCP connection writes it as it is ([`TcpOutbound`]); the WebSocket transport
//! (`crate::ws`) splits it at its length prefixes into one binary message per frame.
//!
//! **Events** of topic subscriptions never wait: they go to the queue's [`EventQueue`], which has
//! a byte bound of its own (the same `send_queue_bytes`) and applies each topic's lag policy when
//! the client falls behind. The writer takes queued replies first, then up to [`EVENT_BATCH`]
//! bytes of events, so events stay conflatable until the socket can take them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use std::future::Future;

use bytes::BytesMut;
use gateway_core::LagPolicy;
use gateway_protocol::{EncodeError, Frame, GoawayReason};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, Semaphore};

use crate::events::{EventQueue, Publication, Pushed, Slow};
use crate::metrics::Metrics;

/// The most bytes of events the writer takes for one write.
const EVENT_BATCH: usize = 64 * 1024;

/// Why a frame was not queued.
#[derive(Debug)]
pub(crate) enum PushError {
    /// The connection is closing or gone; the frame will never be sent.
    Closed,
    /// The frame cannot be encoded for this peer (larger than its `max_frame_size`).
    Encode(EncodeError),
}

/// The queue of one connection. Shared by the session's reader, its call tasks and its writer.
#[derive(Debug)]
pub(crate) struct SendQueue {
    /// Encoded frames waiting for the writer, and the permits they hold. A std mutex: it is held
    /// only to append or to take the buffer, never across an `.await`.
    state: Mutex<State>,
    /// One permit per byte of room.
    room: Semaphore,
    bound: usize,
    /// Wakes the writer when frames are queued or the queue closes.
    ready: Notify,
    /// The client's limit: 64 KiB until its HELLO states its own.
    peer_max_frame_size: AtomicU32,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct State {
    buf: BytesMut,
    /// Permits taken by the frames in `buf`, returned once they are written.
    permits: usize,
    closed: bool,
    events: EventQueue,
    /// Why the gateway closes the connection, once it has decided to (its GOAWAY's reason and
    /// message), for transports that say it again when they close (WebSocket close frames).
    farewell: Option<(GoawayReason, String)>,
}

impl SendQueue {
    pub(crate) fn new(bound: usize, peer_max_frame_size: u32, metrics: Arc<Metrics>) -> SendQueue {
        SendQueue {
            state: Mutex::new(State {
                buf: BytesMut::new(),
                permits: 0,
                closed: false,
                events: EventQueue::new(bound),
                farewell: None,
            }),
            room: Semaphore::new(bound),
            bound,
            ready: Notify::new(),
            peer_max_frame_size: AtomicU32::new(peer_max_frame_size),
            metrics,
        }
    }

    /// Queues `frame`, waiting for room if the queue is full.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] once [`SendQueue::close`] was called (or the writer failed);
    /// [`PushError::Encode`] when the frame is too large for the peer. Either way nothing is
    /// queued.
    pub(crate) async fn push(&self, frame: &Frame) -> Result<(), PushError> {
        let max = self.peer_max_frame_size.load(Ordering::Relaxed);
        let len = frame.encoded_len().map_err(PushError::Encode)?;
        if len > max as usize {
            return Err(PushError::Encode(EncodeError::FrameTooLarge { len, max }));
        }
        let size = len + gateway_protocol::LENGTH_PREFIX_SIZE;
        let permits = size.min(self.bound);
        // `acquire_many` takes a u32; the config caps `send_queue_bytes` at 1 GiB, so this holds.
        let n = u32::try_from(permits).unwrap_or(u32::MAX);
        let permit = self.room.acquire_many(n).await.map_err(|_| PushError::Closed)?;
        let mut state = self.state.lock().expect("send queue lock");
        if state.closed {
            return Err(PushError::Closed);
        }
        frame.encode(&mut state.buf, max).map_err(PushError::Encode)?;
        permit.forget();
        state.permits += n as usize;
        drop(state);
        self.metrics.queued(size as i64);
        self.ready.notify_one();
        Ok(())
    }

    /// Opens subscription `id`: `subscribed` (its SUBSCRIBED frame) goes out before any event
    /// pushed for it from now on. Does nothing once the queue is closed.
    pub(crate) fn open_subscription(&self, id: u32, policy: LagPolicy, subscribed: Frame) {
        self.with_events(|events| events.open(id, policy, subscribed));
        self.ready.notify_one();
    }

    /// Ends subscription `id`, dropping its pending events; `last` (SUBSCRIPTION_ENDED), if
    /// given, is its final frame.
    pub(crate) fn end_subscription(&self, id: u32, last: Option<Frame>) {
        let notify = last.is_some();
        self.with_events(|events| events.end(id, last));
        if notify {
            self.ready.notify_one();
        }
    }

    /// Queues an event of subscription `id` without waiting, applying the subscription's lag
    /// policy when the events queued exceed the bound. Ignored once the queue is closed or the
    /// subscription ended.
    ///
    /// # Errors
    ///
    /// [`Slow`] when the client is too far behind and the policy is to disconnect it.
    pub(crate) fn push_event(&self, id: u32, event: &Arc<Publication>) -> Result<Pushed, Slow> {
        let Some((pushed, idle)) = self.with_events(|events| events.push(id, event)) else {
            return Ok(Pushed::default());
        };
        let pushed = pushed?;
        // The writer needs waking only when the queue goes from empty to not: otherwise it has
        // been woken already, or is writing and takes again before it waits. At a fan-out to
        // thousands of connections, this saves a wake-up per event per subscriber whenever the
        // writers are behind.
        if pushed.queued && idle {
            self.ready.notify_one();
        }
        Ok(pushed)
    }

    /// Runs `f` on the event queue unless the queue is closed, keeping the queued-bytes metric
    /// true. Also says whether the whole queue was empty before (the writer may be waiting).
    fn with_events<R>(&self, f: impl FnOnce(&mut EventQueue) -> R) -> Option<(R, bool)> {
        let mut state = self.state.lock().expect("send queue lock");
        if state.closed {
            return None;
        }
        let before = state.events.bytes();
        let idle = before == 0 && state.buf.is_empty();
        let out = f(&mut state.events);
        let after = state.events.bytes();
        drop(state);
        self.metrics.queued(after as i64 - before as i64);
        Some((out, idle))
    }

    /// Records the client's maximum frame size, from its HELLO.
    pub(crate) fn set_peer_max_frame_size(&self, max: u32) {
        self.peer_max_frame_size.store(max, Ordering::Relaxed);
    }

    /// Queues `frame` as the last one and closes the queue, atomically: nothing queued after it
    /// (a GOAWAY must be the last frame). It does not wait for room, since a closing connection
    /// must not hang on a client that does not read; the bound is exceeded by one small frame at
    /// most.
    ///
    /// # Errors
    ///
    /// As [`SendQueue::push`].
    pub(crate) fn finish(&self, frame: &Frame) -> Result<(), PushError> {
        let max = self.peer_max_frame_size.load(Ordering::Relaxed);
        let mut state = self.state.lock().expect("send queue lock");
        if state.closed {
            return Err(PushError::Closed);
        }
        let before = state.buf.len();
        let encoded = frame.encode(&mut state.buf, max).map_err(PushError::Encode);
        state.closed = true;
        // Events pending would only delay the GOAWAY; the client is told it was too slow, or
        // the connection ends anyway.
        let dropped = state.events.bytes();
        state.events.clear();
        let size = state.buf.len() - before;
        drop(state);
        self.room.close();
        self.metrics.queued(size as i64 - dropped as i64);
        self.ready.notify_one();
        encoded
    }

    /// Records why the gateway closes the connection: the reason and message of the GOAWAY it
    /// sent or is about to send. [`Outbound::finish`] gets it.
    pub(crate) fn set_farewell(&self, reason: GoawayReason, message: &str) {
        self.state.lock().expect("send queue lock").farewell = Some((reason, message.to_owned()));
    }

    /// Refuses further frames, including those waiting for room; the writer sends what is
    /// queued and then stops.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock().expect("send queue lock");
        state.closed = true;
        let dropped = state.events.bytes();
        state.events.clear();
        drop(state);
        self.metrics.queued(-(dropped as i64));
        self.room.close();
        self.ready.notify_one();
    }

    /// Takes everything queued, or `None` when the queue is closed and empty.
    ///
    /// Cancel-safe: nothing is taken until it returns.
    pub(crate) async fn take(&self) -> Option<(BytesMut, usize)> {
        loop {
            {
                let mut state = self.state.lock().expect("send queue lock");
                if !state.buf.is_empty() || !state.events.is_empty() {
                    let permits = std::mem::take(&mut state.permits);
                    let mut batch = state.buf.split();
                    let (replies, pending) = (batch.len(), state.events.bytes());
                    let events = state.events.drain_into(&mut batch, EVENT_BATCH);
                    let taken = pending - state.events.bytes();
                    drop(state);
                    self.metrics.events_sent(events);
                    // The writer subtracts the whole batch once written; MISSED frames encoded
                    // on the way were not counted yet.
                    let encoded = batch.len() - replies;
                    self.metrics.queued(encoded as i64 - taken as i64);
                    return Some((batch, permits));
                }
                if state.closed {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Bytes queued now.
    #[cfg(test)]
    fn queued_bytes(&self) -> usize {
        self.state.lock().expect("send queue lock").buf.len()
    }
}

/// Where a connection's writer sends its frames.
pub(crate) trait Outbound: Send + 'static {
    /// Waits for the next batch of queued frames (see [`SendQueue::take`]). A transport that has
    /// more to do while the queue is empty (WebSocket pings) does it here.
    ///
    /// # Errors
    ///
    /// A write error of that other work: the connection is broken.
    fn next_batch<'a>(
        &'a mut self,
        queue: &'a SendQueue,
    ) -> impl Future<Output = std::io::Result<Option<(BytesMut, usize)>>> + Send + 'a {
        async move { Ok(queue.take().await) }
    }

    /// Sends `batch`: frames in their byte-stream form, back to back, each with its length
    /// prefix. The batch may be left in any state; the caller clears it.
    ///
    /// # Errors
    ///
    /// The write error: the connection is broken.
    fn write<'a>(
        &'a mut self,
        batch: &'a mut BytesMut,
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'a;

    /// Ends the sending side after the last frame: `farewell` is why the gateway closes the
    /// connection ([`SendQueue::set_farewell`]), `None` when the client left or the connection
    /// broke.
    ///
    /// # Errors
    ///
    /// The write error.
    fn finish(
        &mut self,
        farewell: Option<(GoawayReason, String)>,
    ) -> impl Future<Output = std::io::Result<()>> + Send + '_;
}

/// The write half of a TCP connection: batches go out as they are, in one `write_all`.
#[derive(Debug)]
pub(crate) struct TcpOutbound(pub(crate) OwnedWriteHalf);

impl Outbound for TcpOutbound {
    fn write<'a>(
        &'a mut self,
        batch: &'a mut BytesMut,
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'a {
        self.0.write_all(batch)
    }

    /// Shuts the write side down: the client reads EOF after the last frame.
    fn finish(
        &mut self,
        _: Option<(GoawayReason, String)>,
    ) -> impl Future<Output = std::io::Result<()>> + Send + '_ {
        self.0.shutdown()
    }
}

/// Drains `queue` into `out` until the queue is closed and empty, or writing fails; then
/// finishes `out` ([`Outbound::finish`]: TCP shuts its write side down, so the client reads EOF
/// after the last frame) and hands it back.
///
/// # Errors
///
/// The write error, after closing the queue so that no call waits for room forever.
pub(crate) async fn write_frames<O: Outbound>(
    queue: &SendQueue,
    mut out: O,
) -> (std::io::Result<()>, O) {
    loop {
        let (mut batch, permits) = match out.next_batch(queue).await {
            Ok(Some(taken)) => taken,
            Ok(None) => break,
            Err(e) => {
                queue.close();
                return (Err(e), out);
            }
        };
        let len = batch.len();
        let written = out.write(&mut batch).await;
        queue.metrics.queued(-(len as i64));
        if let Err(e) = written {
            queue.close();
            return (Err(e), out);
        }
        // Reuse the allocation when the writer is the only owner again (it is: nothing else
        // holds the split-off part).
        batch.clear();
        queue.room.add_permits(permits);
    }
    let farewell = queue.state.lock().expect("send queue lock").farewell.take();
    let finished = out.finish(farewell).await;
    (finished, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Registry;
    use bytes::Bytes;
    use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, Decoded, Response, decode};

    fn response(id: u32, len: usize) -> Frame {
        Frame::Response(Response { request_id: id, payload: Bytes::from(vec![7; len]) })
    }

    fn queue(bound: usize) -> Arc<SendQueue> {
        let metrics = Arc::new(Metrics::new(&Registry::new()));
        Arc::new(SendQueue::new(bound, DEFAULT_MAX_FRAME_SIZE, metrics))
    }

    /// Records each write call's bytes, and the farewell it finished with.
    #[derive(Default)]
    struct Recorder(Vec<Vec<u8>>, Option<Option<(GoawayReason, String)>>);

    impl Outbound for Recorder {
        async fn write(&mut self, batch: &mut BytesMut) -> std::io::Result<()> {
            self.0.push(batch.to_vec());
            Ok(())
        }

        async fn finish(
            &mut self,
            farewell: Option<(GoawayReason, String)>,
        ) -> std::io::Result<()> {
            self.1 = Some(farewell);
            Ok(())
        }
    }

    #[tokio::test]
    async fn queued_frames_leave_in_one_write_in_order() {
        let q = queue(1 << 20);
        for id in 1..=3 {
            q.push(&response(id, 10)).await.unwrap();
        }
        q.set_farewell(GoawayReason::IDLE_TIMEOUT, "idle");
        q.close();
        let (written, out) = write_frames(&q, Recorder::default()).await;
        written.unwrap();
        assert_eq!(out.0.len(), 1, "one write for three frames");
        assert_eq!(out.1, Some(Some((GoawayReason::IDLE_TIMEOUT, "idle".to_owned()))));
        let mut got = BytesMut::from(&out.0[0][..]);
        for id in 1..=3 {
            let frame = decode(&mut got, DEFAULT_MAX_FRAME_SIZE).unwrap();
            assert_eq!(frame, Decoded::Frame(response(id, 10)));
        }
        assert!(got.is_empty());
        assert_eq!(
            q.metrics.render().lines().find(|l| l.starts_with("gateway_send_queue_bytes ")),
            Some("gateway_send_queue_bytes 0")
        );
    }

    #[tokio::test]
    async fn a_full_queue_makes_pushers_wait_and_a_huge_frame_goes_alone() {
        let q = queue(100);
        q.push(&response(1, 60)).await.unwrap();
        let waiting = {
            let q = q.clone();
            tokio::spawn(async move { q.push(&response(2, 60)).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "70 + 70 bytes exceed the bound of 100");
        assert_eq!(q.queued_bytes(), 70);
        let (_, permits) = q.take().await.unwrap();
        q.room.add_permits(permits);
        waiting.await.unwrap().unwrap();
        let (_, permits) = q.take().await.unwrap();
        q.room.add_permits(permits);
        // Larger than the whole bound: takes all 100 permits and goes alone.
        q.push(&response(3, 1000)).await.unwrap();
        assert_eq!(q.take().await.unwrap().1, 100);
    }

    #[tokio::test]
    async fn closing_refuses_frames_and_frames_too_large_for_the_peer_are_refused() {
        let metrics = Arc::new(Metrics::new(&Registry::new()));
        let q = SendQueue::new(1 << 20, 65_536, metrics);
        assert!(matches!(q.push(&response(1, 70_000)).await, Err(PushError::Encode(_))));
        q.push(&response(1, 10)).await.unwrap();
        q.close();
        assert!(matches!(q.push(&response(2, 10)).await, Err(PushError::Closed)));
        assert!(q.take().await.is_some(), "what was queued before closing is still sent");
        assert!(q.take().await.is_none());
    }

    #[tokio::test]
    async fn finish_queues_a_last_frame_without_waiting_for_room() {
        let q = queue(100);
        q.push(&response(1, 90)).await.unwrap();
        q.finish(&response(2, 10)).unwrap();
        assert!(matches!(q.push(&response(3, 1)).await, Err(PushError::Closed)));
        let (mut buf, _) = q.take().await.unwrap();
        assert_eq!(
            decode(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap(),
            Decoded::Frame(response(1, 90))
        );
        assert_eq!(
            decode(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap(),
            Decoded::Frame(response(2, 10))
        );
        assert!(q.take().await.is_none());
    }
}
