//! The WebSocket baseline: a raw WebSocket echo, the limit of this transport with zero work per
//! frame (the figure a WebSocket client's benchmark, such as the JavaScript client's, compares
//! the gateway's WebSocket endpoint against).
//!
//! It upgrades every connection (tokio-tungstenite, any origin) and sends each binary message
//! back unchanged, without parsing it. Like the gateway it coalesces writes: it takes every
//! message already received, queues their echoes, and flushes them together. Text messages are
//! ignored; pings are answered by tungstenite.

use std::io;

use futures::{FutureExt, SinkExt, StreamExt};
use gateway_protocol::DEFAULT_MAX_FRAME_SIZE;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

/// Accepts connections on `listener` and echoes their binary messages until `shutdown` is
/// cancelled. Connections run in their own tasks and end when their peer closes.
///
/// # Errors
///
/// The listener failing to accept.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> io::Result<()> {
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        // A connection's failure (typically the load generator resetting it at the end of a run)
        // concerns only that connection.
        tokio::spawn(async move {
            let _ = echo(stream).await;
        });
    }
}

/// Echoes one connection's binary messages until it closes.
async fn echo(stream: TcpStream) -> Result<(), tungstenite::Error> {
    stream.set_nodelay(true)?;
    // The protocol's default maximum frame size bounds a message, as in the gateway.
    let max = DEFAULT_MAX_FRAME_SIZE as usize;
    let config = WebSocketConfig::default().max_message_size(Some(max)).max_frame_size(Some(max));
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    while let Some(message) = ws.next().await {
        let mut message = Some(message?);
        // Every message already here goes back in one flush.
        while let Some(m) = message.take() {
            if let Message::Binary(bytes) = m {
                ws.feed(Message::Binary(bytes)).await?;
            }
            if let Some(Some(next)) = ws.next().now_or_never() {
                message = Some(next?);
            }
        }
        ws.flush().await?;
    }
    Ok(())
}
