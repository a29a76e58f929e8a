//! The calls of one connection: each REQUEST started on the bus, the ones still running, their
//! deadlines, and their answers.
//!
//! A call is a future (a [`gateway_bus::Call`]) owned by its connection, not a task: the session
//! polls it once when it starts it, and a call that finishes there (a service in this process
//! that answers without waiting) is answered at once, with nothing left behind. A call that has
//! to wait joins the connection's [`Calls`], which the session polls with its other work:
//! a set of futures (`FuturesUnordered`), a map by request id (for CANCEL and the protocol's
//! id rules), and one deadline queue with one timer for the whole connection.
//!
//! A call ends exactly once: answered by the bus, cancelled by the client (ERROR `cancelled` at
//! once), past its deadline (ERROR `deadline_exceeded` at once), or stopped with its connection.
//! The three last drop the call's future, which tells the service (the in-process handler is
//! dropped and its signal fires; over NATS a cancel message goes out).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use futures::future::{AbortHandle, Abortable, Aborted};
use futures::stream::FuturesUnordered;
use gateway_bus::{Answer, Call, Failure};
use gateway_core::hash::FastMap;
use gateway_core::{Code, Status};
use gateway_protocol::EncodeError;
use tokio::time::Instant;

use crate::outbox::Outbox;

/// A call waiting for its answer, by request id.
#[derive(Debug)]
struct Entry {
    /// Tells this call from a later one reusing its id.
    seq: u32,
    /// The method's route index.
    route: usize,
    received: Instant,
    abort: AbortHandle,
}

/// What the session learns of a call that ended.
#[derive(Debug)]
pub(crate) struct Ended {
    pub(crate) request_id: u32,
    pub(crate) route: usize,
    pub(crate) received: Instant,
    /// `None` for a fire-and-forget call (nobody is answered).
    pub(crate) answer: Option<Answer>,
}

/// One running call in the set: its request id (0: fire-and-forget, answered to nobody), its
/// entry's sequence number, and the call.
struct Running {
    request_id: u32,
    seq: u32,
    route: usize,
    received: Instant,
    call: Abortable<Call>,
}

impl Future for Running {
    type Output = (u32, u32, usize, Instant, Result<Answer, Aborted>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        Pin::new(&mut this.call)
            .poll(cx)
            .map(|answer| (this.request_id, this.seq, this.route, this.received, answer))
    }
}

/// The calls of one connection still running.
#[derive(Default)]
pub(crate) struct Calls {
    /// Made at the first call that has to wait: an idle connection holds none.
    running: Option<FuturesUnordered<Running>>,
    /// Calls whose caller wants an answer, by request id (hashed with a multiply).
    by_id: FastMap<u32, Entry>,
    /// `(deadline, seq, request id)`, earliest first. Entries of calls that ended are dropped
    /// when they come to the front, or all at once when they outnumber the live ones.
    deadlines: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    next_seq: u32,
    /// Fire-and-forget calls still on their way into the bus.
    detached: usize,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("waiting", &self.by_id.len())
            .field("detached", &self.detached)
            .finish_non_exhaustive()
    }
}

impl Calls {
    /// Calls that want an answer and have not had it.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether anything is running, fire-and-forget calls included.
    pub(crate) fn is_idle(&self) -> bool {
        self.by_id.is_empty() && self.detached == 0
    }

    /// Whether request `id` is in flight.
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Adds a call that has to wait: `request_id` 0 for a fire-and-forget call.
    pub(crate) fn insert(
        &mut self,
        request_id: u32,
        route: usize,
        received: Instant,
        deadline: Instant,
        call: Call,
    ) {
        let (call, abort) = futures::future::abortable(call);
        self.next_seq = self.next_seq.wrapping_add(1);
        let seq = self.next_seq;
        if request_id == 0 {
            self.detached += 1;
        } else {
            self.by_id.insert(request_id, Entry { seq, route, received, abort });
            self.deadlines.push(Reverse((deadline, seq, request_id)));
            if self.deadlines.len() > 2 * self.by_id.len() + 64 {
                self.compact();
            }
        }
        let running = Running { request_id, seq, route, received, call };
        self.running.get_or_insert_with(FuturesUnordered::new).push(running);
    }

    /// Stops call `id` for its client's CANCEL: `(route, received)` if it was in flight (the
    /// caller answers it `cancelled`); a CANCEL for an id not in flight is ignored.
    pub(crate) fn cancel(&mut self, id: u32) -> Option<(usize, Instant)> {
        let entry = self.by_id.remove(&id)?;
        entry.abort.abort();
        Some((entry.route, entry.received))
    }

    /// When the earliest deadline passes, if any call has one.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, seq, id))) = self.deadlines.peek().copied() {
            if self.by_id.get(&id).is_some_and(|e| e.seq == seq) {
                return Some(at);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Stops the next call whose deadline is at or before `now`: `(request id, route,
    /// received, deadline)`, for the caller to answer `deadline_exceeded`.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<(u32, usize, Instant, Instant)> {
        loop {
            let Reverse((at, seq, id)) = *self.deadlines.peek()?;
            if at > now {
                return None;
            }
            self.deadlines.pop();
            if self.by_id.get(&id).is_some_and(|e| e.seq == seq) {
                let entry = self.by_id.remove(&id)?;
                entry.abort.abort();
                return Some((id, entry.route, entry.received, at));
            }
        }
    }

    /// The next call that ended by itself (answered by the bus).
    pub(crate) fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<Option<Ended>> {
        let Some(running) = &mut self.running else { return Poll::Ready(None) };
        loop {
            let Some((request_id, seq, route, received, answer)) =
                std::task::ready!(Pin::new(&mut *running).poll_next(cx))
            else {
                return Poll::Ready(None);
            };
            if request_id == 0 {
                self.detached -= 1;
                let answer = answer.unwrap_or(Err(Failure::from(Status::cancelled("stopped"))));
                return Poll::Ready(Some(Ended {
                    request_id,
                    route,
                    received,
                    answer: Some(answer),
                }));
            }
            // An aborted call was answered when it was stopped.
            let Ok(answer) = answer else { continue };
            if self.by_id.get(&request_id).is_some_and(|e| e.seq == seq) {
                self.by_id.remove(&request_id);
                return Poll::Ready(Some(Ended {
                    request_id,
                    route,
                    received,
                    answer: Some(answer),
                }));
            }
        }
    }

    /// Stops every call (the connection ends): `(request id, route, received)` of each, request
    /// id 0 for fire-and-forget calls, for the caller to answer or to count. Dropping the futures
    /// tells the services.
    pub(crate) fn stop_all(&mut self) -> Vec<(u32, usize, Instant)> {
        let mut stopped: Vec<_> =
            self.by_id.drain().map(|(id, e)| (id, e.route, e.received)).collect();
        if let Some(running) = self.running.take() {
            let detached = running.iter().filter(|r| r.request_id == 0);
            stopped.extend(detached.map(|r| (0, r.route, r.received)));
        }
        self.deadlines.clear();
        self.detached = 0;
        stopped
    }

    /// Drops the deadline entries of calls that ended.
    fn compact(&mut self) {
        let by_id = &self.by_id;
        self.deadlines.retain(|Reverse((_, seq, id))| by_id.get(id).is_some_and(|e| e.seq == *seq));
    }
}

/// Queues the answer to request `id`: RESPONSE with the reply, or ERROR. A reply too large for
/// the client becomes an ERROR `resource_exhausted`, not retryable. Returns the code the call
/// ended with, for the metrics.
pub(crate) fn answer(out: &mut Outbox, id: u32, answer: Answer) -> Code {
    let encoded = match answer {
        Ok(payload) => out.response(id, &payload).map(|()| Code::Ok),
        Err(Failure { status, details }) => {
            let code = status.code();
            out.error(id, status, details).map(|()| code)
        }
    };
    encoded.unwrap_or_else(|e: EncodeError| {
        let status = Status::resource_exhausted(format!("the answer cannot be sent: {e}"))
            .with_retryable(false);
        let _ = out.error(id, status, Bytes::new());
        Code::ResourceExhausted
    })
}

/// The status of a call whose deadline passed in the gateway.
pub(crate) fn deadline_exceeded(timeout: Duration) -> Status {
    Status::deadline_exceeded(format!("deadline exceeded after {}ms", timeout.as_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending_call() -> Call {
        Call::boxed(std::future::pending())
    }

    #[test]
    fn deadlines_expire_in_order_and_cancelled_calls_leave_none_behind() {
        let mut calls = Calls::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        calls.insert(1, 0, t0, at(30), pending_call());
        calls.insert(2, 0, t0, at(10), pending_call());
        calls.insert(3, 0, t0, at(20), pending_call());
        assert_eq!(calls.cancel(2).map(|(route, _)| route), Some(0));
        assert_eq!(calls.cancel(2), None, "a second CANCEL is ignored");
        assert_eq!(calls.next_deadline(), Some(at(20)));
        assert_eq!(
            calls.expire(at(25)).map(|(id, .., deadline)| (id, deadline)),
            Some((3, at(20)))
        );
        assert_eq!(calls.expire(at(25)), None);
        // The id is free again: a new call with it gets its own deadline.
        calls.insert(3, 0, t0, at(50), pending_call());
        assert_eq!(calls.expire(at(40)).map(|(id, ..)| id), Some(1));
        assert_eq!(calls.next_deadline(), Some(at(50)));
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn the_deadline_queue_stays_bounded_by_the_calls_in_flight() {
        let mut calls = Calls::default();
        let t0 = Instant::now();
        for i in 1..=10_000u32 {
            calls.insert(i, 0, t0, t0 + Duration::from_secs(30), pending_call());
            calls.cancel(i);
        }
        assert!(calls.deadlines.len() <= 2 * calls.len() + 65, "{}", calls.deadlines.len());
    }

    #[tokio::test]
    async fn calls_answered_by_the_bus_end_once_and_aborted_ones_not_at_all() {
        let mut calls = Calls::default();
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(30);
        calls.insert(1, 4, t0, later, Call::ready(Ok(Bytes::from_static(b"a"))));
        calls.insert(2, 4, t0, later, Call::ready(Ok(Bytes::from_static(b"b"))));
        calls.cancel(2);
        let ended = std::future::poll_fn(|cx| calls.poll_ended(cx)).await.unwrap();
        assert_eq!((ended.request_id, ended.route), (1, 4));
        assert_eq!(ended.answer, Some(Ok(Bytes::from_static(b"a"))));
        assert!(std::future::poll_fn(|cx| calls.poll_ended(cx)).await.is_none());
        assert!(calls.is_idle());
    }
}
