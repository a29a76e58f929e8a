//! The verifier against a relay that lies: each lie the issue names — a dropped message, a
//! swapped recipient list, a reused sequence id, two messages reordered, one device's chain
//! forked from another's view — and broken or skipping chains are caught, and the proof the
//! verifier produces checks on its own (and stops checking when its statements are changed).
//! Honest histories, generated at random, are accepted without a false alarm.

mod support;

use mailbox::hash::recipients_hash;
use mailbox::{Attestation, DeviceVerifier, Proof, Rejected, SeqId, Signed, proof};
use proptest::prelude::*;
use support::{Batch, Relay, home, keys, sign};

fn all_statements(relay: &Relay, batches: &[Batch]) -> Vec<Signed> {
    relay.receipts.iter().cloned().chain(batches.iter().map(|b| b.attestation.clone())).collect()
}

/// Accepts every batch with one verifier per device.
fn accept_all(shards: u32, batches: &[Batch]) -> Result<(), Rejected> {
    let mut verifiers = std::collections::BTreeMap::new();
    for batch in batches {
        let verifier = verifiers
            .entry(batch.device.clone())
            .or_insert_with(|| DeviceVerifier::new(&batch.device, keys(shards)));
        verifier.accept(&batch.attestation, &batch.messages)?;
    }
    Ok(())
}

/// The proof checks, and no longer does once any of its statements is another.
fn assert_proves(proof: &Proof, shards: u32) {
    proof.check(&keys(shards)).unwrap_or_else(|e| panic!("{} does not check: {e}", proof.kind()));
    let forged = Signed::decode(&{
        let mut bytes = match proof {
            Proof::Invalid { statement } => statement.bytes().to_vec(),
            Proof::Fork { a, .. }
            | Proof::ChainBreak { a, .. }
            | Proof::Skipped { a, .. }
            | Proof::Conflict { a, .. }
            | Proof::Omission { a, .. } => a.bytes().to_vec(),
        };
        let last = bytes.len() - 1;
        bytes[last] ^= 1; // the signature's last byte
        bytes
    })
    .expect("still decodes");
    let tampered = match proof.clone() {
        Proof::Invalid { .. } => Proof::Invalid { statement: forged },
        Proof::Fork { b, .. } => Proof::Fork { a: forged, b },
        Proof::ChainBreak { b, .. } => Proof::ChainBreak { a: forged, b },
        Proof::Skipped { b, .. } => Proof::Skipped { a: forged, b },
        Proof::Conflict { b, id, .. } => Proof::Conflict { a: forged, b, id },
        Proof::Omission { recipients, b, bundle, .. } => {
            Proof::Omission { a: forged, recipients, b, bundle }
        }
    };
    assert!(tampered.check(&keys(shards)).is_err(), "a forged {} checks", proof.kind());
}

/// Three devices on two shards: alice's phone and laptop, bob.
fn a_few_epochs(relay: &mut Relay) -> Vec<Batch> {
    let mut batches = Vec::new();
    relay.send(0, &["alice-phone", "alice-laptop", "bob"], b"hello", &[b"p1", b"p2", b"p3"]);
    relay.send(1, &["bob"], b"just bob", &[b"p"]);
    batches.extend(relay.end_epoch());
    relay.end_epoch(); // nothing in epoch 2
    relay.send(1, &["alice-laptop", "bob"], b"second", &[b"q1", b"q2"]);
    relay.send(0, &["alice-phone"], b"note to self", &[b"r"]);
    batches.extend(relay.end_epoch());
    batches
}

#[test]
fn an_honest_relay_is_accepted_and_nothing_is_found() {
    let mut relay = Relay::new(2);
    let batches = a_few_epochs(&mut relay);
    accept_all(2, &batches).expect("accepted");
    assert_eq!(proof::find(&all_statements(&relay, &batches), &relay.lists), None);
    // The second attestation of a device vouches for epochs 2 and 3 (nothing in epoch 2).
    let bob: Vec<&Attestation> = batches
        .iter()
        .filter(|b| b.device == "bob")
        .filter_map(|b| b.attestation.attestation())
        .collect();
    assert_eq!((bob[1].from_epoch, bob[1].to_epoch), (2, 3));
    assert_eq!(
        bob[1].prev,
        batches.iter().find(|b| b.device == "bob").expect("bob").attestation.hash()
    );
}

#[test]
fn a_dropped_message_is_an_omission_against_the_senders_receipt() {
    let mut relay = Relay::new(2);
    relay.send(0, &["alice-phone", "bob"], b"hello", &[b"p1", b"p2"]);
    let mut batches = relay.end_epoch();
    // The relay drops bob's message, from the delivery and from the attestation alike.
    let bob = batches.iter().position(|b| b.device == "bob").expect("bob");
    batches[bob] = relay.reattest("bob", Vec::new());
    accept_all(2, &batches).expect("a consistent lie passes the device's own check");
    let found = proof::find(&all_statements(&relay, &batches), &relay.lists).expect("found");
    assert!(matches!(found, Proof::Omission { .. }), "{found:?}");
    assert_proves(&found, 2);
    // Against alice's attestation alone (no receipt), it is found too.
    let found = proof::find(
        &batches.iter().map(|b| b.attestation.clone()).collect::<Vec<_>>(),
        &relay.lists,
    )
    .expect("found from the co-recipient's view");
    assert!(matches!(found, Proof::Omission { .. }), "{found:?}");
    assert_proves(&found, 2);
}

#[test]
fn a_swapped_recipient_list_conflicts_with_the_other_recipients() {
    let mut relay = Relay::new(2);
    relay.send(0, &["alice-phone", "bob"], b"hello", &[b"p1", b"p2"]);
    let mut batches = relay.end_epoch();
    // Bob is told the bundle went to him and carol instead.
    let bob = batches.iter().position(|b| b.device == "bob").expect("bob");
    let mut messages = batches[bob].messages.clone();
    messages[0].recipients = vec!["carol".into(), "bob".into()];
    batches[bob] = relay.reattest("bob", messages);
    accept_all(2, &batches).expect("bob alone cannot tell");
    let statements: Vec<Signed> = batches.iter().map(|b| b.attestation.clone()).collect();
    let found = proof::find(&statements, &relay.lists).expect("found");
    assert!(matches!(found, Proof::Conflict { .. }), "{found:?}");
    assert_proves(&found, 2);
}

#[test]
fn a_reused_sequence_id_conflicts() {
    let mut relay = Relay::new(1);
    relay.send(0, &["alice-phone"], b"one", &[b"a"]);
    relay.send(0, &["bob"], b"two", &[b"b"]);
    let mut batches = relay.end_epoch();
    // Bob's message is given alice's id.
    let bob = batches.iter().position(|b| b.device == "bob").expect("bob");
    let mut messages = batches[bob].messages.clone();
    messages[0].id = SeqId { epoch: 1, shard: 0, index: 0 };
    messages[0].bundle = messages[0].id;
    batches[bob] = relay.reattest("bob", messages);
    accept_all(1, &batches).expect("each alone looks fine");
    let statements: Vec<Signed> = batches.iter().map(|b| b.attestation.clone()).collect();
    let found = proof::find(&statements, &relay.lists).expect("found");
    assert!(matches!(found, Proof::Conflict { id, .. } if id.index == 0), "{found:?}");
    assert_proves(&found, 1);
}

#[test]
fn two_messages_reordered_for_one_device_conflict_with_the_others() {
    let mut relay = Relay::new(1);
    relay.send(0, &["alice-phone", "bob"], b"first", &[b"a1", b"b1"]);
    relay.send(0, &["alice-phone", "bob"], b"second", &[b"a2", b"b2"]);
    let mut batches = relay.end_epoch();
    // Bob gets the second bundle's content under the first's ids, and the other way round.
    let bob = batches.iter().position(|b| b.device == "bob").expect("bob");
    let mut messages = batches[bob].messages.clone();
    let (first, second) = (messages[0].clone(), messages[1].clone());
    messages[0] = mailbox::Delivered { id: first.id, bundle: first.bundle, ..second.clone() };
    messages[1] = mailbox::Delivered { id: second.id, bundle: second.bundle, ..first };
    batches[bob] = relay.reattest("bob", messages);
    accept_all(1, &batches).expect("bob alone cannot tell");
    let found = proof::find(&all_statements(&relay, &batches), &relay.lists).expect("found");
    assert!(matches!(found, Proof::Conflict { .. }), "{found:?}");
    assert_proves(&found, 1);
}

#[test]
fn a_chain_forked_from_another_devices_view_is_caught() {
    let mut relay = Relay::new(2);
    relay.send(0, &["bob"], b"one", &[b"a"]);
    let first = relay.end_epoch();
    relay.send(0, &["bob"], b"two", &[b"b"]);
    let honest = relay.end_epoch();
    // To someone comparing with bob, the relay shows another epoch 2 for bob, without the
    // message.
    let shown = sign(Attestation {
        entries: Vec::new(),
        ..honest[0].attestation.attestation().expect("attestation").clone()
    });
    let mut verifier = DeviceVerifier::new("bob", keys(2));
    verifier.accept(&first[0].attestation, &first[0].messages).expect("epoch 1");
    verifier.accept(&honest[0].attestation, &honest[0].messages).expect("epoch 2");
    let found = proof::find(&[honest[0].attestation.clone(), shown.clone()], &[]).expect("found");
    assert!(matches!(found, Proof::Fork { .. }), "{found:?}");
    assert_proves(&found, 2);
    // Offered to bob's own verifier, it is a fork too.
    match verifier.accept(&shown, &[]) {
        Err(Rejected::Misbehaved(proof)) => {
            assert!(matches!(*proof, Proof::Fork { .. }), "{proof:?}");
            assert_proves(&proof, 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn broken_and_skipping_chains_and_invalid_statements_are_proofs() {
    let mut relay = Relay::new(1);
    relay.send(0, &["bob"], b"one", &[b"a"]);
    let first = relay.end_epoch().remove(0);
    let mut verifier = DeviceVerifier::new("bob", keys(1));
    verifier.accept(&first.attestation, &first.messages).expect("epoch 1");
    let head = first.attestation.attestation().expect("attestation").clone();
    let next = |from, prev| {
        sign(Attestation { from_epoch: from, to_epoch: 5, prev, entries: vec![], ..head.clone() })
    };

    let broken = next(2, [7; 32]);
    match verifier.clone().accept(&broken, &[]) {
        Err(Rejected::Misbehaved(proof)) if matches!(*proof, Proof::ChainBreak { .. }) => {
            assert_proves(&proof, 1)
        }
        other => panic!("{other:?}"),
    }
    let skipping = next(3, first.attestation.hash());
    match verifier.clone().accept(&skipping, &[]) {
        Err(Rejected::Misbehaved(proof)) if matches!(*proof, Proof::Skipped { .. }) => {
            assert_proves(&proof, 1)
        }
        other => panic!("{other:?}"),
    }
    // A later one that names something else: one is missing in between, not a lie yet.
    assert_eq!(
        verifier.clone().accept(&next(3, [7; 32]), &[]),
        Err(Rejected::Missing { from_epoch: 2 })
    );
    // The right one is accepted.
    verifier.clone().accept(&next(2, first.attestation.hash()), &[]).expect("the chain goes on");

    let invalid = sign(Attestation { from_epoch: 6, to_epoch: 5, ..head.clone() });
    match verifier.accept(&invalid, &[]) {
        Err(Rejected::Misbehaved(proof)) if matches!(*proof, Proof::Invalid { .. }) => {
            assert_proves(&proof, 1)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn deliveries_that_differ_from_their_attestation_are_refetched_not_blamed() {
    let mut relay = Relay::new(1);
    relay.send(0, &["alice-phone", "bob"], b"hello", &[b"p1", b"p2"]);
    let batches = relay.end_epoch();
    let bob = batches.iter().find(|b| b.device == "bob").expect("bob");
    let mut verifier = DeviceVerifier::new("bob", keys(1));
    let mut altered = bob.messages.clone();
    altered[0].common = b"HELLO".to_vec();
    assert!(matches!(verifier.accept(&bob.attestation, &altered), Err(Rejected::Mismatch(_))));
    assert!(matches!(verifier.accept(&bob.attestation, &[]), Err(Rejected::Mismatch(_))));
    let alice = batches.iter().find(|b| b.device == "alice-phone").expect("alice");
    assert_eq!(verifier.accept(&alice.attestation, &alice.messages), Err(Rejected::NotThisDevice));
    verifier.accept(&bob.attestation, &bob.messages).expect("the real delivery");
    verifier.accept(&bob.attestation, &bob.messages).expect("and again, repeated");
    // Another key's signature.
    assert!(matches!(
        DeviceVerifier::new("bob", keys(0)).accept(&bob.attestation, &bob.messages),
        Err(Rejected::Signature(_))
    ));
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
        prop_assert_eq!(accept_all(3, &batches), Ok(()));
        prop_assert_eq!(proof::find(&all_statements(&relay, &batches), &relay.lists), None);
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
                prop_assert_eq!(mailbox::hash::recipients_hash(&got[0].recipients), recipients_hash(&list));
            }
        }
    }
}
