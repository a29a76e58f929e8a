//! Topic histories in JetStream against a real nats-server (`docs/bus.md`, "Topic history"):
//! live events with their positions through the stream's republish, exact recovery of a key and
//! of every key, and each way a recovery is refused (a key's own limit, the age limit, the cap,
//! another epoch), and the history outliving the connection that made it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway_bus::history::{Limits, NotRecovered, Position, SharedHistory};
use gateway_bus::{Bus, Headers, NatsBus, NatsOptions, Subscription, contract};
use gateway_core::{LagPolicy, TopicDesc};
use gateway_testkit::NatsServer;

const WAIT: Duration = Duration::from_secs(10);

static KEYED: TopicDesc = TopicDesc {
    id: 0x0123_4567,
    name: "test.History.position",
    message: "test.Position",
    key: Some("device_id"),
    on_lag: LagPolicy::KeepLatest,
    retain: false,
    client_publish: true,
    history: Some(gateway_core::HistoryDesc { events: 3, ttl_ms: 0 }),
};

fn limits(events: usize, ttl: Option<Duration>) -> Limits {
    Limits { events, ttl, bytes: 1 << 20, keys: 1_000 }
}

async fn connect(nats: &NatsServer) -> Arc<NatsBus> {
    let options = NatsOptions { name: "history-test".into(), ..NatsOptions::default() };
    Arc::new(NatsBus::connect(&nats.url(), options).await.expect("connect to the test server"))
}

async fn publish(bus: &NatsBus, key: &str, text: &str) {
    let subject = contract::topic_subject(&KEYED, key);
    bus.publish(&subject, Headers::new(), Bytes::from(text.to_owned())).await.unwrap();
}

/// The next live event: (offset, key, payload).
async fn live(
    history: &dyn SharedHistory,
    subscription: &mut Subscription,
) -> (u64, String, String) {
    let message = tokio::time::timeout(WAIT, subscription.next()).await.unwrap().unwrap();
    let (offset, key) = history.live_event(&KEYED, &message).expect("a position and a key");
    (offset, key, String::from_utf8(message.payload.to_vec()).unwrap())
}

fn offsets(events: &[gateway_bus::history::Recovered]) -> Vec<(u64, &str)> {
    events.iter().map(|e| (e.offset, e.key.as_str())).collect()
}

#[tokio::test]
async fn jetstream_keeps_positions_recovers_exactly_and_says_why_not() {
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    let history = bus.shared_history().expect("NATS keeps histories");
    let mut events = bus.subscribe(&history.live_pattern(&KEYED), None).await.unwrap();
    let start = history.open(&KEYED, limits(3, None)).await.unwrap();
    assert_eq!(start.offset, 0);

    for (key, text) in [("a", "a1"), ("b.x", "b1"), ("a", "a2")] {
        publish(&bus, key, text).await;
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(live(&*history, &mut events).await);
    }
    let seen: Vec<(u64, &str, &str)> =
        seen.iter().map(|(o, k, t)| (*o, k.as_str(), t.as_str())).collect();
    assert_eq!(seen, [(1, "a", "a1"), (2, "b.x", "b1"), (3, "a", "a2")]);

    let at = |offset| Position { epoch: start.epoch, offset };
    let a = history.read(&KEYED, Some("a"), at(1), 3, 100).await.unwrap().unwrap();
    assert_eq!(offsets(&a), [(3, "a")]);
    assert_eq!(a[0].payload, Bytes::from_static(b"a2"));
    // Only up to `through`: what came after is the caller's live events.
    let a = history.read(&KEYED, Some("a"), at(0), 2, 100).await.unwrap().unwrap();
    assert_eq!(offsets(&a), [(1, "a")]);
    let all = history.read(&KEYED, None, at(0), 3, 100).await.unwrap().unwrap();
    assert_eq!(offsets(&all), [(1, "a"), (2, "b.x"), (3, "a")]);
    assert!(history.read(&KEYED, None, at(3), 3, 100).await.unwrap().unwrap().is_empty());

    assert_eq!(history.read(&KEYED, None, at(0), 3, 2).await.unwrap(), Err(NotRecovered::TooMany));
    assert_eq!(
        history.read(&KEYED, Some("a"), at(0), 3, 1).await.unwrap(),
        Err(NotRecovered::TooMany)
    );
    let other_epoch = Position { epoch: start.epoch + 1, offset: 1 };
    assert_eq!(
        history.read(&KEYED, Some("a"), other_epoch, 3, 100).await.unwrap(),
        Err(NotRecovered::EpochChanged)
    );
    assert_eq!(
        history.read(&KEYED, Some("a"), at(9), 9, 100).await.unwrap(),
        Err(NotRecovered::Ahead)
    );

    // Two more of `a`: a fourth, so its first (offset 1) is evicted by the key's limit of 3.
    publish(&bus, "a", "a3").await;
    publish(&bus, "a", "a4").await;
    assert_eq!(live(&*history, &mut events).await.0, 4);
    assert_eq!(live(&*history, &mut events).await.0, 5);
    // From a2 (3), kept: nothing of `a` after it was lost.
    let a = history.read(&KEYED, Some("a"), at(3), 5, 100).await.unwrap().unwrap();
    assert_eq!(offsets(&a), [(4, "a"), (5, "a")]);
    // From a1 (1), itself evicted: nothing after it was lost (exactly 3 newer, all kept), but the
    // stream cannot tell that from more newer ones, some evicted: too old, never a hole.
    assert_eq!(
        history.read(&KEYED, Some("a"), at(1), 5, 100).await.unwrap(),
        Err(NotRecovered::TooOld)
    );
    assert_eq!(
        history.read(&KEYED, None, at(0), 5, 100).await.unwrap(),
        Err(NotRecovered::TooOld),
        "every key's: a hole at 1"
    );
    // Another key lost nothing; from before the stream's first event the stream cannot tell
    // whose it was (too old), from after it, it can.
    assert_eq!(
        history.read(&KEYED, Some("b.x"), at(0), 5, 100).await.unwrap(),
        Err(NotRecovered::TooOld)
    );
    let b = history.read(&KEYED, Some("b.x"), at(1), 5, 100).await.unwrap().unwrap();
    assert_eq!(offsets(&b), [(2, "b.x")]);

    // Another connection (another gateway) opens the same history: same epoch, same head.
    let other = connect(&nats).await;
    let reopened = other.shared_history().unwrap().open(&KEYED, limits(3, None)).await.unwrap();
    assert_eq!(reopened, Position { epoch: start.epoch, offset: 5 });
    drop(bus);
    let b = other.shared_history().unwrap().read(&KEYED, Some("b.x"), at(1), 5, 100).await;
    assert_eq!(offsets(&b.unwrap().unwrap()), [(2, "b.x")]);
}

#[tokio::test]
async fn an_age_limit_evicts_and_a_position_before_it_is_too_old() {
    static AGED: TopicDesc = TopicDesc { id: 0x0123_4568, name: "test.History.aged", ..KEYED };
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    let history = bus.shared_history().unwrap();
    let mut events = bus.subscribe(&history.live_pattern(&AGED), None).await.unwrap();
    let start = history.open(&AGED, limits(100, Some(Duration::from_secs(1)))).await.unwrap();
    let subject = contract::topic_subject(&AGED, "k");
    bus.publish(&subject, Headers::new(), Bytes::from_static(b"old")).await.unwrap();
    tokio::time::timeout(WAIT, events.next()).await.unwrap().unwrap();
    // JetStream expires by age on its own schedule: wait until the first sequence moves on.
    let at = Position { epoch: start.epoch, offset: 0 };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match history.read(&AGED, Some("k"), at, 1, 100).await.unwrap() {
            Err(NotRecovered::TooOld) => break,
            Ok(events) => assert_eq!(events.len(), 1, "kept until it expires"),
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "the event never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
