//! One subscription's events on their way to the application: a [`Feed`] the connection task
//! pushes into without ever waiting, and the application's stream
//! ([`RawSubscription`](crate::RawSubscription), in `crate::topics`) reads from.
//!
//! The queue is bounded by [`ClientConfig::subscription_buffer`](crate::ClientConfig). When it
//! is full, the oldest event is dropped and counted in the `missed` of the event after it, as
//! the server counts the events it dropped (MISSED): an application that falls behind loses
//! old events and learns how many, and neither the connection nor memory waits for it.
//!
//! A feed of a topic with history also keeps the subscription's position (the last one the
//! gateway gave: SUBSCRIBED_AT's, then each EVENT_AT's), so that a new connection subscribes
//! from it and the gateway sends what was missed (`docs/protocol.md`, "History and recovery").
//! When it cannot, the feed queues a `data_loss` notice where the gap is.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use gateway_core::{RawEvent, Selector, Status, TopicDesc};
use gateway_protocol::{Frame, Position, Recovery, Subscribe, SubscribeFrom};

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
    /// Events, and `data_loss` notices of what could not be recovered (never dropped, and not
    /// counted against the capacity).
    queue: VecDeque<Result<RawEvent, Status>>,
    /// Events in `queue`.
    events: usize,
    /// Events lost since the last one queued: the next event queued carries them.
    missed: u64,
    /// The next event queued is the first on a new connection.
    resumed: bool,
    /// With `resumed`: what was missed was recovered.
    recovered: bool,
    /// The subscription's position in its topic's history, once the gateway gave one.
    position: Option<Position>,
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

    /// The SUBSCRIBE for this subscription under a connection's `subscription_id`, or, when
    /// the server speaks `positions` and the feed has one, the SUBSCRIBE_FROM that recovers
    /// what came after it. An unkeyed topic is subscribed to with an empty key and no
    /// ALL_KEYS flag (`docs/protocol.md`).
    pub(crate) fn subscribe_frame(&self, subscription_id: u32, positions: bool) -> Frame {
        let (all_keys, key) = match &self.selector {
            Selector::Key(key) => (false, key.clone()),
            Selector::AllKeys => (self.topic.key.is_some(), String::new()),
        };
        let topic_id = self.topic.id;
        match self.state().position.filter(|_| positions) {
            Some(position) => Frame::SubscribeFrom(SubscribeFrom {
                subscription_id,
                topic_id,
                all_keys,
                key,
                position,
            }),
            None => Frame::Subscribe(Subscribe { subscription_id, topic_id, all_keys, key }),
        }
    }

    /// Queues an event, dropping the oldest when the queue is full. False when the stream is
    /// gone, so the connection unsubscribes.
    pub(crate) fn push(&self, key: String, payload: Bytes) -> bool {
        self.push_at(key, payload, None)
    }

    /// Queues an event at `offset` of the topic's history (EVENT_AT), which moves the
    /// subscription's position forward; see [`Feed::push`].
    pub(crate) fn push_at(&self, key: String, payload: Bytes, offset: Option<u64>) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        if let (Some(offset), Some(position)) = (offset, state.position.as_mut()) {
            // Only forward: a retained event may be older than the position.
            position.offset = position.offset.max(offset);
        }
        if !matches!(state.end, Ending::Open) {
            return true;
        }
        if state.events >= self.capacity {
            drop_oldest(&mut state);
        }
        let missed = std::mem::take(&mut state.missed);
        let resumed = std::mem::take(&mut state.resumed);
        let recovered = std::mem::take(&mut state.recovered) && resumed;
        state.queue.push_back(Ok(RawEvent { key, payload, missed, resumed, recovered }));
        state.events += 1;
        wake(&mut state);
        true
    }

    /// The gateway opened the subscription at `position` with this `recovery` (SUBSCRIBED_AT).
    /// On a restored subscription, a recovery that failed is queued as a `data_loss` notice;
    /// one that succeeded marks the next event `recovered`.
    pub(crate) fn opened_at(&self, recovery: Recovery, position: Position, restored: bool) {
        let mut state = self.state();
        state.position = Some(position);
        if !restored {
            return;
        }
        if recovery.is_recovered() {
            state.recovered = true;
        } else {
            let why = match recovery {
                Recovery::NONE => "there was no position to recover from".to_owned(),
                other => other.to_string(),
            };
            self.lost(&mut state, &why);
        }
    }

    /// The gateway opened the subscription without a position (SUBSCRIBED). A restored
    /// subscription to a topic with history lost what was published meanwhile: that is queued
    /// as a `data_loss` notice.
    pub(crate) fn opened(&self, restored: bool) {
        let mut state = self.state();
        // A position of another gateway's history would only be refused.
        state.position = None;
        if restored && self.topic.history.is_some() {
            self.lost(&mut state, "the gateway keeps no history for this connection");
        }
    }

    fn lost(&self, state: &mut FeedState, why: &str) {
        if state.closed || !matches!(state.end, Ending::Open) {
            return;
        }
        let status = Status::data_loss(format!(
            "{}: the events published while the subscription was down were not recovered \
             ({why}); reload what depends on them",
            self.topic.name
        ));
        state.queue.push_back(Err(status));
        wake(state);
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
        let mut state = self.state();
        state.resumed = true;
        state.recovered = false;
    }

    /// The subscription's position in its topic's history, if the gateway gave one.
    #[cfg(test)]
    pub(crate) fn position(&self) -> Option<Position> {
        self.state().position
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
        state.events = 0;
    }

    /// The next event, the end, or `Pending` with the waker kept for the next push.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<RawEvent, Status>>> {
        let mut state = self.state();
        if let Some(item) = state.queue.pop_front() {
            if item.is_ok() {
                state.events -= 1;
            }
            return Poll::Ready(Some(item));
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

/// Drops the oldest event (a notice stays), counting it, and what it carried, into the next
/// event.
fn drop_oldest(state: &mut FeedState) {
    let Some(at) = state.queue.iter().position(Result::is_ok) else { return };
    let Some(Ok(oldest)) = state.queue.remove(at) else { return };
    state.events -= 1;
    let lost = oldest.missed.saturating_add(1);
    match state.queue.iter_mut().skip(at).find_map(|item| item.as_mut().ok()) {
        Some(next) => {
            next.missed = next.missed.saturating_add(lost);
            next.resumed |= oldest.resumed;
            next.recovered |= oldest.recovered;
        }
        None => {
            state.missed = state.missed.saturating_add(lost);
            state.resumed |= oldest.resumed;
            state.recovered |= oldest.recovered;
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
    fn the_position_follows_the_gateway_and_is_where_a_new_connection_subscribes_from() {
        let feed = Feed::new(1, &TOPIC, Selector::Key("7".into()), 8);
        assert!(matches!(feed.subscribe_frame(1, true), Frame::Subscribe(_)), "no position yet");
        feed.opened_at(Recovery::NONE, Position { epoch: 9, offset: 40 }, false);
        feed.push_at("7".into(), Bytes::new(), Some(42));
        // A retained event older than the position leaves it where it is.
        feed.push_at("7".into(), Bytes::new(), Some(12));
        assert_eq!(feed.position(), Some(Position { epoch: 9, offset: 42 }));
        let Frame::SubscribeFrom(from) = feed.subscribe_frame(5, true) else { panic!() };
        assert_eq!((from.subscription_id, from.key.as_str()), (5, "7"));
        assert_eq!((from.topic_id, from.all_keys), (7, false));
        assert_eq!(from.position, Position { epoch: 9, offset: 42 });
        // A gateway that does not speak positions gets a SUBSCRIBE.
        assert!(matches!(feed.subscribe_frame(5, false), Frame::Subscribe(_)));
        // The first open is no restore: nothing to report.
        assert!(!event(&feed).resumed);
    }

    #[test]
    fn a_restore_that_recovered_marks_the_next_event_and_one_that_did_not_says_data_loss() {
        static HISTORY: TopicDesc = TopicDesc {
            history: Some(gateway_core::HistoryDesc { events: 10, ttl_ms: 0 }),
            ..KEYED
        };
        let feed = Feed::new(1, &HISTORY, Selector::AllKeys, 2);
        let at = Position { epoch: 9, offset: 40 };
        feed.opened_at(Recovery::NONE, at, false);
        feed.push_at("a".into(), Bytes::from_static(b"before"), Some(41));

        feed.mark_resumed();
        feed.opened_at(Recovery::RECOVERED, Position { offset: 41, ..at }, true);
        feed.push_at("a".into(), Bytes::from_static(b"missed"), Some(43));
        assert_eq!(&event(&feed).payload[..], b"before");
        let missed = event(&feed);
        assert_eq!(
            (&missed.payload[..], missed.resumed, missed.recovered),
            (&b"missed"[..], true, true)
        );

        // Not recovered: the notice comes where the gap is, after what was queued before, and
        // the stream goes on. A full queue drops events, never the notice.
        feed.push_at("a".into(), Bytes::from_static(b"old"), Some(44));
        feed.mark_resumed();
        feed.opened_at(Recovery::TOO_OLD, Position { offset: 90, ..at }, true);
        for (text, offset) in [("x", 91), ("y", 92), ("z", 93)] {
            feed.push_at("a".into(), Bytes::from_static(text.as_bytes()), Some(offset));
        }
        match next(&feed) {
            Poll::Ready(Some(Err(status))) => {
                assert_eq!(status.code(), gateway_core::Code::DataLoss);
                assert!(status.message().contains("too_old"), "{status}");
            }
            other => panic!("expected the data_loss notice, got {other:?}"),
        }
        let y = event(&feed);
        // `old` and `x` were dropped for room; `x` was the resumed one.
        assert_eq!((&y.payload[..], y.missed, y.resumed, y.recovered), (&b"y"[..], 2, true, false));
        assert_eq!(&event(&feed).payload[..], b"z");
        assert_eq!(feed.position(), Some(Position { offset: 93, ..at }));

        // A gateway without history on a restore: data_loss too, and the position is dropped.
        feed.mark_resumed();
        feed.opened(true);
        assert!(
            matches!(next(&feed), Poll::Ready(Some(Err(s))) if s.code() == gateway_core::Code::DataLoss)
        );
        assert_eq!(feed.position(), None);
    }

    #[test]
    fn a_restore_of_a_topic_without_history_only_marks_the_next_event_resumed() {
        let feed = Feed::new(1, &TOPIC, Selector::AllKeys, 2);
        feed.mark_resumed();
        feed.opened(true);
        feed.push("a".into(), Bytes::new());
        let a = event(&feed);
        assert_eq!((a.resumed, a.recovered), (true, false));
    }

    #[test]
    fn unkeyed_topics_are_subscribed_without_all_keys() {
        static UNKEYED: TopicDesc = TopicDesc { key: None, ..KEYED };
        let frame = Feed::new(1, &UNKEYED, Selector::AllKeys, 1).subscribe_frame(3, true);
        let Frame::Subscribe(s) = frame else { panic!() };
        assert!(!s.all_keys && s.key.is_empty());
        let Frame::Subscribe(s) =
            Feed::new(1, &TOPIC, Selector::AllKeys, 1).subscribe_frame(3, true)
        else {
            panic!()
        };
        assert!(s.all_keys && s.key.is_empty() && s.subscription_id == 3 && s.topic_id == 7);
    }
}
