//! `mailbox-vectors`: prints the scenarios of `mailbox::model` (an honest relay and each of its
//! lies) as JSON, with what this crate's verifier makes of them, for other implementations to
//! reach the same verdicts (the TypeScript verifier's test runs it).
//!
//! ```sh
//! cargo run -p mailbox --bin mailbox-vectors > vectors.json
//! ```
//!
//! One array; each scenario: `name`, `keys` (shard → public key, hex), `batches` (each a
//! `device`, its `attestation` (signed statement, hex) and its `messages`: `id` and `bundle`
//! (16 bytes, hex), `recipients`, `common` and `part` (hex)), `receipts` (hex), `lists`
//! (recipient lists), `verdicts` (one per batch, offered in order to one verifier per device)
//! and `proof` (the kind `find` reports among all statements, or null).

use mailbox::Delivered;
use mailbox::model::{self, keys};
use serde_json::{Value, json};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn message(m: &Delivered) -> Value {
    json!({
        "id": hex(&m.id.to_bytes()),
        "bundle": hex(&m.bundle.to_bytes()),
        "recipients": &*m.recipients,
        "common": hex(&m.common),
        "part": hex(&m.part),
    })
}

fn main() {
    let scenarios: Vec<Value> = model::scenarios()
        .iter()
        .map(|scenario| {
            let (verdicts, proof) = model::verdicts(scenario);
            let ring = keys(scenario.shards);
            let keys: serde_json::Map<String, Value> = (0..scenario.shards)
                .map(|shard| {
                    let key = ring.get(shard).expect("every shard has a key");
                    (shard.to_string(), json!(hex(key.as_bytes())))
                })
                .collect();
            json!({
                "name": scenario.name,
                "keys": keys,
                "batches": scenario.batches.iter().map(|b| json!({
                    "device": b.device,
                    "attestation": hex(b.attestation.bytes()),
                    "messages": b.messages.iter().map(message).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "receipts": scenario.receipts.iter().map(|r| hex(r.bytes())).collect::<Vec<_>>(),
                "lists": scenario.lists,
                "verdicts": verdicts,
                "proof": proof.as_ref().map(mailbox::Proof::kind),
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&scenarios).expect("JSON"));
}
