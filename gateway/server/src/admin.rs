//! The admin HTTP endpoints, on their own port: `/healthz`, `/readyz` and `/metrics`.
//!
//! A small hand-written HTTP/1.1 responder rather than a web framework: three `GET`s, one
//! response per connection (`Connection: close`), request heads capped at 8 KiB and read within
//! a timeout, and a bounded number of connections at once, so a misbehaving scraper cannot hurt
//! the gateway.
//!
//! - `/healthz`: 200 while the process runs.
//! - `/readyz`: 200 once listening and not draining, 503 otherwise; load balancers stop sending
//!   new clients to a draining gateway.
//! - `/metrics`: the Prometheus text format ([`Metrics::render`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// The largest request head read; larger ones get 431.
const MAX_HEAD: usize = 8 * 1024;
/// Admin connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the admin endpoints on `listener` until `stop`.
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                let metrics = metrics.clone();
                tasks.spawn(async move {
                    if let Err(e) = respond(stream, &metrics).await {
                        debug!(cause = %e, "admin request failed");
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                warn!(cause = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tasks.close();
    let _ = tokio::time::timeout(READ_TIMEOUT, tasks.wait()).await;
}

/// Reads one request head and writes its response.
async fn respond(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (status, content_type, body) = match head {
        None => (431, "text/plain", "request head too large\n".to_owned()),
        Some(head) => route(&head, metrics),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Bad Request",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The request head up to its blank line, or `None` when it exceeds [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// Status, content type and body for a request head.
fn route(head: &str, metrics: &Metrics) -> (u16, &'static str, String) {
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    // Query strings are ignored: `/metrics?x=1` is `/metrics`.
    let path = target.split('?').next().unwrap_or_default();
    let known = matches!(path, "/healthz" | "/readyz" | "/metrics");
    if !known {
        return (404, "text/plain", "not found\n".into());
    }
    if method != "GET" {
        return (405, "text/plain", "only GET\n".into());
    }
    match path {
        "/healthz" => (200, "text/plain", "ok\n".into()),
        "/readyz" if metrics.is_ready() => (200, "text/plain", "ready\n".into()),
        "/readyz" => (503, "text/plain", "draining\n".into()),
        _ => (200, "text/plain; version=0.0.4", metrics.render()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Registry;

    #[test]
    fn routes_answer_by_path_and_method() {
        let metrics = Metrics::new(&Registry::new());
        let get = |head: &str| route(head, &metrics).0;
        assert_eq!(get("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
        assert_eq!(get("GET /readyz HTTP/1.1\r\n\r\n"), 503, "not ready before listening");
        metrics.set_ready(true);
        assert_eq!(get("GET /readyz HTTP/1.1\r\n\r\n"), 200);
        assert_eq!(get("GET /metrics?name=x HTTP/1.1\r\n\r\n"), 200);
        assert_eq!(get("POST /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(get("GET / HTTP/1.1\r\n\r\n"), 404);
        assert_eq!(get(""), 404);
    }
}
