//! The pub/sub hub: one bus subscription per topic (or pattern) per gateway, shared by every
//! local subscriber.
//!
//! The first local subscription to a pattern (`topic.ns.Tracker.position.dev-7`, or
//! `topic.ns.Tracker.position.*` for all keys) makes the hub subscribe to it on the bus; later
//! ones join the same [`Entry`]. A task per entry reads the bus subscription and hands each
//! publication, as one shared [`Publication`], to every subscriber's [`Mailbox`], which never
//! blocks it (see [`crate::mailbox`] and [`crate::events`]). When the last subscriber leaves, the entry lingers
//! for `topic_linger` before the bus subscription is released, so a client that resubscribes at
//! once (a page reload) does not cost two bus round trips.
//!
//! Topics declared `retain` are different: the hub holds an all-keys subscription to each of them
//! for as long as the gateway runs, keeps the last event of each key (up to `retain_max_keys`),
//! and every subscription to the topic, one key or all, is served from that one entry. That is
//! how a new subscriber gets the latest event at once, even if nobody on this gateway was
//! subscribed when it was published.
//!
//! Topics with a `history` are held the same way, and their entry keeps the last events of
//! each key in a [`TopicHistory`], each at a position (`docs/protocol.md`, "History and
//! recovery"). A subscription that asks to recover from a position is answered under the
//! entry's lock: the missed events are queued right after its SUBSCRIBED_AT, and it joins the
//! live subscribers before the lock is released, so no publication falls between the two and
//! none is sent twice.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use gateway_bus::history::{self, Limits, NotRecovered, Payload, TopicHistory};
use gateway_bus::{Bus, BusMessage, Subscription, contract};
use gateway_core::{Selector, Status, TopicDesc};
use gateway_protocol::{Frame, Position, Recovery, SubscribedAt, SubscriptionEnded};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::events::Publication;
use crate::mailbox::{Mailbox, signal};
use crate::metrics::Metrics;

/// How much the hub keeps, and how long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HubOptions {
    /// How long an entry outlives its last subscriber.
    pub(crate) linger: Duration,
    /// Keys whose last event a `retain` topic keeps.
    pub(crate) retain_max_keys: usize,
    /// Payload bytes a topic's history keeps.
    pub(crate) history_max_bytes: usize,
    /// Keys a topic's history keeps.
    pub(crate) history_max_keys: usize,
    /// The most events one recovery sends.
    pub(crate) recovery_max_events: usize,
}

impl From<&crate::config::Config> for HubOptions {
    fn from(config: &crate::config::Config) -> HubOptions {
        HubOptions {
            linger: config.topic_linger,
            retain_max_keys: config.retain_max_keys,
            history_max_bytes: config.history_max_bytes,
            history_max_keys: config.history_max_keys,
            recovery_max_events: config.recovery_max_events,
        }
    }
}

#[cfg(test)]
impl HubOptions {
    /// Small bounds, a one-second linger.
    pub(crate) fn for_tests() -> HubOptions {
        HubOptions {
            linger: Duration::from_secs(1),
            retain_max_keys: 16,
            history_max_bytes: 1 << 20,
            history_max_keys: 16,
            recovery_max_events: 100,
        }
    }
}

/// How a subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// The client does not speak positions: SUBSCRIBED and EVENT.
    Plain,
    /// A SUBSCRIBE from a client that speaks positions: SUBSCRIBED_AT and EVENT_AT on a topic
    /// with history.
    Live,
    /// A SUBSCRIBE_FROM: the events after this position first.
    From(Position),
}

/// The hub of one gateway.
pub(crate) struct Hub {
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    options: HubOptions,
    /// Entries by bus pattern. A std mutex: held only to look up, insert or remove.
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// Cancelled when the gateway stops: every entry's task ends.
    stop: CancellationToken,
}

/// One bus subscription and its local subscribers.
pub(crate) struct Entry {
    pattern: String,
    topic: &'static TopicDesc,
    /// Held for the gateway's lifetime (retain and history topics), never released.
    permanent: bool,
    /// Set once the bus subscription is in place, so that concurrent first subscribers wait for
    /// it together.
    ready: OnceCell<()>,
    state: Mutex<EntryState>,
    /// Cancelled when the entry is released: its task stops, dropping the bus subscription.
    stop: CancellationToken,
}

#[derive(Default)]
struct EntryState {
    /// Subscribers to every key (or to an unkeyed topic).
    all: Vec<Subscriber>,
    /// Subscribers to one key.
    by_key: HashMap<String, Vec<Subscriber>>,
    count: usize,
    /// Bumped by every subscribe, so that a release scheduled before it is called off.
    generation: u64,
    /// No longer in the hub's map; a subscriber that finds it so starts over.
    released: bool,
    retained: Retained,
    /// The topic's history, for a topic that declares one.
    history: Option<TopicHistory<Kept>>,
}

/// A publication as a history keeps it: ready to write again, weighed by its bytes.
#[derive(Clone, Debug)]
struct Kept(Arc<Publication>);

impl Payload for Kept {
    fn weight(&self) -> usize {
        self.0.tail.len()
    }
}

/// One client subscription, as the hub delivers to it: the connection's mailbox and the
/// subscription's id there.
#[derive(Clone)]
struct Subscriber {
    mailbox: Arc<Mailbox>,
    id: u32,
}

impl Subscriber {
    fn is(&self, mailbox: &Arc<Mailbox>, id: u32) -> bool {
        self.id == id && Arc::ptr_eq(&self.mailbox, mailbox)
    }
}

/// What a session keeps of a subscription, to end it.
pub(crate) struct HubSubscription {
    entry: Arc<Entry>,
    key: Option<String>,
}

impl HubSubscription {
    /// The topic and selector subscribed to.
    pub(crate) fn target(&self) -> (&'static TopicDesc, Selector) {
        let selector = self.key.clone().map_or(Selector::AllKeys, Selector::Key);
        (self.entry.topic, selector)
    }
}

impl std::fmt::Debug for HubSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSubscription")
            .field("pattern", &self.entry.pattern)
            .field("key", &self.key)
            .finish()
    }
}

impl Hub {
    pub(crate) fn new(bus: Arc<dyn Bus>, metrics: Arc<Metrics>, options: HubOptions) -> Arc<Hub> {
        Arc::new(Hub {
            bus,
            metrics,
            options,
            entries: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
        })
    }

    /// Subscribes, for the gateway's lifetime, to every `retain` topic and every topic with a
    /// `history` among `topics`, so that their last events are at hand for new subscribers.
    ///
    /// # Errors
    ///
    /// The bus refused a subscription.
    pub(crate) async fn hold(
        self: &Arc<Self>,
        topics: impl IntoIterator<Item = &'static TopicDesc>,
    ) -> Result<(), Status> {
        for topic in topics.into_iter().filter(|t| held(t)) {
            let entry = self.entry(topic, &Selector::AllKeys);
            self.ready(&entry).await?;
        }
        Ok(())
    }

    /// Subscribes subscription `id` of the connection with `mailbox` to `topic`. Its first
    /// frame (SUBSCRIBED, or SUBSCRIBED_AT when `start` speaks positions and the topic has a
    /// history) is queued in the mailbox before the first event, after the bus subscription is
    /// in place; the events a `Start::From` recovers follow it, or else a retain topic's last
    /// events.
    ///
    /// # Errors
    ///
    /// The bus refused the subscription (`unavailable`, or `internal` for a bad subject).
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        topic: &'static TopicDesc,
        selector: Selector,
        mailbox: &Arc<Mailbox>,
        id: u32,
        start: Start,
    ) -> Result<HubSubscription, Status> {
        let key = match selector {
            Selector::Key(ref key) if topic.key.is_some() => Some(key.clone()),
            _ => None,
        };
        loop {
            let entry = self.entry(topic, &selector);
            self.ready(&entry).await?;
            let mut state = entry.state.lock().expect("hub entry lock");
            if state.released {
                continue;
            }
            let (first, recovered) = match (&mut state.history, start) {
                (Some(history), Start::Live | Start::From(_)) => {
                    let room = mailbox.room();
                    let (first, recovered) = self.open_at(history, id, key.as_deref(), start, room);
                    (Frame::SubscribedAt(first), Some(recovered))
                }
                _ => (Frame::Subscribed { subscription_id: id }, None),
            };
            let positioned = recovered.is_some();
            mailbox.open_subscription(id, topic.on_lag, first, positioned);
            let subscriber = Subscriber { mailbox: mailbox.clone(), id };
            match recovered {
                // What it missed, and nothing else: the retained event is among it, or older.
                Some(Some(missed)) => {
                    for event in &missed {
                        self.deliver(&subscriber, event);
                    }
                }
                _ => match &key {
                    Some(key) => {
                        if let Some(event) = state.retained.get(key) {
                            self.deliver(&subscriber, &event);
                        }
                    }
                    None => {
                        for event in state.retained.all() {
                            self.deliver(&subscriber, &event);
                        }
                    }
                },
            }
            match &key {
                Some(key) => state.by_key.entry(key.clone()).or_default().push(subscriber),
                None => state.all.push(subscriber),
            }
            state.count += 1;
            state.generation += 1;
            drop(state);
            self.metrics.subscriptions(1);
            return Ok(HubSubscription { entry, key });
        }
    }

    /// Ends a subscription made by [`Hub::subscribe`]. The connection's mailbox is the caller's
    /// to clean up.
    pub(crate) fn unsubscribe(
        self: &Arc<Self>,
        sub: HubSubscription,
        mailbox: &Arc<Mailbox>,
        id: u32,
    ) {
        let entry = sub.entry;
        let mut state = entry.state.lock().expect("hub entry lock");
        let list = match &sub.key {
            Some(key) => state.by_key.get_mut(key),
            None => Some(&mut state.all),
        };
        let Some(list) = list else { return };
        let Some(at) = list.iter().position(|s| s.is(mailbox, id)) else { return };
        list.swap_remove(at);
        if let Some(key) = &sub.key
            && list.is_empty()
        {
            state.by_key.remove(key);
        }
        state.count -= 1;
        self.metrics.subscriptions(-1);
        if state.count == 0 && !entry.permanent {
            let generation = state.generation;
            let hub = Arc::downgrade(self);
            let entry = entry.clone();
            let linger = self.options.linger;
            tokio::spawn(async move {
                tokio::time::sleep(linger).await;
                if let Some(hub) = hub.upgrade() {
                    hub.release(&entry, generation);
                }
            });
        }
    }

    /// The SUBSCRIBED_AT of subscription `id` to `key` (`None`: every key) of a topic with
    /// `history`, and the events it recovers: `Some` when `start` asked and they can be had,
    /// whole, within the recovery cap and the `room` left in the connection's queue (read
    /// under the entry's lock, so only other topics' events can take from it meanwhile).
    fn open_at(
        &self,
        history: &mut TopicHistory<Kept>,
        id: u32,
        key: Option<&str>,
        start: Start,
        room: usize,
    ) -> (SubscribedAt, Option<Vec<Arc<Publication>>>) {
        let head = history.head();
        let head = Position { epoch: head.epoch, offset: head.offset };
        let at = |recovery, position| SubscribedAt { subscription_id: id, recovery, position };
        let Start::From(from) = start else { return (at(Recovery::NONE, head), None) };
        let after = history::Position { epoch: from.epoch, offset: from.offset };
        let (cap, now) = (self.options.recovery_max_events, Instant::now());
        let found = match key {
            Some(key) => history.recover(key, after, cap, now),
            None => history.recover_all(after, cap, now),
        };
        let (recovery, missed) = match found {
            Ok(missed) => {
                let bytes: usize = missed.iter().map(|e| e.payload.0.frame_size() + 8).sum();
                if bytes > room {
                    (Recovery::TOO_MANY, None)
                } else {
                    (Recovery::RECOVERED, Some(missed.into_iter().map(|e| e.payload.0).collect()))
                }
            }
            Err(NotRecovered::EpochChanged) => (Recovery::EPOCH_CHANGED, None),
            Err(NotRecovered::TooOld) => (Recovery::TOO_OLD, None),
            Err(NotRecovered::TooMany) => (Recovery::TOO_MANY, None),
            Err(NotRecovered::Ahead) => (Recovery::AHEAD, None),
        };
        let count = missed.as_ref().map_or(0, Vec::len);
        self.metrics.recovery(recovery, count);
        match missed {
            Some(missed) => (at(recovery, from), Some(missed)),
            None => (at(recovery, head), None),
        }
    }

    /// Stops every entry's task (the gateway is stopping).
    /// This gateway's subscribers of each topic that has any: (subscriptions, keys subscribed
    /// one by one), for the operator's console.
    pub(crate) fn subscribers(&self) -> HashMap<&'static str, (usize, usize)> {
        let entries: Vec<Arc<Entry>> =
            self.entries.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        let mut counts: HashMap<&'static str, (usize, usize)> = HashMap::new();
        for entry in entries {
            let state = entry.state.lock().unwrap_or_else(PoisonError::into_inner);
            let count = counts.entry(entry.topic.name).or_default();
            count.0 += state.count;
            count.1 += state.by_key.len();
        }
        counts
    }

    pub(crate) fn close(&self) {
        self.stop.cancel();
    }

    /// The entry for `topic` and `selector`, created (not yet subscribed) if there is none.
    fn entry(&self, topic: &'static TopicDesc, selector: &Selector) -> Arc<Entry> {
        let selector = if held(topic) { &Selector::AllKeys } else { selector };
        let pattern = contract::topic_pattern(topic, selector);
        let mut entries = self.entries.lock().expect("hub lock");
        entries
            .entry(pattern.clone())
            .or_insert_with(|| {
                let options = &self.options;
                let history = topic.history.map(|declared| {
                    let limits = Limits {
                        events: declared.events as usize,
                        ttl: (declared.ttl_ms > 0).then(|| Duration::from_millis(declared.ttl_ms)),
                        bytes: options.history_max_bytes,
                        keys: options.history_max_keys,
                    };
                    TopicHistory::new(fresh_epoch(), limits)
                });
                Arc::new(Entry {
                    pattern,
                    topic,
                    permanent: held(topic),
                    ready: OnceCell::new(),
                    state: Mutex::new(EntryState {
                        retained: Retained::new(if topic.retain {
                            options.retain_max_keys
                        } else {
                            0
                        }),
                        history,
                        ..EntryState::default()
                    }),
                    stop: self.stop.child_token(),
                })
            })
            .clone()
    }

    /// Makes sure `entry`'s bus subscription is in place, subscribing if it is the first.
    async fn ready(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<(), Status> {
        entry
            .ready
            .get_or_try_init(|| async {
                match self.bus.subscribe(&entry.pattern, None).await {
                    Ok(subscription) => {
                        self.metrics.bus_subscriptions(1);
                        debug!(pattern = %entry.pattern, "hub subscribed");
                        tokio::spawn(pump(Arc::downgrade(self), entry.clone(), subscription));
                        Ok(())
                    }
                    Err(e) => {
                        self.forget(entry);
                        Err(e.to_status())
                    }
                }
            })
            .await
            .copied()
    }

    /// Releases `entry` if nobody subscribed since `generation`.
    fn release(&self, entry: &Arc<Entry>, generation: u64) {
        let mut state = entry.state.lock().expect("hub entry lock");
        if state.count > 0 || state.generation != generation || state.released {
            return;
        }
        state.released = true;
        drop(state);
        self.forget(entry);
        entry.stop.cancel();
        debug!(pattern = %entry.pattern, "hub released");
    }

    /// Removes `entry` from the map, if it is still the one there.
    fn forget(&self, entry: &Arc<Entry>) {
        let mut entries = self.entries.lock().expect("hub lock");
        if entries.get(&entry.pattern).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            entries.remove(&entry.pattern);
        }
    }

    fn deliver(&self, subscriber: &Subscriber, event: &Arc<Publication>) {
        let mut lag = Lag::default();
        lag.deliver(subscriber, event);
        lag.count(&self.metrics);
    }

    /// Hands one bus message to every local subscriber of `entry`.
    fn publish(&self, entry: &Entry, message: BusMessage) {
        let Some(key) = contract::key_from_subject(entry.topic, &message.subject) else {
            debug!(subject = %message.subject, "a message on a subject of no topic key; skipped");
            return;
        };
        self.metrics.publication();
        let plain = entry.topic.history.is_none();
        let mut event = plain.then(|| Arc::new(Publication::new(key.clone(), &message.payload)));
        let mut state = entry.state.lock().expect("hub entry lock");
        if let Some(history) = &mut state.history {
            // Numbered under the lock that orders the fan-out, so offsets rise as delivered.
            let offset = history.head().offset + 1;
            let kept = Arc::new(Publication::at(key, &message.payload, offset));
            history.append(&kept.key, Kept(kept.clone()), Instant::now());
            event = Some(kept);
        }
        let event = event.expect("made above for a topic without history");
        state.retained.insert(&event);
        // Counted once for the whole fan-out, not per subscriber.
        let mut lag = Lag::default();
        for subscriber in &state.all {
            lag.deliver(subscriber, &event);
        }
        if let Some(subscribers) = state.by_key.get(&event.key) {
            for subscriber in subscribers {
                lag.deliver(subscriber, &event);
            }
        }
        drop(state);
        lag.count(&self.metrics);
    }

    /// The bus ended `entry`'s subscription on its own: its subscribers are told, and the next
    /// subscriber starts a new one.
    fn lost(&self, entry: &Arc<Entry>) {
        warn!(pattern = %entry.pattern, "the bus ended a topic subscription");
        self.forget(entry);
        let mut state = entry.state.lock().expect("hub entry lock");
        state.released = true;
        let subscribers = std::mem::take(&mut state.all)
            .into_iter()
            .chain(std::mem::take(&mut state.by_key).into_values().flatten());
        for subscriber in subscribers {
            let status = Status::unavailable("the gateway lost the topic's bus subscription");
            let ended = SubscriptionEnded { subscription_id: subscriber.id, status };
            subscriber.mailbox.ended_by_hub(subscriber.id, Frame::SubscriptionEnded(ended));
            self.metrics.subscriptions(-1);
        }
        state.count = 0;
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What one fan-out cost its slow subscribers: events dropped, and keys conflated.
#[derive(Default)]
struct Lag {
    dropped: u32,
    conflated: u32,
}

impl Lag {
    /// Hands `event` to `subscriber`'s mailbox (which never waits); a subscriber too slow for a
    /// `disconnect` topic is told to go.
    fn deliver(&mut self, subscriber: &Subscriber, event: &Arc<Publication>) {
        match subscriber.mailbox.push_event(subscriber.id, event) {
            Ok(pushed) => {
                self.dropped = self.dropped.saturating_add(pushed.dropped);
                self.conflated += u32::from(pushed.conflated);
            }
            Err(_slow) => subscriber.mailbox.signal(signal::SLOW),
        }
    }

    fn count(&self, metrics: &Metrics) {
        metrics.events_lagged(self.dropped, self.conflated);
    }
}

/// Whether the hub holds `topic` for the gateway's lifetime: to keep its last events
/// (`retain`) or its history.
fn held(topic: &TopicDesc) -> bool {
    topic.retain || topic.history.is_some()
}

/// A new history's epoch: random, so that a position from before a restart, or from another
/// gateway's memory, is never mistaken for one of this history. Never 0.
fn fresh_epoch() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::hash::RandomState::new().hash_one((nanos, std::process::id())).max(1)
}

/// Reads `entry`'s bus subscription until it is released or the bus ends it.
async fn pump(hub: Weak<Hub>, entry: Arc<Entry>, mut subscription: Subscription) {
    loop {
        let message = tokio::select! {
            biased;
            _ = entry.stop.cancelled() => break,
            message = subscription.next() => message,
        };
        let Some(hub) = hub.upgrade() else { break };
        match message {
            Some(message) => hub.publish(&entry, message),
            None => {
                hub.lost(&entry);
                break;
            }
        }
    }
    if let Some(hub) = hub.upgrade() {
        hub.metrics.bus_subscriptions(-1);
    }
}

/// The last event of each key of a retain topic, forgetting the least recently updated key past
/// `max`. Empty and free for other topics (`max` 0).
#[derive(Default)]
struct Retained {
    max: usize,
    by_key: HashMap<String, (u64, Arc<Publication>)>,
    /// Keys by the sequence number of their last update, oldest first.
    order: BTreeMap<u64, String>,
    next: u64,
}

impl Retained {
    fn new(max: usize) -> Retained {
        Retained { max, ..Retained::default() }
    }

    fn insert(&mut self, event: &Arc<Publication>) {
        if self.max == 0 {
            return;
        }
        let seq = self.next;
        self.next += 1;
        if let Some((old, _)) = self.by_key.insert(event.key.clone(), (seq, event.clone())) {
            self.order.remove(&old);
        }
        self.order.insert(seq, event.key.clone());
        if self.by_key.len() > self.max
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.by_key.remove(&oldest);
        }
    }

    fn get(&self, key: &str) -> Option<Arc<Publication>> {
        self.by_key.get(key).map(|(_, event)| event.clone())
    }

    /// Every key's last event, oldest update first.
    fn all(&self) -> Vec<Arc<Publication>> {
        self.order.values().filter_map(|key| self.get(key)).collect()
    }
}
