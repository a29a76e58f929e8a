//! The generated `SomeApiClient` over the network client, against a scripted gateway that
//! serves each REQUEST with the generated `SomeApiServer` (no bus, no real gateway).

mod support;

use std::sync::Arc;
use std::time::Duration;

use gateway_client::Client;
use gateway_core::{CallContext, Code, Dispatch};
use gateway_protocol::{ErrorReply, Frame, Response};
use some_api::{Calculator, RequestSubT, RequestSumT, SomeApiClient, SomeApiError, SomeApiServer};
use support::{Gateway, Peer, WAIT, config};

/// Answers every request with the dispatcher's reply, as a gateway with the service behind it
/// would; fire-and-forget requests get no reply.
async fn serve(mut peer: Peer, server: SomeApiServer<Calculator>) {
    while let Some(frame) = peer.next().await {
        let Frame::Request(request) = frame else { continue };
        let ctx = CallContext::new(request.method_id);
        let result = server.dispatch(ctx, request.payload).await;
        if request.fire_and_forget {
            continue;
        }
        let reply = match result {
            Ok(payload) => Frame::Response(Response { request_id: request.request_id, payload }),
            Err(status) => Frame::Error(ErrorReply {
                request_id: request.request_id,
                status,
                details: Default::default(),
            }),
        };
        peer.send(reply).await;
    }
}

#[tokio::test]
async fn typed_calls_of_the_generated_client_cross_the_network() {
    let gateway = Gateway::bind().await;
    let calculator = Arc::new(Calculator::default());
    let (client, peer) =
        tokio::join!(Client::connect(config(&[&gateway])), gateway.accept_handshake());
    tokio::spawn(serve(peer, SomeApiServer::from_arc(calculator.clone())));
    let api = SomeApiClient::new(client.unwrap()).with_timeout(WAIT);

    let reply = api.sum(RequestSumT { a: 40, b: 2 }).await.unwrap();
    assert_eq!(reply.get().sum(), 42);

    let status = api.sum(RequestSumT { a: i64::MAX, b: 1 }).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert_eq!(SomeApiError::of(&status), Some(SomeApiError::Overflow));
    assert!(status.message().contains("overflows"), "{status}");

    api.sub(RequestSubT { amount: 5 }).await.unwrap();
    // `sub` resolved once written; wait (bounded) for the service to run it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while calculator.total().changes < 1 {
        assert!(tokio::time::Instant::now() < deadline, "sub never reached the service");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(calculator.total().value, -5);
}
