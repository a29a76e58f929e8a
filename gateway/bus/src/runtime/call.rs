//! One call on its way through a [`super::ServiceRuntime`], by either road:
//!
//! - **Direct** ([`Endpoint`]): a caller in the same process (a gateway on the in-process bus)
//!   starts the call and polls the handler's future itself. No task, no message, no headers: the
//!   runtime admits the call under its concurrency limit, builds the [`CallContext`] from the
//!   [`CallMeta`], and hears how the call ended ([`CallEnd`]) to count it.
//! - **Message**: a call that came as a bus message (over NATS, or a plain request on the
//!   in-process bus) is read from its headers, admitted, and polled by the runtime's own task:
//!   answered at once when the handler finishes on its first poll, otherwise kept among the
//!   runtime's calls in flight ([`Pending`]) under its deadline and cancellation, and answered on
//!   the message's reply subject.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::{BoxFuture, CallContext, Dispatch, Status};
use tokio::sync::Notify;
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::batch::Batcher;
use super::stats::ServiceStats;
use crate::call::{Call, CallEnd, CallMeta, DirectCall, Ended, Endpoint, MethodRoute};
use crate::contract::{self, header};
use crate::{Bus, BusMessage, Headers};

/// The runtime's concurrency limit: calls of both roads count, each until it ends.
pub(super) struct Admission {
    in_flight: AtomicUsize,
    limit: usize,
    /// Set while shutdown waits for the calls to end: only then does the last one say so.
    draining: AtomicBool,
    idle: Notify,
}

impl Admission {
    fn new(limit: usize) -> Admission {
        Admission {
            in_flight: AtomicUsize::new(0),
            limit: limit.max(1),
            draining: AtomicBool::new(false),
            idle: Notify::new(),
        }
    }

    /// Takes a place, or `false` at the limit.
    fn enter(&self) -> bool {
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= self.limit {
            self.leave();
            return false;
        }
        true
    }

    fn leave(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1
            && self.draining.load(Ordering::SeqCst)
        {
            self.idle.notify_waiters();
        }
    }

    /// Calls in flight now.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until no call is in flight.
    pub(super) async fn idle(&self) {
        self.draining.store(true, Ordering::SeqCst);
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before the count is read, so a call ending in between is not missed.
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// What the runtime's task, its calls in flight and direct callers share.
pub(super) struct Calls {
    bus: Arc<dyn Bus>,
    service: Arc<dyn Dispatch>,
    batchers: HashMap<u32, Batcher>,
    pub(super) admission: Admission,
    /// Cancelled when the drain at shutdown times out: the parent of every message call's signal,
    /// and watched by every direct call.
    abort: CancellationToken,
    /// `abort` was cancelled: checked on every call (a token's own check takes its lock).
    aborted: AtomicBool,
    stats: Arc<ServiceStats>,
    /// This instance's liveness subject, named by its running notices.
    liveness: Arc<str>,
}

impl Calls {
    pub(super) fn new(
        bus: Arc<dyn Bus>,
        service: Arc<dyn Dispatch>,
        batchers: HashMap<u32, Batcher>,
        concurrency: usize,
        stats: Arc<ServiceStats>,
        liveness: Arc<str>,
    ) -> Calls {
        Calls {
            bus,
            service,
            batchers,
            admission: Admission::new(concurrency),
            abort: CancellationToken::new(),
            aborted: AtomicBool::new(false),
            stats,
            liveness,
        }
    }

    pub(super) fn bus(&self) -> &dyn Bus {
        &*self.bus
    }

    pub(super) fn service_name(&self) -> &'static str {
        self.service.descriptor().name
    }

    pub(super) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.abort.cancel();
    }

    pub(super) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    fn shed_status(&self) -> Status {
        Status::resource_exhausted(format!(
            "{} is serving as many calls as it may; retry later",
            self.service_name()
        ))
    }

    /// The handler's future for a call: the method's batcher, or the service's dispatch.
    fn work(&self, ctx: CallContext, request: Bytes) -> BoxFuture<'static, Result<Bytes, Status>> {
        match self.batchers.get(&ctx.method_id()) {
            Some(batcher) => batcher.submit(ctx, request),
            None => self.service.dispatch(ctx, request),
        }
    }

    /// Admits a call that came as `message` at `received`: its handler's future, polled once
    /// already, and what answering it needs; or the answer to send at once (refused, finished on
    /// its first poll, or failed), as `Err`.
    pub(super) fn accept(
        self: &Arc<Self>,
        message: BusMessage,
        received: Instant,
        cx: &mut Context<'_>,
    ) -> Result<Pending, Answered> {
        let service = self.service.descriptor();
        let meta =
            match CallMeta::from_headers(&message.headers, &message.subject, service, received) {
                Ok(meta) => meta,
                Err(status) => {
                    // A known method with a bad header still counts against that method.
                    let by_name = || {
                        let name = message.subject.strip_prefix("rpc.")?;
                        service.methods.iter().find(|m| m.name == name).map(|m| m.id)
                    };
                    let slot = match message.headers.get(header::METHOD) {
                        Some(id) => id.parse().ok(),
                        None => by_name(),
                    }
                    .and_then(|id| self.stats.index(id));
                    return Err(Answered::now(slot, received, message.reply, Err(status)));
                }
            };
        let slot = self.stats.index(meta.method_id);
        if !self.admission.enter() {
            tracing::debug!(
                service = self.service_name(),
                method_id = meta.method_id,
                "shedding a call: at capacity"
            );
            return Err(Answered::now(slot, received, message.reply, Err(self.shed_status())));
        }
        // A child of the abort signal, so that a drain that times out stops it too.
        let token = self.abort.child_token();
        let ctx = CallContext::new(meta.method_id)
            .with_identity(meta.identity)
            .with_deadline(meta.deadline)
            .with_cancellation(token.clone());
        let mut work = self.work(ctx, message.payload);
        if let Poll::Ready(result) = work.as_mut().poll(cx) {
            token.cancel();
            self.admission.leave();
            return Err(Answered::now(slot, received, message.reply, result));
        }
        let notify_at =
            notify_after(&message.headers).and_then(|after| received.checked_add(after));
        let call_id = crate::call::call_id_header(&message.headers).map(Box::<str>::from);
        Ok(Pending {
            calls: self.clone(),
            work,
            token,
            cancelled: None,
            timer: None,
            deadline: meta.deadline,
            notify_at,
            reply: message.reply,
            call_id,
            registered: None,
            slot,
            received,
            ended: false,
        })
    }

    /// Sends `answered`'s answer, if it has a reply subject, and counts it.
    pub(super) async fn answer(&self, answered: Answered) {
        let Answered { slot, received, reply, result } = answered;
        let failure = match result {
            // Cancelled by its caller: no answer, and no error either (nothing failed).
            None => {
                if let Some(slot) = slot {
                    self.stats.record(slot, received.elapsed(), None);
                }
                return;
            }
            Some(result) => self.publish(reply.as_deref(), result).await.err(),
        };
        if let Some(slot) = slot {
            self.stats.record(slot, received.elapsed(), failure.as_ref());
        }
    }

    /// Publishes the answer to `reply`; fire-and-forget calls (no reply subject) get none.
    /// Returns the failure the caller was told of (or would have been, without a reply subject).
    async fn publish(
        &self,
        reply: Option<&str>,
        result: Result<Bytes, Status>,
    ) -> Result<(), Status> {
        let (headers, payload, failure) = match result {
            Ok(payload) => (Headers::new(), payload, None),
            Err(status) => {
                let status = single_line(status);
                (contract::status_headers(&status), Bytes::new(), Some(status))
            }
        };
        let Some(reply) = reply else { return failure.map_or(Ok(()), Err) };
        if let Err(err) = self.bus.publish(reply, headers, payload).await {
            // Most likely a reply larger than the bus carries: tell the caller so.
            tracing::warn!(service = self.service_name(), cause = %err, "cannot send an answer");
            let status = err.to_status();
            let headers = contract::status_headers(&status);
            if let Err(err) = self.bus.publish(reply, headers, Bytes::new()).await {
                tracing::warn!(service = self.service_name(), cause = %err, "cannot send a status");
            }
            return Err(status);
        }
        failure.map_or(Ok(()), Err)
    }

    /// Tells the caller that this instance is running its call (`docs/bus.md`, "Running
    /// notices"): an empty message to the reply subject naming the instance's liveness subject.
    /// Sent from a task of its own, so the call goes on meanwhile.
    fn notify_running(&self, reply: &str) {
        let bus = self.bus.clone();
        let reply = reply.to_owned();
        let mut headers = Headers::new();
        headers.insert(header::RUNNING, self.liveness.to_string());
        tokio::spawn(async move {
            if let Err(e) = bus.publish(&reply, headers, Bytes::new()).await {
                tracing::debug!(cause = %e, "a running notice could not be sent");
            }
        });
    }
}

/// The runtime as a direct [`Endpoint`] of the in-process bus.
pub(super) struct Direct(pub(super) Arc<Calls>);

impl Endpoint for Direct {
    fn start(&self, _route: &MethodRoute, meta: CallMeta, payload: Bytes) -> Result<Call, Status> {
        let calls = &self.0;
        if calls.is_aborted() || !calls.admission.enter() {
            return Err(calls.shed_status());
        }
        // The caller's clock when it has one: a clock read costs as much as the rest here.
        let received = meta.received.unwrap_or_else(Instant::now);
        let slot = calls.stats.index(meta.method_id);
        let ctx = CallContext::new(meta.method_id)
            .with_identity(meta.identity)
            .with_deadline(meta.deadline);
        let cancel = ctx.canceller();
        let work = calls.work(ctx, payload);
        let end: Arc<dyn CallEnd> = calls.clone();
        let slot = slot.unwrap_or(usize::MAX);
        Ok(Call::direct(DirectCall::new(work, cancel, end, slot, received, meta.deadline)))
    }
}

impl CallEnd for Calls {
    fn abort(&self) -> CancellationToken {
        self.abort.clone()
    }

    fn ended(&self, slot: usize, received: Instant, how: Ended<'_>) {
        self.admission.leave();
        if slot == usize::MAX {
            return;
        }
        let elapsed = received.elapsed();
        match how {
            Ended::Answered(Ok(())) | Ended::Dropped { deadline_passed: false } => {
                self.stats.record(slot, elapsed, None);
            }
            Ended::Answered(Err(status)) => self.stats.record(slot, elapsed, Some(status)),
            Ended::Dropped { deadline_passed: true } => {
                let status = deadline_status(self.service_name());
                self.stats.record(slot, elapsed, Some(&status));
            }
        }
    }
}

fn deadline_status(service: &str) -> Status {
    Status::deadline_exceeded(format!("{service} did not finish before the caller's deadline"))
}

/// A message call that is over, to be answered: `result` is `None` for a call its caller
/// cancelled (no answer).
pub(super) struct Answered {
    slot: Option<usize>,
    received: Instant,
    reply: Option<String>,
    result: Option<Result<Bytes, Status>>,
}

impl Answered {
    fn now(
        slot: Option<usize>,
        received: Instant,
        reply: Option<String>,
        result: Result<Bytes, Status>,
    ) -> Answered {
        Answered { slot, received, reply, result: Some(result) }
    }
}

/// A message call whose handler had to wait, polled by the runtime's task until it ends: its
/// answer, its deadline, its caller's cancel message, or the abort at the end of a drain.
pub(super) struct Pending {
    calls: Arc<Calls>,
    work: BoxFuture<'static, Result<Bytes, Status>>,
    /// The handler's signal, cancelled by a cancel message naming `call_id`, or by the abort.
    token: CancellationToken,
    cancelled: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Armed for the running notice first (if asked for), then for the deadline.
    timer: Option<Pin<Box<Sleep>>>,
    deadline: Option<Instant>,
    notify_at: Option<Instant>,
    reply: Option<String>,
    call_id: Option<Box<str>>,
    /// Its serial in the [`Registry`], once registered there.
    registered: Option<u64>,
    slot: Option<usize>,
    received: Instant,
    ended: bool,
}

impl Pending {
    /// When the timer should fire next: the notice if still due, else the deadline.
    fn next_wake(&self) -> Option<Instant> {
        match (self.notify_at, self.reply.is_some()) {
            (Some(at), true) => Some(self.deadline.map_or(at, |d| d.min(at))),
            _ => self.deadline,
        }
    }

    fn end(&mut self, result: Option<Result<Bytes, Status>>) -> Poll<(Registered, Answered)> {
        self.ended = true;
        self.token.cancel();
        self.calls.admission.leave();
        let answered =
            Answered { slot: self.slot, received: self.received, reply: self.reply.take(), result };
        let registered = self.call_id.take().zip(self.registered);
        Poll::Ready((registered, answered))
    }
}

impl Future for Pending {
    /// Where it was registered, and its answer.
    type Output = (Registered, Answered);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let token = this.token.clone();
        let cancelled = this.cancelled.get_or_insert_with(|| Box::pin(token.cancelled_owned()));
        if cancelled.as_mut().poll(cx).is_ready() {
            if this.calls.is_aborted() {
                let status =
                    Status::unavailable("the service instance stopped before finishing the call");
                return this.end(Some(Err(status)));
            }
            return this.end(None);
        }
        if let Poll::Ready(result) = this.work.as_mut().poll(cx) {
            return this.end(Some(result));
        }
        while let Some(at) = this.next_wake() {
            let at = tokio::time::Instant::from_std(at);
            let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            if timer.as_mut().poll(cx).is_pending() {
                break;
            }
            if this.notify_at.is_some_and(|n| this.deadline.is_none_or(|d| n < d)) {
                this.notify_at = None;
                if let Some(reply) = &this.reply {
                    this.calls.notify_running(reply);
                }
                continue;
            }
            let status = deadline_status(this.calls.service_name());
            return this.end(Some(Err(status)));
        }
        Poll::Pending
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.ended {
            self.token.cancel();
            self.calls.admission.leave();
        }
    }
}

/// A call id and serial in the [`Registry`].
pub(super) type Registered = Option<(Box<str>, u64)>;

/// The runtime's registry of message calls in flight that carry a call id, so that a cancel
/// message can reach them. Owned by the runtime's task alone. The serial tells a call from a
/// later one reusing its id.
#[derive(Default)]
pub(super) struct Registry {
    by_call_id: HashMap<Box<str>, (u64, CancellationToken)>,
    next_serial: u64,
}

impl Registry {
    /// Registers `pending` under its call id, if it has one.
    pub(super) fn register(&mut self, pending: &mut Pending) {
        let Some(call_id) = &pending.call_id else { return };
        self.next_serial += 1;
        let serial = self.next_serial;
        self.by_call_id.insert(call_id.clone(), (serial, pending.token.clone()));
        pending.registered = Some(serial);
    }

    /// Forgets a call that ended (a later call reusing its id stays).
    pub(super) fn forget(&mut self, registered: Registered) {
        let Some((call_id, serial)) = registered else { return };
        if self.by_call_id.get(&call_id).is_some_and(|(s, _)| *s == serial) {
            self.by_call_id.remove(&call_id);
        }
    }

    /// Handles a cancel message: the call with its `rpc-call-id`, if running here, is cancelled.
    pub(super) fn cancel(&self, service: &str, message: &BusMessage) {
        let Some(call_id) = message.headers.get(header::CALL_ID) else { return };
        if let Some((_, token)) = self.by_call_id.get(call_id) {
            tracing::debug!(service, call_id, "call cancelled by its caller");
            token.cancel();
        }
    }
}

/// `status` with line breaks in its message replaced by spaces: header values are single lines
/// (NATS headers cannot carry line breaks).
fn single_line(status: Status) -> Status {
    if !status.message().contains(['\r', '\n']) {
        return status;
    }
    let message = status.message().replace(['\r', '\n'], " ");
    Status::new(status.code(), message)
        .with_retryable(status.retryable())
        .with_error_id(status.error_id())
}

/// `rpc-notify-ms` as a duration; absent or malformed: no notice (a notice is a courtesy to
/// the caller, not worth refusing a call over).
fn notify_after(headers: &Headers) -> Option<Duration> {
    headers.get(header::NOTIFY_MS)?.parse::<u64>().ok().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use gateway_core::Code;

    use super::*;

    #[test]
    fn status_messages_become_single_lines_and_keep_the_rest() {
        let status = Status::not_found("no device\r\n7").with_error_id(9).with_retryable(true);
        let fixed = single_line(status);
        assert_eq!(fixed.message(), "no device  7");
        assert_eq!((fixed.code(), fixed.error_id(), fixed.retryable()), (Code::NotFound, 9, true));
    }

    #[test]
    fn admission_refuses_past_the_limit_and_frees_places() {
        let admission = Admission::new(2);
        assert!(admission.enter() && admission.enter());
        assert!(!admission.enter());
        assert_eq!(admission.in_flight(), 2);
        admission.leave();
        assert!(admission.enter());
    }

    #[tokio::test]
    async fn admission_idles_when_the_last_call_leaves() {
        let admission = Arc::new(Admission::new(4));
        assert!(admission.enter());
        let waiting = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.idle().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        admission.leave();
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    }
}
