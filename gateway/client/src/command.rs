//! What the client's side hands to a connection's task, and what comes back: the vocabulary both
//! sides share, so that neither needs the other.
//!
//! A caller holds a connection's [`Handle`] and sends it a [`Command`]: a [`Call`] (a REQUEST, a
//! PUBLISH that wants an answer, or an AUTH, see [`Outgoing`]) or a first SUBSCRIBE, each with a
//! oneshot for its [`Outcome`]. What must get through even when the command channel is full (a
//! CANCEL, an UNSUBSCRIBE) goes as a [`Control`]. A unary call and the connection task share a
//! [`CallSlot`], so that a call dropped at any moment is cancelled if and only if its request left.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use gateway_core::{MethodDesc, Status, TopicDesc};
use gateway_protocol::{Auth, Frame, Publish, Request};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::feed::Feed;

/// How callers reach a connection's task.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) calls: mpsc::Sender<Command>,
    /// Unbounded, yet bounded in practice: each request in flight is cancelled at most once
    /// (requests in flight are bounded by the server's `max_in_flight`), and each subscription
    /// is unsubscribed at most twice.
    pub(crate) control: mpsc::UnboundedSender<Control>,
    /// The largest frame the server accepts.
    pub(crate) max_frame_size: u32,
    pub(crate) endpoint: Arc<str>,
}

/// What callers hand to the connection task, through its bounded channel.
#[derive(Debug)]
pub(crate) enum Command {
    Call(Call),
    /// Subscribe for the first time; the reply is `Answer::Subscribed` or the refusal.
    Subscribe {
        feed: Arc<Feed>,
        reply: oneshot::Sender<Outcome>,
    },
}

impl Command {
    /// Where the outcome goes.
    pub(crate) fn into_reply(self) -> oneshot::Sender<Outcome> {
        match self {
            Command::Call(call) => call.reply,
            Command::Subscribe { reply, .. } => reply,
        }
    }
}

/// What must reach the connection task even when its command channel is full.
#[derive(Debug)]
pub(crate) enum Control {
    /// The caller of this request gave up: send CANCEL.
    Cancel(u32),
    /// The stream of the subscription with this key was dropped: send UNSUBSCRIBE.
    Unsubscribe(u64),
}

/// One call handed to the connection task.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) what: Outgoing,
    /// The request message, the event, or the token.
    pub(crate) payload: Bytes,
    /// The deadline relative to the server's receipt, as REQUEST carries it.
    pub(crate) timeout_ms: u32,
    pub(crate) deadline: Instant,
    pub(crate) kind: CallKind,
    pub(crate) reply: oneshot::Sender<Outcome>,
}

/// Whether a call waits for a reply.
#[derive(Debug)]
pub(crate) enum CallKind {
    /// The caller waits for RESPONSE or ERROR; the slot tells it which id to cancel.
    Unary(Arc<CallSlot>),
    /// The caller waits until the REQUEST is written.
    FireAndForget,
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

/// What a caller learns of its call from the connection task.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The call is over: the reply, or why there is none.
    Done(Result<Answer, Status>),
    /// The request never left this client (the connection was closing); the caller may send it
    /// on the next connection, within its deadline.
    NotSent,
}

/// A successful reply.
#[derive(Debug)]
pub(crate) enum Answer {
    /// RESPONSE to a REQUEST or a PUBLISH (empty for a PUBLISH), or a fire-and-forget request
    /// written.
    Payload(Bytes),
    /// AUTH_OK: the new token expires in this many milliseconds (0: never).
    Authenticated { expires_in_ms: u32 },
    /// SUBSCRIBED.
    Subscribed,
}

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
    pub(crate) fn abandon(&self) -> Option<u32> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *state, SlotState::Abandoned) {
            SlotState::Sent(request_id) => Some(request_id),
            SlotState::Queued | SlotState::Abandoned => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
