//! Writing frames: into a [`BytesMut`], so that many frames queued for one connection are
//! coalesced into one buffer and leave in one write.
//!
//! Every length is checked before the first byte is written: a frame that cannot be encoded
//! leaves the buffer as it was, and the frames already in it can still be sent.

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::frame::{
    FLAG_ALL_KEYS, FLAG_FIRE_AND_FORGET, FLAG_RECONNECT, FLAG_RETRYABLE, Frame, FrameType,
    LENGTH_PREFIX_SIZE, MAGIC,
};

/// Why a frame could not be encoded. Either is a bug or a misuse in the sender (a message over
/// 64 KiB, a payload over the peer's limit), never something the peer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A length-prefixed field (a string or the token) is longer than its `u16` length allows.
    FieldTooLong {
        /// The frame the field belongs to.
        frame_type: FrameType,
        /// The field's name in the spec (`message`).
        field: &'static str,
        /// The field's length in bytes.
        len: usize,
    },
    /// The frame is larger than the receiver accepts.
    FrameTooLarge {
        /// The frame's size, without the length prefix.
        len: usize,
        /// The receiver's maximum frame size.
        max: u32,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::FieldTooLong { frame_type, field, len } => write!(
                f,
                "field `{field}` of {} is {len} bytes long, more than {}",
                frame_type.name(),
                u16::MAX
            ),
            EncodeError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes is larger than the peer's maximum of {max}")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

impl Frame {
    /// The frame's size on the wire without the length prefix, which is what maximum frame sizes
    /// limit.
    ///
    /// # Errors
    ///
    /// [`EncodeError::FieldTooLong`] when a length-prefixed field does not fit its `u16` length.
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        let short = |field: &'static str, len: usize| {
            if len > usize::from(u16::MAX) {
                Err(EncodeError::FieldTooLong { frame_type: self.frame_type(), field, len })
            } else {
                Ok(2 + len)
            }
        };
        Ok(2 + match self {
            Frame::Hello(h) => {
                4 + 2
                    + 4
                    + short("client_name", h.client_name.len())?
                    + short("token", h.token.len())?
                    + capabilities_len(h.capabilities)
            }
            Frame::Welcome(w) => {
                2 + 4
                    + 4
                    + 4
                    + short("server_id", w.server_id.len())?
                    + 4
                    + capabilities_len(w.capabilities)
            }
            Frame::Ping { .. } | Frame::Pong { .. } => 8,
            Frame::Goaway(g) => 2 + 4 + short("message", g.message.len())?,
            Frame::Request(r) => 4 + 4 + 4 + r.payload.len(),
            Frame::Response(r) => 4 + r.payload.len(),
            Frame::Error(e) => {
                4 + 1 + 4 + short("message", e.status.message().len())? + e.details.len()
            }
            Frame::Cancel { .. } => 4,
            Frame::Subscribe(s) => 4 + 4 + short("key", s.key.len())?,
            Frame::Unsubscribe { .. } | Frame::Subscribed { .. } => 4,
            Frame::Publish(p) => 4 + 4 + short("key", p.key.len())? + p.payload.len(),
            Frame::Event(e) => 4 + short("key", e.key.len())? + e.payload.len(),
            Frame::SubscribeFrom(s) => 4 + 4 + 8 + 8 + short("key", s.key.len())?,
            Frame::SubscribedAt(_) => 4 + 1 + 8 + 8,
            Frame::EventAt(e) => 4 + 8 + short("key", e.key.len())? + e.payload.len(),
            Frame::Missed { .. } => 4 + 4,
            Frame::SubscriptionEnded(e) => 4 + 1 + short("message", e.status.message().len())?,
            Frame::Auth(a) => 4 + short("token", a.token.len())?,
            Frame::AuthOk { .. } => 4 + 4,
        })
    }

    /// Appends the frame to `dst` in its byte-stream (TCP) form: the `u32` length, then the frame.
    ///
    /// # Errors
    ///
    /// [`EncodeError::FieldTooLong`], or [`EncodeError::FrameTooLarge`] when the frame is larger
    /// than `max_frame_size`, the receiver's limit. `dst` is left unchanged.
    pub fn encode(&self, dst: &mut BytesMut, max_frame_size: u32) -> Result<(), EncodeError> {
        let len = self.checked_len(max_frame_size)?;
        dst.reserve(LENGTH_PREFIX_SIZE + len);
        // `checked_len` bounded `len` by a `u32`.
        dst.put_u32_le(len as u32);
        self.put(dst);
        Ok(())
    }

    /// Appends the frame to `dst` in its message form (one WebSocket binary message): the frame
    /// without a length prefix.
    ///
    /// # Errors
    ///
    /// As [`encode`](Frame::encode).
    pub fn encode_message(
        &self,
        dst: &mut BytesMut,
        max_frame_size: u32,
    ) -> Result<(), EncodeError> {
        let len = self.checked_len(max_frame_size)?;
        dst.reserve(len);
        self.put(dst);
        Ok(())
    }

    fn checked_len(&self, max_frame_size: u32) -> Result<usize, EncodeError> {
        let len = self.encoded_len()?;
        if len > max_frame_size as usize {
            return Err(EncodeError::FrameTooLarge { len, max: max_frame_size });
        }
        Ok(len)
    }

    /// Writes the frame; lengths were checked by `checked_len`, so the `as u16` casts are exact.
    fn put(&self, dst: &mut BytesMut) {
        dst.put_u8(self.frame_type() as u8);
        match self {
            Frame::Hello(h) => {
                dst.put_u8(0);
                dst.put_slice(&MAGIC);
                dst.put_u16_le(h.version);
                dst.put_u32_le(h.max_frame_size);
                put_short(dst, h.client_name.as_bytes());
                put_short(dst, &h.token);
                put_capabilities(dst, h.capabilities);
            }
            Frame::Welcome(w) => {
                dst.put_u8(0);
                dst.put_u16_le(w.version);
                dst.put_u32_le(w.max_frame_size);
                dst.put_u32_le(w.max_in_flight);
                dst.put_u32_le(w.idle_timeout_ms);
                put_short(dst, w.server_id.as_bytes());
                dst.put_u32_le(w.auth_expires_in_ms);
                put_capabilities(dst, w.capabilities);
            }
            Frame::Ping { data } | Frame::Pong { data } => {
                dst.put_u8(0);
                dst.put_u64_le(*data);
            }
            Frame::Goaway(g) => {
                dst.put_u8(flag(g.reconnect, FLAG_RECONNECT));
                dst.put_u16_le(g.reason.0);
                dst.put_u32_le(g.last_request_id);
                put_short(dst, g.message.as_bytes());
            }
            Frame::Request(r) => {
                dst.put_u8(flag(r.fire_and_forget, FLAG_FIRE_AND_FORGET));
                dst.put_u32_le(r.request_id);
                dst.put_u32_le(r.method_id);
                dst.put_u32_le(r.timeout_ms);
                dst.put_slice(&r.payload);
            }
            Frame::Response(r) => {
                dst.put_u8(0);
                dst.put_u32_le(r.request_id);
                dst.put_slice(&r.payload);
            }
            Frame::Error(e) => {
                dst.put_u8(flag(e.status.retryable(), FLAG_RETRYABLE));
                dst.put_u32_le(e.request_id);
                dst.put_u8(e.status.code() as u8);
                dst.put_u32_le(e.status.error_id());
                put_short(dst, e.status.message().as_bytes());
                dst.put_slice(&e.details);
            }
            Frame::Cancel { request_id } => {
                dst.put_u8(0);
                dst.put_u32_le(*request_id);
            }
            Frame::Subscribe(s) => {
                dst.put_u8(flag(s.all_keys, FLAG_ALL_KEYS));
                dst.put_u32_le(s.subscription_id);
                dst.put_u32_le(s.topic_id);
                put_short(dst, s.key.as_bytes());
            }
            Frame::Unsubscribe { subscription_id } | Frame::Subscribed { subscription_id } => {
                dst.put_u8(0);
                dst.put_u32_le(*subscription_id);
            }
            Frame::Publish(p) => {
                dst.put_u8(0);
                dst.put_u32_le(p.request_id);
                dst.put_u32_le(p.topic_id);
                put_short(dst, p.key.as_bytes());
                dst.put_slice(&p.payload);
            }
            Frame::Event(e) => {
                dst.put_u8(0);
                dst.put_u32_le(e.subscription_id);
                put_short(dst, e.key.as_bytes());
                dst.put_slice(&e.payload);
            }
            Frame::SubscribeFrom(s) => {
                dst.put_u8(flag(s.all_keys, FLAG_ALL_KEYS));
                dst.put_u32_le(s.subscription_id);
                dst.put_u32_le(s.topic_id);
                dst.put_u64_le(s.position.epoch);
                dst.put_u64_le(s.position.offset);
                put_short(dst, s.key.as_bytes());
            }
            Frame::SubscribedAt(s) => {
                dst.put_u8(0);
                dst.put_u32_le(s.subscription_id);
                dst.put_u8(s.recovery.0);
                dst.put_u64_le(s.position.epoch);
                dst.put_u64_le(s.position.offset);
            }
            Frame::EventAt(e) => {
                dst.put_u8(0);
                dst.put_u32_le(e.subscription_id);
                dst.put_u64_le(e.offset);
                put_short(dst, e.key.as_bytes());
                dst.put_slice(&e.payload);
            }
            Frame::Missed { subscription_id, count } => {
                dst.put_u8(0);
                dst.put_u32_le(*subscription_id);
                dst.put_u32_le(*count);
            }
            Frame::SubscriptionEnded(e) => {
                dst.put_u8(flag(e.status.retryable(), FLAG_RETRYABLE));
                dst.put_u32_le(e.subscription_id);
                dst.put_u8(e.status.code() as u8);
                put_short(dst, e.status.message().as_bytes());
            }
            Frame::Auth(a) => {
                dst.put_u8(0);
                dst.put_u32_le(a.request_id);
                put_short(dst, &a.token);
            }
            Frame::AuthOk { request_id, expires_in_ms } => {
                dst.put_u8(0);
                dst.put_u32_le(*request_id);
                dst.put_u32_le(*expires_in_ms);
            }
        }
    }
}

fn flag(set: bool, bit: u8) -> u8 {
    if set { bit } else { 0 }
}

/// Writes a `u16` length and the bytes; the caller checked that the length fits.
fn put_short(dst: &mut BytesMut, bytes: &[u8]) {
    dst.put_u16_le(bytes.len() as u16);
    dst.put_slice(bytes);
}

/// HELLO's and WELCOME's `capabilities`: left out when there are none, so that a peer with
/// none sends what peers before the field did.
fn put_capabilities(dst: &mut BytesMut, capabilities: u32) {
    if capabilities != 0 {
        dst.put_u32_le(capabilities);
    }
}

fn capabilities_len(capabilities: u32) -> usize {
    if capabilities == 0 { 0 } else { 4 }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use gateway_core::Status;

    use super::*;
    use crate::frame::{
        Auth, ErrorReply, Event, Goaway, Publish, Request, Subscribe, SubscriptionEnded, Welcome,
    };
    use crate::reason::GoawayReason;

    #[test]
    fn request_layout_is_header_then_payload() {
        let frame = Frame::Request(Request {
            request_id: 7,
            method_id: 0x0102_0304,
            timeout_ms: 1000,
            fire_and_forget: true,
            payload: Bytes::from_static(b"xy"),
        });
        let mut dst = BytesMut::new();
        frame.encode(&mut dst, u32::MAX).unwrap();
        assert_eq!(
            &dst[..],
            &[16, 0, 0, 0, 0x10, 0x01, 7, 0, 0, 0, 4, 3, 2, 1, 0xe8, 3, 0, 0, b'x', b'y']
        );
        assert_eq!(frame.encoded_len().unwrap(), 16);
    }

    #[test]
    fn frames_append_so_writes_coalesce() {
        let mut dst = BytesMut::new();
        Frame::Ping { data: 1 }.encode(&mut dst, u32::MAX).unwrap();
        Frame::Cancel { request_id: 2 }.encode(&mut dst, u32::MAX).unwrap();
        assert_eq!(dst.len(), (4 + 10) + (4 + 6));
        assert_eq!(&dst[14..], &[6, 0, 0, 0, 0x13, 0, 2, 0, 0, 0]);
    }

    #[test]
    fn a_frame_over_the_peers_limit_is_refused_and_leaves_the_buffer_alone() {
        let mut dst = BytesMut::from(&b"queued"[..]);
        let frame = Frame::Ping { data: 0 };
        let err = frame.encode(&mut dst, 9).unwrap_err();
        assert_eq!(err, EncodeError::FrameTooLarge { len: 10, max: 9 });
        assert_eq!(&dst[..], b"queued");
        frame.encode(&mut dst, 10).unwrap();
    }

    #[test]
    fn a_message_over_64_kib_is_refused() {
        let long = "x".repeat(usize::from(u16::MAX) + 1);
        let frame = Frame::Goaway(Goaway::new(GoawayReason::POLICY, long));
        let mut dst = BytesMut::new();
        let err = frame.encode(&mut dst, u32::MAX).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `message` of GOAWAY is 65536 bytes long, more than 65535"
        );
        assert!(dst.is_empty());

        let fits = "x".repeat(usize::from(u16::MAX));
        let status = Status::internal(fits);
        let frame = Frame::Error(ErrorReply { request_id: 1, status, details: Bytes::new() });
        assert_eq!(frame.encoded_len().unwrap(), 13 + 65535);
    }

    #[test]
    fn message_form_has_no_length_prefix() {
        let mut dst = BytesMut::new();
        Frame::Cancel { request_id: 0x0a0b_0c0d }.encode_message(&mut dst, u32::MAX).unwrap();
        assert_eq!(&dst[..], &[0x13, 0, 0x0d, 0x0c, 0x0b, 0x0a]);
    }

    #[test]
    fn subscription_ended_carries_code_flag_and_message_but_no_error_id() {
        // A `Status` may carry an application error id; SUBSCRIPTION_ENDED has no field for it,
        // and its RETRYABLE flag follows the status, not the code's default.
        let status = Status::permission_denied("no").with_retryable(true).with_error_id(77);
        let frame = Frame::SubscriptionEnded(SubscriptionEnded { subscription_id: 5, status });
        let mut dst = BytesMut::new();
        frame.encode_message(&mut dst, u32::MAX).unwrap();
        assert_eq!(&dst[..], &[0x26, 0x01, 5, 0, 0, 0, 7, 2, 0, b'n', b'o']);
        assert_eq!(frame.encoded_len().unwrap(), dst.len());
    }

    #[test]
    fn subscribe_sets_all_keys_only_when_asked() {
        let mut dst = BytesMut::new();
        for all_keys in [true, false] {
            let subscribe = Subscribe { subscription_id: 1, topic_id: 2, all_keys, key: "".into() };
            Frame::Subscribe(subscribe).encode_message(&mut dst, u32::MAX).unwrap();
        }
        assert_eq!(dst[1], FLAG_ALL_KEYS);
        assert_eq!(dst[12 + 1], 0);
    }

    #[test]
    fn welcome_ends_with_the_auth_expiry() {
        let welcome = Welcome {
            capabilities: 0,
            version: 1,
            max_frame_size: 0x0001_0000,
            max_in_flight: 1,
            idle_timeout_ms: 0,
            server_id: "g".into(),
            auth_expires_in_ms: 0x0102_0304,
        };
        let mut dst = BytesMut::new();
        Frame::Welcome(welcome).encode_message(&mut dst, u32::MAX).unwrap();
        assert_eq!(dst.len(), 23);
        assert_eq!(&dst[16..], &[1, 0, b'g', 4, 3, 2, 1]);
    }

    #[test]
    fn a_key_or_token_over_64_kib_is_refused() {
        let long = "k".repeat(usize::from(u16::MAX) + 1);
        let event =
            Frame::Event(Event { subscription_id: 1, key: long.clone(), payload: Bytes::new() });
        assert_eq!(
            event.encoded_len().unwrap_err().to_string(),
            "field `key` of EVENT is 65536 bytes long, more than 65535"
        );
        let publish = Frame::Publish(Publish {
            request_id: 0,
            topic_id: 1,
            key: long.clone(),
            payload: Bytes::new(),
        });
        assert!(matches!(
            publish.encoded_len(),
            Err(EncodeError::FieldTooLong { field: "key", .. })
        ));
        let auth = Frame::Auth(Auth { request_id: 1, token: Bytes::from(long) });
        let mut dst = BytesMut::new();
        assert_eq!(
            auth.encode(&mut dst, u32::MAX).unwrap_err(),
            EncodeError::FieldTooLong { frame_type: FrameType::Auth, field: "token", len: 65536 }
        );
        assert!(dst.is_empty());
    }
}
