//! Losing and regaining gateways: lost connections, GOAWAY with and without reconnect, lazy
//! connection, keepalive, backoff.

mod support;

use std::time::Duration;

use bytes::Bytes;
use gateway_client::{Client, ConnectError};
use gateway_core::{CallOptions, Code, Status, Transport};
use gateway_protocol::{Frame, Goaway, GoawayReason, Request, Response, Welcome};
use support::{ECHO, Gateway, LOOKUP, Peer, WAIT, config};
use tokio::task::JoinHandle;

fn call(
    client: &Client,
    method: &'static gateway_core::MethodDesc,
) -> JoinHandle<Result<Bytes, Status>> {
    let client = client.clone();
    tokio::spawn(async move { client.unary(method, Bytes::new(), CallOptions::default()).await })
}

async fn answer(peer: &mut Peer, request: &Request) {
    let payload = Bytes::copy_from_slice(&request.request_id.to_le_bytes());
    peer.send(Frame::Response(Response { request_id: request.request_id, payload })).await;
}

/// A call that the peer answers: proves which gateway the client is connected to.
async fn served_by(client: &Client, peer: &mut Peer) {
    let pending = call(client, &ECHO);
    let request = peer.request().await;
    answer(peer, &request).await;
    pending.await.unwrap().expect("answered");
}

#[tokio::test]
async fn a_lost_connection_fails_calls_in_flight_and_the_next_endpoint_takes_over() {
    let (a, b) = (Gateway::bind().await, Gateway::bind().await);
    let (client, mut peer_a) =
        tokio::join!(Client::connect(config(&[&a, &b])), a.accept_handshake());
    let client = client.unwrap();
    let echo = call(&client, &ECHO);
    let lookup = call(&client, &LOOKUP);
    peer_a.request().await;
    peer_a.request().await;
    drop(peer_a);

    let echo = echo.await.unwrap().unwrap_err();
    let lookup = lookup.await.unwrap().unwrap_err();
    assert_eq!((echo.code(), lookup.code()), (Code::Unavailable, Code::Unavailable));
    assert!(!echo.retryable(), "a request that may have run is not retried: {echo}");
    assert!(lookup.retryable(), "an idempotent one may be: {lookup}");
    assert!(echo.message().contains(&a.endpoint), "{echo}");

    let mut peer_b = b.accept_handshake().await;
    served_by(&client, &mut peer_b).await;
}

#[tokio::test]
async fn goaway_with_reconnect_finishes_promised_calls_fails_the_rest_and_moves_on() {
    let (a, b) = (Gateway::bind().await, Gateway::bind().await);
    let (client, mut peer_a) =
        tokio::join!(Client::connect(config(&[&a, &b])), a.accept_handshake());
    let client = client.unwrap();
    let mut calls = Vec::new();
    let mut requests = Vec::new();
    for _ in 0..3 {
        calls.push(call(&client, &ECHO));
        requests.push(peer_a.request().await);
    }
    let goaway = Goaway {
        last_request_id: requests[1].request_id,
        ..Goaway::new(GoawayReason::SHUTTING_DOWN, "redeploy")
    };
    peer_a.send(Frame::Goaway(goaway)).await;

    // The third request was not taken: it fails at once, retryable.
    let third = calls.pop().unwrap().await.unwrap().unwrap_err();
    assert_eq!(third.code(), Code::Unavailable);
    assert!(third.retryable());
    assert!(third.message().contains("shutting_down: redeploy"), "{third}");

    // Meanwhile new calls go to the next gateway.
    let mut peer_b = b.accept_handshake().await;
    served_by(&client, &mut peer_b).await;

    // The promised ones are still answered on the old connection, which the client then closes.
    answer(&mut peer_a, &requests[0]).await;
    answer(&mut peer_a, &requests[1]).await;
    for (call, request) in calls.into_iter().zip(&requests) {
        let reply = call.await.unwrap().unwrap();
        assert_eq!(reply[..], request.request_id.to_le_bytes());
    }
    assert_eq!(tokio::time::timeout(WAIT, peer_a.until_closed()).await.unwrap(), []);
}

#[tokio::test]
async fn goaway_without_reconnect_fails_calls_with_the_reason_and_stops() {
    let (a, b) = (Gateway::bind().await, Gateway::bind().await);
    let (client, mut peer_a) =
        tokio::join!(Client::connect(config(&[&a, &b])), a.accept_handshake());
    let client = client.unwrap();
    let pending = call(&client, &LOOKUP);
    peer_a.request().await;
    peer_a.send(Frame::Goaway(Goaway::new(GoawayReason::POLICY, "banned"))).await;

    let status = pending.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(!status.retryable(), "{status}");
    assert!(status.message().contains("policy: banned"), "{status}");

    let later = client.unary(&ECHO, Bytes::new(), CallOptions::default());
    let later = tokio::time::timeout(WAIT, later).await.expect("fails at once").unwrap_err();
    assert_eq!(later.code(), Code::Unavailable);
    assert!(!later.retryable());
    assert!(later.message().contains("policy: banned"), "{later}");
    assert!(b.stays_unvisited(Duration::from_millis(300)).await, "the client does not reconnect");
}

#[tokio::test]
async fn connect_reports_a_refusal_and_unreachable_endpoints() {
    let gateway = Gateway::bind().await;
    let refuse = async {
        let mut peer = gateway.accept().await;
        assert!(matches!(peer.recv().await, Frame::Hello(_)));
        peer.send(Frame::Goaway(Goaway::new(GoawayReason::UNAUTHENTICATED, "bad token"))).await;
    };
    let (result, ()) = tokio::join!(Client::connect(config(&[&gateway])), refuse);
    let err = result.unwrap_err();
    assert!(matches!(err, ConnectError::Refused { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("gateway `{}` refused the client: unauthenticated: bad token", gateway.endpoint)
    );

    let closed = Gateway::bind().await;
    let endpoint = closed.endpoint.clone();
    drop(closed);
    let err = Client::connect(config(&[])).await.unwrap_err();
    assert!(matches!(err, ConnectError::Config(_)), "{err:?}");
    let mut unreachable = config(&[]);
    unreachable.endpoints = vec![endpoint.clone()];
    let err = Client::connect(unreachable).await.unwrap_err();
    let ConnectError::Unreachable(failures) = &err else { panic!("{err:?}") };
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, endpoint);
}

#[tokio::test]
async fn a_lazy_client_connects_at_its_first_call_which_waits_for_the_connection() {
    let gateway = Gateway::bind().await;
    let client = Client::new(config(&[&gateway])).unwrap();
    assert!(gateway.stays_unvisited(Duration::from_millis(100)).await, "no call, no connection");
    assert!(!client.is_connected());
    let pending = call(&client, &ECHO);
    let mut peer = gateway.accept_handshake().await;
    let request = peer.request().await;
    answer(&mut peer, &request).await;
    pending.await.unwrap().unwrap();
    assert!(client.is_connected());
}

#[tokio::test]
async fn a_call_without_a_connection_fails_with_unavailable_at_its_deadline() {
    let closed = Gateway::bind().await;
    let mut config = config(&[&closed]);
    drop(closed);
    config.backoff.initial = Duration::from_millis(5);
    let client = Client::new(config).unwrap();
    let options = CallOptions::timeout(Duration::from_millis(300));
    let started = tokio::time::Instant::now();
    let status = client.unary(&ECHO, Bytes::new(), options).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.retryable());
    assert!(status.message().contains("no connection to a gateway within 300ms"), "{status}");
    assert!(status.message().contains("last error"), "{status}");
}

#[tokio::test]
async fn a_gateway_that_stops_answering_pings_is_a_lost_connection() {
    let (a, b) = (Gateway::bind().await, Gateway::bind().await);
    let mut config = config(&[&a, &b]);
    config.keepalive_interval = Some(Duration::from_millis(50));
    let (client, mut peer_a) = tokio::join!(Client::connect(config), a.accept_handshake());
    let client = client.unwrap();

    // A gateway that answers pings keeps the connection over many intervals.
    for _ in 0..4 {
        let Frame::Ping { data } = peer_a.recv().await else { panic!("expected PING") };
        peer_a.send(Frame::Pong { data }).await;
    }
    // Then it goes silent with a call in flight.
    let pending = call(&client, &LOOKUP);
    let _silent = peer_a;
    let status = pending.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("ping"), "{status}");
    let mut peer_b = b.accept_handshake().await;
    served_by(&client, &mut peer_b).await;
}

#[tokio::test]
async fn the_client_pings_often_enough_for_the_servers_idle_timeout() {
    let gateway = Gateway::bind().await;
    let mut config = config(&[&gateway]);
    config.keepalive_interval = Some(Duration::from_secs(3600));
    let welcome = Welcome { idle_timeout_ms: 100, ..support::welcome() };
    let (client, (mut peer, _)) =
        tokio::join!(Client::connect(config), gateway.accept_with(welcome));
    let _client = client.unwrap();
    let started = tokio::time::Instant::now();
    let Frame::Ping { data } = peer.recv().await else { panic!("expected PING") };
    peer.send(Frame::Pong { data }).await;
    assert!(matches!(peer.recv().await, Frame::Ping { .. }));
    // Two pings at half the idle timeout each, not at the configured hour.
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

/// Full jitter draws each delay from `[0, min(5 s, 50 ms × 2ⁿ)]`: observed on a gateway that
/// drops every connection before WELCOME, with the clock paused so the delays cost nothing.
#[tokio::test(start_paused = true)]
async fn reconnection_delays_grow_and_stay_bounded() {
    let gateway = Gateway::bind().await;
    let client = Client::new(config(&[&gateway])).unwrap();
    let _waiting = call(&client, &ECHO);
    let mut attempts = Vec::new();
    for _ in 0..12 {
        drop(gateway.accept().await);
        attempts.push(tokio::time::Instant::now());
    }
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    for (n, gap) in gaps.iter().enumerate() {
        let bound = Duration::from_millis(50 << n.min(7)).min(Duration::from_secs(5));
        assert!(*gap <= bound, "attempt {n}: waited {gap:?}, more than {bound:?} ({gaps:?})");
    }
    // Full jitter can draw small delays, but not eleven times in a row past 200 ms bounds
    // (the chance is below one in a million).
    assert!(gaps.iter().any(|gap| *gap > Duration::from_millis(200)), "{gaps:?}");
}
