//! Graceful shutdown, and the admin endpoints that report it.

mod support;

use std::time::Duration;

use gateway_core::Code;
use gateway_protocol::{Frame, GoawayReason};
use support::*;

/// Polls `/readyz` until it answers `status` (bounded).
async fn wait_ready(gw: &TestGateway, status: u16) {
    tokio::time::timeout(WAIT, async {
        while gw.admin_get("/readyz").await.0 != status {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("/readyz never answered {status}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_sends_goaway_finishes_calls_in_flight_and_refuses_new_connections() {
    let gw =
        TestGateway::start(gateway::Config { drain_timeout: Duration::from_secs(10), ..config() })
            .await;
    assert_eq!(gw.admin_get("/readyz").await.0, 200);
    let mut client = gw.client().await;
    client.call(1, SLOW, 0, &millis(1_500)).await;
    client.call(2, ECHO, 0, b"done").await;
    assert!(matches!(client.recv().await, Frame::Response(r) if r.request_id == 2));

    gw.shutdown.cancel();
    let Frame::Goaway(goaway) = client.recv().await else { panic!("expected GOAWAY") };
    assert_eq!(goaway.reason, GoawayReason::SHUTTING_DOWN);
    assert!(goaway.reconnect);
    assert_eq!(goaway.last_request_id, 2, "the last request received, which it answers");
    // A request sent after the GOAWAY is not started (nor answered).
    client.call(3, ECHO, 0, b"too late").await;

    wait_ready(&gw, 503).await;
    assert_eq!(gw.admin_get("/healthz").await.0, 200, "alive while draining");
    let refused = tokio::net::TcpStream::connect(gw.addr).await;
    assert!(refused.is_err(), "new connections are refused while draining");

    assert!(
        matches!(client.recv().await, Frame::Response(r) if r.request_id == 1),
        "in-flight call finished"
    );
    assert_eq!(client.try_recv().await, None, "then the connection closes");
    gw.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_still_running_at_the_drain_bound_are_answered_unavailable_and_cancelled() {
    let gw = TestGateway::start(gateway::Config {
        drain_timeout: Duration::from_millis(200),
        ..config()
    })
    .await;
    let mut client = gw.client().await;
    client.call(1, HANG, 0, b"").await;
    gw.observed
        .wait_for("hanging handlers", 1, |o| o.hanging.load(std::sync::atomic::Ordering::SeqCst))
        .await;
    gw.shutdown.cancel();
    let Frame::Goaway(goaway) = client.recv().await else { panic!("expected GOAWAY") };
    assert_eq!(goaway.last_request_id, 1);
    let error = client.expect_error().await;
    assert_eq!((error.request_id, error.status.code()), (1, Code::Unavailable));
    assert!(!error.status.retryable(), "it may have run");
    assert_eq!(client.try_recv().await, None);
    gw.observed
        .wait_for("cancelled handlers", 1, |o| {
            o.cancelled.load(std::sync::atomic::Ordering::SeqCst)
        })
        .await;
    gw.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_answer_and_metrics_count_calls() {
    let gw = TestGateway::start(config()).await;
    assert_eq!(gw.admin_get("/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(gw.admin_get("/readyz").await.0, 200);
    assert_eq!(gw.admin_get("/nope").await.0, 404);

    let mut client = gw.client().await;
    client.call(1, ECHO, 0, b"a").await;
    client.call(2, SLOW, 50, &millis(5_000)).await;
    for _ in 0..2 {
        client.recv().await;
    }
    let (status, body) = gw.admin_get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "gateway_connections 1",
        "gateway_connections_total 1",
        "gateway_requests_in_flight 0",
        "gateway_send_queue_bytes 0",
        "gateway_requests_total{method=\"test.Timing.echo\",code=\"ok\"} 1",
        "gateway_requests_total{method=\"test.Timing.slow\",code=\"deadline_exceeded\"} 1",
        "gateway_request_duration_seconds_count{method=\"test.Timing.echo\"} 1",
        "gateway_request_duration_seconds_bucket{method=\"test.Timing.slow\",le=\"0.025\"} 0",
        "gateway_request_duration_seconds_bucket{method=\"test.Timing.slow\",le=\"+Inf\"} 1",
        "gateway_requests_total{method=\"examples.some_api.SomeApi.sum\",code=\"ok\"} 0",
        "# TYPE gateway_request_duration_seconds histogram",
    ] {
        assert!(body.lines().any(|l| l == line), "missing `{line}` in\n{body}");
    }
    gw.stop().await;
}
