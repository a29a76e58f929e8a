//! Calls over one connection to a scripted gateway: pipelining, deadlines, cancellation,
//! errors, limits.

mod support;

use std::time::Duration;

use bytes::Bytes;
use gateway_client::Client;
use gateway_core::{CallOptions, Code, Status, Transport};
use gateway_protocol::{ErrorReply, Frame, MIN_MAX_FRAME_SIZE, Response, Welcome};
use support::{ECHO, Gateway, NOTIFY, WAIT, config, welcome};

/// Connects a client to a fresh scripted gateway, returning both ends.
async fn connected() -> (Client, support::Peer) {
    connected_with(welcome()).await
}

async fn connected_with(welcome: Welcome) -> (Client, support::Peer) {
    let gateway = Gateway::bind().await;
    let client = Client::connect(config(&[&gateway]));
    let (client, (peer, _)) = tokio::join!(client, gateway.accept_with(welcome));
    (client.expect("connected"), peer)
}

#[tokio::test]
async fn a_thousand_pipelined_calls_are_matched_to_replies_sent_in_reverse() {
    let (client, mut peer) = connected().await;
    let calls: Vec<_> = (0..1000u32)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let payload = Bytes::from(i.to_le_bytes().to_vec());
                client.unary(&ECHO, payload, CallOptions::default()).await
            })
        })
        .collect();

    // Every request arrives before any reply is sent: the client does not wait between calls.
    let mut requests = Vec::new();
    for _ in 0..1000 {
        requests.push(peer.request().await);
    }
    let mut ids: Vec<u32> = requests.iter().map(|r| r.request_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "ids are unique among requests in flight");
    assert!(!ids.contains(&0));
    assert!(requests.iter().all(|r| r.method_id == ECHO.id && !r.fire_and_forget));

    // Replies in reverse order, each echoing its request's payload.
    let replies = requests.iter().rev().map(|r| {
        Frame::Response(Response { request_id: r.request_id, payload: r.payload.clone() })
    });
    peer.send_all(replies).await;
    for (i, call) in calls.into_iter().enumerate() {
        let reply = call.await.unwrap().expect("answered");
        assert_eq!(reply, Bytes::from((i as u32).to_le_bytes().to_vec()), "call {i}");
    }
}

#[tokio::test]
async fn a_call_past_its_deadline_fails_and_is_cancelled_on_the_wire() {
    let (client, mut peer) = connected().await;
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            let options = CallOptions::timeout(Duration::from_millis(200));
            client.unary(&ECHO, Bytes::from_static(b"slow"), options).await
        }
    });
    let request = peer.request().await;
    assert!((100..=200).contains(&request.timeout_ms), "timeout_ms {}", request.timeout_ms);

    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(status.message().contains("test.Echo.echo"), "{status}");
    assert_eq!(peer.recv().await, Frame::Cancel { request_id: request.request_id });

    // The server's late answer is discarded, and the connection carries on.
    let late = Status::deadline_exceeded("too late");
    peer.send(error(request.request_id, late)).await;
    let next = tokio::spawn(async move {
        client.unary(&ECHO, Bytes::from_static(b"next"), CallOptions::default()).await
    });
    let request = peer.request().await;
    peer.send(Frame::Response(Response {
        request_id: request.request_id,
        payload: request.payload,
    }))
    .await;
    assert_eq!(next.await.unwrap().unwrap(), Bytes::from_static(b"next"));
}

#[tokio::test]
async fn dropping_a_calls_future_sends_cancel() {
    let (client, mut peer) = connected().await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.unary(&ECHO, Bytes::from_static(b"unwanted"), CallOptions::default()).await }
    });
    let request = peer.request().await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(peer.recv().await, Frame::Cancel { request_id: request.request_id });
}

#[tokio::test]
async fn error_frames_become_statuses_with_code_message_retryability_and_error_id() {
    let (client, mut peer) = connected().await;
    let call =
        tokio::spawn(
            async move { client.unary(&ECHO, Bytes::new(), CallOptions::default()).await },
        );
    let request = peer.request().await;
    let sent = Status::not_found("no device 7").with_error_id(0xdead_beef).with_retryable(true);
    peer.send(error(request.request_id, sent.clone())).await;
    assert_eq!(call.await.unwrap().unwrap_err(), sent);
}

#[tokio::test]
async fn a_request_over_the_servers_frame_limit_fails_before_it_is_sent() {
    let welcome = Welcome { max_frame_size: MIN_MAX_FRAME_SIZE, ..welcome() };
    let (client, mut peer) = connected_with(welcome).await;
    // 14 bytes of REQUEST header + 65,523 bytes of payload = one byte over.
    let too_big = Bytes::from(vec![0; MIN_MAX_FRAME_SIZE as usize - 13]);
    let status = client.unary(&ECHO, too_big, CallOptions::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(!status.retryable());
    assert!(status.message().contains("65537 bytes"), "{status}");

    // Nothing of it reached the server: the next frame is the next call's.
    let fits = Bytes::from(vec![1; MIN_MAX_FRAME_SIZE as usize - 14]);
    let call = tokio::spawn(async move { client.unary(&ECHO, fits, CallOptions::default()).await });
    let request = peer.request().await;
    assert_eq!(request.payload.len(), MIN_MAX_FRAME_SIZE as usize - 14);
    peer.send(Frame::Response(Response { request_id: request.request_id, payload: Bytes::new() }))
        .await;
    call.await.unwrap().unwrap();
}

#[tokio::test]
async fn calls_past_the_servers_in_flight_limit_are_refused_locally() {
    let (client, mut peer) = connected_with(Welcome { max_in_flight: 2, ..welcome() }).await;
    let pending: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(
                async move { client.unary(&ECHO, Bytes::new(), CallOptions::default()).await },
            )
        })
        .collect();
    let first = peer.request().await;
    let second = peer.request().await;
    let status = client.unary(&ECHO, Bytes::new(), CallOptions::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.retryable());

    // Answering one makes room again.
    peer.send_all(
        [first, second]
            .map(|r| Frame::Response(Response { request_id: r.request_id, payload: Bytes::new() })),
    )
    .await;
    for call in pending {
        call.await.unwrap().unwrap();
    }
    let call =
        tokio::spawn(
            async move { client.unary(&ECHO, Bytes::new(), CallOptions::default()).await },
        );
    let third = peer.request().await;
    peer.send(Frame::Response(Response { request_id: third.request_id, payload: Bytes::new() }))
        .await;
    call.await.unwrap().unwrap();
}

#[tokio::test]
async fn fire_and_forget_is_flagged_and_resolves_without_a_reply() {
    let (client, mut peer) = connected().await;
    let options = CallOptions::timeout(Duration::from_millis(1500));
    client.fire_and_forget(&NOTIFY, Bytes::from_static(b"hi"), options).await.unwrap();
    let request = peer.request().await;
    assert!(request.fire_and_forget);
    assert_eq!((request.method_id, &request.payload[..]), (NOTIFY.id, &b"hi"[..]));
    assert!((1000..=1500).contains(&request.timeout_ms), "timeout_ms {}", request.timeout_ms);
}

#[tokio::test]
async fn hello_carries_the_clients_name_token_and_limit() {
    let gateway = Gateway::bind().await;
    let mut config = config(&[&gateway]);
    config.name = "tests/1".into();
    config.token = Some(b"secret".to_vec());
    config.max_frame_size = 1 << 20;
    let (client, (_peer, hello)) =
        tokio::join!(Client::connect(config), gateway.accept_with(welcome()));
    client.unwrap();
    assert_eq!(hello.version, 1);
    assert_eq!(hello.client_name, "tests/1");
    assert_eq!(&hello.token[..], b"secret");
    assert_eq!(hello.max_frame_size, 1 << 20);
}

#[tokio::test]
async fn closing_the_client_cancels_its_calls_and_says_goodbye() {
    let (client, mut peer) = connected().await;
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.unary(&ECHO, Bytes::new(), CallOptions::default()).await }
    });
    peer.request().await;
    tokio::time::timeout(WAIT, client.close()).await.expect("closed in time");
    assert_eq!(call.await.unwrap().unwrap_err().code(), Code::Cancelled);
    let frames = peer.until_closed().await;
    assert!(matches!(frames.as_slice(), [Frame::Goaway(_)]), "{frames:?}");
    let status = client.unary(&ECHO, Bytes::new(), CallOptions::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Cancelled);
}

fn error(request_id: u32, status: Status) -> Frame {
    Frame::Error(ErrorReply { request_id, status, details: Bytes::new() })
}
