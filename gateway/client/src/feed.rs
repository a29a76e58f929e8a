//! One subscription's events on their way to the application: a [`Feed`] the connection task
//! pushes into without ever waiting, and the application's stream
//! ([`RawSubscription`](crate::RawSubscription), in `crate::topics`) reads from.
//!
//! The queue is bounded by [`ClientConfig::subscription_buffer`](crate::ClientConfig). When it
//! is full, the oldest event is dropped and counted in the `missed` of the event after it, as
//! the server counts the events it dropped (MISSED): an application that falls behind loses
//! old events and learns how many, and neither the connection nor memory waits for it.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use gateway_core::{RawEvent, Selector, Status, TopicDesc};
use gateway_protocol::{Frame, Subscribe};

/// A subscription's queue of events, shared by its stream and the connection that serves it.
#[derive(Debug)]
pub(crate) struct Feed {
    /// Names the subscription across connections (each connection has its own ids).
    pub(crate) key: u64,
    pub(crate) topic: &'static TopicDesc,
    pub(crate) selector: Selector,
    capacity: usize,
    /// A std mutex: held only to move an event in or out, never across an `.await`.
    state: Mutex<FeedState>,
}

#[derive(Debug, Default)]
struct FeedState {
    queue: VecDeque<RawEvent>,
    /// Events lost since the last one queued: the next event queued carries them.
    missed: u64,
    /// The next event queued is the first on a new connection.
    resumed: bool,
    end: Ending,
    /// The stream was dropped: nobody reads any more.
    closed: bool,
    waker: Option<Waker>,
}

/// How far the subscription is from its end.
#[derive(Debug, Default)]
enum Ending {
    #[default]
    Open,
    /// Ended: the stream yields this after the queued events, then `None`.
    Pending(Status),
    Done,
}

impl Feed {
    pub(crate) fn new(
        key: u64,
        topic: &'static TopicDesc,
        selector: Selector,
        capacity: usize,
    ) -> Feed {
        Feed { key, topic, selector, capacity, state: Mutex::default() }
    }

    fn state(&self) -> MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The SUBSCRIBE for this subscription under a connection's `subscription_id`. An unkeyed
    /// topic is subscribed to with an empty key and no ALL_KEYS flag (`docs/protocol.md`).
    pub(crate) fn subscribe_frame(&self, subscription_id: u32) -> Frame {
        let (all_keys, key) = match &self.selector {
            Selector::Key(key) => (false, key.clone()),
            Selector::AllKeys => (self.topic.key.is_some(), String::new()),
        };
        Frame::Subscribe(Subscribe { subscription_id, topic_id: self.topic.id, all_keys, key })
    }

    /// Queues an event, dropping the oldest when the queue is full. False when the stream is
    /// gone, so the connection unsubscribes.
    pub(crate) fn push(&self, key: String, payload: Bytes) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        if !matches!(state.end, Ending::Open) {
            return true;
        }
        if state.queue.len() >= self.capacity
            && let Some(oldest) = state.queue.pop_front()
        {
            let lost = oldest.missed.saturating_add(1);
            match state.queue.front_mut() {
                Some(next) => {
                    next.missed = next.missed.saturating_add(lost);
                    next.resumed |= oldest.resumed;
                }
                None => {
                    state.missed = state.missed.saturating_add(lost);
                    state.resumed |= oldest.resumed;
                }
            }
        }
        let missed = std::mem::take(&mut state.missed);
        let resumed = std::mem::take(&mut state.resumed);
        state.queue.push_back(RawEvent { key, payload, missed, resumed });
        wake(&mut state);
        true
    }

    /// Counts events the server dropped (MISSED) into the next event. False when the stream is
    /// gone.
    pub(crate) fn add_missed(&self, count: u64) -> bool {
        let mut state = self.state();
        state.missed = state.missed.saturating_add(count);
        !state.closed
    }

    /// The subscription was restored on a new connection: the next event says so.
    pub(crate) fn mark_resumed(&self) {
        self.state().resumed = true;
    }

    /// Ends the subscription: the stream yields `status` after the events already queued.
    pub(crate) fn end(&self, status: Status) {
        let mut state = self.state();
        if matches!(state.end, Ending::Open) {
            state.end = Ending::Pending(status);
            wake(&mut state);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// The stream was dropped: nothing is queued any more.
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.queue.clear();
    }

    /// The next event, the end, or `Pending` with the waker kept for the next push.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<RawEvent, Status>>> {
        let mut state = self.state();
        if let Some(event) = state.queue.pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        match std::mem::replace(&mut state.end, Ending::Done) {
            Ending::Pending(status) => Poll::Ready(Some(Err(status))),
            Ending::Done => Poll::Ready(None),
            Ending::Open => {
                state.end = Ending::Open;
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn wake(state: &mut FeedState) {
    if let Some(waker) = state.waker.take() {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use gateway_core::LagPolicy;

    use super::*;

    const KEYED: TopicDesc = TopicDesc {
        id: 7,
        name: "test.Topics.position",
        message: "test.Any",
        key: Some("device_id"),
        on_lag: LagPolicy::DropOldest,
        retain: false,
        client_publish: false,
        history: None,
    };
    static TOPIC: TopicDesc = KEYED;

    fn next(feed: &Feed) -> Poll<Option<Result<RawEvent, Status>>> {
        feed.poll_next(&mut Context::from_waker(Waker::noop()))
    }

    fn event(feed: &Feed) -> RawEvent {
        match next(feed) {
            Poll::Ready(Some(Ok(event))) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_them_into_the_next() {
        let feed = Feed::new(1, &TOPIC, Selector::AllKeys, 2);
        for i in 0..5u8 {
            assert!(feed.push(i.to_string(), Bytes::new()));
        }
        // 0, 1, 2 were dropped; 3 carries them.
        let third = event(&feed);
        assert_eq!((third.key.as_str(), third.missed), ("3", 3));
        let fourth = event(&feed);
        assert_eq!((fourth.key.as_str(), fourth.missed), ("4", 0));
        assert!(next(&feed).is_pending());
    }

    #[test]
    fn with_room_for_one_the_losses_and_the_resume_carry_over() {
        let feed = Feed::new(1, &TOPIC, Selector::AllKeys, 1);
        feed.add_missed(10);
        feed.mark_resumed();
        feed.push("a".into(), Bytes::new());
        feed.push("b".into(), Bytes::new());
        let b = event(&feed);
        assert_eq!((b.key.as_str(), b.missed, b.resumed), ("b", 11, true));
    }

    #[test]
    fn an_end_comes_after_the_queued_events_then_none() {
        let feed = Feed::new(1, &TOPIC, Selector::Key("7".into()), 4);
        feed.push("7".into(), Bytes::from_static(b"x"));
        feed.end(Status::permission_denied("revoked"));
        feed.push("7".into(), Bytes::from_static(b"late"));
        assert_eq!(&event(&feed).payload[..], b"x");
        assert!(matches!(next(&feed), Poll::Ready(Some(Err(s))) if s.message() == "revoked"));
        assert!(matches!(next(&feed), Poll::Ready(None)));
    }

    #[test]
    fn unkeyed_topics_are_subscribed_without_all_keys() {
        static UNKEYED: TopicDesc = TopicDesc { key: None, ..KEYED };
        let frame = Feed::new(1, &UNKEYED, Selector::AllKeys, 1).subscribe_frame(3);
        let Frame::Subscribe(s) = frame else { panic!() };
        assert!(!s.all_keys && s.key.is_empty());
        let Frame::Subscribe(s) = Feed::new(1, &TOPIC, Selector::AllKeys, 1).subscribe_frame(3)
        else {
            panic!()
        };
        assert!(s.all_keys && s.key.is_empty() && s.subscription_id == 3 && s.topic_id == 7);
    }
}
