//! Test vectors of another implementation: the `testdata/` of the `roughenough-protocol` crate
//! (2.2.0), read where cargo unpacked it (it is a dev-dependency of this crate for that reason
//! alone; nothing of it is copied here). They are exchanges captured from roughenough's server,
//! one for version 1 and several for the draft version `0x8000000c`.

use std::path::PathBuf;

use base64::Engine as _;
use roughtime::keys::LongTermKey;
use roughtime::protocol::{Request, Version};
use roughtime::respond::Responder;
use roughtime::verify::{VerifyError, verify};
use roughtime::wire::{Message, Tag, unframe};

/// `testdata/` of roughenough-protocol 2.2.0 in cargo's registry.
fn testdata() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME or CARGO_HOME is set")).join(".cargo")
    });
    let registry = home.join("registry/src");
    for index in std::fs::read_dir(&registry).expect("cargo's registry sources") {
        let dir =
            index.expect("a registry folder").path().join("roughenough-protocol-2.2.0/testdata");
        if dir.is_dir() {
            return dir;
        }
    }
    panic!("roughenough-protocol 2.2.0 is not unpacked under {}", registry.display());
}

fn read(name: &str) -> Vec<u8> {
    let path = testdata().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn key(base64: &str) -> [u8; 32] {
    let bytes = base64::engine::general_purpose::STANDARD.decode(base64).expect("base64");
    bytes.try_into().expect("32 bytes")
}

/// Version 1 (RFC 10049 context strings), MIDP 2026-10-05T00:00:00Z.
#[test]
fn the_version_1_exchange_verifies() {
    let request = read("rfc10049-request.104172a3");
    let response = read("rfc10049-response.104172a3");
    let public = key("GX9rI+FshTLGq8g4+s1ep4m+DHaykgM0A5v6iz02jWE=");
    let verified = verify(&request, &response, &public).expect("valid");
    assert_eq!(verified.version, Version::Rfc);
    assert_eq!(verified.midp, 1_791_158_400);
    assert!(verified.radius > 0);

    // Another long-term key does not.
    let mut other_key = public;
    other_key[0] ^= 1;
    assert_eq!(verify(&request, &response, &other_key), Err(VerifyError::BadDelegation));
    // Any change to the request takes it out of the signed tree.
    let mut changed = request.clone();
    *changed.last_mut().expect("not empty") ^= 1;
    assert!(matches!(verify(&changed, &response, &public), Err(VerifyError::NotInTree { .. })));
}

/// Draft `0x8000000c` ("RoughTime v1 ..." context strings).
#[test]
fn the_draft_exchange_verifies() {
    let request = read("rfc-request.071039e5");
    let response = read("rfc-response.071039e5");
    let public = key("AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE=");
    let verified = verify(&request, &response, &public).expect("valid");
    assert_eq!(verified.version, Version::Draft);
    assert_eq!(verified.midp, 0x682f_8402);
    assert_eq!(verified.radius, 5);
    assert_eq!((verified.mint, verified.maxt), (0, u64::MAX));
}

/// A batched response (a path of 8 hashes, index 2) and a request naming a key (SRV) parse;
/// the SRV request is ignored by a server holding another key.
#[test]
fn the_batched_response_and_the_srv_request_parse() {
    let response = read("rfc-response.path8.index2.4c16c619");
    let message = Message::parse(unframe(&response).expect("a packet")).expect("a message");
    assert_eq!(message.get(Tag::PATH).map(<[u8]>::len), Some(8 * 32));
    assert_eq!(message.get(Tag::INDX), Some(&[2u8, 0, 0, 0][..]));
    let srep = Message::parse(message.get(Tag::SREP).expect("SREP")).expect("SREP parses");
    assert_eq!(srep.get(Tag::VER), Some(&0x8000_000c_u32.to_le_bytes()[..]));

    let request = read("rfc-request.SRV.417aa962");
    let message = Message::parse(unframe(&request).expect("a packet")).expect("a message");
    let srv: [u8; 32] = message.get(Tag::SRV).expect("SRV").try_into().expect("32 bytes");
    assert_eq!(Request::parse(&request, &srv).expect("answered for its key").srv, Some(&srv));
    let ours = LongTermKey::from_seed(&[1; 32]).srv();
    assert!(Request::parse(&request, &ours).is_err(), "another key's request is ignored");
}

/// Our server answers the captured requests, and the answers verify.
#[test]
fn our_answers_to_the_captured_requests_verify() {
    let long_term = LongTermKey::from_seed(&[7; 32]);
    let responder = Responder::new(long_term.delegate(&[8; 32], 0, u64::MAX), 3);
    let requests = [read("rfc10049-request.104172a3"), read("rfc-request.071039e5")];
    let parsed: Vec<Request<'_>> =
        requests.iter().map(|r| Request::parse(r, &long_term.srv()).expect("answered")).collect();
    assert_eq!(parsed[0].version, Version::Rfc);
    assert_eq!(parsed[1].version, Version::Draft);
    let mut answers = Vec::new();
    let answered =
        responder.respond(&parsed, 1_800_000_000, |i, bytes| answers.push((i, bytes.to_vec())));
    assert_eq!((answered.responses, answered.signatures), (2, 2));
    for (i, answer) in answers {
        assert!(answer.len() <= requests[i].len());
        let verified = verify(&requests[i], &answer, &long_term.public()).expect("valid");
        assert_eq!(verified.version, parsed[i].version);
        assert_eq!((verified.midp, verified.radius), (1_800_000_000, 3));
    }
}
