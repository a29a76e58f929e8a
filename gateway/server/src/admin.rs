//! The admin HTTP endpoints, on their own port: health, metrics, and the operator switches.
//!
//! HTTP/1.1 by hyper, with limits so that a misbehaving client cannot hurt the gateway: request
//! heads capped at 8 KiB and bodies (by `Content-Length`, never chunked) at 8 KiB, each read
//! within a timeout (an idle kept-alive connection is closed after as long), and a bounded
//! number of connections at once. When every slot is taken, a new connection takes the slot of
//! the oldest one not being answered: clients that hold connections without finishing requests
//! (slowloris) cannot lock operators and health checks out.
//!
//! - `GET /healthz`: 200 while the process runs.
//! - `GET /readyz`: 200 once listening, not draining and with the bus connected, 503 otherwise;
//!   load balancers stop sending new clients to a draining or disconnected gateway.
//! - `GET /metrics`: the Prometheus text format ([`Metrics::render`]).
//! - `GET /switches`, `GET|PUT|DELETE /switches/<service>`: the operator switches (see
//!   `admin/switches` and `docs/operations.md`).
//! - `GET /console`: the operator's console, a page that reads `GET /console/state` and
//!   `GET /console/services` (see `admin/console`).
//!
//! The port listens on loopback by default (`admin_listen`) and must not be exposed beyond the
//! operators: reads are open to anyone who can connect, and changes are guarded only by
//! `admin_token` when it is set.

mod console;
mod switches;

use std::collections::BTreeSet;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_bus::switches::SwitchStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::limits::Pace;
use crate::metrics::Metrics;
use crate::state::Shared;

/// The largest request head read; larger ones get 431.
const MAX_HEAD: usize = 8 * 1024;
/// The largest request body read; larger ones get 413.
const MAX_BODY: usize = 8 * 1024;
/// Admin connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 32;
/// Connections closed to make room (or refused) a second ([`Pace`]); past it, the admin port
/// stops accepting for a while. Trickling clients that keep taking slots then wait in the
/// kernel's queue instead of costing the gateway a connection opened and closed each time
/// (docs/reliability.md, "Attacks").
const EVICTED_PER_SECOND: u32 = 100;
/// How many connections the admin port closes (or refuses) one after another when its pace
/// allows: two, so that they come spread out, one every 10 ms, not five at once every 50 ms
/// (docs/reliability.md, "Cores that poll, and smooth paces").
const EVICTED_AT_ONCE: u32 = 2;
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
    /// What the console shows that the above does not: the hub's subscribers, the topics, the
    /// settings as loaded.
    pub(crate) console: console::Sources,
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
            console: console::Sources::new(shared),
        }
    }
}

impl Admin {
    /// An admin of no gateway: an in-process bus, no connections, one service `t.S` whose
    /// switches may be set with `token`.
    #[cfg(feature = "fuzz")]
    pub(crate) fn standalone(token: &str) -> Admin {
        let metrics = Arc::new(Metrics::new(&crate::router::Registry::new()));
        let bus: Arc<dyn gateway_bus::Bus> = Arc::new(gateway_bus::LocalBus::new());
        Admin {
            console: console::Sources::empty(bus.clone(), metrics.clone()),
            metrics,
            connections: Arc::default(),
            bus,
            switches: Arc::new(gateway_bus::switches::MemorySwitches::new()),
            services: ["t.S"].into_iter().collect(),
            token: token.to_owned(),
            gateway: "fuzz".to_owned(),
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

    /// As hyper sends it; `headers` are `Name: value` lines.
    fn into_http(self) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
        let mut builder = hyper::Response::builder()
            .status(self.status)
            .header("content-type", self.content_type);
        for line in self.headers {
            if let Some((name, value)) = line.split_once(": ") {
                builder = builder.header(name, value);
            }
        }
        builder
            .body(http_body_util::Full::new(bytes::Bytes::from(self.body)))
            .unwrap_or_else(|_| hyper::Response::new(http_body_util::Full::default()))
    }
}

/// Serves the admin endpoints on `listener` until `stop`: HTTP/1.1 by hyper, keep-alive, at
/// most [`MAX_CONNECTIONS`] connections (past that, a new one takes the slot of the oldest not
/// being answered, see [`Slots`]), each request's head within [`READ_TIMEOUT`] (an idle
/// kept-alive connection is closed after as long) and at most [`MAX_HEAD`] bytes (else 431), its
/// body within as long and at most [`MAX_BODY`] bytes.
pub(crate) async fn serve(listener: TcpListener, admin: Admin, stop: CancellationToken) {
    let admin = Arc::new(admin);
    let slots = Arc::new(Slots::default());
    let tasks = TaskTracker::new();
    let mut evictions = Pace::new(EVICTED_PER_SECOND, EVICTED_AT_ONCE, Instant::now());
    loop {
        // One connection per turn, as on the gateway's own ports: the connections being served
        // run between two accepts, not after a backlog of trickling clients is worked through.
        tokio::task::yield_now().await;
        if let Some(pause) = evictions.pause(Instant::now()) {
            tokio::select! {
                _ = stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let slot = match slots.take(MAX_CONNECTIONS) {
                    Some((slot, evicted)) => {
                        if evicted {
                            evictions.count(Instant::now());
                        }
                        slot
                    }
                    None => {
                        debug!(%peer, "admin connection refused: every connection is being answered");
                        evictions.count(Instant::now());
                        continue;
                    }
                };
                tasks.spawn(serve_connection(stream, peer, admin.clone(), stop.clone(), slot));
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

/// The admin connections open, oldest first. A connection is *answering* while a whole request
/// is being routed (not while its head or body trickles in). When all are taken, the oldest
/// connection not answering is closed to make room: a client holding connections without
/// finishing requests loses them to the next client, who is served.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    open: Mutex<VecDeque<Arc<SlotState>>>,
}

#[derive(Debug, Default)]
struct SlotState {
    answering: AtomicBool,
    /// Closes the connection.
    evict: CancellationToken,
}

/// One connection's place in [`Slots`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    state: Arc<SlotState>,
}

impl Slots {
    /// A slot for a new connection, closing the oldest connection not answering if all `max`
    /// are taken (then with `true`); `None` when every one is answering.
    pub(crate) fn take(self: &Arc<Slots>, max: usize) -> Option<(Slot, bool)> {
        let mut open = self.open.lock().expect("admin slots");
        let evicted = open.len() >= max;
        if evicted {
            let oldest = open.iter().position(|s| !s.answering.load(Ordering::Relaxed))?;
            let evicted = open.remove(oldest).expect("a slot at that position");
            evicted.evict.cancel();
        }
        let state = Arc::new(SlotState::default());
        open.push_back(state.clone());
        Some((Slot { slots: self.clone(), state }, evicted))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("admin slots");
        if let Some(at) = open.iter().position(|s| Arc::ptr_eq(s, &self.state)) {
            open.remove(at);
        }
    }
}

/// One admin connection, until the client closes it, a limit ends it, its slot is taken by a
/// newer connection, or `stop` (then the request under way is answered first).
pub(crate) async fn serve_connection(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    peer: SocketAddr,
    admin: Arc<Admin>,
    stop: CancellationToken,
    slot: Slot,
) {
    let state = slot.state.clone();
    let service = hyper::service::service_fn(move |request| {
        let admin = admin.clone();
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(request, peer, &admin, &state).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true);
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = slot.state.evict.cancelled() => {
            debug!(%peer, "admin connection closed: its slot went to a newer connection");
            Ok(())
        }
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        debug!(%peer, cause = %e, "admin connection ended");
    }
    drop(slot);
}

/// The response to one request: its head checked, its body read within the limits, then routed.
async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    admin: &Admin,
    slot: &SlotState,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt as _;
    let (parts, body) = request.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).trim().to_owned())
        })
        .collect();
    let mut request = Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        headers,
        body: Vec::new(),
        peer,
    };
    let response = match body_length(&request) {
        Err(refused) => refused,
        Ok(length) => {
            let read = http_body_util::Limited::new(body, MAX_BODY).collect();
            match tokio::time::timeout(READ_TIMEOUT, read).await {
                Ok(Ok(collected)) => {
                    request.body = collected.to_bytes().to_vec();
                    if request.body.len() == length {
                        slot.answering.store(true, Ordering::Relaxed);
                        let response = route(&request, admin).await;
                        slot.answering.store(false, Ordering::Relaxed);
                        response
                    } else {
                        Response::text(400, "the body is not as long as its Content-Length")
                    }
                }
                Ok(Err(e)) => Response::text(400, format!("cannot read the body: {e}")),
                Err(_) => Response::text(408, "the body did not arrive in time"),
            }
        }
    };
    response.into_http()
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
    if path == "/console" || path.starts_with("/console/") {
        return console::route(request, admin).await;
    }
    if let Some(rest) = path.strip_prefix("/connections/") {
        return close_connection(request, admin, rest);
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
            let _ = writeln!(
                text,
                "# HELP gateway_bus_dropped_total Messages the gateway's bus subscriptions lost \
                 because their queue was full (the gateway fell behind the bus); on NATS a lower \
                 bound.\n\
                 # TYPE gateway_bus_dropped_total counter\ngateway_bus_dropped_total {}",
                admin.bus.dropped()
            );
            Response { content_type: "text/plain; version=0.0.4", ..Response::text(200, text) }
        }
    }
}

/// `POST /connections/<id>/close`: the connection (an id of `/console/state`) gets GOAWAY
/// `shutting_down`, with `RECONNECT`, its calls in flight are answered, and it closes; the
/// client reconnects, to this gateway or another.
fn close_connection(request: &Request, admin: &Admin, rest: &str) -> Response {
    let Some(id) = rest.strip_suffix("/close").and_then(|id| id.parse::<u64>().ok()) else {
        return Response::text(404, "not found; POST /connections/<id>/close closes one");
    };
    if request.method != "POST" {
        return Response::text(405, "/connections/<id>/close takes POST");
    }
    if !switches::authorized(request, &admin.token) {
        return Response {
            headers: &["WWW-Authenticate: Bearer"],
            ..Response::text(
                401,
                "closing a connection needs `Authorization: Bearer <admin_token>`",
            )
        };
    }
    if !admin.connections.signal(id, crate::mailbox::signal::CLOSE) {
        return Response::text(404, format!("no open connection {id}"));
    }
    tracing::info!(gateway = %admin.gateway, connection = id, "an operator closed a connection");
    Response::text(200, "closing")
}

#[cfg(test)]
mod tests;
