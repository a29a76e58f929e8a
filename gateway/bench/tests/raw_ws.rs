//! The raw WebSocket echo on a free port, driven by a tokio-tungstenite client.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use gateway_bench::raw_ws_echo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn binary_messages_come_back_unchanged_and_in_order_and_text_is_ignored() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(raw_ws_echo::serve(listener, shutdown.clone()));

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.unwrap();
    // Pipelined, of every size from empty to 1 MiB, with a text message among them.
    let sizes = [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20];
    for (i, &size) in sizes.iter().enumerate() {
        let payload: Vec<u8> = (0..size).map(|b| (b + i) as u8).collect();
        ws.feed(Message::Binary(payload.into())).await.unwrap();
        if i == 2 {
            ws.feed(Message::text("not echoed")).await.unwrap();
        }
    }
    ws.flush().await.unwrap();
    for (i, &size) in sizes.iter().enumerate() {
        let message = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        let expected: Vec<u8> = (0..size).map(|b| (b + i) as u8).collect();
        assert_eq!(message, Message::Binary(expected.into()), "message {i}");
    }
    ws.close(None).await.unwrap();
    let end = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(matches!(end, Some(Ok(Message::Close(_))) | None), "{end:?}");

    shutdown.cancel();
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap().unwrap();
}
