//! Property tests of the running shard's invariants (docs/mailbox.md), over random histories:
//! bundles to random sets of devices, epochs ended at random points, acknowledgements at random.
//! Every answered bundle reaches each of its recipients exactly once, in the batch of the epoch
//! its id names, at its id (bundle + position); ids are contiguous within a bundle and increase
//! along each mailbox; each device's batches verify in order; nothing contradicts anything.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mailbox::model::{keys, shard_in};
use mailbox::shard::{Batch, Bundle};
use mailbox::{DeviceVerifier, SeqId, Signed, proof};
use proptest::prelude::*;

const DEVICES: [&str; 6] = ["d0", "d1", "d2", "d3", "d4", "d5"];

/// One step of a history.
#[derive(Clone, Debug)]
enum Step {
    /// A bundle to these devices (indexes into DEVICES), with this much ciphertext.
    Send(Vec<usize>, usize),
    /// The epoch ends.
    End,
    /// A device acknowledges everything it has.
    Ack(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (prop::collection::btree_set(0..DEVICES.len(), 1..4), 0usize..64)
            .prop_map(|(to, size)| Step::Send(to.into_iter().collect(), size)),
        2 => Just(Step::End),
        1 => (0..DEVICES.len()).prop_map(Step::Ack),
    ]
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("a directory");
        let shard = shard_in(dir.path());
        let mut deliveries = shard.deliveries();
        let mut pending = Vec::new();
        let mut answered = Vec::new();
        let mut batches: Vec<Arc<Batch>> = Vec::new();
        for step in steps.into_iter().chain([Step::End]) {
            match step {
                Step::Send(to, size) => {
                    let bundle = Bundle {
                        recipients: to.iter().map(|&d| DEVICES[d].to_owned()).collect(),
                        common: vec![size as u8; size].into(),
                        parts: to.iter().map(|&d| vec![d as u8; d + 1].into()).collect(),
                    };
                    let sender = shard.clone();
                    pending.push(tokio::spawn(async move {
                        (bundle.clone(), sender.send(bundle).await)
                    }));
                    tokio::task::yield_now().await;
                }
                Step::End => {
                    shard.end_epoch().await;
                    for send in pending.drain(..) {
                        let (bundle, answer) = send.await.expect("a sender");
                        answered.push((bundle, answer.expect("answered")));
                    }
                    while let Ok(batch) = deliveries.try_recv() {
                        batches.push(batch);
                    }
                }
                Step::Ack(d) => {
                    if let Some(last) = shard
                        .fetch(DEVICES[d], None, usize::MAX)
                        .last()
                        .and_then(|b| b.messages.last().map(|m| m.id))
                    {
                        shard.ack(DEVICES[d], last);
                    }
                }
            }
        }
        // Each device's batches verify in order, and its ids increase.
        let mut verifiers: BTreeMap<&str, DeviceVerifier> = BTreeMap::new();
        let mut received: HashMap<(String, SeqId), (SeqId, u64)> = HashMap::new();
        let mut last: HashMap<String, SeqId> = HashMap::new();
        for batch in &batches {
            verifiers
                .entry(batch.device.as_str())
                .or_insert_with(|| DeviceVerifier::new(&batch.device, keys(1)))
                .accept(&batch.attestation, &batch.messages)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", batch.device)))?;
            let epoch = batch.attestation.attestation().expect("an attestation").to_epoch;
            for m in &batch.messages {
                if let Some(previous) = last.insert(batch.device.clone(), m.id) {
                    prop_assert!(previous < m.id, "{}: {} after {}", batch.device, m.id, previous);
                }
                let twice = received.insert((batch.device.clone(), m.bundle), (m.id, epoch));
                prop_assert!(twice.is_none(), "{} got bundle {} twice", batch.device, m.bundle);
            }
        }
        // Every answered bundle: each recipient once, at bundle + position, in its epoch's batch.
        for (bundle, sent) in &answered {
            for (position, device) in bundle.recipients.iter().enumerate() {
                let got = received.get(&(device.clone(), sent.bundle));
                prop_assert!(got.is_some(), "bundle {} did not reach {device}", sent.bundle);
                let (id, epoch) = got.expect("checked");
                prop_assert_eq!(*id, sent.bundle.offset(position as u32).expect("in range"));
                prop_assert_eq!(*epoch, sent.bundle.epoch);
            }
        }
        prop_assert_eq!(
            received.len(),
            answered.iter().map(|(b, _)| b.recipients.len()).sum::<usize>()
        );
        // Nothing contradicts anything.
        let statements: Vec<Signed> = answered
            .iter()
            .map(|(_, s)| s.receipt.clone())
            .chain(batches.iter().map(|b| b.attestation.clone()))
            .collect();
        let lists: Vec<Vec<String>> = answered.iter().map(|(b, _)| b.recipients.clone()).collect();
        prop_assert_eq!(proof::find(&statements, &lists, &keys(1)), None);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_shards_invariants_hold_over_random_histories(steps in prop::collection::vec(step(), 1..60)) {
        run(steps)?;
    }
}
