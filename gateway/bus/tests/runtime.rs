//! The generated `SomeApi` served by a `ServiceRuntime` on a `LocalBus`, called through bus
//! requests built as `docs/bus.md` specifies (what a gateway sends).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gateway_bus::contract::{self, header};
use gateway_bus::{
    BatchOptions, Bus, BusError, Headers, LocalBus, ServeOptions, ServiceRuntime, Serving,
};
use gateway_core::{BoxFuture, CallContext, Code, Dispatch, Message, ServiceDesc, Status};
use some_api::examples::some_api::some_api::{error, method};
use some_api::{Calculator, DESCRIPTOR, ReplySumT, RequestSubT, RequestSumT, SomeApiServer};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Every wait in these tests is bounded by this.
const PATIENCE: Duration = Duration::from_secs(10);

/// `SomeApiServer` with eyes: reports each call's context, counts calls, and (with a gate) holds
/// each call until the test lets it through.
struct Probe {
    inner: SomeApiServer<Calculator>,
    calculator: Arc<Calculator>,
    seen: mpsc::UnboundedSender<CallContext>,
    gate: Option<Arc<Semaphore>>,
    served: AtomicUsize,
}

impl Dispatch for Probe {
    fn descriptor(&self) -> &'static ServiceDesc {
        &DESCRIPTOR
    }

    fn dispatch(
        &self,
        ctx: CallContext,
        request: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, Status>> {
        self.served.fetch_add(1, Ordering::Relaxed);
        let _ = self.seen.send(ctx.clone());
        let gate = self.gate.clone();
        let call = self.inner.dispatch(ctx, request);
        Box::pin(async move {
            if let Some(gate) = gate {
                let _permit = gate.acquire().await.map_err(|_| Status::internal("gate closed"))?;
            }
            call.await
        })
    }
}

struct Fixture {
    bus: LocalBus,
    probe: Arc<Probe>,
    seen: mpsc::UnboundedReceiver<CallContext>,
    shutdown: CancellationToken,
}

impl Fixture {
    fn new(gate: Option<Arc<Semaphore>>) -> Fixture {
        Fixture::on(LocalBus::new(), gate)
    }

    fn on(bus: LocalBus, gate: Option<Arc<Semaphore>>) -> Fixture {
        let (tx, seen) = mpsc::unbounded_channel();
        let calculator = Arc::new(Calculator::default());
        let inner = SomeApiServer::from_arc(calculator.clone());
        let probe = Arc::new(Probe { inner, calculator, seen: tx, gate, served: 0.into() });
        Fixture { bus, probe, seen, shutdown: CancellationToken::new() }
    }

    fn runtime(&self) -> ServiceRuntime {
        ServiceRuntime::new(Arc::new(self.bus.clone()), self.probe.clone())
    }

    async fn start(&self, runtime: ServiceRuntime) -> Serving {
        runtime.start(self.shutdown.clone()).await.expect("subscribed")
    }

    /// The context of the next call to reach the service.
    async fn next_call(&mut self) -> CallContext {
        let seen = tokio::time::timeout(PATIENCE, self.seen.recv()).await;
        seen.expect("no call reached the service").expect("the probe is alive")
    }
}

/// The headers a gateway sends with a call to `method_id`.
fn call_headers(method_id: u32, timeout: Option<Duration>, call_id: Option<&str>) -> Headers {
    let mut headers = Headers::new();
    headers.insert(header::METHOD, method_id.to_string());
    if let Some(timeout) = timeout {
        headers.insert(header::TIMEOUT_MS, contract::timeout_header(timeout));
    }
    if let Some(call_id) = call_id {
        headers.insert(header::CALL_ID, call_id);
    }
    headers
}

fn sum_subject() -> String {
    contract::method_subject(DESCRIPTOR.method(method::SUM).expect("sum"))
}

fn sum_payload(a: i64, b: i64) -> Bytes {
    Message::pack(&RequestSumT { a, b }).into_bytes()
}

/// Calls `sum` as a gateway would, with `headers`; the reply or the status it carries.
async fn sum_with(bus: &LocalBus, a: i64, b: i64, headers: Headers) -> Result<i64, Status> {
    let answer = bus
        .request(&sum_subject(), headers, sum_payload(a, b), PATIENCE)
        .await
        .map_err(|err| err.to_status())?;
    if let Some(status) = contract::status_from_headers(&answer.headers) {
        return Err(status);
    }
    let reply = Message::<ReplySumT>::from_bytes(answer.payload).expect("a valid reply");
    Ok(reply.get().sum())
}

async fn sum(bus: &LocalBus, a: i64, b: i64) -> Result<i64, Status> {
    sum_with(bus, a, b, call_headers(method::SUM, Some(PATIENCE), None)).await
}

#[tokio::test]
async fn a_call_is_answered_with_the_reply_or_a_status() {
    let fixture = Fixture::new(None);
    let _serving = fixture.start(fixture.runtime()).await;
    assert_eq!(sum(&fixture.bus, 40, 2).await, Ok(42));
    // Without the method header, the subject names the method.
    assert_eq!(sum_with(&fixture.bus, 1, 2, Headers::new()).await, Ok(3));
    let status = sum(&fixture.bus, i64::MAX, 1).await.unwrap_err();
    assert_eq!((status.code(), status.error_id()), (Code::OutOfRange, error::OVERFLOW));
    assert!(status.message().contains("overflows"), "{status}");
    let garbage = fixture.bus.request(&sum_subject(), Headers::new(), Bytes::new(), PATIENCE);
    let status = contract::status_from_headers(&garbage.await.unwrap().headers).unwrap();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_call_nobody_serves_fails_at_once_as_unavailable() {
    let bus = LocalBus::new();
    let status = sum(&bus, 1, 2).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.retryable());
}

#[tokio::test(start_paused = true)]
async fn a_call_that_takes_too_long_times_out_for_the_caller() {
    let gate = Arc::new(Semaphore::new(0));
    let fixture = Fixture::new(Some(gate));
    let _serving = fixture.start(fixture.runtime()).await;
    let timeout = Duration::from_millis(50);
    let err = fixture
        .bus
        .request(&sum_subject(), call_headers(method::SUM, None, None), sum_payload(1, 1), timeout)
        .await
        .unwrap_err();
    assert_eq!(err, BusError::Timeout { subject: sum_subject(), timeout });
}

#[tokio::test]
async fn overload_is_shed_at_once_and_memory_stays_bounded() {
    let gate = Arc::new(Semaphore::new(0));
    let fixture = Fixture::new(Some(gate.clone()));
    let options = ServeOptions { concurrency: 8, ..ServeOptions::default() };
    let _serving = fixture.start(fixture.runtime().with_options(options)).await;
    let (results, mut answered) = mpsc::unbounded_channel();
    for i in 0..1000 {
        let (bus, results) = (fixture.bus.clone(), results.clone());
        tokio::spawn(async move { results.send(sum(&bus, i, 1).await) });
    }
    // With eight calls held in the service, the other 992 are answered without waiting.
    for _ in 0..992 {
        let result = tokio::time::timeout(PATIENCE, answered.recv()).await.expect("shed at once");
        let status = result.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.retryable());
    }
    assert_eq!(fixture.probe.served.load(Ordering::Relaxed), 8);
    assert_eq!(fixture.bus.pending_requests(), 8, "only the admitted calls hold anything");
    gate.add_permits(8);
    for _ in 0..8 {
        let result = tokio::time::timeout(PATIENCE, answered.recv()).await.expect("answered");
        assert!(result.unwrap().is_ok());
    }
}

#[tokio::test]
async fn runtimes_of_one_service_share_its_calls() {
    let first = Fixture::new(None);
    let second = Fixture::on(first.bus.clone(), None);
    let _a = first.start(first.runtime()).await;
    let _b = second.start(second.runtime()).await;
    for i in 0..100 {
        assert_eq!(sum(&first.bus, i, 1).await, Ok(i + 1));
    }
    let (a, b) =
        (first.probe.served.load(Ordering::Relaxed), second.probe.served.load(Ordering::Relaxed));
    assert_eq!(a + b, 100);
    assert!(a >= 40 && b >= 40, "uneven sharing: {a} and {b}");
}

#[tokio::test]
async fn a_cancel_message_reaches_the_handler_and_the_caller_gets_no_answer() {
    let gate = Arc::new(Semaphore::new(0));
    let mut fixture = Fixture::new(Some(gate));
    let _serving = fixture.start(fixture.runtime()).await;
    let bus = fixture.bus.clone();
    let headers = call_headers(method::SUM, Some(PATIENCE), Some("gw1-17"));
    let timeout = Duration::from_millis(300);
    let call = tokio::spawn(async move {
        bus.request(&sum_subject(), headers, sum_payload(1, 1), timeout).await
    });
    let ctx = fixture.next_call().await;
    assert!(!ctx.is_cancelled());
    let mut cancel = Headers::new();
    cancel.insert(header::CALL_ID, "gw1-17");
    fixture
        .bus
        .publish(&contract::cancel_subject(DESCRIPTOR.name), cancel, Bytes::new())
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, ctx.cancelled()).await.expect("the handler saw the cancel");
    assert!(matches!(call.await.unwrap(), Err(BusError::Timeout { .. })));
    // A cancel for a call that is not running here changes nothing.
    let mut stray = Headers::new();
    stray.insert(header::CALL_ID, "gw1-99");
    fixture
        .bus
        .publish(&contract::cancel_subject(DESCRIPTOR.name), stray, Bytes::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_deadline_reaches_the_handler_and_is_enforced() {
    let gate = Arc::new(Semaphore::new(0));
    let mut fixture = Fixture::new(Some(gate));
    let _serving = fixture.start(fixture.runtime()).await;
    let bus = fixture.bus.clone();
    let headers = call_headers(method::SUM, Some(Duration::from_millis(200)), None);
    let call = tokio::spawn(async move { sum_with(&bus, 1, 1, headers).await });
    let ctx = fixture.next_call().await;
    let remaining = ctx.remaining().expect("a deadline");
    assert!(remaining <= Duration::from_millis(200) && remaining > Duration::ZERO, "{remaining:?}");
    // The handler never finishes; when the deadline passes its signal fires and the caller is told.
    tokio::time::timeout(PATIENCE, ctx.cancelled()).await.expect("the deadline cancelled the call");
    assert_eq!(call.await.unwrap().unwrap_err().code(), Code::DeadlineExceeded);
}

#[tokio::test]
async fn a_call_without_a_timeout_has_no_deadline() {
    let mut fixture = Fixture::new(None);
    let _serving = fixture.start(fixture.runtime()).await;
    assert_eq!(sum_with(&fixture.bus, 2, 2, call_headers(method::SUM, None, None)).await, Ok(4));
    assert_eq!(fixture.next_call().await.deadline(), None);
}

#[tokio::test]
async fn identity_headers_reach_the_handler() {
    let mut fixture = Fixture::new(None);
    let _serving = fixture.start(fixture.runtime()).await;
    let mut headers = call_headers(method::SUM, Some(PATIENCE), None);
    headers.insert(header::IDENTITY, "device-7");
    headers.insert(format!("{}role", header::CLAIM_PREFIX), "tracker");
    headers.insert(format!("{}fleet", header::CLAIM_PREFIX), "north");
    assert_eq!(sum_with(&fixture.bus, 1, 1, headers).await, Ok(2));
    let ctx = fixture.next_call().await;
    let identity = ctx.identity().expect("an identity");
    assert_eq!(identity.subject, "device-7");
    let claims: Vec<_> = identity.claims.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(claims, [("fleet", "north"), ("role", "tracker")]);
    // Anonymous callers have none.
    assert_eq!(sum(&fixture.bus, 1, 1).await, Ok(2));
    assert_eq!(fixture.next_call().await.identity(), None);
}

#[tokio::test]
async fn fire_and_forget_calls_are_served_and_never_answered() {
    let fixture = Fixture::new(None);
    let serving = fixture.start(fixture.runtime()).await;
    let sub = DESCRIPTOR.method(method::SUB).unwrap();
    for amount in [5, 7] {
        let payload = Message::pack(&RequestSubT { amount }).into_bytes();
        let headers = call_headers(sub.id, None, None);
        fixture.bus.publish(&contract::method_subject(sub), headers, payload).await.unwrap();
    }
    tokio::time::timeout(PATIENCE, async {
        while fixture.probe.calculator.total().changes < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("both subs were served");
    assert_eq!(fixture.probe.calculator.total().value, -12);
    // Once the runtime has stopped, every call task has ended: the two calls were all that was
    // ever published, no answer.
    fixture.shutdown.cancel();
    tokio::time::timeout(PATIENCE, serving.stopped()).await.expect("the runtime stopped");
    assert_eq!(fixture.bus.stats().published, 2);
}

#[tokio::test]
async fn sum_served_in_batches_forms_real_batches() {
    let fixture = Fixture::new(None);
    let batches = Arc::new(AtomicUsize::new(0));
    let counted = batches.clone();
    let options = BatchOptions { max_batch: 32, max_delay: Duration::from_millis(100) };
    let runtime =
        fixture.runtime().batch(method::SUM, options, move |calls: Vec<(CallContext, Bytes)>| {
            counted.fetch_add(1, Ordering::Relaxed);
            async move {
                calls
                    .into_iter()
                    .map(|(_, request)| {
                        let request = Message::<RequestSumT>::from_bytes(request)
                            .map_err(|err| Status::invalid_argument(err.to_string()))?;
                        let sum = request.get().a() + request.get().b();
                        Ok(Message::pack(&ReplySumT { sum }).into_bytes())
                    })
                    .collect()
            }
        });
    let _serving = fixture.start(runtime).await;
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let bus = fixture.bus.clone();
            tokio::spawn(async move { sum(&bus, i, 1000).await })
        })
        .collect();
    for (i, call) in (0..).zip(calls) {
        assert_eq!(call.await.unwrap(), Ok(i + 1000));
    }
    let batches = batches.load(Ordering::Relaxed);
    assert!((4..=8).contains(&batches), "{batches} handler calls for 100 calls");
    assert_eq!(fixture.probe.served.load(Ordering::Relaxed), 0, "dispatch was bypassed");
}

#[tokio::test]
async fn shutdown_stops_taking_calls_and_finishes_those_in_flight() {
    let gate = Arc::new(Semaphore::new(0));
    let mut fixture = Fixture::new(Some(gate.clone()));
    let serving = fixture.start(fixture.runtime()).await;
    let in_flight: Vec<_> = (0..3)
        .map(|i| {
            let bus = fixture.bus.clone();
            tokio::spawn(async move { sum(&bus, i, 1).await })
        })
        .collect();
    for _ in 0..3 {
        fixture.next_call().await;
    }
    fixture.shutdown.cancel();
    // Once the runtime has unsubscribed, new calls find nobody.
    // (A probe that lands here before that is served during the drain and expires in 1 ms.)
    let probe = || call_headers(method::SUM, Some(Duration::from_millis(1)), None);
    tokio::time::timeout(PATIENCE, async {
        while sum_with(&fixture.bus, 1, 1, probe()).await.map_err(|s| s.code())
            != Err(Code::Unavailable)
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the runtime never unsubscribed");
    gate.add_permits(3);
    for (i, call) in (0..).zip(in_flight) {
        assert_eq!(call.await.unwrap(), Ok(i + 1));
    }
    tokio::time::timeout(PATIENCE, serving.stopped()).await.expect("the runtime stopped");
}

#[tokio::test]
async fn shutdown_cancels_what_outlives_the_drain_bound() {
    let gate = Arc::new(Semaphore::new(0));
    let mut fixture = Fixture::new(Some(gate));
    let options = ServeOptions { drain_timeout: Duration::from_millis(50), ..Default::default() };
    let serving = fixture.start(fixture.runtime().with_options(options)).await;
    let bus = fixture.bus.clone();
    let stuck = tokio::spawn(async move { sum(&bus, 1, 1).await });
    let ctx = fixture.next_call().await;
    fixture.shutdown.cancel();
    tokio::time::timeout(PATIENCE, serving.stopped()).await.expect("the runtime stopped");
    assert!(ctx.is_cancelled());
    let status = stuck.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.retryable(), "another instance may serve it");
}
