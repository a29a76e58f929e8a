//! Calls through a real gateway: pipelining, deadlines, cancellation reaching the service,
//! routing errors, fire-and-forget, ping, and the typed client end to end.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_bus::contract::header;
use gateway_bus::{Bus, Headers};
use gateway_core::Code;
use gateway_protocol::{Frame, GoawayReason, Request, Response};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_call_overtakes_a_slow_one_on_the_same_connection() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.client().await;
    // Both requests leave in one write: the slow one first.
    let both = encode_all(&[request(1, SLOW, 0, &millis(400)), request(2, ECHO, 0, b"fast")]);
    client.send_raw(&both).await;
    assert_eq!(
        client.recv().await,
        Frame::Response(Response { request_id: 2, payload: Bytes::from_static(b"fast") })
    );
    assert_eq!(
        client.recv().await,
        Frame::Response(Response { request_id: 1, payload: Bytes::copy_from_slice(&millis(400)) })
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_gets_deadline_exceeded_in_time() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.client().await;
    let start = Instant::now();
    client.call(1, SLOW, 100, &millis(5_000)).await;
    let error = client.expect_error().await;
    assert_eq!((error.request_id, error.status.code()), (1, Code::DeadlineExceeded));
    assert!(!error.status.retryable());
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(2), "{took:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_timeout_caps_the_deadline_a_request_asks_for() {
    let gw = TestGateway::start(gateway::Config {
        max_timeout: Duration::from_millis(100),
        default_timeout: Duration::from_millis(100),
        ..config()
    })
    .await;
    let mut client = gw.client().await;
    client.call(1, SLOW, 60_000, &millis(5_000)).await;
    client.call(2, SLOW, 0, &millis(5_000)).await;
    for _ in 0..2 {
        assert_eq!(client.expect_error().await.status.code(), Code::DeadlineExceeded);
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_answers_cancelled_and_cancels_the_handler() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.client().await;
    client.call(1, HANG, 0, b"").await;
    client.call(2, ECHO, 0, b"still fine").await;
    assert!(matches!(client.recv().await, Frame::Response(r) if r.request_id == 2));
    gw.observed.wait_for("hanging handlers", 1, |o| load(&o.hanging)).await;
    client.send(Frame::Cancel { request_id: 1 }).await;
    let error = client.expect_error().await;
    assert_eq!((error.request_id, error.status.code()), (1, Code::Cancelled));
    gw.observed.wait_for("cancelled handlers", 1, |o| load(&o.cancelled)).await;
    // A CANCEL for an id no longer in flight is ignored; the connection carries on.
    client.send(Frame::Cancel { request_id: 1 }).await;
    client.send(Frame::Ping { data: 5 }).await;
    assert_eq!(client.recv().await, Frame::Pong { data: 5 });
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_cancels_its_calls_in_the_service() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.client().await;
    for id in 1..=3 {
        client.call(id, HANG, 0, b"").await;
    }
    gw.observed.wait_for("hanging handlers", 3, |o| load(&o.hanging)).await;
    drop(client);
    gw.observed.wait_for("cancelled handlers", 3, |o| load(&o.cancelled)).await;
    gw.stop().await;
}

/// Issue 18: a client that is done sends GOAWAY `done` and reads on: the calls it left in flight
/// are answered (the slow one too), then the gateway closes; a request sent after the GOAWAY is
/// not started (docs/protocol.md, "Closing").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_done_gets_the_answers_in_flight_then_the_gateway_closes() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.client().await;
    client.call(1, SLOW, 5000, &millis(300)).await;
    client.call(2, ECHO, 5000, b"now").await;
    client.send(Frame::Goaway(gateway_protocol::Goaway::new(GoawayReason::DONE, ""))).await;
    client.call(3, ECHO, 5000, b"too late").await;
    let mut answered = Vec::new();
    while let Some(frame) = client.try_recv().await {
        match frame {
            Frame::Response(response) => answered.push(response.request_id),
            other => panic!("expected only the answers in flight, got {other:?}"),
        }
    }
    answered.sort_unstable();
    assert_eq!(answered, [1, 2], "both calls in flight answered, nothing after the GOAWAY");
    gw.stop().await;
}

/// Any other GOAWAY from the client, and its end of stream, even a TCP half-close with its read
/// side open (which cannot be told from a client that exited), cancel what it left in flight:
/// the services see the cancellation and nothing more is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_close_or_another_goaway_cancels_the_calls_in_flight() {
    use tokio::io::AsyncWriteExt as _;
    let gw = TestGateway::start(config()).await;
    let mut leaving = gw.client().await;
    leaving.call(1, HANG, 0, b"").await;
    gw.observed.wait_for("a hanging handler", 1, |o| load(&o.hanging)).await;
    leaving
        .send(Frame::Goaway(gateway_protocol::Goaway::new(GoawayReason::SHUTTING_DOWN, "")))
        .await;
    gw.observed.wait_for("its cancellation", 1, |o| load(&o.cancelled)).await;
    assert!(leaving.try_recv().await.is_none(), "no answer after the client's GOAWAY");

    let mut half = gw.client().await;
    half.call(1, HANG, 0, b"").await;
    gw.observed.wait_for("another hanging handler", 2, |o| load(&o.hanging)).await;
    half.framed.get_mut().shutdown().await.unwrap();
    gw.observed.wait_for("its cancellation", 2, |o| load(&o.cancelled)).await;
    assert!(half.try_recv().await.is_none(), "no answer after the client's FIN");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_are_unimplemented_and_unserved_ones_unavailable() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.client().await;
    client.call(1, 0xdead_beef, 0, b"").await;
    let error = client.expect_error().await;
    assert_eq!((error.request_id, error.status.code()), (1, Code::Unimplemented));
    assert!(!error.status.retryable());
    client.call(2, ORPHAN, 0, b"").await;
    let error = client.expect_error().await;
    assert_eq!((error.request_id, error.status.code()), (2, Code::Unavailable));
    assert!(error.status.retryable());
    assert_eq!(gw.metric("gateway_unknown_method_total").await, 1.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_forget_gets_no_reply_not_even_an_error() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.client().await;
    let fire = |id, method_id| {
        Frame::Request(Request {
            request_id: id,
            method_id,
            timeout_ms: 0,
            fire_and_forget: true,
            payload: Bytes::from_static(b"x"),
        })
    };
    client.send(fire(1, ECHO)).await;
    client.send(fire(1, 0xdead_beef)).await; // unknown: dropped silently; the id may be reused
    client.send(Frame::Ping { data: 1 }).await;
    assert_eq!(client.recv().await, Frame::Pong { data: 1 });
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_client_calls_some_api_through_the_gateway() {
    let gw = TestGateway::start(config()).await;
    let client =
        gateway_client::Client::connect(gateway_client::ClientConfig::new([gw.addr.to_string()]))
            .await
            .unwrap();
    let api = some_api::SomeApiClient::new(client.clone());
    let reply = api.sum(some_api::RequestSumT { a: 40, b: 2 }).await.unwrap();
    assert_eq!(reply.get().sum(), 42);
    let overflow = api.sum(some_api::RequestSumT { a: i64::MAX, b: 1 }).await.unwrap_err();
    assert_eq!(overflow.code(), Code::OutOfRange);
    assert_ne!(overflow.error_id(), 0, "the application error id travels");
    client.close().await;
    gw.stop().await;
}

fn load(n: &std::sync::atomic::AtomicUsize) -> usize {
    n.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_larger_than_the_clients_limit_becomes_resource_exhausted() {
    let gw = TestGateway::start(config()).await;
    let mut client = RawClient::connect(gw.addr).await;
    client
        .send(Frame::Hello(gateway_protocol::Hello {
            capabilities: 0,
            version: 1,
            max_frame_size: gateway_protocol::MIN_MAX_FRAME_SIZE,
            client_name: String::new(),
            token: Bytes::new(),
        }))
        .await;
    assert!(matches!(client.recv().await, Frame::Welcome(_)));
    client.framed.codec_mut().set_peer_max_frame_size(gateway_protocol::DEFAULT_MAX_FRAME_SIZE);
    // The request fits the gateway's limit; its echo does not fit the client's.
    client.call(1, ECHO, 0, &vec![1; 70_000]).await;
    let error = client.expect_error().await;
    assert_eq!((error.request_id, error.status.code()), (1, Code::ResourceExhausted));
    assert!(!error.status.retryable());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_goaway_cancels_its_calls_in_the_service() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.client().await;
    client.call(1, HANG, 0, b"").await;
    gw.observed.wait_for("hanging handlers", 1, |o| load(&o.hanging)).await;
    let goaway =
        gateway_protocol::Goaway::new(gateway_protocol::GoawayReason::SHUTTING_DOWN, "bye");
    client.send(Frame::Goaway(goaway)).await;
    gw.observed.wait_for("cancelled handlers", 1, |o| load(&o.cancelled)).await;
    assert_eq!(client.try_recv().await, None, "no answer after the client's GOAWAY");
    gw.stop().await;
}

#[tokio::test]
async fn services_receive_the_contract_headers_including_a_trace_id() {
    let gateway = TestGateway::start(config()).await;
    let bus: Arc<dyn Bus> = Arc::new(gateway.bus.clone());
    let mut service = bus.subscribe("rpc.test.Orphan.*", Some("test.Orphan")).await.unwrap();
    let mut client = gateway.client().await;
    let mut trace_ids = Vec::new();
    for request_id in 1..=2 {
        client.call(request_id, ORPHAN, 2000, b"ping").await;
        let call = tokio::time::timeout(WAIT, service.next()).await.unwrap().unwrap();
        let headers = &call.headers;
        assert_eq!(headers.get(header::METHOD), Some(ORPHAN.to_string().as_str()));
        let timeout: u64 = headers.get(header::TIMEOUT_MS).unwrap().parse().unwrap();
        assert!(timeout > 1900 && timeout <= 2000, "{timeout}");
        assert!(headers.get(header::CALL_ID).is_some());
        let trace_id = headers.get(header::TRACE_ID).expect("a trace id").to_owned();
        assert!(trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()));
        trace_ids.push(trace_id);
        bus.publish(call.reply.as_deref().unwrap(), Headers::new(), Bytes::from_static(b"pong"))
            .await
            .unwrap();
        match client.recv().await {
            Frame::Response(r) => assert_eq!(&r.payload[..], b"pong"),
            other => panic!("expected the response, got {other:?}"),
        }
    }
    assert_ne!(trace_ids[0], trace_ids[1], "one trace id per call");
    gateway.stop().await;
}

/// A REQUEST for a `-> void` method without FIRE_AND_FORGET (docs/protocol.md, "Requests"): the
/// gateway answers an empty RESPONSE once the bus has the call; it says nothing of the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_method_asked_for_a_reply_gets_an_empty_response() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.client().await;
    let sub = some_api::DESCRIPTOR
        .methods
        .iter()
        .find(|m| m.name == "examples.some_api.SomeApi.sub")
        .expect("sub")
        .id;
    client.call(1, sub, 0, b"not even a RequestSub").await;
    assert_eq!(
        client.recv().await,
        Frame::Response(Response { request_id: 1, payload: Bytes::new() })
    );
    gw.stop().await;
}
