//! What other tasks hand one connection, and how they wake its session.
//!
//! A session owns its socket, its calls and its outbox; nothing else touches them. What comes
//! from outside goes through the connection's mailbox: the topic events the hub delivers (with
//! each subscription's SUBSCRIBED and SUBSCRIPTION_ENDED frames, in order with its events; see
//! [`crate::events`]), subscriptions the hub ended on its own, and signals: the gateway drains or
//! abandons its calls, the hub finds the client too slow for a `disconnect` topic. Each of these
//! wakes the session's task; the session then takes what it needs on its next poll.
//!
//! Delivering never waits: the hub takes the mailbox's lock for the time of a queue push, and
//! wakes the session only when its queue goes from empty to not (at a fan-out to thousands of
//! connections whose sessions are behind, that saves a wake-up per event per subscriber).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;

use futures::task::AtomicWaker;
use gateway_core::LagPolicy;
use gateway_protocol::Frame;

use crate::events::{EventQueue, FrameSink, Publication, Pushed, Slow};
use crate::metrics::Metrics;

/// The signals a mailbox carries (bits).
pub(crate) mod signal {
    /// The gateway drains: GOAWAY `shutting_down`, finish the calls in flight.
    pub(crate) const DRAIN: u8 = 1;
    /// The drain bound passed: answer the calls left `unavailable` and close.
    pub(crate) const ABANDON: u8 = 2;
    /// The client fell behind a topic whose policy is to disconnect it.
    pub(crate) const SLOW: u8 = 4;
    /// An operator closed the connection (`POST /connections/<id>/close`): as `DRAIN`, for
    /// this connection alone.
    pub(crate) const CLOSE: u8 = 8;
}

/// One connection's mailbox. Shared (`Arc`) by its session and the hub.
#[derive(Debug)]
pub(crate) struct Mailbox {
    /// A std mutex: held only to push, drain or end, never across an `.await`.
    state: Mutex<State>,
    /// Something is queued (events or ended subscriptions): the session takes the lock only then.
    pending: AtomicBool,
    signals: AtomicU8,
    waker: AtomicWaker,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct State {
    events: EventQueue,
    /// Subscriptions the hub ended on its own, for the session to forget.
    ended: Vec<u32>,
    /// The connection is closing: nothing more is queued.
    closed: bool,
}

impl Mailbox {
    /// A mailbox holding at most `bound` bytes of events (then each topic's lag policy applies).
    pub(crate) fn new(bound: usize, metrics: Arc<Metrics>) -> Mailbox {
        Mailbox {
            state: Mutex::new(State {
                events: EventQueue::new(bound),
                ended: Vec::new(),
                closed: false,
            }),
            pending: AtomicBool::new(false),
            signals: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Who to wake: the session's task, as of its last poll.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Raises `bit` ([`signal`]) and wakes the session.
    pub(crate) fn signal(&self, bit: u8) {
        self.signals.fetch_or(bit, Ordering::AcqRel);
        self.waker.wake();
    }

    /// The signals raised so far (they stay raised).
    pub(crate) fn signals(&self) -> u8 {
        self.signals.load(Ordering::Acquire)
    }

    /// Whether events or ended subscriptions wait for the session.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Opens subscription `id`: `first` (its SUBSCRIBED or SUBSCRIBED_AT frame) goes out
    /// before any event pushed for it from now on, as EVENT_AT when `positioned`. Does nothing
    /// once the mailbox is closed.
    pub(crate) fn open_subscription(
        &self,
        id: u32,
        policy: LagPolicy,
        first: Frame,
        positioned: bool,
    ) {
        self.with_events(|state| state.events.open(id, policy, first, positioned));
    }

    /// Bytes of events that can still be queued before the lag policies apply (0 once closed).
    pub(crate) fn room(&self) -> usize {
        let state = self.lock();
        if state.closed { 0 } else { state.events.room() }
    }

    /// Ends subscription `id`, dropping its pending events; `last` (SUBSCRIPTION_ENDED), if
    /// given, is its final frame.
    pub(crate) fn end_subscription(&self, id: u32, last: Option<Frame>) {
        self.with_events(|state| state.events.end(id, last));
    }

    /// The hub ended subscription `id` on its own (the bus dropped the topic): `last` tells the
    /// client, and the session forgets the subscription.
    pub(crate) fn ended_by_hub(&self, id: u32, last: Frame) {
        self.with_events(|state| {
            state.events.end(id, Some(last));
            state.ended.push(id);
        });
    }

    /// Queues an event of subscription `id` without waiting, applying the subscription's lag
    /// policy when the events queued exceed the bound. Ignored once the mailbox is closed or the
    /// subscription ended.
    ///
    /// # Errors
    ///
    /// [`Slow`] when the client is too far behind and the policy is to disconnect it.
    pub(crate) fn push_event(&self, id: u32, event: &Arc<Publication>) -> Result<Pushed, Slow> {
        self.with_events(|state| state.events.push(id, event)).unwrap_or(Ok(Pushed::default()))
    }

    /// Runs `f` unless the mailbox is closed, and wakes the session when something is pending
    /// that was not before. (The bytes queued here are counted when the metrics are read,
    /// [`Mailbox::queued`]: a shared counter updated per event would cost every delivery.)
    fn with_events<R>(&self, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        let out = f(&mut state);
        let pending = !state.events.is_empty() || !state.ended.is_empty();
        drop(state);
        if pending
            && !self.pending.load(Ordering::Acquire)
            && !self.pending.swap(true, Ordering::AcqRel)
        {
            self.waker.wake();
        }
        Some(out)
    }

    /// Bytes of events queued now.
    pub(crate) fn queued(&self) -> usize {
        self.lock().events.bytes()
    }

    /// Encodes pending frames into `out`, about `limit` bytes at most, and hands the ids of the
    /// subscriptions the hub ended to `ended`. Returns the number of EVENT frames taken.
    pub(crate) fn drain_into(
        &self,
        out: &mut impl FrameSink,
        limit: usize,
        ended: &mut Vec<u32>,
    ) -> usize {
        let mut state = self.lock();
        ended.append(&mut state.ended);
        let events = state.events.drain_into(out, limit);
        if state.events.is_empty() {
            self.pending.store(false, Ordering::Release);
        }
        drop(state);
        self.metrics.events_sent(events);
        events
    }

    /// Refuses everything from now on and drops what is pending (the connection is closing).
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.events.clear();
    }
}
