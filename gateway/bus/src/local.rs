//! The in-process bus: gateways and services in one process, no network.
//!
//! Publishing never waits and never grows memory: every subscription has a bounded queue, and a
//! message that finds its queue full is dropped and counted (a request instead fails at once with
//! [`BusError::Overloaded`], so the caller can shed it). Publishing takes a read lock on the
//! routing table for the time of a hash lookup, a scan of the wildcard patterns and a few
//! `try_send`s; payloads are [`Bytes`], shared by every copy. Requests wait on a per-request
//! inbox that is not a subscription (see `local/inbox.rs`).
//!
//! **Calls** ([`Bus::call`]) take the direct road when the method's subject reaches one queue
//! group of service runtimes and nothing else (the usual case): the bus hands the call to one of
//! them ([`Endpoint`], round-robin, skipping an instance at its concurrency limit), and the caller
//! polls the handler's future itself. No message, no headers, no task, no inbox. Anything else
//! (a plain subscriber to the subject, several groups, a subscriber that is not a runtime) gets
//! the call as a message with the contract's headers, exactly as a request, and a caller that
//! drops such a call before its answer publishes its cancellation (`docs/bus.md`).
//!
//! Guarantees: messages from one publisher to one subject reach each subscription in the order
//! they were published; delivery is at most once; nothing is retried.

mod inbox;
mod routes;

use std::fmt;
use std::future::ready;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::BoxFuture;
use tokio::sync::mpsc;

use self::inbox::Inboxes;
use self::routes::{CallTargets, Member, Routes};
use crate::call::{
    Call, CallId, CallMeta, Endpoint, Failure, MethodRoute, RouteCache, answer_from_message,
};
use crate::contract::header;
use crate::{Bus, BusError, BusMessage, Headers, Subscription, subject};

/// Limits of a [`LocalBus`].
#[derive(Clone, Debug)]
pub struct LocalBusOptions {
    /// Messages each subscription's queue holds before further ones are dropped. Default 8192;
    /// 0 is taken as 1.
    pub queue_capacity: usize,
    /// The largest payload carried, in bytes. Default 8 MiB.
    pub max_payload: usize,
}

impl Default for LocalBusOptions {
    fn default() -> LocalBusOptions {
        LocalBusOptions { queue_capacity: 8192, max_payload: 8 << 20 }
    }
}

/// Counters since the bus was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalBusStats {
    /// Messages accepted by `publish` and `request` (after validation).
    pub published: u64,
    /// Copies placed in a subscription's queue, plus answers handed to a waiting request.
    pub delivered: u64,
    /// Copies lost because the subscription's queue (every member's, for a queue group) was full.
    pub dropped: u64,
}

/// The in-process [`Bus`]. Cloning gives another handle to the same bus; subscriptions close
/// (their `next` returns `None`) once every handle is gone.
#[derive(Clone)]
pub struct LocalBus {
    shared: Arc<Shared>,
}

struct Shared {
    options: LocalBusOptions,
    /// A std lock: it is never held across an `.await`, only while routing or (un)subscribing.
    routes: RwLock<Routes>,
    inboxes: Arc<Inboxes>,
    next_sid: AtomicU64,
    /// Bumped by every change to `routes`: a [`RouteCache`] filled at another version is stale.
    version: AtomicU64,
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    /// Calls handed straight to a service instance: each is published and delivered, counted
    /// with one addition.
    direct: AtomicU64,
}

impl LocalBus {
    /// A bus with the default limits.
    pub fn new() -> LocalBus {
        LocalBus::with_options(LocalBusOptions::default())
    }

    pub fn with_options(options: LocalBusOptions) -> LocalBus {
        let options = LocalBusOptions { queue_capacity: options.queue_capacity.max(1), ..options };
        LocalBus {
            shared: Arc::new(Shared {
                options,
                routes: RwLock::default(),
                inboxes: Arc::new(Inboxes::new()),
                next_sid: AtomicU64::new(0),
                version: AtomicU64::new(0),
                published: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                direct: AtomicU64::new(0),
            }),
        }
    }

    pub fn stats(&self) -> LocalBusStats {
        let shared = &self.shared;
        let direct = shared.direct.load(Ordering::Relaxed);
        LocalBusStats {
            published: shared.published.load(Ordering::Relaxed) + direct,
            delivered: shared.delivered.load(Ordering::Relaxed) + direct,
            dropped: shared.dropped.load(Ordering::Relaxed),
        }
    }

    /// How many subscriptions were made with exactly `pattern` (a subject or a wildcard
    /// pattern, compared as text), for tests and diagnostics.
    pub fn subscriptions(&self, pattern: &str) -> usize {
        self.shared.routes.read().expect("routes lock").count(pattern)
    }

    /// Requests waiting for an answer (each holds one inbox).
    pub fn pending_requests(&self) -> usize {
        self.shared.inboxes.pending()
    }

    /// Checks what both `publish` and `request` send.
    fn check(&self, subject: &str, payload: &Bytes) -> Result<(), BusError> {
        subject::validate_subject(subject)?;
        let max = self.shared.options.max_payload;
        if payload.len() > max {
            return Err(BusError::TooLarge { size: payload.len(), max });
        }
        Ok(())
    }

    fn publish_now(&self, subject: &str, headers: Headers, payload: Bytes) -> Result<(), BusError> {
        self.check(subject, &payload)?;
        let message = BusMessage { subject: subject.to_owned(), headers, payload, reply: None };
        self.shared.published.fetch_add(1, Ordering::Relaxed);
        let message = match self.shared.inboxes.answer(message) {
            Ok(taken) => {
                if taken {
                    self.shared.delivered.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(());
            }
            Err(message) => message,
        };
        self.shared.route(message);
        Ok(())
    }

    fn subscribe_now(
        &self,
        pattern: &str,
        group: Option<&str>,
        endpoint: Option<Arc<dyn Endpoint>>,
    ) -> Result<Subscription, BusError> {
        subject::validate_pattern(pattern)?;
        if let Some(group) = group {
            subject::validate_queue_group(group)?;
        }
        let (tx, rx) = mpsc::channel(self.shared.options.queue_capacity);
        let sid = self.shared.next_sid.fetch_add(1, Ordering::Relaxed);
        self.shared.routes().add(pattern, group, Member { sid, tx, endpoint });
        let unsubscribe =
            Unsubscribe { shared: Arc::downgrade(&self.shared), pattern: pattern.into(), sid };
        Ok(Subscription::new(rx, Box::new(unsubscribe)))
    }
}

impl LocalBus {
    /// A call on the direct road: offered to each member of the group in turn until one takes
    /// it (`first`, then whoever the table names next).
    fn call_direct(
        &self,
        route: &MethodRoute,
        meta: CallMeta,
        payload: Bytes,
        first: &dyn Endpoint,
        members: usize,
    ) -> Call {
        let mut refusal = None;
        let mut next: Option<Arc<dyn Endpoint>> = None;
        let mut offer = Some((meta, payload));
        for turn in 1..=members {
            let endpoint = next.as_deref().unwrap_or(first);
            let Some((meta, payload)) = offer.take() else { break };
            // The last turn gets the originals; the others copies (reference counts).
            let (this, spare) = if turn == members {
                ((meta, payload), None)
            } else {
                ((meta.clone(), payload.clone()), Some((meta, payload)))
            };
            match endpoint.start(route, this.0, this.1) {
                Ok(call) => {
                    self.shared.direct.fetch_add(1, Ordering::Relaxed);
                    return call;
                }
                Err(status) => refusal = Some(status),
            }
            offer = spare;
            let table = self.shared.routes.read().unwrap_or_else(PoisonError::into_inner);
            match table.call_targets(route.subject()) {
                CallTargets::Direct { first, .. } => next = Some(first),
                _ => break,
            }
        }
        self.shared.published.fetch_add(1, Ordering::Relaxed);
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        let status = refusal.unwrap_or_else(|| {
            BusError::Overloaded { subject: route.subject().to_string() }.to_status()
        });
        Call::ready(Err(Failure::from(status)))
    }

    /// A call as a message: the contract's headers, a reply inbox, and the cancellation
    /// published if the caller drops the call before its answer.
    fn call_by_message(&self, route: &MethodRoute, meta: CallMeta, payload: Bytes) -> Call {
        let headers = meta.to_headers(Instant::now());
        let (reply, answer, inbox) = self.shared.inboxes.open();
        let subject = route.subject().to_string();
        let message = BusMessage { subject: subject.clone(), headers, payload, reply: Some(reply) };
        self.shared.published.fetch_add(1, Ordering::Relaxed);
        let outcome = self.shared.route(message);
        if outcome.targets == 0 {
            return Call::ready(Err(BusError::NoResponders { subject }.into()));
        }
        if outcome.delivered == 0 {
            return Call::ready(Err(BusError::Overloaded { subject }.into()));
        }
        let subject = route.cancel_subject().to_string();
        let mut cancel = CancelOnDrop(meta.call_id.map(|id| (self.clone(), subject, id)));
        Call::boxed(async move {
            // Closes the inbox however this future ends: answered or dropped.
            let _inbox = inbox;
            let answer = answer.await;
            // Answered (or the bus is gone): nothing to cancel.
            cancel.disarm();
            match answer {
                Ok(message) => answer_from_message(&message.headers, message.payload),
                Err(_) => {
                    Err(BusError::Disconnected { reason: "the inbox was closed".into() }.into())
                }
            }
        })
    }
}

/// Publishes a call's cancellation (`docs/bus.md`, "Cancellation") when its caller drops the
/// call before the answer came.
/// `None` once the answer came (or for a call without an id, which cannot be cancelled).
struct CancelOnDrop(Option<(LocalBus, String, CallId)>);

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some((bus, subject, call_id)) = self.0.take() else { return };
        let mut headers = Headers::new();
        headers.insert(header::CALL_ID, call_id.to_string());
        let _ = bus.publish_now(&subject, headers, Bytes::new());
    }
}

impl Shared {
    /// The routing table, to change it: its version moves on (before the change is seen, so a
    /// cache filled from the old table is stale by then).
    fn routes(&self) -> std::sync::RwLockWriteGuard<'_, Routes> {
        let routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        self.version.fetch_add(1, Ordering::AcqRel);
        routes
    }

    /// Routes `message` and counts what became of it.
    fn route(&self, message: BusMessage) -> routes::Outcome {
        let outcome = self.routes.read().unwrap_or_else(PoisonError::into_inner).route(message);
        self.delivered.fetch_add(outcome.delivered, Ordering::Relaxed);
        let dropped = outcome.targets - outcome.delivered;
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        outcome
    }
}

impl Default for LocalBus {
    fn default() -> LocalBus {
        LocalBus::new()
    }
}

impl fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBus")
            .field("options", &self.shared.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Bus for LocalBus {
    fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(ready(self.publish_now(subject, headers, payload)))
    }

    /// Sends at once (before the future is first polled) and waits for the answer.
    fn request(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<BusMessage, BusError>> {
        if let Err(err) = self.check(subject, &payload) {
            return Box::pin(ready(Err(err)));
        }
        let (reply, answer, inbox) = self.shared.inboxes.open();
        let subject = subject.to_owned();
        let message = BusMessage { subject: subject.clone(), headers, payload, reply: Some(reply) };
        self.shared.published.fetch_add(1, Ordering::Relaxed);
        let outcome = self.shared.route(message);
        if outcome.targets == 0 {
            return Box::pin(ready(Err(BusError::NoResponders { subject })));
        }
        if outcome.delivered == 0 {
            return Box::pin(ready(Err(BusError::Overloaded { subject })));
        }
        Box::pin(async move {
            // Closes the inbox however this future ends: answered, timed out or dropped.
            let _inbox = inbox;
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(message)) => Ok(message),
                Ok(Err(_)) => Err(BusError::Disconnected { reason: "the inbox was closed".into() }),
                Err(_) => Err(BusError::Timeout { subject, timeout }),
            }
        })
    }

    fn subscribe(
        &self,
        subject: &str,
        queue_group: Option<&str>,
    ) -> BoxFuture<'_, Result<Subscription, BusError>> {
        Box::pin(ready(self.subscribe_now(subject, queue_group, None)))
    }

    fn gather(
        &self,
        subject: &str,
        payload: Bytes,
        window: Duration,
    ) -> BoxFuture<'_, Result<Vec<BusMessage>, BusError>> {
        if let Err(err) = self.check(subject, &payload) {
            return Box::pin(ready(Err(err)));
        }
        // The answers come on a subject of their own, published as any other message.
        let sid = self.shared.next_sid.fetch_add(1, Ordering::Relaxed);
        let reply = format!("_GATHER.{sid}");
        let answers = match self.subscribe_now(&reply, None, None) {
            Ok(answers) => answers,
            Err(err) => return Box::pin(ready(Err(err))),
        };
        let message = BusMessage {
            subject: subject.to_owned(),
            headers: Headers::new(),
            payload,
            reply: Some(reply),
        };
        self.shared.published.fetch_add(1, Ordering::Relaxed);
        if self.shared.route(message).targets == 0 {
            return Box::pin(ready(Ok(Vec::new())));
        }
        Box::pin(async move { Ok(crate::collect_answers(answers, window).await) })
    }

    fn call(&self, route: &MethodRoute, meta: CallMeta, payload: Bytes) -> Call {
        let max = self.shared.options.max_payload;
        if payload.len() > max {
            return Call::ready(Err(BusError::TooLarge { size: payload.len(), max }.into()));
        }
        let targets = self.shared.routes.read().unwrap_or_else(PoisonError::into_inner);
        match targets.call_targets(route.subject()) {
            CallTargets::Nobody => {
                drop(targets);
                let subject = route.subject().to_string();
                Call::ready(Err(BusError::NoResponders { subject }.into()))
            }
            CallTargets::Direct { first, members } => {
                // Never call into a service with the table locked: its `dispatch` may publish.
                drop(targets);
                self.call_direct(route, meta, payload, &*first, members)
            }
            CallTargets::Messages => {
                drop(targets);
                self.call_by_message(route, meta, payload)
            }
        }
    }

    /// A route whose calls went straight to one service instance goes there again without
    /// looking at the routing table, until the table changes.
    fn call_cached(
        &self,
        route: &MethodRoute,
        cache: &mut RouteCache,
        meta: CallMeta,
        payload: Bytes,
    ) -> Call {
        let bus = Arc::as_ptr(&self.shared) as usize;
        let version = self.shared.version.load(Ordering::Acquire);
        if cache.bus == bus && cache.version == version {
            if let Some(endpoint) = &cache.endpoint {
                if payload.len() <= self.shared.options.max_payload {
                    return self.call_direct(route, meta, payload, &**endpoint, 1);
                }
            }
        }
        let targets = self.shared.routes.read().unwrap_or_else(PoisonError::into_inner);
        let found = targets.call_targets(route.subject());
        drop(targets);
        *cache = RouteCache { bus, version, endpoint: None };
        match found {
            CallTargets::Direct { first, members: 1 } => {
                cache.endpoint = Some(first);
                self.call(route, meta, payload)
            }
            _ => self.call(route, meta, payload),
        }
    }

    fn send(
        &self,
        route: &MethodRoute,
        meta: CallMeta,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<(), BusError>> {
        let headers = meta.to_headers(Instant::now());
        Box::pin(ready(self.publish_now(route.subject(), headers, payload)))
    }

    fn subscribe_service(
        &self,
        pattern: &str,
        group: &str,
        endpoint: Arc<dyn Endpoint>,
    ) -> BoxFuture<'_, Result<Subscription, BusError>> {
        Box::pin(ready(self.subscribe_now(pattern, Some(group), Some(endpoint))))
    }

    fn max_payload(&self) -> usize {
        self.shared.options.max_payload
    }

    fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// Removes a subscription from the routing table when its [`Subscription`] drops.
struct Unsubscribe {
    shared: Weak<Shared>,
    pattern: Box<str>,
    sid: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.routes().remove(&self.pattern, self.sid);
        }
    }
}

#[cfg(test)]
mod tests;
