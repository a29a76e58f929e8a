//! Discovery with the NATS Services API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`, see
//! `docs/bus.md`): the generated `SomeApi` served by `ServiceRuntime`s on a `LocalBus`, its answers
//! read with async-nats's own Services API types, and their fields compared with what async-nats's
//! own service implementation answers on a real nats-server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::service::{Info, PingResponse, ServiceExt as _, Stats};
use bytes::Bytes;
use futures::StreamExt as _;
use gateway_bus::contract::{self, header};
use gateway_bus::runtime::discovery::service_name;
use gateway_bus::{Bus, BusError, Headers, LocalBus, ServeOptions, ServiceRuntime, Serving};
use gateway_core::{Code, Message, Status};
use gateway_testkit::NatsServer;
use serde_json::Value;
use some_api::examples::some_api::some_api::{error, method};
use some_api::{Calculator, DESCRIPTOR, RequestSubT, RequestSumT, SomeApiServer};
use tokio_util::sync::CancellationToken;

/// Every wait in these tests is bounded by this.
const PATIENCE: Duration = Duration::from_secs(10);

const NAME: &str = "examples_some_api_SomeApi";

/// A `SomeApi` runtime with `options` on `bus`.
async fn serve(bus: &LocalBus, options: ServeOptions) -> (Serving, CancellationToken) {
    let shutdown = CancellationToken::new();
    let service = Arc::new(SomeApiServer::new(Calculator::default()));
    let runtime = ServiceRuntime::new(Arc::new(bus.clone()), service).with_options(options);
    (runtime.start(shutdown.clone()).await.expect("subscribed"), shutdown)
}

fn versioned(version: &str) -> ServeOptions {
    ServeOptions { version: version.to_owned(), ..ServeOptions::default() }
}

/// Sends a discovery request to `subject` and returns the JSON answer.
async fn ask(bus: &LocalBus, subject: &str) -> Result<Bytes, BusError> {
    Ok(bus.request(subject, Headers::new(), Bytes::new(), PATIENCE).await?.payload)
}

async fn ask_as<T: serde::de::DeserializeOwned>(bus: &LocalBus, subject: &str) -> T {
    let answer = ask(bus, subject).await.unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&answer).unwrap_or_else(|e| {
        panic!("{subject}: {e} in {}", String::from_utf8_lossy(&answer));
    })
}

/// Calls `sum` (with a reply) or `sub` (fire-and-forget) as a gateway would.
async fn sum(bus: &LocalBus, a: i64, b: i64) -> Result<(), Status> {
    let mut headers = Headers::new();
    headers.insert(header::METHOD, method::SUM.to_string());
    let subject = contract::method_subject(DESCRIPTOR.method(method::SUM).unwrap());
    let payload = Message::pack(&RequestSumT { a, b }).into_bytes();
    let answer = bus.request(&subject, headers, payload, PATIENCE).await.unwrap();
    contract::status_from_headers(&answer.headers).map_or(Ok(()), Err)
}

async fn sub(bus: &LocalBus, amount: i64) {
    let subject = contract::method_subject(DESCRIPTOR.method(method::SUB).unwrap());
    let payload = Message::pack(&RequestSubT { amount }).into_bytes();
    bus.publish(&subject, Headers::new(), payload).await.unwrap();
}

#[tokio::test]
async fn ping_is_answered_on_all_three_subjects() {
    let bus = LocalBus::new();
    let (_serving, _shutdown) = serve(&bus, versioned("1.4.0-rc.1")).await;
    assert_eq!(service_name(&DESCRIPTOR), NAME);
    let pong: PingResponse = ask_as(&bus, "$SRV.PING").await;
    assert_eq!(pong.kind, "io.nats.micro.v1.ping_response");
    assert_eq!((pong.name.as_str(), pong.version.as_str()), (NAME, "1.4.0-rc.1"));
    assert_eq!(pong.metadata, [("service".into(), DESCRIPTOR.name.into())].into());
    assert_eq!(pong.id.len(), 22, "{}", pong.id);
    for subject in [format!("$SRV.PING.{NAME}"), format!("$SRV.PING.{NAME}.{}", pong.id)] {
        let again: PingResponse = ask_as(&bus, &subject).await;
        assert_eq!((again.name, &again.id), (pong.name.clone(), &pong.id), "{subject}");
    }
    // Another service's name, or another instance's id, is not ours to answer.
    for subject in [format!("$SRV.PING.{NAME}x"), format!("$SRV.PING.{NAME}.{}x", pong.id)] {
        assert!(
            matches!(ask(&bus, &subject).await, Err(BusError::NoResponders { .. })),
            "{subject}"
        );
    }
}

#[tokio::test]
async fn info_lists_every_method_with_its_subject_and_queue_group() {
    let bus = LocalBus::new();
    let (_serving, _shutdown) = serve(&bus, ServeOptions::default()).await;
    for subject in ["$SRV.INFO".to_owned(), format!("$SRV.INFO.{NAME}")] {
        let info: Info = ask_as(&bus, &subject).await;
        assert_eq!(info.kind, "io.nats.micro.v1.info_response");
        assert_eq!((info.name.as_str(), info.version.as_str()), (NAME, "0.0.0"));
        assert_eq!(info.description, DESCRIPTOR.name);
        assert_eq!(info.metadata["service"], DESCRIPTOR.name);
        let endpoints: BTreeMap<_, _> =
            info.endpoints.iter().map(|e| (e.name.as_str(), e)).collect();
        assert_eq!(endpoints.len(), DESCRIPTOR.methods.len());
        assert_eq!(endpoints.keys().copied().collect::<Vec<_>>(), ["sub", "sum"]);
        for method in DESCRIPTOR.methods {
            let endpoint = endpoints[method.name.rsplit('.').next().unwrap()];
            assert_eq!(endpoint.subject, format!("rpc.{}", method.name));
            assert_eq!(endpoint.queue_group, contract::queue_group(&DESCRIPTOR));
            assert_eq!(endpoint.metadata["method_id"], method.id.to_string());
            assert_eq!(endpoint.metadata["request"], method.request);
            assert_eq!(endpoint.metadata.get("response").map(String::as_str), method.response);
        }
    }
}

#[tokio::test]
async fn stats_count_calls_errors_and_processing_time_per_method() {
    let bus = LocalBus::new();
    let (_serving, _shutdown) = serve(&bus, ServeOptions::default()).await;
    let stats: Stats = ask_as(&bus, "$SRV.STATS").await;
    assert_eq!(stats.kind, "io.nats.micro.v1.stats_response");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((stats.started.unix_timestamp() - now).abs() < 60, "started {}", stats.started);
    assert!(stats.endpoints.iter().all(|e| e.requests == 0 && e.last_error.is_none()));

    sum(&bus, 40, 2).await.unwrap();
    let status = sum(&bus, i64::MAX, 1).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    sub(&bus, 5).await;
    // `sub` is never answered: wait until the runtime has counted it.
    let stats = tokio::time::timeout(PATIENCE, async {
        loop {
            let stats: Stats = ask_as(&bus, &format!("$SRV.STATS.{NAME}")).await;
            if stats.endpoints.iter().any(|e| e.name == "sub" && e.requests == 1) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("sub was never counted");
    let endpoint = |name| stats.endpoints.iter().find(|e| e.name == name).unwrap();
    let sum_stats = endpoint("sum");
    assert_eq!((sum_stats.requests, sum_stats.errors), (2, 1));
    assert_eq!(sum_stats.subject, "rpc.examples.some_api.SomeApi.sum");
    assert_eq!(sum_stats.queue_group, "examples.some_api.SomeApi");
    let last_error = sum_stats.last_error.as_ref().expect("the overflow is the last error");
    assert_eq!(last_error.code, Code::OutOfRange as usize);
    assert_eq!(
        last_error.status,
        format!("out_of_range: {} + 1 overflows (error {:#010x})", i64::MAX, error::OVERFLOW)
    );
    assert!(sum_stats.processing_time > Duration::ZERO);
    assert_eq!(sum_stats.average_processing_time, sum_stats.processing_time / 2);
    let sub_stats = endpoint("sub");
    assert_eq!((sub_stats.requests, sub_stats.errors), (1, 0));
    assert!(sub_stats.last_error.is_none());
}

#[tokio::test]
async fn every_instance_answers_and_each_can_be_addressed_by_its_id() {
    let bus = LocalBus::new();
    let (_a, _shutdown_a) = serve(&bus, ServeOptions::default()).await;
    let (_b, _shutdown_b) = serve(&bus, ServeOptions::default()).await;
    // A request takes the first answer; on the in-process bus a later answer to a request's
    // `_INBOX.<n>` is routed like any message, so this subscription catches the second one.
    let mut late = bus.subscribe("_INBOX.>", None).await.unwrap();
    let first: PingResponse = ask_as(&bus, "$SRV.PING").await;
    let second = tokio::time::timeout(PATIENCE, late.next()).await.expect("a second answer");
    let second: PingResponse = serde_json::from_slice(&second.unwrap().payload).unwrap();
    assert_eq!((first.name.as_str(), second.name.as_str()), (NAME, NAME));
    assert_ne!(first.id, second.id, "each instance has an id of its own");
    for id in [&first.id, &second.id] {
        let pong: PingResponse = ask_as(&bus, &format!("$SRV.PING.{NAME}.{id}")).await;
        assert_eq!(&pong.id, id);
    }
}

#[tokio::test]
async fn discovery_stops_with_the_runtime_and_can_be_turned_off() {
    let bus = LocalBus::new();
    let off = ServeOptions { discovery: false, ..ServeOptions::default() };
    let (quiet, shutdown) = serve(&bus, off).await;
    sum(&bus, 1, 2).await.expect("calls are served without discovery");
    assert!(matches!(ask(&bus, "$SRV.PING").await, Err(BusError::NoResponders { .. })));
    shutdown.cancel();
    quiet.stopped().await;

    let (serving, shutdown) = serve(&bus, ServeOptions::default()).await;
    let _: PingResponse = ask_as(&bus, "$SRV.PING").await;
    shutdown.cancel();
    serving.stopped().await;
    for verb in ["PING", "INFO", "STATS"] {
        let subject = format!("$SRV.{verb}");
        assert!(matches!(ask(&bus, &subject).await, Err(BusError::NoResponders { .. })), "{verb}");
        assert_eq!(bus.subscriptions(&format!("$SRV.{verb}.{NAME}")), 0, "{verb}");
    }
}

#[tokio::test]
#[should_panic(expected = "ServeOptions::version `1.4` is not a semantic version")]
async fn a_version_that_is_not_semantic_is_refused() {
    let service = Arc::new(SomeApiServer::new(Calculator::default()));
    let _ = ServiceRuntime::new(Arc::new(LocalBus::new()), service).with_options(versioned("1.4"));
}

/// The shape of a JSON document: every object's keys with the shapes of their values, the shape
/// of an array's first element, the type of anything else. Metadata is free-form: its shape is
/// "string map" whatever its keys, if every value is a string.
fn shape(value: &Value) -> Value {
    let shape_of = |key: &str, value: &Value| match value {
        Value::Object(map) if key == "metadata" && map.values().all(Value::is_string) => {
            "string map".into()
        }
        _ => shape(value),
    };
    match value {
        Value::Object(fields) => fields.iter().map(|(k, v)| (k.clone(), shape_of(k, v))).collect(),
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => "null".into(),
    }
}

/// Field names are where a hand-written implementation goes wrong, and async-nats's types accept
/// unknown fields and default some missing ones: so each answer is compared, field by field and
/// type by type, with the answer of async-nats's own service on a real nats-server.
#[tokio::test]
async fn answers_have_the_fields_and_types_async_nats_answers_with() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connected to nats-server");
    let reference = client
        .service_builder()
        .description("the reference")
        .metadata([("service".to_owned(), "reference".to_owned())].into())
        .start("reference", "1.0.0")
        .await
        .expect("async-nats's service started");
    let mut endpoint = reference
        .endpoint_builder()
        .name("sum")
        .metadata([("method_id".to_owned(), "1".to_owned())].into())
        .add("rpc.reference.sum")
        .await
        .unwrap();
    // One failed request, so its stats carry a last error as ours do.
    let requester = client.clone();
    let failed =
        tokio::spawn(async move { requester.request("rpc.reference.sum", "".into()).await });
    let request = tokio::time::timeout(PATIENCE, endpoint.next()).await.unwrap().unwrap();
    let failure = async_nats::service::error::Error { status: "overflow".into(), code: 11 };
    request.respond(Err(failure)).await.unwrap();
    failed.await.unwrap().unwrap();

    let bus = LocalBus::new();
    let (_serving, _shutdown) = serve(&bus, ServeOptions::default()).await;
    sum(&bus, i64::MAX, 1).await.unwrap_err();
    for verb in ["PING", "INFO", "STATS"] {
        let subject = format!("$SRV.{verb}.reference");
        let theirs = tokio::time::timeout(PATIENCE, client.request(subject, "".into()))
            .await
            .unwrap_or_else(|_| panic!("no {verb} answer from async-nats"))
            .unwrap();
        let theirs: Value = serde_json::from_slice(&theirs.payload).unwrap();
        let ours: Value =
            serde_json::from_slice(&ask(&bus, &format!("$SRV.{verb}")).await.unwrap()).unwrap();
        let mut ours = shape(&ours);
        if verb == "STATS" {
            // ADR-32 and the Go implementation put the service's metadata in every answer;
            // async-nats leaves it out of STATS. Ours has it.
            let metadata = ours.as_object_mut().unwrap().remove("metadata");
            assert_eq!(metadata, Some("string map".into()));
        }
        assert_eq!(ours, shape(&theirs), "{verb}: ours, then async-nats's ({theirs})");
    }
}

/// `Bus::gather` collects every instance's answer to `$SRV.PING` within its window, on the
/// in-process bus and over nats-server alike (the operator's console lists instances so).
#[tokio::test]
async fn gather_collects_every_instance_s_ping() {
    let local = LocalBus::new();
    let (first, stop_first) = serve(&local, versioned("1.0.0")).await;
    let (second, stop_second) = serve(&local, versioned("1.0.1")).await;
    let subject = format!("$SRV.PING.{NAME}");
    let answers = local.gather(&subject, Bytes::new(), Duration::from_millis(200)).await.unwrap();
    let mut versions: Vec<String> = answers
        .iter()
        .map(|a| serde_json::from_slice::<PingResponse>(&a.payload).unwrap().version)
        .collect();
    versions.sort();
    assert_eq!(versions, ["1.0.0", "1.0.1"]);
    let none = local.gather("$SRV.PING.nobody", Bytes::new(), Duration::from_millis(50)).await;
    assert!(none.unwrap().is_empty());
    stop_first.cancel();
    stop_second.cancel();
    first.stopped().await;
    second.stopped().await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn gather_collects_every_instance_s_ping_over_nats() {
    let subject = format!("$SRV.PING.{NAME}");
    let nats = NatsServer::start();
    let options = gateway_bus::NatsOptions::default();
    let bus = Arc::new(gateway_bus::NatsBus::connect(&nats.url(), options).await.unwrap());
    let mut serving = Vec::new();
    let stop = CancellationToken::new();
    for _ in 0..3 {
        let service = Arc::new(SomeApiServer::new(Calculator::default()));
        let runtime = ServiceRuntime::new(bus.clone(), service);
        serving.push(runtime.start(stop.clone()).await.unwrap());
    }
    // Until every instance's subscriptions are in, fewer answer.
    let started = std::time::Instant::now();
    loop {
        let answers = bus.gather(&subject, Bytes::new(), Duration::from_millis(200)).await.unwrap();
        let ids: std::collections::BTreeSet<String> = answers
            .iter()
            .map(|a| serde_json::from_slice::<PingResponse>(&a.payload).unwrap().id)
            .collect();
        if ids.len() == 3 {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "{} of 3 instances answered", ids.len());
    }
    stop.cancel();
    for s in serving {
        s.stopped().await;
    }
}
