//! One call from the caller's side: wait for a connection, hand the request to its task, wait
//! for the outcome, all within the call's deadline; and cancel it if the caller gives up.
//!
//! REQUEST, PUBLISH (when it wants an answer) and AUTH are all calls in this sense: they share
//! the connection's request ids and its in-flight accounting.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::{CallOptions, MethodDesc, Status, TopicDesc, Transport};
use gateway_protocol::{Auth, Frame, Publish, Request};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::client::Client;
use crate::connection::{Call, CallKind, Command, Control, Handle};
use crate::inflight::{Answer, Outcome};
use crate::supervisor::State;

/// Where a unary call stands, shared by its future and the connection task, so that a call
/// dropped at any moment is cancelled if and only if its request was sent.
#[derive(Debug, Default)]
pub(crate) struct CallSlot(Mutex<SlotState>);

#[derive(Debug, Default)]
enum SlotState {
    /// Waiting in the connection's channel.
    #[default]
    Queued,
    /// Sent with this request id.
    Sent(u32),
    /// The caller gave up.
    Abandoned,
}

impl CallSlot {
    /// The connection task is sending the request as `request_id`; false when the caller gave
    /// up already and nothing should be sent.
    pub(crate) fn sent(&self, request_id: u32) -> bool {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*state, SlotState::Abandoned) {
            return false;
        }
        *state = SlotState::Sent(request_id);
        true
    }

    /// The caller gives up: the id to cancel, if the request was sent.
    fn abandon(&self) -> Option<u32> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *state, SlotState::Abandoned) {
            SlotState::Sent(request_id) => Some(request_id),
            SlotState::Queued | SlotState::Abandoned => None,
        }
    }
}

/// Sends CANCEL for a unary call whose future is dropped (or times out) before its outcome.
struct CancelOnDrop {
    slot: Arc<CallSlot>,
    control: mpsc::UnboundedSender<Control>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed
            && let Some(request_id) = self.slot.abandon()
        {
            // If the connection is gone, so is the request.
            let _ = self.control.send(Control::Cancel(request_id));
        }
    }
}

/// What a call sends: a REQUEST, a PUBLISH that wants an answer, or an AUTH. All three take a
/// request id from the connection's table and wait for the answer to it.
#[derive(Clone, Debug)]
pub(crate) enum Outgoing {
    Request(&'static MethodDesc),
    Publish { topic: &'static TopicDesc, key: String },
    Auth,
}

impl Outgoing {
    /// The frame carrying `payload` (the token, for AUTH) as `request_id`.
    pub(crate) fn frame(
        &self,
        request_id: u32,
        timeout_ms: u32,
        fire_and_forget: bool,
        payload: Bytes,
    ) -> Frame {
        match self {
            Outgoing::Request(method) => Frame::Request(Request {
                request_id,
                method_id: method.id,
                timeout_ms,
                fire_and_forget,
                payload,
            }),
            Outgoing::Publish { topic, key } => Frame::Publish(Publish {
                request_id,
                topic_id: topic.id,
                key: key.clone(),
                payload,
            }),
            Outgoing::Auth => Frame::Auth(Auth { request_id, token: payload }),
        }
    }

    /// For error messages: the method, the topic, or `AUTH`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Outgoing::Request(method) => method.name,
            Outgoing::Publish { topic, .. } => topic.name,
            Outgoing::Auth => "AUTH",
        }
    }

    /// Whether running it twice is harmless, so that it may be retried after a lost connection.
    /// A PUBLISH is not: the event would be delivered twice.
    pub(crate) fn idempotent(&self) -> bool {
        match self {
            Outgoing::Request(method) => method.idempotent,
            Outgoing::Publish { .. } => false,
            Outgoing::Auth => true,
        }
    }
}

impl Transport for Client {
    /// Sends a REQUEST and waits for its RESPONSE or ERROR.
    ///
    /// The call's deadline is its timeout (or [`ClientConfig::default_timeout`]) from now; it
    /// bounds the whole call, and the time left travels in the REQUEST. Failures:
    /// `unavailable` when no connection came up in time, or when the connection was lost with
    /// the request in flight (retryable only for idempotent methods: the request may have run);
    /// `deadline_exceeded` when the reply did not come in time; `resource_exhausted`, not
    /// retryable, for a request larger than the gateway's maximum frame size.
    ///
    /// [`ClientConfig::default_timeout`]: crate::ClientConfig::default_timeout
    async fn unary(
        &self,
        method: &'static MethodDesc,
        request: Bytes,
        options: CallOptions,
    ) -> Result<Bytes, Status> {
        let timeout = options.timeout.unwrap_or(self.inner.config.default_timeout);
        let answer = self.exchange(Outgoing::Request(method), request, timeout, false).await?;
        payload(answer, method.name)
    }

    /// Sends a REQUEST flagged fire-and-forget and resolves once it is written to the socket.
    async fn fire_and_forget(
        &self,
        method: &'static MethodDesc,
        request: Bytes,
        options: CallOptions,
    ) -> Result<(), Status> {
        let timeout = options.timeout.unwrap_or(self.inner.config.default_timeout);
        self.exchange(Outgoing::Request(method), request, timeout, true).await.map(drop)
    }
}

/// The payload of an answer that should be a RESPONSE.
pub(crate) fn payload(answer: Answer, name: &str) -> Result<Bytes, Status> {
    match answer {
        Answer::Payload(payload) => Ok(payload),
        other => Err(Status::internal(format!("the gateway answered {name} with {other:?}"))),
    }
}

impl Client {
    /// Sends `what` on the current connection (waiting for one), and again on the next one when
    /// a connection closed before taking it, all within `timeout`.
    pub(crate) async fn exchange(
        &self,
        what: Outgoing,
        payload: Bytes,
        timeout: Duration,
        fire_and_forget: bool,
    ) -> Result<Answer, Status> {
        let deadline = far_deadline(timeout);
        // A connection that closed before taking the request: wait for the next one.
        let mut closed: Option<Arc<Handle>> = None;
        loop {
            let handle = self.connection(deadline, timeout, closed.as_ref()).await?;
            let outcome = submit(&handle, &what, &payload, deadline, timeout, fire_and_forget);
            match outcome.await? {
                Outcome::Done(result) => return result,
                Outcome::NotSent => closed = Some(handle),
            }
        }
    }

    /// The current connection, other than `closed`, waiting for one until `deadline`.
    pub(crate) async fn connection(
        &self,
        deadline: Instant,
        timeout: Duration,
        closed: Option<&Arc<Handle>>,
    ) -> Result<Arc<Handle>, Status> {
        let mut state = self.inner.state.clone();
        loop {
            match &*state.borrow_and_update() {
                State::Connected(handle) if closed.is_none_or(|c| !Arc::ptr_eq(c, handle)) => {
                    return Ok(handle.clone());
                }
                State::Stopped(status) => return Err(status.clone()),
                State::Idle => self.inner.wake.notify_one(),
                State::Connected(_) | State::Connecting { .. } => {}
            }
            match tokio::time::timeout_at(deadline, state.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Status::cancelled("the client was closed")),
                Err(_) => {
                    let last_error = match &*state.borrow() {
                        State::Connecting { last_error: Some(e) } => format!(" (last error: {e})"),
                        _ => String::new(),
                    };
                    return Err(Status::unavailable(format!(
                        "no connection to a gateway within {timeout:?}{last_error}"
                    )));
                }
            }
        }
    }
}

/// Hands `what` to one connection and waits for its outcome until `deadline`. A request that
/// was sent and not answered in time is cancelled.
pub(crate) async fn submit(
    handle: &Handle,
    what: &Outgoing,
    payload: &Bytes,
    deadline: Instant,
    timeout: Duration,
    fire_and_forget: bool,
) -> Result<Outcome, Status> {
    let frame = what.frame(0, 0, fire_and_forget, payload.clone());
    let size = frame.encoded_len().map_err(|e| {
        Status::invalid_argument(format!("cannot send {}: {e}", what.name())).with_retryable(false)
    })?;
    if size > handle.max_frame_size as usize {
        return Err(Status::resource_exhausted(format!(
            "{} of {size} bytes is larger than gateway {}'s maximum frame size of {}",
            what.name(),
            handle.endpoint,
            handle.max_frame_size
        ))
        .with_retryable(false));
    }
    let (reply, outcome) = oneshot::channel();
    let (kind, mut guard) = if fire_and_forget {
        (CallKind::FireAndForget, None)
    } else {
        let slot = Arc::new(CallSlot::default());
        let control = handle.control.clone();
        (CallKind::Unary(slot.clone()), Some(CancelOnDrop { slot, control, armed: true }))
    };
    let call = Call {
        what: what.clone(),
        payload: payload.clone(),
        timeout_ms: timeout_ms(deadline),
        deadline,
        kind,
        reply,
    };
    match tokio::time::timeout_at(deadline, handle.calls.send(Command::Call(call))).await {
        Err(_) => return Err(timed_out(what.name(), timeout)),
        Ok(Err(_)) => return Ok(Outcome::NotSent),
        Ok(Ok(())) => {}
    }
    let outcome = match tokio::time::timeout_at(deadline, outcome).await {
        // The guard, dropped on return, cancels the request.
        Err(_) => return Err(timed_out(what.name(), timeout)),
        Ok(outcome) => outcome,
    };
    if let Some(guard) = &mut guard {
        guard.armed = false;
    }
    outcome.map_err(|_| Status::unavailable("the connection task ended"))
}

/// `now + timeout`, or a deadline decades away when that does not fit an `Instant`.
pub(crate) fn far_deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// The time left until `deadline` as REQUEST carries it: whole milliseconds rounded up (a
/// server must not give up before the client does), at least 1 (0 would mean no deadline).
fn timeout_ms(deadline: Instant) -> u32 {
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = left.as_nanos().div_ceil(1_000_000);
    u32::try_from(ms).unwrap_or(u32::MAX).max(1)
}

pub(crate) fn timed_out(name: &str, timeout: Duration) -> Status {
    Status::deadline_exceeded(format!("{name} did not answer within {timeout:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_and_never_mean_none() {
        tokio_test_instant(|now| {
            assert_eq!(timeout_ms(now + Duration::from_micros(1500)), 2);
            assert_eq!(timeout_ms(now), 1, "a passed deadline is still a deadline");
            assert_eq!(timeout_ms(now + Duration::from_secs(100 * 86_400)), u32::MAX);
        });
    }

    /// Runs `check` with the clock paused, so that `Instant::now()` does not move under it.
    fn tokio_test_instant(check: impl FnOnce(Instant)) {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build();
        let rt = rt.expect("a runtime");
        rt.block_on(async { check(Instant::now()) });
    }

    #[test]
    fn a_call_abandoned_before_it_is_sent_is_never_sent() {
        let slot = CallSlot::default();
        assert_eq!(slot.abandon(), None);
        assert!(!slot.sent(5));
        let slot = CallSlot::default();
        assert!(slot.sent(5));
        assert_eq!(slot.abandon(), Some(5));
        assert_eq!(slot.abandon(), None, "cancelled once");
    }
}
