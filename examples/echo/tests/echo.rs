//! `Echo` through its generated dispatcher: the reply is the request's own buffer.

use gateway_core::bytes::Bytes;
use gateway_core::{CallContext, Code, Dispatch, Message};

use echo::examples::echo::echo::method;
use echo::{BlobT, DESCRIPTOR, EchoServer, Echoer};

#[tokio::test]
async fn echo_returns_the_request_buffer_itself_without_re_encoding() {
    let request = Message::pack(&BlobT { data: Some(b"hello, gateway".to_vec()) }).into_bytes();
    let reply = EchoServer::new(Echoer)
        .dispatch(CallContext::new(method::ECHO), request.clone())
        .await
        .unwrap();
    assert_eq!(reply, request);
    // The same allocation, not an equal copy.
    assert_eq!(reply.as_ptr(), request.as_ptr());
    let blob = Message::<BlobT>::from_bytes(reply).unwrap();
    assert_eq!(blob.get().data().unwrap().bytes(), b"hello, gateway");
}

#[tokio::test]
async fn bytes_that_are_not_a_blob_are_an_invalid_argument() {
    let status = EchoServer::new(Echoer)
        .dispatch(CallContext::new(method::ECHO), Bytes::from_static(&[0xff; 3]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[test]
fn the_descriptor_names_the_idempotent_echo_method() {
    assert_eq!(DESCRIPTOR.name, "examples.echo.Echo");
    let echo = DESCRIPTOR.method(method::ECHO).unwrap();
    assert_eq!(echo.name, "examples.echo.Echo.echo");
    assert!(echo.idempotent && !echo.writes && !echo.is_fire_and_forget());
}
