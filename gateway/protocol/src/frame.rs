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

/// The frame type numbers of version 1, grouped by range: `0x01..=0x0F` connection control,
/// `0x10..=0x1F` RPC, `0x20..=0x2F` pub/sub and `0x30..=0x3F` auth (both reserved, unassigned in
/// version 1). `0x00` is never assigned, so a zeroed buffer is never a valid frame.
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
        ];
        for t in all {
            assert_eq!(FrameType::from_u8(t as u8), Some(t));
        }
        let assigned = (0..=255u8).filter(|&n| FrameType::from_u8(n).is_some()).count();
        assert_eq!(assigned, all.len());
        assert_eq!(FrameType::from_u8(0x00), None);
        assert_eq!(FrameType::from_u8(0x20), None);
        assert_eq!(FrameType::from_u8(0x30), None);
    }

    #[test]
    fn goaway_new_takes_the_reasons_reconnect_advice() {
        assert!(Goaway::new(GoawayReason::SHUTTING_DOWN, "").reconnect);
        assert!(!Goaway::new(GoawayReason::POLICY, "banned").reconnect);
    }
}
