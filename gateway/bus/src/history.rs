//! A topic's history in memory: the last events of each key, each at a position, so that a
//! subscriber that comes back can ask for what it missed and get exactly that, in order, or be
//! told plainly that it cannot (issue 19; the wire and the gateway's use of it come next).
//!
//! - **Positions.** Every event appended to a topic gets the next `offset` of the topic (one
//!   sequence for all its keys, as a JetStream stream numbers its messages), so one key's
//!   offsets rise but have gaps. The store's `epoch` is drawn when it is made: a position of
//!   another epoch (the history was lost, a process restarted) is never recovered from.
//! - **Bounds.** Each key keeps at most [`Limits::events`] events and none older than
//!   [`Limits::ttl`]; the topic keeps at most [`Limits::bytes`] of payload, evicting its oldest
//!   events first, whatever their key, and at most [`Limits::keys`] keys, forgetting the one
//!   appended to longest ago. Each key remembers the highest offset it lost, and the topic the
//!   highest of the keys it forgot, so a position older than that is known to be too old rather
//!   than answered with a hole (for a key never seen since, conservatively so).
//! - **Recovery** answers the key's events after a position ([`TopicHistory::recover`]), or
//!   every key's for an all-keys subscription ([`TopicHistory::recover_all`]), in order, or why
//!   not:
//!   [`NotRecovered::EpochChanged`], [`NotRecovered::TooOld`], [`NotRecovered::TooMany`] (more
//!   than the caller's cap), [`NotRecovered::Ahead`] (a position this store never gave).
//!
//! A bus that keeps histories itself, for every gateway on it, offers a [`SharedHistory`]
//! ([`crate::Bus::shared_history`]; NATS keeps them in JetStream, `crate::nats::history`): the
//! positions are then the bus's, the same on every gateway, and outlive any one of them.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::{BoxFuture, TopicDesc};

use crate::{BusError, BusMessage};

/// Where an event stands in its topic's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub epoch: u64,
    pub offset: u64,
}

/// How much one topic keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Events per key (per topic when unkeyed), at least 1.
    pub events: usize,
    /// The oldest an event may be; `None`: no age limit.
    pub ttl: Option<Duration>,
    /// Payload bytes of the whole topic.
    pub bytes: usize,
    /// Keys the topic keeps events of, at least 1; a new key past it makes the topic forget
    /// the key it appended to longest ago, all its events.
    pub keys: usize,
}

/// What a history keeps of an event: its payload ([`Bytes`]), or whatever its owner
/// prepared to send it (a gateway keeps the event ready to write), weighed for the byte bound.
pub trait Payload: Clone {
    /// The bytes it counts for against [`Limits::bytes`].
    fn weight(&self) -> usize;
}

impl Payload for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// One kept event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored<P = Bytes> {
    pub offset: u64,
    pub payload: P,
    pub at: Instant,
}

/// Why a position cannot be recovered from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotRecovered {
    /// The position is of another history (lost since, or another store).
    EpochChanged,
    /// Events after the position were evicted (count, age or bytes).
    TooOld,
    /// More events than the caller takes at once.
    TooMany,
    /// The position is past anything this history gave.
    Ahead,
}

/// The history of one topic, its keys' events at their positions.
#[derive(Debug)]
pub struct TopicHistory<P = Bytes> {
    epoch: u64,
    limits: Limits,
    /// The offset the next event gets (offsets start at 1).
    next: u64,
    keys: HashMap<String, KeyRing<P>>,
    /// The highest offset of any event of a key the topic forgot whole ([`Limits::keys`]): a
    /// key not kept may have had events up to here.
    forgotten_through: u64,
    /// Every kept event's key in offset order (with evicted ones skipped lazily), for the byte
    /// bound's oldest-first eviction.
    order: VecDeque<(u64, String)>,
    /// Every append's key in offset order (with all but each key's last skipped lazily), for
    /// the key bound's eviction of the key appended to longest ago.
    recency: VecDeque<(u64, String)>,
    bytes: usize,
    /// Events kept, all keys together.
    kept: usize,
}

#[derive(Debug)]
struct KeyRing<P> {
    events: VecDeque<Stored<P>>,
    /// The highest offset evicted from this key; 0 when none was.
    lost_through: u64,
    /// The offset of the key's last append (its place in the key bound's order).
    last: u64,
}

impl<P> KeyRing<P> {
    fn new(lost_through: u64) -> KeyRing<P> {
        KeyRing { events: VecDeque::new(), lost_through, last: 0 }
    }

    /// Whether the event at `offset` is kept (the ring is in offset order).
    fn holds(&self, offset: u64) -> bool {
        self.events.binary_search_by_key(&offset, |e| e.offset).is_ok()
    }
}

impl<P: Payload> TopicHistory<P> {
    /// An empty history under `epoch`.
    pub fn new(epoch: u64, limits: Limits) -> TopicHistory<P> {
        let limits = Limits { events: limits.events.max(1), keys: limits.keys.max(1), ..limits };
        TopicHistory {
            epoch,
            limits,
            next: 1,
            keys: HashMap::new(),
            forgotten_through: 0,
            order: VecDeque::new(),
            recency: VecDeque::new(),
            bytes: 0,
            kept: 0,
        }
    }

    /// The position the last appended event got, or the one before the first (offset 0).
    pub fn head(&self) -> Position {
        Position { epoch: self.epoch, offset: self.next - 1 }
    }

    /// Keeps `payload` as `key`'s newest event at `now`, evicting what the limits say, and
    /// returns its position.
    pub fn append(&mut self, key: &str, payload: P, now: Instant) -> Position {
        let offset = self.next;
        self.next += 1;
        if !self.keys.contains_key(key) && self.keys.len() >= self.limits.keys {
            self.forget_stalest_key();
        }
        self.bytes += payload.weight();
        // A key seen anew may be one the topic forgot: what it had up to `forgotten_through`
        // counts as lost.
        let forgotten_through = self.forgotten_through;
        let ring =
            self.keys.entry(key.to_owned()).or_insert_with(|| KeyRing::new(forgotten_through));
        ring.last = offset;
        ring.events.push_back(Stored { offset, payload, at: now });
        self.kept += 1;
        while ring.events.len() > self.limits.events {
            let old = ring.events.pop_front().expect("over the limit, so not empty");
            ring.lost_through = old.offset;
            self.bytes -= old.payload.weight();
            self.kept -= 1;
        }
        self.order.push_back((offset, key.to_owned()));
        self.recency.push_back((offset, key.to_owned()));
        while self.bytes > self.limits.bytes {
            let Some((oldest, key)) = self.order.pop_front() else { break };
            let Some(ring) = self.keys.get_mut(&key) else { continue };
            // Already gone by the count or the age: nothing to free.
            if ring.events.front().is_some_and(|e| e.offset == oldest) {
                let old = ring.events.pop_front().expect("just seen");
                ring.lost_through = old.offset;
                self.bytes -= old.payload.weight();
                self.kept -= 1;
            }
        }
        // The lists only grow: compact each when mostly stale, which costs its length once per
        // as many appends, so O(1) per append.
        if self.order.len() > 2 * self.kept + 64 {
            let keys = &self.keys;
            self.order
                .retain(|(offset, key)| keys.get(key).is_some_and(|ring| ring.holds(*offset)));
        }
        if self.recency.len() > 2 * self.keys.len() + 64 {
            let keys = &self.keys;
            self.recency.retain(|(offset, key)| keys.get(key).is_some_and(|r| r.last == *offset));
        }
        Position { epoch: self.epoch, offset }
    }

    /// Forgets the key appended to longest ago, all its events: the first entry of the recency
    /// list that is still its key's last append (the stale entries before it are dropped, each
    /// once).
    fn forget_stalest_key(&mut self) {
        while let Some((offset, key)) = self.recency.pop_front() {
            if self.keys.get(&key).is_none_or(|ring| ring.last != offset) {
                continue;
            }
            let ring = self.keys.remove(&key).expect("just seen");
            self.forgotten_through = self.forgotten_through.max(ring.last);
            self.bytes -= ring.events.iter().map(|e| e.payload.weight()).sum::<usize>();
            self.kept -= ring.events.len();
            return;
        }
    }

    /// Every key's events after `after`, in offset order, at most `cap` of them, as of `now`
    /// (an all-keys subscription's recovery: the offsets are the topic's).
    ///
    /// # Errors
    ///
    /// Why they cannot be given whole ([`NotRecovered`]).
    pub fn recover_all(
        &mut self,
        after: Position,
        cap: usize,
        now: Instant,
    ) -> Result<Vec<Stored<P>>, NotRecovered> {
        self.check(after)?;
        let keys: Vec<String> = self.keys.keys().cloned().collect();
        for key in &keys {
            self.expire(key, now);
        }
        let lost = self.keys.values().map(|ring| ring.lost_through).max().unwrap_or(0);
        if after.offset < lost.max(self.forgotten_through) {
            return Err(NotRecovered::TooOld);
        }
        let mut missed: Vec<Stored<P>> = self
            .keys
            .values()
            .flat_map(|ring| ring.events.iter().filter(|e| e.offset > after.offset).cloned())
            .collect();
        if missed.len() > cap {
            return Err(NotRecovered::TooMany);
        }
        missed.sort_by_key(|e| e.offset);
        Ok(missed)
    }

    /// `key`'s events after `after`, oldest first, at most `cap` of them, as of `now`.
    ///
    /// # Errors
    ///
    /// Why they cannot be given whole ([`NotRecovered`]).
    pub fn recover(
        &mut self,
        key: &str,
        after: Position,
        cap: usize,
        now: Instant,
    ) -> Result<Vec<Stored<P>>, NotRecovered> {
        self.check(after)?;
        self.expire(key, now);
        let Some(ring) = self.keys.get(key) else {
            // A key not kept: it may be one the topic forgot, with events after `after`.
            if after.offset < self.forgotten_through {
                return Err(NotRecovered::TooOld);
            }
            return Ok(Vec::new());
        };
        if after.offset < ring.lost_through {
            return Err(NotRecovered::TooOld);
        }
        let missed: Vec<Stored<P>> =
            ring.events.iter().filter(|e| e.offset > after.offset).cloned().collect();
        if missed.len() > cap {
            return Err(NotRecovered::TooMany);
        }
        Ok(missed)
    }

    /// A position this history may answer from: of its epoch, and not past its head.
    fn check(&self, after: Position) -> Result<(), NotRecovered> {
        if after.epoch != self.epoch {
            return Err(NotRecovered::EpochChanged);
        }
        if after.offset >= self.next {
            return Err(NotRecovered::Ahead);
        }
        Ok(())
    }

    /// Drops `key`'s events older than the age limit.
    fn expire(&mut self, key: &str, now: Instant) {
        let Some(ttl) = self.limits.ttl else { return };
        let Some(ring) = self.keys.get_mut(key) else { return };
        while ring.events.front().is_some_and(|e| now.saturating_duration_since(e.at) > ttl) {
            let old = ring.events.pop_front().expect("just seen");
            ring.lost_through = old.offset;
            self.bytes -= old.payload.weight();
            self.kept -= 1;
        }
    }

    /// Events kept, all keys together.
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// Payload bytes kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Topic histories kept by the bus, shared by every gateway on it.
///
/// A gateway subscribes to [`SharedHistory::live_pattern`], where the bus delivers each event of
/// the topic once it is kept, in offset order, with its position ([`SharedHistory::live_event`]);
/// then it [opens](SharedHistory::open) the history, and [reads](SharedHistory::read) from it to
/// recover a subscription.
pub trait SharedHistory: Send + Sync + 'static {
    /// The bus pattern on which `topic`'s kept events arrive, with their positions.
    fn live_pattern(&self, topic: &'static TopicDesc) -> String;

    /// Makes sure `topic`'s history exists under `limits` (created, or updated to them), and
    /// returns its newest position.
    fn open(
        &self,
        topic: &'static TopicDesc,
        limits: Limits,
    ) -> BoxFuture<'_, Result<Position, BusError>>;

    /// Publishes an event of a topic with this history on `subject` and returns once the
    /// history has stored it: an event acknowledged to its publisher is then kept, whatever
    /// fails afterwards. Fails (the bus's error) when it cannot be stored in time.
    fn publish_stored(
        &self,
        subject: &str,
        headers: crate::Headers,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<(), BusError>>;

    /// The offset and the key of an event that arrived on [`SharedHistory::live_pattern`];
    /// `None` for a message that is not one.
    fn live_event(&self, topic: &'static TopicDesc, message: &BusMessage) -> Option<(u64, String)>;

    /// The events of `key` (every key: `None`) with offsets after `after` and up to `through`,
    /// oldest first, at most `cap` of them, or why they cannot be given whole. The outer error is
    /// the bus's (the history could not be read).
    fn read<'a>(
        &'a self,
        topic: &'static TopicDesc,
        key: Option<&'a str>,
        after: Position,
        through: u64,
        cap: usize,
    ) -> BoxFuture<'a, Result<Result<Vec<Recovered>, NotRecovered>, BusError>>;
}

/// One event read back from a [`SharedHistory`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    pub offset: u64,
    pub key: String,
    pub payload: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(events: usize, bytes: usize) -> Limits {
        Limits { events, ttl: None, bytes, keys: 1_000 }
    }

    fn offsets(events: &[Stored]) -> Vec<u64> {
        events.iter().map(|e| e.offset).collect()
    }

    #[test]
    fn a_key_recovers_exactly_what_came_after_its_position() {
        let now = Instant::now();
        let mut history = TopicHistory::new(7, limits(10, 1 << 20));
        let seen = history.append("a", Bytes::from_static(b"1"), now);
        history.append("b", Bytes::from_static(b"x"), now);
        history.append("a", Bytes::from_static(b"2"), now);
        history.append("a", Bytes::from_static(b"3"), now);
        let missed = history.recover("a", seen, 100, now).unwrap();
        assert_eq!(offsets(&missed), [3, 4]);
        assert_eq!(missed[0].payload, Bytes::from_static(b"2"));
        assert!(history.recover("a", history.head(), 100, now).unwrap().is_empty());
        assert!(history.recover("c", seen, 100, now).unwrap().is_empty(), "a key never seen");
        let other = Position { epoch: 8, ..seen };
        assert_eq!(history.recover("a", other, 100, now), Err(NotRecovered::EpochChanged));
        let ahead = Position { epoch: 7, offset: 99 };
        assert_eq!(history.recover("a", ahead, 100, now), Err(NotRecovered::Ahead));
        assert_eq!(history.recover("a", seen, 1, now), Err(NotRecovered::TooMany));
    }

    #[test]
    fn count_age_and_bytes_evict_and_make_older_positions_too_old() {
        let start = Instant::now();
        let mut history = TopicHistory::new(1, limits(2, 1 << 20));
        let first = history.append("a", Bytes::from_static(b"1"), start);
        let second = history.append("a", Bytes::from_static(b"2"), start);
        history.append("a", Bytes::from_static(b"3"), start);
        assert_eq!(
            history.recover("a", Position { offset: 0, ..first }, 9, start),
            Err(NotRecovered::TooOld)
        );
        assert_eq!(offsets(&history.recover("a", first, 9, start).unwrap()), [2, 3]);
        assert_eq!(offsets(&history.recover("a", second, 9, start).unwrap()), [3]);

        let ttl = Limits { ttl: Some(Duration::from_secs(60)), ..limits(10, 1 << 20) };
        let mut aged = TopicHistory::new(1, ttl);
        let old = aged.append("a", Bytes::from_static(b"old"), start);
        aged.append("a", Bytes::from_static(b"new"), start + Duration::from_secs(50));
        let later = start + Duration::from_secs(90);
        assert_eq!(
            aged.recover("a", Position { offset: 0, ..old }, 9, later),
            Err(NotRecovered::TooOld)
        );
        assert_eq!(offsets(&aged.recover("a", old, 9, later).unwrap()), [2]);

        // 4 bytes for the whole topic: the oldest events go first, whatever their key.
        let mut small = TopicHistory::new(1, limits(10, 4));
        let a1 = small.append("a", Bytes::from_static(b"aa"), start);
        small.append("b", Bytes::from_static(b"bb"), start);
        small.append("b", Bytes::from_static(b"cc"), start);
        assert_eq!(small.bytes(), 4);
        assert_eq!(
            small.recover("a", Position { offset: 0, ..a1 }, 9, start),
            Err(NotRecovered::TooOld)
        );
        assert!(small.recover("a", a1, 9, start).unwrap().is_empty());
    }

    #[test]
    fn past_the_key_bound_the_stalest_key_is_forgotten_and_all_keys_recover_in_order() {
        let now = Instant::now();
        let mut history = TopicHistory::new(1, Limits { keys: 2, ..limits(10, 1 << 20) });
        let start = history.head();
        history.append("a", Bytes::from_static(b"a1"), now);
        let b1 = history.append("b", Bytes::from_static(b"b1"), now);
        history.append("a", Bytes::from_static(b"a2"), now);
        assert_eq!(offsets(&history.recover_all(start, 9, now).unwrap()), [1, 2, 3]);
        assert_eq!(offsets(&history.recover_all(b1, 9, now).unwrap()), [3]);
        // A third key: `b` (last appended at 2) is forgotten, `a` (at 3) kept.
        history.append("c", Bytes::from_static(b"c1"), now);
        assert_eq!(history.bytes(), 6);
        assert_eq!(history.recover("b", start, 9, now), Err(NotRecovered::TooOld));
        assert_eq!(history.recover("b", b1, 9, now).unwrap(), vec![], "nothing of b after 2");
        assert_eq!(history.recover_all(start, 9, now), Err(NotRecovered::TooOld));
        assert_eq!(offsets(&history.recover_all(b1, 9, now).unwrap()), [3, 4]);
        assert_eq!(offsets(&history.recover("a", start, 9, now).unwrap()), [1, 3]);
    }

    proptest! {
        /// Against a model that keeps everything: whatever the appends and the bounds, a
        /// recovery (of one key, or of all) either gives exactly the events after the
        /// position, in order, or says the position is too old, and it says too old only when
        /// something after the position was evicted. The byte total is never over the bound.
        #[test]
        fn recovery_is_exact_or_says_too_old(
            appends in prop::collection::vec((0..3u8, 1..5usize), 1..200),
            per_key in 1..20usize,
            bytes in 4..200usize,
            probes in prop::collection::vec((0..4u8, 0..220u64), 1..40),
            key_bound in 1..4usize,
        ) {
            let now = Instant::now();
            let bounds = Limits { keys: key_bound, ..limits(per_key, bytes) };
            let mut history = TopicHistory::new(3, bounds);
            let mut all: Vec<(u64, u8, usize)> = Vec::new();
            for (key, len) in appends {
                let position = history.append(&key.to_string(), Bytes::from(vec![key; len]), now);
                all.push((position.offset, key, len));
                prop_assert!(history.bytes() <= bytes);
                let counted: usize = history.keys.values().map(|ring| ring.events.len()).sum();
                prop_assert_eq!(history.kept(), counted);
                // The keys kept are the `key_bound` appended to most recently.
                let mut recent: Vec<u8> = Vec::new();
                for (_, k, _) in all.iter().rev() {
                    if !recent.contains(k) && recent.len() < key_bound {
                        recent.push(*k);
                    }
                }
                let mut kept: Vec<u8> = history.keys.keys().map(|k| k.parse().unwrap()).collect();
                kept.sort_unstable();
                recent.sort_unstable();
                prop_assert_eq!(kept, recent);
            }
            for (key, after) in probes {
                let after = after.min(history.head().offset);
                let position = Position { epoch: 3, offset: after };
                // Key 3 stands for every key: an all-keys subscription.
                if key == 3 {
                    let expected: Vec<u64> = all.iter()
                        .filter(|(offset, _, _)| *offset > after)
                        .map(|(offset, _, _)| *offset)
                        .collect();
                    match history.recover_all(position, usize::MAX, now) {
                        Ok(events) => prop_assert_eq!(offsets(&events), expected),
                        Err(NotRecovered::TooOld) => prop_assert!(
                            all.iter().any(|(o, k, _)| *o > after && !history_has(&history, *k, *o))
                        ),
                        Err(other) => prop_assert!(false, "unexpected {:?}", other),
                    }
                    continue;
                }
                let expected: Vec<u64> = all.iter()
                    .filter(|(offset, k, _)| *k == key && *offset > after)
                    .map(|(offset, _, _)| *offset)
                    .collect();
                match history.recover(&key.to_string(), position, usize::MAX, now) {
                    Ok(events) => prop_assert_eq!(offsets(&events), expected),
                    Err(NotRecovered::TooOld) => {
                        // Only when something after the position was evicted: an event of this
                        // key, or (a key forgotten whole cannot be told from one never seen, so
                        // conservatively) of any key.
                        prop_assert!(
                            all.iter().any(|(o, k, _)| *o > after && !history_has(&history, *k, *o))
                        );
                    }
                    Err(other) => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
    }

    fn history_has(history: &TopicHistory, key: u8, offset: u64) -> bool {
        history.keys.get(&key.to_string()).is_some_and(|ring| ring.holds(offset))
    }
}
