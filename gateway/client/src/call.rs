//! One call on one connection, from the caller's side: check its size against the server's
//! limit, hand it to the connection's task, and wait for the outcome until the call's deadline;
//! cancel it if the caller gives up first.
//!
//! REQUEST, PUBLISH (when it wants an answer) and AUTH are all calls in this sense: they share
//! the connection's request ids and its in-flight accounting. Waiting for a connection, and
//! trying the next one when a connection closed before taking the call, is the [`Client`]'s part
//! (`crate::client`).
//!
//! [`Client`]: crate::Client

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::Status;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::command::{
    Answer, Call, CallKind, CallSlot, Command, Control, Handle, Outcome, Outgoing,
};

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

/// The payload of an answer that should be a RESPONSE.
pub(crate) fn payload(answer: Answer, name: &str) -> Result<Bytes, Status> {
    match answer {
        Answer::Payload(payload) => Ok(payload),
        other => Err(Status::internal(format!("the gateway answered {name} with {other:?}"))),
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

fn timed_out(name: &str, timeout: Duration) -> Status {
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
}
