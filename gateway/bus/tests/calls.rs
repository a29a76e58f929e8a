//! Typed calls (`Bus::call`) on the in-process bus: the direct road to service runtimes in the
//! same process, and the message road to anything else, with the contract's semantics on both
//! (`docs/bus.md`): queue groups, no responders, shedding, deadlines told to the service,
//! cancellation by dropping the call, the drain's abort.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_bus::contract::header;
use gateway_bus::{Bus, CallId, CallMeta, LocalBus, MethodRoute, ServeOptions, ServiceRuntime};
use gateway_core::{
    BoxFuture, CallContext, Code, Dispatch, Identity, Message, ServiceDesc, Status,
};
use some_api::examples::some_api::some_api::method;
use some_api::{Calculator, DESCRIPTOR, ReplySumT, RequestSumT, SomeApiServer};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Every wait in these tests is bounded by this.
const PATIENCE: Duration = Duration::from_secs(10);

/// `SomeApi`, reporting each call's context and (with a gate) holding each call until the test
/// lets it through; counts the calls it served.
struct Probe {
    inner: SomeApiServer<Calculator>,
    seen: mpsc::UnboundedSender<CallContext>,
    gate: Arc<Semaphore>,
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
            let _permit = gate.acquire().await.map_err(|_| Status::internal("gate closed"))?;
            call.await
        })
    }
}

struct Instance {
    probe: Arc<Probe>,
    seen: mpsc::UnboundedReceiver<CallContext>,
}

/// Starts a `SomeApi` instance on `bus`; the gate starts open (`open` permits) or closed.
async fn instance(
    bus: &LocalBus,
    open: usize,
    options: ServeOptions,
    stop: &CancellationToken,
) -> (Instance, gateway_bus::Serving) {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe {
        inner: SomeApiServer::new(Calculator::default()),
        seen: seen_tx,
        gate: Arc::new(Semaphore::new(open)),
        served: AtomicUsize::new(0),
    });
    let runtime = ServiceRuntime::new(Arc::new(bus.clone()), probe.clone()).with_options(options);
    let serving = runtime.start(stop.clone()).await.expect("subscribed");
    (Instance { probe, seen }, serving)
}

fn route() -> MethodRoute {
    MethodRoute::new(&DESCRIPTOR, DESCRIPTOR.method(method::SUM).expect("sum")).unwrap()
}

fn meta(serial: u64) -> CallMeta {
    CallMeta {
        method_id: method::SUM,
        deadline: Some(Instant::now() + Duration::from_secs(5)),
        call_id: Some(CallId { instance: 0xfeed, serial }),
        identity: Some(Arc::new(Identity { subject: "user-1".into(), claims: Default::default() })),
        received: None,
    }
}

fn payload(a: i64, b: i64) -> Bytes {
    Message::pack(&RequestSumT { a, b }).into_bytes()
}

fn sum_of(answer: gateway_bus::Answer) -> Result<i64, Status> {
    let bytes = answer.map_err(|f| f.status)?;
    Ok(Message::<ReplySumT>::from_bytes(bytes).expect("a valid reply").get().sum())
}

#[tokio::test]
async fn a_call_takes_the_direct_road_and_the_handler_sees_its_metadata() {
    let bus = LocalBus::new();
    let stop = CancellationToken::new();
    let (mut one, _serving) = instance(&bus, 100, ServeOptions::default(), &stop).await;
    let call = bus.call(&route(), meta(1), payload(40, 2));
    assert!(call.is_direct(), "a lone runtime in this process is called directly");
    assert_eq!(sum_of(call.await), Ok(42));
    let ctx = one.seen.recv().await.unwrap();
    assert_eq!(ctx.identity().map(|i| i.subject.as_str()), Some("user-1"));
    let left = ctx.remaining().expect("a deadline");
    assert!(left > Duration::from_secs(4) && left <= Duration::from_secs(5), "{left:?}");
    assert!(ctx.is_cancelled(), "the call is over: its signal fired");
    assert_eq!(bus.stats().delivered, 1);
}

#[tokio::test]
async fn nobody_serving_is_unavailable_at_once() {
    let bus = LocalBus::new();
    let failure = bus.call(&route(), meta(1), payload(1, 1)).await.unwrap_err();
    assert_eq!(failure.status.code(), Code::Unavailable);
    assert!(failure.status.retryable());
}

#[tokio::test]
async fn instances_of_a_service_share_its_calls_and_a_full_one_passes_them_on() {
    let bus = LocalBus::new();
    let stop = CancellationToken::new();
    let options = ServeOptions { concurrency: 1, ..ServeOptions::default() };
    let (a, _sa) = instance(&bus, 1000, options.clone(), &stop).await;
    let (b, _sb) = instance(&bus, 1000, options, &stop).await;
    for i in 0..10 {
        assert_eq!(
            sum_of(bus.call(&route(), meta(i), payload(i as i64, 1)).await),
            Ok(i as i64 + 1)
        );
    }
    let (na, nb) = (a.probe.served.load(Ordering::Relaxed), b.probe.served.load(Ordering::Relaxed));
    assert_eq!((na + nb, na), (10, 5), "round-robin");

    // Held calls fill both (concurrency 1 each); a third finds no room anywhere.
    a.probe.gate.forget_permits(1000);
    b.probe.gate.forget_permits(1000);
    let first = bus.call(&route(), meta(20), payload(1, 1));
    let second = bus.call(&route(), meta(21), payload(1, 1));
    let held = tokio::spawn(async move { (sum_of(first.await), sum_of(second.await)) });
    tokio::task::yield_now().await;
    let shed = bus.call(&route(), meta(22), payload(1, 1)).await.unwrap_err();
    assert_eq!(shed.status.code(), Code::ResourceExhausted);
    assert!(shed.status.retryable());
    a.probe.gate.add_permits(1);
    b.probe.gate.add_permits(1);
    assert_eq!(tokio::time::timeout(PATIENCE, held).await.unwrap().unwrap(), (Ok(2), Ok(2)));
}

#[tokio::test]
async fn dropping_a_call_cancels_its_handler() {
    let bus = LocalBus::new();
    let stop = CancellationToken::new();
    let (mut one, _serving) = instance(&bus, 0, ServeOptions::default(), &stop).await;
    let mut call = bus.call(&route(), meta(1), payload(1, 1));
    // Polled once, as a caller does: the handler waits at its gate.
    assert!(futures::poll!(&mut call).is_pending());
    let ctx = one.seen.recv().await.unwrap();
    assert!(!ctx.is_cancelled());
    drop(call);
    assert!(ctx.is_cancelled(), "the handler's signal fires when its caller drops the call");
}

#[tokio::test]
async fn calls_left_when_the_drain_times_out_are_answered_unavailable() {
    let bus = LocalBus::new();
    let stop = CancellationToken::new();
    let options =
        ServeOptions { drain_timeout: Duration::from_millis(50), ..ServeOptions::default() };
    let (mut one, serving) = instance(&bus, 0, options, &stop).await;
    let call = bus.call(&route(), meta(1), payload(1, 1));
    let waiting = tokio::spawn(call);
    let ctx = one.seen.recv().await.unwrap();
    stop.cancel();
    let failure = tokio::time::timeout(PATIENCE, waiting).await.unwrap().unwrap().unwrap_err();
    assert_eq!(failure.status.code(), Code::Unavailable);
    assert!(ctx.is_cancelled());
    tokio::time::timeout(PATIENCE, serving.stopped()).await.expect("the runtime stopped");
    let after = bus.call(&route(), meta(2), payload(1, 1)).await.unwrap_err();
    assert_eq!(after.status.code(), Code::Unavailable, "unsubscribed: nobody serves it");
}

#[tokio::test]
async fn a_plain_subscriber_gets_the_contract_headers_and_the_cancellation() {
    let bus = LocalBus::new();
    let mut calls = bus.subscribe("rpc.examples.some_api.SomeApi.*", Some("g")).await.unwrap();
    let mut cancels = bus.subscribe("cancel.examples.some_api.SomeApi", None).await.unwrap();
    let mut call = bus.call(&route(), meta(7), payload(1, 1));
    assert!(!call.is_direct(), "not a runtime: the call travels as a message");
    assert!(futures::poll!(&mut call).is_pending());
    let message = tokio::time::timeout(PATIENCE, calls.next()).await.unwrap().unwrap();
    assert_eq!(message.headers.get(header::METHOD), Some(method::SUM.to_string().as_str()));
    assert_eq!(message.headers.get(header::CALL_ID), Some("000000000000feed-7"));
    assert_eq!(message.headers.get(header::TRACE_ID), Some("000000000000feed0000000000000007"));
    assert_eq!(message.headers.get(header::IDENTITY), Some("user-1"));
    let ms: u64 = message.headers.get(header::TIMEOUT_MS).unwrap().parse().unwrap();
    assert!((4_000..=5_000).contains(&ms), "{ms}");
    assert!(message.reply.is_some());
    drop(call);
    let cancel = tokio::time::timeout(PATIENCE, cancels.next()).await.unwrap().unwrap();
    assert_eq!(cancel.headers.get(header::CALL_ID), Some("000000000000feed-7"));

    // An answer comes back as the call's answer, a status as its failure.
    let call = bus.call(&route(), meta(8), payload(1, 1));
    let message = tokio::time::timeout(PATIENCE, calls.next()).await.unwrap().unwrap();
    let status = Status::not_found("no such sum").with_error_id(9);
    let reply = message.reply.unwrap();
    bus.publish(&reply, gateway_bus::contract::status_headers(&status), Bytes::from_static(b"d"))
        .await
        .unwrap();
    let failure = tokio::time::timeout(PATIENCE, call).await.unwrap().unwrap_err();
    assert_eq!((failure.status, failure.details), (status, Bytes::from_static(b"d")));
    // No cancellation for a call that was answered.
    assert!(tokio::time::timeout(Duration::from_millis(50), cancels.next()).await.is_err());
}

#[tokio::test]
async fn a_fire_and_forget_call_is_served_and_never_answered() {
    let bus = LocalBus::new();
    let stop = CancellationToken::new();
    let (mut one, _serving) = instance(&bus, 100, ServeOptions::default(), &stop).await;
    let mut replies = bus.subscribe("_INBOX.>", None).await.unwrap();
    bus.send(&route(), meta(1), payload(2, 3)).await.unwrap();
    let ctx = tokio::time::timeout(PATIENCE, one.seen.recv()).await.unwrap().unwrap();
    assert_eq!(ctx.method_id(), method::SUM);
    assert!(tokio::time::timeout(Duration::from_millis(50), replies.next()).await.is_err());
}

#[tokio::test]
async fn a_cached_route_follows_the_instances_as_they_come_and_go() {
    let bus = LocalBus::new();
    let mut cache = gateway_bus::RouteCache::default();
    let missing = bus.call_cached(&route(), &mut cache, meta(1), payload(1, 1)).await;
    assert_eq!(missing.unwrap_err().status.code(), Code::Unavailable);

    let first_stop = CancellationToken::new();
    let (first, serving) = instance(&bus, 100, ServeOptions::default(), &first_stop).await;
    for i in 0..3 {
        let call = bus.call_cached(&route(), &mut cache, meta(i), payload(2, 3));
        assert!(call.is_direct());
        assert_eq!(sum_of(call.await), Ok(5));
    }
    assert_eq!(first.probe.served.load(Ordering::Relaxed), 3);

    // The instance goes and another comes: the cache does not send calls to the one gone.
    first_stop.cancel();
    serving.stopped().await;
    let second_stop = CancellationToken::new();
    let (second, _serving) = instance(&bus, 100, ServeOptions::default(), &second_stop).await;
    assert_eq!(sum_of(bus.call_cached(&route(), &mut cache, meta(9), payload(1, 1)).await), Ok(2));
    assert_eq!(first.probe.served.load(Ordering::Relaxed), 3);
    assert_eq!(second.probe.served.load(Ordering::Relaxed), 1);
}
