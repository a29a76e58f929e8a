//! The runtime's own mechanics with a minimal service; `tests/runtime.rs` serves the real
//! generated `SomeApi`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::{BoxFuture, CallContext, Code, Dispatch, MethodDesc, ServiceDesc, Status};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::contract::{header, status_from_headers};
use crate::{Headers, LocalBus};

const ECHO: u32 = 1;
const HOLD: u32 = 2;
const DOUBLE: u32 = 3;

static DESC: ServiceDesc = ServiceDesc {
    name: "test.Echo",
    methods: &[
        MethodDesc {
            id: ECHO,
            name: "test.Echo.echo",
            request: "test.Bytes",
            response: Some("test.Bytes"),
            idempotent: true,
            writes: false,
        },
        MethodDesc {
            id: HOLD,
            name: "test.Echo.hold",
            request: "test.Bytes",
            response: Some("test.Bytes"),
            idempotent: true,
            writes: false,
        },
        MethodDesc {
            id: DOUBLE,
            name: "test.Echo.double",
            request: "test.Bytes",
            response: Some("test.Bytes"),
            idempotent: true,
            writes: false,
        },
    ],
    topics: &[],
    errors: &[],
};

/// `echo` answers with its request, `double` with it twice; `hold` adds a permit to `entered`, then waits for a permit
/// of `gate` before answering.
struct Echo {
    gate: Arc<Semaphore>,
    entered: Arc<Semaphore>,
}

impl Dispatch for Echo {
    fn descriptor(&self) -> &'static ServiceDesc {
        &DESC
    }

    fn dispatch(
        &self,
        ctx: CallContext,
        request: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, Status>> {
        let gate = self.gate.clone();
        let entered = self.entered.clone();
        Box::pin(async move {
            if ctx.method_id() == HOLD {
                entered.add_permits(1);
                let _permit = gate.acquire().await.map_err(|_| Status::internal("closed"))?;
            }
            if ctx.method_id() == DOUBLE {
                return Ok([request.clone(), request].concat().into());
            }
            Ok(request)
        })
    }
}

async fn start(runtime: ServiceRuntime) -> (Serving, CancellationToken) {
    let shutdown = CancellationToken::new();
    (runtime.start(shutdown.clone()).await.unwrap(), shutdown)
}

fn runtime(bus: &LocalBus, gate: &Arc<Semaphore>) -> ServiceRuntime {
    let echo = Echo { gate: gate.clone(), entered: Arc::new(Semaphore::new(0)) };
    ServiceRuntime::new(Arc::new(bus.clone()), Arc::new(echo))
}

async fn call(bus: &LocalBus, method: &str, payload: &'static [u8]) -> Result<Bytes, Status> {
    let subject = format!("rpc.test.Echo.{method}");
    let timeout = Duration::from_secs(30);
    let answer = bus
        .request(&subject, Headers::new(), Bytes::from_static(payload), timeout)
        .await
        .map_err(|err| err.to_status())?;
    match status_from_headers(&answer.headers) {
        Some(status) => Err(status),
        None => Ok(answer.payload),
    }
}

#[tokio::test]
async fn the_method_comes_from_the_header_or_else_the_subject() {
    let bus = LocalBus::new();
    let gate = Arc::new(Semaphore::new(0));
    let (_serving, _shutdown) = start(runtime(&bus, &gate)).await;
    assert_eq!(call(&bus, "echo", b"hi").await.unwrap(), Bytes::from_static(b"hi"));
    let status = call(&bus, "nope", b"").await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    // The header wins over the subject.
    let mut headers = Headers::new();
    headers.insert(header::METHOD, ECHO.to_string());
    let answer = bus
        .request("rpc.test.Echo.nope", headers, Bytes::from_static(b"x"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.payload, Bytes::from_static(b"x"));
}

#[tokio::test]
async fn a_reply_too_large_for_the_bus_is_answered_with_a_status() {
    let bus =
        LocalBus::with_options(crate::LocalBusOptions { max_payload: 4, ..Default::default() });
    let gate = Arc::new(Semaphore::new(0));
    let (_serving, _shutdown) = start(runtime(&bus, &gate)).await;
    assert_eq!(call(&bus, "double", b"ab").await.unwrap(), Bytes::from_static(b"abab"));
    let status = call(&bus, "double", b"abc").await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(!status.retryable(), "the same call would fail the same way");
    assert!(status.message().contains("6-byte"), "{status}");
}

#[tokio::test]
async fn a_malformed_timeout_is_refused() {
    let bus = LocalBus::new();
    let gate = Arc::new(Semaphore::new(0));
    let (_serving, _shutdown) = start(runtime(&bus, &gate)).await;
    let mut headers = Headers::new();
    headers.insert(header::TIMEOUT_MS, "soon");
    let answer = bus
        .request("rpc.test.Echo.echo", headers, Bytes::new(), Duration::from_secs(5))
        .await
        .unwrap();
    let status = status_from_headers(&answer.headers).unwrap();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("`soon`"), "{status}");
}

#[tokio::test]
async fn calls_beyond_the_concurrency_limit_are_shed_at_once() {
    let bus = LocalBus::new();
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Semaphore::new(0));
    let echo = Echo { gate: gate.clone(), entered: entered.clone() };
    let options = ServeOptions { concurrency: 3, ..ServeOptions::default() };
    let runtime = ServiceRuntime::new(Arc::new(bus.clone()), Arc::new(echo)).with_options(options);
    let (_serving, _shutdown) = start(runtime).await;
    let held: Vec<_> = (0..3).map(|_| tokio::spawn(holding_call(bus.clone()))).collect();
    let all_in = tokio::time::timeout(Duration::from_secs(10), entered.acquire_many(3)).await;
    all_in.expect("the held calls never reached the service").unwrap().forget();
    let status = call(&bus, "hold", b"4").await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.retryable());
    gate.add_permits(100);
    for call in held {
        assert_eq!(call.await.unwrap().unwrap(), Bytes::from_static(b"held"));
    }
    // The permits came back: calls are taken again.
    assert!(call(&bus, "hold", b"5").await.is_ok());
}

async fn holding_call(bus: LocalBus) -> Result<Bytes, Status> {
    call(&bus, "hold", b"held").await
}

#[tokio::test(start_paused = true)]
async fn a_lone_batched_call_waits_at_most_max_delay() {
    let bus = LocalBus::new();
    let gate = Arc::new(Semaphore::new(0));
    let max_delay = Duration::from_millis(20);
    let runtime = runtime(&bus, &gate).batch(
        ECHO,
        BatchOptions { max_batch: 32, max_delay },
        |calls: Vec<(CallContext, Bytes)>| async move {
            calls.into_iter().map(|(_, request)| Ok(request)).collect()
        },
    );
    let (_serving, _shutdown) = start(runtime).await;
    let started = tokio::time::Instant::now();
    assert_eq!(call(&bus, "echo", b"alone").await.unwrap(), Bytes::from_static(b"alone"));
    assert_eq!(started.elapsed(), max_delay);
}

#[tokio::test]
async fn under_load_batches_fill_up() {
    let bus = LocalBus::new();
    let gate = Arc::new(Semaphore::new(0));
    let batches = Arc::new(AtomicUsize::new(0));
    let counted = batches.clone();
    let runtime = runtime(&bus, &gate).batch(
        ECHO,
        BatchOptions { max_batch: 32, max_delay: Duration::from_millis(200) },
        move |calls: Vec<(CallContext, Bytes)>| {
            counted.fetch_add(1, Ordering::Relaxed);
            async move {
                assert!(calls.len() <= 32, "a batch of {}", calls.len());
                calls.into_iter().map(|(_, request)| Ok(request)).collect()
            }
        },
    );
    let (_serving, _shutdown) = start(runtime).await;
    let calls: Vec<_> = (0..100u8)
        .map(|i| {
            let bus = bus.clone();
            tokio::spawn(async move {
                let payload = Bytes::from(vec![i]);
                let timeout = Duration::from_secs(30);
                bus.request("rpc.test.Echo.echo", Headers::new(), payload, timeout).await
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap().payload, Bytes::from(vec![i as u8]));
    }
    let batches = batches.load(Ordering::Relaxed);
    assert!((4..=8).contains(&batches), "{batches} batches for 100 calls of at most 32");
}

#[tokio::test]
async fn a_batch_handler_that_miscounts_fails_only_the_calls_it_left_out() {
    let bus = LocalBus::new();
    let gate = Arc::new(Semaphore::new(0));
    let runtime = runtime(&bus, &gate).batch(
        ECHO,
        BatchOptions { max_batch: 2, max_delay: Duration::from_secs(5) },
        |calls: Vec<(CallContext, Bytes)>| async move {
            calls.into_iter().take(1).map(|(_, request)| Ok(request)).collect()
        },
    );
    let (_serving, _shutdown) = start(runtime).await;
    let (a, b) = tokio::join!(call(&bus, "echo", b"a"), call(&bus, "echo", b"b"));
    let mut codes = [a.map_err(|s| s.code()), b.map_err(|s| s.code())];
    codes.sort_by_key(|r| r.is_err());
    assert!(codes[0].is_ok(), "{codes:?}");
    assert_eq!(codes[1], Err(Code::Internal));
}

/// `$SRV.STATS` of the test service, its `hold` endpoint's counters.
async fn hold_stats(bus: &LocalBus) -> async_nats::service::endpoint::Stats {
    let answer = bus.request("$SRV.STATS", Headers::new(), Bytes::new(), Duration::from_secs(5));
    let stats: async_nats::service::Stats =
        serde_json::from_slice(&answer.await.unwrap().payload).unwrap();
    stats.endpoints.into_iter().find(|e| e.name == "hold").unwrap()
}

#[tokio::test]
async fn shed_expired_and_malformed_calls_count_as_errors_and_cancelled_ones_do_not() {
    let bus = LocalBus::new();
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Semaphore::new(0));
    let echo = Echo { gate: gate.clone(), entered: entered.clone() };
    let options = ServeOptions { concurrency: 1, ..ServeOptions::default() };
    let runtime = ServiceRuntime::new(Arc::new(bus.clone()), Arc::new(echo)).with_options(options);
    let (_serving, _shutdown) = start(runtime).await;
    let patience = Duration::from_secs(10);

    // One call holds the only permit; the next is shed.
    let held = tokio::spawn(holding_call(bus.clone()));
    tokio::time::timeout(patience, entered.acquire()).await.unwrap().unwrap().forget();
    assert_eq!(call(&bus, "hold", b"x").await.unwrap_err().code(), Code::ResourceExhausted);
    gate.add_permits(1);
    assert!(held.await.unwrap().is_ok());
    // The held call gave its gate permit back: close the gate again.
    tokio::time::timeout(patience, gate.acquire()).await.unwrap().unwrap().forget();
    // A call whose deadline passes in the service, and one with a malformed deadline.
    let mut headers = Headers::new();
    headers.insert(header::TIMEOUT_MS, "20");
    let answer = bus.request("rpc.test.Echo.hold", headers.clone(), Bytes::new(), patience);
    let status = status_from_headers(&answer.await.unwrap().headers).unwrap();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    tokio::time::timeout(patience, entered.acquire()).await.unwrap().unwrap().forget();
    let stats = hold_stats(&bus).await;
    assert_eq!((stats.requests, stats.errors), (3, 2));
    let last = stats.last_error.unwrap();
    assert_eq!(
        (last.code, last.status.as_str()),
        (4, "deadline_exceeded: test.Echo did not finish before the caller's deadline")
    );
    headers.insert(header::TIMEOUT_MS, "soon");
    let answer = bus.request("rpc.test.Echo.hold", headers, Bytes::new(), patience);
    assert_eq!(
        status_from_headers(&answer.await.unwrap().headers).unwrap().code(),
        Code::InvalidArgument
    );
    assert_eq!(hold_stats(&bus).await.errors, 3);

    // A call its caller cancels gets no answer: it counts as a call, not as an error.
    headers = Headers::new();
    headers.insert(header::CALL_ID, "c-1");
    bus.publish("rpc.test.Echo.hold", headers.clone(), Bytes::new()).await.unwrap();
    tokio::time::timeout(patience, entered.acquire()).await.unwrap().unwrap().forget();
    bus.publish(&crate::contract::cancel_subject("test.Echo"), headers, Bytes::new())
        .await
        .unwrap();
    let stats = tokio::time::timeout(patience, async {
        loop {
            let stats = hold_stats(&bus).await;
            if stats.requests == 5 {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    assert_eq!(stats.await.expect("the cancelled call was never counted").errors, 3);
}

#[tokio::test]
async fn a_call_still_running_when_its_notice_is_due_gets_one_naming_a_live_instance() {
    let bus = LocalBus::new();
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Semaphore::new(0));
    let echo = Echo { gate: gate.clone(), entered: entered.clone() };
    let (serving, shutdown) =
        start(ServiceRuntime::new(Arc::new(bus.clone()), Arc::new(echo))).await;
    // The in-process bus hands a request the first message on its reply subject; later ones
    // travel like any message, so this subscription catches them.
    let mut inboxes = bus.subscribe("_INBOX.>", None).await.unwrap();
    let ask = |method: u32| {
        let bus = bus.clone();
        let mut headers = Headers::new();
        headers.insert(header::METHOD, method.to_string());
        headers.insert(header::NOTIFY_MS, "20");
        tokio::spawn(async move {
            let subject = "rpc.test.Echo.x";
            bus.request(subject, headers, Bytes::from_static(b"p"), Duration::from_secs(30)).await
        })
    };
    let wait = Duration::from_secs(5);

    // A fast call: its answer comes before the notice is due, so there is none.
    let answer = ask(ECHO).await.unwrap().unwrap();
    assert_eq!(answer.headers.get(header::RUNNING), None);
    assert_eq!(answer.payload, Bytes::from_static(b"p"));

    // A held call: first the notice, then (once released) the answer.
    let held = ask(HOLD);
    let _ = entered.acquire().await.unwrap();
    let notice = tokio::time::timeout(wait, held).await.unwrap().unwrap().unwrap();
    let liveness = notice.headers.get(header::RUNNING).expect("a running notice").to_owned();
    assert!(notice.payload.is_empty());
    assert!(liveness.starts_with("instance.test.Echo."), "{liveness}");
    assert_eq!(liveness.len(), "instance.test.Echo.".len() + 22, "{liveness}");
    // The instance answers on its liveness subject.
    let pong = bus.request(&liveness, Headers::new(), Bytes::new(), wait).await;
    assert!(pong.unwrap().payload.is_empty());
    gate.add_permits(1);
    let answer = tokio::time::timeout(wait, inboxes.next()).await.unwrap().unwrap();
    assert_eq!(answer.headers.get(header::RUNNING), None);
    assert_eq!(answer.payload, Bytes::from_static(b"p"));

    // Stopped, the instance no longer answers: callers holding its notices know it is gone.
    shutdown.cancel();
    serving.stopped().await;
    let gone = bus.request(&liveness, Headers::new(), Bytes::new(), wait).await;
    assert!(matches!(gone, Err(BusError::NoResponders { .. })), "{gone:?}");
}
