//! The byte vectors of docs/mailbox.md ("Statements"): a receipt and an attestation signed as one
//! batch (the receipt leaf 0, the attestation leaf 1) with the key whose seed is 32 bytes of
//! 0x01. Ed25519 signatures are deterministic, so the bytes are exact; Python's hashlib
//! recomputed the hashes and the root, and Node's crypto (an independent Ed25519) verified the
//! signature, when the vectors were written.

use ed25519_dalek::SigningKey;
use mailbox::hash::{common_hash, part_hash, recipients_hash};
use mailbox::{Attestation, Entry, KeyRing, Receipt, SeqId, Signed, Statement};

const ATTESTATION: &str = "4d42584154543031000000000000000000000001000000000000000100000000000000000000000000000000000000000000000000000000000000000003626f6200000001000000000000000100000000000000010000000000000001000000000000000020d36da2a14deebaa2cb61075ef1954e94a971d0ac62a49a0f44724e093402dc35d275e3d9f55e8d5c150f7dcd2c3e83b848faa89e82c7fd31b9621740b459ab5f3fcd14608ee15d38db3e706a827c65d0b653fdcfe49c5f90a3ab77f5675a09000000010127c501defb467eb145ba00883c7b74881aa0ef82e878394dee6bc9333f46d868508cd9e0e9f4a33242aa28317a240178fe37bbe09eecb057785dce82bf56b6287cd6635975c64cd74ab6270f6f8739757070f150df86432f79ca0165f0333f0a";
const ATTESTATION_HASH: &str = "52cf60424b43bd899b8e1561d9859b0e16d5a8369aed41ff5cc8153c512bfeff";
const RECEIPT: &str = "4d42585243503031000000000000000000000001000000000000000020d36da2a14deebaa2cb61075ef1954e94a971d0ac62a49a0f44724e093402dc35d275e3d9f55e8d5c150f7dcd2c3e83b848faa89e82c7fd31b9621740b459ab00000002000000000152cf60424b43bd899b8e1561d9859b0e16d5a8369aed41ff5cc8153c512bfeff508cd9e0e9f4a33242aa28317a240178fe37bbe09eecb057785dce82bf56b6287cd6635975c64cd74ab6270f6f8739757070f150df86432f79ca0165f0333f0a";
const ROOT: &str = "2bec06dbf4498b01bb7c110bb04ff661d5d34f719fe87b05673600fa9d6828bf";
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

fn statements() -> (Receipt, Attestation) {
    let receipt = Receipt {
        shard: 0,
        bundle: bundle(),
        recipients: recipients_hash(&["alice-phone", "bob"]),
        common: common_hash(b"hello"),
        count: 2,
    };
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
    (receipt, attestation)
}

#[test]
fn the_batch_vector() {
    let (receipt, attestation) = statements();
    let signed = Signed::sign_batch(
        vec![Statement::Receipt(receipt.clone()), Statement::Attestation(attestation.clone())],
        &key(),
    )
    .expect("signs");
    assert_eq!(hex(signed[0].bytes()), RECEIPT);
    assert_eq!(hex(signed[1].bytes()), ATTESTATION);
    assert_eq!(hex(&signed[1].hash()), ATTESTATION_HASH);
    assert_eq!(hex(&signed[0].root()), ROOT);
    assert_eq!(hex(&signed[1].root()), ROOT);
    assert_eq!(hex(key().verifying_key().as_bytes()), PUBLIC_KEY);
    let mut ring = KeyRing::new();
    ring.insert(0, key().verifying_key());
    let read = Signed::decode(&unhex(ATTESTATION)).expect("decodes");
    assert_eq!(read.attestation(), Some(&attestation));
    read.verify(&ring).expect("verifies");
    let read = Signed::decode(&unhex(RECEIPT)).expect("decodes");
    assert_eq!(read.receipt(), Some(&receipt));
    read.verify(&ring).expect("verifies");
}

#[test]
fn a_statement_signed_alone_has_no_path() {
    let (_, attestation) = statements();
    let signed = Signed::sign(Statement::Attestation(attestation), &key()).expect("signs");
    assert_eq!(signed.bytes().len(), signed.body().len() + 4 + 1 + 64);
    assert_eq!(signed.root(), signed.hash());
    let mut ring = KeyRing::new();
    ring.insert(0, key().verifying_key());
    signed.verify(&ring).expect("verifies");
}

#[test]
fn batches_of_every_size_verify_and_each_leaf_has_its_own_path() {
    let (receipt, _) = statements();
    let mut ring = KeyRing::new();
    ring.insert(0, key().verifying_key());
    for n in [1usize, 2, 3, 4, 5, 7, 8, 9, 33] {
        let batch: Vec<Statement> = (0..n)
            .map(|i| Statement::Receipt(Receipt { count: 1 + i as u32, ..receipt.clone() }))
            .collect();
        let signed = Signed::sign_batch(batch, &key()).expect("signs");
        let root = signed[0].root();
        for (i, s) in signed.iter().enumerate() {
            s.verify(&ring).unwrap_or_else(|e| panic!("{n} statements, leaf {i}: {e}"));
            assert_eq!(s.root(), root);
            assert_eq!(Signed::decode(s.bytes()).expect("decodes"), *s);
        }
        // A store keeps each statement's bytes and the signature once: the same signed
        // statements come back.
        let bodies: Vec<Vec<u8>> = signed.iter().map(|s| s.body().to_vec()).collect();
        let rebuilt = Signed::batch_from(bodies, &signed[0].signature()).expect("rebuilds");
        assert_eq!(rebuilt, signed, "{n} statements rebuilt");
    }
}

#[test]
fn every_truncation_and_extension_is_refused_by_name() {
    let bytes = unhex(ATTESTATION);
    let body = Signed::decode(&bytes).expect("decodes").body().to_vec();
    let body = body.as_slice();
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
