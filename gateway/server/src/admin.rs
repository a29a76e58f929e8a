//! The admin HTTP endpoints, on their own port: health, metrics, and the operator switches.
//!
//! A small hand-written HTTP/1.1 responder rather than a web framework: one request per
//! connection (`Connection: close`), request heads capped at 8 KiB and bodies (read by
//! `Content-Length`, never chunked) at 8 KiB, the whole request read within a timeout, and a
//! bounded number of connections at once, so a misbehaving client cannot hurt the gateway.
//!
//! - `GET /healthz`: 200 while the process runs.
//! - `GET /readyz`: 200 once listening, not draining and with the bus connected, 503 otherwise;
//!   load balancers stop sending new clients to a draining or disconnected gateway.
//! - `GET /metrics`: the Prometheus text format ([`Metrics::render`]).
//! - `GET /switches`, `GET|PUT|DELETE /switches/<service>`: the operator switches (see
//!   `admin/switches` and `docs/operations.md`).
//!
//! The port listens on loopback by default (`admin_listen`) and must not be exposed beyond the
//! operators: reads are open to anyone who can connect, and changes are guarded only by
//! `admin_token` when it is set.

mod switches;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gateway_bus::switches::SwitchStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::state::Shared;

/// The largest request head read; larger ones get 431.
const MAX_HEAD: usize = 8 * 1024;
/// The largest request body read; larger ones get 413.
const MAX_BODY: usize = 8 * 1024;
/// Admin connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin endpoints need from the gateway.
pub(crate) struct Admin {
    pub(crate) metrics: Arc<Metrics>,
    /// The open connections, whose queued events `/metrics` counts.
    pub(crate) connections: Arc<crate::state::Connections>,
    /// Readiness needs the bus connected.
    pub(crate) bus: Arc<dyn gateway_bus::Bus>,
    pub(crate) switches: Arc<dyn SwitchStore>,
    /// The services the gateway routes to, by fully qualified name: the ones switches may be
    /// set for.
    pub(crate) services: BTreeSet<&'static str>,
    /// `admin_token`: empty when changes need no token.
    pub(crate) token: String,
    /// This gateway's `server_id`, for the logs.
    pub(crate) gateway: String,
}

impl Admin {
    pub(crate) fn new(shared: &Shared) -> Admin {
        Admin {
            metrics: shared.metrics.clone(),
            connections: shared.connections.clone(),
            bus: shared.bus.clone(),
            switches: shared.switches.clone(),
            services: shared.registry.services().iter().map(|s| s.name).collect(),
            token: shared.config.admin_token.clone(),
            gateway: shared.config.server_id.clone(),
        }
    }
}

/// One parsed request.
#[derive(Debug)]
struct Request {
    method: String,
    /// The target without its query string.
    path: String,
    /// Header names in lower case, values trimmed.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    peer: SocketAddr,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One response: status, content type, body, and extra header lines.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    headers: &'static [&'static str],
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Response {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Response { status, content_type: "text/plain; charset=utf-8", body, headers: &[] }
    }

    fn json(status: u16, body: String) -> Response {
        Response { status, content_type: "application/json", body: body + "\n", headers: &[] }
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            405 => "Method Not Allowed",
            411 => "Length Required",
            413 => "Content Too Large",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Error",
        }
    }
}

/// Serves the admin endpoints on `listener` until `stop`.
pub(crate) async fn serve(listener: TcpListener, admin: Admin, stop: CancellationToken) {
    let admin = Arc::new(admin);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                let admin = admin.clone();
                tasks.spawn(async move {
                    if let Err(e) = respond(stream, peer, &admin).await {
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

/// Reads one request and writes its response.
async fn respond(mut stream: TcpStream, peer: SocketAddr, admin: &Admin) -> std::io::Result<()> {
    let read = tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream, peer)).await;
    let request = match read {
        Ok(read) => match read? {
            Read::Request(request) => request,
            Read::Refused(response) => return write_response(&mut stream, &response).await,
            Read::Closed => return Ok(()),
        },
        Err(_) => return Ok(()),
    };
    let response = route(&request, admin).await;
    write_response(&mut stream, &response).await
}

async fn write_response(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.reason(),
        response.content_type,
        response.body.len()
    );
    for header in response.headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(response.body.as_bytes()).await?;
    stream.shutdown().await
}

/// What reading a request gave.
#[derive(Debug)]
enum Read {
    Request(Request),
    /// Over a limit, malformed, or without the length its body needs: answered at once.
    Refused(Response),
    /// The client closed before sending a whole request.
    Closed,
}

/// Reads a request: its head up to the blank line, then `Content-Length` bytes of body.
async fn read_request(stream: &mut TcpStream, peer: SocketAddr) -> std::io::Result<Read> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return Ok(Read::Refused(Response::text(431, "request head too large")));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Read::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD {
        return Ok(Read::Refused(Response::text(431, "request head too large")));
    }
    let mut request = match parse_head(&String::from_utf8_lossy(&buf[..head_end]), peer) {
        Ok(request) => request,
        Err(response) => return Ok(Read::Refused(response)),
    };
    let length = match body_length(&request) {
        Ok(length) => length,
        Err(response) => return Ok(Read::Refused(response)),
    };
    let mut body = buf.split_off(head_end + 4);
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Read::Closed);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    request.body = body;
    Ok(Read::Request(request))
}

/// The request line and headers (without the blank line).
fn parse_head(head: &str, peer: SocketAddr) -> Result<Request, Response> {
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    // Query strings are ignored: `/metrics?x=1` is `/metrics`.
    let path = target.split('?').next().unwrap_or_default();
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Response::text(400, format!("malformed header line {line:?}")));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: Vec::new(),
        peer,
    })
}

/// How many body bytes follow the head: `Content-Length`, capped at [`MAX_BODY`]; a `PUT`
/// must say.
fn body_length(request: &Request) -> Result<usize, Response> {
    if request.header("transfer-encoding").is_some() {
        return Err(Response::text(411, "chunked bodies are not accepted; send Content-Length"));
    }
    let Some(length) = request.header("content-length") else {
        return if request.method == "PUT" {
            Err(Response::text(411, "a PUT needs a Content-Length"))
        } else {
            Ok(0)
        };
    };
    let length: usize = length
        .parse()
        .map_err(|_| Response::text(400, format!("Content-Length {length:?} is not a number")))?;
    if length > MAX_BODY {
        let message = format!("a body of {length} bytes is over the limit of {MAX_BODY}");
        return Err(Response::text(413, message));
    }
    Ok(length)
}

/// The response to a request.
async fn route(request: &Request, admin: &Admin) -> Response {
    let path = request.path.as_str();
    if path == "/switches" || path.starts_with("/switches/") {
        return switches::route(request, admin).await;
    }
    if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return Response::text(404, "not found");
    }
    if request.method != "GET" {
        return Response::text(405, "only GET");
    }
    match path {
        "/healthz" => Response::text(200, "ok"),
        "/readyz" if !admin.metrics.is_ready() => Response::text(503, "draining"),
        "/readyz" if !admin.bus.is_connected() => {
            Response::text(503, "the bus is disconnected; reconnecting")
        }
        "/readyz" => Response::text(200, "ready"),
        _ => {
            let mut text = admin.metrics.render_with_events(admin.connections.queued());
            let connected = u8::from(admin.bus.is_connected());
            let _ = writeln!(
                text,
                "# HELP gateway_bus_connected 1 while the bus (NATS) is connected, 0 while it \
                 reconnects.\n# TYPE gateway_bus_connected gauge\ngateway_bus_connected {connected}"
            );
            Response { content_type: "text/plain; version=0.0.4", ..Response::text(200, text) }
        }
    }
}

#[cfg(test)]
mod tests;
