//! The example services' own parsers of untrusted bytes: Roughtime requests (UDP, from
//! anyone), the timestamp oracle's HTTP query, and the mailbox's signed statements (which
//! devices read from the relay and must not trust before checking).

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use mailbox::{KeyRing, Signed, Statement};
use roughtime::keys::LongTermKey;
use roughtime::protocol::Request;
use roughtime::respond::Responder;

/// The Roughtime server's time, in the delegation's window.
const MIDP: u64 = 1_800_000_000;

/// A Roughtime request packet. A request the server accepts is answered, alone and in a batch
/// with itself, and every answer is no longer than the request (nothing to amplify) and verifies
/// against it with the long-term key, as a client checks it.
pub fn roughtime_request(data: &[u8]) {
    static SERVER: OnceLock<(LongTermKey, Responder)> = OnceLock::new();
    let (key, responder) = SERVER.get_or_init(|| {
        let key = LongTermKey::from_seed(&[5; 32]);
        let delegation = key.delegate(&[6; 32], MIDP - 3600, MIDP + 3600);
        let responder = Responder::new(delegation, 3);
        (key, responder)
    });
    let Ok(request) = Request::parse(data, &responder.srv()) else { return };
    for batch in [vec![request], vec![request, request]] {
        let answered = responder.respond(&batch, MIDP, |_, response| {
            assert!(response.len() <= data.len(), "{} bytes answer {}", response.len(), data.len());
            roughtime::verify::verify(data, response, &key.public())
                .expect("an answer verifies against its request");
        });
        assert_eq!(answered.responses + answered.too_short, batch.len());
    }
}

/// The `n` of the oracle's `GET /timestamp?n=N`: a count in range, or the text of a 400.
pub fn oracle_request(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else { return };
    match tso::http::count(Some(query)) {
        Ok(n) => assert!((1..=tso::oracle::MAX_BATCH).contains(&n)),
        Err(text) => assert!(text.starts_with("invalid n param")),
    }
}

/// A mailbox statement, alone or signed. A statement is encoded one way only: what decodes
/// encodes to the same bytes (so that a signature covers one meaning). A signed statement's
/// signature is checked against the shard key its seeds were signed with.
pub fn mailbox_statement(data: &[u8]) {
    static KEYS: OnceLock<KeyRing> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let mut keys = KeyRing::new();
        keys.insert(0, SigningKey::from_bytes(&SHARD_SEED).verifying_key());
        keys
    });
    if let Ok(statement) = Statement::decode(data) {
        assert_eq!(statement.encode().expect("a decoded statement encodes"), data);
    }
    if let Ok(signed) = Signed::decode(data) {
        let _ = signed.verify(keys);
        let body = signed.statement().encode().expect("a decoded statement encodes");
        assert_eq!(signed.body(), body, "a signed statement's body is not its statement");
    }
}

/// The seed of the shard key the mailbox seeds are signed with.
pub const SHARD_SEED: [u8; 32] = [9; 32];
