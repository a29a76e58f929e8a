//! The hub's recovery from a history the bus keeps, over interleavings the test controls: a
//! stand-in for JetStream (a log, and reads that finish when the test says) behind an in-process
//! bus. Whatever is published before the recovery, while it reads and after it, and however far
//! the hub's own live feed has got when the read ends, the subscriber gets every event of its
//! key after its position, once, in order.

use std::sync::Mutex as StdMutex;

use bytes::Bytes;
use gateway_bus::history::{self as store, Limits, NotRecovered, Recovered, SharedHistory};
use gateway_bus::{BusError, Call, CallMeta, Headers, LocalBus, MethodRoute, Subscription};
use gateway_core::{BoxFuture, LagPolicy};
use proptest::prelude::*;
use tokio::sync::Semaphore;

use super::*;
use crate::events::FrameSink;
use crate::router::Registry;

static TOPIC: TopicDesc = TopicDesc {
    id: 0x7e57_0900,
    name: "test.Hub.kept",
    message: "test.Bytes",
    key: Some("id"),
    on_lag: LagPolicy::DropOldest,
    retain: false,
    client_publish: true,
    history: Some(gateway_core::HistoryDesc { events: 1_000, ttl_ms: 0 }),
};

const KEYS: [&str; 2] = ["a", "b"];

/// The bus's history: every event in order, and reads that wait for a permit.
struct Kept {
    log: StdMutex<Vec<(String, Bytes)>>,
    reads: Semaphore,
    /// The history's epoch (7 unless a test starts it over).
    epoch: std::sync::atomic::AtomicU64,
    /// Reads answer `too_old`.
    too_old: std::sync::atomic::AtomicBool,
}

impl Kept {
    fn new(reads: usize) -> Arc<Kept> {
        let epoch = std::sync::atomic::AtomicU64::new(7);
        let too_old = std::sync::atomic::AtomicBool::new(false);
        Arc::new(Kept {
            log: StdMutex::new(Vec::new()),
            reads: Semaphore::new(reads),
            epoch,
            too_old,
        })
    }
}

impl SharedHistory for Kept {
    /// Stores the event under its key (the subject's last token); it reaches the hubs only
    /// when a test delivers it.
    fn publish_stored(
        &self,
        subject: &str,
        _: gateway_bus::Headers,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<(), BusError>> {
        let key = subject.rsplit('.').next().unwrap_or_default().to_owned();
        self.log.lock().unwrap().push((key, payload));
        Box::pin(std::future::ready(Ok(())))
    }

    fn live_pattern(&self, topic: &'static TopicDesc) -> String {
        format!("history.{}", contract::topic_pattern(topic, &Selector::AllKeys))
    }

    fn open(
        &self,
        _: &'static TopicDesc,
        _: Limits,
    ) -> BoxFuture<'_, Result<store::Position, BusError>> {
        let head = self.log.lock().unwrap().len() as u64;
        let epoch = self.epoch.load(std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move { Ok(store::Position { epoch, offset: head }) })
    }

    fn live_event(&self, topic: &'static TopicDesc, message: &BusMessage) -> Option<(u64, String)> {
        let offset = message.headers.get("Nats-Sequence")?.parse().ok()?;
        Some((offset, contract::key_from_subject(topic, message.headers.get("Nats-Subject")?)?))
    }

    fn read<'a>(
        &'a self,
        _: &'static TopicDesc,
        key: Option<&'a str>,
        after: store::Position,
        through: u64,
        _cap: usize,
    ) -> BoxFuture<'a, Result<Result<Vec<Recovered>, NotRecovered>, BusError>> {
        Box::pin(async move {
            self.reads.acquire().await.expect("open").forget();
            if self.too_old.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(Err(NotRecovered::TooOld));
            }
            let log = self.log.lock().unwrap();
            let events = (after.offset + 1..=through)
                .map(|offset| (offset, &log[offset as usize - 1]))
                .filter(|(_, (k, _))| key.is_none_or(|key| key == k))
                .map(|(offset, (k, payload))| Recovered {
                    offset,
                    key: k.clone(),
                    payload: payload.clone(),
                })
                .collect();
            Ok(Ok(events))
        })
    }
}

/// An in-process bus whose histories are [`Kept`].
struct KeepingBus {
    local: LocalBus,
    kept: Arc<Kept>,
}

impl Bus for KeepingBus {
    fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<(), BusError>> {
        self.local.publish(subject, headers, payload)
    }

    fn request(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<BusMessage, BusError>> {
        self.local.request(subject, headers, payload, timeout)
    }

    fn subscribe(
        &self,
        subject: &str,
        group: Option<&str>,
    ) -> BoxFuture<'_, Result<Subscription, BusError>> {
        self.local.subscribe(subject, group)
    }

    fn call(&self, route: &MethodRoute, meta: CallMeta, payload: Bytes) -> Call {
        self.local.call(route, meta, payload)
    }

    fn send(
        &self,
        route: &MethodRoute,
        meta: CallMeta,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<(), BusError>> {
        self.local.send(route, meta, payload)
    }

    fn max_payload(&self) -> usize {
        self.local.max_payload()
    }

    fn shared_history(&self) -> Option<Arc<dyn SharedHistory>> {
        Some(self.kept.clone())
    }
}

/// A hub over a [`KeepingBus`] whose reads wait for `reads` permits, holding `topic`.
async fn keeping_hub(
    topic: &'static TopicDesc,
    reads: usize,
) -> (Arc<KeepingBus>, Arc<Metrics>, Arc<Hub>) {
    let bus = Arc::new(KeepingBus { local: LocalBus::new(), kept: Kept::new(reads) });
    let metrics = Arc::new(Metrics::new(&Registry::new()));
    let hub = Hub::new(bus.clone(), metrics.clone(), HubOptions::for_tests());
    hub.hold([topic]).await.unwrap();
    (bus, metrics, hub)
}

/// Appends an event of `key` to the history and publishes it where the hub hears it, as
/// JetStream's republish does.
async fn publish(bus: &KeepingBus, key: &str, n: u64) {
    let offset = {
        let mut log = bus.kept.log.lock().unwrap();
        log.push((key.to_owned(), Bytes::from(n.to_string())));
        log.len() as u64
    };
    feed(bus, &TOPIC, key, offset, Bytes::from(n.to_string())).await;
}

/// The live feed brings the event of `topic` and `key` at `offset`, as JetStream's republish
/// does (whether or not the history holds it).
async fn feed(bus: &KeepingBus, topic: &TopicDesc, key: &str, offset: u64, payload: Bytes) {
    let subject = contract::topic_subject(topic, key);
    let mut headers = Headers::new();
    headers.insert("Nats-Sequence", offset.to_string());
    headers.insert("Nats-Subject", subject.clone());
    bus.local.publish(&format!("history.{subject}"), headers, payload).await.unwrap();
}

async fn delivered(hub: &Hub, n: u64) {
    let entry = hub.entry(&TOPIC, &Selector::AllKeys);
    for _ in 0..5_000 {
        if let Some(History::Shared(shared)) = &entry.state.lock().unwrap().history
            && shared.head >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the hub never delivered offset {n}");
}

/// Whether a recovery waits in the entry.
fn recovering(hub: &Hub) -> bool {
    let entry = hub.entry(&TOPIC, &Selector::AllKeys);
    matches!(&entry.state.lock().unwrap().history, Some(History::Shared(s)) if !s.recovering.is_empty())
}

/// Collects what a mailbox sends: the first frame, then each EVENT_AT's offset and key.
#[derive(Default)]
struct Sent {
    first: Option<Frame>,
    events: Vec<(u64, String)>,
    bytes: usize,
}

impl FrameSink for Sent {
    fn queued(&self) -> usize {
        self.bytes
    }

    fn event(&mut self, _: u32, event: &Publication, positioned: bool) {
        assert!(positioned, "a subscription with positions gets EVENT_AT");
        self.bytes += event.frame_size();
        self.events.push((event.offset, event.key.clone()));
    }

    fn control(&mut self, frame: &Frame) {
        self.bytes += 16;
        assert!(self.first.replace(frame.clone()).is_none(), "one control frame: {frame:?}");
    }
}

/// One interleaving: `before` events, a subscriber of `key` (`None`: every key) recovering from
/// offset `from` while `during` more are published and the hub's live feed gets `yields` turns
/// before the read ends, then `after` more.
async fn interleaving(
    before: Vec<usize>,
    from: u64,
    key: Option<usize>,
    during: Vec<usize>,
    yields: usize,
    after: Vec<usize>,
) {
    let (bus, metrics, hub) = keeping_hub(&TOPIC, 0).await;
    let kept = bus.kept.clone();
    let mut n = 0;
    for k in &before {
        publish(&bus, KEYS[*k], n).await;
        n += 1;
    }
    delivered(&hub, n).await;
    let from = from.min(n);

    let mailbox = Arc::new(Mailbox::new(1 << 20, metrics));
    let selector = key.map_or(Selector::AllKeys, |k| Selector::Key(KEYS[k].to_owned()));
    let position = Position { epoch: 7, offset: from };
    let subscribing = tokio::spawn({
        let (hub, mailbox) = (hub.clone(), mailbox.clone());
        async move { hub.subscribe(&TOPIC, selector, &mailbox, 1, Start::From(position)).await }
    });
    while !recovering(&hub) {
        tokio::task::yield_now().await;
    }
    for k in &during {
        publish(&bus, KEYS[*k], n).await;
        n += 1;
    }
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
    kept.reads.add_permits(1);
    subscribing.await.unwrap().unwrap();
    for k in &after {
        publish(&bus, KEYS[*k], n).await;
        n += 1;
    }
    delivered(&hub, n).await;

    let mut sent = Sent::default();
    mailbox.drain_into(&mut sent, usize::MAX, &mut Vec::new());
    match sent.first {
        Some(Frame::SubscribedAt(at)) => {
            assert_eq!((at.recovery, at.position), (Recovery::RECOVERED, position));
        }
        other => panic!("expected SUBSCRIBED_AT, got {other:?}"),
    }
    let log = kept.log.lock().unwrap();
    let want: Vec<(u64, String)> = (from + 1..=n)
        .map(|offset| (offset, log[offset as usize - 1].0.clone()))
        .filter(|(_, k)| key.is_none_or(|key| KEYS[key] == k))
        .collect();
    assert_eq!(sent.events, want, "every event after {from}, once, in order");
    hub.close();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_recovery_from_the_bus_history_has_no_gap_and_no_repeat_whatever_the_interleaving(
        before in proptest::collection::vec(0..KEYS.len(), 0..12),
        from in 0u64..14,
        key in proptest::option::of(0..KEYS.len()),
        during in proptest::collection::vec(0..KEYS.len(), 0..12),
        yields in 0usize..6,
        after in proptest::collection::vec(0..KEYS.len(), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(interleaving(before, from, key, during, yields, after));
    }
}

#[tokio::test]
async fn a_client_event_of_a_topic_with_a_bus_kept_history_is_answered_once_stored() {
    static PLAIN: TopicDesc = TopicDesc { history: None, ..TOPIC };
    let (bus, _, hub) = keeping_hub(&TOPIC, 1).await;
    let subject = contract::topic_subject(&TOPIC, "a");
    hub.publish_event(&TOPIC, subject, Headers::new(), Bytes::from_static(b"kept")).await.unwrap();
    let log = bus.kept.log.lock().unwrap().clone();
    assert_eq!(log, [("a".to_owned(), Bytes::from_static(b"kept"))], "stored by the history");
    // A topic without history goes to the bus, not to the store.
    let subject = contract::topic_subject(&PLAIN, "a");
    hub.publish_event(&PLAIN, subject, Headers::new(), Bytes::from_static(b"plain")).await.unwrap();
    assert_eq!(bus.kept.log.lock().unwrap().len(), 1, "a topic without history is not stored");
}

#[tokio::test]
async fn a_client_ahead_of_this_gateway_gets_only_what_is_past_its_position() {
    // The client's position (from another gateway) is past what this hub has delivered: events
    // up to it that reach the hub later are not sent again.
    let (bus, metrics, hub) = keeping_hub(&TOPIC, 1).await;
    let kept = bus.kept.clone();
    publish(&bus, "a", 0).await;
    delivered(&hub, 1).await;
    // Offsets 2 and 3 are in the history, and the client has them, but this hub has not heard
    // them yet.
    for n in 1..3 {
        kept.log.lock().unwrap().push(("a".into(), Bytes::from(n.to_string())));
    }
    let mailbox = Arc::new(Mailbox::new(1 << 20, metrics));
    let from = Position { epoch: 7, offset: 3 };
    hub.subscribe(&TOPIC, Selector::Key("a".into()), &mailbox, 1, Start::From(from)).await.unwrap();
    // Now the live feed brings 2 and 3 (late), then 4.
    for offset in 2..=4u64 {
        if offset == 4 {
            kept.log.lock().unwrap().push(("a".into(), Bytes::from_static(b"3")));
        }
        feed(&bus, &TOPIC, "a", offset, Bytes::new()).await;
    }
    delivered(&hub, 4).await;
    let mut sent = Sent::default();
    mailbox.drain_into(&mut sent, usize::MAX, &mut Vec::new());
    assert_eq!(sent.events, [(4, "a".to_owned())]);
    hub.close();
}

#[tokio::test]
async fn events_the_live_feed_skipped_are_read_back_from_the_history_in_order() {
    let (bus, metrics, hub) = keeping_hub(&TOPIC, 1).await;
    let kept = bus.kept.clone();
    let mailbox = Arc::new(Mailbox::new(1 << 20, metrics.clone()));
    hub.subscribe(&TOPIC, Selector::AllKeys, &mailbox, 1, Start::Live).await.unwrap();
    publish(&bus, "a", 0).await;
    publish(&bus, "b", 1).await;
    delivered(&hub, 2).await;
    // 3 and 4 are kept but never reach the hub live (a slow subscription dropped them).
    for (key, n) in [("a", 2), ("b", 3)] {
        kept.log.lock().unwrap().push((key.into(), Bytes::from(n.to_string())));
    }
    publish(&bus, "a", 4).await;
    delivered(&hub, 5).await;
    let mut sent = Sent::default();
    mailbox.drain_into(&mut sent, usize::MAX, &mut Vec::new());
    let offsets: Vec<u64> = sent.events.iter().map(|(offset, _)| *offset).collect();
    assert_eq!(offsets, [1, 2, 3, 4, 5]);
    let text = metrics.render_with_events(0);
    assert!(text.contains("gateway_live_gap_events_total{result=\"filled\"} 2"), "{text}");
    hub.close();
}

#[tokio::test]
async fn a_history_that_started_over_is_opened_again_and_old_positions_are_refused() {
    let (bus, metrics, hub) = keeping_hub(&TOPIC, 1).await;
    let kept = bus.kept.clone();
    publish(&bus, "a", 0).await;
    publish(&bus, "a", 1).await;
    delivered(&hub, 2).await;
    // The stream is deleted and made again: a new epoch, and its sequence starts at 1.
    kept.log.lock().unwrap().clear();
    kept.epoch.store(8, std::sync::atomic::Ordering::Relaxed);
    publish(&bus, "a", 2).await;
    let entry = hub.entry(&TOPIC, &Selector::AllKeys);
    let reopened = async {
        loop {
            if let Some(History::Shared(shared)) = &entry.state.lock().unwrap().history
                && shared.epoch == 8
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), reopened).await.expect("opened again");
    let old = Position { epoch: 7, offset: 2 };
    for (start, want) in
        [(Start::From(old), Recovery::EPOCH_CHANGED), (Start::Live, Recovery::NONE)]
    {
        let mailbox = Arc::new(Mailbox::new(1 << 20, metrics.clone()));
        hub.subscribe(&TOPIC, Selector::Key("a".into()), &mailbox, 1, start).await.unwrap();
        let mut sent = Sent::default();
        mailbox.drain_into(&mut sent, usize::MAX, &mut Vec::new());
        match sent.first {
            Some(Frame::SubscribedAt(at)) => {
                assert_eq!((at.recovery, at.position.epoch), (want, 8), "{start:?}");
            }
            other => panic!("expected SUBSCRIBED_AT, got {other:?}"),
        }
    }
    hub.close();
}

#[tokio::test]
async fn a_recovery_abandoned_while_it_reads_leaves_nothing_waiting() {
    let (bus, metrics, hub) = keeping_hub(&TOPIC, 0).await;
    publish(&bus, "a", 0).await;
    delivered(&hub, 1).await;
    let mailbox = Arc::new(Mailbox::new(1 << 20, metrics));
    let subscribing = tokio::spawn({
        let hub = hub.clone();
        let from = Position { epoch: 7, offset: 0 };
        async move { hub.subscribe(&TOPIC, Selector::AllKeys, &mailbox, 1, Start::From(from)).await }
    });
    while !recovering(&hub) {
        tokio::task::yield_now().await;
    }
    // The connection closes while the bus is read: the session drops the subscribe.
    subscribing.abort();
    let _ = subscribing.await;
    assert!(!recovering(&hub), "the recovery's waiting list went with it");
    publish(&bus, "a", 1).await;
    delivered(&hub, 2).await;
    hub.close();
}

#[tokio::test]
async fn a_retain_topic_not_recovered_gets_its_last_events_then_what_waited() {
    static RETAINED: TopicDesc =
        TopicDesc { id: 0x7e57_0901, name: "test.Hub.both", retain: true, ..TOPIC };
    let (bus, metrics, hub) = keeping_hub(&RETAINED, 0).await;
    bus.kept.too_old.store(true, std::sync::atomic::Ordering::Relaxed);
    let send = |key: &'static str, offset: u64| {
        let bus = bus.clone();
        async move {
            bus.kept.log.lock().unwrap().push((key.into(), Bytes::new()));
            feed(&bus, &RETAINED, key, offset, Bytes::new()).await;
        }
    };
    send("a", 1).await;
    let entry = hub.entry(&RETAINED, &Selector::AllKeys);
    let head = || match &entry.state.lock().unwrap().history {
        Some(History::Shared(shared)) => (shared.head, !shared.recovering.is_empty()),
        _ => (0, false),
    };
    while head().0 < 1 {
        tokio::task::yield_now().await;
    }
    let mailbox = Arc::new(Mailbox::new(1 << 20, metrics));
    let subscribing = tokio::spawn({
        let (hub, mailbox) = (hub.clone(), mailbox.clone());
        let from = Position { epoch: 7, offset: 0 };
        async move { hub.subscribe(&RETAINED, Selector::AllKeys, &mailbox, 1, Start::From(from)).await }
    });
    while !head().1 {
        tokio::task::yield_now().await;
    }
    send("b", 2).await;
    while head().0 < 2 {
        tokio::task::yield_now().await;
    }
    bus.kept.reads.add_permits(1);
    subscribing.await.unwrap().unwrap();
    let mut sent = Sent::default();
    mailbox.drain_into(&mut sent, usize::MAX, &mut Vec::new());
    match &sent.first {
        Some(Frame::SubscribedAt(at)) => assert_eq!(at.recovery, Recovery::TOO_OLD),
        other => panic!("expected SUBSCRIBED_AT, got {other:?}"),
    }
    // Each key's last event (`a`'s too), and `b`'s only once though it also waited.
    assert_eq!(sent.events, [(1, "a".to_owned()), (2, "b".to_owned())]);
    hub.close();
}

#[tokio::test]
async fn a_live_feed_that_reorders_events_gives_each_once_in_offset_order() {
    let (bus, metrics, hub) = keeping_hub(&TOPIC, 1).await;
    let mailbox = Arc::new(Mailbox::new(1 << 20, metrics));
    hub.subscribe(&TOPIC, Selector::AllKeys, &mailbox, 1, Start::Live).await.unwrap();
    // Kept as 1, 2, 3, 4; the feed brings 1, 3, 2, 4 (two publishers at once, as JetStream's
    // republish can).
    for n in 0..4 {
        bus.kept.log.lock().unwrap().push(("a".into(), Bytes::from(n.to_string())));
    }
    for offset in [1u64, 3, 2, 4] {
        feed(&bus, &TOPIC, "a", offset, Bytes::new()).await;
    }
    delivered(&hub, 4).await;
    // The late 2 is dropped once it has come, and the history did not start over.
    let entry = hub.entry(&TOPIC, &Selector::AllKeys);
    let settled = async {
        loop {
            if let Some(History::Shared(shared)) = &entry.state.lock().unwrap().history
                && shared.last_live == 4
                && shared.read_back.is_empty()
            {
                assert_eq!(shared.epoch, 7, "not started over");
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), settled).await.expect("the late copy came");
    let mut sent = Sent::default();
    mailbox.drain_into(&mut sent, usize::MAX, &mut Vec::new());
    let offsets: Vec<u64> = sent.events.iter().map(|(offset, _)| *offset).collect();
    assert_eq!(offsets, [1, 2, 3, 4]);
    hub.close();
}
