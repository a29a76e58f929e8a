//! Runs `docs/protocol-vectors.json` both ways: every vector's bytes decode to its frame, and the
//! frame encodes to its bytes. The vectors come from an independent encoder
//! (`scripts/protocol-vectors.py`), and the JavaScript client runs the same file.

use bytes::{Bytes, BytesMut};
use gateway_core::{Code, Status};
use gateway_protocol::{
    Decoded, ErrorReply, Frame, Goaway, GoawayReason, Hello, Request, Response, Welcome, decode,
    decode_message,
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

fn bool_of(v: &Value, key: &str) -> bool {
    v[key].as_bool().unwrap_or_else(|| panic!("`{key}` is a bool in {v}"))
}

fn bytes_of(v: &Value, key: &str) -> Bytes {
    Bytes::from(unhex(str_of(v, key)))
}

/// The frame a vector's `frame` object describes.
fn frame_of(v: &Value) -> Frame {
    match str_of(v, "type") {
        "hello" => Frame::Hello(Hello {
            version: u32_of(v, "version").try_into().expect("u16"),
            max_frame_size: u32_of(v, "max_frame_size"),
            client_name: str_of(v, "client_name").to_owned(),
            token: bytes_of(v, "token"),
        }),
        "welcome" => Frame::Welcome(Welcome {
            version: u32_of(v, "version").try_into().expect("u16"),
            max_frame_size: u32_of(v, "max_frame_size"),
            max_in_flight: u32_of(v, "max_in_flight"),
            idle_timeout_ms: u32_of(v, "idle_timeout_ms"),
            server_id: str_of(v, "server_id").to_owned(),
            auth_expires_in_ms: u32_of(v, "auth_expires_in_ms"),
        }),
        "ping" => Frame::Ping { data: str_of(v, "data").parse().expect("u64") },
        "pong" => Frame::Pong { data: str_of(v, "data").parse().expect("u64") },
        "goaway" => Frame::Goaway(Goaway {
            reason: GoawayReason(u32_of(v, "reason").try_into().expect("u16")),
            reconnect: bool_of(v, "reconnect"),
            last_request_id: u32_of(v, "last_request_id"),
            message: str_of(v, "message").to_owned(),
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
        "error" => {
            let code = u8::try_from(u32_of(v, "code")).expect("u8");
            assert_eq!(Code::from_u8(code) as u8, code, "vector codes are ones version 1 knows");
            Frame::Error(ErrorReply {
                request_id: u32_of(v, "request_id"),
                status: Status::new(Code::from_u8(code), str_of(v, "message").to_owned())
                    .with_retryable(bool_of(v, "retryable"))
                    .with_error_id(u32_of(v, "error_id")),
                details: bytes_of(v, "details"),
            })
        }
        "cancel" => Frame::Cancel { request_id: u32_of(v, "request_id") },
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
    assert!(cases.len() >= 20, "the vectors file lost cases: {}", cases.len());
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
