//! The WebSocket transport against a real gateway on free loopback ports, with a tokio-tungstenite
//! client speaking raw frames (one per binary message): calls, pub/sub across transports,
//! authentication, every way a connection is closed and its close code, origins, pings, the
//! drain, the connection limit shared with TCP, and the test vectors' message forms.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use gateway::auth::{AuthConfig, KeySpec, RoleSpec};
use gateway_core::Code;
use gateway_protocol::{
    Frame, FrameType, GoawayReason, MIN_MAX_FRAME_SIZE, Publish, Request, Subscribe, decode_message,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{
    ECHO, FEED_CUT, FEED_DROP, RawClient, SLOW, TestGateway, WAIT, WHOAMI, WsClient, config, millis,
};
use tokio_tungstenite::tungstenite::{self, Message};

/// Close codes (RFC 6455) the gateway uses.
const NORMAL: u16 = 1000;
const GOING_AWAY: u16 = 1001;
const PROTOCOL: u16 = 1002;
const UNSUPPORTED_DATA: u16 = 1003;
const POLICY: u16 = 1008;
const TOO_BIG: u16 = 1009;
const TRY_AGAIN_LATER: u16 = 1013;

fn publish(request_id: u32, topic_id: u32, key: &str, payload: &[u8]) -> Frame {
    Frame::Publish(Publish {
        request_id,
        topic_id,
        key: key.to_owned(),
        payload: Bytes::copy_from_slice(payload),
    })
}

fn subscribe(subscription_id: u32, topic_id: u32, key: &str) -> Frame {
    Frame::Subscribe(Subscribe { subscription_id, topic_id, all_keys: false, key: key.to_owned() })
}

fn response_of(frame: Frame) -> (u32, Bytes) {
    match frame {
        Frame::Response(r) => (r.request_id, r.payload),
        other => panic!("expected RESPONSE, got {other:?}"),
    }
}

#[tokio::test]
async fn calls_are_pipelined_and_answered_out_of_order() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.ws_client().await;
    client.call(1, SLOW, 0, &millis(300)).await;
    client.call(2, ECHO, 0, b"fast").await;
    client.call(3, WHOAMI, 0, b"").await;
    // The fast calls overtake the slow one.
    let mut fast = vec![response_of(client.recv().await), response_of(client.recv().await)];
    fast.sort();
    assert_eq!(fast, [(2, Bytes::from("fast")), (3, Bytes::from("anonymous"))]);
    assert_eq!(response_of(client.recv().await), (1, Bytes::from(millis(300).to_vec())));
    // Pipelined ids are reusable once answered.
    for id in [1, 2, 3] {
        client.call(id, ECHO, 0, &[id as u8]).await;
    }
    let mut again = Vec::new();
    for _ in 0..3 {
        again.push(response_of(client.recv().await));
    }
    again.sort();
    assert_eq!(
        again,
        [(1, Bytes::from(vec![1])), (2, Bytes::from(vec![2])), (3, Bytes::from(vec![3]))]
    );
    assert_eq!(gw.metric("gateway_websocket_connections").await, 1.0);
    assert_eq!(gw.metric("gateway_connections").await, 1.0, "WebSocket sessions count in it");
    gw.stop().await;
}

#[tokio::test]
async fn events_cross_between_tcp_and_websocket_clients() {
    let gw = TestGateway::start(config()).await;
    let mut ws = gw.ws_client().await;
    let mut tcp = gw.client().await;

    // TCP publishes, WebSocket receives.
    ws.send(subscribe(1, FEED_CUT, "")).await;
    assert_eq!(ws.recv().await, Frame::Subscribed { subscription_id: 1 });
    tcp.send(publish(5, FEED_CUT, "", b"from tcp")).await;
    assert_eq!(response_of(tcp.recv().await), (5, Bytes::new()));
    match ws.recv().await {
        Frame::Event(e) => assert_eq!((e.subscription_id, e.payload), (1, "from tcp".into())),
        other => panic!("expected EVENT, got {other:?}"),
    }

    // WebSocket publishes, TCP receives.
    tcp.send(subscribe(7, FEED_DROP, "k")).await;
    assert_eq!(tcp.recv().await, Frame::Subscribed { subscription_id: 7 });
    ws.send(publish(2, FEED_DROP, "k", b"from ws")).await;
    assert_eq!(response_of(ws.recv().await), (2, Bytes::new()));
    match tcp.recv().await {
        Frame::Event(e) => {
            assert_eq!((e.subscription_id, e.key.as_str(), e.payload), (7, "k", "from ws".into()));
        }
        other => panic!("expected EVENT, got {other:?}"),
    }
    gw.stop().await;
}

const SECRET: &str = "a test secret of at least thirty-two bytes";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(claims: &Value) -> Bytes {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap().into()
}

#[tokio::test]
async fn authentication_and_permissions_are_the_same_as_over_tcp() {
    let mut config = config();
    config.auth = AuthConfig {
        keys: vec![KeySpec {
            kid: None,
            algorithm: "HS256".into(),
            secret: Some(SECRET.into()),
            secret_file: None,
            public_key_file: None,
        }],
        roles: [(
            "echoer".to_owned(),
            RoleSpec { call: vec!["Timing.echo".into()], ..Default::default() },
        )]
        .into(),
        ..AuthConfig::default()
    };
    let gw = TestGateway::start(config).await;
    let ws = gw.ws.unwrap();

    // No token: refused, GOAWAY unauthenticated then close 1008.
    let mut anonymous = WsClient::connect(ws).await;
    anonymous.send_hello(Bytes::new()).await;
    let goaway = anonymous.expect_goaway(GoawayReason::UNAUTHENTICATED, POLICY).await;
    assert!(!goaway.reconnect);

    // A bad signature: the same.
    let mut forged = WsClient::connect(ws).await;
    let bad = format!(
        "{}x",
        String::from_utf8(token(&json!({"sub": "eve", "exp": now() + 60})).to_vec()).unwrap()
    );
    forged.send_hello(bad.into()).await;
    forged.expect_goaway(GoawayReason::UNAUTHENTICATED, POLICY).await;

    // A good token: its role's permissions apply.
    let mut alice = WsClient::connect(ws).await;
    let welcome = alice
        .hello_with(token(&json!({"sub": "alice", "exp": now() + 600, "roles": ["echoer"]})))
        .await;
    assert!(welcome.auth_expires_in_ms > 500_000);
    alice.call(1, ECHO, 0, b"hi").await;
    assert_eq!(response_of(alice.recv().await), (1, Bytes::from("hi")));
    alice.call(2, WHOAMI, 0, b"").await;
    match alice.recv().await {
        Frame::Error(e) => assert_eq!(e.status.code(), Code::PermissionDenied),
        other => panic!("expected ERROR permission_denied, got {other:?}"),
    }
    assert_eq!(gw.metric("gateway_auth_failures_total{reason=\"missing\"}").await, 1.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_text_message_is_a_protocol_error_closed_with_1003() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.ws_client().await;
    client.ws.send(Message::text("{\"hello\": 1}")).await.unwrap();
    let goaway = client.expect_goaway(GoawayReason::PROTOCOL_ERROR, UNSUPPORTED_DATA).await;
    assert!(goaway.message.contains("text message"), "{goaway:?}");
    assert_eq!(gw.metric("gateway_protocol_errors_total").await, 1.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_larger_than_the_current_frame_limit_get_frame_too_large_and_1009() {
    let gw = TestGateway::start(config()).await;
    let ws = gw.ws.unwrap();
    let limit = MIN_MAX_FRAME_SIZE as usize;

    // Before WELCOME the limit is 65,536 bytes, whatever max_frame_size says: one byte more is
    // refused...
    let mut early = WsClient::connect(ws).await;
    early.send_binary(vec![0x01; limit + 1]).await;
    let goaway = early.expect_goaway(GoawayReason::FRAME_TOO_LARGE, TOO_BIG).await;
    assert!(goaway.message.contains(&format!("{} bytes before WELCOME", limit + 1)), "{goaway:?}");
    // ...and so is a message far larger, from its header, without the gateway reading it.
    let mut huge = WsClient::connect(ws).await;
    let sending = tokio::spawn(async move {
        let _ = huge.ws.send(Message::Binary(vec![0x01; 4 << 20].into())).await;
        huge
    });
    let mut huge = tokio::time::timeout(WAIT, sending).await.unwrap().unwrap();
    let goaway = huge.expect_goaway(GoawayReason::FRAME_TOO_LARGE, TOO_BIG).await;
    assert!(goaway.message.contains(&format!("{} bytes before WELCOME", 4 << 20)), "{goaway:?}");
    // ...and so are many small messages adding up to more than HELLO may be.
    let mut chatty = WsClient::connect(ws).await;
    for _ in 0..20 {
        chatty.ws.feed(Message::Binary(vec![0x01; 4096].into())).await.unwrap();
    }
    chatty.ws.flush().await.unwrap();
    let goaway = chatty.closed().await.goaway.expect("a GOAWAY");
    // The first small message is already not a HELLO; whichever check comes first, the
    // connection ends with a GOAWAY.
    assert_eq!(goaway.reason, GoawayReason::PROTOCOL_ERROR, "{goaway:?}");

    // After WELCOME, max_frame_size (16 MiB here): a 1 MiB message is served.
    let mut client = gw.ws_client().await;
    client.call(1, ECHO, 0, &vec![7; 1 << 20]).await;
    let (id, payload) = response_of(client.recv().await);
    assert_eq!((id, payload.len()), (1, 1 << 20));
    gw.stop().await;

    // With max_frame_size at its smallest, a frame of exactly the limit is served, one byte
    // more closes the connection.
    let gw = TestGateway::start(gateway::Config { max_frame_size: MIN_MAX_FRAME_SIZE, ..config() })
        .await;
    let mut client = gw.ws_client().await;
    let header = 2 + 12; // type, flags, request_id, method_id, timeout_ms
    client.call(1, ECHO, 0, &vec![7; limit - header]).await;
    let (id, payload) = response_of(client.recv().await);
    assert_eq!((id, payload.len()), (1, limit - header));
    client.call(2, ECHO, 0, &vec![7; limit - header + 1]).await;
    let goaway = client.expect_goaway(GoawayReason::FRAME_TOO_LARGE, TOO_BIG).await;
    assert!(goaway.message.contains(&format!("{limit}")), "{goaway:?}");
    gw.stop().await;
}

#[tokio::test]
async fn a_malformed_frame_closes_only_its_own_connection() {
    let gw = TestGateway::start(config()).await;
    let mut bystander = gw.ws_client().await;
    let mut tcp_bystander = gw.client().await;

    // A REQUEST that ends inside its method id.
    let mut bad = gw.ws_client().await;
    bad.send_binary(vec![FrameType::Request as u8, 0, 1, 0, 0, 0, 9, 9]).await;
    let goaway = bad.expect_goaway(GoawayReason::PROTOCOL_ERROR, PROTOCOL).await;
    assert!(goaway.message.contains("method_id"), "{goaway:?}");
    // A frame only servers send.
    let mut backwards = gw.ws_client().await;
    backwards.send(Frame::Subscribed { subscription_id: 1 }).await;
    backwards.expect_goaway(GoawayReason::PROTOCOL_ERROR, PROTOCOL).await;
    // A frame before HELLO.
    let mut early = WsClient::connect(gw.ws.unwrap()).await;
    early.call(1, ECHO, 0, b"").await;
    early.expect_goaway(GoawayReason::PROTOCOL_ERROR, PROTOCOL).await;

    bystander.call(1, ECHO, 0, b"unharmed").await;
    assert_eq!(response_of(bystander.recv().await), (1, Bytes::from("unharmed")));
    tcp_bystander.call(1, ECHO, 0, b"unharmed").await;
    assert_eq!(response_of(tcp_bystander.recv().await), (1, Bytes::from("unharmed")));
    assert_eq!(gw.metric("gateway_protocol_errors_total").await, 3.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_closing_first_gets_its_close_answered_and_its_calls_cancelled() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.ws_client().await;
    client.call(1, support::HANG, 0, b"").await;
    gw.observed
        .wait_for("hanging calls", 1, |o| o.hanging.load(std::sync::atomic::Ordering::SeqCst))
        .await;
    client.ws.close(None).await.unwrap();
    // tungstenite echoes the client's close frame; then the server closes the connection.
    let closed = client.closed().await;
    assert!(closed.goaway.is_none(), "no GOAWAY for a client that left: {closed:?}");
    gw.observed
        .wait_for("cancelled calls", 1, |o| o.cancelled.load(std::sync::atomic::Ordering::SeqCst))
        .await;

    // A client that says GOAWAY gets a close frame 1000.
    let mut polite = gw.ws_client().await;
    polite
        .send(Frame::Goaway(gateway_protocol::Goaway::new(GoawayReason::SHUTTING_DOWN, "bye")))
        .await;
    let closed = polite.closed().await;
    assert!(closed.goaway.is_none(), "{closed:?}");
    assert_eq!(closed.close.map(|c| u16::from(c.code)), Some(NORMAL));
    gw.stop().await;
}

#[tokio::test]
async fn browser_origins_are_checked_against_the_allowed_list() {
    let mut config = config();
    config.allowed_origins = vec!["http://app.test:8080".into(), "https://app.test".into()];
    let gw = TestGateway::start(config).await;
    let ws = gw.ws.unwrap();

    for allowed in
        [None, Some("http://app.test:8080"), Some("https://app.test"), Some("HTTPS://App.Test:443")]
    {
        let mut client = WsClient::connect_from(ws, allowed)
            .await
            .unwrap_or_else(|e| panic!("origin {allowed:?} refused: {e}"));
        client.hello().await;
        client.call(1, ECHO, 0, b"ok").await;
        assert_eq!(response_of(client.recv().await), (1, Bytes::from("ok")), "{allowed:?}");
    }

    for refused in ["http://evil.test", "http://app.test:8081", "http://app.test"] {
        let Err(tungstenite::Error::Http(response)) =
            WsClient::connect_from(ws, Some(refused)).await
        else {
            panic!("origin {refused} was let in");
        };
        assert_eq!(response.status(), 403);
        let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
        assert!(body.contains(&format!("`{refused}`")), "{body}");
    }
    assert_eq!(gw.metric("gateway_websocket_origins_refused_total").await, 3.0);
    assert_eq!(gw.metric("gateway_websocket_connections_total").await, 4.0);
    gw.stop().await;

    // `*` lets any origin in; the default, no entry, none.
    let gw = TestGateway::start(gateway::Config {
        allowed_origins: vec!["*".into()],
        ..support::config()
    })
    .await;
    assert!(WsClient::connect_from(gw.ws.unwrap(), Some("https://anywhere.test")).await.is_ok());
    gw.stop().await;
    let gw = TestGateway::start(support::config()).await;
    let refused = WsClient::connect_from(gw.ws.unwrap(), Some("http://localhost:5173")).await;
    assert!(matches!(refused, Err(tungstenite::Error::Http(r)) if r.status() == 403));
    gw.stop().await;
}

#[tokio::test]
async fn the_gateway_pings_a_silent_client_and_closes_one_that_stays_silent() {
    let interval = Duration::from_millis(200);
    let gw = TestGateway::start(gateway::Config { ws_ping_interval: interval, ..config() }).await;

    // A client that reads answers each ping (tungstenite does), and stays connected.
    let mut alive = gw.ws_client().await;
    let mut pings = 0;
    let listening = tokio::time::sleep(interval * 5);
    tokio::pin!(listening);
    loop {
        tokio::select! {
            _ = &mut listening => break,
            message = alive.ws.next() => match message {
                Some(Ok(Message::Ping(_))) => pings += 1,
                other => panic!("expected pings only, got {other:?}"),
            },
        }
    }
    assert!((2..=5).contains(&pings), "{pings} pings in 5 intervals of silence");
    alive.call(1, ECHO, 0, b"still here").await;
    assert_eq!(response_of(alive.recv().await), (1, Bytes::from("still here")));

    // A client that does not read (so does not answer): pinged, then closed after two
    // intervals. Letting the time pass is the point of this sleep.
    let mut silent = gw.ws_client().await;
    tokio::time::sleep(interval * 4).await;
    assert!(matches!(silent.ws.next().await, Some(Ok(Message::Ping(_)))), "pinged first");
    let goaway = silent.expect_goaway(GoawayReason::IDLE_TIMEOUT, NORMAL).await;
    assert!(goaway.message.contains("not even a pong"), "{goaway:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_answers_calls_in_flight_then_closes_with_1001() {
    let gw =
        TestGateway::start(gateway::Config { drain_timeout: Duration::from_secs(10), ..config() })
            .await;
    let mut client = gw.ws_client().await;
    client.call(1, SLOW, 0, &millis(500)).await;
    client.call(2, ECHO, 0, b"done").await;
    assert_eq!(response_of(client.recv().await).0, 2);

    gw.shutdown.cancel();
    let Frame::Goaway(goaway) = client.recv().await else { panic!("expected GOAWAY") };
    assert_eq!((goaway.reason, goaway.last_request_id), (GoawayReason::SHUTTING_DOWN, 2));
    assert!(goaway.reconnect);
    assert_eq!(response_of(client.recv().await).0, 1, "the call in flight is answered");
    let closed = client.closed().await;
    let close = closed.close.expect("a close frame");
    assert_eq!(u16::from(close.code), GOING_AWAY);
    assert_eq!(close.reason.as_str(), "the gateway is shutting down");
    assert!(
        WsClient::connect_from(gw.ws.unwrap(), None).await.is_err(),
        "no new WebSocket while draining"
    );
    gw.stopped().await;
}

#[tokio::test]
async fn the_connection_limit_counts_tcp_and_websocket_together() {
    let gw = TestGateway::start(gateway::Config { max_connections: 2, ..config() }).await;
    let _tcp = gw.client().await;
    let _ws = gw.ws_client().await;
    assert_eq!(gw.metric("gateway_connections").await, 2.0);

    let mut third = WsClient::connect(gw.ws.unwrap()).await;
    let goaway = third.expect_goaway(GoawayReason::TOO_MANY_CONNECTIONS, TRY_AGAIN_LATER).await;
    assert!(goaway.reconnect);
    let mut fourth = RawClient::connect(gw.addr).await;
    assert_eq!(fourth.expect_goaway().await.reason, GoawayReason::TOO_MANY_CONNECTIONS);
    assert_eq!(gw.metric("gateway_connections_rejected_total").await, 2.0);

    // Once one leaves, a WebSocket gets in.
    drop(_tcp);
    let admitted = tokio::time::timeout(WAIT, async {
        loop {
            let mut client = WsClient::connect(gw.ws.unwrap()).await;
            client.send_hello(Bytes::new()).await;
            match client.recv().await {
                Frame::Welcome(_) => return client,
                Frame::Goaway(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    admitted.await.expect("a place frees up");
    gw.stop().await;
}

#[tokio::test]
async fn a_websocket_subscriber_that_stops_reading_is_cut_with_slow_consumer_and_1013() {
    let gw = TestGateway::start(gateway::Config { send_queue_bytes: 16 * 1024, ..config() }).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let ws = gw.ws.unwrap();
    let mut stalled = WsClient::over(socket.connect(ws).await.unwrap(), ws).await;
    stalled.hello().await;
    stalled.send(subscribe(1, FEED_CUT, "")).await;
    assert_eq!(stalled.recv().await, Frame::Subscribed { subscription_id: 1 });

    // Publish until the gateway gives up on the stalled reader (it never slows the publisher).
    let mut publisher = gw.client().await;
    let mut published = 0u32;
    let cut = "gateway_goaway_total{reason=\"slow_consumer\"}";
    while gw.metric(cut).await == 0.0 {
        for _ in 0..50 {
            published += 1;
            publisher.send(publish(0, FEED_CUT, "", &[0xee; 1024])).await;
        }
        assert!(published < 100_000, "the stalled subscriber was never cut");
    }
    let mut events = 0;
    let goaway = loop {
        match stalled.next_message().await {
            Some(Message::Binary(bytes)) => match decode_message(bytes).unwrap() {
                Some(Frame::Event(_)) => events += 1,
                Some(Frame::Goaway(goaway)) => break goaway,
                other => panic!("expected EVENTs then GOAWAY, got {other:?}"),
            },
            other => panic!("expected EVENTs then GOAWAY, got {other:?}"),
        }
    };
    assert_eq!(goaway.reason, GoawayReason::SLOW_CONSUMER);
    assert!(events < published, "{events} of {published} events reached the stalled reader");
    match stalled.next_message().await {
        Some(Message::Close(Some(close))) => assert_eq!(u16::from(close.code), TRY_AGAIN_LATER),
        other => panic!("expected a close frame, got {other:?}"),
    }
    gw.stop().await;
}

/// `docs/protocol-vectors.json`, whose message forms are sent as binary messages.
fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol-vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A vector's message form: its hex without the 4-byte length prefix.
fn message_form(vector: &Value) -> Vec<u8> {
    let hex: String = vector["hex"].as_str().unwrap().chars().filter(|c| *c != ' ').collect();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    bytes[4..].to_vec()
}

/// Expects PONG `data` next: the session is alive and served everything before it.
async fn still_served(client: &mut WsClient, name: &str) {
    client.send(Frame::Ping { data: 0x5e55_1011 }).await;
    assert_eq!(client.recv().await, Frame::Pong { data: 0x5e55_1011 }, "{name}: still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vector_in_its_message_form_gets_the_answer_its_frame_calls_for() {
    let gw = TestGateway::start(config()).await;
    let vectors = vectors();
    for vector in vectors["frames"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        let message = message_form(vector);
        let frame = decode_message(Bytes::from(message.clone())).unwrap().unwrap();
        if let Frame::Hello(hello) = &frame {
            // As the first message of a connection.
            let mut client = WsClient::connect(gw.ws.unwrap()).await;
            client.send_binary(message).await;
            if hello.token.is_empty() {
                assert!(matches!(client.recv().await, Frame::Welcome(_)), "{name}");
                still_served(&mut client, name).await;
            } else {
                // This gateway has no keys: a token is refused.
                client.expect_goaway(GoawayReason::UNAUTHENTICATED, POLICY).await;
            }
            continue;
        }
        let mut client = gw.ws_client().await;
        client.send_binary(message).await;
        match frame {
            Frame::Ping { data } => assert_eq!(client.recv().await, Frame::Pong { data }, "{name}"),
            Frame::Request(Request { request_id, fire_and_forget: false, .. }) => {
                match client.recv().await {
                    Frame::Error(e) => assert_eq!(e.request_id, request_id, "{name}"),
                    Frame::Response(r) => assert_eq!(r.request_id, request_id, "{name}"),
                    other => panic!("{name}: expected an answer, got {other:?}"),
                }
            }
            Frame::Publish(Publish { request_id, .. }) if request_id != 0 => {
                match client.recv().await {
                    Frame::Error(e) => assert_eq!(e.request_id, request_id, "{name}"),
                    Frame::Response(r) => assert_eq!(r.request_id, request_id, "{name}"),
                    other => panic!("{name}: expected an answer, got {other:?}"),
                }
            }
            Frame::Subscribe(s) => match client.recv().await {
                Frame::Subscribed { subscription_id }
                | Frame::SubscriptionEnded(gateway_protocol::SubscriptionEnded {
                    subscription_id,
                    ..
                }) => assert_eq!(subscription_id, s.subscription_id, "{name}"),
                other => panic!("{name}: expected SUBSCRIBED or SUBSCRIPTION_ENDED, got {other:?}"),
            },
            // The vectors' topics are unknown here: refused, whatever the position.
            Frame::SubscribeFrom(s) => match client.recv().await {
                Frame::SubscriptionEnded(ended) => {
                    assert_eq!(ended.subscription_id, s.subscription_id, "{name}")
                }
                other => panic!("{name}: expected SUBSCRIPTION_ENDED, got {other:?}"),
            },
            Frame::Auth(auth) => match client.recv().await {
                Frame::Error(e) => assert_eq!(e.request_id, auth.request_id, "{name}"),
                Frame::AuthOk { request_id, .. } => {
                    assert_eq!(request_id, auth.request_id, "{name}")
                }
                other => panic!("{name}: expected an answer to AUTH, got {other:?}"),
            },
            // Answered with nothing: PONG, fire-and-forget, a publication without a request id,
            // CANCEL and UNSUBSCRIBE of nothing in flight.
            Frame::Pong { .. }
            | Frame::Request(_)
            | Frame::Publish(_)
            | Frame::Cancel { .. }
            | Frame::Unsubscribe { .. } => {}
            Frame::Goaway(_) => {
                // The client leaves: the gateway closes with 1000 and says nothing more.
                let closed = client.closed().await;
                assert!(closed.goaway.is_none(), "{name}: {closed:?}");
                assert_eq!(closed.close.map(|c| u16::from(c.code)), Some(NORMAL), "{name}");
                continue;
            }
            // Frames only servers send.
            _ => {
                client.expect_goaway(GoawayReason::PROTOCOL_ERROR, PROTOCOL).await;
                continue;
            }
        }
        still_served(&mut client, name).await;
    }

    for vector in vectors["ignored"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        let mut client = gw.ws_client().await;
        client.send_binary(message_form(vector)).await;
        still_served(&mut client, name).await;
    }

    for vector in vectors["invalid"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        if vector["error"] == "frame_too_large" {
            continue; // a length prefix alone: there is no message form
        }
        let mut client = gw.ws_client().await;
        client.send_binary(message_form(vector)).await;
        let goaway = client.expect_goaway(GoawayReason::PROTOCOL_ERROR, PROTOCOL).await;
        assert!(!goaway.message.is_empty(), "{name}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_upgrade_and_hello_together_fall_under_the_handshake_timeout() {
    let timeout = Duration::from_millis(300);
    let gw = TestGateway::start(gateway::Config { handshake_timeout: timeout, ..config() }).await;
    let ws = gw.ws.unwrap();

    // Upgraded, but no HELLO.
    let mut quiet = WsClient::connect(ws).await;
    let goaway = quiet.expect_goaway(GoawayReason::HANDSHAKE_TIMEOUT, POLICY).await;
    assert!(!goaway.reconnect);

    // Not even the HTTP request: the connection is dropped (there is no WebSocket to say
    // GOAWAY on), and counted.
    let started = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(ws).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut silent, &mut buf));
    assert!(matches!(read.await.unwrap(), Ok(0) | Err(_)), "the gateway closes it");
    assert!(started.elapsed() >= timeout, "not before the timeout");
    // Not an upgrade at all: told so in HTTP, then closed.
    let mut plain = tokio::net::TcpStream::connect(ws).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut answer);
    tokio::time::timeout(WAIT, read).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
    assert!(answer.ends_with("not a WebSocket upgrade request\n"), "{answer}");
    assert_eq!(gw.metric("gateway_websocket_upgrades_failed_total").await, 2.0);
    gw.stop().await;
}

/// The gateway sleeps through an upgrade request until its head can have ended (the socket's
/// low-water mark is what the blank line still needs) and must answer the moment it has.
#[tokio::test]
async fn an_upgrade_request_sent_in_pieces_is_answered_once_its_head_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = TestGateway::start(config()).await;
    let mut stream = tokio::net::TcpStream::connect(gw.ws.unwrap()).await.unwrap();
    let head = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    // All but the last byte (the mark is then 1: the head ends in `\r\n\r`); meanwhile no
    // answer, then that byte alone.
    let (all_but_last, last) = head.as_bytes().split_at(head.len() - 1);
    stream.write_all(all_but_last).await.unwrap();
    let mut answer = [0u8; 12];
    let early = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut answer)).await;
    assert!(early.is_err(), "an answer before the head ended: {early:?}");
    stream.write_all(last).await.unwrap();
    tokio::time::timeout(WAIT, stream.read_exact(&mut answer)).await.unwrap().unwrap();
    assert_eq!(&answer, b"HTTP/1.1 101", "{}", String::from_utf8_lossy(&answer));
    gw.stop().await;
}

#[tokio::test]
async fn the_connection_rate_per_address_counts_websocket_connections_too() {
    let gw =
        TestGateway::start(gateway::Config { connection_rate: 1, connection_burst: 2, ..config() })
            .await;
    let _tcp = gw.client().await;
    let _ws = gw.ws_client().await;
    // The burst is spent, by both transports together.
    let mut third = WsClient::connect(gw.ws.unwrap()).await;
    let goaway = third.expect_goaway(GoawayReason::TOO_MANY_CONNECTIONS, TRY_AGAIN_LATER).await;
    assert!(goaway.message.contains("from this address"), "{goaway:?}");
    gw.stop().await;
}

/// GOAWAY `done` over WebSocket: the call in flight is answered, then the gateway closes with
/// 1000 (normal closure) and no GOAWAY of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_done_is_answered_then_closed_normally() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.ws_client().await;
    client.call(1, SLOW, 5000, &millis(200)).await;
    client.send(Frame::Goaway(gateway_protocol::Goaway::new(GoawayReason::DONE, ""))).await;
    match client.recv().await {
        Frame::Response(response) => assert_eq!(response.request_id, 1),
        other => panic!("expected the answer in flight, got {other:?}"),
    }
    let closed = client.closed().await;
    assert!(closed.goaway.is_none(), "{closed:?}");
    assert_eq!(closed.close.map(|c| u16::from(c.code)), Some(NORMAL));
    gw.stop().await;
}
