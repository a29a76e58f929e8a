//! One call, from a REQUEST taken by a session to the answer queued for the client.
//!
//! Each call is a task of its own: it sends the request to the method's bus subject with the
//! contract's headers (`gateway_bus::contract`: method id, remaining time, call id), waits for
//! the answer, the deadline or a cancellation, whichever comes first, and queues RESPONSE or
//! ERROR. A cancelled call tells the service by publishing its call id on the service's cancel
//! subject, so the handler's `CallContext` is cancelled too.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_bus::{BusError, Headers, contract};
use gateway_core::{Code, Identity, Status};
use gateway_protocol::{ErrorReply, Frame, Response};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::send_queue::PushError;
use crate::session::Connection;

/// The longest status message relayed to a client: a string field holds at most 64 KiB, and a
/// message is for humans.
const MAX_MESSAGE_LEN: usize = 1024;

/// A call taken by a session.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) conn: Arc<Connection>,
    /// The method's route index in the registry.
    pub(crate) route: usize,
    pub(crate) request_id: u32,
    pub(crate) fire_and_forget: bool,
    pub(crate) payload: Bytes,
    /// The deadline, counted from `received`.
    pub(crate) timeout: Duration,
    /// Cancelled by the client's CANCEL, or when the connection's calls stop.
    pub(crate) cancel: CancellationToken,
    pub(crate) received: Instant,
    /// Places under the per-connection and global in-flight caps. Freed just before the answer
    /// is queued: the client may send its next request the moment it reads the answer, and that
    /// request must find the place free. (A client that stops reading its replies is held back
    /// by the send queue, on which the session's reader then waits.)
    pub(crate) permits: Option<[OwnedSemaphorePermit; 2]>,
}

/// Call ids (`rpc-call-id`): unique among the calls of every gateway on the bus, since services
/// match cancellations by them alone: a random instance prefix and a counter.
#[derive(Debug)]
pub(crate) struct CallIds {
    instance: u64,
    next: AtomicU64,
}

impl CallIds {
    pub(crate) fn new() -> CallIds {
        // The std hasher's per-process random keys: randomness without a dependency.
        let instance = RandomState::new().hash_one(std::process::id());
        CallIds { instance, next: AtomicU64::new(1) }
    }

    /// A new call's id, and its trace id (`rpc-trace-id`): the same instance and counter as 32
    /// hex digits, the form of a W3C trace id, so that logs of other systems can carry it.
    fn next(&self) -> (String, String) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (format!("{:016x}-{n}", self.instance), format!("{:016x}{n:016x}", self.instance))
    }
}

/// Adds the caller's identity to a message for services (`docs/bus.md`): `rpc-identity` and one
/// `rpc-claim-<name>` per forwarded claim. Nothing for anonymous callers.
pub(crate) fn identity_headers(headers: &mut Headers, identity: Option<&Identity>) {
    let Some(identity) = identity else { return };
    headers.insert(contract::header::IDENTITY, identity.subject.clone());
    for (name, value) in &identity.claims {
        headers.insert(format!("{}{name}", contract::header::CLAIM_PREFIX), value.clone());
    }
}

/// How a call ended, before it is turned into a frame.
enum Outcome {
    Reply(Bytes),
    Failed(Status, Bytes),
    /// Cancelled: by the client (answered `cancelled`), or with the connection (not answered,
    /// or answered `unavailable` when the gateway abandoned it).
    Stopped,
}

/// Runs `call` to its end.
pub(crate) async fn run(mut call: Call) {
    let payload = std::mem::take(&mut call.payload);
    let shared = &call.conn.shared;
    let route = &shared.registry.routes()[call.route];
    let (call_id, trace_id) = shared.call_ids.next();
    let mut headers = Headers::new();
    headers.insert(contract::header::METHOD, route.method.id.to_string());
    headers.insert(contract::header::TIMEOUT_MS, contract::timeout_header(call.timeout));
    headers.insert(contract::header::CALL_ID, call_id.clone());
    headers.insert(contract::header::TRACE_ID, trace_id);
    // Built from the connection's grant only: a client has no way to send bus headers.
    identity_headers(&mut headers, call.conn.grant().identity.as_deref());

    if call.fire_and_forget || route.method.is_fire_and_forget() {
        // Published without a reply subject (`docs/bus.md`: `-> void` methods have none): the
        // service answers nobody, and the call is over once the bus has the message. A client
        // that wants a reply to a `-> void` method (no FIRE_AND_FORGET flag) gets an empty
        // RESPONSE once the bus has taken the call, or the bus's error.
        let sent = shared.bus.publish(&route.subject, headers, payload).await;
        let result = sent.map_err(|e| (e.to_status(), Bytes::new()));
        let code = result.as_ref().map_or_else(|(s, _)| s.code(), |_| Code::Ok);
        shared.metrics.call_finished(call.route, code, call.received.elapsed());
        if !call.fire_and_forget {
            call.conn.finish_call(call.request_id);
            answer(&mut call, result.map(|()| Bytes::new())).await;
        }
        return;
    }

    let request = shared.bus.request(&route.subject, headers, payload, call.timeout);
    let outcome = tokio::select! {
        biased;
        _ = call.cancel.cancelled() => Outcome::Stopped,
        answer = request => match answer {
            Ok(message) => match contract::status_from_headers(&message.headers) {
                None => Outcome::Reply(message.payload),
                // An error answer's payload is the application error's details.
                Some(status) => Outcome::Failed(status, message.payload),
            },
            Err(BusError::Timeout { .. }) => Outcome::Failed(deadline_exceeded(call.timeout), Bytes::new()),
            Err(e) => Outcome::Failed(e.to_status(), Bytes::new()),
        },
        // The bus enforces the timeout too; this makes the gateway's deadline independent of it.
        _ = tokio::time::sleep(call.timeout) => Outcome::Failed(deadline_exceeded(call.timeout), Bytes::new()),
    };

    let status = match outcome {
        Outcome::Reply(payload) => Ok(payload),
        Outcome::Failed(status, details) => Err((status, details)),
        Outcome::Stopped => {
            let mut headers = Headers::new();
            headers.insert(contract::header::CALL_ID, call_id);
            // `docs/bus.md`, "Cancellation": the call id in a header, an empty payload.
            let cancelled = shared.bus.publish(&route.cancel_subject, headers, Bytes::new()).await;
            if let Err(e) = cancelled {
                debug!(cause = %e, "could not publish a cancellation");
            }
            if !call.conn.stopped() {
                Err((Status::cancelled("the call was cancelled"), Bytes::new()))
            } else if call.conn.answers_stopped_calls() {
                let status = Status::unavailable("the gateway shut down before the call finished")
                    // It may have run: sending it again is not known to be safe.
                    .with_retryable(false);
                Err((status, Bytes::new()))
            } else {
                shared.metrics.call_finished(call.route, Code::Cancelled, call.received.elapsed());
                call.conn.finish_call(call.request_id);
                return;
            }
        }
    };
    let code = status.as_ref().map_or_else(|(s, _)| s.code(), |_| Code::Ok);
    shared.metrics.call_finished(call.route, code, call.received.elapsed());
    call.conn.finish_call(call.request_id);
    answer(&mut call, status).await;
}

fn deadline_exceeded(timeout: Duration) -> Status {
    Status::deadline_exceeded(format!("deadline exceeded after {}ms", timeout.as_millis()))
}

/// Frees `call`'s places under the in-flight caps and queues its answer. A reply too large for
/// the client becomes an ERROR.
async fn answer(call: &mut Call, result: Result<Bytes, (Status, Bytes)>) {
    drop(call.permits.take());
    let id = call.request_id;
    let frame = match result {
        Ok(payload) => Frame::Response(Response { request_id: id, payload }),
        Err((status, details)) => error_frame(id, status, details),
    };
    match call.conn.queue.push(&frame).await {
        Ok(()) | Err(PushError::Closed) => {}
        Err(PushError::Encode(e)) => {
            let status = Status::resource_exhausted(format!("the answer cannot be sent: {e}"))
                .with_retryable(false);
            let _ = call.conn.queue.push(&error_frame(id, status, Bytes::new())).await;
        }
    }
}

/// An ERROR frame, its message cut to [`MAX_MESSAGE_LEN`] bytes at a character boundary.
fn error_frame(request_id: u32, status: Status, details: Bytes) -> Frame {
    let status = if status.message().len() > MAX_MESSAGE_LEN {
        let message = status.message();
        let cut = (0..=MAX_MESSAGE_LEN).rev().find(|&i| message.is_char_boundary(i)).unwrap_or(0);
        Status::new(status.code(), message[..cut].to_owned())
            .with_retryable(status.retryable())
            .with_error_id(status.error_id())
    } else {
        status
    };
    Frame::Error(ErrorReply { request_id, status, details })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_unique_and_share_the_instance_prefix() {
        let ids = CallIds::new();
        let ((a, trace_a), (b, trace_b)) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert_eq!(a.split('-').next(), b.split('-').next());
        assert_ne!(trace_a, trace_b);
        assert!(trace_a.len() == 32 && trace_a.bytes().all(|c| c.is_ascii_hexdigit()), "{trace_a}");
        assert_ne!(CallIds::new().instance, ids.instance, "two gateways pick different prefixes");
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary_and_keep_the_rest() {
        let long = "é".repeat(MAX_MESSAGE_LEN);
        let status = Status::not_found(long).with_error_id(9).with_retryable(true);
        let Frame::Error(e) = error_frame(3, status, Bytes::from_static(b"d")) else {
            panic!("not an error frame")
        };
        assert_eq!(e.status.message().len(), MAX_MESSAGE_LEN);
        assert_eq!((e.status.error_id(), e.status.retryable()), (9, true));
        assert_eq!(e.details, Bytes::from_static(b"d"));
    }
}
