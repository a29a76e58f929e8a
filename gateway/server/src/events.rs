//! A connection's pending topic events, and what happens to them when the client falls behind.
//!
//! Events never wait: the hub hands each publication to every local subscriber and moves on, so
//! one stalled client cannot slow the others down. Instead each connection keeps its pending
//! events here, under a byte bound (`send_queue_bytes`), and when a new event does not fit, the
//! topic's lag policy decides:
//!
//! - [`LagPolicy::Disconnect`]: the push fails with [`Slow`], and the connection is closed with
//!   GOAWAY `slow_consumer`.
//! - [`LagPolicy::DropOldest`]: the subscription's oldest pending events are dropped until the new
//!   one fits, and counted; a MISSED frame with the count goes out before its next EVENT.
//! - [`LagPolicy::KeepLatest`]: a pending event of the same key is replaced in place, whether or
//!   not the queue is full (conflation: a client that falls behind gets each key's newest event,
//!   never a backlog). A new key that does not fit falls back to dropping the oldest, as above.
//!
//! Each subscription has a queue of its own, and the writer takes from them in turn, so a busy
//! topic cannot starve a quiet one. The first item of a subscription's queue is its SUBSCRIBED
//! frame; its SUBSCRIPTION_ENDED is its last: control frames sit in the same queue as the events
//! so that they are ordered with them, and are never dropped.
//!
//! A publication's bytes are shared: every queue holds an `Arc` of the same [`Publication`], and
//! the bytes are copied only when the session encodes the EVENT frame into its outbox (a
//! [`FrameSink`]).

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use gateway_core::LagPolicy;
use gateway_core::hash::FastMap;
use gateway_protocol::{Frame, LENGTH_PREFIX_SIZE};

/// One event as the hub received it from the bus, shared by every local subscriber.
#[derive(Debug)]
pub(crate) struct Publication {
    /// The event's key; empty for an unkeyed topic.
    pub(crate) key: String,
    /// The end of its EVENT frame, the same for every subscriber: the key's `u16` length, the
    /// key, the payload. Encoded once, at the hub; each subscriber's frame is its own header
    /// (type, flags, subscription id) and these bytes.
    pub(crate) tail: Bytes,
    /// Its offset in the topic's history; 0 for a topic without history. A subscriber that
    /// speaks positions gets it in EVENT_AT.
    pub(crate) offset: u64,
}

impl Publication {
    /// The event of `key` carrying `payload` (a key is at most a subject token, far below the
    /// `u16` its length takes).
    pub(crate) fn new(key: String, payload: &[u8]) -> Publication {
        Publication::at(key, payload, 0)
    }

    /// The event of `key` carrying `payload` at `offset` of its topic's history.
    pub(crate) fn at(key: String, payload: &[u8], offset: u64) -> Publication {
        let mut tail = BytesMut::with_capacity(2 + key.len() + payload.len());
        tail.put_u16_le(key.len() as u16);
        tail.put_slice(key.as_bytes());
        tail.put_slice(payload);
        Publication { key, tail: tail.freeze(), offset }
    }

    /// The size of its EVENT frame on the wire, length prefix included. (Its EVENT_AT is 8
    /// bytes longer; the queue's bound counts every event as an EVENT.)
    pub(crate) fn frame_size(&self) -> usize {
        LENGTH_PREFIX_SIZE + 2 + 4 + self.tail.len()
    }

    /// The bytes of its EVENT_AT frame after the length prefix.
    pub(crate) fn positioned_len(&self) -> usize {
        2 + 4 + 8 + self.tail.len()
    }
}

/// Where pending frames are encoded: the session's outbox, in its transport's form.
pub(crate) trait FrameSink {
    /// Bytes queued so far.
    fn queued(&self) -> usize;
    /// Appends EVENT `event` of subscription `subscription_id`, or EVENT_AT when the
    /// subscription is `positioned` (opened with SUBSCRIBED_AT).
    fn event(&mut self, subscription_id: u32, event: &Publication, positioned: bool);
    /// Appends a control frame (SUBSCRIBED, MISSED, SUBSCRIPTION_ENDED).
    fn control(&mut self, frame: &Frame);
}

/// Items one subscription sends before the next one with pending items has its turn: one, so a
/// busy topic never holds up a quiet one (a subscription alone sends all it has at once).
const TURN: usize = 1;

/// The client did not keep up with a subscription whose policy is to disconnect it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Slow;

/// Pending events of one connection.
#[derive(Debug)]
pub(crate) struct EventQueue {
    /// Looked up for every event: subscription ids are the client's small numbers, hashed with
    /// a multiply.
    subscriptions: FastMap<u32, SubQueue>,
    /// Subscriptions with pending items, in the order the writer serves them. An id may be
    /// stale (its subscription ended): skipped when met.
    ready: VecDeque<u32>,
    /// Bytes of the pending events (control frames included).
    bytes: usize,
    bound: usize,
}

#[derive(Debug)]
struct SubQueue {
    policy: LagPolicy,
    /// Its events go out as EVENT_AT, with their offsets.
    positioned: bool,
    items: VecDeque<Item>,
    /// The position of `items[0]` in the subscription's history, so that `latest` can hold
    /// positions that stay valid while items leave the front.
    head: u64,
    /// For `keep_latest`: the position of each key's pending event.
    latest: FastMap<KeyOf, u64>,
    /// Events dropped since the last MISSED frame.
    missed: u32,
    /// In `EventQueue::ready`.
    scheduled: bool,
    /// Ended: only its last frame is left to send, and nothing more is queued.
    closing: bool,
    /// For `keep_latest`: pending events that a newer pending event of their key follows.
    superseded: usize,
}

#[derive(Debug)]
enum Item {
    Event(Arc<Publication>),
    /// Boxed: control frames are rare, and an item is kept small (two words), since every
    /// subscriber's queue holds up to its byte bound of items.
    Control(Box<Frame>),
    /// An event replaced or dropped in the middle of the queue.
    Gone,
}

/// A publication as a map key: hashed and compared by its key text, so that `latest` holds no
/// copy of the keys.
#[derive(Debug)]
struct KeyOf(Arc<Publication>);

impl Borrow<str> for KeyOf {
    fn borrow(&self) -> &str {
        &self.0.key
    }
}

impl Hash for KeyOf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key.hash(state);
    }
}

impl PartialEq for KeyOf {
    fn eq(&self, other: &KeyOf) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for KeyOf {}

/// What [`EventQueue::push`] did with an event.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// The event is queued.
    pub(crate) queued: bool,
    /// A pending event of the same key was replaced by it.
    pub(crate) conflated: bool,
    /// Events dropped to make room, the new one included if it was.
    pub(crate) dropped: u32,
}

impl EventQueue {
    pub(crate) fn new(bound: usize) -> EventQueue {
        EventQueue { subscriptions: HashMap::default(), ready: VecDeque::new(), bytes: 0, bound }
    }

    /// Opens subscription `id` with its first frame (SUBSCRIBED or SUBSCRIBED_AT), which goes
    /// out before any of its events; a `positioned` one's events go out as EVENT_AT.
    pub(crate) fn open(&mut self, id: u32, policy: LagPolicy, first: Frame, positioned: bool) {
        let mut sub = SubQueue {
            policy,
            positioned,
            items: VecDeque::new(),
            head: 0,
            latest: HashMap::default(),
            missed: 0,
            scheduled: false,
            closing: false,
            superseded: 0,
        };
        self.bytes += control_size(&first);
        sub.items.push_back(Item::Control(Box::new(first)));
        self.subscriptions.insert(id, sub);
        self.schedule(id);
    }

    /// Ends subscription `id`: its pending events are dropped, and `last` (SUBSCRIPTION_ENDED),
    /// if given, goes out as its final frame. Events pushed for `id` afterwards are ignored.
    pub(crate) fn end(&mut self, id: u32, last: Option<Frame>) {
        let Some(mut sub) = self.subscriptions.remove(&id) else { return };
        self.bytes -= sub.items.iter().map(item_size).sum::<usize>();
        let Some(last) = last else { return };
        sub.items.clear();
        sub.latest.clear();
        sub.missed = 0;
        sub.closing = true;
        self.bytes += control_size(&last);
        sub.items.push_back(Item::Control(Box::new(last)));
        // Kept under its id until the writer has sent the last frame: the client cannot reuse
        // the id before it has read that frame.
        self.subscriptions.insert(id, sub);
        self.schedule(id);
    }

    /// Queues `event` for subscription `id`, applying its lag policy if it does not fit. An
    /// event for a subscription that is not open is ignored.
    ///
    /// # Errors
    ///
    /// [`Slow`] when the event does not fit and the policy is to disconnect.
    pub(crate) fn push(&mut self, id: u32, event: &Arc<Publication>) -> Result<Pushed, Slow> {
        // One map lookup per event: this runs once per subscriber per publication.
        let EventQueue { subscriptions, ready, bytes, bound } = self;
        let Some(sub) = subscriptions.get_mut(&id).filter(|sub| !sub.closing) else {
            return Ok(Pushed::default());
        };
        let size = event.frame_size();
        let mut pushed = Pushed { queued: true, ..Pushed::default() };
        let keep_latest = sub.policy == LagPolicy::KeepLatest;
        if *bytes + size > *bound && *bytes > 0 {
            match sub.policy {
                LagPolicy::Disconnect => return Err(Slow),
                LagPolicy::KeepLatest => {
                    if let Some(&at) = sub.latest.get(event.key.as_str()) {
                        // Behind: the key's pending event is replaced rather than followed.
                        let slot = &mut sub.items[(at - sub.head) as usize];
                        *bytes = *bytes + size - item_size(slot);
                        *slot = Item::Event(event.clone());
                        sub.latest.insert(KeyOf(event.clone()), at);
                        pushed.conflated = true;
                        return Ok(pushed);
                    }
                    // Events a newer one of their key follows go first, and silently.
                    if sub.superseded > 0 {
                        let (freed, superseded) = sub.drop_front(*bytes + size - *bound, true);
                        *bytes -= freed;
                        pushed.conflated = superseded > 0;
                    }
                }
                LagPolicy::DropOldest => {}
            }
            if *bytes + size > *bound {
                let (freed, dropped) = sub.drop_front(*bytes + size - *bound, false);
                *bytes -= freed;
                pushed.dropped = dropped;
            }
            if *bytes + size > *bound {
                pushed.dropped += 1;
                pushed.queued = false;
            }
            sub.missed = sub.missed.saturating_add(pushed.dropped);
            sub.trim();
            if !pushed.queued {
                return Ok(pushed);
            }
        }
        if keep_latest {
            let at = sub.head + sub.items.len() as u64;
            if sub.latest.insert(KeyOf(event.clone()), at).is_some() {
                sub.superseded += 1;
            }
        }
        sub.items.push_back(Item::Event(event.clone()));
        *bytes += size;
        if !sub.scheduled {
            sub.scheduled = true;
            ready.push_back(id);
        }
        Ok(pushed)
    }

    /// Encodes pending frames into `dst`, taking from each subscription in turn, until about
    /// `limit` bytes are written or nothing is pending. Returns the number of EVENT frames
    /// written.
    pub(crate) fn drain_into(&mut self, dst: &mut impl FrameSink, limit: usize) -> usize {
        let start = dst.queued();
        let mut events = 0;
        while dst.queued() - start < limit {
            let Some(id) = self.ready.pop_front() else { break };
            let Some(sub) = self.subscriptions.get_mut(&id) else { continue };
            sub.scheduled = false;
            // A run of this subscription's items: all of them when it is the only one with
            // any, else [`TURN`] before the next one's turn.
            let run = if self.ready.is_empty() { usize::MAX } else { TURN };
            for _ in 0..run {
                if dst.queued() - start >= limit {
                    break;
                }
                let Some(item) = sub.pop() else { break };
                self.bytes -= item_size(&item);
                match item {
                    Item::Event(event) => {
                        if sub.missed > 0 {
                            let subscription_id = id;
                            dst.control(&Frame::Missed { subscription_id, count: sub.missed });
                            sub.missed = 0;
                        }
                        dst.event(id, &event, sub.positioned);
                        events += 1;
                    }
                    Item::Control(frame) => dst.control(&frame),
                    Item::Gone => unreachable!("`pop` skips dropped events"),
                }
            }
            if sub.items.is_empty() {
                if sub.closing {
                    self.subscriptions.remove(&id);
                }
            } else {
                sub.scheduled = true;
                self.ready.push_back(id);
            }
        }
        events
    }

    /// Whether anything is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Bytes of the frames pending.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes that can still be queued before the lag policies apply.
    pub(crate) fn room(&self) -> usize {
        self.bound.saturating_sub(self.bytes)
    }

    /// Drops everything pending (the connection is closing).
    pub(crate) fn clear(&mut self) {
        self.subscriptions.clear();
        self.ready.clear();
        self.bytes = 0;
    }

    fn schedule(&mut self, id: u32) {
        if let Some(sub) = self.subscriptions.get_mut(&id)
            && !sub.scheduled
            && !sub.items.is_empty()
        {
            sub.scheduled = true;
            self.ready.push_back(id);
        }
    }
}

impl SubQueue {
    /// Takes the first pending item, skipping dropped ones.
    fn pop(&mut self) -> Option<Item> {
        loop {
            let item = self.items.pop_front()?;
            let position = self.head;
            self.head += 1;
            match item {
                Item::Gone => continue,
                Item::Event(ref event) if self.policy == LagPolicy::KeepLatest => {
                    // The key's index goes only with its newest event; an older one leaving
                    // is one superseded event fewer.
                    if self.latest.get(event.key.as_str()) == Some(&position) {
                        self.latest.remove(event.key.as_str());
                    } else {
                        self.superseded -= 1;
                    }
                }
                _ => {}
            }
            return Some(item);
        }
    }

    /// Drops events from the front (a control frame there stays) until `need` bytes are freed,
    /// and returns the bytes freed and the events dropped. With `superseded_only`, only events
    /// that a newer event of their key follows (so nothing the client needs is lost); otherwise
    /// any.
    fn drop_front(&mut self, need: usize, superseded_only: bool) -> (usize, u32) {
        let (mut freed, mut dropped) = (0, 0);
        let keep_latest = self.policy == LagPolicy::KeepLatest;
        if !keep_latest {
            // Events at the very front just leave (the usual case: the SUBSCRIBED frame went
            // out long ago); behind a control frame they are marked gone, as below.
            while freed < need {
                let Some(Item::Event(old)) = self.items.front() else { break };
                freed += old.frame_size();
                dropped += 1;
                self.items.pop_front();
                self.head += 1;
            }
        }
        for at in 0..self.items.len() {
            if freed >= need || (superseded_only && self.superseded == 0) {
                break;
            }
            let Item::Event(old) = &self.items[at] else { continue };
            let newest =
                keep_latest && self.latest.get(old.key.as_str()) == Some(&(self.head + at as u64));
            if superseded_only && newest {
                continue;
            }
            freed += old.frame_size();
            if newest {
                self.latest.remove(old.key.as_str());
            } else if keep_latest {
                self.superseded -= 1;
            }
            dropped += 1;
            self.items[at] = Item::Gone;
        }
        (freed, dropped)
    }

    /// Removes dropped events from the front, where they no longer hold a position.
    fn trim(&mut self) {
        while matches!(self.items.front(), Some(Item::Gone)) {
            self.items.pop_front();
            self.head += 1;
        }
    }
}

fn item_size(item: &Item) -> usize {
    match item {
        Item::Event(event) => event.frame_size(),
        Item::Control(frame) => control_size(frame),
        Item::Gone => 0,
    }
}

fn control_size(frame: &Frame) -> usize {
    LENGTH_PREFIX_SIZE + frame.encoded_len().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, Decoded, FrameType, decode};

    use super::*;

    /// The byte-stream form, as the TCP transport writes it.
    impl FrameSink for BytesMut {
        fn queued(&self) -> usize {
            self.len()
        }

        fn event(&mut self, id: u32, event: &Publication, positioned: bool) {
            if positioned {
                self.put_u32_le(event.positioned_len() as u32);
                self.put_u8(FrameType::EventAt as u8);
                self.put_u8(0);
                self.put_u32_le(id);
                self.put_u64_le(event.offset);
            } else {
                self.put_u32_le((event.frame_size() - LENGTH_PREFIX_SIZE) as u32);
                self.put_u8(FrameType::Event as u8);
                self.put_u8(0);
                self.put_u32_le(id);
            }
            self.put_slice(&event.tail);
        }

        fn control(&mut self, frame: &Frame) {
            frame.encode(self, u32::MAX).unwrap();
        }
    }

    fn event(key: &str, n: u8) -> Arc<Publication> {
        Arc::new(Publication::new(key.into(), &[n; 87]))
    }

    /// Room for this many of the test events (100 bytes each on the wire).
    fn queue(events: usize) -> EventQueue {
        assert_eq!(event("k", 0).frame_size(), 100);
        EventQueue::new(events * 100)
    }

    /// Everything pending, as frames.
    fn drain(q: &mut EventQueue) -> Vec<Frame> {
        let mut buf = BytesMut::new();
        while !q.is_empty() {
            q.drain_into(&mut buf, usize::MAX);
        }
        let mut frames = Vec::new();
        while let Decoded::Frame(frame) = decode(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap() {
            frames.push(frame);
        }
        frames
    }

    /// (subscription, key, payload byte) of each EVENT, and MISSED as ("missed", count).
    fn summary(frames: &[Frame]) -> Vec<(u32, String, u32)> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Event(e) => {
                    Some((e.subscription_id, e.key.clone(), u32::from(e.payload[0])))
                }
                Frame::Missed { subscription_id, count } => {
                    Some((*subscription_id, "missed".into(), *count))
                }
                _ => None,
            })
            .collect()
    }

    fn open(q: &mut EventQueue, id: u32, policy: LagPolicy) {
        q.open(id, policy, Frame::Subscribed { subscription_id: id }, false);
        // The SUBSCRIBED frame goes out first and is never dropped.
        assert_eq!(drain(q), vec![Frame::Subscribed { subscription_id: id }]);
    }

    #[test]
    fn a_reader_that_keeps_up_gets_every_event_whatever_the_policy() {
        for policy in [LagPolicy::Disconnect, LagPolicy::DropOldest, LagPolicy::KeepLatest] {
            let mut q = queue(4);
            open(&mut q, 1, policy);
            for n in 0..4 {
                assert_eq!(
                    q.push(1, &event("k", n)),
                    Ok(Pushed { queued: true, ..Pushed::default() })
                );
            }
            let got: Vec<_> = summary(&drain(&mut q)).into_iter().map(|e| e.2).collect();
            assert_eq!(got, [0, 1, 2, 3], "{policy:?}");
        }
    }

    #[test]
    fn disconnect_fails_the_push_that_does_not_fit() {
        let mut q = queue(2);
        open(&mut q, 1, LagPolicy::Disconnect);
        q.push(1, &event("k", 0)).unwrap();
        q.push(1, &event("k", 1)).unwrap();
        assert_eq!(q.push(1, &event("k", 2)), Err(Slow));
    }

    #[test]
    fn drop_oldest_drops_and_reports_the_count_before_the_next_event() {
        let mut q = queue(3);
        open(&mut q, 1, LagPolicy::DropOldest);
        for n in 0..5 {
            q.push(1, &event("k", n)).unwrap();
        }
        assert_eq!(
            summary(&drain(&mut q)),
            [(1, "missed".into(), 2), (1, "k".into(), 2), (1, "k".into(), 3), (1, "k".into(), 4)]
        );
    }

    #[test]
    fn keep_latest_replaces_a_behind_keys_event_and_keeps_every_key() {
        let mut q = queue(3);
        open(&mut q, 1, LagPolicy::KeepLatest);
        for (key, n) in [("a", 0), ("b", 1), ("c", 2), ("a", 3), ("b", 4), ("a", 5)] {
            q.push(1, &event(key, n)).unwrap();
        }
        // Each key's newest, in the order the keys first came: no backlog, nothing missed.
        assert_eq!(
            summary(&drain(&mut q)),
            [(1, "a".into(), 5), (1, "b".into(), 4), (1, "c".into(), 2)]
        );
    }

    #[test]
    fn keep_latest_drops_superseded_events_before_counting_a_loss() {
        let mut q = queue(3);
        open(&mut q, 1, LagPolicy::KeepLatest);
        // Under the bound: both events of `a` stay (a reader that keeps up sees both).
        q.push(1, &event("a", 0)).unwrap();
        q.push(1, &event("a", 1)).unwrap();
        q.push(1, &event("b", 2)).unwrap();
        // Full: a new key pushes out `a`'s superseded event, silently.
        let pushed = q.push(1, &event("c", 3)).unwrap();
        assert!(pushed.queued && pushed.conflated && pushed.dropped == 0, "{pushed:?}");
        // Full again, nothing superseded: the oldest goes, and is counted.
        let pushed = q.push(1, &event("d", 4)).unwrap();
        assert_eq!(pushed.dropped, 1);
        assert_eq!(
            summary(&drain(&mut q)),
            [(1, "missed".into(), 1), (1, "b".into(), 2), (1, "c".into(), 3), (1, "d".into(), 4)]
        );
    }

    #[test]
    fn keep_latest_still_conflates_after_an_older_event_of_the_key_was_sent() {
        let mut q = queue(3);
        open(&mut q, 1, LagPolicy::KeepLatest);
        q.push(1, &event("a", 0)).unwrap();
        q.push(1, &event("a", 1)).unwrap();
        // The writer takes the first `a`; the second is still the key's newest.
        let mut buf = BytesMut::new();
        q.drain_into(&mut buf, 1);
        q.push(1, &event("b", 2)).unwrap();
        q.push(1, &event("c", 3)).unwrap();
        // Full: `a` is replaced in place, not dropped as if superseded.
        let pushed = q.push(1, &event("a", 4)).unwrap();
        assert!(pushed.conflated && pushed.dropped == 0, "{pushed:?}");
        assert_eq!(
            summary(&drain(&mut q)),
            [(1, "a".into(), 4), (1, "b".into(), 2), (1, "c".into(), 3)]
        );
    }

    #[test]
    fn subscriptions_take_turns_and_end_with_their_last_frame() {
        let mut q = queue(10);
        open(&mut q, 1, LagPolicy::DropOldest);
        open(&mut q, 2, LagPolicy::DropOldest);
        for n in 0..3 {
            q.push(1, &event("x", n)).unwrap();
        }
        q.push(2, &event("y", 9)).unwrap();
        let order: Vec<_> = summary(&drain(&mut q)).into_iter().map(|e| e.0).collect();
        assert_eq!(order, [1, 2, 1, 1], "a busy subscription does not hold up a quiet one");

        q.push(1, &event("x", 5)).unwrap();
        let status = gateway_core::Status::permission_denied("gone");
        let ended = Frame::SubscriptionEnded(gateway_protocol::SubscriptionEnded {
            subscription_id: 1,
            status,
        });
        q.end(1, Some(ended.clone()));
        assert_eq!(q.push(1, &event("x", 6)), Ok(Pushed::default()), "ignored once ended");
        assert_eq!(drain(&mut q), vec![ended], "pending events dropped, the last frame sent");
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }
}
