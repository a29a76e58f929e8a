//! `SomeApi` end to end through generated stubs and the in-memory transport: typed client →
//! `LocalTransport` → generated dispatcher → `Calculator` → and back.

use std::sync::Arc;
use std::time::Duration;

use gateway_core::bytes::Bytes;
use gateway_core::{CallContext, Code, Dispatch, LocalTransport};
use some_api::{
    Calculator, DESCRIPTOR, RequestSubT, RequestSumT, SomeApiClient, SomeApiError, SomeApiServer,
};

fn client() -> (Arc<Calculator>, SomeApiClient<LocalTransport>) {
    let calculator = Arc::new(Calculator::default());
    let server = SomeApiServer::from_arc(calculator.clone());
    (calculator, SomeApiClient::new(LocalTransport::new(Arc::new(server))))
}

#[tokio::test]
async fn sum_answers_through_the_typed_client() {
    let (_, client) = client();
    let reply = client.sum(RequestSumT { a: 40, b: 2 }).await.unwrap();
    assert_eq!(reply.get().sum(), 42);
    assert_eq!(reply.unpack().sum, 42);
}

#[tokio::test]
async fn a_declared_error_reaches_the_caller_typed() {
    let (_, client) = client();
    let status = client.sum(RequestSumT { a: i64::MAX, b: 1 }).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert_eq!(SomeApiError::of(&status), Some(SomeApiError::Overflow));
    assert_eq!(status.error_id(), some_api::examples::some_api::some_api::error::OVERFLOW);
    assert!(status.message().contains("overflows"), "{status}");
}

#[tokio::test]
async fn sub_is_fire_and_forget_and_still_reaches_the_service() {
    let (calculator, client) = client();
    client.sub(RequestSubT { amount: 5 }).await.unwrap();
    client.sub(RequestSubT { amount: 7 }).await.unwrap();
    // The calls returned before the service ran; wait (bounded) for it to catch up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while calculator.total().changes < 2 {
        assert!(tokio::time::Instant::now() < deadline, "sub never reached the service");
        tokio::task::yield_now().await;
    }
    assert_eq!(calculator.total().value, -12);
}

#[tokio::test]
async fn the_dispatcher_rejects_bytes_that_do_not_verify_and_unknown_methods() {
    let server = SomeApiServer::new(Calculator::default());
    let sum = DESCRIPTOR.methods.iter().find(|m| m.name.ends_with(".sum")).unwrap();
    let garbage = Bytes::from_static(&[0xff; 3]);
    let status = server.dispatch(CallContext::new(sum.id), garbage).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("examples.some_api.RequestSum"), "{status}");

    let status = server.dispatch(CallContext::new(12345), Bytes::new()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

#[test]
fn the_descriptor_carries_ids_policies_and_errors() {
    use some_api::examples::some_api::some_api::{error, method, topic};
    assert_eq!(DESCRIPTOR.name, "examples.some_api.SomeApi");
    let sum = DESCRIPTOR.method(method::SUM).unwrap();
    assert_eq!(sum.name, "examples.some_api.SomeApi.sum");
    assert_eq!(sum.id, fnv1a("examples.some_api.SomeApi.sum"));
    assert!(sum.idempotent && !sum.writes && !sum.is_fire_and_forget());
    let sub = DESCRIPTOR.method(method::SUB).unwrap();
    assert!(sub.writes && sub.is_fire_and_forget());
    let topic = &DESCRIPTOR.topics[0];
    assert_eq!((topic.id, topic.name), (topic::PUB, "examples.some_api.SomeApi.pub"));
    assert_eq!(topic.on_lag, gateway_core::LagPolicy::KeepLatest);
    assert!(topic.retain);
    assert_eq!(DESCRIPTOR.errors[0].id, error::OVERFLOW);
    assert_eq!(DESCRIPTOR.errors[0].code, Code::OutOfRange);
}

/// FNV-1a 32, written out again here so the test does not trust the generator's own hash.
fn fnv1a(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}
