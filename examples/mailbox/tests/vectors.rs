//! The byte vectors of docs/mailbox.md ("Statements"): an attestation and a receipt signed with
//! the key whose seed is 32 bytes of 0x01. Ed25519 signatures are deterministic, so the bytes
//! are exact; Node's crypto (an independent Ed25519) verified the attestation's signature and
//! Python's hashlib its hash when the vectors were written.

use ed25519_dalek::SigningKey;
use mailbox::hash::{common_hash, part_hash, recipients_hash};
use mailbox::{Attestation, Entry, KeyRing, Receipt, SeqId, Signed, Statement};

const ATTESTATION: &str = "4d42584154543031000000000000000000000001000000000000000100000000000000000000000000000000000000000000000000000000000000000003626f6200000001000000000000000100000000000000010000000000000001000000000000000020d36da2a14deebaa2cb61075ef1954e94a971d0ac62a49a0f44724e093402dc35d275e3d9f55e8d5c150f7dcd2c3e83b848faa89e82c7fd31b9621740b459ab5f3fcd14608ee15d38db3e706a827c65d0b653fdcfe49c5f90a3ab77f5675a0902cc493e5c9ed8aac8ef6648a71dbc560d4094ba422425e5ee7da0a1b56658d7d2515acfa2a9ab3f069d82c341f0829147f9931cd58f47d5c21cd254e150920f";
const ATTESTATION_HASH: &str = "52cf60424b43bd899b8e1561d9859b0e16d5a8369aed41ff5cc8153c512bfeff";
const RECEIPT: &str = "4d42585243503031000000000000000000000001000000000000000020d36da2a14deebaa2cb61075ef1954e94a971d0ac62a49a0f44724e093402dc35d275e3d9f55e8d5c150f7dcd2c3e83b848faa89e82c7fd31b9621740b459ab0000000266d0d152d71546f910c44cffa86978b82c1ae8d9460c4d91563bf05bf4f823c315aef8feee6d4064803d00a87120f059d9f5db1489696931ad868ad3378d940f";
const PUBLIC_KEY: &str = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fn bundle() -> SeqId {
    SeqId { epoch: 1, shard: 0, index: 0 }
}

#[test]
fn the_attestation_vector() {
    let attestation = Attestation {
        shard: 0,
        device: "bob".into(),
        from_epoch: 1,
        to_epoch: 1,
        prev: [0; 32],
        entries: vec![Entry {
            id: bundle().offset(1).expect("in range"),
            bundle: bundle(),
            recipients: recipients_hash(&["alice-phone", "bob"]),
            common: common_hash(b"hello"),
            part: part_hash(b"p2"),
        }],
    };
    let signed = Signed::sign(Statement::Attestation(attestation.clone()), &key()).expect("signs");
    assert_eq!(hex(signed.bytes()), ATTESTATION);
    assert_eq!(hex(&signed.hash()), ATTESTATION_HASH);
    assert_eq!(hex(key().verifying_key().as_bytes()), PUBLIC_KEY);
    let read = Signed::decode(&unhex(ATTESTATION)).expect("decodes");
    assert_eq!(read.attestation(), Some(&attestation));
    let mut ring = KeyRing::new();
    ring.insert(0, key().verifying_key());
    read.verify(&ring).expect("verifies");
}

#[test]
fn the_receipt_vector() {
    let receipt = Receipt {
        shard: 0,
        bundle: bundle(),
        recipients: recipients_hash(&["alice-phone", "bob"]),
        common: common_hash(b"hello"),
        count: 2,
    };
    let signed = Signed::sign(Statement::Receipt(receipt.clone()), &key()).expect("signs");
    assert_eq!(hex(signed.bytes()), RECEIPT);
    assert_eq!(Signed::decode(&unhex(RECEIPT)).expect("decodes").receipt(), Some(&receipt));
}

#[test]
fn every_truncation_and_extension_is_refused_by_name() {
    let bytes = unhex(ATTESTATION);
    let body = &bytes[..bytes.len() - 64];
    for cut in 0..body.len() {
        let error = Statement::decode(&body[..cut]).expect_err("a truncated statement");
        assert!(!error.to_string().is_empty());
    }
    let mut longer = body.to_vec();
    longer.push(0);
    assert!(Statement::decode(&longer).is_err(), "a byte too many");
    let mut magic = body.to_vec();
    magic[7] = b'2';
    assert_eq!(
        Statement::decode(&magic).expect_err("another version").to_string(),
        "not a statement: the magic is [4d, 42, 58, 41, 54, 54, 30, 32]"
    );
    // A changed byte anywhere makes the signature fail (or the statement unreadable).
    let mut ring = KeyRing::new();
    ring.insert(0, key().verifying_key());
    for i in 0..bytes.len() {
        let mut changed = bytes.clone();
        changed[i] ^= 0x40;
        if let Ok(signed) = Signed::decode(&changed) {
            assert!(signed.verify(&ring).is_err(), "byte {i} changed and still verifies");
        }
    }
}
