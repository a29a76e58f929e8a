//! `NatsBus` against a real nats-server (started on a free loopback port by `gateway-testkit`):
//! the `Bus` semantics `docs/bus.md` specifies, the contract seen by a plain NATS client on the
//! other side, and connection loss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use gateway_bus::contract::{self, header};
use gateway_bus::{Bus, BusError, Headers, NatsBus, NatsOptions, ServiceRuntime, Subscription};
use gateway_core::Message;
use gateway_testkit::NatsServer;
use some_api::{Calculator, DESCRIPTOR, ReplySumT, RequestSumT, SomeApiServer};
use tokio_util::sync::CancellationToken;

/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

async fn connect(nats: &NatsServer) -> Arc<NatsBus> {
    let options = NatsOptions { name: "bus-test".into(), ..NatsOptions::default() };
    Arc::new(NatsBus::connect(&nats.url(), options).await.expect("connect to the test server"))
}

async fn next(sub: &mut Subscription) -> gateway_bus::BusMessage {
    tokio::time::timeout(WAIT, sub.next()).await.expect("a message in time").expect("open")
}

/// Returns once the server has processed everything `client` sent before (subscriptions
/// included): it handles one connection's commands in order, so a message the connection
/// publishes to itself comes back only after them. (`flush` only empties the client's buffer.)
async fn settle_client(client: &async_nats::Client) {
    let subject = client.new_inbox();
    let mut echo = client.subscribe(subject.clone()).await.expect("subscribe");
    client.publish(subject, Bytes::new()).await.expect("publish");
    tokio::time::timeout(WAIT, echo.next()).await.expect("the round trip").expect("open");
}

async fn settle(bus: &NatsBus) {
    settle_client(bus.client()).await;
}

fn sum_request(a: i64, b: i64) -> (String, Headers, Bytes) {
    let sum = DESCRIPTOR.methods.iter().find(|m| m.name.ends_with(".sum")).unwrap();
    let mut headers = Headers::new();
    headers.insert(header::METHOD, sum.id.to_string());
    headers.insert(header::TIMEOUT_MS, "5000");
    let payload = Message::pack(&RequestSumT { a, b }).into_bytes();
    (contract::method_subject(sum), headers, payload)
}

fn sum_of(answer: gateway_bus::BusMessage) -> i64 {
    assert_eq!(contract::status_from_headers(&answer.headers), None, "{:?}", answer.headers);
    Message::<ReplySumT>::from_bytes(answer.payload).unwrap().get().sum()
}

#[tokio::test]
async fn subjects_wildcards_headers_and_payloads_cross_the_server_intact() {
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    let mut exact = bus.subscribe("topic.a.b", None).await.unwrap();
    let mut one = bus.subscribe("topic.a.*", None).await.unwrap();
    let mut tail = bus.subscribe("topic.>", None).await.unwrap();
    settle(&bus).await;

    let mut headers = Headers::new();
    headers.insert("rpc-identity", "device-7");
    headers.insert("x-empty", "");
    bus.publish("topic.a.b", headers, Bytes::from_static(b"\x00\x01payload")).await.unwrap();
    bus.publish("topic.a.b.c", Headers::new(), Bytes::from_static(b"deep")).await.unwrap();

    let got = next(&mut exact).await;
    assert_eq!(got.subject, "topic.a.b");
    assert_eq!(got.payload, Bytes::from_static(b"\x00\x01payload"));
    assert_eq!(got.headers.get("rpc-identity"), Some("device-7"));
    assert_eq!(got.headers.get("x-empty"), Some(""));
    assert_eq!(got.reply, None);
    assert_eq!(next(&mut one).await.subject, "topic.a.b");
    assert_eq!(next(&mut tail).await.subject, "topic.a.b");
    assert_eq!(next(&mut tail).await.payload, Bytes::from_static(b"deep"));
    // `topic.a.*` does not match four tokens, `topic.a.b` neither: nothing more arrives.
    settle(&bus).await;
    assert!(tokio::time::timeout(Duration::from_millis(100), one.next()).await.is_err());
    assert!(tokio::time::timeout(Duration::from_millis(100), exact.next()).await.is_err());
}

#[tokio::test]
async fn a_comma_separated_list_of_servers_connects_to_one_that_answers() {
    let nats = NatsServer::start();
    let dead = gateway_testkit::free_addr();
    let urls = format!("nats://{dead}, {}", nats.url());
    let options = NatsOptions { name: "list".into(), ..NatsOptions::default() };
    let bus = NatsBus::connect(&urls, options).await.expect("connects through the list");
    let mut sub = bus.subscribe("topic.list", None).await.unwrap();
    settle(&bus).await;
    bus.publish("topic.list", Headers::new(), Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(next(&mut sub).await.payload, Bytes::from_static(b"x"));
}

#[tokio::test]
async fn a_queue_group_shares_messages_and_order_holds_per_publisher() {
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    let mut first = bus.subscribe("work.*", Some("workers")).await.unwrap();
    let mut second = bus.subscribe("work.*", Some("workers")).await.unwrap();
    let mut watcher = bus.subscribe("work.*", None).await.unwrap();
    settle(&bus).await;
    for i in 0..200u32 {
        bus.publish("work.x", Headers::new(), Bytes::from(i.to_be_bytes().to_vec())).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..200 {
        let m = next(&mut watcher).await;
        seen.push(u32::from_be_bytes(m.payload[..].try_into().unwrap()));
    }
    assert_eq!(seen, (0..200).collect::<Vec<_>>(), "a plain subscriber sees all, in order");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    while a.len() + b.len() < 200 {
        tokio::select! {
            m = first.next() => a.push(u32::from_be_bytes(m.unwrap().payload[..].try_into().unwrap())),
            m = second.next() => b.push(u32::from_be_bytes(m.unwrap().payload[..].try_into().unwrap())),
            () = tokio::time::sleep(WAIT) => panic!("the group got {} of 200", a.len() + b.len()),
        }
    }
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both members get a share: {} and {}",
        a.len(),
        b.len()
    );
    assert!(a.is_sorted() && b.is_sorted(), "each member sees its share in order");
    let mut all: Vec<u32> = a.into_iter().chain(b).collect();
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<_>>(), "each message went to exactly one member");
}

#[tokio::test]
async fn the_service_runtime_serves_calls_over_nats() {
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    let stop = CancellationToken::new();
    let service = Arc::new(SomeApiServer::new(Calculator::default()));
    let serving = ServiceRuntime::new(bus.clone(), service).start(stop.clone()).await.unwrap();
    settle(&bus).await;

    let (subject, headers, payload) = sum_request(40, 2);
    let answer = bus.request(&subject, headers, payload, WAIT).await.unwrap();
    assert_eq!(sum_of(answer), 42);

    // An application error comes back as a status in headers, as docs/bus.md specifies.
    let (subject, headers, payload) = sum_request(i64::MAX, 1);
    let answer = bus.request(&subject, headers, payload, WAIT).await.unwrap();
    let status = contract::status_from_headers(&answer.headers).expect("a failure");
    assert_eq!(status.code(), gateway_core::Code::OutOfRange);
    assert_eq!(answer.headers.get(header::ERROR_ID), Some("1417537231"));

    // Many calls at once over the one shared inbox.
    let calls = (0..500i64).map(|i| {
        let bus = bus.clone();
        async move {
            let (subject, headers, payload) = sum_request(i, i);
            sum_of(bus.request(&subject, headers, payload, WAIT).await.unwrap())
        }
    });
    let sums = futures::future::join_all(calls).await;
    assert_eq!(sums, (0..500i64).map(|i| 2 * i).collect::<Vec<_>>());
    stop.cancel();
    serving.stopped().await;
}

#[tokio::test]
async fn a_plain_nats_client_can_call_and_serve_by_the_contract_alone() {
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    let stop = CancellationToken::new();
    let service = Arc::new(SomeApiServer::new(Calculator::default()));
    let serving = ServiceRuntime::new(bus.clone(), service).start(stop.clone()).await.unwrap();
    settle(&bus).await;
    let plain = async_nats::connect(nats.url()).await.unwrap();

    // Calling: a plain request with the contract's headers gets the reply.
    let (subject, headers, payload) = sum_request(20, 22);
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers.iter() {
        map.insert(name, value);
    }
    let answer = plain.request_with_headers(subject, map, payload).await.unwrap();
    assert!(answer.headers.as_ref().is_none_or(|h| h.get(header::STATUS).is_none()));
    assert_eq!(Message::<ReplySumT>::from_bytes(answer.payload).unwrap().get().sum(), 42);
    stop.cancel();
    serving.stopped().await;

    // Serving: a plain subscriber in the service's queue group answers our request.
    let mut calls = plain
        .queue_subscribe("rpc.examples.some_api.SomeApi.*", "examples.some_api.SomeApi".into())
        .await
        .unwrap();
    settle_client(&plain).await;
    let server = {
        let plain = plain.clone();
        tokio::spawn(async move {
            let call = calls.next().await.unwrap();
            let request = Message::<RequestSumT>::from_bytes(call.payload).unwrap();
            let sum = request.get().a() + request.get().b();
            let reply = Message::pack(&ReplySumT { sum }).into_bytes();
            plain.publish(call.reply.unwrap(), reply).await.unwrap();
            call.headers.unwrap().get(header::METHOD).unwrap().as_str().to_owned()
        })
    };
    let (subject, headers, payload) = sum_request(1, 2);
    let answer = bus.request(&subject, headers, payload, WAIT).await.unwrap();
    assert_eq!(sum_of(answer), 3);
    assert_eq!(server.await.unwrap(), "2737665740", "rpc-method carries the method id");
}

#[tokio::test]
async fn requests_fail_fast_without_responders_and_time_out_without_answers() {
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    let started = Instant::now();
    let err = bus.request("rpc.nobody.Serves.this", Headers::new(), Bytes::new(), WAIT).await;
    assert_eq!(
        err.unwrap_err(),
        BusError::NoResponders { subject: "rpc.nobody.Serves.this".into() }
    );
    assert!(started.elapsed() < Duration::from_secs(1), "no responders is immediate");

    let _silent = bus.subscribe("rpc.silent.*", Some("silent")).await.unwrap();
    settle(&bus).await;
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let err = bus.request("rpc.silent.x", Headers::new(), Bytes::new(), timeout).await;
    assert!(matches!(err, Err(BusError::Timeout { .. })), "{err:?}");
    assert!(started.elapsed() >= timeout && started.elapsed() < timeout * 5);
}

#[tokio::test]
async fn messages_over_max_payload_are_refused_before_sending() {
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    let max = bus.max_payload();
    assert_eq!(max, 1024 * 1024, "nats-server's default max_payload");
    let mut sub = bus.subscribe("big", None).await.unwrap();
    settle(&bus).await;
    let mut headers = Headers::new();
    headers.insert("rpc-identity", "someone");
    let too_big = Bytes::from(vec![7u8; max]);
    let err = bus.publish("big", headers.clone(), too_big.clone()).await.unwrap_err();
    assert!(matches!(err, BusError::TooLarge { size, max: m } if size > max && m == max), "{err}");
    assert!(!err.to_status().retryable());
    let err = bus.request("big", headers, too_big.clone(), WAIT).await.unwrap_err();
    assert!(matches!(err, BusError::TooLarge { .. }), "{err}");
    // The connection is still fine, and a payload that fits goes through.
    let fits = Bytes::from(vec![7u8; max - 1024]);
    bus.publish("big", Headers::new(), fits.clone()).await.unwrap();
    assert_eq!(next(&mut sub).await.payload, fits);

    // The same checks for an answer (to an inbox), which rides the call lane.
    let mut inbox = bus.subscribe("_INBOX.test.*", None).await.unwrap();
    settle(&bus).await;
    lane_up(&bus).await;
    let mut headers = Headers::new();
    headers.insert("rpc-identity", "someone");
    let err = bus.publish("_INBOX.test.1", headers.clone(), too_big).await.unwrap_err();
    assert!(matches!(err, BusError::TooLarge { size, max: m } if size > max && m == max), "{err}");
    let mut bad = Headers::new();
    bad.insert("rpc-message", "two\nlines");
    let err = bus.publish("_INBOX.test.2", bad, Bytes::new()).await.unwrap_err();
    assert!(matches!(err, BusError::InvalidHeader { .. }), "{err}");
    let err = bus.publish("_INBOX.bad subject", Headers::new(), Bytes::new()).await.unwrap_err();
    assert!(matches!(err, BusError::InvalidSubject { .. }), "{err}");
    bus.publish("_INBOX.test.3", headers, fits.clone()).await.unwrap();
    let answer = next(&mut inbox).await;
    assert_eq!((answer.subject.as_str(), &answer.payload), ("_INBOX.test.3", &fits));
    assert_eq!(answer.headers.get("rpc-identity"), Some("someone"));
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes_at_the_server() {
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    let subs = |nats: &NatsServer| {
        let connz = nats.monitor("/connz?subs=1");
        let conn = &connz["connections"][0];
        conn["subscriptions_list"]
            .as_array()
            .map(|l| l.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let sub = bus.subscribe("topic.watch.me", None).await.unwrap();
    settle(&bus).await;
    assert!(subs(&nats).contains(&"topic.watch.me".to_owned()), "{:?}", subs(&nats));
    drop(sub);
    // Polled without blocking the runtime: the unsubscribe happens on one of its tasks.
    let gone = async {
        while subs(&nats).contains(&"topic.watch.me".to_owned()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, gone).await.expect("the UNSUB reaches the server");
}

#[tokio::test]
async fn losing_the_server_fails_waiting_requests_at_once_and_service_resumes_after_restart() {
    let mut nats = NatsServer::start();
    let bus = connect(&nats).await;
    let stop = CancellationToken::new();
    let service = Arc::new(SomeApiServer::new(Calculator::default()));
    let serving = ServiceRuntime::new(bus.clone(), service).start(stop.clone()).await.unwrap();
    let mut events = bus.subscribe("topic.after", None).await.unwrap();
    let mut silent = bus.subscribe("rpc.silent.*", Some("silent")).await.unwrap();
    settle(&bus).await;

    // A request waiting for an answer that will never come...
    let waiting = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = bus.request("rpc.silent.x", Headers::new(), Bytes::new(), WAIT).await;
            (r, started.elapsed())
        })
    };
    // (it has reached its silent responder, so it is waiting)...
    next(&mut silent).await;
    let killed = Instant::now();
    nats.kill();
    // ...fails as soon as the connection drops, long before its timeout.
    let (result, _) = waiting.await.unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, BusError::Disconnected { .. }), "{err:?}");
    assert!(killed.elapsed() < Duration::from_secs(2), "failed after {:?}", killed.elapsed());
    let status = err.to_status();
    assert_eq!(status.code(), gateway_core::Code::Unavailable);
    assert!(status.retryable());

    // While the server is down, requests and publications fail at once.
    let started = Instant::now();
    let (subject, headers, payload) = sum_request(1, 1);
    let err = bus.request(&subject, headers, payload, WAIT).await.unwrap_err();
    assert!(matches!(err, BusError::Disconnected { .. }), "{err:?}");
    let err = bus.publish("topic.after", Headers::new(), Bytes::new()).await.unwrap_err();
    assert!(matches!(err, BusError::Disconnected { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(!bus.is_connected());

    // Back: the bus reconnects by itself, restores its subscriptions, and serves again.
    nats.restart();
    let restarted = Instant::now();
    tokio::time::timeout(WAIT, bus.connected()).await.expect("reconnected");
    settle(&bus).await;
    let reconnected = restarted.elapsed();
    assert!(reconnected < Duration::from_secs(5), "took {reconnected:?}");
    let (subject, headers, payload) = sum_request(40, 2);
    let answer = bus.request(&subject, headers, payload, WAIT).await.unwrap();
    assert_eq!(sum_of(answer), 42, "the service's subscription was restored");
    bus.publish("topic.after", Headers::new(), Bytes::from_static(b"back")).await.unwrap();
    assert_eq!(next(&mut events).await.payload, Bytes::from_static(b"back"));
    assert_eq!(bus.stats().failed_on_disconnect, 1);
    assert_eq!(bus.stats().reconnects, 1);
    stop.cancel();
    serving.stopped().await;
}

/// A plain NATS "instance" of service `rpc.notice.*`: takes calls and never answers them,
/// sending a running notice naming `liveness` for each if `notify` is set.
async fn silent_instance(
    nats: &NatsServer,
    liveness: &str,
    notify: bool,
) -> (async_nats::Client, async_nats::Subscriber, tokio::task::JoinHandle<Vec<String>>) {
    let plain = async_nats::connect(nats.url()).await.unwrap();
    let alive = plain.subscribe(liveness.to_owned()).await.unwrap();
    let mut calls = plain.queue_subscribe("rpc.notice.*", "notice".into()).await.unwrap();
    settle_client(&plain).await;
    let instance = plain.clone();
    let liveness = liveness.to_owned();
    let taken = tokio::spawn(async move {
        let mut notify_ms = Vec::new();
        while let Some(call) = calls.next().await {
            let headers = call.headers.unwrap_or_default();
            notify_ms
                .push(headers.get(header::NOTIFY_MS).map(|v| v.to_string()).unwrap_or_default());
            if notify {
                let mut notice = async_nats::HeaderMap::new();
                notice.insert(header::RUNNING, liveness.as_str());
                instance
                    .publish_with_headers(call.reply.unwrap(), notice, Bytes::new())
                    .await
                    .unwrap();
            }
        }
        notify_ms
    });
    (plain, alive, taken)
}

#[tokio::test]
async fn calls_on_an_instance_that_stops_fail_at_once_as_lost_and_retryable() {
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    let (plain, mut alive, taken) = silent_instance(&nats, "live.instance-1", true).await;
    // The instance answers pings while it lives.
    let pinger = plain.clone();
    let answering = tokio::spawn(async move {
        while let Some(ping) = alive.next().await {
            pinger.publish(ping.reply.unwrap(), Bytes::new()).await.unwrap();
        }
    });
    let calls = (0..5).map(|_| {
        let bus = bus.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (bus.request("rpc.notice.x", Headers::new(), Bytes::new(), WAIT).await, started)
        })
    });
    let calls: Vec<_> = calls.collect();
    // Running notices arrived and the instance answers pings: the calls keep waiting, past the
    // point where an unconfirmed call would be presumed lost.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(calls.iter().all(|c| !c.is_finished()), "confirmed calls wait for their answer");
    // The instance stops answering (its liveness subscription goes, as when its process dies).
    answering.abort();
    let stopped = Instant::now();
    for call in calls {
        let (result, _) = call.await.unwrap();
        let err = result.unwrap_err();
        assert!(matches!(err, BusError::Lost { .. }), "{err:?}");
        assert!(err.to_string().contains("live.instance-1"), "{err}");
        let status = err.to_status();
        assert_eq!(status.code(), gateway_core::Code::Unavailable);
        assert!(status.retryable());
    }
    assert!(stopped.elapsed() < Duration::from_secs(2), "failed {:?} after", stopped.elapsed());
    assert_eq!(bus.stats().lost, 5);
    drop(plain);
    taken.abort();
}

#[tokio::test]
async fn a_call_nobody_confirms_is_presumed_lost_soon_after_the_notice_was_due() {
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    let (_plain, _alive, taken) = silent_instance(&nats, "live.instance-2", false).await;
    let started = Instant::now();
    let err = bus.request("rpc.notice.x", Headers::new(), Bytes::new(), WAIT).await.unwrap_err();
    assert!(matches!(err, BusError::Lost { .. }), "{err:?}");
    let took = started.elapsed();
    // notify_after (100 ms) + lost_after (400 ms), checked every 250 ms.
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(2), "{took:?}");
    assert!(err.to_status().retryable());
    taken.abort();

    // Requests off `rpc.` subjects do not ask for notices and just time out.
    let _other = bus.subscribe("other.x", None).await.unwrap();
    settle(&bus).await;
    let err = bus.request("other.x", Headers::new(), Bytes::new(), Duration::from_millis(900));
    assert!(matches!(err.await, Err(BusError::Timeout { .. })));
}

#[tokio::test]
async fn calls_carry_the_notify_header_only_when_notices_are_on() {
    let nats = NatsServer::start();
    let plain = async_nats::connect(nats.url()).await.unwrap();
    let mut calls = plain.subscribe("rpc.headers.*").await.unwrap();
    settle_client(&plain).await;
    let on = connect(&nats).await;
    let off_options = NatsOptions { notify_after: None, ..NatsOptions::default() };
    let off = NatsBus::connect(&nats.url(), off_options).await.unwrap();
    for bus in [&*on, &off] {
        let short = Duration::from_millis(50);
        let _ = bus.request("rpc.headers.x", Headers::new(), Bytes::new(), short).await;
    }
    let first = tokio::time::timeout(WAIT, calls.next()).await.unwrap().unwrap();
    assert_eq!(first.headers.unwrap().get(header::NOTIFY_MS).map(|v| v.as_str()), Some("100"));
    let second = tokio::time::timeout(WAIT, calls.next()).await.unwrap().unwrap();
    assert!(second.headers.is_none_or(|h| h.get(header::NOTIFY_MS).is_none()));
}

/// `test.Slow.wait`: answers its request after the number of milliseconds it holds (u32 LE).
struct Slow;

static SLOW: gateway_core::ServiceDesc = gateway_core::ServiceDesc {
    name: "test.Slow",
    methods: &[gateway_core::MethodDesc {
        id: 1,
        name: "test.Slow.wait",
        request: "test.Millis",
        response: Some("test.Millis"),
        idempotent: true,
        writes: false,
    }],
    topics: &[],
    errors: &[],
};

impl gateway_core::Dispatch for Slow {
    fn descriptor(&self) -> &'static gateway_core::ServiceDesc {
        &SLOW
    }

    fn dispatch(
        &self,
        _ctx: gateway_core::CallContext,
        request: Bytes,
    ) -> gateway_core::BoxFuture<'static, Result<Bytes, gateway_core::Status>> {
        Box::pin(async move {
            let ms = u32::from_le_bytes(request[..4].try_into().unwrap());
            tokio::time::sleep(Duration::from_millis(ms.into())).await;
            Ok(request)
        })
    }
}

fn wait_ms(ms: u32) -> (Headers, Bytes) {
    let mut headers = Headers::new();
    headers.insert(header::METHOD, "1");
    (headers, Bytes::copy_from_slice(&ms.to_le_bytes()))
}

#[tokio::test]
async fn long_calls_on_a_live_instance_are_confirmed_and_finish_even_through_its_drain() {
    let nats = NatsServer::start();
    // The service and its caller on connections of their own, as in separate processes.
    let service_bus = connect(&nats).await;
    let caller = connect(&nats).await;
    let stop = CancellationToken::new();
    let serving =
        ServiceRuntime::new(service_bus.clone(), Arc::new(Slow)).start(stop.clone()).await.unwrap();
    settle(&service_bus).await;

    // Far longer than notify_after + lost_after: the running notice keeps it alive.
    let (headers, payload) = wait_ms(1500);
    let answer = caller.request("rpc.test.Slow.wait", headers, payload.clone(), WAIT).await;
    assert_eq!(answer.unwrap().payload, payload);

    // An instance that is shutting down keeps answering pings while it drains its calls.
    let (headers, payload) = wait_ms(1200);
    let long = {
        let caller = caller.clone();
        tokio::spawn(
            async move { caller.request("rpc.test.Slow.wait", headers, payload, WAIT).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let answer = long.await.unwrap();
    assert_eq!(answer.unwrap().payload, Bytes::copy_from_slice(&1200u32.to_le_bytes()));
    serving.stopped().await;
    assert_eq!(caller.stats().lost, 0);
}

#[tokio::test]
async fn service_processes_are_discoverable_with_the_nats_services_api() {
    let nats = NatsServer::start();
    let stop = CancellationToken::new();
    let mut serving = Vec::new();
    // Two instances, each on its own connection as separate processes would be.
    for _ in 0..2 {
        let bus = connect(&nats).await;
        let service = Arc::new(SomeApiServer::new(Calculator::default()));
        serving.push(ServiceRuntime::new(bus.clone(), service).start(stop.clone()).await.unwrap());
        settle(&bus).await;
    }
    let plain = async_nats::connect(nats.url()).await.unwrap();
    // `nats micro ls` does this: one request on $SRV.PING, every answer gathered.
    let inbox = plain.new_inbox();
    let mut answers = plain.subscribe(inbox.clone()).await.unwrap();
    plain.publish_with_reply("$SRV.PING", inbox, Bytes::new()).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let pong = tokio::time::timeout(WAIT, answers.next()).await.unwrap().unwrap();
        let pong: async_nats::service::PingResponse =
            serde_json::from_slice(&pong.payload).unwrap();
        assert_eq!(pong.name, "examples_some_api_SomeApi");
        ids.push(pong.id);
    }
    assert_ne!(ids[0], ids[1]);
    let info =
        plain.request(format!("$SRV.INFO.examples_some_api_SomeApi.{}", ids[1]), Bytes::new());
    let info: async_nats::service::Info =
        serde_json::from_slice(&info.await.unwrap().payload).unwrap();
    assert_eq!(info.id, ids[1]);
    let subjects: Vec<_> = info.endpoints.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(
        subjects,
        ["rpc.examples.some_api.SomeApi.sum", "rpc.examples.some_api.SomeApi.sub"]
    );
    stop.cancel();
    for s in serving {
        s.stopped().await;
    }
}

/// The route and metadata of a typed `sum` call.
fn typed_sum(serial: u64) -> (gateway_bus::MethodRoute, gateway_bus::CallMeta) {
    let sum = DESCRIPTOR.methods.iter().find(|m| m.name.ends_with(".sum")).unwrap();
    let route = gateway_bus::MethodRoute::new(&DESCRIPTOR, sum).unwrap();
    let meta = gateway_bus::CallMeta {
        method_id: sum.id,
        deadline: Some(Instant::now() + Duration::from_secs(5)),
        call_id: Some(gateway_bus::CallId { instance: 0xabc, serial }),
        identity: Some(Arc::new(gateway_core::Identity {
            subject: "device-7".into(),
            claims: [("role".to_owned(), "tracker".to_owned())].into(),
        })),
        received: None,
    };
    (route, meta)
}

/// A typed `sum(40, 2)` call with call id `serial` is answered 42.
async fn assert_typed_sum_answered(bus: &NatsBus, serial: u64) {
    let (route, meta) = typed_sum(serial);
    let payload = Message::pack(&RequestSumT { a: 40, b: 2 }).into_bytes();
    let answer = tokio::time::timeout(WAIT, bus.call(&route, meta, payload)).await.unwrap();
    assert_eq!(Message::<ReplySumT>::from_bytes(answer.unwrap()).unwrap().get().sum(), 42);
}

/// Waits until `bus`'s calls take its call lane.
async fn lane_up(bus: &NatsBus) {
    bus.open_call_lane();
    let started = Instant::now();
    while !bus.call_lane_connected() {
        assert!(started.elapsed() < WAIT, "the call lane did not connect");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn typed_calls_cross_the_call_lane_as_the_contract_headers_and_come_back_as_answers() {
    let nats = NatsServer::start();
    let bus = connect(&nats).await;
    lane_up(&bus).await;
    typed_calls_cross_nats(&nats, &bus).await;
    assert!(bus.call_lane_connected());
}

#[tokio::test]
async fn typed_calls_cross_the_main_connection_as_the_contract_headers_too() {
    let nats = NatsServer::start();
    let options = NatsOptions { call_lane: false, ..NatsOptions::default() };
    let bus = NatsBus::connect(&nats.url(), options).await.unwrap();
    // Off: asking for it opens nothing, and neither do the calls.
    bus.open_call_lane();
    typed_calls_cross_nats(&nats, &bus).await;
    assert!(!bus.call_lane_connected());
}

async fn typed_calls_cross_nats(nats: &NatsServer, bus: &NatsBus) {
    // What a service written with a plain NATS client sees.
    let plain = async_nats::connect(nats.url()).await.unwrap();
    let mut calls =
        plain.queue_subscribe("rpc.examples.some_api.SomeApi.*", "g".into()).await.unwrap();
    let mut cancels = plain.subscribe("cancel.examples.some_api.SomeApi").await.unwrap();
    settle_client(&plain).await;

    let (route, meta) = typed_sum(7);
    let payload = Message::pack(&RequestSumT { a: 40, b: 2 }).into_bytes();
    let call = bus.call(&route, meta.clone(), payload.clone());
    let answering = tokio::spawn(call);
    let request = tokio::time::timeout(WAIT, calls.next()).await.unwrap().unwrap();
    let headers = request.headers.clone().expect("the contract's headers");
    let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(request.subject.as_str(), "rpc.examples.some_api.SomeApi.sum");
    assert_eq!(get(header::METHOD), Some(route.method().id.to_string()));
    assert_eq!(get(header::CALL_ID).as_deref(), Some("0000000000000abc-7"));
    assert_eq!(get(header::TRACE_ID).as_deref(), Some("0000000000000abc0000000000000007"));
    assert_eq!(get(header::IDENTITY).as_deref(), Some("device-7"));
    assert_eq!(get("rpc-claim-role").as_deref(), Some("tracker"));
    assert_eq!(get(header::NOTIFY_MS).as_deref(), Some("100"));
    let ms: u64 = get(header::TIMEOUT_MS).unwrap().parse().unwrap();
    assert!((4_000..=5_000).contains(&ms), "{ms}");
    assert_eq!(request.payload, payload);
    let reply = Message::pack(&ReplySumT { sum: 42 }).into_bytes();
    plain.publish(request.reply.unwrap(), reply.clone()).await.unwrap();
    let answer = tokio::time::timeout(WAIT, answering).await.unwrap().unwrap();
    assert_eq!(answer, Ok(reply));

    // A failure status comes back as the call's failure, the payload as its details.
    let (route, meta) = typed_sum(8);
    let answering = tokio::spawn(bus.call(&route, meta, payload.clone()));
    let request = tokio::time::timeout(WAIT, calls.next()).await.unwrap().unwrap();
    let status = gateway_core::Status::not_found("no sum").with_error_id(3);
    let mut failed = async_nats::HeaderMap::new();
    for (name, value) in contract::status_headers(&status).iter() {
        failed.insert(name, value);
    }
    plain.publish_with_headers(request.reply.unwrap(), failed, "d".into()).await.unwrap();
    let failure = tokio::time::timeout(WAIT, answering).await.unwrap().unwrap().unwrap_err();
    assert_eq!((failure.status, failure.details), (status, Bytes::from_static(b"d")));

    // A call dropped before its answer publishes its cancellation.
    let (route, meta) = typed_sum(9);
    let mut call = bus.call(&route, meta, payload);
    assert!(futures::poll!(&mut call).is_pending());
    let _request = tokio::time::timeout(WAIT, calls.next()).await.unwrap().unwrap();
    drop(call);
    let cancel = tokio::time::timeout(WAIT, cancels.next()).await.unwrap().unwrap();
    let call_id = cancel.headers.as_ref().and_then(|h| h.get(header::CALL_ID)).unwrap();
    assert_eq!(call_id.as_str(), "0000000000000abc-9");

    // Nobody serving: unavailable at once.
    drop(calls);
    settle_client(&plain).await;
    let (route, meta) = typed_sum(10);
    let failure = tokio::time::timeout(WAIT, bus.call(&route, meta, Bytes::new())).await.unwrap();
    assert_eq!(failure.unwrap_err().status.code(), gateway_core::Code::Unavailable);
}

#[tokio::test]
async fn a_typed_call_is_served_by_a_runtime_over_nats() {
    let nats = NatsServer::start();
    let service_bus = connect(&nats).await;
    let stop = CancellationToken::new();
    let service = Arc::new(SomeApiServer::new(Calculator::default()));
    let serving =
        ServiceRuntime::new(service_bus.clone(), service).start(stop.clone()).await.unwrap();
    settle(&service_bus).await;
    let bus = connect(&nats).await;
    assert_typed_sum_answered(&bus, 1).await;
    // The first call opened the caller's lane, its answer the service's (answers take the lane
    // once it is up); the next ones ride both.
    let started = Instant::now();
    while !(bus.call_lane_connected() && service_bus.call_lane_connected()) {
        assert!(started.elapsed() < WAIT, "the lanes did not open");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for serial in 2..10 {
        assert_typed_sum_answered(&bus, serial).await;
    }
    stop.cancel();
    serving.stopped().await;
}

#[tokio::test]
async fn losing_the_server_fails_calls_on_the_lane_at_once_and_the_lane_comes_back() {
    let mut nats = NatsServer::start();
    let bus = connect(&nats).await;
    let plain = async_nats::connect(nats.url()).await.unwrap();
    // A silent instance: takes the call and never answers.
    let mut silent = plain.subscribe("rpc.examples.some_api.SomeApi.sum").await.unwrap();
    settle_client(&plain).await;
    lane_up(&bus).await;

    let (route, meta) = typed_sum(1);
    let payload = Message::pack(&RequestSumT { a: 40, b: 2 }).into_bytes();
    let waiting = tokio::spawn(bus.call(&route, meta, payload.clone()));
    tokio::time::timeout(WAIT, silent.next()).await.unwrap().unwrap();
    let killed = Instant::now();
    nats.kill();
    let failure = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap().unwrap_err();
    assert_eq!(failure.status.code(), gateway_core::Code::Unavailable, "{failure:?}");
    assert!(failure.status.retryable());
    assert!(killed.elapsed() < Duration::from_secs(2), "failed after {:?}", killed.elapsed());
    assert!(!bus.call_lane_connected());
    assert!(bus.stats().failed_on_disconnect >= 1);
    drop((silent, plain));

    // While the server is down, calls fail at once.
    let (route, meta) = typed_sum(2);
    let started = Instant::now();
    let failure = bus.call(&route, meta, payload.clone()).await.unwrap_err();
    assert_eq!(failure.status.code(), gateway_core::Code::Unavailable);
    assert!(started.elapsed() < Duration::from_millis(500));

    // Back: the lane reconnects by itself and carries calls again.
    nats.restart();
    tokio::time::timeout(WAIT, bus.connected()).await.expect("reconnected");
    lane_up(&bus).await;
    let stop = CancellationToken::new();
    let service = Arc::new(SomeApiServer::new(Calculator::default()));
    let serving = ServiceRuntime::new(bus.clone(), service).start(stop.clone()).await.unwrap();
    settle(&bus).await;
    assert_typed_sum_answered(&bus, 3).await;
    stop.cancel();
    serving.stopped().await;
}

#[tokio::test]
async fn both_connections_authenticate_with_the_credentials_in_the_url() {
    for (args, credentials) in [
        (&["--user", "gw", "--pass", "p@ss word"][..], "gw:p%40ss%20word@"),
        (&["--auth", "s3cret"][..], "s3cret@"),
    ] {
        let nats = NatsServer::start_with(args);
        let url = format!("nats://{credentials}127.0.0.1:{}", nats.port());
        let options = NatsOptions { name: "auth-test".into(), ..NatsOptions::default() };
        let bus =
            Arc::new(NatsBus::connect(&url, options).await.expect("connect with credentials"));
        lane_up(&bus).await;
        let names: Vec<String> = nats.monitor("/connz")["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect();
        assert!(names.contains(&"auth-test (calls)".to_owned()), "{names:?}");

        let stop = CancellationToken::new();
        let service = Arc::new(SomeApiServer::new(Calculator::default()));
        let serving = ServiceRuntime::new(bus.clone(), service).start(stop.clone()).await.unwrap();
        settle(&bus).await;
        assert_typed_sum_answered(&bus, 1).await;
        assert!(bus.call_lane_connected());
        stop.cancel();
        serving.stopped().await;
    }
}
