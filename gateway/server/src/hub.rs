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
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use gateway_bus::history::{SharedHistory, TopicHistory};
use gateway_bus::{Bus, BusMessage, Subscription, contract};
use gateway_core::{Selector, Status, TopicDesc};
use gateway_protocol::{Frame, Position, Recovery, SubscriptionEnded};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::events::Publication;
use crate::mailbox::{Mailbox, signal};
use crate::metrics::Metrics;

mod history;
#[cfg(test)]
mod tests;

use history::{History, Kept, Opening, Shared};

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
    /// Histories in this gateway's memory even when the bus keeps them.
    pub(crate) history_in_memory: bool,
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
            history_in_memory: config.history_store == crate::config::HistoryStore::Memory,
            recovery_max_events: config.recovery_max_events,
        }
    }
}

#[cfg(any(test, feature = "fuzz"))]
impl HubOptions {
    /// Small bounds, a one-second linger.
    pub(crate) fn for_tests() -> HubOptions {
        HubOptions {
            linger: Duration::from_secs(1),
            retain_max_keys: 16,
            history_max_bytes: 1 << 20,
            history_max_keys: 16,
            history_in_memory: false,
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
    /// The bus's own history store, when it keeps one (NATS: JetStream) and the gateway uses it
    /// (`history_store = "bus"`).
    store: Option<Arc<dyn SharedHistory>>,
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
    history: Option<History>,
}

/// One client subscription, as the hub delivers to it: the connection's mailbox and the
/// subscription's id there.
#[derive(Clone)]
struct Subscriber {
    mailbox: Arc<Mailbox>,
    id: u32,
    /// Events of a history at or below this offset are the subscriber's already (it recovered
    /// them, or brought a position from another gateway that is ahead of this one's); 0 for
    /// the others.
    after: u64,
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
            // The bus's history store, unless the histories are kept in this gateway's memory.
            store: bus.shared_history().filter(|_| !options.history_in_memory),
            bus,
            metrics,
            options,
            entries: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
        })
    }

    /// Publishes a client's event of `topic` on `subject`. For a topic whose history the bus
    /// keeps, the answer waits until the history has stored it (`SharedHistory::publish_stored`):
    /// an acknowledged event is never lost to a failure that follows. Other events are handed
    /// to the bus.
    pub(crate) fn publish_event(
        &self,
        topic: &'static TopicDesc,
        subject: String,
        headers: gateway_bus::Headers,
        payload: bytes::Bytes,
    ) -> gateway_core::BoxFuture<'static, Result<(), gateway_bus::BusError>> {
        let kept = history::limits(topic, &self.options).is_some();
        match &self.store {
            Some(store) if kept => {
                let store = store.clone();
                Box::pin(async move { store.publish_stored(&subject, headers, payload).await })
            }
            _ => {
                let bus = self.bus.clone();
                Box::pin(async move { bus.publish(&subject, headers, payload).await })
            }
        }
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
        let cap = self.options.recovery_max_events;
        // Under the lock the subscription joins at once, except a recovery from a history the
        // bus keeps: it waits in the entry while the bus is read, outside the lock.
        let (entry, token, store, head, from) = loop {
            let entry = self.entry(topic, &selector);
            self.ready(&entry).await?;
            let mut state = entry.state.lock().expect("hub entry lock");
            if state.released {
                continue;
            }
            let opening = match (&mut state.history, start) {
                (Some(History::Memory(history)), Start::Live | Start::From(_)) => {
                    let from = match start {
                        Start::From(from) => Some(from),
                        _ => None,
                    };
                    let room = mailbox.room();
                    let opening =
                        history::open_memory(history, id, key.as_deref(), from, cap, room);
                    if from.is_some() {
                        let count = opening.missed.as_ref().map_or(0, Vec::len);
                        self.metrics.recovery(opening.first.recovery, count);
                    }
                    Some(opening)
                }
                (Some(History::Shared(shared)), Start::From(from))
                    if from.epoch == shared.epoch =>
                {
                    let token = shared.start_recovery(key.as_deref());
                    let head = Position { epoch: shared.epoch, offset: shared.head };
                    break (entry.clone(), token, shared.store.clone(), head, from);
                }
                (Some(History::Shared(shared)), Start::Live | Start::From(_)) => {
                    let head = Position { epoch: shared.epoch, offset: shared.head };
                    let recovery = if let Start::From(_) = start {
                        self.metrics.recovery(Recovery::EPOCH_CHANGED, 0);
                        Recovery::EPOCH_CHANGED
                    } else {
                        Recovery::NONE
                    };
                    let first = history::opened(id, recovery, head);
                    Some(Opening { first, missed: None, waited: Vec::new(), after: shared.head })
                }
                _ => None,
            };
            let key = self.join(&mut state, topic, &key, mailbox, id, opening);
            drop(state);
            return Ok(HubSubscription { entry, key });
        };
        let through = head.offset;
        // A subscribe abandoned while it reads (its connection closed) takes its waiting list
        // out of the entry as it goes.
        let mut pending = PendingRecovery { entry: Some(entry.clone()), token };
        let found =
            store.read(topic, key.as_deref(), history::to_history(from), through, cap).await;
        pending.entry = None;
        let mut state = entry.state.lock().expect("hub entry lock");
        let waiting = match &mut state.history {
            Some(History::Shared(shared)) => shared.finish_recovery(token),
            _ => Vec::new(),
        };
        if state.released {
            return Err(Status::unavailable("the gateway lost the topic's bus subscription"));
        }
        let mut opening = match found {
            Ok(found) => {
                let found = found.map(|events| {
                    let event = |e: gateway_bus::history::Recovered| {
                        Arc::new(Publication::at(e.key, &e.payload, e.offset))
                    };
                    events.into_iter().map(event).collect()
                });
                history::settle(id, from, head, found, mailbox.room())
            }
            Err(e) => {
                debug!(topic = topic.name, cause = %e, "a recovery could not read the history");
                Opening {
                    first: history::opened(id, Recovery::UNAVAILABLE, head),
                    missed: None,
                    waited: Vec::new(),
                    after: 0,
                }
            }
        };
        self.metrics.recovery(opening.first.recovery, opening.missed.as_ref().map_or(0, Vec::len));
        // What came live meanwhile follows, past what the subscriber has already: up to
        // `through` (recovered, or not recovered at all), or its own position when that is
        // further (it came from a gateway ahead of this one).
        let recovered = opening.missed.is_some();
        let mut after = if recovered { through.max(from.offset) } else { through };
        for event in waiting {
            if event.offset > after {
                after = event.offset;
                opening.waited.push(event);
            }
        }
        opening.after = after;
        let key = self.join(&mut state, topic, &key, mailbox, id, Some(opening));
        drop(state);
        Ok(HubSubscription { entry, key })
    }

    /// Adds subscription `id` to `state`'s subscribers: its first frame (SUBSCRIBED_AT with an
    /// `opening`, else SUBSCRIBED), then the missed events if it recovered, else a retain
    /// topic's last events, then the live events that waited for it. Returns the key subscribed
    /// to.
    fn join(
        &self,
        state: &mut EntryState,
        topic: &'static TopicDesc,
        key: &Option<String>,
        mailbox: &Arc<Mailbox>,
        id: u32,
        opening: Option<Opening>,
    ) -> Option<String> {
        let positioned = opening.is_some();
        let (first, missed, waited, after) = match opening {
            Some(o) => (Frame::SubscribedAt(o.first), o.missed, o.waited, o.after),
            None => (Frame::Subscribed { subscription_id: id }, None, Vec::new(), 0),
        };
        mailbox.open_subscription(id, topic.on_lag, first, positioned);
        // What it gets first is all its own; `after` holds back later live events only.
        let mut subscriber = Subscriber { mailbox: mailbox.clone(), id, after: 0 };
        let first_events = match missed {
            // What it missed, and nothing else: the retained event is among it, or older.
            Some(missed) => missed,
            None => match key {
                Some(key) => state.retained.get(key).into_iter().collect(),
                None => state.retained.all(),
            },
        };
        for event in &first_events {
            self.deliver(&subscriber, event);
        }
        // Then what came live while the history was read, past what it already got (a retained
        // event may be one of these).
        let sent = first_events.iter().map(|e| e.offset).max().unwrap_or(0);
        for event in waited.iter().filter(|e| e.offset > sent) {
            self.deliver(&subscriber, event);
        }
        subscriber.after = after;
        match key {
            Some(key) => state.by_key.entry(key.clone()).or_default().push(subscriber),
            None => state.all.push(subscriber),
        }
        state.count += 1;
        state.generation += 1;
        self.metrics.subscriptions(1);
        key.clone()
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
                // The bus's own history when it keeps one (unless told otherwise); else this
                // gateway's memory.
                let history = history::limits(topic, options).map(|limits| match &self.store {
                    Some(store) => History::Shared(Shared::new(store.clone())),
                    None => History::Memory(TopicHistory::new(history::fresh_epoch(), limits)),
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
                let shared = match &entry.state.lock().expect("hub entry lock").history {
                    Some(History::Shared(shared)) => Some(shared.store.clone()),
                    _ => None,
                };
                if let Some(store) = shared {
                    match self.follow_shared(entry, store).await {
                        Ok(subscription) => {
                            self.metrics.bus_subscriptions(1);
                            tokio::spawn(pump(Arc::downgrade(self), entry.clone(), subscription));
                            return Ok(());
                        }
                        Err(e) => {
                            warn!(
                                topic = entry.topic.name,
                                cause = %e,
                                "the bus keeps no history for this topic; this gateway keeps it in \
                                 its memory"
                            );
                            let limits = history::limits(entry.topic, &self.options)
                                .expect("a topic with history");
                            let memory = TopicHistory::new(history::fresh_epoch(), limits);
                            entry.state.lock().expect("hub entry lock").history =
                                Some(History::Memory(memory));
                        }
                    }
                }
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

    /// Follows a history the bus keeps: subscribes to where its kept events come with their
    /// positions, then opens it (creating it, or updating its limits) for its epoch and head.
    async fn follow_shared(
        &self,
        entry: &Arc<Entry>,
        store: Arc<dyn gateway_bus::history::SharedHistory>,
    ) -> Result<Subscription, gateway_bus::BusError> {
        let topic = entry.topic;
        let mut subscription = self.bus.subscribe(&store.live_pattern(topic), None).await?;
        let limits = history::limits(topic, &self.options).expect("a topic with history");
        match store.open(topic, limits).await {
            Ok(head) => {
                let mut state = entry.state.lock().expect("hub entry lock");
                if let Some(History::Shared(shared)) = &mut state.history {
                    shared.epoch = head.epoch;
                    shared.head = shared.head.max(head.offset);
                }
                debug!(
                    topic = topic.name,
                    epoch = head.epoch,
                    head = head.offset,
                    "history opened"
                );
                Ok(subscription)
            }
            Err(e) => {
                subscription.unsubscribe().await;
                Err(e)
            }
        }
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
    fn publish(&self, entry: &Entry, message: &BusMessage) -> Next {
        let topic = entry.topic;
        // A topic's subject names the event's key. A history the bus keeps sends its events on
        // its own subject instead, with the position and the key in headers.
        let key = contract::key_from_subject(topic, &message.subject);
        let mut event = match (&key, &topic.history) {
            (Some(key), None) => Some(Arc::new(Publication::new(key.clone(), &message.payload))),
            _ => None,
        };
        let mut next = Next::Done;
        let mut state = entry.state.lock().expect("hub entry lock");
        match (&mut state.history, key) {
            (Some(History::Memory(history)), Some(key)) => {
                // Numbered under the lock that orders the fan-out, so offsets rise as delivered.
                let offset = history.head().offset + 1;
                let kept = Arc::new(Publication::at(key, &message.payload, offset));
                history.append(&kept.key, Kept(kept.clone()), Instant::now());
                event = Some(kept);
            }
            (Some(History::Shared(shared)), _) => {
                let Some((offset, key)) = shared.store.live_event(topic, message) else {
                    debug!(subject = %message.subject, "a message without a history position; skipped");
                    return Next::Done;
                };
                // A late copy of an event already read back from the history.
                if offset <= shared.last_live && shared.read_back.remove(&offset) {
                    return Next::Done;
                }
                // The live feed is at most once (NATS drops what a slow subscriber cannot
                // take) and reorders events published at once, but the history has what it
                // skipped: that goes first.
                if shared.epoch != 0 && shared.last_live != 0 && offset > shared.last_live + 1 {
                    let after = shared.last_live;
                    let after =
                        gateway_bus::history::Position { epoch: shared.epoch, offset: after };
                    return Next::Fill(Gap {
                        store: shared.store.clone(),
                        after,
                        through: offset - 1,
                    });
                }
                let kept = positioned(shared, topic, offset, key, &message.payload);
                if shared.epoch == 0 {
                    next = Next::Reopen(shared.store.clone());
                }
                event = Some(kept);
            }
            _ => {}
        }
        let Some(event) = event else {
            debug!(subject = %message.subject, "a message on a subject of no topic key; skipped");
            return Next::Done;
        };
        self.fan_out(state, &event);
        next
    }

    /// Hands `event` to every local subscriber of its key and of all keys (the entry's `state`
    /// locked, so that events go out in the order they came).
    fn fan_out(&self, mut state: std::sync::MutexGuard<'_, EntryState>, event: &Arc<Publication>) {
        self.metrics.publication();
        state.retained.insert(event);
        // Counted once for the whole fan-out, not per subscriber.
        let mut lag = Lag::default();
        for subscriber in &state.all {
            lag.deliver(subscriber, event);
        }
        if let Some(subscribers) = state.by_key.get(&event.key) {
            for subscriber in subscribers {
                lag.deliver(subscriber, event);
            }
        }
        drop(state);
        lag.count(&self.metrics);
    }

    /// Opens a history that started over again, for its new epoch; until then recoveries are
    /// refused (`epoch_changed`).
    async fn reopen(&self, entry: &Entry, store: Arc<dyn gateway_bus::history::SharedHistory>) {
        let limits = history::limits(entry.topic, &self.options).expect("a topic with history");
        match store.open(entry.topic, limits).await {
            Ok(head) => {
                let mut state = entry.state.lock().expect("hub entry lock");
                if let Some(History::Shared(shared)) = &mut state.history {
                    shared.epoch = head.epoch;
                    shared.head = shared.head.max(head.offset);
                }
                warn!(
                    topic = entry.topic.name,
                    epoch = head.epoch,
                    "the topic's history opened again"
                );
            }
            Err(e) => {
                warn!(topic = entry.topic.name, cause = %e, "cannot open the topic's history again")
            }
        }
    }

    /// Reads the events of `gap` from the history and delivers them, in order; counts them
    /// filled, or lost when the history cannot give them whole. Either way the live feed goes on
    /// past the gap. A gap of more than `recovery_max_events` is not read: the live feed waits
    /// while a gap is read, so a gateway that cannot keep up would fall further behind with each
    /// one.
    async fn fill(&self, entry: &Entry, gap: Gap) {
        let missing = gap.through - gap.after.offset;
        let cap = self.options.recovery_max_events;
        let read = if missing > cap as u64 {
            None
        } else {
            gap.store
                .read(entry.topic, None, gap.after, gap.through, cap)
                .await
                .ok()
                .and_then(Result::ok)
        };
        match read {
            Some(events) => {
                self.metrics.live_gap(true, missing);
                for recovered in events {
                    let mut state = entry.state.lock().expect("hub entry lock");
                    let Some(History::Shared(shared)) = &mut state.history else { return };
                    let gateway_bus::history::Recovered { offset, key, payload } = recovered;
                    let event = positioned(shared, entry.topic, offset, key, &payload);
                    self.fan_out(state, &event);
                }
            }
            None => {
                warn!(topic = entry.topic.name, missing, "events the live feed skipped are lost");
                self.metrics.live_gap(false, missing);
            }
        }
        let mut state = entry.state.lock().expect("hub entry lock");
        if let Some(History::Shared(shared)) = &mut state.history {
            shared.last_live = shared.last_live.max(gap.through);
            if missing <= cap as u64 {
                shared.read_back.extend(gap.after.offset + 1..=gap.through);
                // Bounded: the oldest go first (a copy that late is not coming).
                while shared.read_back.len() > 2 * cap {
                    shared.read_back.pop_first();
                }
            }
        }
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
        if subscriber.after != 0 && event.offset <= subscriber.after {
            return;
        }
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

/// A recovery reading the bus's history: dropped before the read is over (the subscribe
/// abandoned), it ends the recovery in the entry, so that live events stop waiting for it.
struct PendingRecovery {
    entry: Option<Arc<Entry>>,
    token: u64,
}

impl Drop for PendingRecovery {
    fn drop(&mut self) {
        let Some(entry) = self.entry.take() else { return };
        let mut state = entry.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(History::Shared(shared)) = &mut state.history {
            shared.finish_recovery(self.token);
        }
    }
}

/// What the pump does after handing the hub a message.
enum Next {
    Done,
    /// Read these events, which the live feed of a history the bus keeps skipped, and hand the
    /// message again.
    Fill(Gap),
    /// The history the bus keeps started over: open it again for its new epoch.
    Reopen(Arc<dyn gateway_bus::history::SharedHistory>),
}

/// Events a history the bus keeps skipped on their way to the hub: offsets after `after`, up to
/// `through`.
struct Gap {
    store: Arc<dyn gateway_bus::history::SharedHistory>,
    after: gateway_bus::history::Position,
    through: u64,
}

/// The publication of the event at `offset` of a history the bus keeps, with the hub's record of
/// that history moved past it.
fn positioned(
    shared: &mut Shared,
    topic: &'static TopicDesc,
    offset: u64,
    key: String,
    payload: &[u8],
) -> Arc<Publication> {
    if offset <= shared.last_live {
        // The bus's history started over (its stream was deleted and made again): positions
        // given so far are of the old one; recoveries are refused until the pump opens it
        // again, right after this event.
        warn!(
            topic = topic.name,
            offset,
            last = shared.last_live,
            "the topic's history started over"
        );
        shared.epoch = 0;
        shared.head = 0;
    }
    shared.last_live = offset;
    shared.head = shared.head.max(offset);
    let event = Arc::new(Publication::at(key, payload, offset));
    shared.hold_for_recoveries(&event);
    event
}

/// Whether the hub holds `topic` for the gateway's lifetime: to keep its last events
/// (`retain`) or its history.
fn held(topic: &TopicDesc) -> bool {
    topic.retain || topic.history.is_some()
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
            Some(message) => loop {
                match hub.publish(&entry, &message) {
                    Next::Done => break,
                    // The gap first, then the event after it.
                    Next::Fill(gap) => hub.fill(&entry, gap).await,
                    Next::Reopen(store) => {
                        hub.reopen(&entry, store).await;
                        break;
                    }
                }
            },
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
