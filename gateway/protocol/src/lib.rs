//! The client↔gateway wire protocol, version 1: frames, their byte layout, encoding, and
//! zero-copy decoding.
//!
//! `docs/protocol.md` is the normative spec; this crate implements it and runs its test vectors
//! (`docs/protocol-vectors.json`). Both the gateway server and the Rust client use it, so it holds
//! no I/O and no runtime: frames go in and out of `bytes` buffers.
//!
//! # Layout
//!
//! - [`frame`]: [`Frame`] and its parts, type numbers, flag bits, limits.
//! - [`reason`]: [`GoawayReason`], why a connection closes.
//! - [`encode`]: [`Frame::encode`] into a `BytesMut`, coalescing frames for one write.
//! - [`mod@decode`]: [`decode()`] from a read buffer and [`decode_message`] from one WebSocket
//!   message, without copying payloads.
//! - [`codec`] (feature `codec`, on by default): [`FrameCodec`], a `tokio_util` codec for framed
//!   byte streams.
//!
//! # Example
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, Decoded, Frame, Request, decode};
//!
//! let request = Frame::Request(Request {
//!     request_id: 1,
//!     method_id: 0x2a,
//!     timeout_ms: 5_000,
//!     fire_and_forget: false,
//!     payload: Bytes::from_static(b"flatbuffer bytes"),
//! });
//! let mut buf = BytesMut::new();
//! request.encode(&mut buf, DEFAULT_MAX_FRAME_SIZE)?;
//! assert_eq!(decode(&mut buf, DEFAULT_MAX_FRAME_SIZE)?, Decoded::Frame(request));
//! assert!(buf.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "codec")]
pub mod codec;
pub mod decode;
pub mod encode;
pub mod frame;
pub mod reason;

#[cfg(feature = "codec")]
pub use codec::{CodecError, FrameCodec};
pub use decode::{DecodeError, Decoded, decode, decode_message};
pub use encode::EncodeError;
pub use frame::{
    Auth, CAPABILITY_HISTORY, DEFAULT_MAX_FRAME_SIZE, ErrorReply, Event, EventAt, FLAG_ALL_KEYS,
    FLAG_FIRE_AND_FORGET, FLAG_IGNORABLE, FLAG_RECONNECT, FLAG_RETRYABLE, Frame, FrameType, Goaway,
    Hello, LENGTH_PREFIX_SIZE, MAGIC, MIN_MAX_FRAME_SIZE, Position, Publish, Recovery, Request,
    Response, Subscribe, SubscribeFrom, SubscribedAt, SubscriptionEnded, VERSION, Welcome,
};
pub use reason::GoawayReason;
