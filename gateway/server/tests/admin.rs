//! The admin port over real HTTP/1.1: keep-alive, and the limits that keep a misbehaving client
//! from hurting the gateway (request heads, connections at once, idle connections).

mod support;

use std::time::{Duration, Instant};

use support::{TestGateway, WAIT, config};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Reads one response (head and `Content-Length` body) from `stream`: status and body.
async fn response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return (head[9..12].parse().unwrap(), body[..length].to_owned());
            }
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed before a whole response: {text}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_share_a_kept_alive_connection_and_oversized_heads_get_431() {
    let gw = TestGateway::start(config()).await;
    let mut stream = TcpStream::connect(gw.admin).await.unwrap();
    for path in ["/healthz", "/readyz", "/switches"] {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (status, _) = response(&mut stream).await;
        assert_eq!(status, 200, "{path} on the same connection");
    }
    let mut big = TcpStream::connect(gw.admin).await.unwrap();
    let padding = "x".repeat(9000);
    big.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: {padding}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let (status, _) = response(&mut big).await;
    assert_eq!(status, 431);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_idle_ones_freed() {
    let gw = TestGateway::start(config()).await;
    // 32 kept-alive connections hold every slot: each is answered once (so the gateway holds
    // it), then sends nothing more.
    let mut idle = Vec::new();
    for _ in 0..32 {
        let mut stream = TcpStream::connect(gw.admin).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        assert_eq!(response(&mut stream).await.0, 200);
        idle.push(stream);
    }
    let opened = Instant::now();
    // The 33rd finds no slot and is closed unanswered.
    let mut over = TcpStream::connect(gw.admin).await.unwrap();
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, over.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer: {read:?}");
    // The idle ones are closed when the head timeout (5 s) passes, and the port serves again.
    for stream in &mut idle {
        let read = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "an idle connection is closed: {read:?}");
    }
    assert!(opened.elapsed() >= Duration::from_secs(4), "not before the timeout");
    let (status, _) = gw.admin_get("/healthz").await;
    assert_eq!(status, 200);
    gw.stop().await;
}
