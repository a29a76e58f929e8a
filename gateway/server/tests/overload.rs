//! Shedding under overload with memory bounded: 10,000 requests flooded at a method that never
//! answers. In a test binary of its own, so that the process's memory is this test's alone.

mod support;

use std::collections::HashMap;

use futures::StreamExt;
use gateway_core::Code;
use gateway_protocol::{Frame, FrameCodec};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;

/// How much the process's resident memory may grow while the gateway sheds the flood. The calls
/// that do start (500, the global cap) cost a few KiB each in gateway, bus and service; the
/// 9,500 shed ones must cost nothing that stays.
const RSS_GROWTH_BOUND_KIB: u64 = 16 * 1024;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_at_a_hanging_method_is_shed_at_once_with_memory_bounded() {
    const CONNECTIONS: u32 = 4;
    const PER_CONNECTION: u32 = 2_500;
    const GLOBAL_CAP: usize = 500;
    let gw = TestGateway::start(gateway::Config {
        max_in_flight_per_connection: 256,
        max_in_flight_total: GLOBAL_CAP,
        ..config()
    })
    .await;
    let before = rss_kib();

    let floods: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let addr = gw.addr;
            tokio::spawn(async move {
                let mut client = RawClient::connect(addr).await;
                client.hello().await;
                let (read, mut write) = client.framed.into_inner().into_split();
                // A PING after the flood: the gateway answers requests in the order it reads
                // them, so its PONG comes after every immediate answer to this connection.
                let mut frames: Vec<_> =
                    (1..=PER_CONNECTION).map(|id| request(id, HANG, 0, b"")).collect();
                frames.push(Frame::Ping { data: 99 });
                let bytes = encode_all(&frames);
                // Written while the replies are read below: the gateway's queue is bounded, so a
                // client that did not read would be slowed down, not buffered without limit.
                let writer = tokio::spawn(async move {
                    write.write_all(&bytes).await.unwrap();
                    write
                });
                let mut replies = FramedRead::new(read, FrameCodec::default());
                let mut codes: HashMap<Code, u32> = HashMap::new();
                loop {
                    let next = tokio::time::timeout(WAIT, replies.next()).await;
                    match next.expect("replies within the bound") {
                        Some(Ok(Frame::Error(e))) => {
                            *codes.entry(e.status.code()).or_default() += 1
                        }
                        Some(Ok(Frame::Pong { data: 99 })) => break,
                        other => panic!("unexpected {other:?}"),
                    }
                }
                (codes, writer.await.unwrap(), replies)
            })
        })
        .collect();

    let mut shed = 0;
    let mut keep = Vec::new();
    for flood in floods {
        let (codes, write, read) = flood.await.unwrap();
        assert_eq!(
            codes.keys().copied().collect::<Vec<_>>(),
            [Code::ResourceExhausted],
            "{codes:?}"
        );
        shed += codes[&Code::ResourceExhausted];
        keep.push((write, read));
    }
    let in_flight = gw.metric("gateway_requests_in_flight").await as u32;
    assert!(in_flight <= GLOBAL_CAP as u32, "{in_flight} in flight");
    let counted = gw.metric("gateway_shed_total{bound=\"connection\"}").await
        + gw.metric("gateway_shed_total{bound=\"global\"}").await;
    assert_eq!(in_flight, GLOBAL_CAP as u32, "the global cap is full");
    assert_eq!(shed, CONNECTIONS * PER_CONNECTION - in_flight, "all others shed at once");
    assert_eq!(counted as u32, shed);

    let growth = rss_kib().saturating_sub(before);
    eprintln!(
        "RSS grew by {growth} KiB for {} requests, {in_flight} in flight",
        CONNECTIONS * PER_CONNECTION
    );
    assert!(growth < RSS_GROWTH_BOUND_KIB, "RSS grew by {growth} KiB");
    drop(keep);
    gw.stop().await;
}
