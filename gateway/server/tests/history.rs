//! History and recovery through the gateway over real TCP, with raw frames (`docs/protocol.md`,
//! "History and recovery"): positions for clients that announce `HISTORY` and none for those
//! that do not, exact recovery of a key and of every key after a disconnect, each way a
//! recovery is refused, and publishers racing the resubscribe.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use gateway_bus::{Bus, Headers};
use gateway_core::Topics as _;
use gateway_protocol::{
    CAPABILITY_HISTORY, Frame, Position, Recovery, Subscribe, SubscribeFrom, SubscribedAt,
};
use support::{FEED_HISTORY, FEED_HISTORY_LONG, FEED_LATEST, RawClient, TestGateway, config};

const SUBJECT: &str = "topic.test.Feed.history";
const LONG_SUBJECT: &str = "topic.test.Feed.long";

/// A client that announced `HISTORY`.
async fn positioned(gateway: &TestGateway) -> RawClient {
    let mut client = RawClient::connect(gateway.addr).await;
    client.hello_with_history().await;
    client
}

fn subscribe(subscription_id: u32, topic_id: u32, key: &str) -> Frame {
    let all_keys = key == "*";
    let key = if all_keys { String::new() } else { key.to_owned() };
    Frame::Subscribe(Subscribe { subscription_id, topic_id, all_keys, key })
}

fn subscribe_from(subscription_id: u32, key: &str, position: Position) -> Frame {
    subscribe_from_topic(subscription_id, FEED_HISTORY, key, position)
}

fn subscribe_from_topic(
    subscription_id: u32,
    topic_id: u32,
    key: &str,
    position: Position,
) -> Frame {
    let all_keys = key == "*";
    let key = if all_keys { String::new() } else { key.to_owned() };
    Frame::SubscribeFrom(SubscribeFrom { subscription_id, topic_id, all_keys, key, position })
}

async fn subscribed_at(client: &mut RawClient) -> SubscribedAt {
    match client.recv().await {
        Frame::SubscribedAt(at) => at,
        other => panic!("expected SUBSCRIBED_AT, got {other:?}"),
    }
}

/// The next EVENT_AT: (offset, key, payload as text).
async fn event_at(client: &mut RawClient) -> (u64, String, String) {
    match client.recv().await {
        Frame::EventAt(e) => (e.offset, e.key, String::from_utf8(e.payload.to_vec()).unwrap()),
        other => panic!("expected EVENT_AT, got {other:?}"),
    }
}

/// Publishes on the bus as the topic's service would; the hub numbers what it receives in
/// order.
async fn publish(gateway: &TestGateway, key: &str, text: &str) {
    let subject = format!("{SUBJECT}.{key}");
    gateway.bus.publish(&subject, Headers::new(), Bytes::from(text.to_owned())).await.unwrap();
}

/// Waits until the hub has taken `n` publications from the bus (they reach it through its own
/// task), so that what a test published while a client was away is in the history.
async fn settled(gateway: &TestGateway, n: u64) {
    let deadline = tokio::time::Instant::now() + support::WAIT;
    while gateway.metric("gateway_publications_total").await < n as f64 {
        assert!(tokio::time::Instant::now() < deadline, "the hub never took {n} publications");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn clients_that_announce_history_get_positions_and_the_others_do_not() {
    let gateway = TestGateway::start(config()).await;
    let mut modern = positioned(&gateway).await;
    let mut plain = gateway.client().await;

    modern.send(subscribe(1, FEED_HISTORY, "dev-1")).await;
    let at = subscribed_at(&mut modern).await;
    assert_eq!((at.subscription_id, at.recovery), (1, Recovery::NONE));
    assert_eq!(at.position.offset, 0, "the history's newest: nothing yet");
    assert_ne!(at.position.epoch, 0);
    // A topic without history: SUBSCRIBED and EVENT, as ever.
    modern.send(subscribe(2, FEED_LATEST, "dev-1")).await;
    assert_eq!(modern.recv().await, Frame::Subscribed { subscription_id: 2 });
    plain.send(subscribe(1, FEED_HISTORY, "dev-1")).await;
    assert_eq!(plain.recv().await, Frame::Subscribed { subscription_id: 1 });

    publish(&gateway, "dev-2", "other key").await;
    publish(&gateway, "dev-1", "after").await;
    assert_eq!(event_at(&mut modern).await, (2, "dev-1".into(), "after".into()));
    match plain.recv().await {
        Frame::Event(e) => assert_eq!((e.key.as_str(), &e.payload[..]), ("dev-1", &b"after"[..])),
        other => panic!("expected EVENT, got {other:?}"),
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_away_while_events_were_published_recovers_exactly_those_in_order() {
    let gateway = TestGateway::start(config()).await;
    let mut client = positioned(&gateway).await;
    client.send(subscribe(1, FEED_HISTORY, "dev-1")).await;
    let at = subscribed_at(&mut client).await;
    publish(&gateway, "dev-1", "seen").await;
    let (offset, _, _) = event_at(&mut client).await;
    let position = Position { epoch: at.position.epoch, offset };
    drop(client);

    // Away: three events of its key, two of another.
    for (key, text) in [("dev-1", "a"), ("dev-2", "x"), ("dev-1", "b"), ("dev-2", "y")] {
        publish(&gateway, key, text).await;
    }
    publish(&gateway, "dev-1", "c").await;
    settled(&gateway, 6).await;

    let mut client = positioned(&gateway).await;
    client.send(subscribe_from(4, "dev-1", position)).await;
    let at = subscribed_at(&mut client).await;
    assert_eq!((at.subscription_id, at.recovery, at.position), (4, Recovery::RECOVERED, position));
    let recovered = [event_at(&mut client).await, event_at(&mut client).await];
    let recovered: Vec<(u64, &str)> = recovered.iter().map(|(o, _, t)| (*o, t.as_str())).collect();
    assert_eq!(recovered, [(offset + 1, "a"), (offset + 3, "b")]);
    assert_eq!(event_at(&mut client).await, (offset + 5, "dev-1".into(), "c".into()));
    // Then live, without a repeat: the next frame is the next event.
    publish(&gateway, "dev-1", "live").await;
    assert_eq!(event_at(&mut client).await, (offset + 6, "dev-1".into(), "live".into()));
    assert_eq!(gateway.metric("gateway_recoveries_total{result=\"recovered\"}").await, 1.0);
    assert_eq!(gateway.metric("gateway_events_recovered_total").await, 3.0);
    gateway.stop().await;
}

#[tokio::test]
async fn an_all_keys_subscription_recovers_every_key_in_offset_order() {
    let gateway = TestGateway::start(config()).await;
    let mut client = positioned(&gateway).await;
    client.send(subscribe(1, FEED_HISTORY, "*")).await;
    let at = subscribed_at(&mut client).await;
    drop(client);
    for (key, text) in [("b", "1"), ("a", "2"), ("c", "3"), ("a", "4")] {
        publish(&gateway, key, text).await;
    }
    settled(&gateway, 4).await;
    let mut client = positioned(&gateway).await;
    client.send(subscribe_from(1, "*", at.position)).await;
    assert_eq!(subscribed_at(&mut client).await.recovery, Recovery::RECOVERED);
    let mut got = Vec::new();
    for _ in 0..4 {
        let (offset, key, text) = event_at(&mut client).await;
        got.push((offset - at.position.offset, key, text));
    }
    let want: Vec<(u64, String, String)> =
        [(1, "b", "1"), (2, "a", "2"), (3, "c", "3"), (4, "a", "4")]
            .into_iter()
            .map(|(o, k, t)| (o, k.to_owned(), t.to_owned()))
            .collect();
    assert_eq!(got, want);
    gateway.stop().await;
}

#[tokio::test]
async fn a_recovery_that_cannot_be_whole_says_why_and_goes_on_live() {
    let mut config = config();
    config.recovery_max_events = 3;
    let gateway = TestGateway::start(config).await;
    let mut client = positioned(&gateway).await;
    client.send(subscribe(1, FEED_HISTORY, "dev-1")).await;
    let start = subscribed_at(&mut client).await.position;

    // Four missed (as subscription 1 sees), the cap is three.
    for text in ["1", "2", "3", "4"] {
        publish(&gateway, "dev-1", text).await;
    }
    for n in 1..=4 {
        assert_eq!(event_at(&mut client).await.0, start.offset + n);
    }
    let head = Position { offset: start.offset + 4, ..start };
    let cases = [
        (start, Recovery::TOO_MANY),
        (Position { epoch: start.epoch ^ 1, ..start }, Recovery::EPOCH_CHANGED),
        (Position { offset: head.offset + 10, ..start }, Recovery::AHEAD),
    ];
    for (id, (from, recovery)) in (10..).zip(cases) {
        client.send(subscribe_from(id, "dev-1", from)).await;
        let at = subscribed_at(&mut client).await;
        // Not recovered: the newest position, and nothing missed follows.
        assert_eq!((at.subscription_id, at.recovery, at.position), (id, recovery, head));
    }
    // Two more: the history keeps five per key, so the first of the six is evicted.
    publish(&gateway, "dev-1", "5").await;
    publish(&gateway, "dev-1", "6").await;
    // The live subscriptions (1 and the three refused recoveries, which are open) get them.
    let mut live = BTreeMap::<u32, Vec<u64>>::new();
    for _ in 0..(4 * 2) {
        match client.recv().await {
            Frame::EventAt(e) => live.entry(e.subscription_id).or_default().push(e.offset),
            other => panic!("expected EVENT_AT, got {other:?}"),
        }
    }
    let after = |from: u64, to: u64| (from..=to).map(|n| start.offset + n).collect::<Vec<_>>();
    for id in [1, 10, 11, 12] {
        assert_eq!(live[&id], after(5, 6), "subscription {id} is live from its SUBSCRIBED_AT");
    }
    client.send(subscribe_from(20, "dev-1", start)).await;
    let at = subscribed_at(&mut client).await;
    assert_eq!(at.recovery, Recovery::TOO_OLD);
    let head = Position { offset: start.offset + 6, ..start };
    assert_eq!(at.position, head);
    // Within what is kept (2 to 6), it recovers again: from 3, the missed 4 to 6.
    client.send(subscribe_from(21, "dev-1", Position { offset: start.offset + 3, ..start })).await;
    assert_eq!(subscribed_at(&mut client).await.recovery, Recovery::RECOVERED);
    for n in 4..=6 {
        assert_eq!(event_at(&mut client).await.0, start.offset + n);
    }
    for (result, count) in [("too_many", 1.0), ("epoch_changed", 1.0), ("ahead", 1.0)] {
        let series = format!("gateway_recoveries_total{{result=\"{result}\"}}");
        assert_eq!(gateway.metric(&series).await, count, "{series}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_that_did_not_announce_history_may_still_subscribe_from_a_position() {
    // The spec asks clients to announce it; a server that gets SUBSCRIBE_FROM anyway answers
    // it with positions rather than guess.
    let gateway = TestGateway::start(config()).await;
    let mut client = gateway.client().await;
    client.send(subscribe_from(1, "dev-1", Position { epoch: 1, offset: 0 })).await;
    assert_eq!(subscribed_at(&mut client).await.recovery, Recovery::EPOCH_CHANGED);
    gateway.stop().await;
}

/// A publisher never stops while clients drop and resubscribe from their positions: whatever
/// the interleaving, each client's events (recovered, then live) are every event of its key,
/// once, in order. Rounds vary when the connection drops and how long the client is away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_racing_the_resubscribe_causes_neither_gaps_nor_duplicates() {
    let gateway = TestGateway::start(config()).await;
    let bus = gateway.bus.clone();
    let keys = ["k0", "k1", "k2"];
    // Three keys in turn, so each key's offsets rise by exactly 3.
    let publisher = tokio::spawn(async move {
        for n in 0u64.. {
            let subject = format!("{LONG_SUBJECT}.{}", keys[n as usize % keys.len()]);
            if bus.publish(&subject, Headers::new(), Bytes::from(n.to_string())).await.is_err() {
                return;
            }
            if n % 3 == 2 {
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
        }
    });

    for round in 0..30u32 {
        let index = round as usize % keys.len();
        let key = keys[index];
        // The publisher's n-th event is the topic's offset n + 1, so this key's offsets are
        // those equal to `index + 1` modulo 3.
        let next_of_key = |after: u64| (after + 1..).find(|o| o % 3 == (index as u64 + 1) % 3);
        let mut client = positioned(&gateway).await;
        client
            .send(Frame::Subscribe(Subscribe {
                subscription_id: 1,
                topic_id: FEED_HISTORY_LONG,
                all_keys: false,
                key: key.to_owned(),
            }))
            .await;
        let start = subscribed_at(&mut client).await.position;
        let mut last = start.offset;
        // A few live events, then the connection drops mid-stream.
        for _ in 0..(round % 4) {
            let (offset, _, _) = event_at(&mut client).await;
            assert_eq!(Some(offset), next_of_key(last), "round {round}");
            last = offset;
        }
        drop(client);
        for _ in 0..(round % 3) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut client = positioned(&gateway).await;
        let from = Position { offset: last, ..start };
        client.send(subscribe_from_topic(1, FEED_HISTORY_LONG, key, from)).await;
        let at = subscribed_at(&mut client).await;
        assert_eq!((at.recovery, at.position), (Recovery::RECOVERED, from), "round {round}");
        // The next twelve, recovered or live: no gap, no repeat.
        for _ in 0..12 {
            let (offset, got_key, _) = event_at(&mut client).await;
            assert_eq!(got_key, key);
            assert_eq!(Some(offset), next_of_key(last), "round {round}: a gap or a repeat");
            last = offset;
        }
    }
    publisher.abort();
    gateway.stop().await;
}

#[tokio::test]
async fn capabilities_are_announced_in_welcome_to_every_client() {
    let gateway = TestGateway::start(config()).await;
    let mut client = RawClient::connect(gateway.addr).await;
    assert_eq!(client.hello().await.capabilities, CAPABILITY_HISTORY);
    gateway.stop().await;
}

// ----- the Rust client -----

fn long_topic() -> &'static gateway_core::TopicDesc {
    support::TOPICS.topics.iter().find(|t| t.id == FEED_HISTORY_LONG).unwrap()
}

async fn rust_client(endpoints: &[&TestGateway]) -> gateway_client::Client {
    let endpoints = endpoints.iter().map(|g| g.addr.to_string());
    let config = gateway_client::ClientConfig::new(endpoints);
    tokio::time::timeout(support::WAIT, gateway_client::Client::connect(config))
        .await
        .unwrap()
        .unwrap()
}

async fn next_item(
    stream: &mut gateway_client::RawSubscription,
) -> Result<gateway_core::RawEvent, gateway_core::Status> {
    use futures::StreamExt;
    tokio::time::timeout(support::WAIT, stream.next()).await.unwrap().expect("the stream goes on")
}

/// The id of the one connection `/console/state` lists.
async fn only_connection(gateway: &TestGateway) -> u64 {
    let (status, body) = gateway.admin_request("GET", "/console/state", &[], "").await;
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let connections = state["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 1, "{body}");
    connections[0]["id"].as_u64().unwrap()
}

/// The gateway closes the client's connection (an operator's `POST /connections/<id>/close`)
/// while a publisher goes on: the client reconnects, subscribes from its position, and its
/// stream has every event once, in order; the first after the restore says it was recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_recovers_what_it_missed_while_its_connection_was_closed() {
    let gateway = TestGateway::start(config()).await;
    let client = rust_client(&[&gateway]).await;
    let mut stream =
        client.subscribe(long_topic(), gateway_core::Selector::Key("k".into())).await.unwrap();
    let bus = gateway.bus.clone();
    let publisher = tokio::spawn(async move {
        for n in 0u64.. {
            let subject = format!("{LONG_SUBJECT}.k");
            if bus.publish(&subject, Headers::new(), Bytes::from(n.to_string())).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    });
    let mut expected = None;
    let mut resumed = Vec::new();
    for i in 0..400 {
        if i == 50 {
            let id = only_connection(&gateway).await;
            let path = format!("/connections/{id}/close");
            let (status, body) = gateway.admin_request("POST", &path, &[], "").await;
            assert_eq!(status, 200, "{body}");
        }
        let event = next_item(&mut stream).await.expect("no error: nothing is lost");
        let n: u64 = std::str::from_utf8(&event.payload).unwrap().parse().unwrap();
        if let Some(want) = expected {
            assert_eq!(n, want, "event {i}: a gap or a repeat");
        }
        expected = Some(n + 1);
        assert_eq!(event.missed, 0);
        if event.resumed {
            assert!(event.recovered, "the restore recovered what was missed");
            resumed.push(i);
        }
    }
    assert_eq!(resumed.len(), 1, "one restore: {resumed:?}");
    publisher.abort();
    assert_eq!(gateway.metric("gateway_recoveries_total{result=\"recovered\"}").await, 1.0);
    assert!(gateway.metric("gateway_events_recovered_total").await > 0.0);
    gateway.stop().await;
}

/// A restore on another gateway, whose in-memory history is another epoch: the stream says
/// `data_loss` (the application reloads) and goes on with the live events.
#[tokio::test]
async fn the_rust_client_says_data_loss_when_the_history_it_followed_is_gone() {
    let (a, b) = (TestGateway::start(config()).await, TestGateway::start(config()).await);
    let client = rust_client(&[&a, &b]).await;
    let mut stream =
        client.subscribe(long_topic(), gateway_core::Selector::Key("k".into())).await.unwrap();
    a.bus.publish(&format!("{LONG_SUBJECT}.k"), Headers::new(), Bytes::from("on a")).await.unwrap();
    assert_eq!(&next_item(&mut stream).await.unwrap().payload[..], b"on a");
    a.stop().await;

    let lost = next_item(&mut stream).await.unwrap_err();
    assert_eq!(lost.code(), gateway_core::Code::DataLoss);
    assert!(lost.message().contains("epoch_changed"), "{lost}");
    // Live on b from here (published until the restore has happened).
    let event = loop {
        b.bus
            .publish(&format!("{LONG_SUBJECT}.k"), Headers::new(), Bytes::from("on b"))
            .await
            .unwrap();
        if let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(20), futures::StreamExt::next(&mut stream))
                .await
        {
            break item.unwrap();
        }
    };
    assert_eq!((&event.payload[..], event.resumed, event.recovered), (&b"on b"[..], true, false));
    b.stop().await;
}
