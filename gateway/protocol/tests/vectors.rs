//! Runs `docs/protocol-vectors.json` both ways: every vector's bytes decode to its frame, and the
//! frame encodes to its bytes. The vectors come from an independent encoder
//! (`scripts/protocol-vectors.py`), and the JavaScript client runs the same file.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use gateway_core::{Code, Status};
use gateway_protocol::{
    Auth, Decoded, ErrorReply, Event, EventAt, Frame, FrameType, Goaway, GoawayReason, Hello,
    Position, Publish, Recovery, Request, Response, Subscribe, SubscribeFrom, SubscribedAt,
    SubscriptionEnded, Welcome, decode, decode_message,
};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol-vectors.json");
    let text = std::fs::read_to_string(path).expect("docs/protocol-vectors.json is readable");
    serde_json::from_str(&text).expect("docs/protocol-vectors.json is JSON")
}

fn list<'a>(vectors: &'a Value, key: &str) -> &'a [Value] {
    vectors[key].as_array().unwrap_or_else(|| panic!("`{key}` is a list"))
}

/// Hex digits with optional spaces between fields.
fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits in `{text}`");
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("bad hex `{pair}`"))
        })
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("`{key}` is a string in {v}"))
}

fn u32_of(v: &Value, key: &str) -> u32 {
    let n = v[key].as_u64().unwrap_or_else(|| panic!("`{key}` is a number in {v}"));
    u32::try_from(n).expect("fits a u32")
}

/// A `u64`, written as a decimal string (JavaScript numbers are exact only to 2^53).
fn u64_of(v: &Value, key: &str) -> u64 {
    str_of(v, key).parse().unwrap_or_else(|_| panic!("`{key}` is a decimal u64 in {v}"))
}

fn position_of(v: &Value) -> Position {
    Position { epoch: u64_of(v, "epoch"), offset: u64_of(v, "offset") }
}

fn bool_of(v: &Value, key: &str) -> bool {
    v[key].as_bool().unwrap_or_else(|| panic!("`{key}` is a bool in {v}"))
}

fn bytes_of(v: &Value, key: &str) -> Bytes {
    Bytes::from(unhex(str_of(v, key)))
}

fn string_of(v: &Value, key: &str) -> String {
    str_of(v, key).to_owned()
}

/// A status from a vector's `code`, `message` and `retryable`, checking that the code is one
/// version 1 knows (a frame carrying another decodes as `unknown`, which the vector states).
fn status_of(v: &Value) -> Status {
    let code = u8::try_from(u32_of(v, "code")).expect("u8");
    assert_eq!(Code::from_u8(code) as u8, code, "vector codes are ones version 1 knows");
    Status::new(Code::from_u8(code), string_of(v, "message"))
        .with_retryable(bool_of(v, "retryable"))
}

/// The frame a vector's `frame` object describes.
fn frame_of(v: &Value) -> Frame {
    match str_of(v, "type") {
        "hello" => Frame::Hello(Hello {
            capabilities: u32_of(v, "capabilities"),
            version: u32_of(v, "version").try_into().expect("u16"),
            max_frame_size: u32_of(v, "max_frame_size"),
            client_name: string_of(v, "client_name"),
            token: bytes_of(v, "token"),
        }),
        "welcome" => Frame::Welcome(Welcome {
            capabilities: u32_of(v, "capabilities"),
            version: u32_of(v, "version").try_into().expect("u16"),
            max_frame_size: u32_of(v, "max_frame_size"),
            max_in_flight: u32_of(v, "max_in_flight"),
            idle_timeout_ms: u32_of(v, "idle_timeout_ms"),
            server_id: string_of(v, "server_id"),
            auth_expires_in_ms: u32_of(v, "auth_expires_in_ms"),
        }),
        "ping" => Frame::Ping { data: str_of(v, "data").parse().expect("u64") },
        "pong" => Frame::Pong { data: str_of(v, "data").parse().expect("u64") },
        "goaway" => Frame::Goaway(Goaway {
            reason: GoawayReason(u32_of(v, "reason").try_into().expect("u16")),
            reconnect: bool_of(v, "reconnect"),
            last_request_id: u32_of(v, "last_request_id"),
            message: string_of(v, "message"),
        }),
        "request" => Frame::Request(Request {
            request_id: u32_of(v, "request_id"),
            method_id: u32_of(v, "method_id"),
            timeout_ms: u32_of(v, "timeout_ms"),
            fire_and_forget: bool_of(v, "fire_and_forget"),
            payload: bytes_of(v, "payload"),
        }),
        "response" => Frame::Response(Response {
            request_id: u32_of(v, "request_id"),
            payload: bytes_of(v, "payload"),
        }),
        "error" => Frame::Error(ErrorReply {
            request_id: u32_of(v, "request_id"),
            status: status_of(v).with_error_id(u32_of(v, "error_id")),
            details: bytes_of(v, "details"),
        }),
        "cancel" => Frame::Cancel { request_id: u32_of(v, "request_id") },
        "subscribe" => Frame::Subscribe(Subscribe {
            subscription_id: u32_of(v, "subscription_id"),
            topic_id: u32_of(v, "topic_id"),
            all_keys: bool_of(v, "all_keys"),
            key: string_of(v, "key"),
        }),
        "unsubscribe" => Frame::Unsubscribe { subscription_id: u32_of(v, "subscription_id") },
        "publish" => Frame::Publish(Publish {
            request_id: u32_of(v, "request_id"),
            topic_id: u32_of(v, "topic_id"),
            key: string_of(v, "key"),
            payload: bytes_of(v, "payload"),
        }),
        "subscribed" => Frame::Subscribed { subscription_id: u32_of(v, "subscription_id") },
        "event" => Frame::Event(Event {
            subscription_id: u32_of(v, "subscription_id"),
            key: string_of(v, "key"),
            payload: bytes_of(v, "payload"),
        }),
        "subscribe_from" => Frame::SubscribeFrom(SubscribeFrom {
            subscription_id: u32_of(v, "subscription_id"),
            topic_id: u32_of(v, "topic_id"),
            all_keys: bool_of(v, "all_keys"),
            key: string_of(v, "key"),
            position: position_of(v),
        }),
        "subscribed_at" => Frame::SubscribedAt(SubscribedAt {
            subscription_id: u32_of(v, "subscription_id"),
            recovery: Recovery(u32_of(v, "recovery").try_into().expect("u8")),
            position: position_of(v),
        }),
        "event_at" => Frame::EventAt(EventAt {
            subscription_id: u32_of(v, "subscription_id"),
            offset: u64_of(v, "offset"),
            key: string_of(v, "key"),
            payload: bytes_of(v, "payload"),
        }),
        "missed" => Frame::Missed {
            subscription_id: u32_of(v, "subscription_id"),
            count: u32_of(v, "count"),
        },
        "subscription_ended" => Frame::SubscriptionEnded(SubscriptionEnded {
            subscription_id: u32_of(v, "subscription_id"),
            status: status_of(v),
        }),
        "auth" => {
            Frame::Auth(Auth { request_id: u32_of(v, "request_id"), token: bytes_of(v, "token") })
        }
        "auth_ok" => Frame::AuthOk {
            request_id: u32_of(v, "request_id"),
            expires_in_ms: u32_of(v, "expires_in_ms"),
        },
        other => panic!("unknown frame type `{other}` in the vectors"),
    }
}

fn max_frame_size(vectors: &Value) -> u32 {
    u32_of(vectors, "max_frame_size")
}

#[test]
fn every_valid_vector_decodes_to_its_frame_and_encodes_to_its_bytes() {
    let vectors = vectors();
    let max = max_frame_size(&vectors);
    let cases = list(&vectors, "frames");
    assert!(cases.len() >= 60, "the vectors file lost cases: {}", cases.len());
    for case in cases {
        let name = str_of(case, "name");
        let wire = unhex(str_of(case, "hex"));
        let expected = frame_of(&case["frame"]);

        let mut src = BytesMut::from(&wire[..]);
        let decoded = decode(&mut src, max).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, Decoded::Frame(expected.clone()), "{name}: stream form");
        assert!(src.is_empty(), "{name}: the whole frame was consumed");

        let message = Bytes::copy_from_slice(&wire[4..]);
        let decoded = decode_message(message).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, Some(expected.clone()), "{name}: message form");

        let canonical = case
            .get("encodes_to")
            .map_or(wire.clone(), |hex| unhex(hex.as_str().expect("`encodes_to` is a string")));
        let mut dst = BytesMut::new();
        expected.encode(&mut dst, max).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(dst[..], canonical[..], "{name}: encoding");
        assert_eq!(expected.encoded_len().unwrap(), canonical.len() - 4, "{name}: encoded_len");
    }
}

#[test]
fn every_frame_type_has_a_valid_vector() {
    let vectors = vectors();
    let covered: HashSet<FrameType> =
        list(&vectors, "frames").iter().map(|case| frame_of(&case["frame"]).frame_type()).collect();
    let missing: Vec<&str> = (0..=u8::MAX)
        .filter_map(FrameType::from_u8)
        .filter(|t| !covered.contains(t))
        .map(FrameType::name)
        .collect();
    assert!(missing.is_empty(), "frame types without a vector: {missing:?}");
}

#[test]
fn ignorable_frames_of_unknown_types_are_skipped() {
    let vectors = vectors();
    for case in list(&vectors, "ignored") {
        let name = str_of(case, "name");
        let wire = unhex(str_of(case, "hex"));
        let frame_type = u8::try_from(u32_of(case, "frame_type")).expect("u8");
        let mut src = BytesMut::from(&wire[..]);
        let decoded = decode(&mut src, max_frame_size(&vectors));
        assert_eq!(decoded, Ok(Decoded::Skipped { frame_type }), "{name}");
        assert!(src.is_empty(), "{name}: the skipped frame was consumed");
        let decoded = decode_message(Bytes::copy_from_slice(&wire[4..]));
        assert_eq!(decoded, Ok(None), "{name}: message form");
    }
}

#[test]
fn every_invalid_vector_fails_with_its_error() {
    let vectors = vectors();
    let max = max_frame_size(&vectors);
    for case in list(&vectors, "invalid") {
        let name = str_of(case, "name");
        let wire = unhex(str_of(case, "hex"));
        let expected = str_of(case, "error");
        let mut src = BytesMut::from(&wire[..]);
        match decode(&mut src, max) {
            Err(e) => assert_eq!(e.name(), expected, "{name}: {e}"),
            Ok(decoded) => panic!("{name}: expected `{expected}`, decoded {decoded:?}"),
        }
        // The message form has no length prefix, hence no size check of its own.
        if expected != "frame_too_large" {
            let decoded = decode_message(Bytes::copy_from_slice(&wire[4..]));
            assert_eq!(decoded.map_err(|e| e.name()), Err(expected), "{name}: message form");
        }
    }
}

#[cfg(feature = "codec")]
#[test]
fn all_valid_and_ignored_vectors_read_back_from_one_coalesced_stream() {
    use gateway_protocol::FrameCodec;
    use tokio_util::codec::Decoder;

    let vectors = vectors();
    let mut stream = BytesMut::new();
    let mut expected = Vec::new();
    for case in list(&vectors, "frames") {
        stream.extend_from_slice(&unhex(str_of(case, "hex")));
        expected.push(frame_of(&case["frame"]));
    }
    for case in list(&vectors, "ignored") {
        stream.extend_from_slice(&unhex(str_of(case, "hex")));
    }
    // An ignored frame last, then one more frame: the codec skips it on its way.
    stream.extend_from_slice(&unhex(str_of(&list(&vectors, "frames")[0], "hex")));
    expected.push(frame_of(&list(&vectors, "frames")[0]["frame"]));

    let mut codec = FrameCodec::new(max_frame_size(&vectors));
    let mut got = Vec::new();
    while let Some(frame) = codec.decode(&mut stream).expect("the stream is valid") {
        got.push(frame);
    }
    assert_eq!(got, expected);
    assert!(stream.is_empty());
}
