//! The verifier against a relay that lies (`mailbox::model`): each lie the issue names — a
//! dropped message, a swapped recipient list, a reused sequence id, two messages reordered, one
//! device's chain forked from another's view — and broken or skipping chains are caught, and
//! the proof produced checks on its own (and stops checking when one of its statements is
//! forged). Deliveries that do not match their attestation are refetched, not blamed. Honest
//! histories, generated at random, raise no alarm.

use mailbox::hash::recipients_hash;
use mailbox::model::{self, Relay, Scenario, home, keys};
use mailbox::{Proof, SeqId, Signed, proof};
use proptest::prelude::*;

/// The proof checks, and no longer does once its first statement's signature is changed.
fn assert_proves(proof: &Proof, shards: u32) {
    proof.check(&keys(shards)).unwrap_or_else(|e| panic!("{} does not check: {e}", proof.kind()));
    let forge = |signed: &Signed| {
        let mut bytes = signed.bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        Signed::decode(&bytes).expect("still decodes")
    };
    let tampered = match proof.clone() {
        Proof::Invalid { statement } => Proof::Invalid { statement: forge(&statement) },
        Proof::Fork { a, b } => Proof::Fork { a: forge(&a), b },
        Proof::ChainBreak { a, b } => Proof::ChainBreak { a: forge(&a), b },
        Proof::Skipped { a, b } => Proof::Skipped { a: forge(&a), b },
        Proof::Conflict { a, b, id } => Proof::Conflict { a: forge(&a), b, id },
        Proof::Omission { a, recipients, b, bundle } => {
            Proof::Omission { a: forge(&a), recipients, b, bundle }
        }
    };
    assert!(tampered.check(&keys(shards)).is_err(), "a forged {} checks", proof.kind());
}

/// The verdicts on each batch, and the kind of proof found among all the statements (which
/// must check).
fn run(scenario: &Scenario) -> (Vec<String>, Option<&'static str>) {
    let (verdicts, found) = model::verdicts(scenario);
    if let Some(proof) = &found {
        assert_proves(proof, scenario.shards);
    }
    (verdicts, found.as_ref().map(Proof::kind))
}

#[test]
fn an_honest_relay_is_accepted_and_nothing_is_found() {
    let scenario = model::honest();
    let (verdicts, found) = run(&scenario);
    assert!(verdicts.iter().all(|v| v == "ok"), "{verdicts:?}");
    assert_eq!(found, None);
    // Bob's second attestation vouches for epochs 2 and 3 (nothing in epoch 2), chained.
    let bob: Vec<&Signed> =
        scenario.batches.iter().filter(|b| b.device == "bob").map(|b| &b.attestation).collect();
    let second = bob[1].attestation().expect("an attestation");
    assert_eq!((second.from_epoch, second.to_epoch), (2, 3));
    assert_eq!(second.prev, bob[0].hash());
}

#[test]
fn a_dropped_message_is_an_omission() {
    let scenario = model::dropped_message();
    let (verdicts, found) = run(&scenario);
    assert!(
        verdicts.iter().all(|v| v == "ok"),
        "a consistent lie passes each device's check: {verdicts:?}"
    );
    assert_eq!(found, Some("an omitted message"));
    // Against alice's attestation alone (no receipt) too: the co-recipient's view.
    let attestations: Vec<Signed> =
        scenario.batches.iter().map(|b| b.attestation.clone()).collect();
    let found = proof::find(&attestations, &scenario.lists, &keys(scenario.shards)).expect("found");
    assert!(matches!(&found, Proof::Omission { a, .. } if a.attestation().is_some()), "{found:?}");
    assert_proves(&found, scenario.shards);
}

#[test]
fn a_swapped_recipient_list_conflicts_with_the_other_recipients() {
    let scenario = model::swapped_recipients();
    let (verdicts, found) = run(&scenario);
    assert!(verdicts.iter().all(|v| v == "ok"), "bob alone cannot tell: {verdicts:?}");
    assert_eq!(found, Some("conflicting statements"));
}

#[test]
fn a_reused_sequence_id_conflicts() {
    let scenario = model::reused_id();
    let (verdicts, found) = run(&scenario);
    assert!(verdicts.iter().all(|v| v == "ok"), "{verdicts:?}");
    assert_eq!(found, Some("conflicting statements"));
    let proof = model::verdicts(&scenario).1.expect("found");
    assert!(
        matches!(proof, Proof::Conflict { id, .. } if id == SeqId { epoch: 1, shard: 0, index: 0 })
    );
}

#[test]
fn two_messages_reordered_for_one_device_conflict_with_the_others() {
    let (verdicts, found) = run(&model::reordered());
    assert!(verdicts.iter().all(|v| v == "ok"), "{verdicts:?}");
    assert_eq!(found, Some("conflicting statements"));
}

#[test]
fn a_chain_forked_from_another_devices_view_is_caught() {
    let (verdicts, found) = run(&model::forked_view());
    assert_eq!(verdicts, ["ok", "ok", "misbehaved: a forked chain"]);
    assert_eq!(found, Some("a forked chain"));
}

#[test]
fn broken_and_skipping_chains_and_invalid_statements_are_proofs() {
    let (verdicts, found) = run(&model::chain_faults());
    assert_eq!(
        verdicts,
        [
            "ok",
            "misbehaved: a broken chain",
            "misbehaved: skipped epochs",
            "missing from 2",
            "misbehaved: an invalid statement",
            "ok",
        ]
    );
    assert_eq!(found, Some("an invalid statement"));
}

#[test]
fn deliveries_that_differ_from_their_attestation_are_refetched_not_blamed() {
    let (verdicts, found) = run(&model::bad_deliveries());
    assert_eq!(verdicts, ["mismatch", "mismatch", "not this device", "signature", "ok", "ok"]);
    // The forged statement differs from nothing the relay signed: no proof, and it is not the
    // relay's word anyway (its signature fails).
    assert_eq!(found, None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random honest histories: every batch is accepted, no proof is found, each device's ids
    /// increase, and each bundle reaches each recipient exactly once with contiguous ids.
    #[test]
    fn honest_histories_raise_no_alarm(
        sends in prop::collection::vec(
            (0u32..3, prop::collection::btree_set(0usize..6, 1..4), any::<u8>(), 0u8..3),
            1..40,
        )
    ) {
        let devices = ["d0", "d1", "d2", "d3", "d4", "d5"];
        let mut relay = Relay::new(3);
        let mut batches = Vec::new();
        let mut sent = Vec::new();
        for (inbox, recipients, content, end) in sends {
            let list: Vec<&str> = recipients.iter().map(|&i| devices[i]).collect();
            let parts: Vec<Vec<u8>> = list.iter().map(|d| d.as_bytes().to_vec()).collect();
            let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let bundle = relay.send(inbox, &list, &[content], &parts);
            sent.push((bundle, list.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>()));
            for _ in 0..end {
                batches.extend(relay.end_epoch());
            }
        }
        batches.extend(relay.end_epoch());
        let scenario = Scenario {
            name: "random",
            shards: 3,
            batches: batches.clone(),
            receipts: relay.receipts.clone(),
            lists: relay.lists.clone(),
        };
        let (verdicts, found) = model::verdicts(&scenario);
        prop_assert!(verdicts.iter().all(|v| v == "ok"), "{:?}", verdicts);
        prop_assert_eq!(found, None);
        for device in devices {
            let ids: Vec<SeqId> = batches.iter().filter(|b| b.device == device)
                .flat_map(|b| b.messages.iter().map(|m| m.id)).collect();
            prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "{device}: {ids:?}");
            prop_assert!(batches.iter().filter(|b| b.device == device)
                .all(|b| b.attestation.attestation().is_some_and(|a| a.shard == home(device, 3))));
        }
        for (bundle, list) in sent {
            for (i, device) in list.iter().enumerate() {
                let got: Vec<_> = batches.iter().filter(|b| &b.device == device)
                    .flat_map(|b| &b.messages).filter(|m| m.bundle == bundle).collect();
                prop_assert_eq!(got.len(), 1);
                prop_assert_eq!(got[0].id, bundle.offset(i as u32).expect("in range"));
                prop_assert_eq!(got[0].id.epoch, bundle.epoch);
                prop_assert_eq!(recipients_hash(&got[0].recipients), recipients_hash(&list));
            }
        }
    }
}
