//! TLS on the client listeners (`tls_cert`, `tls_key`), with a CA and certificates made for the
//! test: the Rust client over `tls://`, a WebSocket client over `wss://`, a wrong CA and an
//! expired certificate refused with errors that say so, a plaintext client turned away, and the
//! certificate replaced on disk while connections stay up.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt as _, StreamExt as _};
use gateway_client::{Client, ClientConfig, ConnectError};
use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, Frame, Hello, VERSION};
use gateway_testkit::pki::{TestCa, TestCert};
use some_api::{RequestSumT, SomeApiClient};
use support::{ECHO, TestGateway, WAIT, config, request};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// A gateway with TLS from `cert`, its files in `dir`.
async fn gateway(dir: &Path, cert: &TestCert) -> TestGateway {
    let (cert, key) = cert.write(dir, "gateway");
    let mut config = config();
    config.tls_cert = Some(cert);
    config.tls_key = Some(key);
    TestGateway::start(config).await
}

fn client_config(gateway: &TestGateway, ca: &TestCa) -> ClientConfig {
    let mut config = ClientConfig::new([format!("tls://localhost:{}", gateway.addr.port())]);
    config.tls_ca = Some(ca.cert_pem().into_bytes());
    config.connect_timeout = WAIT;
    config
}

async fn sum(client: &Client, a: i64, b: i64) -> i64 {
    let calculator = SomeApiClient::new(client.clone());
    calculator.sum(RequestSumT { a, b }).await.expect("a sum over TLS").get().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_calls_over_tls_with_a_ca_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("gateway test CA");
    let gateway = gateway(dir.path(), &ca.issue(&["localhost", "127.0.0.1"])).await;
    let client = Client::connect(client_config(&gateway, &ca)).await.expect("a TLS connection");
    assert_eq!(sum(&client, 40, 2).await, 42);
    // Many calls pipelined at once: replies are flushed out of TLS as they are on TCP.
    let calls = (0..200).map(|i| {
        let client = client.clone();
        async move { sum(&client, i, i).await }
    });
    let sums = futures::future::join_all(calls).await;
    assert_eq!(sums, (0..200).map(|i| 2 * i).collect::<Vec<_>>());
    // By IP address too: the certificate names 127.0.0.1.
    let mut by_ip = client_config(&gateway, &ca);
    by_ip.endpoints = vec![format!("tls://127.0.0.1:{}", gateway.addr.port())];
    let client = Client::connect(by_ip).await.expect("a TLS connection by IP address");
    assert_eq!(sum(&client, 1, 2).await, 3);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_calls_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("gateway test CA");
    let gateway = gateway(dir.path(), &ca.issue(&["localhost"])).await;
    let ws_port = gateway.ws.unwrap().port();
    let tcp = TcpStream::connect(("127.0.0.1", ws_port)).await.unwrap();
    let tls = connector(&ca).connect("localhost".try_into().unwrap(), tcp).await.unwrap();
    let upgrade = format!("wss://localhost:{ws_port}/").into_client_request().unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(upgrade, tls).await.expect("the upgrade");

    let hello = Frame::Hello(Hello {
        capabilities: 0,
        version: VERSION,
        max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        client_name: "wss-test".into(),
        token: Bytes::new(),
    });
    for frame in [hello, request(1, ECHO, 5000, b"over wss")] {
        let mut message = BytesMut::new();
        frame.encode_message(&mut message, DEFAULT_MAX_FRAME_SIZE).unwrap();
        ws.send(Message::Binary(message.freeze())).await.unwrap();
    }
    let mut frames = Vec::new();
    while frames.len() < 2 {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap() {
            Message::Binary(bytes) => {
                frames.push(gateway_protocol::decode_message(bytes).unwrap().unwrap());
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
    assert!(matches!(frames[0], Frame::Welcome(_)), "{:?}", frames[0]);
    match &frames[1] {
        Frame::Response(response) => assert_eq!(&response.payload[..], b"over wss"),
        other => panic!("expected the echo's RESPONSE, got {other:?}"),
    }
    gateway.stop().await;
}

fn connector(ca: &TestCa) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.cert_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Connecting fails, and the failure for the one endpoint says `words`.
async fn refused(config: ClientConfig, words: &[&str]) {
    let err = Client::connect(config).await.expect_err("refused");
    let ConnectError::Unreachable(failures) = &err else { panic!("unexpected {err}") };
    let why = &failures[0].1;
    for word in words {
        assert!(why.contains(word), "`{word}` not in: {why}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_an_expired_certificate_and_plaintext_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("gateway test CA");
    let gateway = gateway(dir.path(), &ca.issue(&["localhost"])).await;
    let stranger = TestCa::new("another CA");
    refused(client_config(&gateway, &stranger), &["TLS handshake failed", "UnknownIssuer"]).await;
    // The name is checked too.
    let mut by_ip = client_config(&gateway, &ca);
    by_ip.endpoints = vec![format!("tls://127.0.0.1:{}", gateway.addr.port())];
    refused(by_ip, &["TLS handshake failed", "certificate not valid for name"]).await;

    // A plaintext client on the TLS port: its HELLO is no TLS handshake; the gateway closes.
    let mut plain = client_config(&gateway, &ca);
    plain.endpoints = vec![gateway.addr.to_string()];
    refused(plain, &[]).await;
    // Each of the three failed handshakes is counted (the clients that refused the certificate
    // sent an alert; the plaintext one sent no ClientHello). A client that refused the
    // certificate is done before the gateway reads its alert: the count may lag a moment.
    let counted = "gateway_tls_handshakes_failed_total 3";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = gateway.admin_get("/metrics").await;
        if metrics.contains(counted) {
            break;
        }
        assert!(Instant::now() < deadline, "no `{counted}` in {metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gateway.stop().await;

    let expired = self::gateway(dir.path(), &ca.issue_expired(&["localhost"])).await;
    refused(client_config(&expired, &ca), &["TLS handshake failed", "expired"]).await;
    expired.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_certificate_on_disk_is_used_for_new_connections_while_old_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let first = TestCa::new("first CA");
    let gateway = gateway(dir.path(), &first.issue(&["localhost"])).await;
    let old = Client::connect(client_config(&gateway, &first)).await.unwrap();
    assert_eq!(sum(&old, 1, 1).await, 2);

    // A half-written pair (the certificate of a new key, the old key) is not taken.
    let second = TestCa::new("second CA");
    let next = second.issue(&["localhost"]);
    std::fs::write(dir.path().join("gateway.pem"), &next.chain_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let still = Client::connect(client_config(&gateway, &first)).await;
    assert!(still.is_ok(), "the previous certificate stays in use: {:?}", still.err());

    // Once the key follows, new connections get the new certificate within the poll interval.
    std::fs::write(dir.path().join("gateway-key.pem"), &next.key_pem).unwrap();
    let started = Instant::now();
    let new = loop {
        if let Ok(client) = Client::connect(client_config(&gateway, &second)).await {
            break client;
        }
        assert!(started.elapsed() < WAIT, "the new certificate was not taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sum(&new, 2, 2).await, 4);
    refused(client_config(&gateway, &first), &["UnknownIssuer"]).await;
    // The connection made before the change is untouched.
    assert_eq!(sum(&old, 3, 3).await, 6);
    gateway.stop().await;
}
