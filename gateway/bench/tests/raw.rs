//! The load generator's library entry point against an in-process raw echo on a free port.

use std::time::Duration;

use gateway_bench::{LoadConfig, Target, raw_echo, run};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_completes_requests_against_the_raw_echo_without_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(raw_echo::serve(listener, shutdown.clone()));

    let mut config = LoadConfig::new(addr, Target::Raw);
    config.connections = 2;
    config.depth = 8;
    config.payload = 1024;
    config.warmup = Duration::from_millis(100);
    config.duration = Duration::from_millis(500);
    let summary = tokio::time::timeout(Duration::from_secs(10), run(&config))
        .await
        .expect("the run ends by itself")
        .unwrap();

    assert!(summary.requests > 100, "{summary}");
    assert_eq!(summary.errors, 0, "{summary}");
    assert!(summary.errors_by_status.is_empty(), "{summary}");
    assert_eq!(summary.duration_s, 0.5);
    assert_eq!(summary.throughput_rps, summary.requests as f64 * 2.0);
    let l = &summary.latency_us;
    assert!(0.0 < l.p50 && l.p50 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max, "{l:?}");
    // A 1 KiB blob plus the FlatBuffer's and the frame's headers.
    assert!((1024 + 20..1024 + 80).contains(&summary.request_frame_bytes), "{summary}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn a_refused_connection_is_an_error_naming_the_address() {
    // Bind then drop, so that nothing listens on the port.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let config = LoadConfig::new(addr, Target::Raw);
    let err = run(&config).await.unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_before_connecting() {
    let mut config = LoadConfig::new("127.0.0.1:1".parse().unwrap(), Target::Raw);
    config.depth = 0;
    let err = run(&config).await.unwrap_err();
    assert!(err.to_string().contains("`depth`"), "{err}");
}
