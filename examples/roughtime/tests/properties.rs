//! Property tests of the protocol's MUSTs (RFC 10049 §5.1, §5.2, §5.3): a server answers only
//! well-formed requests, never with a response longer than the request, ignores requests for
//! another key, and every response it gives verifies, alone or in a batch.

use proptest::prelude::*;
use roughtime::keys::LongTermKey;
use roughtime::protocol::{Ignored, Request, Version, request_packet};
use roughtime::respond::Responder;
use roughtime::verify::verify;
use roughtime::wire::{PACKET_HEADER, Tag, encode, frame_header};

fn server() -> (LongTermKey, Responder) {
    let key = LongTermKey::from_seed(&[3; 32]);
    let responder = Responder::new(key.delegate(&[4; 32], 1_000, 2_000_000_000), 5);
    (key, responder)
}

/// A framed packet of `entries` (sorted here).
fn packet(mut entries: Vec<(Tag, Vec<u8>)>) -> Vec<u8> {
    entries.sort_by_key(|(tag, _)| *tag);
    entries.dedup_by_key(|(tag, _)| *tag);
    let borrowed: Vec<(Tag, &[u8])> = entries.iter().map(|(t, v)| (*t, v.as_slice())).collect();
    let message = encode(&borrowed);
    let mut out = Vec::new();
    frame_header(&mut out, message.len());
    out.extend_from_slice(&message);
    out
}

fn versions() -> impl Strategy<Value = Vec<Version>> {
    prop_oneof![
        Just(vec![Version::Rfc]),
        Just(vec![Version::Draft]),
        Just(vec![Version::Rfc, Version::Draft]),
    ]
}

proptest! {
    /// Arbitrary bytes are answered only if they are a well-formed request, and then verify.
    #[test]
    fn arbitrary_bytes_get_no_answer_unless_they_are_a_request(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let (key, responder) = server();
        if let Ok(request) = Request::parse(&bytes, &key.srv()) {
            let mut answers = Vec::new();
            responder.respond(&[request], 1_500_000_000, |_, r| answers.push(r.to_vec()));
            for answer in answers {
                prop_assert!(answer.len() <= bytes.len());
                prop_assert!(verify(&bytes, &answer, &key.public()).is_ok());
            }
        }
    }

    /// Requests of any size: a response is never longer than its request, and a request too
    /// short for its response gets none.
    #[test]
    fn a_response_is_never_longer_than_its_request(
        nonce in any::<[u8; 32]>(),
        padding in 0usize..700,
        batch in 1usize..40,
    ) {
        let (key, responder) = server();
        let mut entries = vec![
            (Tag::VER, 1u32.to_le_bytes().to_vec()),
            (Tag::NONC, nonce.to_vec()),
            (Tag::TYPE, vec![0; 4]),
        ];
        if padding > 0 {
            entries.push((Tag::ZZZZ, vec![0; padding / 4 * 4]));
        }
        let small = packet(entries);
        let requests: Vec<Vec<u8>> = (0..batch).map(|_| small.clone()).collect();
        let parsed: Vec<Request<'_>> = requests.iter().map(|r| Request::parse(r, &key.srv()).unwrap()).collect();
        let mut answered = 0;
        let result = responder.respond(&parsed, 1_500_000_000, |i, answer| {
            assert!(answer.len() <= requests[i].len());
            answered += 1;
        });
        prop_assert_eq!(result.responses + result.too_short, batch);
        prop_assert_eq!(answered, result.responses);
        // The smallest response (a batch of one, no PATH) is 420 bytes.
        if small.len() < 420 {
            prop_assert_eq!(result.responses, 0);
        }
    }

    /// A batch shares one signature per version; every response verifies against its own
    /// request and no other.
    #[test]
    fn every_response_in_a_batch_verifies(
        offers in proptest::collection::vec(versions(), 1..24),
        seed in any::<u8>(),
    ) {
        let (key, responder) = server();
        let requests: Vec<Vec<u8>> = offers
            .iter()
            .enumerate()
            .map(|(i, v)| request_packet(&[seed.wrapping_add(i as u8); 32], v, Some(&key.srv())))
            .collect();
        let parsed: Vec<Request<'_>> = requests.iter().map(|r| Request::parse(r, &key.srv()).unwrap()).collect();
        let mut answers = vec![None; requests.len()];
        let result = responder.respond(&parsed, 1_600_000_000, |i, r| answers[i] = Some(r.to_vec()));
        let versions_present = Version::ALL.iter().filter(|v| parsed.iter().any(|p| p.version == **v)).count();
        prop_assert_eq!(result.signatures, versions_present);
        prop_assert_eq!(result.responses, requests.len());
        for (i, answer) in answers.iter().enumerate() {
            let answer = answer.as_ref().expect("answered");
            let verified = verify(&requests[i], answer, &key.public()).expect("valid");
            prop_assert_eq!(verified.version, parsed[i].version);
            prop_assert_eq!(verified.midp, 1_600_000_000);
            if requests.len() > 1 && i > 0 && requests[i] != requests[0] {
                prop_assert!(verify(&requests[0], answer, &key.public()).is_err());
            }
        }
    }
}

#[test]
fn requests_missing_a_tag_or_of_another_type_or_key_are_ignored() {
    let (key, _) = server();
    let srv = key.srv();
    let ver = 1u32.to_le_bytes().to_vec();
    let full = || vec![(Tag::VER, ver.clone()), (Tag::NONC, vec![1; 32]), (Tag::TYPE, vec![0; 4])];
    for missing in [Tag::VER, Tag::NONC, Tag::TYPE] {
        let entries = full().into_iter().filter(|(t, _)| *t != missing).collect();
        assert_eq!(Request::parse(&packet(entries), &srv).err(), Some(Ignored::MissingTag));
    }
    let mut response_type = full();
    response_type[2].1 = vec![1, 0, 0, 0];
    assert_eq!(Request::parse(&packet(response_type), &srv).err(), Some(Ignored::NotARequest));
    let mut short_nonce = full();
    short_nonce[1].1 = vec![1; 28];
    assert_eq!(Request::parse(&packet(short_nonce), &srv).err(), Some(Ignored::BadNonce));
    let mut other_key = full();
    other_key.push((Tag::SRV, vec![9; 32]));
    assert_eq!(Request::parse(&packet(other_key), &srv).err(), Some(Ignored::UnknownServer));
    let mut our_key = full();
    our_key.push((Tag::SRV, srv.to_vec()));
    assert!(Request::parse(&packet(our_key), &srv).is_ok());
    let mut unknown_tag = full();
    unknown_tag.push((Tag::new(b"GREZ"), vec![0; 8]));
    assert!(Request::parse(&packet(unknown_tag), &srv).is_ok(), "unknown tags are ignored");
    assert_eq!(Request::parse(&[0; PACKET_HEADER], &srv).err(), Some(Ignored::Malformed));
}
