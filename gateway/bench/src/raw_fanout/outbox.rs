//! One connection's outgoing frames in the raw fan-out server: control frames, and events under
//! a byte bound that drops the oldest.
//!
//! Publishing never waits on a subscriber: the event's bytes (encoded once for everybody) are
//! appended to each subscriber's outbox and its writer is woken. When a new event does not fit
//! the bound, the oldest pending events are dropped and counted per subscription; the writer
//! sends a MISSED with the count before the events that remain. The writer takes everything
//! pending at once and sends it in one write.
//!
//! Control frames (WELCOME, SUBSCRIBED, PONG, acknowledgements) are never dropped and are not
//! counted in the bound: each answers a frame the client sent, and the reader stops reading when
//! the connection ends.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, EncodeError, Frame};
use tokio::sync::Notify;

/// The pending frames of one connection. Shared by its reader, the publishers and its writer.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// A std mutex: held only to append or to take, never across an `.await`.
    state: Mutex<State>,
    /// Wakes the writer when something is queued or the connection closes.
    ready: Notify,
    /// The most bytes of events pending at once.
    bound: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Encoded control frames, in order.
    control: BytesMut,
    /// Encoded EVENT frames and the subscription each is for, oldest first.
    events: VecDeque<(u32, Bytes)>,
    /// The bytes of `events`.
    event_bytes: usize,
    /// Events dropped since the last MISSED, per subscription.
    missed: Vec<(u32, u32)>,
    closed: bool,
}

/// What the writer takes: everything pending, in the order it goes on the wire.
#[derive(Debug)]
pub(crate) enum Taken {
    /// Frames to write (possibly none, after a spurious wake-up).
    Frames,
    /// The connection is closing: nothing more will be queued.
    Closed,
}

impl Outbox {
    /// An empty outbox holding at most `bound` bytes of events.
    pub(crate) fn new(bound: usize) -> Outbox {
        Outbox { state: Mutex::new(State::default()), ready: Notify::new(), bound }
    }

    /// Queues a control frame.
    ///
    /// # Errors
    ///
    /// A frame too large to encode.
    pub(crate) fn push_control(&self, frame: &Frame) -> Result<(), EncodeError> {
        let mut state = self.state.lock().expect("outbox lock");
        frame.encode(&mut state.control, DEFAULT_MAX_FRAME_SIZE)?;
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues an encoded EVENT for subscription `id`, dropping the oldest pending events while
    /// it does not fit. An event larger than the whole bound goes alone.
    pub(crate) fn push_event(&self, id: u32, frame: Bytes) {
        let mut state = self.state.lock().expect("outbox lock");
        if state.closed {
            return;
        }
        while state.event_bytes + frame.len() > self.bound {
            let Some((dropped_id, dropped)) = state.events.pop_front() else { break };
            state.event_bytes -= dropped.len();
            match state.missed.iter_mut().find(|(sub, _)| *sub == dropped_id) {
                Some((_, count)) => *count = count.saturating_add(1),
                None => state.missed.push((dropped_id, 1)),
            }
        }
        state.event_bytes += frame.len();
        state.events.push_back((id, frame));
        drop(state);
        self.ready.notify_one();
    }

    /// Marks the connection closed: its writer ends after what is pending.
    pub(crate) fn close(&self) {
        self.state.lock().expect("outbox lock").closed = true;
        self.ready.notify_one();
    }

    /// Waits until something is pending, then appends all of it to `out`: control frames, the
    /// MISSED counts, then the events that were not dropped.
    pub(crate) async fn take(&self, out: &mut BytesMut) -> Taken {
        loop {
            {
                let mut state = self.state.lock().expect("outbox lock");
                let pending = !state.control.is_empty() || !state.events.is_empty();
                if pending {
                    out.extend_from_slice(&state.control);
                    state.control.clear();
                    for (subscription_id, count) in std::mem::take(&mut state.missed) {
                        let missed = Frame::Missed { subscription_id, count };
                        // A MISSED frame is 10 bytes: it always encodes.
                        let _ = missed.encode(out, DEFAULT_MAX_FRAME_SIZE);
                    }
                    for (_, frame) in state.events.drain(..) {
                        out.extend_from_slice(&frame);
                    }
                    state.event_bytes = 0;
                    return Taken::Frames;
                }
                if state.closed {
                    return Taken::Closed;
                }
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use gateway_protocol::{Decoded, decode};

    use super::*;

    fn frames(mut buf: BytesMut) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Decoded::Frame(frame) = decode(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap() {
            frames.push(frame);
        }
        frames
    }

    #[tokio::test]
    async fn the_oldest_events_are_dropped_and_reported_before_the_rest() {
        let outbox = Outbox::new(25);
        outbox.push_control(&Frame::Subscribed { subscription_id: 1 }).unwrap();
        for n in 0..4u8 {
            // Three 10-byte "events" at most fit 25 bytes: only the last two stay.
            outbox.push_event(1, Bytes::from(vec![n; 10]));
        }
        let mut out = BytesMut::new();
        assert!(matches!(outbox.take(&mut out).await, Taken::Frames));
        // SUBSCRIBED is 10 bytes on the wire, MISSED 14.
        let control_and_missed = out.split_to(10 + 14);
        assert_eq!(
            frames(control_and_missed),
            [
                Frame::Subscribed { subscription_id: 1 },
                Frame::Missed { subscription_id: 1, count: 2 }
            ]
        );
        assert_eq!(&out[..], [vec![2; 10], vec![3; 10]].concat());
    }

    #[tokio::test]
    async fn a_closed_outbox_ends_the_writer_after_what_is_pending() {
        let outbox = Outbox::new(100);
        outbox.push_event(1, Bytes::from_static(b"event"));
        outbox.close();
        outbox.push_event(1, Bytes::from_static(b"late"));
        let mut out = BytesMut::new();
        assert!(matches!(outbox.take(&mut out).await, Taken::Frames));
        assert_eq!(&out[..], b"event");
        assert!(matches!(outbox.take(&mut out).await, Taken::Closed));
    }
}
