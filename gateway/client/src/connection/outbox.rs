//! The bytes one connection has queued for its socket, and the callers waiting for theirs to be
//! written.
//!
//! Frames are encoded into one buffer as they come, and the connection task writes whatever the
//! buffer holds whenever the socket takes it: frames queued during a write leave together in the
//! next one, so writes coalesce under load by themselves.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use gateway_protocol::{EncodeError, Frame};
use tokio::sync::oneshot;
use tracing::warn;

use crate::command::{Answer, Outcome};

/// Encoded frames on their way to the socket.
#[derive(Debug)]
pub(super) struct Outbox {
    /// What the socket has not taken yet.
    pub(super) buf: BytesMut,
    /// The largest frame the server accepts.
    max_send: u32,
    /// Bytes ever appended to `buf`, and bytes ever written from it: a fire-and-forget call
    /// resolves once `written` passes the end of its frame.
    queued: u64,
    written: u64,
    waiters: VecDeque<(u64, oneshot::Sender<Outcome>)>,
    /// For the logs.
    endpoint: Arc<str>,
}

impl Outbox {
    pub(super) fn new(endpoint: Arc<str>, max_send: u32, capacity: usize) -> Outbox {
        Outbox {
            buf: BytesMut::with_capacity(capacity),
            max_send,
            queued: 0,
            written: 0,
            waiters: VecDeque::new(),
            endpoint,
        }
    }

    /// Encodes `frame` at the end of the buffer.
    pub(super) fn queue(&mut self, frame: &Frame) -> Result<(), EncodeError> {
        let before = self.buf.len();
        frame.encode(&mut self.buf, self.max_send)?;
        self.queued += (self.buf.len() - before) as u64;
        Ok(())
    }

    /// Queues a frame of the connection's own (PING, PONG, CANCEL, UNSUBSCRIBE, GOAWAY): small
    /// fixed-size frames that always fit the protocol's minimum frame size.
    pub(super) fn queue_control(&mut self, frame: Frame) {
        if let Err(e) = self.queue(&frame) {
            warn!(endpoint = %self.endpoint, error = %e, "cannot encode a control frame");
        }
    }

    /// `reply` hears once everything queued so far has been written.
    pub(super) fn notify_when_written(&mut self, reply: oneshot::Sender<Outcome>) {
        self.waiters.push_back((self.queued, reply));
    }

    /// The socket took `n` bytes from the front of the buffer.
    pub(super) fn on_written(&mut self, n: usize) {
        self.written += n as u64;
        while let Some((end, _)) = self.waiters.front()
            && *end <= self.written
        {
            if let Some((_, reply)) = self.waiters.pop_front() {
                let _ = reply.send(Outcome::Done(Ok(Answer::Payload(Bytes::new()))));
            }
        }
    }

    /// The connection ends: what was not written never left, and its callers may send it
    /// elsewhere.
    pub(super) fn fail_waiters(&mut self) {
        for (_, reply) in self.waiters.drain(..) {
            let _ = reply.send(Outcome::NotSent);
        }
    }
}
