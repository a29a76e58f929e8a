//! The frames of protocol version 1, as values.
//!
//! Each frame on the wire is `type: u8`, `flags: u8`, the type's fixed fields, then a variable
//! part (`docs/protocol.md`, "Frames"). Here a frame is a [`Frame`] variant whose fields are the
//! wire fields with the flag bits turned into `bool`s; payloads and other opaque bytes are
//! [`Bytes`], slices of the buffer the frame was read from, so relaying a payload never copies it.

use bytes::Bytes;
use gateway_core::Status;

use crate::reason::GoawayReason;

/// The four bytes every HELLO starts with: a connection that does not speak this protocol (an
/// HTTP client on the wrong port) is told apart at its first frame.
pub const MAGIC: [u8; 4] = *b"FBRP";

/// The protocol version this crate speaks.
pub const VERSION: u16 = 1;

/// The maximum frame size a peer states when it has no reason to choose another: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;

/// The smallest maximum frame size a peer may state (64 KiB), so that every control frame and
/// every small call fits whatever the peer chose.
pub const MIN_MAX_FRAME_SIZE: u32 = 64 * 1024;

/// The length prefix before every frame on a byte stream (TCP): a little-endian `u32` counting
/// the bytes after it.
pub const LENGTH_PREFIX_SIZE: usize = 4;

/// Flag bit 7, meaningful on every frame type: a receiver that does not know the frame's type
/// skips the frame instead of failing the connection. Senders set it on frame types that a peer
/// may safely not understand; this is how the protocol grows without version bumps.
pub const FLAG_IGNORABLE: u8 = 0x80;

/// Flag bit 0 of REQUEST: the client wants no reply, and the server sends none.
pub const FLAG_FIRE_AND_FORGET: u8 = 0x01;

/// Flag bit 0 of ERROR: sending the same request again can succeed.
pub const FLAG_RETRYABLE: u8 = 0x01;

/// Flag bit 0 of GOAWAY: reconnecting, to this gateway or another, can help.
pub const FLAG_RECONNECT: u8 = 0x01;

/// Flag bit 0 of SUBSCRIBE: every key of a keyed topic (the `key` field is then empty).
pub const FLAG_ALL_KEYS: u8 = 0x01;

/// HELLO and WELCOME capability bit 0, `HISTORY`: the peer speaks stream positions. A client
/// announcing it accepts SUBSCRIBED_AT and EVENT_AT; a server announcing it keeps history and
/// accepts SUBSCRIBE_FROM (`docs/protocol.md`, "History and recovery").
pub const CAPABILITY_HISTORY: u32 = 0x01;

/// The frame type numbers of version 1, grouped by range: `0x01..=0x0F` connection control,
/// `0x10..=0x1F` RPC, `0x20..=0x2F` pub/sub,
/// `0x30..=0x3F` auth. `0x00` is never assigned, so a zeroed buffer is never a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    Hello = 0x01,
    Welcome = 0x02,
    Ping = 0x03,
    Pong = 0x04,
    Goaway = 0x05,
    Request = 0x10,
    Response = 0x11,
    Error = 0x12,
    Cancel = 0x13,
    Subscribe = 0x20,
    Unsubscribe = 0x21,
    Publish = 0x22,
    Subscribed = 0x23,
    Event = 0x24,
    Missed = 0x25,
    SubscriptionEnded = 0x26,
    SubscribeFrom = 0x27,
    SubscribedAt = 0x28,
    EventAt = 0x29,
    Auth = 0x30,
    AuthOk = 0x31,
}

impl FrameType {
    /// The type with this number, or `None` for a number version 1 does not assign.
    pub const fn from_u8(n: u8) -> Option<FrameType> {
        Some(match n {
            0x01 => FrameType::Hello,
            0x02 => FrameType::Welcome,
            0x03 => FrameType::Ping,
            0x04 => FrameType::Pong,
            0x05 => FrameType::Goaway,
            0x10 => FrameType::Request,
            0x11 => FrameType::Response,
            0x12 => FrameType::Error,
            0x13 => FrameType::Cancel,
            0x20 => FrameType::Subscribe,
            0x21 => FrameType::Unsubscribe,
            0x22 => FrameType::Publish,
            0x23 => FrameType::Subscribed,
            0x24 => FrameType::Event,
            0x25 => FrameType::Missed,
            0x26 => FrameType::SubscriptionEnded,
            0x27 => FrameType::SubscribeFrom,
            0x28 => FrameType::SubscribedAt,
            0x29 => FrameType::EventAt,
            0x30 => FrameType::Auth,
            0x31 => FrameType::AuthOk,
            _ => return None,
        })
    }

    /// The name the spec and error messages use (`HELLO`).
    pub const fn name(self) -> &'static str {
        match self {
            FrameType::Hello => "HELLO",
            FrameType::Welcome => "WELCOME",
            FrameType::Ping => "PING",
            FrameType::Pong => "PONG",
            FrameType::Goaway => "GOAWAY",
            FrameType::Request => "REQUEST",
            FrameType::Response => "RESPONSE",
            FrameType::Error => "ERROR",
            FrameType::Cancel => "CANCEL",
            FrameType::Subscribe => "SUBSCRIBE",
            FrameType::Unsubscribe => "UNSUBSCRIBE",
            FrameType::Publish => "PUBLISH",
            FrameType::Subscribed => "SUBSCRIBED",
            FrameType::Event => "EVENT",
            FrameType::Missed => "MISSED",
            FrameType::SubscriptionEnded => "SUBSCRIPTION_ENDED",
            FrameType::SubscribeFrom => "SUBSCRIBE_FROM",
            FrameType::SubscribedAt => "SUBSCRIBED_AT",
            FrameType::EventAt => "EVENT_AT",
            FrameType::Auth => "AUTH",
            FrameType::AuthOk => "AUTH_OK",
        }
    }
}

/// One frame of protocol version 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Client → server, the connection's first frame.
    Hello(Hello),
    /// Server → client, the answer to an acceptable HELLO.
    Welcome(Welcome),
    /// Either direction: the peer answers with a PONG carrying the same `data`.
    Ping {
        /// Opaque to the receiver (a sender typically puts a timestamp or a counter here).
        data: u64,
    },
    /// The answer to a PING.
    Pong {
        /// The `data` of the PING this answers.
        data: u64,
    },
    /// Either direction (normally the server): the sender closes the connection.
    Goaway(Goaway),
    /// Client → server: call a method.
    Request(Request),
    /// Server → client: a method's successful reply.
    Response(Response),
    /// Server → client: a call failed.
    Error(ErrorReply),
    /// Client → server: the client no longer wants the reply to this request.
    Cancel {
        /// The id of the request to cancel.
        request_id: u32,
    },
    /// Client → server: receive a topic's events.
    Subscribe(Subscribe),
    /// Client → server: stop receiving a subscription's events.
    Unsubscribe {
        /// The subscription to end.
        subscription_id: u32,
    },
    /// Client → server: publish an event to a topic.
    Publish(Publish),
    /// Server → client: a SUBSCRIBE was accepted; its events follow.
    Subscribed {
        /// The subscription accepted.
        subscription_id: u32,
    },
    /// Server → client: one event of a subscription.
    Event(Event),
    /// Server → client: events of a subscription were dropped because the client fell behind.
    Missed {
        /// The subscription that lost events.
        subscription_id: u32,
        /// How many events were dropped since the last MISSED for this subscription.
        count: u32,
    },
    /// Server → client: a SUBSCRIBE was refused, or the server ended a subscription.
    SubscriptionEnded(SubscriptionEnded),
    /// Client → server: receive a topic's events, first those after a position (a server that
    /// announced [`CAPABILITY_HISTORY`]).
    SubscribeFrom(SubscribeFrom),
    /// Server → client: a subscription to a topic with history is open, at a position (a client
    /// that announced [`CAPABILITY_HISTORY`]).
    SubscribedAt(SubscribedAt),
    /// Server → client: one event of a subscription opened with SUBSCRIBED_AT, with its offset.
    EventAt(EventAt),
    /// Client → server: present a fresh token on a live connection.
    Auth(Auth),
    /// Server → client: the token of an AUTH was accepted.
    AuthOk {
        /// The id of the AUTH this answers.
        request_id: u32,
        /// Milliseconds until the new token expires; 0 when it never does.
        expires_in_ms: u32,
    },
}

impl Frame {
    /// This frame's type.
    pub const fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Welcome(_) => FrameType::Welcome,
            Frame::Ping { .. } => FrameType::Ping,
            Frame::Pong { .. } => FrameType::Pong,
            Frame::Goaway(_) => FrameType::Goaway,
            Frame::Request(_) => FrameType::Request,
            Frame::Response(_) => FrameType::Response,
            Frame::Error(_) => FrameType::Error,
            Frame::Cancel { .. } => FrameType::Cancel,
            Frame::Subscribe(_) => FrameType::Subscribe,
            Frame::Unsubscribe { .. } => FrameType::Unsubscribe,
            Frame::Publish(_) => FrameType::Publish,
            Frame::Subscribed { .. } => FrameType::Subscribed,
            Frame::Event(_) => FrameType::Event,
            Frame::Missed { .. } => FrameType::Missed,
            Frame::SubscriptionEnded(_) => FrameType::SubscriptionEnded,
            Frame::SubscribeFrom(_) => FrameType::SubscribeFrom,
            Frame::SubscribedAt(_) => FrameType::SubscribedAt,
            Frame::EventAt(_) => FrameType::EventAt,
            Frame::Auth(_) => FrameType::Auth,
            Frame::AuthOk { .. } => FrameType::AuthOk,
        }
    }
}

/// The client's opening frame: who it is, what it accepts, and its credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The highest protocol version the client speaks.
    pub version: u16,
    /// The largest frame the client accepts, in bytes after the length prefix.
    pub max_frame_size: u32,
    /// A name for the server's logs (`"device-tracker/1.4"`); empty when the client gives none.
    pub client_name: String,
    /// Credentials for the auth layer; empty when the client presents none.
    pub token: Bytes,
    /// What the client speaks beyond version 1's frames ([`CAPABILITY_HISTORY`]); 0 is written
    /// by leaving the field out, as clients before it did.
    pub capabilities: u32,
}

/// The server's answer to HELLO: the connection's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The version the connection speaks from now on.
    pub version: u16,
    /// The largest frame the server accepts, in bytes after the length prefix.
    pub max_frame_size: u32,
    /// How many requests the client may have in flight on this connection; past it requests are
    /// answered with `resource_exhausted`.
    pub max_in_flight: u32,
    /// The server closes a connection on which it received nothing for this long, in
    /// milliseconds; 0 means it never does. A client keeps an idle connection open with PINGs.
    pub idle_timeout_ms: u32,
    /// Which server this is, for the client's logs.
    pub server_id: String,
    /// Milliseconds until the connection's credentials expire (the client presents a fresh token
    /// with AUTH before then, or the server closes the connection with `token_expired`); 0 when
    /// they never do.
    pub auth_expires_in_ms: u32,
    /// What the server speaks beyond version 1's frames ([`CAPABILITY_HISTORY`]); 0 is written
    /// by leaving the field out, as servers before it did.
    pub capabilities: u32,
}

/// A call of one method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the client, unique among the connection's requests in flight; never 0.
    pub request_id: u32,
    /// The method's id, as rpcgen assigns it.
    pub method_id: u32,
    /// How long the client waits, in milliseconds from the server's receipt of the frame; 0 means
    /// no deadline. Relative, so that the peers' clocks need not agree.
    pub timeout_ms: u32,
    /// The client wants no reply (`FLAG_FIRE_AND_FORGET`).
    pub fire_and_forget: bool,
    /// The request message, FlatBuffers bytes.
    pub payload: Bytes,
}

/// A successful reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The id of the request this answers.
    pub request_id: u32,
    /// The reply message, FlatBuffers bytes.
    pub payload: Bytes,
}

/// A failed call: the request it answers, the status, and optional details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    /// The id of the request this answers.
    pub request_id: u32,
    /// Code, message, retryability (`FLAG_RETRYABLE`) and application error id. On the wire the
    /// code is never `ok`: a received 0, like any number the receiver does not know, decodes as
    /// `unknown`.
    pub status: Status,
    /// Machine-readable details of an application error (FlatBuffers bytes the method's service
    /// file declares); empty when there are none.
    pub details: Bytes,
}

/// A subscription to one topic: to one key of a keyed topic, to all its keys, or to an unkeyed
/// topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// Chosen by the client, unique among the connection's subscriptions; never 0. EVENT frames
    /// name it.
    pub subscription_id: u32,
    /// The topic's id, as rpcgen assigns it.
    pub topic_id: u32,
    /// Every key of a keyed topic (`FLAG_ALL_KEYS`); `key` is then empty.
    pub all_keys: bool,
    /// The key of a keyed topic (integers in decimal); empty for an unkeyed topic.
    pub key: String,
}

/// An event a client publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// 0 when the client wants no answer; otherwise a request id (same space and rules as
    /// REQUEST's), answered with an empty RESPONSE once the event is handed to the bus, or ERROR.
    pub request_id: u32,
    /// The topic's id.
    pub topic_id: u32,
    /// The event's key (integers in decimal); empty for an unkeyed topic.
    pub key: String,
    /// The event message, FlatBuffers bytes.
    pub payload: Bytes,
}

/// One event delivered to one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The subscription it is delivered to.
    pub subscription_id: u32,
    /// The event's key; empty for an unkeyed topic.
    pub key: String,
    /// The event message, FlatBuffers bytes, as the publisher sent them.
    pub payload: Bytes,
}

/// Where an event stands in its topic's history: the history's `epoch` (it changes when the
/// history is lost) and the event's `offset` in it (rising; one sequence per topic, so one
/// key's offsets have gaps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub epoch: u64,
    pub offset: u64,
}

/// A subscription that first recovers the events after a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeFrom {
    /// As in [`Subscribe`].
    pub subscription_id: u32,
    /// As in [`Subscribe`].
    pub topic_id: u32,
    /// As in [`Subscribe`].
    pub all_keys: bool,
    /// As in [`Subscribe`].
    pub key: String,
    /// The last position the client received (of an event, or of its last SUBSCRIBED_AT): the
    /// events after it are wanted.
    pub position: Position,
}

/// Whether a subscription recovered what it asked for (SUBSCRIBED_AT's `recovery`). A number
/// this crate does not name is kept as it is; it is not [`Recovery::RECOVERED`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Recovery(pub u8);

impl Recovery {
    /// Not asked: the subscription came from a plain SUBSCRIBE.
    pub const NONE: Recovery = Recovery(0);
    /// Every event after the position follows, in order, before the live ones.
    pub const RECOVERED: Recovery = Recovery(1);
    /// The position is of another history: the one it was in is lost.
    pub const EPOCH_CHANGED: Recovery = Recovery(2);
    /// Events after the position are no longer kept (count, age or size limits).
    pub const TOO_OLD: Recovery = Recovery(3);
    /// More events were missed than the server sends in one recovery.
    pub const TOO_MANY: Recovery = Recovery(4);
    /// The position is past anything the history gave.
    pub const AHEAD: Recovery = Recovery(5);
    /// The history could not be read just now.
    pub const UNAVAILABLE: Recovery = Recovery(6);

    /// Whether the events after the position follow.
    pub const fn is_recovered(self) -> bool {
        self.0 == 1
    }

    /// The name the spec uses (`too_old`), or `None` for a number this crate does not name.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "none",
            1 => "recovered",
            2 => "epoch_changed",
            3 => "too_old",
            4 => "too_many",
            5 => "ahead",
            6 => "unavailable",
            _ => return None,
        })
    }
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "recovery {}", self.0),
        }
    }
}

/// A subscription to a topic with history is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribedAt {
    /// The subscription now open.
    pub subscription_id: u32,
    /// What became of the recovery a SUBSCRIBE_FROM asked for; [`Recovery::NONE`] after a
    /// SUBSCRIBE.
    pub recovery: Recovery,
    /// The events that follow have offsets after this one: the asked position when recovered,
    /// else the history's newest when the subscription opened.
    pub position: Position,
}

/// One event, with its offset, delivered to a subscription opened with SUBSCRIBED_AT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventAt {
    /// The subscription it is delivered to.
    pub subscription_id: u32,
    /// Its offset in the topic's history (the epoch is the subscription's).
    pub offset: u64,
    /// The event's key; empty for an unkeyed topic.
    pub key: String,
    /// The event message, FlatBuffers bytes, as the publisher sent them.
    pub payload: Bytes,
}

/// A subscription the server refused or ended: no EVENT for it follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionEnded {
    /// The subscription.
    pub subscription_id: u32,
    /// Why: `permission_denied`, `not_found` (unknown topic), `invalid_argument` (bad key),
    /// `resource_exhausted` (too many subscriptions), `unavailable` (the gateway is draining).
    /// Its `error_id` is always 0.
    pub status: Status,
}

/// A fresh token for the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    /// A request id (same space and rules as REQUEST's), answered with AUTH_OK or ERROR.
    pub request_id: u32,
    /// The new credentials.
    pub token: Bytes,
}

/// The sender is closing the connection, and says why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Goaway {
    /// Why the connection closes.
    pub reason: GoawayReason,
    /// Whether reconnecting can help (`FLAG_RECONNECT`).
    pub reconnect: bool,
    /// The id of the last REQUEST, in the order the server received them, that the server will
    /// still answer; 0 when there is none. Requests sent after it were not processed.
    pub last_request_id: u32,
    /// Details for humans; may be empty.
    pub message: String,
}

impl Goaway {
    /// A GOAWAY for `reason`, with its default reconnect advice and no request left to answer.
    pub fn new(reason: GoawayReason, message: impl Into<String>) -> Goaway {
        Goaway {
            reason,
            reconnect: reason.reconnect_by_default(),
            last_request_id: 0,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_type_numbers_round_trip_and_unassigned_numbers_are_none() {
        let all = [
            FrameType::Hello,
            FrameType::Welcome,
            FrameType::Ping,
            FrameType::Pong,
            FrameType::Goaway,
            FrameType::Request,
            FrameType::Response,
            FrameType::Error,
            FrameType::Cancel,
            FrameType::Subscribe,
            FrameType::Unsubscribe,
            FrameType::Publish,
            FrameType::Subscribed,
            FrameType::Event,
            FrameType::Missed,
            FrameType::SubscriptionEnded,
            FrameType::SubscribeFrom,
            FrameType::SubscribedAt,
            FrameType::EventAt,
            FrameType::Auth,
            FrameType::AuthOk,
        ];
        for t in all {
            assert_eq!(FrameType::from_u8(t as u8), Some(t));
        }
        let assigned = (0..=255u8).filter(|&n| FrameType::from_u8(n).is_some()).count();
        assert_eq!(assigned, all.len());
        assert_eq!(FrameType::from_u8(0x00), None);
        assert_eq!(FrameType::from_u8(0x2a), None);
        assert_eq!(FrameType::from_u8(0x32), None);
    }

    #[test]
    fn goaway_new_takes_the_reasons_reconnect_advice() {
        assert!(Goaway::new(GoawayReason::SHUTTING_DOWN, "").reconnect);
        assert!(!Goaway::new(GoawayReason::POLICY, "banned").reconnect);
    }
}
