//! Calls, typed: what a caller (a gateway) hands the bus for one RPC, and what comes back.
//!
//! [`Bus::call`](crate::Bus::call) takes a [`MethodRoute`] (the method's subjects, checked once),
//! a [`CallMeta`] and the request's bytes, and returns a [`Call`]: a future of the answer. Inside
//! one process the metadata stays a struct all the way to the service: the in-process bus hands
//! the call straight to the service's runtime when it can ([`Endpoint`]), and the caller polls the
//! service's own future. Only the NATS bus turns the metadata into the contract's `rpc-*` headers
//! (`docs/bus.md`, [`CallMeta::to_headers`]) and back ([`CallMeta::from_headers`]).
//!
//! **Deadlines** have one owner, the caller: [`CallMeta::deadline`] tells the service how long the
//! caller waits, and the bus does not time calls out. **Cancellation** too: a caller that stops
//! waiting drops its [`Call`], and the bus tells the service (in process, the service's future is
//! dropped and its [`CallContext`](gateway_core::CallContext) signal fires; over NATS, a cancel
//! message goes to the service's cancel subject).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::{BoxFuture, Canceller, Identity, MethodDesc, ServiceDesc, Status};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::contract::{self, header};
use crate::subject::Subject;
use crate::{BusError, Headers};

/// Names one call among the calls of every gateway on the bus: the sending gateway's random
/// instance number and its counter. Services match cancellations by it. On NATS it is the
/// `rpc-call-id` header, `<instance as 16 hex digits>-<serial>`; the trace id (`rpc-trace-id`) is
/// the same two numbers as 32 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallId {
    pub instance: u64,
    pub serial: u64,
}

impl CallId {
    /// The `rpc-trace-id` value: 32 lower-case hex digits, the form of a W3C trace id.
    pub fn trace_id(&self) -> String {
        let mut id = String::with_capacity(32);
        push_hex(&mut id, self.instance);
        push_hex(&mut id, self.serial);
        id
    }

    /// The `rpc-call-id` value (as `to_string`, without the formatting machinery: it is made
    /// for every call sent over NATS).
    pub fn header(&self) -> String {
        let mut id = String::with_capacity(16 + 1 + 20);
        push_hex(&mut id, self.instance);
        id.push('-');
        id.push_str(decimal(self.serial, &mut [0; 20]));
        id
    }
}

/// `n` in decimal, written at the end of `buf` (without the formatting machinery).
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).expect("ASCII digits")
}

/// Appends `n` as 16 lower-case hex digits.
fn push_hex(out: &mut String, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.extend((0..16).rev().map(|i| char::from(DIGITS[((n >> (4 * i)) & 0xf) as usize])));
}

impl fmt::Display for CallId {
    /// The `rpc-call-id` value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header())
    }
}

/// Everything a call carries besides its request: the contract's headers, as a struct.
#[derive(Clone, Debug, Default)]
pub struct CallMeta {
    /// The method id (`rpc-method`).
    pub method_id: u32,
    /// When the caller stops waiting (`rpc-timeout-ms` is what is left of it when sent); `None`:
    /// no deadline.
    pub deadline: Option<Instant>,
    /// The call's id (`rpc-call-id`, `rpc-trace-id`); `None`: it cannot be cancelled remotely.
    pub call_id: Option<CallId>,
    /// The authenticated caller (`rpc-identity`, `rpc-claim-<name>`).
    pub identity: Option<Arc<Identity>>,
    /// When the caller received the call, if it knows: a service in the same process counts its
    /// processing time from then, without reading the clock again. Not sent over NATS.
    pub received: Option<Instant>,
}

impl CallMeta {
    /// The contract's headers for this call, with the time left as of `now`.
    pub fn to_headers(&self, now: Instant) -> Headers {
        let mut headers = Headers::new();
        headers.insert(header::METHOD, self.method_id.to_string());
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(now);
            headers.insert(header::TIMEOUT_MS, contract::timeout_header(left));
        }
        if let Some(id) = self.call_id {
            headers.insert(header::CALL_ID, id.to_string());
            headers.insert(header::TRACE_ID, id.trace_id());
        }
        identity_headers(&mut headers, self.identity.as_deref());
        headers
    }

    /// Reads a call's headers, as received at `received` (the deadline counts from then: the
    /// contract's timeout is relative). The method id comes from `rpc-method`, or else from
    /// `subject` (`rpc.<method>`) looked up in `service`; the call id, an opaque string in the
    /// contract, is not kept here (see [`call_id_header`]).
    ///
    /// # Errors
    ///
    /// `unimplemented` when no method can be found, `invalid_argument` for a malformed
    /// `rpc-method` or `rpc-timeout-ms`.
    pub fn from_headers(
        headers: &Headers,
        subject: &str,
        service: &'static ServiceDesc,
        received: Instant,
    ) -> Result<CallMeta, Status> {
        let method_id = match headers.get(header::METHOD) {
            Some(id) => id.parse::<u32>().map_err(|_| {
                Status::invalid_argument(format!("malformed `{}` header `{id}`", header::METHOD))
            })?,
            None => subject
                .strip_prefix("rpc.")
                .and_then(|name| service.methods.iter().find(|m| m.name == name))
                .map(|m| m.id)
                .ok_or_else(|| {
                    Status::unimplemented(format!("no method is served on `{subject}`"))
                })?,
        };
        let deadline = match headers.get(header::TIMEOUT_MS) {
            None => None,
            Some(value) => match value.parse::<u64>() {
                Ok(ms) => received.checked_add(Duration::from_millis(ms)),
                Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "malformed `{}` header `{value}`",
                        header::TIMEOUT_MS
                    )));
                }
            },
        };
        Ok(CallMeta {
            method_id,
            deadline,
            call_id: None,
            identity: identity_from_headers(headers),
            received: Some(received),
        })
    }
}

/// The `rpc-call-id` of a received call, as the caller wrote it (the contract makes it opaque).
pub fn call_id_header(headers: &Headers) -> Option<&str> {
    headers.get(header::CALL_ID)
}

/// Adds the caller's identity to a message for services (`docs/bus.md`): `rpc-identity` and one
/// `rpc-claim-<name>` per forwarded claim. Nothing for anonymous callers.
pub fn identity_headers(headers: &mut Headers, identity: Option<&Identity>) {
    let Some(identity) = identity else { return };
    headers.insert(header::IDENTITY, identity.subject.clone());
    for (name, value) in &identity.claims {
        headers.insert(format!("{}{name}", header::CLAIM_PREFIX), value.clone());
    }
}

/// The caller's identity in a message's headers: `rpc-identity` is its subject, each
/// `rpc-claim-<name>` a claim.
pub fn identity_from_headers(headers: &Headers) -> Option<Arc<Identity>> {
    let subject = headers.get(header::IDENTITY)?;
    let claims = headers
        .iter()
        .filter_map(|(name, value)| {
            let claim = name.strip_prefix(header::CLAIM_PREFIX)?;
            Some((claim.to_owned(), value.to_owned()))
        })
        .collect();
    Some(Arc::new(Identity { subject: subject.to_owned(), claims }))
}

/// A failed call: the status its caller is answered with, and the application error's details
/// (the answer's payload, for an error the service declares; usually empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub status: Status,
    pub details: Bytes,
}

impl From<Status> for Failure {
    fn from(status: Status) -> Failure {
        Failure { status, details: Bytes::new() }
    }
}

impl From<BusError> for Failure {
    fn from(err: BusError) -> Failure {
        Failure::from(err.to_status())
    }
}

/// What a call ends with: the reply's bytes, or why not.
pub type Answer = Result<Bytes, Failure>;

/// The answer an answer message carries (`docs/bus.md`, "Answers"): its payload, or the status
/// in its headers with the payload as the error's details.
pub fn answer_from_message(headers: &Headers, payload: Bytes) -> Answer {
    match contract::status_from_headers(headers) {
        None => Ok(payload),
        Some(status) => Err(Failure { status, details: payload }),
    }
}

/// Where the calls of one method go: the method's subject (`rpc.<method>`) and its service's
/// cancel subject (`cancel.<service>`), made and checked once.
#[derive(Clone, Debug)]
pub struct MethodRoute {
    subject: Subject,
    cancel: Subject,
    method: &'static MethodDesc,
    service: &'static ServiceDesc,
    /// The subject as the NATS client takes it (shared bytes), and the method id as the
    /// `rpc-method` value: made once, not per call.
    #[cfg(feature = "nats")]
    pub(crate) nats: NatsRoute,
}

/// A method's subject and id as the NATS bus sends them with every call.
#[cfg(feature = "nats")]
#[derive(Clone, Debug)]
pub(crate) struct NatsRoute {
    pub(crate) subject: async_nats::Subject,
    pub(crate) method_id: String,
}

impl MethodRoute {
    /// The route of `method` of `service`.
    ///
    /// # Errors
    ///
    /// [`BusError::InvalidSubject`] if a name does not make a valid subject (rpcgen's names
    /// always do).
    pub fn new(
        service: &'static ServiceDesc,
        method: &'static MethodDesc,
    ) -> Result<MethodRoute, BusError> {
        let subject = Subject::new(contract::method_subject(method))?;
        Ok(MethodRoute {
            #[cfg(feature = "nats")]
            nats: NatsRoute {
                subject: async_nats::Subject::from(subject.as_str()),
                method_id: method.id.to_string(),
            },
            subject,
            cancel: Subject::new(contract::cancel_subject(service.name))?,
            method,
            service,
        })
    }

    /// Where calls go.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// Where cancellations go.
    pub fn cancel_subject(&self) -> &Subject {
        &self.cancel
    }

    pub fn method(&self) -> &'static MethodDesc {
        self.method
    }

    pub fn service(&self) -> &'static ServiceDesc {
        self.service
    }
}

/// What a caller keeps per route to call it again cheaply ([`Bus::call_cached`]): where the
/// route's calls went, as of which version of the bus's subscriptions. Opaque; start with
/// `RouteCache::default()`.
///
/// [`Bus::call_cached`]: crate::Bus::call_cached
#[derive(Clone, Default)]
pub struct RouteCache {
    /// The bus it was filled by (its address) and that bus's subscriptions' version then.
    pub(crate) bus: usize,
    pub(crate) version: u64,
    /// The one service instance the calls go to directly; `None`: look them up.
    pub(crate) endpoint: Option<Arc<dyn Endpoint>>,
}

impl fmt::Debug for RouteCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteCache")
            .field("version", &self.version)
            .field("direct", &self.endpoint.is_some())
            .finish()
    }
}

/// A call on its way: a future of its [`Answer`]. Dropping it before it is ready cancels the
/// call (see the module's docs).
#[must_use = "a call is cancelled when dropped"]
pub struct Call(Inner);

enum Inner {
    /// Answered at once (refused, or a bus error), or already taken.
    Ready(Option<Answer>),
    /// A service in this process, polled by the caller.
    Direct(DirectCall),
    /// Anything else (a message on a bus); cancels itself when dropped early, if it must.
    Boxed(BoxFuture<'static, Answer>),
}

impl Call {
    /// A call already answered.
    pub fn ready(answer: Answer) -> Call {
        Call(Inner::Ready(Some(answer)))
    }

    /// A call that `future` answers.
    pub fn boxed(future: impl Future<Output = Answer> + Send + 'static) -> Call {
        Call(Inner::Boxed(Box::pin(future)))
    }

    /// A call served by a service of this process.
    pub fn direct(call: DirectCall) -> Call {
        Call(Inner::Direct(call))
    }

    /// Whether a service in this process serves it, polled by whoever polls the call.
    pub fn is_direct(&self) -> bool {
        matches!(self.0, Inner::Direct(_))
    }
}

impl Future for Call {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        match &mut self.get_mut().0 {
            Inner::Ready(answer) => {
                Poll::Ready(answer.take().expect("a call's answer is taken once"))
            }
            Inner::Direct(call) => Pin::new(call).poll(cx),
            Inner::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Inner::Ready(_) => "ready",
            Inner::Direct(_) => "direct",
            Inner::Boxed(_) => "boxed",
        };
        f.debug_tuple("Call").field(&kind).finish()
    }
}

/// A service instance that takes calls straight from callers in its process (the in-process bus
/// hands it the calls of its subscription; see `local`). Implemented by the service runtime.
pub trait Endpoint: Send + Sync + 'static {
    /// Starts serving a call of `route`.
    ///
    /// # Errors
    ///
    /// The status to answer with when the instance takes no more calls now (at its concurrency
    /// limit, or stopping): the bus then offers the call to another member of the queue group.
    fn start(&self, route: &MethodRoute, meta: CallMeta, payload: Bytes) -> Result<Call, Status>;
}

/// How a [`DirectCall`] ended, for its service's bookkeeping ([`CallEnd`]).
#[derive(Debug)]
pub enum Ended<'a> {
    /// The handler finished: its reply, or the status it failed with.
    Answered(Result<(), &'a Status>),
    /// The caller dropped the call first: it cancelled, or its deadline passed.
    Dropped { deadline_passed: bool },
}

/// The service's side of a [`DirectCall`]: told once when the call ends, however it ends, and
/// asked, when the call has to wait, for the signal that stops all its calls (a drain that timed
/// out).
pub trait CallEnd: Send + Sync + 'static {
    /// Call `slot` of the service, received at `received`, ended as `how`.
    fn ended(&self, slot: usize, received: Instant, how: Ended<'_>);

    /// Cancelled when the service stops its calls: they are answered `unavailable`.
    fn abort(&self) -> CancellationToken;
}

/// A call served in the caller's process: the service's own future, polled by the caller, and
/// what the service must learn when it ends. The handler's cancellation signal fires when the
/// call ends, however it ends (so what it spawned with it stops too).
pub struct DirectCall {
    work: BoxFuture<'static, Result<Bytes, Status>>,
    /// Fires the handler's signal.
    cancel: Canceller,
    /// Waiting for the service to stop its calls (a drain that timed out), once the work has
    /// had to wait.
    aborted: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// `None` once told.
    end: Option<Arc<dyn CallEnd>>,
    slot: usize,
    received: Instant,
    deadline: Option<Instant>,
}

impl fmt::Debug for DirectCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectCall")
            .field("received", &self.received)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl DirectCall {
    /// A call whose handler is `work`, whose signal `cancel` fires; `end` hears how it ended.
    pub fn new(
        work: BoxFuture<'static, Result<Bytes, Status>>,
        cancel: Canceller,
        end: Arc<dyn CallEnd>,
        slot: usize,
        received: Instant,
        deadline: Option<Instant>,
    ) -> DirectCall {
        DirectCall { work, cancel, aborted: None, end: Some(end), slot, received, deadline }
    }

    fn finish(&mut self, how: Ended<'_>) {
        if matches!(how, Ended::Answered(_)) {
            // The handler is over: only copies of its context it kept can see the signal.
            self.cancel.cancel_if_watched();
        } else {
            self.cancel.cancel();
        }
        if let Some(end) = self.end.take() {
            end.ended(self.slot, self.received, how);
        }
    }
}

impl Future for DirectCall {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        let this = self.get_mut();
        if let Poll::Ready(result) = this.work.as_mut().poll(cx) {
            this.finish(Ended::Answered(result.as_ref().map(|_| ())));
            return Poll::Ready(result.map_err(Failure::from));
        }
        let Some(end) = &this.end else { return Poll::Pending };
        let aborted = this.aborted.get_or_insert_with(|| Box::pin(end.abort().cancelled_owned()));
        if aborted.as_mut().poll(cx).is_ready() {
            let status =
                Status::unavailable("the service instance stopped before finishing the call");
            this.finish(Ended::Answered(Err(&status)));
            return Poll::Ready(Err(Failure::from(status)));
        }
        Poll::Pending
    }
}

impl Drop for DirectCall {
    fn drop(&mut self) {
        if self.end.is_some() {
            let deadline_passed = self.deadline.is_some_and(|d| d <= Instant::now());
            self.finish(Ended::Dropped { deadline_passed });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_and_trace_ids_have_the_contract_forms() {
        let id = CallId { instance: 0xab, serial: 17 };
        assert_eq!(id.to_string(), "00000000000000ab-17");
        assert_eq!(id.header(), "00000000000000ab-17");
        assert_eq!(id.trace_id(), "00000000000000ab0000000000000011");
        let wide = CallId { instance: u64::MAX, serial: u64::MAX };
        assert_eq!(wide.header(), format!("{:016x}-{}", u64::MAX, u64::MAX));
        assert_eq!(wide.trace_id(), format!("{:016x}{:016x}", u64::MAX, u64::MAX));
        assert_eq!(CallId { instance: 0, serial: 0 }.header(), "0000000000000000-0");
    }

    #[test]
    fn metadata_survives_the_headers() {
        static METHODS: [MethodDesc; 1] = [MethodDesc {
            id: 7,
            name: "t.S.m",
            request: "t.R",
            response: Some("t.R"),
            idempotent: false,
            writes: false,
        }];
        static SERVICE: ServiceDesc =
            ServiceDesc { name: "t.S", methods: &METHODS, topics: &[], errors: &[] };
        let now = Instant::now();
        let identity = Identity {
            subject: "user-1".into(),
            claims: [("role".to_owned(), "admin".to_owned())].into(),
        };
        let meta = CallMeta {
            method_id: 7,
            deadline: Some(now + Duration::from_millis(250)),
            call_id: Some(CallId { instance: 1, serial: 2 }),
            identity: Some(Arc::new(identity.clone())),
            received: None,
        };
        let headers = meta.to_headers(now);
        assert_eq!(headers.get(header::TIMEOUT_MS), Some("250"));
        assert_eq!(call_id_header(&headers), Some("0000000000000001-2"));
        let back = CallMeta::from_headers(&headers, "rpc.t.S.m", &SERVICE, now).unwrap();
        assert_eq!(back.method_id, 7);
        assert_eq!(back.deadline, meta.deadline);
        assert_eq!(back.identity.as_deref(), Some(&identity));

        let mut by_subject = Headers::new();
        by_subject.insert(header::TIMEOUT_MS, "x");
        let err = CallMeta::from_headers(&by_subject, "rpc.t.S.m", &SERVICE, now).unwrap_err();
        assert_eq!(err.code(), gateway_core::Code::InvalidArgument);
        let nobody = CallMeta::from_headers(&Headers::new(), "rpc.t.S.n", &SERVICE, now);
        assert_eq!(nobody.unwrap_err().code(), gateway_core::Code::Unimplemented);
        let found = CallMeta::from_headers(&Headers::new(), "rpc.t.S.m", &SERVICE, now);
        assert_eq!(found.unwrap().method_id, 7);
    }
}
