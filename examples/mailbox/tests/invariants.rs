//! Property tests of the relay's invariants (docs/mailbox.md, "Shards and epochs"), with one
//! shard and with two, over random histories: bundles to random sets of devices entering at any
//! shard, epochs closed at random points (every shard asked to close, as the sequencer does),
//! acknowledgements at random. Every answered bundle reaches each of its recipients exactly
//! once, on the shard that holds its mailbox, in the batch of the epoch its id names, at its id
//! (bundle + position); ids are contiguous within a bundle and increase along each mailbox; each
//! device's batches verify in order under its shard's key; nothing contradicts anything.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use gateway_bus::{Bus, LocalBus};
use mailbox::hash::owner;
use mailbox::model::{key, keys};
use mailbox::shard::{Batch, Bundle, Config, Limits, Shard};
use mailbox::{DeviceVerifier, SeqId, Signed, peers, proof};
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

const DEVICES: [&str; 6] = ["d0", "d1", "d2", "d3", "d4", "d5"];

#[derive(Clone, Debug)]
enum Step {
    /// A bundle to these devices (indexes into DEVICES), through this shard (modulo the
    /// shards).
    Send(Vec<usize>, u32),
    /// Every shard closes the next epoch.
    End,
    /// A device acknowledges everything it has.
    Ack(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (prop::collection::btree_set(0..DEVICES.len(), 1..4), 0..2u32)
            .prop_map(|(to, inbox)| Step::Send(to.into_iter().collect(), inbox)),
        2 => Just(Step::End),
        1 => (0..DEVICES.len()).prop_map(Step::Ack),
    ]
}

fn run(steps: Vec<Step>, shards: u32) -> Result<(), TestCaseError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("a directory");
        let bus: Arc<dyn Bus> = Arc::new(LocalBus::new());
        let stop = CancellationToken::new();
        let count = shards;
        let mut shards = Vec::new();
        for number in 0..count {
            let shard = Shard::open(Config {
                shard: number,
                shards: count,
                key: key(number),
                epoch_every: Duration::from_millis(5),
                limits: Limits::default(),
                store: dir.path().join(format!("shard-{number}.sqlite")),
            })
            .expect("the store opens");
            peers::serve(shard.clone(), bus.clone(), stop.clone()).await.expect("served");
            shards.push(shard);
        }
        let mut deliveries: Vec<_> = shards.iter().map(Shard::deliveries).collect();
        let close = |epoch: u64| {
            let bus = bus.clone();
            async move {
                futures::future::join_all((0..count).map(|shard| peers::close(&*bus, shard, epoch)))
                    .await
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .expect("both shards close it")
            }
        };
        // The first close after opening numbers nothing (with several shards).
        let mut epoch = 1;
        close(epoch).await;
        let mut pending = Vec::new();
        let mut answered = Vec::new();
        let mut batches: Vec<Arc<Batch>> = Vec::new();
        for step in steps.into_iter().chain([Step::End]) {
            match step {
                Step::Send(to, inbox) => {
                    let bundle = Bundle {
                        recipients: to.iter().map(|&d| DEVICES[d].to_owned()).collect(),
                        common: vec![to.len() as u8; to.len() * 3].into(),
                        parts: to.iter().map(|&d| vec![d as u8; d + 1].into()).collect(),
                    };
                    let sender = shards[(inbox % count) as usize].clone();
                    pending.push(tokio::spawn(async move {
                        (bundle.clone(), sender.send(bundle).await)
                    }));
                    tokio::task::yield_now().await;
                }
                Step::End => {
                    epoch += 1;
                    close(epoch).await;
                    for send in pending.drain(..) {
                        let (bundle, answer) = send.await.expect("a sender");
                        answered.push((bundle, answer.expect("answered")));
                    }
                    for receiver in &mut deliveries {
                        while let Ok(batch) = receiver.try_recv() {
                            batches.push(batch);
                        }
                    }
                }
                Step::Ack(d) => {
                    let home = &shards[owner(DEVICES[d], count) as usize];
                    if let Some(last) = home
                        .fetch(DEVICES[d], None, usize::MAX)
                        .last()
                        .and_then(|b| b.messages.last().map(|m| m.id))
                    {
                        home.ack(DEVICES[d], last);
                    }
                }
            }
        }
        stop.cancel();
        let ring = keys(count);
        let mut verifiers: BTreeMap<&str, DeviceVerifier> = BTreeMap::new();
        let mut received: HashMap<(String, SeqId), (SeqId, u64)> = HashMap::new();
        let mut last: HashMap<String, SeqId> = HashMap::new();
        batches.sort_by_key(|b| b.attestation.attestation().expect("an attestation").to_epoch);
        for batch in &batches {
            let attestation = batch.attestation.attestation().expect("an attestation");
            prop_assert_eq!(attestation.shard, owner(&batch.device, count));
            verifiers
                .entry(batch.device.as_str())
                .or_insert_with(|| DeviceVerifier::new(&batch.device, ring.clone()))
                .accept(&batch.attestation, &batch.messages)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", batch.device)))?;
            for m in &batch.messages {
                if let Some(previous) = last.insert(batch.device.clone(), m.id) {
                    prop_assert!(previous < m.id, "{}: {} after {}", batch.device, m.id, previous);
                }
                let twice =
                    received.insert((batch.device.clone(), m.bundle), (m.id, attestation.to_epoch));
                prop_assert!(twice.is_none(), "{} got bundle {} twice", batch.device, m.bundle);
            }
        }
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
        let statements: Vec<Signed> = answered
            .iter()
            .map(|(_, s)| s.receipt.clone())
            .chain(batches.iter().map(|b| b.attestation.clone()))
            .collect();
        let lists: Vec<Vec<String>> = answered.iter().map(|(b, _)| b.recipients.clone()).collect();
        prop_assert_eq!(proof::find(&statements, &lists, &ring), None);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn one_shard_keeps_the_invariants_over_random_histories(steps in prop::collection::vec(step(), 1..60)) {
        run(steps, 1)?;
    }

    #[test]
    fn two_shards_keep_the_invariants_over_random_histories(steps in prop::collection::vec(step(), 1..60)) {
        run(steps, 2)?;
    }
}
