//! Pub/sub over a scripted gateway: subscribing, events and their loss accounting,
//! unsubscribing, publishing, and subscriptions across reconnections.

mod support;

use bytes::Bytes;
use futures::StreamExt;
use gateway_client::{Client, RawSubscription};
use gateway_core::{CallOptions, Code, RawEvent, Selector, Status, Topics, Transport};
use gateway_protocol::{
    ErrorReply, Event, Frame, Goaway, GoawayReason, Response, Subscribe, SubscriptionEnded,
};
use support::{ECHO, Gateway, POSITION, Peer, WAIT, config};
use tokio::task::JoinHandle;

async fn connected(buffer: usize) -> (Client, Peer) {
    let gateway = Gateway::bind().await;
    let mut config = config(&[&gateway]);
    config.subscription_buffer = buffer;
    let (client, peer) = tokio::join!(Client::connect(config), gateway.accept_handshake());
    (client.expect("connected"), peer)
}

fn subscribe(client: &Client, selector: Selector) -> JoinHandle<Result<RawSubscription, Status>> {
    let client = client.clone();
    tokio::spawn(async move { client.subscribe(&POSITION, selector).await })
}

/// Subscribes to device `7` and confirms it: the stream and the connection's subscription id.
async fn subscribed(client: &Client, peer: &mut Peer) -> (RawSubscription, u32) {
    let pending = subscribe(client, Selector::Key("7".into()));
    let Subscribe { subscription_id, .. } = peer.subscribe().await;
    peer.send(Frame::Subscribed { subscription_id }).await;
    (pending.await.unwrap().expect("subscribed"), subscription_id)
}

fn event(subscription_id: u32, key: &str, payload: &'static [u8]) -> Frame {
    Frame::Event(Event { subscription_id, key: key.into(), payload: Bytes::from_static(payload) })
}

async fn next(stream: &mut RawSubscription) -> Option<Result<RawEvent, Status>> {
    tokio::time::timeout(WAIT, stream.next()).await.expect("the stream yields in time")
}

async fn next_event(stream: &mut RawSubscription) -> RawEvent {
    next(stream).await.expect("not ended").expect("an event")
}

/// A call the peer answers: once it returns, the client has read every frame sent before.
async fn round_trip(client: &Client, peer: &mut Peer) {
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.unary(&ECHO, Bytes::new(), CallOptions::default()).await }
    });
    let request = peer.request().await;
    peer.send(Frame::Response(Response { request_id: request.request_id, payload: Bytes::new() }))
        .await;
    call.await.unwrap().expect("answered");
}

#[tokio::test]
async fn events_follow_subscribed_in_order_with_their_keys() {
    let (client, mut peer) = connected(16).await;
    let pending = subscribe(&client, Selector::AllKeys);
    let request = peer.subscribe().await;
    assert_ne!(request.subscription_id, 0);
    assert_eq!((request.topic_id, request.all_keys, request.key.as_str()), (POSITION.id, true, ""));
    let id = request.subscription_id;
    peer.send_all([
        Frame::Subscribed { subscription_id: id },
        event(id, "7", b"a"),
        event(id, "8", b"b"),
        // Another subscription's event is not this one's.
        event(id + 1, "9", b"x"),
        event(id, "7", b"c"),
    ])
    .await;
    let mut stream = pending.await.unwrap().expect("subscribed");
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = next_event(&mut stream).await;
        assert_eq!((e.missed, e.resumed), (0, false));
        got.push((e.key, e.payload));
    }
    let expected: Vec<(String, Bytes)> = [("7", "a"), ("8", "b"), ("7", "c")]
        .iter()
        .map(|(k, p)| (k.to_string(), Bytes::copy_from_slice(p.as_bytes())))
        .collect();
    assert_eq!(got, expected);

    // A second subscription takes a new id; a key selector sends the key.
    let pending = subscribe(&client, Selector::Key("7".into()));
    let second = peer.subscribe().await;
    assert_eq!((second.all_keys, second.key.as_str()), (false, "7"));
    assert_ne!(second.subscription_id, id);
    peer.send(Frame::Subscribed { subscription_id: second.subscription_id }).await;
    pending.await.unwrap().expect("subscribed");
}

#[tokio::test]
async fn a_refused_subscription_is_an_error() {
    let (client, mut peer) = connected(16).await;
    let pending = subscribe(&client, Selector::Key("secret".into()));
    let request = peer.subscribe().await;
    let status = Status::permission_denied("not allowed to subscribe to test.Tracker.position");
    peer.send(Frame::SubscriptionEnded(SubscriptionEnded {
        subscription_id: request.subscription_id,
        status: status.clone(),
    }))
    .await;
    assert_eq!(pending.await.unwrap().unwrap_err(), status);
}

#[tokio::test]
async fn missed_counts_go_into_the_next_event() {
    let (client, mut peer) = connected(16).await;
    let (mut stream, id) = subscribed(&client, &mut peer).await;
    peer.send_all([
        event(id, "7", b"a"),
        Frame::Missed { subscription_id: id, count: 5 },
        Frame::Missed { subscription_id: id, count: 2 },
        event(id, "7", b"b"),
        event(id, "7", b"c"),
    ])
    .await;
    let missed: Vec<u64> = [
        next_event(&mut stream).await,
        next_event(&mut stream).await,
        next_event(&mut stream).await,
    ]
    .iter()
    .map(|e| e.missed)
    .collect();
    assert_eq!(missed, [0, 7, 0]);
}

#[tokio::test]
async fn a_slow_reader_loses_the_oldest_events_and_learns_how_many() {
    let (client, mut peer) = connected(3).await;
    let (mut stream, id) = subscribed(&client, &mut peer).await;
    let payloads: [&'static [u8]; 10] =
        [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"];
    peer.send_all(payloads.map(|p| event(id, "7", p))).await;
    // The connection goes on serving calls while nobody reads the events.
    round_trip(&client, &mut peer).await;

    let first = next_event(&mut stream).await;
    assert_eq!((&first.payload[..], first.missed), (&b"7"[..], 7), "0 to 6 were dropped");
    let rest = [next_event(&mut stream).await, next_event(&mut stream).await];
    assert_eq!(
        rest.map(|e| (e.payload, e.missed)),
        [("8", 0), ("9", 0)].map(|(p, m)| { (Bytes::from_static(p.as_bytes()), m) })
    );
}

#[tokio::test]
async fn dropping_the_stream_unsubscribes_and_later_events_are_ignored() {
    let (client, mut peer) = connected(16).await;
    let (stream, id) = subscribed(&client, &mut peer).await;
    drop(stream);
    assert_eq!(peer.recv().await, Frame::Unsubscribe { subscription_id: id });
    // Events already on their way when UNSUBSCRIBE crossed them are dropped quietly.
    peer.send_all([event(id, "7", b"late"), Frame::Missed { subscription_id: id, count: 1 }]).await;
    round_trip(&client, &mut peer).await;
}

#[tokio::test]
async fn a_subscription_the_server_ends_yields_its_status_then_ends() {
    let (client, mut peer) = connected(16).await;
    let (mut stream, id) = subscribed(&client, &mut peer).await;
    let status = Status::permission_denied("revoked");
    peer.send_all([
        event(id, "7", b"a"),
        Frame::SubscriptionEnded(SubscriptionEnded { subscription_id: id, status: status.clone() }),
    ])
    .await;
    assert_eq!(&next_event(&mut stream).await.payload[..], b"a");
    assert_eq!(next(&mut stream).await.unwrap().unwrap_err(), status);
    assert!(next(&mut stream).await.is_none());
}

#[tokio::test]
async fn publish_waits_for_the_gateways_answer() {
    let (client, mut peer) = connected(16).await;
    let publish = tokio::spawn({
        let client = client.clone();
        async move { client.publish(&POSITION, "7", Bytes::from_static(b"here")).await }
    });
    let Frame::Publish(frame) = peer.recv().await else { panic!("expected PUBLISH") };
    assert_ne!(frame.request_id, 0, "an answer is wanted");
    assert_eq!(
        (frame.topic_id, frame.key.as_str(), &frame.payload[..]),
        (POSITION.id, "7", &b"here"[..])
    );
    peer.send(Frame::Response(Response { request_id: frame.request_id, payload: Bytes::new() }))
        .await;
    publish.await.unwrap().expect("published");

    let refused = tokio::spawn({
        let client = client.clone();
        async move { client.publish(&POSITION, "8", Bytes::new()).await }
    });
    let Frame::Publish(frame) = peer.recv().await else { panic!("expected PUBLISH") };
    let status = Status::permission_denied("not allowed to publish");
    peer.send(Frame::Error(ErrorReply {
        request_id: frame.request_id,
        status: status.clone(),
        details: Bytes::new(),
    }))
    .await;
    assert_eq!(refused.await.unwrap().unwrap_err(), status);
}

#[tokio::test]
async fn subscriptions_are_restored_on_the_next_connection_and_say_so() {
    let (a, b) = (Gateway::bind().await, Gateway::bind().await);
    let (client, mut peer_a) =
        tokio::join!(Client::connect(config(&[&a, &b])), a.accept_handshake());
    let client = client.unwrap();
    let (mut stream, id) = subscribed(&client, &mut peer_a).await;
    let pending = subscribe(&client, Selector::AllKeys);
    let all = peer_a.subscribe().await;
    peer_a
        .send_all([
            Frame::Subscribed { subscription_id: all.subscription_id },
            event(id, "7", b"before"),
        ])
        .await;
    let mut refused = pending.await.unwrap().unwrap();
    assert!(!next_event(&mut stream).await.resumed);
    drop(peer_a);

    // The new connection subscribes both again, with the same selectors.
    let mut peer_b = b.accept_handshake().await;
    let mut again = [peer_b.subscribe().await, peer_b.subscribe().await];
    again.sort_by_key(|s| s.all_keys);
    assert_eq!(
        (again[0].topic_id, again[0].all_keys, again[0].key.as_str()),
        (POSITION.id, false, "7")
    );
    assert_eq!(
        (again[1].topic_id, again[1].all_keys, again[1].key.as_str()),
        (POSITION.id, true, "")
    );
    let (keyed, all) = (again[0].subscription_id, again[1].subscription_id);
    let status = Status::permission_denied("no longer allowed");
    peer_b
        .send_all([
            Frame::Subscribed { subscription_id: keyed },
            event(keyed, "7", b"after"),
            event(keyed, "7", b"next"),
            Frame::SubscriptionEnded(SubscriptionEnded {
                subscription_id: all,
                status: status.clone(),
            }),
        ])
        .await;
    let after = next_event(&mut stream).await;
    assert_eq!((&after.payload[..], after.resumed), (&b"after"[..], true));
    assert!(!next_event(&mut stream).await.resumed, "only the first event after the restore");

    // The one the new gateway refused ends with its status.
    assert_eq!(next(&mut refused).await.unwrap().unwrap_err(), status);
    assert!(next(&mut refused).await.is_none());
}

#[tokio::test]
async fn a_subscription_waits_while_the_client_reconnects() {
    let (a, b) = (Gateway::bind().await, Gateway::bind().await);
    let (client, mut peer_a) =
        tokio::join!(Client::connect(config(&[&a, &b])), a.accept_handshake());
    let client = client.unwrap();
    let (mut stream, _) = subscribed(&client, &mut peer_a).await;
    drop(peer_a);
    let waiting = tokio::time::timeout(std::time::Duration::from_millis(200), stream.next()).await;
    assert!(waiting.is_err(), "no item while disconnected: {waiting:?}");
    let mut peer_b = b.accept_handshake().await;
    let id = peer_b.subscribe().await.subscription_id;
    peer_b.send_all([Frame::Subscribed { subscription_id: id }, event(id, "7", b"x")]).await;
    assert!(next_event(&mut stream).await.resumed);
}

#[tokio::test]
async fn goaway_without_reconnect_ends_subscriptions_with_the_reason() {
    let (client, mut peer) = connected(16).await;
    let (mut stream, _) = subscribed(&client, &mut peer).await;
    peer.send(Frame::Goaway(Goaway::new(GoawayReason::POLICY, "banned"))).await;
    let status = next(&mut stream).await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("policy: banned"), "{status}");
    assert!(next(&mut stream).await.is_none());
}

#[tokio::test]
async fn a_subscribe_sent_as_the_connection_goes_away_moves_to_the_next_one() {
    let (a, b) = (Gateway::bind().await, Gateway::bind().await);
    let (client, mut peer_a) =
        tokio::join!(Client::connect(config(&[&a, &b])), a.accept_handshake());
    let client = client.unwrap();
    let pending = subscribe(&client, Selector::Key("7".into()));
    peer_a.subscribe().await;
    peer_a.send(Frame::Goaway(Goaway::new(GoawayReason::SHUTTING_DOWN, "redeploy"))).await;
    let mut peer_b = b.accept_handshake().await;
    let id = peer_b.subscribe().await.subscription_id;
    peer_b.send_all([Frame::Subscribed { subscription_id: id }, event(id, "7", b"x")]).await;
    let mut stream = pending.await.unwrap().expect("subscribed on the second gateway");
    let first = next_event(&mut stream).await;
    assert_eq!((&first.payload[..], first.resumed), (&b"x"[..], false));
}
