//! The admin port over real HTTP/1.1: keep-alive, and the limits that keep a misbehaving client
//! from hurting the gateway (request heads, connections at once, idle connections).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
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
async fn past_the_cap_a_new_connection_takes_the_oldest_idle_ones_slot() {
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
    // The 33rd is served; the oldest idle connection was closed for it, and only that one.
    let mut over = TcpStream::connect(gw.admin).await.unwrap();
    over.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    assert_eq!(response(&mut over).await.0, 200);
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, idle[0].read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "the oldest is closed: {read:?}");
    idle[1].write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let (status, _) = response(&mut idle[1]).await;
    assert!(status == 200 || status == 503, "the second oldest still answers: {status}");
    // Idle ones are closed when the head timeout (5 s) passes.
    let opened = Instant::now();
    for stream in &mut idle[2..] {
        let read = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "an idle connection is closed: {read:?}");
    }
    assert!(opened.elapsed() >= Duration::from_secs(3), "not before the timeout");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_the_admin_port_does_not_lock_out_health_checks() {
    let gw = TestGateway::start(config()).await;
    // 32 connections (every slot) each send a request head one byte at a time and never finish
    // it, for as long as the test lasts; each one closed is opened again.
    let stop = tokio_util::sync::CancellationToken::new();
    let (reopened, trickling) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let mut attackers = Vec::new();
    for _ in 0..32 {
        let (addr, stop) = (gw.admin, stop.clone());
        let (reopened, trickling) = (reopened.clone(), trickling.clone());
        attackers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let Ok(mut stream) = TcpStream::connect(addr).await else { continue };
                trickling.fetch_add(1, Ordering::Relaxed);
                let head = b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Slow: ";
                for byte in head.chunks(1).cycle() {
                    let sent = tokio::select! {
                        () = stop.cancelled() => return,
                        sent = stream.write_all(byte) => sent,
                    };
                    if sent.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                reopened.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // Every slot is held by an attacker before the checks start.
    let deadline = Instant::now() + WAIT;
    while trickling.load(Ordering::Relaxed) < 32 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(trickling.load(Ordering::Relaxed) >= 32, "the attackers did not all connect");
    // Every health check is answered while they trickle, on a new connection each time.
    for _ in 0..20 {
        let (status, body) = gw.admin_get("/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
    }
    // Each check took an attacker's slot: the attackers find out at their next writes.
    let deadline = Instant::now() + WAIT;
    while reopened.load(Ordering::Relaxed) < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    for attacker in attackers {
        attacker.await.unwrap();
    }
    let reopened = reopened.load(Ordering::Relaxed);
    assert!(reopened >= 20, "the checks did not take attackers' slots: {reopened} reopened");
    gw.stop().await;
}
