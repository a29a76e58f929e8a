//! The load generator's fan-out mode against an in-process `raw-fanout` on a free port.

use std::net::SocketAddr;
use std::time::Duration;

use gateway_bench::fanout::{self, FanoutConfig, Pace};
use gateway_bench::{Target, raw_fanout};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Starts a raw fan-out server; cancelling the token stops it.
async fn raw_server() -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        raw_fanout::serve(listener, raw_fanout::DEFAULT_QUEUE_BYTES, stop).await.unwrap();
    });
    (addr, shutdown, server)
}

fn config(addr: SocketAddr, pace: Pace) -> FanoutConfig {
    let mut config = FanoutConfig::new(addr, Target::Raw);
    config.subscribers = 5;
    // Two reader tasks for five subscribers: groups of 3 and 2.
    config.reader_tasks = 2;
    config.pace = pace;
    config.warmup = Duration::from_millis(100);
    config.duration = Duration::from_millis(500);
    config.drain = Duration::from_secs(5);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_every_event_at_a_sustainable_rate() {
    let (addr, shutdown, server) = raw_server().await;
    let config = config(addr, Pace::Rate { events_per_s: 400.0 });
    let summary = tokio::time::timeout(Duration::from_secs(20), fanout::run(&config))
        .await
        .expect("the run ends by itself")
        .unwrap();

    // 400/s for 0.5 s, give or take the events at the period's edges.
    assert!((190..=210).contains(&summary.published), "{summary}");
    assert_eq!(summary.expected, summary.published * 5, "{summary}");
    assert_eq!(summary.deliveries, summary.expected, "{summary}");
    assert_eq!((summary.missed, summary.gaps, summary.out_of_order), (0, 0, 0), "{summary}");
    assert_eq!((summary.unfinished, summary.tail), (0, 0), "{summary}");
    assert_eq!(summary.deliveries_per_s, summary.deliveries as f64 * 2.0);
    let l = &summary.latency_us;
    assert!(0.0 < l.p50 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
    // 64-byte payload, subscription id 1, empty key: 4 + 2 + 4 + 2 + 64.
    assert_eq!(summary.event_frame_bytes, 76);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishing_reaches_every_subscriber_and_reports_every_drop() {
    let (addr, shutdown, _server) = raw_server().await;
    let config = config(addr, Pace::Max { window: 8 });
    let summary = tokio::time::timeout(Duration::from_secs(20), fanout::run(&config))
        .await
        .expect("the run ends by itself")
        .unwrap();

    assert!(summary.published > 100, "{summary}");
    assert_eq!(summary.pace, "max");
    // Whatever the server dropped (nothing, unless this machine is very slow), it said so.
    assert_eq!(summary.gaps, summary.missed, "{summary}");
    assert_eq!(summary.unfinished, 0, "{summary}");
    if summary.missed == 0 {
        assert_eq!(summary.deliveries, summary.expected, "{summary}");
    }
    shutdown.cancel();
}

#[test]
fn the_topic_is_the_echo_services_broadcast() {
    assert_eq!(
        fanout::topic_id(fanout::TOPIC_NAME).unwrap(),
        echo::examples::echo::echo::topic::BROADCAST
    );
}

#[tokio::test]
async fn an_event_too_small_for_its_stamp_is_refused_before_connecting() {
    let mut config = FanoutConfig::new("127.0.0.1:1".parse().unwrap(), Target::Raw);
    config.payload = 15;
    let err = fanout::run(&config).await.unwrap_err();
    assert!(err.to_string().contains("`payload` must be at least 16"), "{err}");
}

#[tokio::test]
async fn the_nats_target_is_refused_for_fan_out() {
    let config = FanoutConfig::new("127.0.0.1:1".parse().unwrap(), Target::Nats);
    let err = fanout::run(&config).await.unwrap_err();
    assert!(err.to_string().contains("`target` `nats` is for RPC runs only"), "{err}");
}
