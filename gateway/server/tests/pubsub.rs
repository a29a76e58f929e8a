//! Pub/sub through the gateway over real TCP, with raw frames: subscribing, publishing, keyed and
//! all-keys subscriptions, one bus subscription per topic, refusals, and each lag policy with a
//! stalled reader next to a healthy one.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use gateway_bus::{Bus, Headers};
use gateway_core::Code;
use gateway_protocol::{Frame, GoawayReason, Publish, Subscribe};
use support::{
    FEED_CUT, FEED_DROP, FEED_LATEST, FEED_RETAINED, FEED_SERVICE, RawClient, TestGateway, WAIT,
    config,
};
use tokio::net::TcpSocket;

fn subscribe(subscription_id: u32, topic_id: u32, key: &str) -> Frame {
    let all_keys = key == "*";
    let key = if all_keys { String::new() } else { key.to_owned() };
    Frame::Subscribe(Subscribe { subscription_id, topic_id, all_keys, key })
}

fn publish(request_id: u32, topic_id: u32, key: &str, payload: &[u8]) -> Frame {
    Frame::Publish(Publish {
        request_id,
        topic_id,
        key: key.to_owned(),
        payload: Bytes::copy_from_slice(payload),
    })
}

/// Subscribes and waits for SUBSCRIBED.
async fn subscribed(client: &mut RawClient, id: u32, topic: u32, key: &str) {
    client.send(subscribe(id, topic, key)).await;
    match client.recv().await {
        Frame::Subscribed { subscription_id } => assert_eq!(subscription_id, id),
        other => panic!("expected SUBSCRIBED {id}, got {other:?}"),
    }
}

/// The next EVENT: (subscription, key, payload).
async fn event(client: &mut RawClient) -> (u32, String, Bytes) {
    match client.recv().await {
        Frame::Event(e) => (e.subscription_id, e.key, e.payload),
        other => panic!("expected EVENT, got {other:?}"),
    }
}

/// Publishes on the bus as a service would (topics need no running service).
async fn bus_publish(gateway: &TestGateway, subject: &str, payload: Bytes) {
    gateway.bus.publish(subject, Headers::new(), payload).await.unwrap();
}

#[tokio::test]
async fn events_reach_subscribers_of_their_key_and_of_all_keys() {
    let gateway = TestGateway::start(config()).await;
    let mut one = gateway.client().await;
    let mut all = gateway.client().await;
    let mut publisher = gateway.client().await;
    subscribed(&mut one, 1, FEED_LATEST, "dev-1").await;
    subscribed(&mut all, 7, FEED_LATEST, "*").await;

    publisher.send(publish(10, FEED_LATEST, "dev-2", b"two")).await;
    publisher.send(publish(11, FEED_LATEST, "dev-1", b"one")).await;
    for id in [10, 11] {
        match publisher.recv().await {
            Frame::Response(r) => assert_eq!((r.request_id, r.payload.len()), (id, 0)),
            other => panic!("expected RESPONSE, got {other:?}"),
        }
    }
    // The key subscriber sees only its key; the all-keys one sees both, in publication order.
    assert_eq!(event(&mut one).await, (1, "dev-1".into(), Bytes::from_static(b"one")));
    assert_eq!(event(&mut all).await, (7, "dev-2".into(), Bytes::from_static(b"two")));
    assert_eq!(event(&mut all).await, (7, "dev-1".into(), Bytes::from_static(b"one")));

    // Keys that are not plain subject tokens survive the bus.
    subscribed(&mut one, 2, FEED_LATEST, "a.b *>é").await;
    publisher.send(publish(0, FEED_LATEST, "a.b *>é", b"odd")).await;
    assert_eq!(event(&mut one).await, (2, "a.b *>é".into(), Bytes::from_static(b"odd")));

    // After UNSUBSCRIBE nothing more comes for the id; the other subscription still works.
    one.send(Frame::Unsubscribe { subscription_id: 2 }).await;
    publisher.send(publish(12, FEED_LATEST, "a.b *>é", b"late")).await;
    publisher.recv().await;
    publisher.send(publish(13, FEED_LATEST, "dev-1", b"again")).await;
    publisher.recv().await;
    assert_eq!(event(&mut one).await, (1, "dev-1".into(), Bytes::from_static(b"again")));
    gateway.stop().await;
}

#[tokio::test]
async fn an_unkeyed_topic_and_a_service_published_event() {
    let gateway = TestGateway::start(config()).await;
    let mut client = gateway.client().await;
    subscribed(&mut client, 3, FEED_SERVICE, "").await;
    bus_publish(&gateway, "topic.test.Feed.service", Bytes::from_static(b"from the service")).await;
    assert_eq!(
        event(&mut client).await,
        (3, String::new(), Bytes::from_static(b"from the service"))
    );
    gateway.stop().await;
}

#[tokio::test]
async fn one_bus_subscription_per_topic_however_many_subscribers() {
    let mut config = config();
    config.topic_linger = Duration::from_millis(100);
    let gateway = TestGateway::start(config).await;
    let mut clients = vec![gateway.client().await];
    // Retain topics are held from the start.
    let held = gateway.metric("gateway_bus_subscriptions").await;
    for i in 0..40 {
        let mut client = gateway.client().await;
        // Two subscriptions to the same key on one connection count too.
        subscribed(&mut client, 1, FEED_DROP, "k").await;
        if i % 2 == 0 {
            subscribed(&mut client, 2, FEED_DROP, "k").await;
        }
        subscribed(&mut client, 3, FEED_DROP, "*").await;
        clients.push(client);
    }
    assert_eq!(gateway.bus.subscriptions("topic.test.Feed.drop.k"), 1);
    assert_eq!(gateway.bus.subscriptions("topic.test.Feed.drop.*"), 1);
    assert_eq!(gateway.metric("gateway_bus_subscriptions").await, held + 2.0);
    assert_eq!(gateway.metric("gateway_subscriptions").await, 100.0);

    // One publication, one copy from the bus, delivered to all 100 subscriptions.
    let before = gateway.bus.stats().delivered;
    bus_publish(&gateway, "topic.test.Feed.drop.k", Bytes::from_static(b"x")).await;
    for (i, client) in clients[1..].iter_mut().enumerate() {
        let mut ids = vec![event(client).await.0, event(client).await.0];
        if i % 2 == 0 {
            ids.push(event(client).await.0);
        }
        ids.sort_unstable();
        assert_eq!(ids, if i % 2 == 0 { vec![1, 2, 3] } else { vec![1, 3] });
    }
    assert_eq!(gateway.bus.stats().delivered - before, 2, "one copy per bus subscription");

    // Leaving one by one keeps the bus subscription until the last leaves, and the linger
    // passes.
    for client in &mut clients[2..] {
        client.send(Frame::Unsubscribe { subscription_id: 1 }).await;
    }
    drop(clients.split_off(2));
    // Wait until the gateway has seen every departure (the one subscriber left holds 3
    // subscriptions), then let three lingers pass: nothing may be released meanwhile.
    let departed = async {
        while gateway.metric("gateway_subscriptions").await != 3.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, departed).await.expect("departures seen");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gateway.bus.subscriptions("topic.test.Feed.drop.k"), 1, "one subscriber left");
    drop(clients);
    let released = async {
        while gateway.bus.subscriptions("topic.test.Feed.drop.k")
            + gateway.bus.subscriptions("topic.test.Feed.drop.*")
            > 0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, released).await.expect("released after the linger");
    assert_eq!(gateway.metric("gateway_subscriptions").await, 0.0);
    gateway.stop().await;
}

#[tokio::test]
async fn a_resubscription_within_the_linger_keeps_the_bus_subscription() {
    let mut config = config();
    config.topic_linger = Duration::from_secs(30);
    let gateway = TestGateway::start(config).await;
    let mut client = gateway.client().await;
    subscribed(&mut client, 1, FEED_LATEST, "k").await;
    let subscribes = || gateway.bus.subscriptions("topic.test.Feed.latest.k");
    client.send(Frame::Unsubscribe { subscription_id: 1 }).await;
    subscribed(&mut client, 1, FEED_LATEST, "k").await;
    assert_eq!(subscribes(), 1);
    bus_publish(&gateway, "topic.test.Feed.latest.k", Bytes::from_static(b"v")).await;
    assert_eq!(event(&mut client).await.2, Bytes::from_static(b"v"));
    gateway.stop().await;
}

#[tokio::test]
async fn retained_events_come_first_to_new_subscribers() {
    let gateway = TestGateway::start(config()).await;
    let mut client = gateway.client().await;
    // Held from the start, whether or not anybody subscribed.
    assert_eq!(gateway.bus.subscriptions("topic.test.Feed.retained.*"), 1);
    for (key, value) in [("a", "a1"), ("b", "b1"), ("a", "a2")] {
        bus_publish(&gateway, &format!("topic.test.Feed.retained.{key}"), value.into()).await;
    }
    // Wait until the hub has seen all three (it reads the bus on its own task).
    let mut a = String::new();
    for _ in 0..100 {
        subscribed(&mut client, 1, FEED_RETAINED, "a").await;
        a = String::from_utf8(event(&mut client).await.2.to_vec()).unwrap();
        client.send(Frame::Unsubscribe { subscription_id: 1 }).await;
        if a == "a2" {
            break;
        }
    }
    assert_eq!(a, "a2");
    subscribed(&mut client, 2, FEED_RETAINED, "*").await;
    let mut latest = HashMap::new();
    for _ in 0..2 {
        let (_, key, value) = event(&mut client).await;
        latest.insert(key, value);
    }
    assert_eq!(latest["a"], Bytes::from_static(b"a2"));
    assert_eq!(latest["b"], Bytes::from_static(b"b1"));
    // Then live events.
    bus_publish(&gateway, "topic.test.Feed.retained.b", "b2".into()).await;
    assert_eq!(event(&mut client).await, (2, "b".into(), Bytes::from_static(b"b2")));
    gateway.stop().await;
}

#[tokio::test]
async fn bad_subscriptions_and_publications_are_refused_with_their_reason() {
    let mut config = config();
    config.max_subscriptions_per_connection = 2;
    let gateway = TestGateway::start(config).await;
    let mut client = gateway.client().await;
    let cases = [
        (subscribe(1, 0xdead_beef, ""), Code::NotFound, "unknown topic id"),
        (subscribe(2, FEED_CUT, "key"), Code::InvalidArgument, "has no key"),
        (subscribe(3, FEED_DROP, ""), Code::InvalidArgument, "give a key, or ALL_KEYS"),
        (
            Frame::Subscribe(Subscribe {
                subscription_id: 4,
                topic_id: FEED_DROP,
                all_keys: true,
                key: "k".into(),
            }),
            Code::InvalidArgument,
            "ALL_KEYS with a key",
        ),
    ];
    for (frame, code, words) in cases {
        client.send(frame).await;
        match client.recv().await {
            Frame::SubscriptionEnded(ended) => {
                assert_eq!(ended.status.code(), code, "{ended:?}");
                assert!(ended.status.message().contains(words), "{ended:?}");
            }
            other => panic!("expected SUBSCRIPTION_ENDED, got {other:?}"),
        }
    }
    subscribed(&mut client, 5, FEED_DROP, "a").await;
    subscribed(&mut client, 6, FEED_DROP, "b").await;
    client.send(subscribe(7, FEED_DROP, "c")).await;
    match client.recv().await {
        Frame::SubscriptionEnded(ended) => {
            assert_eq!(ended.status.code(), Code::ResourceExhausted);
            assert!(ended.status.retryable());
        }
        other => panic!("expected SUBSCRIPTION_ENDED, got {other:?}"),
    }

    let refused = [
        (publish(20, FEED_SERVICE, "", b"x"), Code::FailedPrecondition),
        (publish(21, 0xdead_beef, "", b"x"), Code::NotFound),
        (publish(22, FEED_CUT, "k", b"x"), Code::InvalidArgument),
        (publish(23, FEED_DROP, "", b"x"), Code::InvalidArgument),
    ];
    for (frame, code) in refused {
        client.send(frame).await;
        let error = client.expect_error().await;
        assert_eq!(error.status.code(), code, "{error:?}");
    }
    // Refused without an answer when no answer is wanted: the next frame is the RESPONSE.
    client.send(publish(0, FEED_SERVICE, "", b"x")).await;
    client.send(publish(24, FEED_CUT, "", b"x")).await;
    assert!(matches!(client.recv().await, Frame::Response(r) if r.request_id == 24));

    // A subscription id in use is a protocol error.
    client.send(subscribe(5, FEED_DROP, "z")).await;
    let goaway = client.expect_goaway().await;
    assert_eq!(goaway.reason, GoawayReason::PROTOCOL_ERROR);
    assert!(goaway.message.contains("subscription id 5 is in use"), "{goaway:?}");
    gateway.stop().await;
}

/// A connection that never reads: its receive buffer is small, so the gateway's queue for it
/// fills after a few tens of kilobytes rather than megabytes of kernel buffering.
async fn stalled_client(gateway: &TestGateway) -> RawClient {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(gateway.addr).await.unwrap();
    let mut client = RawClient::from_stream(stream);
    client.hello().await;
    client
}

/// Publishes `n` events of 1 KiB on `subject` (keys by `key_of`) in batches, waiting each time
/// for `healthy` to receive the whole batch: the healthy subscriber keeps up, and must get every
/// event. Returns the payloads' last value per key.
async fn publish_past_a_stalled_reader(
    gateway: &TestGateway,
    healthy: &mut RawClient,
    topic: &str,
    n: u32,
    key_of: impl Fn(u32) -> String,
) -> HashMap<String, u32> {
    let mut last = HashMap::new();
    let mut peak_queued: f64 = 0.0;
    // Batches stay under the queue bound, so that the healthy reader is never behind by more
    // than its queue holds.
    const BATCH: u32 = 10;
    for batch in 0..n / BATCH {
        for i in batch * BATCH..(batch + 1) * BATCH {
            let key = key_of(i);
            let mut payload = vec![0u8; 1024];
            payload[..4].copy_from_slice(&i.to_le_bytes());
            let subject = if key.is_empty() {
                format!("topic.{topic}")
            } else {
                format!("topic.{topic}.{key}")
            };
            bus_publish(gateway, &subject, payload.into()).await;
            last.insert(key, i);
        }
        for i in batch * BATCH..(batch + 1) * BATCH {
            let (_, key, payload) = event(healthy).await;
            assert_eq!(key, key_of(i));
            assert_eq!(
                u32::from_le_bytes(payload[..4].try_into().unwrap()),
                i,
                "in order, none lost"
            );
        }
        if batch % 50 == 0 {
            peak_queued = peak_queued.max(gateway.metric("gateway_send_queue_bytes").await);
        }
    }
    // Memory stays bounded: what the gateway holds for the stalled reader is its queue bound
    // (16 KiB here) plus one write batch, not the megabytes published.
    assert!(peak_queued < 200_000.0, "queued {peak_queued} bytes");
    last
}

fn small_queue_config() -> gateway::Config {
    let mut config = config();
    config.send_queue_bytes = 16 * 1024;
    config
}

#[tokio::test]
async fn disconnect_policy_cuts_the_stalled_subscriber_only() {
    let gateway = TestGateway::start(small_queue_config()).await;
    let mut stalled = stalled_client(&gateway).await;
    subscribed(&mut stalled, 1, FEED_CUT, "").await;
    let mut healthy = gateway.client().await;
    subscribed(&mut healthy, 1, FEED_CUT, "").await;
    publish_past_a_stalled_reader(&gateway, &mut healthy, "test.Feed.cut", 3000, |_| String::new())
        .await;
    // The stalled client finds some events, then GOAWAY slow_consumer.
    let goaway = loop {
        match stalled.try_recv().await {
            Some(Frame::Event(_)) => continue,
            Some(Frame::Goaway(goaway)) => break goaway,
            other => panic!("expected events then GOAWAY, got {other:?}"),
        }
    };
    assert_eq!(goaway.reason, GoawayReason::SLOW_CONSUMER);
    assert!(goaway.reconnect);
    gateway.stop().await;
}

#[tokio::test]
async fn drop_oldest_policy_counts_what_the_stalled_subscriber_missed() {
    let gateway = TestGateway::start(small_queue_config()).await;
    let mut stalled = stalled_client(&gateway).await;
    subscribed(&mut stalled, 1, FEED_DROP, "k").await;
    let mut healthy = gateway.client().await;
    subscribed(&mut healthy, 1, FEED_DROP, "k").await;
    let n = 3000;
    publish_past_a_stalled_reader(&gateway, &mut healthy, "test.Feed.drop", n, |_| "k".into())
        .await;
    // One more event, so that a MISSED for the last drops goes out before it.
    bus_publish(&gateway, "topic.test.Feed.drop.k", n.to_le_bytes().to_vec().into()).await;
    event(&mut healthy).await;
    let (mut received, mut missed, mut previous) = (0u32, 0u32, None);
    loop {
        match stalled.recv().await {
            Frame::Event(e) => {
                let i = u32::from_le_bytes(e.payload[..4].try_into().unwrap());
                assert!(previous.is_none_or(|p| i > p), "in order");
                previous = Some(i);
                received += 1;
                if i == n {
                    break;
                }
            }
            Frame::Missed { subscription_id, count } => {
                assert_eq!(subscription_id, 1);
                missed += count;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(missed > 0, "the stalled reader lost events");
    assert_eq!(received + missed, n + 1, "every event is either received or counted");
    assert!(gateway.metric("gateway_events_dropped_total").await >= f64::from(missed));
    gateway.stop().await;
}

#[tokio::test]
async fn keep_latest_policy_gives_the_stalled_subscriber_each_keys_newest_event() {
    let gateway = TestGateway::start(small_queue_config()).await;
    let mut stalled = stalled_client(&gateway).await;
    subscribed(&mut stalled, 1, FEED_LATEST, "*").await;
    let mut healthy = gateway.client().await;
    subscribed(&mut healthy, 1, FEED_LATEST, "*").await;
    let n = 3000;
    let key_of = |i: u32| format!("dev-{}", i % 5);
    let last =
        publish_past_a_stalled_reader(&gateway, &mut healthy, "test.Feed.latest", n, key_of).await;
    // The stalled reader catches up: per key, events arrive in order and end at the newest.
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut received = 0;
    while seen.len() < last.len() || seen.iter().any(|(k, v)| last[k] != *v) {
        let (_, key, payload) = event(&mut stalled).await;
        let i = u32::from_le_bytes(payload[..4].try_into().unwrap());
        assert!(seen.get(&key).is_none_or(|&p| i > p), "in order per key");
        seen.insert(key, i);
        received += 1;
    }
    assert!(received < n, "conflated: {received} of {n} events sent");
    assert!(gateway.metric("gateway_events_conflated_total").await > 0.0);
    // And no backlog follows.
    bus_publish(&gateway, "topic.test.Feed.latest.dev-0", 9999u32.to_le_bytes().to_vec().into())
        .await;
    let (_, key, payload) = event(&mut stalled).await;
    assert_eq!((key.as_str(), &payload[..]), ("dev-0", &9999u32.to_le_bytes()[..]));
    gateway.stop().await;
}
