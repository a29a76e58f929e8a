//! One call on its way through a [`super::ServiceRuntime`]: reading the contract's headers into a
//! [`CallContext`], admitting or shedding it, serving it under its deadline and cancellation,
//! answering, and counting it in its method's [`ServiceStats`].

use std::collections::HashMap;
use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::{CallContext, Dispatch, Identity, Status};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::batch::Batcher;
use super::stats::ServiceStats;
use crate::contract::{self, header};
use crate::{Bus, BusMessage, Headers};

/// What the runtime's task and the call tasks share.
pub(super) struct Calls {
    bus: Arc<dyn Bus>,
    service: Arc<dyn Dispatch>,
    batchers: HashMap<u32, Batcher>,
    permits: Arc<Semaphore>,
    /// Calls that carry a call id, so a cancel message can reach them. The number tells a call
    /// from a later one reusing its id. A std mutex: held only to insert, look up or remove.
    by_call_id: Mutex<HashMap<String, (u64, CancellationToken)>>,
    next_serial: AtomicU64,
    /// Parent of every call's signal: cancelled when the drain at shutdown times out.
    abort: CancellationToken,
    stats: Arc<ServiceStats>,
    /// This instance's liveness subject, named by its running notices.
    liveness: Arc<str>,
}

/// A call admitted to run.
struct Call {
    ctx: CallContext,
    request: Bytes,
    reply: Option<String>,
    deadline: Option<tokio::time::Instant>,
    /// Its entry in `by_call_id`.
    registered: Option<(String, u64)>,
    /// Its method's slot in the stats, if the service has the method.
    stats_slot: Option<usize>,
    received: Instant,
    /// When to send a running notice, if the caller asked for one (`rpc-notify-ms`).
    notify_at: Option<tokio::time::Instant>,
}

impl Calls {
    pub(super) fn new(
        bus: Arc<dyn Bus>,
        service: Arc<dyn Dispatch>,
        batchers: HashMap<u32, Batcher>,
        permits: Arc<Semaphore>,
        stats: Arc<ServiceStats>,
        liveness: Arc<str>,
    ) -> Calls {
        Calls {
            bus,
            service,
            batchers,
            permits,
            by_call_id: Mutex::default(),
            next_serial: AtomicU64::new(0),
            abort: CancellationToken::new(),
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
        self.abort.cancel();
    }

    pub(super) fn is_aborted(&self) -> bool {
        self.abort.is_cancelled()
    }

    /// Handles a cancel message: the call with its `rpc-call-id`, if running here, is cancelled.
    pub(super) fn cancel(&self, message: &BusMessage) {
        let Some(call_id) = message.headers.get(header::CALL_ID) else { return };
        let calls = self.by_call_id.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, token)) = calls.get(call_id) {
            tracing::debug!(service = self.service_name(), call_id, "call cancelled by its caller");
            token.cancel();
        }
    }

    /// Admits a call and spawns its task, or answers it at once (unknown method, bad headers, no
    /// room).
    pub(super) async fn accept(self: &Arc<Self>, message: BusMessage, tracker: &TaskTracker) {
        let received = Instant::now();
        let Some(method_id) = self.method_of(&message) else {
            let status =
                Status::unimplemented(format!("no method is served on `{}`", message.subject));
            let _ = self.answer(message.reply.as_deref(), Err(status)).await;
            return;
        };
        let stats_slot = self.stats.index(method_id);
        let timeout = match parse_timeout(&message.headers) {
            Ok(timeout) => timeout,
            Err(status) => {
                return self
                    .finish(stats_slot, received, message.reply.as_deref(), Err(status))
                    .await;
            }
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::debug!(
                service = self.service_name(),
                method_id,
                "shedding a call: at capacity"
            );
            let status = Status::resource_exhausted(format!(
                "{} is serving as many calls as it may; retry later",
                self.service_name()
            ));
            return self.finish(stats_slot, received, message.reply.as_deref(), Err(status)).await;
        };
        let call = self.admit(method_id, timeout, message, stats_slot, received);
        // Boxed: the call's future is large (it holds the handler's), and spawning moves it
        // several times before it reaches the task's cell; a box moves as a pointer.
        tracker.spawn(Box::pin(self.clone().serve(call, permit)));
    }

    /// The method id from `rpc-method`, or else from the subject.
    fn method_of(&self, message: &BusMessage) -> Option<u32> {
        if let Some(id) = message.headers.get(header::METHOD) {
            return id.parse().ok();
        }
        let name = message.subject.strip_prefix("rpc.")?;
        self.service.descriptor().methods.iter().find(|m| m.name == name).map(|m| m.id)
    }

    fn admit(
        &self,
        method_id: u32,
        timeout: Option<Duration>,
        message: BusMessage,
        stats_slot: Option<usize>,
        received: Instant,
    ) -> Call {
        let token = self.abort.child_token();
        let registered = message.headers.get(header::CALL_ID).map(|call_id| {
            let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
            let mut calls = self.by_call_id.lock().unwrap_or_else(PoisonError::into_inner);
            calls.insert(call_id.to_owned(), (serial, token.clone()));
            (call_id.to_owned(), serial)
        });
        let ctx = CallContext::new(method_id)
            .with_identity(identity(&message.headers))
            .with_deadline(timeout.and_then(|t| received.checked_add(t)))
            .with_cancellation(token);
        Call {
            ctx,
            request: message.payload,
            reply: message.reply,
            deadline: timeout.and_then(|t| tokio::time::Instant::now().checked_add(t)),
            registered,
            stats_slot,
            received,
            notify_at: notify_after(&message.headers)
                .and_then(|after| tokio::time::Instant::now().checked_add(after)),
        }
    }

    /// Runs a call to its end: an answer, the deadline, or cancellation.
    async fn serve(self: Arc<Self>, call: Call, _permit: OwnedSemaphorePermit) {
        let Call { ctx, request, reply, deadline, registered, stats_slot, received, notify_at } =
            call;
        let token = ctx.cancellation().clone();
        let work = match self.batchers.get(&ctx.method_id()) {
            Some(batcher) => batcher.submit(ctx.clone(), request),
            None => self.service.dispatch(ctx.clone(), request),
        };
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => pending().await,
            }
        };
        let notice_due = async {
            match (notify_at, reply.as_deref()) {
                (Some(at), Some(_)) => tokio::time::sleep_until(at).await,
                _ => pending().await,
            }
        };
        tokio::pin!(work, expired, notice_due);
        let mut noticed = false;
        let result = loop {
            break tokio::select! {
                biased;
                () = token.cancelled() => self.is_aborted().then(|| {
                    Err(Status::unavailable("the service instance stopped before finishing the call"))
                }),
                () = &mut expired => Some(Err(Status::deadline_exceeded(format!(
                    "{} did not finish before the caller's deadline",
                    self.service_name()
                )))),
                result = &mut work => Some(result),
                () = &mut notice_due, if !noticed => {
                    noticed = true;
                    self.notify_running(reply.as_deref()).await;
                    continue;
                }
            };
        };
        // The call is over: whatever it spawned with its signal stops too.
        token.cancel();
        if let Some((call_id, serial)) = registered {
            let mut calls = self.by_call_id.lock().unwrap_or_else(PoisonError::into_inner);
            if calls.get(&call_id).is_some_and(|(s, _)| *s == serial) {
                calls.remove(&call_id);
            }
        }
        match result {
            Some(result) => self.finish(stats_slot, received, reply.as_deref(), result).await,
            // Cancelled by its caller: no answer, and no error either (nothing failed).
            None => {
                if let Some(slot) = stats_slot {
                    self.stats.record(slot, received.elapsed(), None);
                }
            }
        }
    }

    /// Tells the caller that this instance is running its call (`docs/bus.md`, "Running
    /// notices"): an empty message to the reply subject naming the instance's liveness subject.
    async fn notify_running(&self, reply: Option<&str>) {
        let Some(reply) = reply else { return };
        let mut headers = Headers::new();
        headers.insert(header::RUNNING, self.liveness.to_string());
        if let Err(e) = self.bus.publish(reply, headers, Bytes::new()).await {
            tracing::debug!(cause = %e, "a running notice could not be sent");
        }
    }

    /// Answers a call of the method in stats slot `slot` that came in at `received`, and counts
    /// it.
    async fn finish(
        &self,
        slot: Option<usize>,
        received: Instant,
        reply: Option<&str>,
        result: Result<Bytes, Status>,
    ) {
        let answered = self.answer(reply, result).await;
        if let Some(slot) = slot {
            self.stats.record(slot, received.elapsed(), answered.err().as_ref());
        }
    }

    /// Publishes the answer to `reply`; fire-and-forget calls (no reply subject) get none.
    /// Returns the failure the caller was told of (or would have been, without a reply subject).
    async fn answer(
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

/// `rpc-timeout-ms` as a duration; absent means no deadline.
fn parse_timeout(headers: &Headers) -> Result<Option<Duration>, Status> {
    let Some(value) = headers.get(header::TIMEOUT_MS) else { return Ok(None) };
    match value.parse::<u64>() {
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(_) => Err(Status::invalid_argument(format!(
            "malformed `{}` header `{value}`",
            header::TIMEOUT_MS
        ))),
    }
}

/// The caller's identity: `rpc-identity` is its subject, each `rpc-claim-<name>` a claim.
fn identity(headers: &Headers) -> Option<Arc<Identity>> {
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
    fn identity_is_the_subject_header_and_the_claim_headers() {
        let mut headers = Headers::new();
        headers.insert(format!("{}role", header::CLAIM_PREFIX), "admin");
        assert_eq!(identity(&headers), None, "claims without a subject are no identity");
        headers.insert(header::IDENTITY, "user-1");
        headers.insert("other", "x");
        let identity = identity(&headers).unwrap();
        assert_eq!(identity.subject, "user-1");
        assert_eq!(identity.claims.len(), 1);
        assert_eq!(identity.claims["role"], "admin");
    }

    #[test]
    fn timeouts_are_whole_milliseconds_or_refused() {
        let mut headers = Headers::new();
        assert_eq!(parse_timeout(&headers), Ok(None));
        headers.insert(header::TIMEOUT_MS, "1500");
        assert_eq!(parse_timeout(&headers), Ok(Some(Duration::from_millis(1500))));
        headers.insert(header::TIMEOUT_MS, "-1");
        assert_eq!(parse_timeout(&headers).unwrap_err().code(), Code::InvalidArgument);
    }
}
