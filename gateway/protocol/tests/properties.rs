//! Properties over arbitrary input: encoding then decoding any frame gives it back, and decoding
//! any bytes answers without panicking and without claiming more than the buffer holds.

use bytes::{Bytes, BytesMut};
use gateway_core::{Code, Status};
use gateway_protocol::{
    Auth, Decoded, ErrorReply, Event, EventAt, Frame, Goaway, GoawayReason, Hello, Position,
    Publish, Recovery, Request, Response, Subscribe, SubscribeFrom, SubscribedAt,
    SubscriptionEnded, Welcome, decode, decode_message,
};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including multi-byte characters, up to 40 characters.
    proptest::collection::vec(any::<char>(), 0..40).prop_map(|chars| chars.into_iter().collect())
}

fn error_code() -> impl Strategy<Value = Code> {
    // `ok` never travels in an ERROR frame (it decodes as `unknown`).
    proptest::sample::select(&Code::ALL[1..])
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![rpc_frame(), pubsub_frame(), auth_frame()]
}

/// The connection-control and RPC frames.
fn rpc_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u16>(), any::<u32>(), text(), bytes(64), any::<u32>()).prop_map(
            |(version, max_frame_size, client_name, token, capabilities)| {
                Frame::Hello(Hello { version, max_frame_size, client_name, token, capabilities })
            }
        ),
        (
            (any::<u16>(), any::<u32>(), any::<u32>(), any::<u32>()),
            (text(), any::<u32>(), any::<u32>())
        )
            .prop_map(
                |(
                    (version, max_frame_size, max_in_flight, idle_timeout_ms),
                    (server_id, expires, capabilities),
                )| {
                    Frame::Welcome(Welcome {
                        version,
                        max_frame_size,
                        max_in_flight,
                        idle_timeout_ms,
                        server_id,
                        auth_expires_in_ms: expires,
                        capabilities,
                    })
                }
            ),
        any::<u64>().prop_map(|data| Frame::Ping { data }),
        any::<u64>().prop_map(|data| Frame::Pong { data }),
        (any::<u16>(), any::<bool>(), any::<u32>(), text()).prop_map(
            |(reason, reconnect, last_request_id, message)| {
                Frame::Goaway(Goaway {
                    reason: GoawayReason(reason),
                    reconnect,
                    last_request_id,
                    message,
                })
            }
        ),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<bool>(), bytes(256)).prop_map(
            |(request_id, method_id, timeout_ms, fire_and_forget, payload)| {
                Frame::Request(Request {
                    request_id,
                    method_id,
                    timeout_ms,
                    fire_and_forget,
                    payload,
                })
            }
        ),
        (any::<u32>(), bytes(256))
            .prop_map(|(request_id, payload)| Frame::Response(Response { request_id, payload })),
        (any::<u32>(), error_code(), any::<bool>(), any::<u32>(), text(), bytes(64)).prop_map(
            |(request_id, code, retryable, error_id, message, details)| {
                let status =
                    Status::new(code, message).with_retryable(retryable).with_error_id(error_id);
                Frame::Error(ErrorReply { request_id, status, details })
            }
        ),
        any::<u32>().prop_map(|request_id| Frame::Cancel { request_id }),
    ]
}

/// The pub/sub frames, with keys of any text (the protocol does not restrict them).
fn pubsub_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u32>(), any::<u32>(), any::<bool>(), text()).prop_map(
            |(subscription_id, topic_id, all_keys, key)| {
                Frame::Subscribe(Subscribe { subscription_id, topic_id, all_keys, key })
            }
        ),
        any::<u32>().prop_map(|subscription_id| Frame::Unsubscribe { subscription_id }),
        (any::<u32>(), any::<u32>(), text(), bytes(256)).prop_map(
            |(request_id, topic_id, key, payload)| {
                Frame::Publish(Publish { request_id, topic_id, key, payload })
            }
        ),
        any::<u32>().prop_map(|subscription_id| Frame::Subscribed { subscription_id }),
        (any::<u32>(), text(), bytes(256)).prop_map(|(subscription_id, key, payload)| {
            Frame::Event(Event { subscription_id, key, payload })
        }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(subscription_id, count)| Frame::Missed { subscription_id, count }),
        (any::<u32>(), any::<u32>(), any::<bool>(), text(), any::<u64>(), any::<u64>()).prop_map(
            |(subscription_id, topic_id, all_keys, key, epoch, offset)| {
                let position = Position { epoch, offset };
                Frame::SubscribeFrom(SubscribeFrom {
                    subscription_id,
                    topic_id,
                    all_keys,
                    key,
                    position,
                })
            }
        ),
        (any::<u32>(), any::<u8>(), any::<u64>(), any::<u64>()).prop_map(
            |(subscription_id, recovery, epoch, offset)| {
                let (recovery, position) = (Recovery(recovery), Position { epoch, offset });
                Frame::SubscribedAt(SubscribedAt { subscription_id, recovery, position })
            }
        ),
        (any::<u32>(), any::<u64>(), text(), bytes(256)).prop_map(
            |(subscription_id, offset, key, payload)| {
                Frame::EventAt(EventAt { subscription_id, offset, key, payload })
            }
        ),
        (any::<u32>(), error_code(), any::<bool>(), text()).prop_map(
            |(subscription_id, code, retryable, message)| {
                // No `error_id` on the wire: it stays 0.
                let status = Status::new(code, message).with_retryable(retryable);
                Frame::SubscriptionEnded(SubscriptionEnded { subscription_id, status })
            }
        ),
    ]
}

/// The token refresh frames.
fn auth_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u32>(), bytes(512))
            .prop_map(|(request_id, token)| Frame::Auth(Auth { request_id, token })),
        (any::<u32>(), any::<u32>())
            .prop_map(|(request_id, expires_in_ms)| Frame::AuthOk { request_id, expires_in_ms }),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity(frames in proptest::collection::vec(frame(), 1..8)) {
        // Several frames in one buffer, as a writer coalesces them.
        let mut buf = BytesMut::new();
        for frame in &frames {
            frame.encode(&mut buf, u32::MAX).unwrap();
        }
        for frame in &frames {
            prop_assert_eq!(decode(&mut buf, u32::MAX).unwrap(), Decoded::Frame(frame.clone()));
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn message_form_round_trips(frame in frame()) {
        let mut buf = BytesMut::new();
        frame.encode_message(&mut buf, u32::MAX).unwrap();
        prop_assert_eq!(buf.len(), frame.encoded_len().unwrap());
        prop_assert_eq!(decode_message(buf.freeze()).unwrap(), Some(frame));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        data in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let _ = decode_message(Bytes::from(data.clone()));
        let mut src = BytesMut::from(&data[..]);
        let before = src.len();
        match decode(&mut src, 1024) {
            Ok(Decoded::Incomplete { needed }) => {
                prop_assert!(needed > 0);
                prop_assert_eq!(src.len(), before);
            }
            Ok(_) => prop_assert!(src.len() < before),
            Err(_) => {}
        }
    }

    #[test]
    fn arbitrary_frame_bodies_behind_a_valid_prefix_never_panic(
        frame_type in prop_oneof![0x00u8..0x06, 0x10u8..0x14, 0x20u8..0x28, 0x30u8..0x33, any::<u8>()],
        flags in any::<u8>(),
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        // Random bytes rarely start with a known type; these do, so every field reader is hit.
        let mut body = vec![frame_type, flags];
        body.extend_from_slice(&rest);
        let mut src = BytesMut::new();
        src.extend_from_slice(&(body.len() as u32).to_le_bytes());
        src.extend_from_slice(&body);
        let _ = decode(&mut src, u32::MAX);
        let _ = decode_message(Bytes::from(body));
    }
}

/// The codec, fed a valid stream cut at an arbitrary point, waits for the rest and loses nothing.
#[cfg(feature = "codec")]
mod codec {
    use gateway_protocol::FrameCodec;
    use tokio_util::codec::Decoder;

    use super::*;

    proptest! {
        #[test]
        fn a_stream_cut_anywhere_decodes_the_same(
            frames in proptest::collection::vec(frame(), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut wire = BytesMut::new();
            for frame in &frames {
                frame.encode(&mut wire, u32::MAX).unwrap();
            }
            let cut = cut.index(wire.len() + 1);
            let mut codec = FrameCodec::new(u32::MAX);
            let mut src = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(frame) = codec.decode(&mut src).unwrap() {
                got.push(frame);
            }
            src.extend_from_slice(&wire[cut..]);
            while let Some(frame) = codec.decode(&mut src).unwrap() {
                got.push(frame);
            }
            prop_assert_eq!(got, frames);
        }
    }
}
