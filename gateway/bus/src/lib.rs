//! The message bus between gateways and services.
//!
//! Gateways and services never talk to each other directly: a gateway sends each call as a bus
//! request to the subject of the method, and whichever instance of the service takes it answers on
//! the request's reply subject. Topics are bus subjects too. The [`Bus`] trait is all either side
//! sees; [`local::LocalBus`] implements it in memory (one process runs everything), and a NATS
//! implementation (`nats::NatsBus`, feature `nats`) implements it across machines. The semantics are NATS's, so
//! both behave alike: subjects are dot-separated tokens, subscriptions may use the wildcards `*`
//! (one token) and `>` (one or more trailing tokens), subscribers in the same queue group share
//! the messages (each message goes to one of them), a request nobody subscribes to fails at once
//! with [`BusError::NoResponders`].
//!
//! # Layout
//!
//! This file holds the [`Bus`] trait and what travels on it ([`BusMessage`], [`Headers`],
//! [`Subscription`]). Then one module per line, each using only those after it:
//!
//! - [`mod@topics`]: [`BusTopics`], publishing and subscribing to topics on the bus (what a service
//!   gives its generated client to publish).
//! - [`mod@calls`]: [`BusCalls`], calling a service's methods on the bus without a gateway (what a
//!   program gives its generated client to call another service).
//! - [`mod@switches`]: operator switches (a service disabled or read-only) shared by every gateway:
//!   [`SwitchStore`], in memory ([`MemorySwitches`]) or in a NATS key-value bucket
//!   (`NatsSwitches`, feature `nats`).
//! - `process` (feature `nats`): a service binary's `main`: connect to NATS, serve until a signal.
//! - [`mod@runtime`]: serves a generated service ([`gateway_core::Dispatch`]) on a bus, with a
//!   concurrency limit, cancellation and optional batching, and answers discovery requests
//!   (the NATS Services API, `$SRV.PING` and friends) for it.
//! - `nats` (feature `nats`): the bus over NATS, `NatsBus`.
//! - [`mod@local`]: the in-process bus.
//! - [`mod@history`]: a topic's recent events at positions, in memory, for subscribers that
//!   come back (the store of issue 19's recovery; not used by the buses yet).
//! - [`mod@call`]: calls, typed: [`CallMeta`] (what the contract's headers carry, as a struct),
//!   [`MethodRoute`] (a method's subjects, made once), the [`Call`] future, and the direct road
//!   from a caller to a service runtime in the same process ([`call::Endpoint`]).
//! - [`mod@contract`]: the subjects and headers gateways and services agree on (see `docs/bus.md`).
//! - [`mod@subject`]: subject syntax, wildcard matching, and [`Subject`], a checked subject that is
//!   cheap to clone.
//!
//! # Example
//!
//! Serving the example `SomeApi` on the in-process bus and calling `sum` as a gateway would:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use gateway_bus::contract::{self, header};
//! use gateway_bus::{Bus, Headers, LocalBus, ServiceRuntime};
//! use gateway_core::Message;
//! use some_api::{Calculator, ReplySumT, RequestSumT, SomeApiServer, DESCRIPTOR};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = Arc::new(LocalBus::new());
//! let shutdown = CancellationToken::new();
//! let service = Arc::new(SomeApiServer::new(Calculator::default()));
//! let serving = ServiceRuntime::new(bus.clone(), service).start(shutdown.clone()).await?;
//!
//! let sum = DESCRIPTOR.methods.iter().find(|m| m.name.ends_with(".sum")).ok_or("no sum")?;
//! let mut headers = Headers::new();
//! headers.insert(header::METHOD, sum.id.to_string());
//! headers.insert(header::TIMEOUT_MS, "1000");
//! let request = Message::pack(&RequestSumT { a: 40, b: 2 }).into_bytes();
//! let subject = contract::method_subject(sum);
//! let answer = bus.request(&subject, headers, request, Duration::from_secs(1)).await?;
//! assert_eq!(contract::status_from_headers(&answer.headers), None);
//! assert_eq!(Message::<ReplySumT>::from_bytes(answer.payload)?.get().sum(), 42);
//!
//! shutdown.cancel();
//! serving.stopped().await;
//! # Ok(())
//! # }
//! ```

pub mod call;
pub mod calls;
pub mod contract;
pub mod history;
pub mod local;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "nats")]
pub mod process;
pub mod runtime;
pub mod subject;
pub mod switches;
pub mod topics;

pub use call::{Answer, Call, CallId, CallMeta, Failure, MethodRoute, RouteCache};
pub use calls::BusCalls;
pub use local::{LocalBus, LocalBusOptions, LocalBusStats};
#[cfg(feature = "nats")]
pub use nats::{NatsBus, NatsBusStats, NatsOptions};
pub use runtime::{BatchOptions, ServeOptions, ServiceRuntime, Serving};
pub use subject::Subject;
#[cfg(feature = "nats")]
pub use switches::NatsSwitches;
pub use switches::{MemorySwitches, ServiceSwitches, SwitchStore};
pub use topics::{BusTopics, TopicSubscription};

use std::borrow::Cow;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::{BoxFuture, Code, Status};
use tokio::sync::mpsc;

/// Name/value pairs sent with a message, like NATS headers. Names are case-sensitive ASCII;
/// the order is kept. Names are usually the contract's constants, so a `&'static str` name is
/// kept as it is rather than copied into a `String` for every message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(Cow<'static, str>, String)>);

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Sets `name` to `value`, replacing every earlier value.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        let name = name.into();
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, value.into()));
    }

    /// Adds a value of `name`, keeping the earlier ones.
    pub fn append(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| n != name);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_ref(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for Headers {
    type Item = (Cow<'static, str>, String);
    type IntoIter = std::vec::IntoIter<(Cow<'static, str>, String)>;

    /// The name/value pairs, in order, owned.
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A message as a subscriber receives it.
#[derive(Clone, Debug)]
pub struct BusMessage {
    /// The subject it was published to (never a pattern).
    pub subject: String,
    pub headers: Headers,
    pub payload: Bytes,
    /// Where to publish the answer, for requests.
    pub reply: Option<String>,
}

/// Why a bus operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusError {
    /// Nobody subscribes to the subject of a request.
    NoResponders { subject: String },
    /// No answer came within the timeout.
    Timeout { subject: String, timeout: Duration },
    /// Every subscriber's queue is full: the bus sheds the message rather than grow.
    Overloaded { subject: String },
    /// The payload is larger than the bus carries.
    TooLarge { size: usize, max: usize },
    /// Not a valid subject (or pattern, for subscriptions).
    InvalidSubject { subject: String, reason: &'static str },
    /// A header the bus cannot carry (NATS: names are printable ASCII without `:`, values have
    /// no line breaks).
    InvalidHeader { name: String, reason: &'static str },
    /// The connection to the bus is gone (never for the in-process bus).
    Disconnected { reason: String },
    /// The request was taken but will not be answered: the instance serving it stopped, or
    /// nobody confirmed having it (NATS bus; see `docs/bus.md`, "Instances that stop").
    Lost { subject: String, reason: String },
}

impl BusError {
    /// The status a caller sees for this failure.
    pub fn to_status(&self) -> Status {
        let code = match self {
            BusError::NoResponders { .. }
            | BusError::Disconnected { .. }
            | BusError::Lost { .. } => Code::Unavailable,
            BusError::Timeout { .. } => Code::DeadlineExceeded,
            BusError::Overloaded { .. } => Code::ResourceExhausted,
            BusError::TooLarge { .. } => Code::ResourceExhausted,
            BusError::InvalidSubject { .. } | BusError::InvalidHeader { .. } => Code::Internal,
        };
        let status = Status::new(code, self.to_string());
        // Retrying a message that is too large cannot help.
        if matches!(self, BusError::TooLarge { .. }) {
            status.with_retryable(false)
        } else {
            status
        }
    }
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::NoResponders { subject } => write!(f, "nothing serves `{subject}`"),
            BusError::Timeout { subject, timeout } => {
                write!(f, "no answer on `{subject}` within {timeout:?}")
            }
            BusError::Overloaded { subject } => {
                write!(f, "every subscriber of `{subject}` is busy")
            }
            BusError::TooLarge { size, max } => {
                write!(f, "a {size}-byte message exceeds the bus's limit of {max} bytes")
            }
            BusError::InvalidSubject { subject, reason } => {
                write!(f, "invalid subject `{subject}`: {reason}")
            }
            BusError::InvalidHeader { name, reason } => {
                write!(f, "invalid header `{name}`: {reason}")
            }
            BusError::Disconnected { reason } => write!(f, "the bus is disconnected: {reason}"),
            BusError::Lost { subject, reason } => {
                write!(f, "the call on `{subject}` was lost: {reason}")
            }
        }
    }
}

impl std::error::Error for BusError {}

/// The message bus. Object-safe, so gateways and runtimes hold an `Arc<dyn Bus>` and never know
/// which implementation they talk to.
pub trait Bus: Send + Sync + 'static {
    /// Sends a message to every subscriber of `subject` (one per queue group). Succeeds whether or
    /// not anyone listens, as NATS does.
    fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<(), BusError>>;

    /// Sends a request to one subscriber of `subject` and waits up to `timeout` for its answer.
    ///
    /// # Errors
    ///
    /// [`BusError::NoResponders`] at once when nobody subscribes, [`BusError::Timeout`] when the
    /// answer does not come in time. Dropping the future abandons the request (a late answer is
    /// discarded).
    fn request(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<BusMessage, BusError>>;

    /// Subscribes to `subject`, which may contain wildcards. With a `queue_group`, the
    /// subscription shares the subject's messages with the group's other members. Dropping the
    /// [`Subscription`] unsubscribes.
    fn subscribe(
        &self,
        subject: &str,
        queue_group: Option<&str>,
    ) -> BoxFuture<'_, Result<Subscription, BusError>>;

    /// Sends a call of `route` (the contract's request on the method's subject) and returns its
    /// answer's future. The call is on its way before the future is first polled. The caller owns
    /// the deadline (`meta.deadline` tells the service; the bus does not time calls out) and
    /// cancels by dropping the [`Call`]. Failures of the bus (no responders, overload, a lost
    /// connection) come back as the answer's [`Failure`], with the status `docs/bus.md` names.
    fn call(&self, route: &MethodRoute, meta: CallMeta, payload: Bytes) -> Call;

    /// [`Bus::call`], with a cache the caller keeps for `route` (a gateway session keeps one per
    /// method): a bus may remember there where the route's calls go, for as long as its
    /// subscriptions do not change. The same call, the same semantics; only cheaper.
    fn call_cached(
        &self,
        route: &MethodRoute,
        cache: &mut RouteCache,
        meta: CallMeta,
        payload: Bytes,
    ) -> Call {
        let _ = cache;
        self.call(route, meta, payload)
    }

    /// Sends a fire-and-forget call of `route`: the request without a reply subject. Resolves
    /// once the bus has taken it (the in-process bus: at once).
    ///
    /// # Errors
    ///
    /// What the bus refuses (a payload too large, a lost connection); not what the service does.
    fn send(
        &self,
        route: &MethodRoute,
        meta: CallMeta,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<(), BusError>>;

    /// Subscribes a service instance to its calls: `subscribe(pattern, Some(group))`, and on a
    /// bus that carries calls inside one process ([`LocalBus`]), callers of this process hand
    /// their calls to `endpoint` directly, polling the handler themselves.
    fn subscribe_service(
        &self,
        pattern: &str,
        group: &str,
        endpoint: Arc<dyn call::Endpoint>,
    ) -> BoxFuture<'_, Result<Subscription, BusError>> {
        drop(endpoint);
        self.subscribe(pattern, Some(group))
    }

    /// The largest payload the bus carries.
    fn max_payload(&self) -> usize;

    /// Where this bus keeps topic histories for every gateway on it (JetStream, on NATS), if it
    /// does; `None`: each gateway keeps them in its memory (`history`).
    fn shared_history(&self) -> Option<Arc<dyn history::SharedHistory>> {
        None
    }

    /// Whether the bus can carry messages right now: `false` while a networked bus has lost its
    /// connection (and is reconnecting). Always `true` for the in-process bus.
    fn is_connected(&self) -> bool {
        true
    }

    /// Messages this handle's subscriptions lost because their queue was full (the subscriber
    /// fell behind), since the bus was made. On the in-process bus, every handle counts them
    /// all.
    fn dropped(&self) -> u64 {
        0
    }

    /// Sends a request to every subscriber of `subject` and collects the answers that arrive
    /// within `window`: a scatter-gather, as the Services API's discovery asks (`$SRV.PING`:
    /// every instance answers). The default, for a bus without it, is the one answer of
    /// [`Bus::request`] (none when nobody answers).
    ///
    /// # Errors
    ///
    /// What the bus refuses (an invalid subject, a lost connection).
    fn gather(
        &self,
        subject: &str,
        payload: Bytes,
        window: Duration,
    ) -> BoxFuture<'_, Result<Vec<BusMessage>, BusError>> {
        let request = self.request(subject, Headers::new(), payload, window);
        Box::pin(async move {
            match request.await {
                Ok(answer) => Ok(vec![answer]),
                Err(BusError::NoResponders { .. } | BusError::Timeout { .. }) => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        })
    }
}

/// Collects what `answers` brings until `window` passes.
async fn collect_answers(mut answers: Subscription, window: Duration) -> Vec<BusMessage> {
    let mut collected = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, answers.next()).await {
        collected.push(answer);
    }
    collected
}

/// A stream of the messages of one subscription. Bounded: an implementation that cannot deliver
/// because the subscription's queue is full drops the message (and counts it) rather than grow.
pub struct Subscription {
    source: Source,
}

enum Source {
    /// Messages a bus pushes into a bounded queue ([`LocalBus`]).
    Queue {
        messages: mpsc::Receiver<BusMessage>,
        /// Unsubscribes when dropped; `None` once [`Subscription::unsubscribe`] has.
        unsubscribe: Option<Box<dyn Send + Sync>>,
    },
    /// A bus's own stream (`NatsBus`: the client's subscription, read without a hop).
    Stream(Box<dyn MessageStream>),
}

/// A bus's own stream of a subscription's messages (see [`Subscription::from_stream`]).
pub trait MessageStream: Send + Sync + 'static {
    /// The next message, `None` once the subscription has ended.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<BusMessage>>;

    /// Stops new messages while keeping those already received (see
    /// [`Subscription::unsubscribe`]).
    fn unsubscribe(&mut self) -> BoxFuture<'_, ()>;
}

impl Subscription {
    /// A subscription fed through a bounded queue. `unsubscribe` is dropped (and so runs its
    /// `Drop`) when the subscription is, or by [`Subscription::unsubscribe`].
    pub fn new(
        messages: mpsc::Receiver<BusMessage>,
        unsubscribe: Box<dyn Send + Sync>,
    ) -> Subscription {
        Subscription { source: Source::Queue { messages, unsubscribe: Some(unsubscribe) } }
    }

    /// A subscription that is a bus's own stream; dropping it unsubscribes.
    pub fn from_stream(stream: Box<dyn MessageStream>) -> Subscription {
        Subscription { source: Source::Stream(stream) }
    }

    /// Stops new messages from coming while keeping those already queued: [`Subscription::next`]
    /// returns them, then `None`. This is how a service stops taking calls without losing the
    /// ones the bus already handed it. (A queue-fed subscription ends once the unsubscribe guard
    /// given to [`Subscription::new`] drops; [`local::LocalBus`] does that.)
    pub async fn unsubscribe(&mut self) {
        match &mut self.source {
            Source::Queue { unsubscribe, .. } => drop(unsubscribe.take()),
            Source::Stream(stream) => stream.unsubscribe().await,
        }
    }

    /// The next message, or `None` once the bus has closed the subscription.
    pub async fn next(&mut self) -> Option<BusMessage> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<BusMessage>> {
        match &mut self.source {
            Source::Queue { messages, .. } => messages.poll_recv(cx),
            Source::Stream(stream) => stream.poll_next(cx),
        }
    }
}

impl futures_core::Stream for Subscription {
    type Item = BusMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BusMessage>> {
        self.poll_message(cx)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}
