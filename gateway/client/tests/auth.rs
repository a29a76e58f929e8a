//! Credentials over a scripted gateway: tokens in HELLO, from a provider on every connection,
//! refreshed with AUTH before they expire, and refused.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gateway_client::{Client, ClientConfig, ConnectError, TokenProvider};
use gateway_core::{CallOptions, Status, Transport};
use gateway_protocol::{Auth, ErrorReply, Frame, Goaway, GoawayReason, Response, Welcome};
use support::{ECHO, Gateway, Peer, config, welcome};
use tokio::time::Instant;

/// A provider handing out `token-1`, `token-2`... and the count of tokens handed out.
fn numbered_tokens() -> (TokenProvider, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let provider = TokenProvider::new({
        let count = count.clone();
        move || {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok(Bytes::from(format!("token-{n}"))) }
        }
    });
    (provider, count)
}

fn with_provider(gateway: &Gateway, provider: TokenProvider) -> ClientConfig {
    let mut config = config(&[gateway]);
    config.token_provider = Some(provider);
    config
}

async fn auth(peer: &mut Peer) -> Auth {
    match peer.recv().await {
        Frame::Auth(auth) => auth,
        other => panic!("expected AUTH, got {other:?}"),
    }
}

/// A call the peer answers: the connection is up and serving.
async fn round_trip(client: &Client, peer: &mut Peer) {
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.unary(&ECHO, Bytes::new(), CallOptions::default()).await }
    });
    let request = peer.request().await;
    peer.send(Frame::Response(Response { request_id: request.request_id, payload: Bytes::new() }))
        .await;
    call.await.unwrap().expect("answered");
}

#[tokio::test]
async fn every_connection_presents_a_fresh_token_from_the_provider() {
    let gateway = Gateway::bind().await;
    let (provider, _) = numbered_tokens();
    let (client, (mut peer, hello)) = tokio::join!(
        Client::connect(with_provider(&gateway, provider)),
        gateway.accept_with(welcome())
    );
    let client = client.unwrap();
    assert_eq!(&hello.token[..], b"token-1");

    // The token expired: the gateway says so, and the client comes back with a new one.
    peer.send(Frame::Goaway(Goaway::new(GoawayReason::TOKEN_EXPIRED, "the token expired"))).await;
    let (mut peer, hello) = gateway.accept_with(welcome()).await;
    assert_eq!(&hello.token[..], b"token-2");
    round_trip(&client, &mut peer).await;
}

/// Credentials granted for 4 s are refreshed between 75 and 85 % of that, with the provider's
/// token, and again after each AUTH_OK. The clock is paused, so the seconds cost nothing.
#[tokio::test(start_paused = true)]
async fn the_token_is_refreshed_before_it_expires() {
    let gateway = Gateway::bind().await;
    let (provider, _) = numbered_tokens();
    let terms = Welcome { auth_expires_in_ms: 4000, ..welcome() };
    let (client, (mut peer, _)) = tokio::join!(
        Client::connect(with_provider(&gateway, provider)),
        gateway.accept_with(terms)
    );
    let _client = client.unwrap();

    for expected in ["token-2", "token-3"] {
        let granted = Instant::now();
        let request = auth(&mut peer).await;
        let after = granted.elapsed();
        assert!(
            (Duration::from_millis(3000)..=Duration::from_millis(3400)).contains(&after),
            "refreshed after {after:?}"
        );
        assert_eq!(&request.token[..], expected.as_bytes());
        assert_ne!(request.request_id, 0);
        peer.send(Frame::AuthOk { request_id: request.request_id, expires_in_ms: 4000 }).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_refresh_is_tried_again_before_the_expiry() {
    let gateway = Gateway::bind().await;
    let (provider, _) = numbered_tokens();
    let terms = Welcome { auth_expires_in_ms: 4000, ..welcome() };
    let (client, (mut peer, _)) = tokio::join!(
        Client::connect(with_provider(&gateway, provider)),
        gateway.accept_with(terms)
    );
    let _client = client.unwrap();
    let granted = Instant::now();

    let first = auth(&mut peer).await;
    peer.send(Frame::Error(ErrorReply {
        request_id: first.request_id,
        status: Status::unauthenticated("signature invalid"),
        details: Bytes::new(),
    }))
    .await;
    let second = auth(&mut peer).await;
    assert_eq!(&second.token[..], b"token-3");
    assert!(granted.elapsed() < Duration::from_millis(4000), "{:?}", granted.elapsed());
}

#[tokio::test]
async fn refresh_token_presents_a_token_and_reports_a_refusal() {
    let gateway = Gateway::bind().await;
    let mut config = config(&[&gateway]);
    config.token = Some(b"first".to_vec());
    let (client, (mut peer, hello)) =
        tokio::join!(Client::connect(config), gateway.accept_with(welcome()));
    let client = client.unwrap();
    assert_eq!(&hello.token[..], b"first");

    let refresh = tokio::spawn({
        let client = client.clone();
        async move { client.refresh_token(Bytes::from_static(b"second")).await }
    });
    let request = auth(&mut peer).await;
    assert_eq!(&request.token[..], b"second");
    peer.send(Frame::AuthOk { request_id: request.request_id, expires_in_ms: 0 }).await;
    refresh.await.unwrap().expect("accepted");

    let refresh = tokio::spawn({
        let client = client.clone();
        async move { client.refresh_token(&b"forged"[..]).await }
    });
    let request = auth(&mut peer).await;
    let refusal = Status::unauthenticated("signature invalid");
    peer.send(Frame::Error(ErrorReply {
        request_id: request.request_id,
        status: refusal.clone(),
        details: Bytes::new(),
    }))
    .await;
    assert_eq!(refresh.await.unwrap().unwrap_err(), refusal);
    // The connection stays up with the accepted token.
    round_trip(&client, &mut peer).await;

    // The next connection presents the last accepted token, not the refused one.
    drop(peer);
    let (mut peer, hello) = gateway.accept_with(welcome()).await;
    assert_eq!(&hello.token[..], b"second");
    round_trip(&client, &mut peer).await;
}

#[tokio::test]
async fn connect_fails_naming_the_reason_when_the_token_is_refused_or_missing() {
    let gateway = Gateway::bind().await;
    let (provider, _) = numbered_tokens();
    let refuse = async {
        let mut peer = gateway.accept().await;
        let Frame::Hello(hello) = peer.recv().await else { panic!("expected HELLO") };
        assert_eq!(&hello.token[..], b"token-1");
        peer.send(Frame::Goaway(Goaway::new(GoawayReason::UNAUTHENTICATED, "token expired"))).await;
    };
    let (result, ()) = tokio::join!(Client::connect(with_provider(&gateway, provider)), refuse);
    let err = result.unwrap_err();
    assert!(matches!(err, ConnectError::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains("unauthenticated: token expired"), "{err}");

    // A provider that fails: no connection is even opened.
    let failing = TokenProvider::new(|| async { Err("the identity provider is down".to_owned()) });
    let err = Client::connect(with_provider(&gateway, failing)).await.unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable(_)), "{err:?}");
    assert!(err.to_string().contains("the identity provider is down"), "{err}");
    assert!(gateway.stays_unvisited(Duration::from_millis(100)).await);
}
