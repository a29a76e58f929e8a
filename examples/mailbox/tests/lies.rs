//! The running shard told to lie (`Shard::misbehave`, a test-only mode): each lie of the issue —
//! a dropped message, a swapped recipient list, a reused sequence id, two messages reordered, a
//! device's chain forked from another's view — passes the lied-to device's own check (a lie told
//! consistently does), and is caught once the parties' statements are put together: a proof of
//! the kind expected, which checks with the shard's public key alone. The same traffic told
//! honestly raises no alarm.

use std::sync::Arc;
use std::time::Duration;

use mailbox::model::{keys, shard_in};
use mailbox::shard::{Batch, Bundle, Lie, Sent};
use mailbox::{DeviceVerifier, Proof, Signed, proof};

fn bundle(recipients: &[&str], common: &str) -> Bundle {
    Bundle {
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        common: common.as_bytes().to_vec().into(),
        parts: recipients.iter().map(|r| format!("{common} for {r}").into_bytes().into()).collect(),
    }
}

/// One epoch of traffic through a shard telling `lie`: four bundles, sent in order, then the
/// epoch ends. The answers, the batches delivered, and the attestations the shard shows others.
async fn epoch(lie: Option<Lie>) -> (Vec<(Bundle, Sent)>, Vec<Arc<Batch>>, Vec<Signed>) {
    let dir = tempfile::tempdir().expect("a directory");
    let shard = shard_in(dir.path());
    if let Some(lie) = lie {
        shard.misbehave(lie);
    }
    let mut deliveries = shard.deliveries();
    let bundles = [
        bundle(&["alice", "bob"], "first"),
        bundle(&["alice", "bob"], "second"),
        bundle(&["carol"], "third"),
        bundle(&["bob", "carol"], "fourth"),
    ];
    let mut sends = Vec::new();
    for b in &bundles {
        let (sender, b) = (shard.clone(), b.clone());
        sends.push(tokio::spawn(async move { (b.clone(), sender.send(b).await.expect("sent")) }));
        // Each send is taken in before the next is made: the bundles' order is this one.
        let taken = sends.len();
        tokio::time::timeout(Duration::from_secs(10), async {
            while shard.waiting() < taken {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the send is taken in");
    }
    shard.end_epoch().await;
    let mut sent = Vec::new();
    for send in sends {
        sent.push(send.await.expect("a sender"));
    }
    let mut batches = Vec::new();
    while let Ok(batch) = deliveries.try_recv() {
        batches.push(batch);
    }
    let shown = ["alice", "bob", "carol"].iter().flat_map(|d| shard.attestations(d, 0)).collect();
    (sent, batches, shown)
}

/// Each device's own check passes; then the proof found among everyone's statements, if any.
fn verdict(sent: &[(Bundle, Sent)], batches: &[Arc<Batch>], shown: &[Signed]) -> Option<Proof> {
    for batch in batches {
        DeviceVerifier::new(&batch.device, keys(1))
            .accept(&batch.attestation, &batch.messages)
            .unwrap_or_else(|e| panic!("{} rejects its own batch: {e}", batch.device));
    }
    let statements: Vec<Signed> = sent
        .iter()
        .map(|(_, s)| s.receipt.clone())
        .chain(batches.iter().map(|b| b.attestation.clone()))
        .chain(shown.iter().cloned())
        .collect();
    let lists: Vec<Vec<String>> = sent
        .iter()
        .map(|(b, _)| b.recipients.clone())
        .chain(batches.iter().flat_map(|b| b.messages.iter().map(|m| m.recipients.to_vec())))
        .collect();
    let found = proof::find(&statements, &lists, &keys(1));
    if let Some(proof) = &found {
        proof.check(&keys(1)).unwrap_or_else(|e| panic!("{} does not check: {e}", proof.kind()));
    }
    found
}

#[tokio::test]
async fn an_honest_epoch_raises_no_alarm() {
    let (sent, batches, shown) = epoch(None).await;
    assert_eq!(batches.len(), 3);
    assert_eq!(verdict(&sent, &batches, &shown), None);
}

#[tokio::test]
async fn every_lie_of_the_running_shard_is_caught_with_a_proof() {
    for (lie, kind) in [
        (Lie::Drop, "an omitted message"),
        (Lie::SwapRecipients, "conflicting statements"),
        (Lie::ReuseId, "conflicting statements"),
        (Lie::Reorder, "conflicting statements"),
        (Lie::Fork, "a forked chain"),
    ] {
        let (sent, batches, shown) = epoch(Some(lie)).await;
        let found = verdict(&sent, &batches, &shown);
        assert_eq!(found.as_ref().map(Proof::kind), Some(kind), "{lie:?}");
    }
}
