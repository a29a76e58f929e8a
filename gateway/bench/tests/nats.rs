//! The load generator's NATS target against a real nats-server (`gateway-testkit`): the echo
//! service on a `NatsBus`, a plain NATS responder that checks the contract's headers and spoils
//! some answers (a byte changed, an error status, a running notice), and nobody serving at all.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use echo::{EchoServer, Echoer};
use futures::StreamExt as _;
use gateway_bench::{LoadConfig, Summary, Target, run};
use gateway_bus::contract::{self, header};
use gateway_bus::{NatsBus, NatsOptions, ServiceRuntime};
use gateway_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

/// The scripted responder spoils one in this many answers in each of its ways.
const SPOIL_EVERY: u64 = 10;

fn config(nats: &NatsServer) -> LoadConfig {
    let addr = SocketAddr::from(([127, 0, 0, 1], nats.port()));
    let mut config = LoadConfig::new(addr, Target::Nats);
    config.connections = 2;
    config.depth = 8;
    config.payload = 1024;
    config.warmup = Duration::from_millis(100);
    config.duration = Duration::from_millis(500);
    config
}

async fn load(config: &LoadConfig) -> Summary {
    tokio::time::timeout(Duration::from_secs(20), run(config))
        .await
        .expect("the run ends by itself")
        .expect("the run succeeds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_the_echo_service_over_nats_complete_without_errors() {
    let nats = NatsServer::start();
    let options = NatsOptions { name: "echo-service".into(), ..NatsOptions::default() };
    let bus = Arc::new(NatsBus::connect(&nats.url(), options).await.unwrap());
    let shutdown = CancellationToken::new();
    let service = ServiceRuntime::new(bus.clone(), Arc::new(EchoServer::new(Echoer)))
        .start(shutdown.clone())
        .await
        .unwrap();
    // The service's subscriptions are at the server once a round trip after them completed.
    bus.client().flush().await.unwrap();

    let config = config(&nats);
    let summary = load(&config).await;

    assert_eq!(summary.target, "nats");
    assert!(summary.requests > 100, "{summary}");
    assert_eq!(summary.errors, 0, "{summary}");
    assert!(summary.errors_by_status.is_empty(), "{summary}");
    assert_eq!(summary.throughput_rps, summary.requests as f64 * 2.0);
    let l = &summary.latency_us;
    assert!(0.0 < l.p50 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
    // The HPUB message: a 1 KiB blob, its FlatBuffer header, the subject, the reply inbox and
    // the three contract headers.
    assert!((1024 + 150..1024 + 350).contains(&summary.request_frame_bytes), "{summary}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), service.stopped()).await.unwrap();
}

/// What the scripted responder makes of a call's headers: `None` when they are those a gateway
/// on NATS sends (the echo method's id, the run's timeout, a call id not seen before, a trace
/// id of 32 hex digits, the NATS bus's notice request).
fn contract_violation(headers: Option<&HeaderMap>, seen: &mut HashSet<String>) -> Option<String> {
    let Some(headers) = headers else { return Some("no headers".into()) };
    let get = |name| headers.get(name).map(|v| v.as_str().to_owned());
    let method = echo::examples::echo::echo::method::ECHO.to_string();
    if get(header::METHOD) != Some(method) {
        return Some(format!("{}: {:?}", header::METHOD, get(header::METHOD)));
    }
    if get(header::TIMEOUT_MS).as_deref() != Some("5000") {
        return Some(format!("{}: {:?}", header::TIMEOUT_MS, get(header::TIMEOUT_MS)));
    }
    let trace = get(header::TRACE_ID).unwrap_or_default();
    if trace.len() != 32 || !trace.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(format!("{}: {trace:?}", header::TRACE_ID));
    }
    let notify = NatsOptions::default().notify_after.map(|d| d.as_millis().to_string());
    if get(header::NOTIFY_MS) != notify {
        return Some(format!("{}: {:?}", header::NOTIFY_MS, get(header::NOTIFY_MS)));
    }
    match get(header::CALL_ID) {
        Some(id) if !id.contains(' ') && seen.insert(id.clone()) => None,
        id => Some(format!("{}: {id:?} missing, reused or with a space", header::CALL_ID)),
    }
}

/// The scripted responder's answer to call number `n`: an `invalid_argument` status when the
/// headers are not a gateway's; otherwise the payload with one byte changed, a
/// `resource_exhausted` status, or a running notice, one in ten calls each; the payload back
/// for the rest.
fn answer(n: u64, call: async_nats::Message, seen: &mut HashSet<String>) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    if let Some(violation) = contract_violation(call.headers.as_ref(), seen) {
        headers.insert(header::STATUS, "3"); // invalid_argument
        headers.insert(header::MESSAGE, violation);
        return (headers, Bytes::new());
    }
    match n % SPOIL_EVERY {
        0 => {
            // Same length, one byte off: only a byte-for-byte check notices.
            let mut spoiled = call.payload.to_vec();
            *spoiled.last_mut().unwrap() ^= 0xff;
            return (headers, Bytes::from(spoiled));
        }
        3 => {
            // A running notice, which a plain request takes for the answer.
            headers.insert(header::RUNNING, "instance.examples.echo.Echo.test");
        }
        5 => headers.insert(header::STATUS, "8"), // resource_exhausted
        _ => {
            headers.insert(header::STATUS, "0"); // success, said explicitly
            return (headers, call.payload);
        }
    }
    (headers, Bytes::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_checked_byte_for_byte_and_statuses_are_counted_by_name() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let method = echo::DESCRIPTOR.methods.iter().find(|m| m.name.ends_with(".echo")).unwrap();
    let mut calls = client
        .queue_subscribe(contract::service_pattern(&echo::DESCRIPTOR), echo::DESCRIPTOR.name.into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let responder = client.clone();
    let subject = contract::method_subject(method);
    tokio::spawn(async move {
        let (mut n, mut seen) = (0u64, HashSet::new());
        while let Some(call) = calls.next().await {
            n += 1;
            assert_eq!(call.subject.as_str(), subject);
            let reply = call.reply.clone().expect("a request has a reply subject");
            let (headers, payload) = answer(n, call, &mut seen);
            if responder.publish_with_headers(reply, headers, payload).await.is_err() {
                return;
            }
        }
    });

    let summary = load(&config(&nats)).await;

    assert!(summary.requests > 50, "{summary}");
    let kinds: Vec<_> = summary.errors_by_status.keys().map(String::as_str).collect();
    assert_eq!(kinds, ["bad_payload", "resource_exhausted", "running_notice"], "{summary}");
    let calls = (summary.requests + summary.errors) as f64;
    for kind in kinds {
        // One in ten each, counted over the window only.
        let share = summary.errors_by_status[kind] as f64 / calls;
        assert!((0.08..0.12).contains(&share), "{kind}: {share}: {summary}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_nobody_serves_count_as_unavailable() {
    let nats = NatsServer::start();
    let mut config = config(&nats);
    config.connections = 1;
    config.depth = 2;
    let summary = load(&config).await;

    assert_eq!(summary.requests, 0, "{summary}");
    assert!(summary.errors > 10, "{summary}");
    assert_eq!(summary.errors_by_status.get("unavailable"), Some(&summary.errors), "{summary}");
}

#[tokio::test]
async fn a_nats_server_that_is_not_there_is_an_error_naming_its_address() {
    // Bind then drop, so that nothing listens on the port.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = LoadConfig::new(addr, Target::Nats);
    let err = tokio::time::timeout(Duration::from_secs(20), run(&config))
        .await
        .expect("a refused connection fails promptly")
        .unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}
