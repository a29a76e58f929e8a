//! The fencing state on a real 3-node nats-server cluster (JetStream, three replicas): claims
//! and extensions are compare-and-set, a replaced leader is fenced at its next extension, a
//! claim must raise the upper bound, and all of it keeps working with a node down.

use std::time::{Duration, Instant};

use gateway_testkit::NatsCluster;
use tso::fence::{Fence, FenceError};

async fn fence(cluster: &NatsCluster, node: usize) -> Fence {
    let client = async_nats::connect(cluster.url(node)).await.expect("connects");
    Fence::open(&async_nats::jetstream::new(client), "tso", 3).await.expect("the bucket")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_claim_wins_a_replaced_leader_is_fenced_and_a_node_may_die() {
    let mut cluster = NatsCluster::start(3);
    let (a, b) = (fence(&cluster, 0).await, fence(&cluster, 1).await);
    assert_eq!(a.read().await.expect("read"), None, "nobody has led yet");

    // Both claim the empty state: exactly one wins.
    let (won_a, won_b) = (a.claim("a", None, 100).await, b.claim("b", None, 200).await);
    let held_a = won_a.expect("a's claim ran").expect("a, first, wins");
    assert_eq!(won_b.expect("b's claim ran"), None, "b's claim over nothing loses");
    assert_eq!((held_a.state.term, held_a.state.upper), (1, 100));

    // The leader raises its bound; never lowers it.
    let held_a = a.extend(&held_a, 150).await.expect("runs").expect("a still leads");
    let held_a = a.extend(&held_a, 120).await.expect("runs").expect("a still leads");
    assert_eq!(held_a.state.upper, 150);

    // A node dies (not the one either client uses): two of three replicas carry on, once they
    // have elected the stream a new leader if the dead node led it (until then writes fail,
    // with an error, never a wrong answer).
    cluster.kill(2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let held_a = loop {
        match a.extend(&held_a, 300).await {
            Ok(Some(extended)) => break extended,
            // An attempt that reported an error may have been written all the same.
            Ok(None) => {
                let now = a.read().await.expect("read").expect("a state");
                assert_eq!((now.state.leader.as_str(), now.state.upper), ("a", 300));
                break now;
            }
            Err(e) => assert!(Instant::now() < deadline, "no write with a node down: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // b takes over from what it reads: the bound must go up, the term goes up.
    let seen = b.read().await.expect("read").expect("a state");
    assert!(matches!(b.claim("b", Some(&seen), 300).await, Err(FenceError::NotAbove { .. })));
    let held_b = b.claim("b", Some(&seen), 400).await.expect("runs").expect("b wins");
    assert_eq!((held_b.state.term, held_b.state.leader.as_str()), (2, "b"));

    // a's next extension finds it replaced; a stale claim over a's old state loses too.
    assert_eq!(a.extend(&held_a, 500).await.expect("runs"), None, "a is fenced");
    assert_eq!(a.claim("a", Some(&held_a), 600).await.expect("runs"), None);
    cluster.restart(2);
    let now = a.read().await.expect("read").expect("a state");
    assert_eq!(now, held_b, "b's claim is what every replica holds");
}
