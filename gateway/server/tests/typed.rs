//! The whole chain with real parts: rpcgen's generated client over the network client
//! (`gateway-client`), through a gateway on TCP, to a service that publishes on the bus; and
//! token refresh by the client's provider against the gateway's JWT checks.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use gateway::auth::{AuthConfig, KeySpec, RoleSpec};
use gateway_client::{Client, ClientConfig, TokenProvider};
use gateway_core::{Code, Selector, Topics};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use some_api::{RequestSubT, RequestSumT, SomeApiClient};
use support::{FEED_LATEST, TOPICS, TestGateway, WAIT, config};

async fn client(gateway: &TestGateway, token: Option<TokenProvider>) -> Client {
    let mut config = ClientConfig::new([gateway.addr.to_string()]);
    config.token_provider = token;
    tokio::time::timeout(WAIT, Client::connect(config)).await.unwrap().unwrap()
}

#[tokio::test]
async fn typed_subscribers_see_what_the_service_publishes() {
    let gateway = TestGateway::start(config()).await;
    let watcher = SomeApiClient::new(client(&gateway, None).await);
    let caller = SomeApiClient::new(client(&gateway, None).await);
    let mut totals = watcher.subscribe_pub().await.unwrap();
    caller.sub(RequestSubT { amount: 5 }).await.unwrap();
    caller.sub(RequestSubT { amount: -7 }).await.unwrap();
    assert_eq!(caller.sum(RequestSumT { a: 1, b: 2 }).await.unwrap().get().sum(), 3);
    for (value, changes) in [(-5, 1), (2, 2)] {
        let event = tokio::time::timeout(WAIT, totals.next()).await.unwrap().unwrap().unwrap();
        let total = event.message().get();
        assert_eq!((total.value(), total.changes()), (value, changes));
        assert_eq!(event.missed(), 0);
    }
    // A later subscriber gets the retained total at once.
    let mut late = watcher.subscribe_pub().await.unwrap();
    let event = tokio::time::timeout(WAIT, late.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(event.message().get().value(), 2);
    // Publishing a service's topic is refused to clients.
    let refused = caller.publish_pub(some_api::TotalT { value: 1, changes: 1 }).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    gateway.stop().await;
}

#[tokio::test]
async fn keyed_and_all_keys_subscriptions_through_the_network_client() {
    let gateway = TestGateway::start(config()).await;
    let topic = TOPICS.topics.iter().find(|t| t.id == FEED_LATEST).unwrap();
    let subscriber = client(&gateway, None).await;
    let publisher = client(&gateway, None).await;
    let mut one = subscriber.subscribe(topic, Selector::Key("dev-1".into())).await.unwrap();
    let mut all = subscriber.subscribe(topic, Selector::AllKeys).await.unwrap();
    publisher.publish(topic, "dev-2", Bytes::from_static(b"two")).await.unwrap();
    publisher.publish(topic, "dev-1", Bytes::from_static(b"one")).await.unwrap();
    let event = next(&mut one).await;
    assert_eq!((event.key.as_str(), &event.payload[..]), ("dev-1", &b"one"[..]));
    assert_eq!(next(&mut all).await.key, "dev-2");
    assert_eq!(next(&mut all).await.key, "dev-1");
    // Dropping a subscription unsubscribes; the bus subscription goes after the linger.
    drop(one);
    let released = async {
        while gateway.bus.subscriptions("topic.test.Feed.latest.dev-1") > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, released).await.expect("unsubscribed");
    gateway.stop().await;
}

async fn next(s: &mut gateway_client::RawSubscription) -> gateway_core::RawEvent {
    tokio::time::timeout(WAIT, s.next()).await.unwrap().unwrap().unwrap()
}

const SECRET: &str = "the typed test's secret, 32 bytes or more";

#[tokio::test]
async fn the_clients_token_provider_keeps_a_connection_alive_past_each_tokens_expiry() {
    let mut config = config();
    config.auth = AuthConfig {
        keys: vec![KeySpec {
            kid: None,
            algorithm: "HS256".into(),
            secret: Some(SECRET.into()),
            secret_file: None,
            public_key_file: None,
        }],
        leeway: Some(Duration::ZERO),
        roles: [(
            "caller".to_owned(),
            RoleSpec { call: vec!["SomeApi.*".into()], ..RoleSpec::default() },
        )]
        .into(),
        ..AuthConfig::default()
    };
    let gateway = TestGateway::start(config).await;
    // Each token lives 2 s; the client must refresh at ~80% of that, on its own.
    let minted = Arc::new(AtomicU32::new(0));
    let provider = {
        let minted = minted.clone();
        TokenProvider::new(move || {
            let minted = minted.clone();
            async move {
                minted.fetch_add(1, Ordering::SeqCst);
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
                let claims = json!({ "sub": "alice", "exp": now + 2, "roles": ["caller"] });
                let key = EncodingKey::from_secret(SECRET.as_bytes());
                encode(&Header::new(Algorithm::HS256), &claims, &key)
                    .map(Bytes::from)
                    .map_err(|e| e.to_string())
            }
        })
    };
    let api = SomeApiClient::new(client(&gateway, Some(provider)).await);
    let connections = gateway.metric("gateway_connections_total").await;
    for _ in 0..5 {
        assert_eq!(api.sum(RequestSumT { a: 2, b: 2 }).await.unwrap().get().sum(), 4);
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    }
    assert!(
        minted.load(Ordering::SeqCst) >= 3,
        "refreshed, {} tokens",
        minted.load(Ordering::SeqCst)
    );
    assert_eq!(
        gateway.metric("gateway_connections_total").await,
        connections,
        "one connection throughout"
    );
    assert_eq!(gateway.metric("gateway_goaway_total{reason=\"token_expired\"}").await, 0.0);
    gateway.stop().await;
}

/// `Client::finish`: the call in flight is answered (GOAWAY `done`, docs/protocol.md,
/// "Closing"), calls made afterwards fail at once with `cancelled`, and subscriptions end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_the_rust_client_answers_its_calls_in_flight_then_closes() {
    use gateway_core::{CallOptions, Transport as _};
    let gw = TestGateway::start(config()).await;
    let client = client(&gw, None).await;
    let slow = support::TEST_SERVICE.methods.iter().find(|m| m.id == support::SLOW).unwrap();
    let topic = TOPICS.topics.iter().find(|t| t.id == FEED_LATEST).unwrap();
    let mut events = client.subscribe(topic, Selector::AllKeys).await.unwrap();
    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            let payload = Bytes::copy_from_slice(&support::millis(300));
            client.unary(slow, payload, CallOptions::default()).await
        })
    };
    // The call reaches the gateway before the client finishes.
    let started = std::time::Instant::now();
    while gw.metric("gateway_requests_in_flight").await < 1.0 {
        assert!(started.elapsed() < WAIT, "the slow call never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(WAIT, client.finish()).await.expect("finish returns");
    let answer = call.await.unwrap().expect("the call in flight is answered");
    assert_eq!(&answer[..], &support::millis(300));
    let after = client.unary(slow, Bytes::new(), CallOptions::default()).await.unwrap_err();
    assert_eq!(after.code(), Code::Cancelled, "{after}");
    let ended = tokio::time::timeout(WAIT, events.next()).await.unwrap();
    let cancelled = matches!(ended, Some(Err(ref s)) if s.code() == Code::Cancelled);
    assert!(cancelled || ended.is_none(), "the subscription ends: {ended:?}");
    gw.stop().await;
}
