//! The bus over NATS: gateways and services in separate processes, on many machines.
//!
//! [`NatsBus`] implements [`Bus`] on one `async-nats` connection. Subjects, queue groups and
//! headers are NATS's own, so what `docs/bus.md` specifies is exactly what crosses the wire, and a
//! service written in another language with a NATS client can serve gateway methods.
//!
//! - **Requests** share one wildcard inbox subscription per connection (`_INBOX.<id>.*`); each
//!   request waits on its own token. Nobody subscribed → nats-server answers "no responders" at
//!   once ([`BusError::NoResponders`]); no answer in time → [`BusError::Timeout`].
//! - **Calls** ([`Bus::call`]) and answers (publications to `_INBOX.` subjects) take a second
//!   connection, the call lane (`nats/lane.rs`), which writes what every caller and answerer has
//!   ready at once in one system call and hands each answer to its caller from the read; they
//!   take the main connection while the lane is down or off ([`NatsOptions::call_lane`]).
//! - **Payload limit**: the server's `max_payload` (headers included) is checked before anything
//!   is sent ([`BusError::TooLarge`]).
//! - **Subscriptions** forward into a bounded queue per subscription
//!   ([`NatsOptions::subscription_capacity`]); a message that finds it full is dropped and
//!   counted ([`NatsBus::stats`]), as with the in-process bus.
//! - **Instances that stop**: calls on `rpc.` subjects ask for running notices
//!   ([`NatsOptions::notify_after`]); a call still running that long on a service instance
//!   gets a notice naming the instance, and the bus then pings each instance holding its calls
//!   every [`NatsOptions::probe_interval`]. When an instance is gone (its ping meets "no
//!   responders"), its calls fail at once with [`BusError::Lost`], a retryable `unavailable`;
//!   so does a call that neither an answer nor a notice confirms within `notify_after` plus
//!   [`NatsOptions::lost_after`] (it reached an instance that died before it could say so).
//!   Calls on the surviving instances are untouched.
//! - **Connection loss**: the moment the connection drops, every request in flight fails with
//!   [`BusError::Disconnected`] (a retryable `unavailable` for callers), and so do new requests
//!   and publications until it is back; nothing waits for a reconnect. The client reconnects by
//!   itself with capped, jittered backoff ([`NatsOptions::max_reconnect_delay`]) and re-subscribes
//!   every subscription in one flush, so a gateway serves again as soon as NATS is back, without
//!   a restart.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;

use async_nats::connection::State;
use async_nats::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::Bytes;
use futures::StreamExt as _;
use gateway_core::hash::FastMap;
use gateway_core::{BoxFuture, Code, Status};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::call::{Call, CallId, CallMeta, Failure, MethodRoute};
use crate::contract::{self, header};
use crate::{Bus, BusError, BusMessage, Headers, MessageStream, Subscription, subject};

mod auth;
pub mod history;
mod lane;

pub use auth::{NatsAuth, NatsAuthError, NatsAuthSettings, NatsCredentials, NatsTls};
use lane::{Answers, Lane, LaneOptions, push_decimal, reconnect_delay};

/// Settings of a [`NatsBus`] connection.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// The connection's name, shown by nats-server's monitoring (`/connz`). Default `gateway`.
    pub name: String,
    /// How long the first connection attempt may take. Default 5 s.
    pub connect_timeout: Duration,
    /// Messages each subscription queues for its reader before dropping. Default 8192.
    pub subscription_capacity: usize,
    /// The longest wait between reconnect attempts (the first retries come sooner). Default 2 s.
    pub max_reconnect_delay: Duration,
    /// How often the client pings the server; two unanswered pings mark the connection dead
    /// (this is how a silent network failure is noticed). Default 10 s.
    pub ping_interval: Duration,
    /// Calls on `rpc.` subjects ask the service for a running notice when they are still
    /// running this long after it received them (`rpc-notify-ms`). `None`: no notices, and no
    /// detection of stopped instances (calls on one wait for their timeout). Default 100 ms.
    pub notify_after: Option<Duration>,
    /// A call with neither answer nor notice `notify_after` + this long after it was sent is
    /// presumed lost. Default 400 ms.
    pub lost_after: Duration,
    /// How often each instance holding calls is pinged. Default 250 ms.
    pub probe_interval: Duration,
    /// Calls ([`Bus::call`]) and answers (publications to `_INBOX.` subjects) take a second
    /// connection, opened at the first of them (or by [`NatsBus::open_call_lane`]), which
    /// writes what many callers and answerers have ready at once and hands answers straight to
    /// their callers (`docs/bus.md`, "What the NATS bus guarantees"). They take the main
    /// connection while it is down, and always when the URL is `ws://`. Under TLS the lane
    /// speaks TLS with the same settings. Default `true`.
    pub call_lane: bool,
    /// Credentials and TLS (`docs/operations.md`, "NATS credentials and TLS"). Default: none.
    pub auth: NatsAuth,
}

impl Default for NatsOptions {
    fn default() -> NatsOptions {
        NatsOptions {
            name: "gateway".to_owned(),
            connect_timeout: Duration::from_secs(5),
            subscription_capacity: 8192,
            max_reconnect_delay: Duration::from_secs(2),
            ping_interval: Duration::from_secs(10),
            notify_after: Some(Duration::from_millis(100)),
            lost_after: Duration::from_millis(400),
            probe_interval: Duration::from_millis(250),
            call_lane: true,
            auth: NatsAuth::default(),
        }
    }
}

/// Counters of a [`NatsBus`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatsBusStats {
    /// Messages dropped because a subscription's queue was full.
    pub dropped: u64,
    /// Requests failed because the connection dropped while they waited.
    pub failed_on_disconnect: u64,
    /// Requests failed as lost: their instance stopped, or none confirmed them in time.
    pub lost: u64,
    /// Times the connection came back after a loss.
    pub reconnects: u64,
}

/// The first connection could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {url}: {reason}")]
pub struct ConnectError {
    pub url: String,
    pub reason: String,
}

/// A [`Bus`] on a NATS connection. Cheap to share (`Arc<NatsBus>`); dropping the last handle
/// closes the connection.
pub struct NatsBus {
    /// Shared with the calls in flight: cloning the client itself costs more than a call's
    /// other work.
    client: Arc<async_nats::Client>,
    inner: Arc<Inner>,
    options: NatsOptions,
    /// `rpc-notify-ms`, formatted once.
    notify_ms: Option<String>,
    /// The server URLs, for the call lane.
    urls: String,
    /// The credentials in use (the URL's or the settings'), for the call lane.
    credentials: NatsCredentials,
    /// The call lane's TLS, when the connection is TLS (`None` also when it could not be set
    /// up: the lane then stays off).
    lane_tls: Option<tokio_rustls::TlsConnector>,
    /// The call lane once opened (`None` inside: off).
    lane: std::sync::OnceLock<Option<Lane>>,
    stop: CancellationToken,
    /// Stops the inbox task, the watchdog and the lane when the bus goes.
    _stop: tokio_util::sync::DropGuard,
}

/// What the bus, its tasks and the connection's event callback share.
struct Inner {
    /// `true` while connected.
    connected: watch::Sender<bool>,
    /// The connection was lost since it last came back (or since the first connection).
    was_lost: AtomicBool,
    reconnects: AtomicU64,
    /// Requests waiting for their answer, and the instances running them.
    requests: Mutex<Requests>,
    next_token: AtomicU64,
    /// The watchdog's ticks so far (one per `probe_interval`).
    tick: AtomicU64,
    /// `_INBOX.<id>.`: a request's reply subject is this followed by its token.
    inbox_prefix: String,
    dropped: AtomicU64,
    failed_on_disconnect: AtomicU64,
    lost: AtomicU64,
}

/// Why a waiting request got no answer.
enum Failed {
    /// The instance running it stopped, or none confirmed it in time.
    Lost(String),
    /// The connection dropped.
    Disconnected,
}

/// What a waiting request receives: the answer, or why there is none.
type Outcome = Result<async_nats::Message, Failed>;

#[derive(Default)]
struct Requests {
    /// By inbox token.
    pending: FastMap<u64, Pending>,
    /// The tokens each instance (by its liveness subject) has sent a running notice for.
    instances: HashMap<Arc<str>, Vec<u64>>,
    /// Instances with a ping under way.
    probing: std::collections::HashSet<Arc<str>>,
}

struct Pending {
    answer: oneshot::Sender<Outcome>,
    /// The watchdog's tick when it was sent (a tick is cheaper than a clock reading per call).
    tick: u64,
    /// Asked for running notices.
    watched: bool,
    /// The instance that sent a running notice for it.
    instance: Option<Arc<str>>,
    /// Sent on the call lane (and so lost with its connection).
    lane: bool,
}

impl Requests {
    /// Takes a request out, and out of its instance's list.
    fn remove(&mut self, token: u64) -> Option<Pending> {
        let pending = self.pending.remove(&token)?;
        if let Some(instance) = &pending.instance {
            if let Some(tokens) = self.instances.get_mut(instance) {
                tokens.retain(|t| *t != token);
                if tokens.is_empty() {
                    self.instances.remove(instance);
                }
            }
        }
        Some(pending)
    }
}

impl NatsBus {
    /// Connects to the NATS server at `url` (`nats://host:port`; several separated by commas).
    ///
    /// # Errors
    ///
    /// [`ConnectError`] if no server answers within [`NatsOptions::connect_timeout`], naming the
    /// URL and the cause. After this first connection, losses are handled by reconnecting.
    pub async fn connect(url: &str, options: NatsOptions) -> Result<NatsBus, ConnectError> {
        let fail = |reason: String| ConnectError { url: url.to_owned(), reason };
        let inner = Arc::new(Inner {
            connected: watch::channel(false).0,
            was_lost: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            requests: Mutex::new(Requests::default()),
            next_token: AtomicU64::new(1),
            tick: AtomicU64::new(0),
            // The client's own inbox form, `_INBOX.<random>`, with our token after it.
            inbox_prefix: format!("_INBOX.{}.", contract::instance_id()),
            dropped: AtomicU64::new(0),
            failed_on_disconnect: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        });
        let events = Arc::downgrade(&inner);
        let max_delay = options.max_reconnect_delay;
        let (connect_options, credentials) = client_options(url, &options.auth).map_err(fail)?;
        let tls = &options.auth.tls;
        let client = connect_options
            .name(&options.name)
            .connection_timeout(options.connect_timeout)
            .ping_interval(options.ping_interval)
            .subscription_capacity(options.subscription_capacity.max(1))
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, max_delay))
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    if let Some(inner) = events.upgrade() {
                        inner.on_event(event);
                    }
                }
            })
            // A cluster's servers, comma-separated: the client takes them as a list.
            .connect(url.split(',').map(str::trim).collect::<Vec<_>>())
            .await
            .map_err(|e| fail(explain_connect_error(&e, &credentials, tls)))?;
        // The callback's `Connected` may come after `connect` returns; the client's own state
        // is authoritative now.
        inner.connected.send_replace(client.connection_state() == State::Connected);

        let inbox = client
            .subscribe(format!("{}*", inner.inbox_prefix))
            .await
            .map_err(|e| fail(format!("cannot subscribe to the reply inbox: {e}")))?;
        let stop = CancellationToken::new();
        tokio::spawn(route_answers(inbox, Arc::downgrade(&inner), stop.clone()));
        if let Some(notify_after) = options.notify_after {
            let watch = Watchdog {
                inner: Arc::downgrade(&inner),
                client: client.clone(),
                presume_lost: notify_after + options.lost_after,
                probe_interval: options.probe_interval,
            };
            tokio::spawn(watch.run(stop.clone()));
        }
        info!(url, name = options.name, "connected to NATS");
        let notify_ms = options.notify_after.map(|after| after.as_millis().max(1).to_string());
        let lane_tls = lane_tls(url, &options.auth.tls);
        let client = Arc::new(client);
        Ok(NatsBus {
            client,
            inner,
            options,
            notify_ms,
            urls: url.to_owned(),
            lane_tls,
            credentials,
            lane: std::sync::OnceLock::new(),
            stop: stop.clone(),
            _stop: stop.drop_guard(),
        })
    }

    /// Opens the call lane now rather than at the first call or answer (which, with the few
    /// after it, takes the main connection while the lane connects). Does nothing if it is open
    /// or off ([`NatsOptions::call_lane`]). A gateway opens it at start; a service at its first
    /// answer.
    pub fn open_call_lane(&self) {
        self.lane();
    }

    /// The call lane, opened at the first use; `None` when it is off.
    fn lane(&self) -> Option<&Lane> {
        if !self.options.call_lane {
            return None;
        }
        let lane = self.lane.get_or_init(|| {
            // It needs the runtime for its tasks; without one it stays off.
            tokio::runtime::Handle::try_current().ok()?;
            let options = LaneOptions {
                name: self.options.name.clone(),
                connect_timeout: self.options.connect_timeout,
                ping_interval: self.options.ping_interval,
                max_reconnect_delay: self.options.max_reconnect_delay,
                credentials: self.credentials.clone(),
                tls: self.lane_tls.clone(),
            };
            let prefix = format!("_INBOX.{}.", contract::instance_id());
            let answers = Arc::downgrade(&self.inner);
            Lane::start(&self.urls, prefix, options, answers, self.stop.clone())
        });
        lane.as_ref()
    }

    /// The underlying client, for what the bus does not cover (JetStream key-value buckets).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Whether calls take the call lane now (see [`NatsOptions::call_lane`]).
    pub fn call_lane_connected(&self) -> bool {
        self.lane.get().and_then(Option::as_ref).is_some_and(Lane::is_up)
    }

    /// Waits until the connection is up (at once if it is).
    pub async fn connected(&self) {
        let mut state = self.inner.connected.subscribe();
        let _ = state.wait_for(|up| *up).await;
    }

    pub fn stats(&self) -> NatsBusStats {
        NatsBusStats {
            dropped: self.inner.dropped.load(Ordering::Relaxed),
            failed_on_disconnect: self.inner.failed_on_disconnect.load(Ordering::Relaxed),
            lost: self.inner.lost.load(Ordering::Relaxed),
            reconnects: self.inner.reconnects.load(Ordering::Relaxed),
        }
    }

    /// [`BusError::Disconnected`] unless connected.
    fn check_connected(&self) -> Result<(), BusError> {
        if Bus::is_connected(self) {
            Ok(())
        } else {
            Err(BusError::Disconnected { reason: "the connection to NATS is down".into() })
        }
    }

    /// Checks a message before anything is sent (subject, connection, headers, size) and turns
    /// its headers into NATS's.
    fn prepare(
        &self,
        subject: &str,
        headers: Headers,
        payload: &Bytes,
    ) -> Result<Option<HeaderMap>, BusError> {
        subject::validate_subject(subject)?;
        self.check_connected()?;
        let headers = to_nats_headers(headers)?;
        self.check_size(&headers, payload)?;
        Ok(headers)
    }

    /// [`BusError::TooLarge`] unless headers and payload fit the server's `max_payload`.
    fn check_size(&self, headers: &Option<HeaderMap>, payload: &Bytes) -> Result<(), BusError> {
        let max = self.client.max_payload();
        let size = payload.len() + headers.as_ref().map_or(0, header_bytes);
        if size > max { Err(BusError::TooLarge { size, max }) } else { Ok(()) }
    }

    /// The contract's headers of a call (`docs/bus.md`), each handed to `each` as a name and a
    /// value, straight from its metadata: one place says what a call carries, whichever
    /// connection takes it.
    fn each_call_header(
        &self,
        route: &MethodRoute,
        meta: &CallMeta,
        watched: bool,
        mut each: impl FnMut(&str, &str),
    ) -> Result<(), BusError> {
        each(header::METHOD, &route.nats.method_id);
        if let Some(deadline) = meta.deadline {
            // As of the caller's receipt of the call: a clock reading per call costs more than
            // the microseconds since.
            let now = meta.received.unwrap_or_else(std::time::Instant::now);
            let left = deadline.saturating_duration_since(now);
            let ms = contract::timeout_ms(left);
            each(header::TIMEOUT_MS, crate::call::decimal(ms, &mut [0; 20]));
        }
        if let Some(id) = meta.call_id {
            each(header::CALL_ID, &id.header());
            each(header::TRACE_ID, &id.trace_id());
        }
        if let (true, Some(ms)) = (watched, &self.notify_ms) {
            each(header::NOTIFY_MS, ms);
        }
        if let Some(identity) = &meta.identity {
            let mut extra = Headers::new();
            crate::call::identity_headers(&mut extra, Some(identity));
            for (name, value) in extra {
                check_header(&name, &value)?;
                each(&name, &value);
            }
        }
        Ok(())
    }

    /// A call's headers as NATS's header map, for the main connection.
    fn call_headers(
        &self,
        route: &MethodRoute,
        meta: &CallMeta,
        watched: bool,
    ) -> Result<HeaderMap, BusError> {
        let mut map = HeaderMap::new();
        self.each_call_header(route, meta, watched, |name, value| {
            map.append(known_or_checked(name), HeaderValue::from(value));
        })?;
        Ok(map)
    }

    /// A call's headers as a NATS header block (`NATS/1.0`, a line each, a blank line), for the
    /// call lane.
    fn encode_call_headers(
        &self,
        out: &mut Vec<u8>,
        route: &MethodRoute,
        meta: &CallMeta,
        watched: bool,
    ) -> Result<(), BusError> {
        out.extend_from_slice(b"NATS/1.0\r\n");
        self.each_call_header(route, meta, watched, |name, value| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        })?;
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Publishes on the lane if it is up (`None` otherwise: the caller takes the main
    /// connection), after the checks the main connection makes.
    fn publish_on_lane(
        &self,
        lane: &Lane,
        subject: &str,
        headers: &Headers,
        payload: &Bytes,
    ) -> Option<Result<(), BusError>> {
        let checked = subject::validate_subject(subject).and_then(|()| self.check_connected());
        if let Err(e) = checked {
            return Some(Err(e));
        }
        let mut block = Vec::new();
        if !headers.is_empty() {
            block.extend_from_slice(b"NATS/1.0\r\n");
            for (name, value) in headers.iter() {
                if let Err(e) = check_header(name, value) {
                    return Some(Err(e));
                }
                block.extend_from_slice(name.as_bytes());
                block.extend_from_slice(b": ");
                block.extend_from_slice(value.as_bytes());
                block.extend_from_slice(b"\r\n");
            }
            block.extend_from_slice(b"\r\n");
        }
        let (size, max) = (block.len() + payload.len(), self.client.max_payload());
        if size > max {
            return Some(Err(BusError::TooLarge { size, max }));
        }
        lane.publish(subject, &block, payload).then_some(Ok(()))
    }

    /// Sends a call on the lane if it is up (`None` otherwise: the caller takes the main
    /// connection).
    fn call_on_lane(
        &self,
        lane: &Lane,
        route: &MethodRoute,
        meta: &CallMeta,
        payload: &Bytes,
    ) -> Option<Call> {
        let watched = self.notify_ms.is_some();
        let mut headers = Vec::with_capacity(256);
        if let Err(e) = self.encode_call_headers(&mut headers, route, meta, watched) {
            return Some(Call::ready(Err(e.into())));
        }
        let (size, max) = (headers.len() + payload.len(), self.client.max_payload());
        if size > max {
            return Some(Call::ready(Err(BusError::TooLarge { size, max }.into())));
        }
        let inner = &self.inner;
        let token = inner.next_token.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        let tick = inner.tick.load(Ordering::Relaxed);
        let sent = lane.request(route.nats.subject.as_str(), token, &headers, payload, || {
            let entry = Pending { answer, tick, watched, instance: None, lane: true };
            inner.requests.lock().expect("pending requests").pending.insert(token, entry);
        });
        if !sent {
            return None;
        }
        // Made before the future: dropped unpolled, it still forgets the request and cancels.
        let waiting = Forget { inner: self.inner.clone(), token: Some(token) };
        let cancel = CancelOnDrop(meta.call_id.map(|call_id| Cancel {
            client: self.client.clone(),
            lane: Some(lane.clone()),
            subject: route.cancel_subject().clone(),
            call_id,
        }));
        let subject = route.nats.subject.clone();
        Some(Call::boxed(async move {
            let (mut waiting, mut cancel) = (waiting, cancel);
            let answer = answered.await;
            // Whatever came, the entry is out of the map already.
            waiting.token = None;
            cancel.disarm();
            answer_of(outcome(&subject, answer)?)
        }))
    }

    /// Sends a request and waits for its answer (no timeout: the caller bounds it). The entry
    /// in the pending map is removed however the future ends.
    fn exchange(
        &self,
        subject: async_nats::Subject,
        headers: Option<HeaderMap>,
        payload: Bytes,
        watched: bool,
    ) -> impl Future<Output = Result<async_nats::Message, BusError>> + Send + 'static {
        let client = self.client.clone();
        let inner = self.inner.clone();
        async move {
            let token = inner.next_token.fetch_add(1, Ordering::Relaxed);
            let (answer, answered) = oneshot::channel();
            let tick = inner.tick.load(Ordering::Relaxed);
            let entry = Pending { answer, tick, watched, instance: None, lane: false };
            inner.requests.lock().expect("pending requests").pending.insert(token, entry);
            // Forgets the request however this future ends (timeout, drop), unless answered.
            let mut pending = Forget { inner: inner.clone(), token: Some(token) };
            // Registered before this check: a loss from now on fails it through the map.
            if !*inner.connected.borrow() {
                return Err(BusError::Disconnected {
                    reason: "the connection to NATS is down".into(),
                });
            }
            let mut reply = Vec::with_capacity(inner.inbox_prefix.len() + 20);
            reply.extend_from_slice(inner.inbox_prefix.as_bytes());
            push_decimal(&mut reply, token);
            let reply = String::from_utf8(reply).expect("an inbox subject is ASCII");
            let sent = match headers {
                Some(h) => {
                    client.publish_with_reply_and_headers(subject.clone(), reply, h, payload).await
                }
                None => client.publish_with_reply(subject.clone(), reply, payload).await,
            };
            sent.map_err(|e| BusError::Disconnected { reason: e.to_string() })?;
            let answer = answered.await;
            // Whatever came, the entry is out of the map already.
            pending.token = None;
            outcome(&subject, answer)
        }
    }
}

/// What a request waiting on `subject` got, as the bus reports it.
fn outcome(
    subject: &async_nats::Subject,
    answer: Result<Outcome, oneshot::error::RecvError>,
) -> Result<async_nats::Message, BusError> {
    match answer {
        Err(_) => Err(BusError::Disconnected { reason: "the bus closed".into() }),
        Ok(Err(Failed::Lost(reason))) => {
            Err(BusError::Lost { subject: subject.to_string(), reason })
        }
        Ok(Err(Failed::Disconnected)) => Err(BusError::Disconnected {
            reason: "the connection to NATS dropped while waiting for the answer".into(),
        }),
        Ok(Ok(message)) if message.status == Some(StatusCode::NO_RESPONDERS) => {
            Err(BusError::NoResponders { subject: subject.to_string() })
        }
        Ok(Ok(message)) => Ok(message),
    }
}

/// A call's answer: its payload, or the failure its status headers carry.
fn answer_of(message: async_nats::Message) -> Result<Bytes, Failure> {
    match message.headers.as_ref().and_then(status_from_nats) {
        None => Ok(message.payload),
        Some(status) => Err(Failure { status, details: message.payload }),
    }
}

impl fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBus")
            .field("options", &self.options)
            .field("connected", &Bus::is_connected(self))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Bus for NatsBus {
    fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<(), BusError>> {
        // Answers (to a caller's inbox: no order to keep with anything else) ride the lane when
        // it is up, many in one write.
        if subject.starts_with("_INBOX.") {
            if let Some(lane) = self.lane() {
                if let Some(sent) = self.publish_on_lane(lane, subject, &headers, &payload) {
                    return Box::pin(std::future::ready(sent));
                }
            }
        }
        let prepared = self.prepare(subject, headers, &payload);
        let subject = subject.to_owned();
        Box::pin(async move {
            let sent = match prepared? {
                Some(h) => self.client.publish_with_headers(subject, h, payload).await,
                None => self.client.publish(subject, payload).await,
            };
            sent.map_err(|e| BusError::Disconnected { reason: e.to_string() })
        })
    }

    fn request(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<BusMessage, BusError>> {
        let mut headers = headers;
        let watched = match &self.notify_ms {
            Some(ms) if subject.starts_with("rpc.") => {
                headers.insert(header::NOTIFY_MS, ms.clone());
                true
            }
            _ => false,
        };
        let prepared = self.prepare(subject, headers, &payload);
        let subject = subject.to_owned();
        Box::pin(async move {
            let headers = prepared?;
            let exchange = self.exchange(subject.as_str().into(), headers, payload, watched);
            match tokio::time::timeout(timeout, exchange).await {
                Err(_) => Err(BusError::Timeout { subject, timeout }),
                Ok(answer) => answer.map(from_nats),
            }
        })
    }

    fn subscribe(
        &self,
        pattern: &str,
        queue_group: Option<&str>,
    ) -> BoxFuture<'_, Result<Subscription, BusError>> {
        let valid = subject::validate_pattern(pattern);
        let pattern = pattern.to_owned();
        let queue_group = queue_group.map(str::to_owned);
        Box::pin(async move {
            valid?;
            let subscribed = match queue_group {
                Some(group) => self.client.queue_subscribe(pattern, group).await,
                None => self.client.subscribe(pattern).await,
            };
            let subscriber =
                subscribed.map_err(|e| BusError::Disconnected { reason: e.to_string() })?;
            Ok(Subscription::from_stream(Box::new(NatsStream(subscriber))))
        })
    }

    fn gather(
        &self,
        subject: &str,
        payload: Bytes,
        window: Duration,
    ) -> BoxFuture<'_, Result<Vec<BusMessage>, BusError>> {
        let checked = self.prepare(subject, Headers::new(), &payload);
        let subject = subject.to_owned();
        Box::pin(async move {
            checked?;
            let disconnected =
                |e: &dyn std::fmt::Display| BusError::Disconnected { reason: e.to_string() };
            let inbox = self.client.new_inbox();
            let answers =
                self.client.subscribe(inbox.clone()).await.map_err(|e| disconnected(&e))?;
            self.client
                .publish_with_reply(subject, inbox, payload)
                .await
                .map_err(|e| disconnected(&e))?;
            self.client.flush().await.map_err(|e| disconnected(&e))?;
            let answers = Subscription::from_stream(Box::new(NatsStream(answers)));
            Ok(crate::collect_answers(answers, window).await)
        })
    }

    fn call(&self, route: &MethodRoute, meta: CallMeta, payload: Bytes) -> Call {
        // The bus is up when its main connection is, the lane or not: calls, subscriptions and
        // readiness agree.
        if let Err(e) = self.check_connected() {
            return Call::ready(Err(e.into()));
        }
        if let Some(lane) = self.lane() {
            if let Some(call) = self.call_on_lane(lane, route, &meta, &payload) {
                return call;
            }
        }
        let watched = self.notify_ms.is_some();
        let prepared = self.call_headers(route, &meta, watched).and_then(|headers| {
            let headers = Some(headers);
            self.check_size(&headers, &payload)?;
            Ok(headers)
        });
        let headers = match prepared {
            Ok(headers) => headers,
            Err(e) => return Call::ready(Err(e.into())),
        };
        let exchange = self.exchange(route.nats.subject.clone(), headers, payload, watched);
        // Tells the service when the caller drops the call before its answer.
        let mut cancel = CancelOnDrop(meta.call_id.map(|call_id| Cancel {
            client: self.client.clone(),
            lane: None,
            subject: route.cancel_subject().clone(),
            call_id,
        }));
        Call::boxed(async move {
            let answer = exchange.await;
            cancel.disarm();
            answer_of(answer?)
        })
    }

    fn send(
        &self,
        route: &MethodRoute,
        meta: CallMeta,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<(), BusError>> {
        let prepared = self.check_connected().and_then(|()| {
            let headers = Some(self.call_headers(route, &meta, false)?);
            self.check_size(&headers, &payload)?;
            Ok(headers)
        });
        let subject = route.nats.subject.clone();
        let client = self.client.clone();
        Box::pin(async move {
            let headers = prepared?.unwrap_or_default();
            let sent = client.publish_with_headers(subject, headers, payload).await;
            sent.map_err(|e| BusError::Disconnected { reason: e.to_string() })
        })
    }

    fn max_payload(&self) -> usize {
        self.client.max_payload()
    }

    fn shared_history(&self) -> Option<Arc<dyn crate::history::SharedHistory>> {
        let history = history::JetStreamHistory::new((*self.client).clone());
        Some(Arc::new(history))
    }

    fn is_connected(&self) -> bool {
        *self.inner.connected.borrow()
    }

    fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

/// A subscription read straight from the client's own queue (no task in between).
struct NatsStream(async_nats::Subscriber);

impl MessageStream for NatsStream {
    fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<BusMessage>> {
        self.0.poll_next_unpin(cx).map(|message| message.map(from_nats))
    }

    fn unsubscribe(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.0.unsubscribe().await {
                debug!(cause = %e, "unsubscribing failed; the connection is going");
            }
        })
    }
}

/// Publishes a call's cancellation (`docs/bus.md`, "Cancellation") when the caller drops the
/// call before the answer came: on the lane the call took (after the request, in order), or
/// else from a task, since a drop cannot wait.
struct CancelOnDrop(Option<Cancel>);

struct Cancel {
    client: Arc<async_nats::Client>,
    lane: Option<Lane>,
    subject: crate::Subject,
    call_id: CallId,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(Cancel { client, lane, subject, call_id }) = self.0.take() else { return };
        if let Some(lane) = lane {
            let mut headers = Vec::with_capacity(64);
            headers.extend_from_slice(b"NATS/1.0\r\n");
            headers.extend_from_slice(header::CALL_ID.as_bytes());
            headers.extend_from_slice(b": ");
            headers.extend_from_slice(call_id.header().as_bytes());
            headers.extend_from_slice(b"\r\n\r\n");
            if lane.publish(subject.as_str(), &headers, b"") {
                return;
            }
        }
        let subject = subject.as_str().to_owned();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let mut headers = HeaderMap::new();
            headers
                .insert(known_or_checked(header::CALL_ID), HeaderValue::from(call_id.to_string()));
            if let Err(e) = client.publish_with_headers(subject, headers, Bytes::new()).await {
                debug!(cause = %e, "could not publish a cancellation");
            }
        });
    }
}

/// Removes a request from the pending map when dropped.
struct Forget {
    inner: Arc<Inner>,
    /// `None` once the answer came (the entry left the map with it).
    token: Option<u64>,
}

impl Drop for Forget {
    fn drop(&mut self) {
        if let Some(token) = self.token {
            self.inner.requests.lock().expect("pending requests").remove(token);
        }
    }
}

impl Inner {
    /// The connection's events: tracks whether it is up and counts its comebacks; fails the
    /// requests waiting when it drops; counts messages dropped for slow subscriptions; logs the
    /// rest.
    fn on_event(&self, event: async_nats::Event) {
        match event {
            async_nats::Event::Connected => {
                // The first connection's event is no comeback. Counted before the state
                // changes, so whoever waits for the connection sees the count.
                if self.was_lost.swap(false, Ordering::Relaxed) {
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    info!("NATS connection restored");
                }
                self.connected.send_replace(true);
            }
            async_nats::Event::Disconnected => {
                self.was_lost.store(true, Ordering::Relaxed);
                if self.connected.send_replace(false) {
                    warn!("NATS connection lost; calls fail with `unavailable` until it is back");
                }
                // After the state changed: a request registered later sees it down.
                let waiting = std::mem::take(&mut self.requests.lock().expect("requests").pending);
                self.failed_on_disconnect.fetch_add(waiting.len() as u64, Ordering::Relaxed);
                for (_, pending) in waiting {
                    let _ = pending.answer.send(Err(Failed::Disconnected));
                }
            }
            async_nats::Event::Closed => {
                self.connected.send_replace(false);
                info!("NATS connection closed");
            }
            async_nats::Event::SlowConsumer(sid) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                debug!(sid, "NATS: a subscription cannot keep up; the client drops its messages");
            }
            other => warn!(event = %other, "NATS"),
        }
    }
}

/// The `async-nats` options for `auth` on the servers of `url` (comma-separated), and the
/// credentials they carry. The client does not read credentials from its URLs: the first URL's
/// are given to it, unless `auth` has credentials too, which is an error.
///
/// # Errors
///
/// Credentials both in the URL and in `auth`.
pub fn client_options(
    url: &str,
    auth: &NatsAuth,
) -> Result<(async_nats::ConnectOptions, NatsCredentials), String> {
    let credentials = match (url_credentials(url), &auth.credentials) {
        (in_url, NatsCredentials::None) => in_url,
        (NatsCredentials::None, given) => given.clone(),
        (in_url, given) => {
            return Err(format!(
                "credentials given twice: {} in the URL and {} in the settings",
                in_url.describe(),
                given.describe()
            ));
        }
    };
    let mut connect_options = match &credentials {
        NatsCredentials::None => async_nats::ConnectOptions::new(),
        NatsCredentials::UserPassword { user, password } => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        NatsCredentials::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
        NatsCredentials::NKey { seed, .. } => async_nats::ConnectOptions::with_nkey(seed.clone()),
        NatsCredentials::Jwt { jwt, seed, .. } => {
            let seed: Arc<str> = seed.as_str().into();
            async_nats::ConnectOptions::with_jwt(jwt.clone(), move |nonce| {
                let seed = seed.clone();
                async move {
                    let key =
                        nkeys::KeyPair::from_seed(&seed).map_err(async_nats::AuthError::new)?;
                    key.sign(&nonce).map_err(async_nats::AuthError::new)
                }
            })
        }
    };
    let tls = &auth.tls;
    if let Some(ca) = &tls.ca {
        connect_options = connect_options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &tls.client_cert {
        connect_options = connect_options.add_client_certificate(cert.clone(), key.clone());
    }
    if tls.enabled() {
        connect_options = connect_options.require_tls(true);
    }
    Ok((connect_options, credentials))
}

/// Connects a plain `async-nats` client to the servers of `url` with `auth`, as `name`, for
/// what a process needs besides its bus (a JetStream bucket on a connection of its own).
///
/// # Errors
///
/// As [`NatsBus::connect`].
pub async fn connect_client(
    url: &str,
    auth: &NatsAuth,
    name: &str,
) -> Result<async_nats::Client, ConnectError> {
    let fail = |reason: String| ConnectError { url: url.to_owned(), reason };
    let (options, credentials) = client_options(url, auth).map_err(fail)?;
    options
        .name(name)
        .connect(url.split(',').map(str::trim).collect::<Vec<_>>())
        .await
        .map_err(|e| fail(explain_connect_error(&e, &credentials, &auth.tls)))
}

/// The call lane's TLS connector when the connection is TLS (settings, or `tls://` URLs);
/// `None` without TLS, or when it cannot be set up (logged: the lane stays off).
fn lane_tls(urls: &str, tls: &NatsTls) -> Option<tokio_rustls::TlsConnector> {
    let tls_urls = urls.split(',').any(|url| url.trim().starts_with("tls://"));
    if !tls.enabled() && !tls_urls {
        return None;
    }
    match auth::lane_connector(tls) {
        Ok(connector) => Some(connector),
        Err(e) => {
            warn!(cause = %e, "the NATS call lane cannot set up TLS; calls take the main connection");
            None
        }
    }
}

/// The credentials of the first of `urls` (comma-separated) that has any.
fn url_credentials(urls: &str) -> NatsCredentials {
    urls.split(',')
        .filter_map(|url| url.trim().parse::<async_nats::ServerAddr>().ok())
        .map(|addr| lane::credentials(&addr))
        .find(|c| !c.is_none())
        .unwrap_or_default()
}

/// Why the first connection failed, in words that name what to fix: the credentials the server
/// refused, or the TLS settings it could not be reached with.
fn explain_connect_error(
    e: &async_nats::ConnectError,
    credentials: &NatsCredentials,
    tls: &NatsTls,
) -> String {
    use async_nats::ConnectErrorKind as Kind;
    match e.kind() {
        Kind::AuthorizationViolation if credentials.is_none() => {
            "the server requires credentials and none were given (authorization violation)"
                .to_owned()
        }
        Kind::AuthorizationViolation => {
            format!("the server refused {} (authorization violation)", credentials.describe())
        }
        Kind::Authentication => format!("cannot sign with {}: {e}", credentials.describe()),
        Kind::Tls | Kind::Io if tls.enabled() && e.to_string().contains("certificate") => {
            let ca = match &tls.ca {
                Some(ca) => format!("the CA in `{}`", ca.display()),
                None => "the system's CA certificates".to_owned(),
            };
            format!("TLS failed (the server's certificate checked against {ca}): {e}")
        }
        _ => e.to_string(),
    }
}

/// Hands each answer on the inbox to the request waiting for its token.
async fn route_answers(
    mut inbox: async_nats::Subscriber,
    inner: std::sync::Weak<Inner>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            message = inbox.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let Some(inner) = inner.upgrade() else { return };
        let token = message
            .subject
            .strip_prefix(inner.inbox_prefix.as_str())
            .and_then(|token| token.parse::<u64>().ok());
        let Some(token) = token else { continue };
        inner.answer(token, message);
    }
}

impl Answers for Inner {
    fn answer(&self, token: u64, message: async_nats::Message) {
        let running = message.headers.as_ref().and_then(|h| h.get(header::RUNNING));
        if let Some(instance) = running {
            note_running(self, token, instance.as_str());
            return;
        }
        let waiting = self.requests.lock().expect("pending requests").remove(token);
        match waiting {
            Some(pending) => {
                let _ = pending.answer.send(Ok(message));
            }
            // Late: the request timed out or was abandoned.
            None => debug!(token, "discarding an answer nobody waits for"),
        }
    }

    fn lost(&self) {
        let failed: Vec<Pending> = {
            let mut requests = self.requests.lock().expect("pending requests");
            let on_lane: Vec<u64> =
                requests.pending.iter().filter(|(_, p)| p.lane).map(|(t, _)| *t).collect();
            on_lane.into_iter().filter_map(|token| requests.remove(token)).collect()
        };
        self.failed_on_disconnect.fetch_add(failed.len() as u64, Ordering::Relaxed);
        for pending in failed {
            let _ = pending.answer.send(Err(Failed::Disconnected));
        }
    }
}

/// Records that `instance` runs request `token` (a running notice).
fn note_running(inner: &Inner, token: u64, instance: &str) {
    if subject::validate_subject(instance).is_err() {
        debug!(instance, "ignoring a running notice with an invalid instance subject");
        return;
    }
    let mut requests = inner.requests.lock().expect("pending requests");
    let Some(pending) = requests.pending.get_mut(&token) else { return };
    if pending.instance.is_some() {
        return;
    }
    let instance: Arc<str> = instance.into();
    pending.instance = Some(instance.clone());
    requests.instances.entry(instance).or_default().push(token);
}

/// Fails the calls of instances that stopped, and calls nobody confirmed.
struct Watchdog {
    inner: std::sync::Weak<Inner>,
    client: async_nats::Client,
    /// A watched call with neither answer nor notice this long after sending is lost.
    presume_lost: Duration,
    probe_interval: Duration,
}

impl Watchdog {
    async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.probe_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let this = Arc::new(self);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(inner) = this.inner.upgrade() else { return };
            let now = inner.tick.fetch_add(1, Ordering::Relaxed) + 1;
            // While disconnected, requests fail by themselves; nothing is presumed lost.
            if !*inner.connected.borrow() {
                continue;
            }
            let (lost, probes) = this.sweep(&inner, now);
            for pending in lost {
                inner.lost.fetch_add(1, Ordering::Relaxed);
                let reason = format!(
                    "no service instance confirmed having it within {} ms; the instance that \
                     took it has probably stopped",
                    this.presume_lost.as_millis()
                );
                let _ = pending.answer.send(Err(Failed::Lost(reason)));
            }
            for instance in probes {
                tokio::spawn(this.clone().probe(inner.clone(), instance));
            }
        }
    }

    /// Takes out the calls presumed lost; lists the instances to ping (those holding calls and
    /// not being pinged already).
    fn sweep(&self, inner: &Inner, now: u64) -> (Vec<Pending>, Vec<Arc<str>>) {
        // A call sent at tick `t` has been out at least (now - t - 1) whole intervals.
        let interval = self.probe_interval.as_nanos().max(1);
        let ticks = self.presume_lost.as_nanos().div_ceil(interval) as u64 + 1;
        let mut requests = inner.requests.lock().expect("pending requests");
        let lost: Vec<u64> = requests
            .pending
            .iter()
            .filter(|(_, p)| p.watched && p.instance.is_none() && now - p.tick >= ticks)
            .map(|(token, _)| *token)
            .collect();
        let lost = lost.into_iter().filter_map(|t| requests.remove(t)).collect();
        let probes: Vec<Arc<str>> =
            requests.instances.keys().filter(|i| !requests.probing.contains(*i)).cloned().collect();
        requests.probing.extend(probes.iter().cloned());
        (lost, probes)
    }

    /// Pings `instance`; if it is gone, fails every call it held.
    async fn probe(self: Arc<Self>, inner: Arc<Inner>, instance: Arc<str>) {
        let ping = async_nats::Request::new().timeout(Some(self.probe_interval * 4));
        let answer = self.client.send_request(instance.to_string(), ping).await;
        let gone =
            matches!(&answer, Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders);
        let failed = {
            let mut requests = inner.requests.lock().expect("pending requests");
            requests.probing.remove(&instance);
            if gone {
                let tokens = requests.instances.remove(&instance).unwrap_or_default();
                tokens.into_iter().filter_map(|t| requests.pending.remove(&t)).collect()
            } else {
                Vec::new()
            }
        };
        if gone {
            warn!(%instance, calls = failed.len(), "a service instance stopped; failing its calls");
        }
        for pending in failed {
            inner.lost.fetch_add(1, Ordering::Relaxed);
            let reason = format!("the service instance running it stopped (`{instance}`)");
            let _ = pending.answer.send(Err(Failed::Lost(reason)));
        }
    }
}

/// The contract's header names, as the static names our headers use and as NATS header names
/// made once: the common headers cross without parsing or allocating their names.
static KNOWN_HEADERS: [(&str, HeaderName); 11] = {
    use crate::contract::header::*;
    const fn known(name: &'static str) -> (&'static str, HeaderName) {
        (name, HeaderName::from_static(name))
    }
    [
        known(METHOD),
        known(TIMEOUT_MS),
        known(CALL_ID),
        known(IDENTITY),
        known(TRACE_ID),
        known(STATUS),
        known(MESSAGE),
        known(RETRYABLE),
        known(ERROR_ID),
        known(NOTIFY_MS),
        known(RUNNING),
    ]
};

/// A header name that [`check_header`] accepted (or one of the contract's) as NATS's.
fn known_or_checked(name: &str) -> HeaderName {
    match KNOWN_HEADERS.iter().find(|(known, _)| *known == name) {
        Some((_, header)) => header.clone(),
        None => HeaderName::from_str(name).expect("a header name check_header accepted"),
    }
}

/// Appends one of our headers to a NATS header map.
///
/// # Errors
///
/// [`BusError::InvalidHeader`] for what NATS cannot carry (see [`to_nats_headers`]).
fn append_header(
    map: &mut HeaderMap,
    name: std::borrow::Cow<'static, str>,
    value: String,
) -> Result<(), BusError> {
    check_header(&name, &value)?;
    map.append(known_or_checked(&name), HeaderValue::from(value));
    Ok(())
}

/// [`BusError::InvalidHeader`] unless NATS can carry the header: a name of printable ASCII
/// without `:` or spaces, a value without line breaks.
fn check_header(name: &str, value: &str) -> Result<(), BusError> {
    let invalid =
        |reason| BusError::InvalidHeader { name: name.chars().take(64).collect(), reason };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(invalid("names are printable ASCII without `:` or spaces"));
    }
    if value.contains(['\r', '\n']) {
        return Err(invalid("values cannot contain line breaks"));
    }
    Ok(())
}

/// The status an answer's NATS headers carry, or `None` for a success (as
/// [`contract::status_from_headers`], without copying the headers first).
fn status_from_nats(headers: &HeaderMap) -> Option<Status> {
    let get = |name: &'static str| headers.get(known_or_checked(name)).map(HeaderValue::as_str);
    let code = get(header::STATUS)?.parse::<u8>().map_or(Code::Unknown, Code::from_u8);
    if code == Code::Ok {
        return None;
    }
    let message = get(header::MESSAGE).unwrap_or_default().to_owned();
    let retryable = get(header::RETRYABLE).map_or(code.retryable_by_default(), |v| v == "1");
    let error_id = get(header::ERROR_ID).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(Status::new(code, message).with_retryable(retryable).with_error_id(error_id))
}

fn from_nats(message: async_nats::Message) -> BusMessage {
    let mut headers = Headers::new();
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            let name: &str = name.as_ref();
            let known = KNOWN_HEADERS.iter().find(|(known, _)| *known == name);
            for value in values {
                let value = value.as_str().to_owned();
                match known {
                    Some((known, _)) => headers.append(*known, value),
                    None => headers.append(name.to_owned(), value),
                }
            }
        }
    }
    BusMessage {
        subject: message.subject.to_string(),
        headers,
        payload: message.payload,
        reply: message.reply.map(|r| r.to_string()),
    }
}

/// Our headers as NATS's; `None` when there are none (NATS then sends a plain `PUB`).
///
/// # Errors
///
/// [`BusError::InvalidHeader`] for a name that is not printable ASCII without `:`, or a value
/// with a line break: NATS cannot carry them (and its client would panic on them).
fn to_nats_headers(headers: Headers) -> Result<Option<HeaderMap>, BusError> {
    if headers.is_empty() {
        return Ok(None);
    }
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        append_header(&mut map, name, value)?;
    }
    Ok(Some(map))
}

/// The bytes `headers` take on the wire (`NATS/1.0\r\n`, `name: value\r\n` each, `\r\n`), as
/// nats-server counts them against `max_payload`.
fn header_bytes(headers: &HeaderMap) -> usize {
    let lines: usize = headers
        .iter()
        .map(|(name, values)| {
            let name: &str = name.as_ref();
            values.iter().map(|v| name.len() + 2 + v.as_str().len() + 2).sum::<usize>()
        })
        .sum();
    "NATS/1.0\r\n".len() + lines + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_grow_to_the_cap_with_jitter() {
        let max = Duration::from_secs(2);
        let first = reconnect_delay(1, max);
        assert!(first >= Duration::from_millis(37) && first <= Duration::from_millis(63));
        for attempts in [7, 20, usize::MAX] {
            let delay = reconnect_delay(attempts, max);
            assert!(delay >= Duration::from_millis(1500) && delay <= Duration::from_millis(2500));
        }
    }

    #[test]
    fn headers_nats_cannot_carry_are_refused_by_name() {
        let mut headers = Headers::new();
        headers.insert("rpc-message", "two\nlines");
        let err = to_nats_headers(headers).unwrap_err();
        assert!(matches!(err, BusError::InvalidHeader { ref name, .. } if name == "rpc-message"));
        let mut headers = Headers::new();
        headers.insert("bad name", "x");
        assert!(matches!(to_nats_headers(headers), Err(BusError::InvalidHeader { .. })));
        assert!(to_nats_headers(Headers::new()).unwrap().is_none());
    }

    #[test]
    fn header_bytes_count_the_wire_form() {
        let mut headers = Headers::new();
        headers.insert("a", "bc");
        let map = to_nats_headers(headers).unwrap().unwrap();
        // "NATS/1.0\r\n" + "a: bc\r\n" + "\r\n"
        assert_eq!(header_bytes(&map), 10 + 7 + 2);
    }
}
