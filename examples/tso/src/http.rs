//! The HTTP endpoint, compatible with EpicEpoch's (docs/tso.md, "HTTP"), so that its clients
//! can switch without changes: HTTP/1.1 and HTTP/2 without TLS (h2c, prior knowledge) on one
//! port, served by hyper.
//!
//! | path | answer |
//! |---|---|
//! | `GET /up` | 200 `ok`: the server runs |
//! | `GET /ready` | 200 when this instance knows a live leader, else 503 |
//! | `GET /timestamp?n=N` | 200 and `16·N` bytes: N consecutive timestamps of one epoch; 409 from a follower, 503 while a leader's lease is unconfirmed, 400 for a bad `n` |
//! | `GET /members`, `GET /membership` | 200 and `{"leader":{"nodeID":…,"addr":…},"members":[…]}`; 503 while no leader is known |
//! | `GET /metrics` | 200 and the instance's counters in Prometheus text format |

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Timestamp;
use crate::fence::Fence;
use crate::oracle::{BATCH_BUCKETS, MAX_BATCH, Oracle, Refused};

/// How long a client may take to send a request's headers before the connection is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// What the endpoint answers from: the instance, and the bucket its members are listed in.
#[derive(Clone, Debug)]
pub struct Endpoint {
    oracle: Oracle,
    fence: Fence,
}

impl Endpoint {
    pub fn new(oracle: Oracle, fence: Fence) -> Endpoint {
        Endpoint { oracle, fence }
    }

    /// Answers one request.
    pub async fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        match request.uri().path() {
            "/up" => text(StatusCode::OK, "ok"),
            "/ready" => self.ready(),
            "/timestamp" => self.timestamp(request.uri().query()),
            "/members" | "/membership" => self.members().await,
            "/metrics" => {
                let mut response = text(StatusCode::OK, metrics(&self.oracle));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            path => text(StatusCode::NOT_FOUND, format!("no such path: {path}\n")),
        }
    }

    fn ready(&self) -> Response<Full<Bytes>> {
        let view = self.oracle.view();
        match view.leader {
            Some(leader) if view.live => text(
                StatusCode::OK,
                format!("leader={leader} nodeID={} term={}\n", self.oracle.id(), view.term),
            ),
            _ => text(StatusCode::SERVICE_UNAVAILABLE, "no live leader known yet\n"),
        }
    }

    fn timestamp(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let n = match count(query) {
            Ok(n) => n,
            Err(message) => return text(StatusCode::BAD_REQUEST, message),
        };
        match self.oracle.timestamps(n) {
            Ok(first) => timestamps(first, n),
            Err(Refused::NotLeader) => {
                let view = self.oracle.view();
                let leader = view.leader.as_deref().unwrap_or("unknown");
                text(
                    StatusCode::CONFLICT,
                    format!("node ({}) is not the leader ({leader})\n", self.oracle.id()),
                )
            }
            Err(refused @ Refused::LeaseExpired) => {
                let mut response =
                    text(StatusCode::SERVICE_UNAVAILABLE, format!("{refused}: try again\n"));
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            Err(refused @ Refused::BadCount(_)) => {
                text(StatusCode::BAD_REQUEST, format!("{refused}\n"))
            }
        }
    }

    async fn members(&self) -> Response<Full<Bytes>> {
        let view = self.oracle.view();
        let Some(leader) = view.leader.filter(|_| view.live) else {
            return text(StatusCode::SERVICE_UNAVAILABLE, "no live leader known yet\n");
        };
        let members = match self.fence.members().await {
            Ok(members) => members,
            Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        };
        let member = |id: &str, addr: &str| {
            // EpicEpoch's node ids are numbers: ids that are numbers are written as numbers.
            let id = id.parse::<u64>().map_or_else(|_| serde_json::json!(id), Into::into);
            serde_json::json!({ "nodeID": id, "addr": addr })
        };
        let leader_addr = members.iter().find(|(id, _)| **id == *leader).map_or("", |(_, a)| a);
        let body = serde_json::json!({
            "leader": member(&leader, leader_addr),
            "members": members.iter().map(|(id, addr)| member(id, addr)).collect::<Vec<_>>(),
        });
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        cors(response)
    }
}

/// The answer carrying `n` timestamps from `first`: their 16 bytes each, in order.
pub fn timestamps(first: Timestamp, n: u64) -> Response<Full<Bytes>> {
    let mut body = Vec::with_capacity(Timestamp::LEN * n as usize);
    for index in first.index..first.index + n {
        body.extend_from_slice(&Timestamp { epoch: first.epoch, index }.to_bytes());
    }
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    cors(response)
}

/// The `n` of a query string: absent or empty is 1, as EpicEpoch reads it.
///
/// # Errors
///
/// The text of the 400 answer, for an `n` that is not a number from 1 to [`MAX_BATCH`].
pub fn count(query: Option<&str>) -> Result<u64, String> {
    let value = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("n="))
        .unwrap_or("");
    if value.is_empty() {
        return Ok(1);
    }
    match value.parse::<u64>() {
        Ok(n) if (1..=MAX_BATCH).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid n param, must be a number >= 1 if provided (and at most {MAX_BATCH}): {value:?}\n"
        )),
    }
}

/// A text answer.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.into())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    cors(response)
}

/// Any origin may call, as EpicEpoch's server allows.
fn cors(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// The instance's counters in Prometheus text format.
pub fn metrics(oracle: &Oracle) -> String {
    let counters = oracle.counters();
    let view = oracle.view();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    };
    metric(
        "tso_timestamps_served_total",
        "counter",
        "Timestamps handed out by this instance.",
        counters.served.to_string(),
    );
    metric(
        "tso_leading",
        "gauge",
        "1 while this instance leads.",
        u8::from(oracle.leads()).to_string(),
    );
    metric("tso_term", "gauge", "The last term this instance saw.", view.term.to_string());
    metric(
        "tso_terms_won_total",
        "counter",
        "Terms this instance won.",
        counters.terms_won.to_string(),
    );
    metric(
        "tso_steps_down_total",
        "counter",
        "Times another instance claimed over this one.",
        counters.steps_down.to_string(),
    );
    metric(
        "tso_leader_changes_total",
        "counter",
        "New terms this instance saw, its own included.",
        counters.leader_changes.to_string(),
    );
    metric(
        "tso_leaderless_seconds_total",
        "counter",
        "Time this instance saw no live leader: the state unchanged for a lease, until a new term.",
        format!("{:.6}", counters.leaderless.as_secs_f64()),
    );
    let _ = write!(
        out,
        "# HELP tso_refused_total Calls refused.\n# TYPE tso_refused_total counter\n\
         tso_refused_total{{reason=\"not_leader\"}} {}\n\
         tso_refused_total{{reason=\"lease_expired\"}} {}\n",
        counters.refused_not_leader, counters.refused_lease_expired,
    );
    let _ = writeln!(
        out,
        "# HELP tso_batch_size Timestamps per call served.\n# TYPE tso_batch_size histogram"
    );
    let mut cumulative = 0;
    for (bucket, calls) in counters.batch_sizes.iter().enumerate().take(BATCH_BUCKETS) {
        cumulative += calls;
        let _ = writeln!(out, "tso_batch_size_bucket{{le=\"{}\"}} {cumulative}", 1u64 << bucket);
    }
    let _ = write!(
        out,
        "tso_batch_size_bucket{{le=\"+Inf\"}} {cumulative}\ntso_batch_size_sum {}\n\
         tso_batch_size_count {}\n",
        counters.served, counters.calls,
    );
    out
}

impl Endpoint {
    /// Serves on `listener` until `stop` is cancelled; then lets the requests in progress
    /// finish.
    pub async fn serve(self, listener: TcpListener, stop: CancellationToken) {
        let endpoint = Arc::new(self);
        serve(
            listener,
            move |request| {
                let endpoint = endpoint.clone();
                async move { endpoint.answer(&request).await }
            },
            stop,
        )
        .await;
    }
}

/// A listener on `addr` whose queue of connections not yet accepted holds 4,096 (tokio's default
/// is 1,024: thousands of clients connecting at once would have some wait for the kernel to
/// retry).
///
/// # Errors
///
/// When the address cannot be bound.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves HTTP/1.1 and h2c on `listener`, each request answered by `answer`, until `stop` is
/// cancelled; then lets the requests in progress finish. ([`Endpoint::serve`]; the benchmark's
/// baseline answers from a counter.)
pub async fn serve<A, F>(listener: TcpListener, answer: A, stop: CancellationToken)
where
    A: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    let builder = Arc::new(builder);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    eprintln!("tso: http: cannot accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (builder, answer, stop) = (builder.clone(), answer.clone(), stop.clone());
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let answered = answer(request);
                async move { Ok::<_, Infallible>(answered.await) }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = stop.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    connections.close();
    connections.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_is_read_as_epicepoch_reads_it() {
        assert_eq!(count(None), Ok(1));
        assert_eq!(count(Some("")), Ok(1));
        assert_eq!(count(Some("n=")), Ok(1));
        assert_eq!(count(Some("n=7")), Ok(7));
        assert_eq!(count(Some("x=1&n=3")), Ok(3));
        assert_eq!(count(Some(&format!("n={MAX_BATCH}"))), Ok(MAX_BATCH));
        for bad in ["n=0", "n=-1", "n=two", "n=1.5", &format!("n={}", MAX_BATCH + 1)] {
            let error = count(Some(bad)).expect_err(bad);
            assert!(error.starts_with("invalid n param"), "{bad}: {error}");
        }
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let oracle = Oracle::new("1");
        let text = metrics(&oracle);
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            assert!(name.starts_with("tso_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert!(text.contains("tso_batch_size_bucket{le=\"1048576\"} 0\n"), "{text}");
        assert!(text.contains("tso_leading 0\n"), "{text}");
    }
}
