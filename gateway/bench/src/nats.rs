//! The NATS target: the echo service called directly with `async-nats` request/reply, no gateway.
//!
//! This is the baseline of a gateway on NATS. A call through the gateway crosses client →
//! gateway → nats-server → service and back; a call here crosses client → nats-server → service
//! and back, with the same bus request the gateway would send: subject
//! `rpc.examples.echo.Echo.echo`, the headers a gateway on NATS puts on an anonymous call
//! (`rpc-method`, `rpc-timeout-ms`, `rpc-call-id`, `rpc-trace-id`, and `rpc-notify-ms` as
//! [`NatsOptions`]'s default asks; `docs/bus.md`), the same `Blob` buffer. So nats-server and
//! the service do the same work per call on both paths, and the difference between the two is
//! what the gateway costs.
//!
//! Each of the run's connections is its own `async-nats` client (its own TCP connection to
//! nats-server) and keeps `depth` requests in flight as futures polled by one task: when one is
//! answered, its latency is recorded and the next request leaves. Requests use the client's
//! shared reply inbox (`Client::send_request`), as any plain NATS client does. Every answer is
//! checked: no `rpc-status` (or `0`), and the payload equal to the request's, byte for byte.
//!
//! `Client::send_request` takes the first message on the reply subject as the answer, so a
//! running notice (a call still running `rpc-notify-ms` after the service received it) would end
//! the request without its answer; it is counted as `running_notice`, an error. An echo call
//! only gets one when the service is stalled for that long (100 ms).

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher as _;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, HeaderMap, HeaderName, Request, RequestErrorKind};
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use gateway_bus::NatsOptions;
use gateway_bus::contract::{self, header};
use gateway_core::Code;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use crate::config::LoadConfig;
use crate::connection::{Call, Window};
use crate::error::LoadError;
use crate::summary::Tally;

/// How long connecting to nats-server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The length of the reply subject async-nats gives a request: `_INBOX.` and three 22-character
/// NUIDs joined by dots (the client's inbox prefix, its reply multiplexer's, the request's
/// token).
const REPLY_SUBJECT_LEN: usize = "_INBOX.".len() + 3 * 22 + 2;

/// What every request of a run carries, built once.
#[derive(Clone, Debug)]
struct Requests {
    subject: async_nats::Subject,
    /// `rpc-method`, `rpc-timeout-ms` and `rpc-notify-ms`; each request adds its `rpc-call-id`
    /// and `rpc-trace-id`.
    headers: HeaderMap,
    payload: Bytes,
    timeout: Duration,
    /// A random number naming this run: its call ids start with it (unique among the callers
    /// of the service, as `docs/bus.md` asks), and so do its trace ids, as the gateway's do.
    instance: u64,
}

impl Requests {
    fn new(call: &Call) -> Requests {
        let method = echo::DESCRIPTOR
            .method(call.method_id)
            .expect("the call is one of the echo service's methods");
        let mut headers = HeaderMap::new();
        headers.insert(header::METHOD, call.method_id.to_string());
        headers.insert(header::TIMEOUT_MS, call.timeout_ms.to_string());
        // What a gateway's NATS bus asks of every call (running notices for long calls).
        if let Some(after) = NatsOptions::default().notify_after {
            headers.insert(header::NOTIFY_MS, after.as_millis().max(1).to_string());
        }
        Requests {
            subject: contract::method_subject(method).into(),
            headers,
            payload: call.payload.clone(),
            timeout: Duration::from_millis(call.timeout_ms.into()),
            instance: RandomState::new().hash_one(std::process::id()),
        }
    }

    /// Request `n` of connection `connection`.
    fn request(&self, connection: usize, n: u64) -> Request {
        let headers = self.headers_of(connection, n);
        Request::new().headers(headers).payload(self.payload.clone()).timeout(Some(self.timeout))
    }

    /// The headers of request `n` of connection `connection`: the shared ones, its call id and
    /// its trace id (32 hex digits, the W3C form the gateway uses).
    fn headers_of(&self, connection: usize, n: u64) -> HeaderMap {
        let mut headers = self.headers.clone();
        let instance = self.instance;
        let call_id = format!("{instance:016x}-{connection}-{n}");
        headers.insert(HeaderName::from_static(header::CALL_ID), call_id);
        let trace_id = format!("{:016x}{n:016x}", instance ^ connection as u64);
        headers.insert(HeaderName::from_static(header::TRACE_ID), trace_id);
        headers
    }

    /// The size of one request on the wire, as async-nats writes it: the `HPUB` control line,
    /// the header block, the payload and the closing CRLF.
    fn wire_bytes(&self) -> usize {
        // A request well into a run (the call id's length varies by a few bytes).
        let headers = self.headers_of(0, 1_000_000);
        let header_block = "NATS/1.0\r\n".len()
            + headers
                .iter()
                .map(|(name, values)| {
                    let name: &str = name.as_ref();
                    values.iter().map(|v| name.len() + 2 + v.as_str().len() + 2).sum::<usize>()
                })
                .sum::<usize>()
            + 2;
        let total = header_block + self.payload.len();
        let control_line = format!(
            "HPUB {} {} {header_block} {total}\r\n",
            self.subject.as_str(),
            "_".repeat(REPLY_SUBJECT_LEN)
        );
        control_line.len() + total + 2
    }
}

/// Runs `config`'s load against the echo service over the NATS server at `config.addr`: opens
/// every client, then drives them all over the same window. Returns the merged tally and the
/// size of one request on the wire.
///
/// # Errors
///
/// [`LoadError::Connect`] when a client cannot connect, [`LoadError::Nats`] when a connection
/// fails during the run or a request is refused before it is sent.
pub(crate) async fn run(config: &LoadConfig, call: &Call) -> Result<(Tally, usize), LoadError> {
    let requests = Requests::new(call);
    let epoch = Instant::now();
    let mut clients = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        clients.push(connect(config).await?);
    }
    let start = Instant::now() + config.warmup;
    let window = Window { epoch, start, end: start + config.duration };
    let mut tasks = JoinSet::new();
    for (connection, client) in clients.into_iter().enumerate() {
        let driver = Driver { client, connection, requests: requests.clone(), window };
        tasks.spawn(driver.run(config.depth));
    }
    let mut tally = Tally::new();
    while let Some(joined) = tasks.join_next().await {
        let connection = joined.map_err(|e| LoadError::Task(e.to_string()))?;
        tally.merge(&connection?);
    }
    Ok((tally, requests.wire_bytes()))
}

async fn connect(config: &LoadConfig) -> Result<Client, LoadError> {
    let fail = |e: &dyn std::fmt::Display| LoadError::Connect {
        addr: config.addr,
        source: std::io::Error::other(format!("NATS: {e}")),
    };
    let options = ConnectOptions::new()
        .name("loadgen")
        .connection_timeout(CONNECT_TIMEOUT)
        // A failed connection fails the run; it is not waited for.
        .max_reconnects(Some(1));
    let connecting = options.connect(format!("nats://{}", config.addr));
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(fail(&e)),
        Err(_) => Err(fail(&"no connection within 5 s")),
    }
}

/// One client keeping `depth` requests in flight.
struct Driver {
    client: Client,
    /// The connection's number, part of its call ids.
    connection: usize,
    requests: Requests,
    window: Window,
}

/// How a request ended: when it was sent, and the answer or why there is none.
type Outcome = (Instant, Result<async_nats::Message, async_nats::RequestError>);

impl Driver {
    /// Keeps `depth` requests in flight until `window.end`, recording the answers that arrive
    /// between `window.start` and `window.end`. Requests still in flight at the end are dropped
    /// (their answers are discarded by the client).
    async fn run(self, depth: usize) -> Result<Tally, LoadError> {
        let mut tally = Tally::new();
        let mut sent: u64 = 0;
        let mut in_flight = FuturesUnordered::new();
        for _ in 0..depth {
            sent += 1;
            in_flight.push(self.call(sent));
        }
        loop {
            let (sent_at, answer) = match timeout_at(self.window.end, in_flight.next()).await {
                Ok(Some(outcome)) => outcome,
                // The window is over (`depth` is at least 1, so the set is never empty).
                Err(_) | Ok(None) => return Ok(tally),
            };
            let now = Instant::now();
            if now >= self.window.end {
                return Ok(tally);
            }
            let checked = self.check(answer)?;
            if now >= self.window.start {
                match checked {
                    Ok(()) => tally.record_ok(now.saturating_duration_since(sent_at)),
                    Err(kind) => tally.record_error(kind),
                }
            }
            sent += 1;
            in_flight.push(self.call(sent));
        }
    }

    /// Sends request `n` and waits for its answer.
    fn call(&self, n: u64) -> impl Future<Output = Outcome> + '_ {
        let request = self.requests.request(self.connection, n);
        async move {
            let sent_at = Instant::now();
            let answer = self.client.send_request(self.requests.subject.clone(), request).await;
            (sent_at, answer)
        }
    }

    /// What an answer counts as: `Ok` for the request's payload back without a status, or the
    /// kind of failure (a status code's name, `running_notice`, `bad_payload`). A failure that is not the call's
    /// but the connection's, or a request that could not be sent, ends the run.
    fn check(
        &self,
        answer: Result<async_nats::Message, async_nats::RequestError>,
    ) -> Result<Result<(), &'static str>, LoadError> {
        let message = match answer {
            Ok(message) => message,
            // What a gateway answers for the same bus errors.
            Err(e) if e.kind() == RequestErrorKind::TimedOut => {
                return Ok(Err(Code::DeadlineExceeded.name()));
            }
            Err(e) if e.kind() == RequestErrorKind::NoResponders => {
                return Ok(Err(Code::Unavailable.name()));
            }
            Err(e) => return Err(LoadError::Nats(e.to_string())),
        };
        let headers = message.headers.as_ref();
        if headers.is_some_and(|h| h.get(header::RUNNING).is_some()) {
            return Ok(Err("running_notice"));
        }
        if let Some(status) = headers.and_then(|h| h.get(header::STATUS)) {
            let code = status.as_str().parse::<u8>().map_or(Code::Unknown, Code::from_u8);
            if code != Code::Ok {
                return Ok(Err(code.name()));
            }
        }
        if message.payload != self.requests.payload {
            return Ok(Err("bad_payload"));
        }
        Ok(Ok(()))
    }
}
