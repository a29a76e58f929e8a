//! One shard on a real SQLite file: many concurrent senders; every send answered with a receipt
//! once durable; every recipient's batches, as delivered and as fetched, accepted by a device
//! verifier; no contradiction among all the statements; ids contiguous within a bundle and
//! increasing per mailbox; each bundle in each recipient's batch of its epoch exactly once.
//! Reopened after being dropped (a crash once answers are given: nothing answered is lost), the
//! shard holds exactly the unacknowledged batches and continues each device's chain. Bad
//! bundles and full mailboxes are refused by name.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mailbox::model::{key, keys};
use mailbox::shard::{Batch, Bundle, Config, Limits, Refused, Sent, Shard};
use mailbox::{DeviceVerifier, SeqId, Signed, proof};
use tokio_util::sync::CancellationToken;

fn config(dir: &Path, limits: Limits) -> Config {
    Config {
        shard: 0,
        shards: 1,
        key: key(0),
        epoch_every: Duration::from_millis(5),
        limits,
        store: dir.join("shard-0.sqlite"),
    }
}

fn bundle(recipients: &[&str], common: &str) -> Bundle {
    Bundle {
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        common: common.as_bytes().to_vec().into(),
        parts: recipients.iter().map(|r| format!("{common} for {r}").into_bytes().into()).collect(),
    }
}

const DEVICES: [&str; 5] = ["alice-phone", "alice-laptop", "bob", "carol", "dave"];

/// 8 senders × 40 bundles to 1–3 devices each; the answers.
async fn traffic(shard: &Shard) -> Vec<(Bundle, Sent)> {
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..8usize {
        let shard = shard.clone();
        senders.spawn(async move {
            let mut sent = Vec::new();
            for i in 0..40usize {
                let count = 1 + (sender + i) % 3;
                let recipients: Vec<&str> =
                    (0..count).map(|k| DEVICES[(sender + i + k) % DEVICES.len()]).collect();
                let b = bundle(&recipients, &format!("s{sender} m{i}"));
                let answer = shard.send(b.clone()).await.expect("sent");
                sent.push((b, answer));
            }
            sent
        });
    }
    let mut all = Vec::new();
    while let Some(sent) = senders.join_next().await {
        all.extend(sent.expect("a sender"));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_become_verified_batches_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("a directory");
    let shard = Shard::open(config(dir.path(), Limits::default())).expect("opens");
    let mut deliveries = shard.deliveries();
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let (shard, stop) = (shard.clone(), stop.clone());
        async move { shard.run(stop).await }
    });
    let sent = traffic(&shard).await;
    assert_eq!(sent.len(), 320);

    // What was pushed, as it was committed: every device's verifier accepts it in order.
    let mut pushed: Vec<Arc<Batch>> = Vec::new();
    let expected_messages: usize = sent.iter().map(|(b, _)| b.recipients.len()).sum();
    while pushed.iter().map(|b| b.messages.len()).sum::<usize>() < expected_messages {
        pushed.push(
            tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
                .await
                .expect("in time")
                .expect("a batch"),
        );
    }
    let mut verifiers: BTreeMap<String, DeviceVerifier> = BTreeMap::new();
    for batch in &pushed {
        verifiers
            .entry(batch.device.clone())
            .or_insert_with(|| DeviceVerifier::new(&batch.device, keys(1)))
            .accept(&batch.attestation, &batch.messages)
            .unwrap_or_else(|e| panic!("{}: {e}", batch.device));
    }
    // Fetched, the same batches.
    for device in DEVICES {
        let fetched = shard.fetch(device, None, usize::MAX);
        let mine: Vec<&Arc<Batch>> = pushed.iter().filter(|b| b.device == device).collect();
        assert_eq!(fetched.iter().collect::<Vec<_>>(), mine, "{device}");
        let ids: Vec<SeqId> =
            fetched.iter().flat_map(|b| b.messages.iter().map(|m| m.id)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{device}: ids increase");
    }
    // Each bundle reached each recipient once, in its epoch, at its id.
    for (b, answer) in &sent {
        answer.receipt.verify(&keys(1)).expect("the receipt is signed");
        for (i, device) in b.recipients.iter().enumerate() {
            let got: Vec<_> = pushed
                .iter()
                .filter(|batch| &batch.device == device)
                .flat_map(|batch| batch.messages.iter())
                .filter(|m| m.bundle == answer.bundle)
                .collect();
            assert_eq!(got.len(), 1, "bundle {} to {device}", answer.bundle);
            assert_eq!(got[0].id, answer.bundle.offset(i as u32).expect("in range"));
            assert_eq!((&got[0].common, &got[0].part), (&b.common, &b.parts[i]));
        }
    }
    // No contradiction anywhere.
    let statements: Vec<Signed> = sent
        .iter()
        .map(|(_, a)| a.receipt.clone())
        .chain(pushed.iter().map(|b| b.attestation.clone()))
        .collect();
    let lists: Vec<Vec<String>> = sent.iter().map(|(b, _)| b.recipients.clone()).collect();
    assert_eq!(proof::find(&statements, &lists, &keys(1)), None);

    // Bob acknowledges everything, carol half; then the shard goes away.
    let bob_last = shard
        .fetch("bob", None, usize::MAX)
        .last()
        .and_then(|b| b.messages.last())
        .expect("bob has mail")
        .id;
    assert!(shard.ack("bob", bob_last) > 0);
    let carol = shard.fetch("carol", None, usize::MAX);
    let half = carol[carol.len() / 2 - 1].messages.last().expect("messages").id;
    shard.ack("carol", half);
    let carol_kept: Vec<Arc<Batch>> = carol[carol.len() / 2..].to_vec();
    let last_epoch = shard.epoch();
    // The acknowledgements are written with the next epoch.
    shard.end_epoch().await;
    stop.cancel();
    running.await.expect("stops");
    drop(shard);

    let reopened = Shard::open(config(dir.path(), Limits::default())).expect("reopens");
    assert!(reopened.epoch() >= last_epoch, "epochs continue");
    assert_eq!(reopened.fetch("bob", None, usize::MAX), Vec::<Arc<Batch>>::new());
    assert_eq!(reopened.fetch("carol", None, usize::MAX), carol_kept);
    for device in ["alice-phone", "alice-laptop", "dave"] {
        let before: Vec<&Arc<Batch>> = pushed.iter().filter(|b| b.device == device).collect();
        assert_eq!(
            reopened.fetch(device, None, usize::MAX).iter().collect::<Vec<_>>(),
            before,
            "{device}"
        );
    }
    // The chains go on from where they were.
    let mut deliveries = reopened.deliveries();
    let answer = sent_in_an_epoch(&reopened, bundle(&["bob", "dave"], "after the restart")).await;
    let mut bob = verifiers.remove("bob").expect("bob's verifier");
    let mut dave = verifiers.remove("dave").expect("dave's verifier");
    for _ in 0..2 {
        let batch = deliveries.recv().await.expect("a batch");
        let verifier = if batch.device == "bob" { &mut bob } else { &mut dave };
        verifier
            .accept(&batch.attestation, &batch.messages)
            .expect("chained to the head before the restart");
        assert_eq!(batch.messages[0].bundle, answer.bundle);
    }
}

/// Sends `b` and ends the epoch once the shard has taken it in.
async fn sent_in_an_epoch(shard: &Shard, b: Bundle) -> Sent {
    let (sent, ()) = tokio::join!(shard.send(b), async {
        tokio::time::timeout(Duration::from_secs(10), async {
            while shard.waiting() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the send is taken in");
        shard.end_epoch().await;
    });
    sent.expect("sent")
}

#[tokio::test]
async fn bad_bundles_and_full_mailboxes_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("a directory");
    let limits =
        Limits { mailbox_messages: 2, recipients: 3, bundle_bytes: 100, ..Limits::default() };
    let shard = Shard::open(config(dir.path(), limits)).expect("opens");
    let refused = |b: Bundle| {
        let shard = shard.clone();
        async move { shard.send(b).await.expect_err("refused") }
    };
    assert_eq!(refused(bundle(&[], "x")).await, Refused::NoRecipients);
    assert_eq!(refused(bundle(&["a", "b", "c", "d"], "x")).await, Refused::TooManyRecipients(4, 3));
    assert_eq!(refused(bundle(&["a", "a"], "x")).await, Refused::Duplicate("a".into()));
    assert_eq!(refused(bundle(&[""], "x")).await, Refused::BadDevice(String::new(), 256));
    assert_eq!(
        refused(Bundle { parts: vec![], ..bundle(&["a"], "x") }).await,
        Refused::Parts { parts: 0, recipients: 1 }
    );
    assert_eq!(refused(bundle(&["a"], &"x".repeat(60))).await, Refused::TooLarge(126, 100));

    // Two messages fill bob's mailbox; a third is refused until he acknowledges.
    for i in 0..2 {
        sent_in_an_epoch(&shard, bundle(&["bob"], &format!("m{i}"))).await;
    }
    let full = refused(bundle(&["carol", "bob"], "m2")).await;
    assert_eq!(full, Refused::MailboxFull("bob".into()));
    assert!(full.retryable());
    assert_eq!(
        shard.fetch("carol", None, 10),
        Vec::<Arc<Batch>>::new(),
        "nothing of the refused bundle reached carol"
    );
    let last =
        shard.fetch("bob", None, 10).last().and_then(|b| b.messages.last()).expect("mail").id;
    // An acknowledgement past the last delivered is taken as the last.
    assert_eq!(shard.ack("bob", SeqId { epoch: u64::MAX, shard: 0, index: 0 }), 2);
    assert!(last.epoch < u64::MAX);
    sent_in_an_epoch(&shard, bundle(&["carol", "bob"], "m2")).await;
    let ids: HashSet<SeqId> =
        shard.fetch("bob", None, 10).iter().flat_map(|b| b.messages.iter().map(|m| m.id)).collect();
    assert_eq!(ids.len(), 1);
}
