//! Reading frames, without copying their payloads and without panicking on any input.
//!
//! [`decode`] reads the byte-stream (TCP) form from a read buffer: it splits the frame's bytes off
//! the buffer, and every payload, token or details field of the result is a [`Bytes`] slice of
//! them. [`decode_message`] reads the message form (one WebSocket message, no length prefix).
//! Either answers with a small enum or a [`DecodeError`] naming what was wrong, which a server
//! turns into a GOAWAY with [`DecodeError::goaway_reason`].

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};
use gateway_core::{Code, Status};

use crate::frame::{
    Auth, ErrorReply, Event, EventAt, FLAG_ALL_KEYS, FLAG_FIRE_AND_FORGET, FLAG_IGNORABLE,
    FLAG_RECONNECT, FLAG_RETRYABLE, Frame, FrameType, Goaway, Hello, LENGTH_PREFIX_SIZE, MAGIC,
    Position, Publish, Recovery, Request, Response, Subscribe, SubscribeFrom, SubscribedAt,
    SubscriptionEnded, Welcome,
};
use crate::reason::GoawayReason;

/// What [`decode`] found at the front of the read buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame, now removed from the buffer.
    Frame(Frame),
    /// A frame of a type this version does not know, flagged ignorable: removed from the buffer
    /// and to be ignored.
    Skipped {
        /// The unknown type number, for logs.
        frame_type: u8,
    },
    /// The buffer holds only the start of a frame; read at least `needed` more bytes and call
    /// again. Nothing was removed.
    Incomplete {
        /// How many more bytes the frame needs (when the length prefix itself is incomplete, how
        /// many the prefix needs).
        needed: usize,
    },
}

/// Why bytes are not a frame. Each is a protocol error that ends the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The length prefix announces a frame larger than the receiver's maximum frame size; the
    /// frame's bytes are not waited for.
    FrameTooLarge {
        /// The announced length.
        len: u32,
        /// The receiver's maximum frame size.
        max: u32,
    },
    /// A frame of length 0: it does not even have a type.
    EmptyFrame,
    /// A frame type this version does not know, without the ignorable flag.
    UnknownFrameType {
        /// The type number.
        frame_type: u8,
    },
    /// The frame ends before one of its fields does.
    Truncated {
        /// The frame's type number.
        frame_type: u8,
        /// The field that does not fit (`flags`, `method_id`, `message`...).
        field: &'static str,
    },
    /// A HELLO that does not start with the protocol's magic: the peer speaks something else.
    BadMagic {
        /// The four bytes found instead.
        found: [u8; 4],
    },
    /// A string field is not UTF-8.
    BadUtf8 {
        /// The frame's type.
        frame_type: FrameType,
        /// The field.
        field: &'static str,
    },
    /// Bytes after the last field of a frame whose layout ends there.
    TrailingBytes {
        /// The frame's type.
        frame_type: FrameType,
        /// How many bytes are left over.
        len: usize,
    },
}

impl DecodeError {
    /// The error's kind as the spec and the test vectors name it (`frame_too_large`).
    pub const fn name(&self) -> &'static str {
        match self {
            DecodeError::FrameTooLarge { .. } => "frame_too_large",
            DecodeError::EmptyFrame => "empty_frame",
            DecodeError::UnknownFrameType { .. } => "unknown_frame_type",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadMagic { .. } => "bad_magic",
            DecodeError::BadUtf8 { .. } => "bad_utf8",
            DecodeError::TrailingBytes { .. } => "trailing_bytes",
        }
    }

    /// The reason of the GOAWAY the receiver sends before closing.
    pub const fn goaway_reason(&self) -> GoawayReason {
        match self {
            DecodeError::FrameTooLarge { .. } => GoawayReason::FRAME_TOO_LARGE,
            _ => GoawayReason::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes is larger than the maximum of {max}")
            }
            DecodeError::EmptyFrame => f.write_str("empty frame"),
            DecodeError::UnknownFrameType { frame_type } => {
                write!(f, "unknown frame type `{frame_type:#04x}`")
            }
            DecodeError::Truncated { frame_type, field } => match FrameType::from_u8(*frame_type) {
                Some(t) => write!(f, "{} frame ends inside field `{field}`", t.name()),
                None => write!(f, "frame of type `{frame_type:#04x}` ends inside field `{field}`"),
            },
            DecodeError::BadMagic { found } => {
                write!(f, "HELLO starts with `{}`, not the protocol's magic", found.escape_ascii())
            }
            DecodeError::BadUtf8 { frame_type, field } => {
                write!(f, "field `{field}` of {} is not UTF-8", frame_type.name())
            }
            DecodeError::TrailingBytes { frame_type, len } => {
                write!(
                    f,
                    "{} frame has trailing bytes after its last field ({len})",
                    frame_type.name()
                )
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads one frame in byte-stream form (`u32` length, frame) from the front of `src`.
///
/// A frame larger than `max_frame_size` is refused as soon as its length prefix is read.
///
/// # Errors
///
/// A [`DecodeError`] when the bytes are not a valid frame. A frame with bad contents has been
/// removed from `src` by then; it does not matter, since the connection ends.
pub fn decode(src: &mut BytesMut, max_frame_size: u32) -> Result<Decoded, DecodeError> {
    let Some(prefix) = src.first_chunk::<LENGTH_PREFIX_SIZE>() else {
        return Ok(Decoded::Incomplete { needed: LENGTH_PREFIX_SIZE - src.len() });
    };
    let len = u32::from_le_bytes(*prefix);
    if len > max_frame_size {
        return Err(DecodeError::FrameTooLarge { len, max: max_frame_size });
    }
    // Saturating: on a 32-bit target a 4 GiB frame must not overflow (it stays incomplete).
    let total = (len as usize).saturating_add(LENGTH_PREFIX_SIZE);
    if src.len() < total {
        return Ok(Decoded::Incomplete { needed: total - src.len() });
    }
    src.advance(LENGTH_PREFIX_SIZE);
    let body = src.split_to(len as usize).freeze();
    let frame_type = body.first().copied();
    Ok(match decode_message(body)? {
        Some(frame) => Decoded::Frame(frame),
        // `decode_message` skips only frames that have a type byte.
        None => Decoded::Skipped { frame_type: frame_type.unwrap_or_default() },
    })
}

/// Reads one frame in message form: `msg` is exactly one frame, without a length prefix (the
/// WebSocket transport enforces the maximum message size). Returns `None` for a frame of an
/// unknown type flagged ignorable.
///
/// # Errors
///
/// A [`DecodeError`] when `msg` is not a valid frame.
pub fn decode_message(msg: Bytes) -> Result<Option<Frame>, DecodeError> {
    let Some(&type_byte) = msg.first() else {
        return Err(DecodeError::EmptyFrame);
    };
    let mut r = Reader { body: &msg, pos: 1, frame_type: type_byte };
    let flags = r.u8("flags")?;
    let Some(frame_type) = FrameType::from_u8(type_byte) else {
        return if flags & FLAG_IGNORABLE != 0 {
            Ok(None)
        } else {
            Err(DecodeError::UnknownFrameType { frame_type: type_byte })
        };
    };
    let frame = match frame_type {
        FrameType::Hello => {
            let magic = r.array::<4>("magic")?;
            if magic != MAGIC {
                return Err(DecodeError::BadMagic { found: magic });
            }
            // HELLO and WELCOME grow at their end: `capabilities` when it is there, and
            // whatever later revisions append after it, ignored.
            return Ok(Some(Frame::Hello(Hello {
                version: r.u16("version")?,
                max_frame_size: r.u32("max_frame_size")?,
                client_name: r.string(frame_type, "client_name")?,
                token: r.short_bytes("token")?,
                capabilities: r.capabilities(),
            })));
        }
        FrameType::Welcome => {
            return Ok(Some(Frame::Welcome(Welcome {
                version: r.u16("version")?,
                max_frame_size: r.u32("max_frame_size")?,
                max_in_flight: r.u32("max_in_flight")?,
                idle_timeout_ms: r.u32("idle_timeout_ms")?,
                server_id: r.string(frame_type, "server_id")?,
                auth_expires_in_ms: r.u32("auth_expires_in_ms")?,
                capabilities: r.capabilities(),
            })));
        }
        FrameType::Ping => Frame::Ping { data: r.u64("data")? },
        FrameType::Pong => Frame::Pong { data: r.u64("data")? },
        FrameType::Goaway => Frame::Goaway(Goaway {
            reconnect: flags & FLAG_RECONNECT != 0,
            reason: GoawayReason(r.u16("reason")?),
            last_request_id: r.u32("last_request_id")?,
            message: r.string(frame_type, "message")?,
        }),
        FrameType::Request => Frame::Request(Request {
            fire_and_forget: flags & FLAG_FIRE_AND_FORGET != 0,
            request_id: r.u32("request_id")?,
            method_id: r.u32("method_id")?,
            timeout_ms: r.u32("timeout_ms")?,
            payload: r.rest(),
        }),
        FrameType::Response => {
            Frame::Response(Response { request_id: r.u32("request_id")?, payload: r.rest() })
        }
        FrameType::Error => {
            let request_id = r.u32("request_id")?;
            let code = match Code::from_u8(r.u8("code")?) {
                // `ok` is not an error: a peer sending it is as wrong as one sending a number we
                // don't know (which `from_u8` maps to `unknown`), and gets the same treatment.
                Code::Ok => Code::Unknown,
                code => code,
            };
            let error_id = r.u32("error_id")?;
            let message = r.string(frame_type, "message")?;
            let status = Status::new(code, message)
                .with_retryable(flags & FLAG_RETRYABLE != 0)
                .with_error_id(error_id);
            Frame::Error(ErrorReply { request_id, status, details: r.rest() })
        }
        FrameType::Cancel => Frame::Cancel { request_id: r.u32("request_id")? },
        FrameType::Subscribe => Frame::Subscribe(Subscribe {
            all_keys: flags & FLAG_ALL_KEYS != 0,
            subscription_id: r.u32("subscription_id")?,
            topic_id: r.u32("topic_id")?,
            key: r.string(frame_type, "key")?,
        }),
        FrameType::Unsubscribe => Frame::Unsubscribe { subscription_id: r.u32("subscription_id")? },
        FrameType::Publish => Frame::Publish(Publish {
            request_id: r.u32("request_id")?,
            topic_id: r.u32("topic_id")?,
            key: r.string(frame_type, "key")?,
            payload: r.rest(),
        }),
        FrameType::Subscribed => Frame::Subscribed { subscription_id: r.u32("subscription_id")? },
        FrameType::Event => Frame::Event(Event {
            subscription_id: r.u32("subscription_id")?,
            key: r.string(frame_type, "key")?,
            payload: r.rest(),
        }),
        FrameType::SubscribeFrom => Frame::SubscribeFrom(SubscribeFrom {
            all_keys: flags & FLAG_ALL_KEYS != 0,
            subscription_id: r.u32("subscription_id")?,
            topic_id: r.u32("topic_id")?,
            position: Position { epoch: r.u64("epoch")?, offset: r.u64("offset")? },
            key: r.string(frame_type, "key")?,
        }),
        FrameType::SubscribedAt => Frame::SubscribedAt(SubscribedAt {
            subscription_id: r.u32("subscription_id")?,
            recovery: Recovery(r.u8("recovery")?),
            position: Position { epoch: r.u64("epoch")?, offset: r.u64("offset")? },
        }),
        FrameType::EventAt => Frame::EventAt(EventAt {
            subscription_id: r.u32("subscription_id")?,
            offset: r.u64("offset")?,
            key: r.string(frame_type, "key")?,
            payload: r.rest(),
        }),
        FrameType::Missed => {
            Frame::Missed { subscription_id: r.u32("subscription_id")?, count: r.u32("count")? }
        }
        FrameType::SubscriptionEnded => {
            let subscription_id = r.u32("subscription_id")?;
            let code = match Code::from_u8(r.u8("code")?) {
                Code::Ok => Code::Unknown,
                code => code,
            };
            let message = r.string(frame_type, "message")?;
            let status = Status::new(code, message).with_retryable(flags & FLAG_RETRYABLE != 0);
            Frame::SubscriptionEnded(SubscriptionEnded { subscription_id, status })
        }
        FrameType::Auth => {
            Frame::Auth(Auth { request_id: r.u32("request_id")?, token: r.short_bytes("token")? })
        }
        FrameType::AuthOk => Frame::AuthOk {
            request_id: r.u32("request_id")?,
            expires_in_ms: r.u32("expires_in_ms")?,
        },
    };
    let left = msg.len() - r.pos;
    if left != 0 {
        return Err(DecodeError::TrailingBytes { frame_type, len: left });
    }
    Ok(Some(frame))
}

/// A cursor over a frame's bytes whose reads fail with `Truncated`, naming the field.
struct Reader<'a> {
    body: &'a Bytes,
    pos: usize,
    frame_type: u8,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], DecodeError> {
        let end = self.pos.saturating_add(n);
        let bytes = self
            .body
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated { frame_type: self.frame_type, field })?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.array(field).map(u8::from_le_bytes)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.array(field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_le_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// A `u16` length, then that many bytes, as a slice of the frame (no copy).
    fn short_bytes(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16(field)?);
        let start = self.pos;
        self.take(len, field)?;
        Ok(self.body.slice(start..self.pos))
    }

    /// A `u16` length, then that many bytes of UTF-8.
    fn string(
        &mut self,
        frame_type: FrameType,
        field: &'static str,
    ) -> Result<String, DecodeError> {
        let len = usize::from(self.u16(field)?);
        let bytes = self.take(len, field)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::BadUtf8 { frame_type, field }),
        }
    }

    /// HELLO's or WELCOME's `capabilities`: 0 when the frame ends before it (a peer from
    /// before the field, or one with nothing to announce).
    fn capabilities(&mut self) -> u32 {
        self.u32("capabilities").unwrap_or(0)
    }

    /// The rest of the frame, as a slice of it (no copy).
    fn rest(&mut self) -> Bytes {
        let rest = self.body.slice(self.pos..);
        self.pos = self.body.len();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_MAX: u32 = crate::frame::DEFAULT_MAX_FRAME_SIZE;

    fn stream(body: &[u8]) -> BytesMut {
        let mut src = BytesMut::new();
        src.extend_from_slice(&(body.len() as u32).to_le_bytes());
        src.extend_from_slice(body);
        src
    }

    #[test]
    fn payloads_are_slices_of_the_read_buffer() {
        let mut src = stream(&[0x11, 0, 5, 0, 0, 0, b'p', b'a', b'y']);
        let start = src.as_ptr() as usize;
        let Decoded::Frame(Frame::Response(response)) = decode(&mut src, 100).unwrap() else {
            panic!("expected a RESPONSE");
        };
        assert_eq!(response.request_id, 5);
        assert_eq!(&response.payload[..], b"pay");
        assert_eq!(response.payload.as_ptr() as usize, start + 4 + 6, "payload was copied");
    }

    #[test]
    fn incomplete_says_how_much_more_to_read_and_consumes_nothing() {
        let full = stream(&[0x13, 0, 1, 0, 0, 0]);
        for cut in 0..full.len() {
            let mut src = BytesMut::from(&full[..cut]);
            let needed = if cut < 4 { 4 - cut } else { full.len() - cut };
            assert_eq!(decode(&mut src, 100).unwrap(), Decoded::Incomplete { needed });
            assert_eq!(src.len(), cut);
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_length_alone() {
        let mut src = BytesMut::from(&[0x01, 0x00, 0x00, 0x01][..]);
        let err = decode(&mut src, DEFAULT_MAX).unwrap_err();
        assert_eq!(err, DecodeError::FrameTooLarge { len: 0x0100_0001, max: DEFAULT_MAX });
        assert_eq!(err.goaway_reason(), GoawayReason::FRAME_TOO_LARGE);
        assert_eq!(
            err.to_string(),
            "frame of 16777217 bytes is larger than the maximum of 16777216"
        );
    }

    #[test]
    fn errors_name_the_frame_and_field() {
        let cases: [(&[u8], &str); 7] = [
            (&[], "empty frame"),
            (&[0x42], "frame of type `0x42` ends inside field `flags`"),
            (&[0x42, 0x00], "unknown frame type `0x42`"),
            (&[0x10, 0x00, 1, 0, 0, 0, 2, 0], "REQUEST frame ends inside field `method_id`"),
            (
                &[0x01, 0x00, b'G', b'E', b'T', b' '],
                "HELLO starts with `GET `, not the protocol's magic",
            ),
            (&[0x05, 0x01, 1, 0, 0, 0, 0, 0, 1, 0, 0xff], "field `message` of GOAWAY is not UTF-8"),
            (
                &[0x03, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                "PING frame has trailing bytes after its last field (1)",
            ),
        ];
        for (body, message) in cases {
            let err = decode_message(Bytes::copy_from_slice(body)).unwrap_err();
            assert_eq!(err.to_string(), message);
            assert_eq!(err.goaway_reason(), GoawayReason::PROTOCOL_ERROR);
        }
    }

    #[test]
    fn hello_ignores_fields_appended_by_later_versions() {
        let mut body = vec![0x01, 0x00];
        body.extend_from_slice(b"FBRP");
        body.extend_from_slice(&[2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0xfe, 0xed]);
        let Some(Frame::Hello(hello)) = decode_message(Bytes::from(body)).unwrap() else {
            panic!("expected a HELLO");
        };
        assert_eq!((hello.version, hello.max_frame_size), (2, 0x0001_0000));
    }

    #[test]
    fn error_codes_zero_and_unknown_decode_as_unknown() {
        for code in [0u8, 17, 255] {
            let body = [0x12, 0x00, 1, 0, 0, 0, code, 0, 0, 0, 0, 0, 0];
            let Some(Frame::Error(e)) = decode_message(Bytes::copy_from_slice(&body)).unwrap()
            else {
                panic!("expected an ERROR");
            };
            assert_eq!(e.status.code(), Code::Unknown);
        }
    }

    fn subscription_ended(flags: u8, code: u8) -> SubscriptionEnded {
        let body = [0x26, flags, 9, 0, 0, 0, code, 2, 0, b'n', b'o'];
        match decode_message(Bytes::copy_from_slice(&body)) {
            Ok(Some(Frame::SubscriptionEnded(ended))) => ended,
            other => panic!("expected a SUBSCRIPTION_ENDED, got {other:?}"),
        }
    }

    #[test]
    fn subscription_ended_codes_zero_and_unknown_decode_as_unknown() {
        for code in [0u8, 17, 255] {
            let ended = subscription_ended(0x00, code);
            assert_eq!(ended.subscription_id, 9);
            assert_eq!(ended.status.code(), Code::Unknown, "code {code}");
            assert_eq!(ended.status.message(), "no");
        }
    }

    #[test]
    fn subscription_ended_retryable_comes_from_the_flag_not_the_code() {
        // `resource_exhausted` and `unavailable` are retryable by default, `permission_denied`
        // is not: the flag overrides both ways, as it does on ERROR.
        let exhausted = subscription_ended(0x00, Code::ResourceExhausted as u8);
        assert_eq!(exhausted.status.code(), Code::ResourceExhausted);
        assert!(!exhausted.status.retryable());
        let denied = subscription_ended(FLAG_RETRYABLE, Code::PermissionDenied as u8);
        assert!(denied.status.retryable());
        assert_eq!(denied.status.error_id(), 0, "SUBSCRIPTION_ENDED has no error id");
    }

    #[test]
    fn subscribe_keeps_all_keys_and_a_key_together_for_the_server_to_refuse() {
        // ALL_KEYS with a non-empty key breaks a rule of the session (answered with
        // `invalid_argument`), not of the frame's layout: decoding keeps both.
        let body = [0x20, FLAG_ALL_KEYS | 0x40, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, b'k'];
        let Some(Frame::Subscribe(subscribe)) =
            decode_message(Bytes::copy_from_slice(&body)).unwrap()
        else {
            panic!("expected a SUBSCRIBE");
        };
        assert!(subscribe.all_keys);
        assert_eq!(subscribe.key, "k");
    }

    #[test]
    fn welcome_without_its_auth_expiry_is_truncated() {
        // `auth_expires_in_ms` is part of version 1's WELCOME, not an optional appendix: a
        // WELCOME that ends after `server_id` is cut short.
        let body = [0x02, 0x00, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let err = decode_message(Bytes::copy_from_slice(&body)).unwrap_err();
        assert_eq!(err.to_string(), "WELCOME frame ends inside field `auth_expires_in_ms`");
    }

    #[test]
    fn event_payload_is_a_slice_of_the_read_buffer() {
        let mut src = stream(&[0x24, 0, 3, 0, 0, 0, 1, 0, b'k', b'e', b'v']);
        let start = src.as_ptr() as usize;
        let Decoded::Frame(Frame::Event(event)) = decode(&mut src, 100).unwrap() else {
            panic!("expected an EVENT");
        };
        assert_eq!((event.subscription_id, event.key.as_str()), (3, "k"));
        assert_eq!(&event.payload[..], b"ev");
        assert_eq!(event.payload.as_ptr() as usize, start + 4 + 9, "payload was copied");
    }
}
