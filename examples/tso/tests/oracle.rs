//! Oracle instances on a real 3-node nats-server cluster: one leads, a follower refuses, a
//! leader that stops renewing stops serving when its lease runs out and another takes over
//! within the lease plus a second, above every timestamp served before; the wall clock stepping
//! back does not take timestamps back; and A → B → A does not reuse A's old epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use gateway_testkit::NatsCluster;
use tokio::task::JoinHandle;
use tso::Timestamp;
use tso::fence::Fence;
use tso::oracle::{Oracle, Refused, SystemClock, Timing, WallClock};

/// Short enough for tests, in the same proportions as the defaults.
const TIMING: Timing = Timing {
    lease: Duration::from_millis(1000),
    margin: Duration::from_millis(50),
    renew_every: Duration::from_millis(300),
    ahead: Duration::from_millis(1000),
    epoch_every: Duration::from_millis(20),
    poll_every: Duration::from_millis(50),
};

/// The system clock moved by a shift a test sets.
#[derive(Debug, Default)]
struct Shifted(AtomicI64);

impl WallClock for Shifted {
    fn now_ns(&self) -> u64 {
        SystemClock.now_ns().saturating_add_signed(self.0.load(Ordering::Relaxed))
    }
}

async fn fence(cluster: &NatsCluster, node: usize) -> Fence {
    let client = async_nats::connect(cluster.url(node)).await.expect("connects");
    Fence::open(&async_nats::jetstream::new(client), "tso", 3).await.expect("the bucket")
}

/// Runs `oracle`'s loop until the handle is aborted (a crash, as far as the others can tell).
fn run(oracle: &Oracle, fence: Fence, clock: Arc<dyn WallClock>) -> JoinHandle<()> {
    let oracle = oracle.clone();
    tokio::spawn(async move { oracle.run(&fence, TIMING, &*clock, std::future::pending()).await })
}

async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// Takes timestamps from `oracle` for `how_long`, one call of 3 at a time; checks they increase
/// and returns the last.
async fn serve_for(oracle: &Oracle, how_long: Duration, after: Timestamp) -> Timestamp {
    let mut last = after;
    let deadline = Instant::now() + how_long;
    while Instant::now() < deadline {
        let first = oracle.timestamps(3).expect("the leader serves");
        assert!(first > last, "{first:?} after {last:?}");
        last = Timestamp { index: first.index + 2, ..first };
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_leader_stops_serving_and_another_takes_over_above_it() {
    let cluster = NatsCluster::start(3);
    let (a, b) = (Oracle::new("a"), Oracle::new("b"));
    let run_a = run(&a, fence(&cluster, 0).await, Arc::new(SystemClock));
    let run_b = run(&b, fence(&cluster, 1).await, Arc::new(SystemClock));
    until("one leader", Duration::from_secs(5), || a.leads() || b.leads()).await;
    // A whole lease later the other has still not claimed: an absence, which no event marks.
    tokio::time::sleep(TIMING.lease).await;
    assert!(a.leads() != b.leads(), "exactly one leads");
    let (leader, follower, leader_run, follower_run) =
        if a.leads() { (&a, &b, run_a, run_b) } else { (&b, &a, run_b, run_a) };
    assert_eq!(follower.timestamps(1), Err(Refused::NotLeader));
    assert_eq!(leader.timestamps(0), Err(Refused::BadCount(0)));
    let last =
        serve_for(leader, Duration::from_millis(500), Timestamp { epoch: 0, index: 0 }).await;

    // The leader's loop dies: it renews no more. Its lease runs out (it refuses), and the
    // follower takes over within the lease plus a second, above all it served.
    leader_run.abort();
    let stopped = Instant::now();
    until("the old leader to refuse", TIMING.lease * 2, || {
        leader.timestamps(1) == Err(Refused::LeaseExpired)
    })
    .await;
    until("the follower to serve", TIMING.lease + Duration::from_secs(2), || {
        follower.timestamps(1).is_ok()
    })
    .await;
    let failover = stopped.elapsed();
    assert!(failover < TIMING.lease + Duration::from_secs(1), "failover took {failover:?}");
    let next = follower.timestamps(1).expect("serves");
    assert!(next > last, "{next:?} is not above {last:?}, served by the previous term");
    follower_run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_clock_stepping_back_does_not_take_timestamps_back() {
    let cluster = NatsCluster::start(3);
    let oracle = Oracle::new("solo");
    let clock = Arc::new(Shifted::default());
    let task = run(&oracle, fence(&cluster, 0).await, clock.clone());
    until("it leads", Duration::from_secs(5), || oracle.leads()).await;
    let last =
        serve_for(&oracle, Duration::from_millis(200), Timestamp { epoch: 0, index: 0 }).await;
    clock.0.store(-10_000_000_000, Ordering::Relaxed); // ten seconds back
    let later =
        serve_for(&oracle, Duration::from_millis(2 * TIMING.renew_every.as_millis() as u64), last)
            .await;
    assert!(later.epoch > last.epoch, "epochs went on: {later:?} after {last:?}");
    assert!(oracle.leads(), "renewals with the clock behind the bound still succeed");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_replaced_and_back_again_starts_above_its_replacement() {
    let cluster = NatsCluster::start(3);
    let (a, b) = (Oracle::new("a"), Oracle::new("b"));
    let run_a = run(&a, fence(&cluster, 0).await, Arc::new(SystemClock));
    until("a leads", Duration::from_secs(5), || a.leads()).await;
    let from_a = serve_for(&a, Duration::from_millis(200), Timestamp { epoch: 0, index: 0 }).await;
    // A's loop stops (as if paused past its lease); B takes over and serves.
    run_a.abort();
    let run_b = run(&b, fence(&cluster, 1).await, Arc::new(SystemClock));
    until("b leads", TIMING.lease + Duration::from_secs(2), || b.leads()).await;
    let from_b = serve_for(&b, Duration::from_millis(200), from_a).await;
    // A comes back still believing it leads: its next renewal finds B's term and it steps
    // down, serving nothing meanwhile (its lease ran out). Then B stops and A leads again.
    let run_a = run(&a, fence(&cluster, 0).await, Arc::new(SystemClock));
    assert_eq!(a.timestamps(1), Err(Refused::LeaseExpired));
    until("a to step down", Duration::from_secs(2), || !a.leads()).await;
    run_b.abort();
    until("a leads again", TIMING.lease * 2 + Duration::from_secs(2), || {
        a.leads() && a.timestamps(1).is_ok()
    })
    .await;
    let again = a.timestamps(1).expect("serves");
    assert!(again > from_b, "{again:?} is not above B's {from_b:?}");
    assert_eq!(a.counters().terms_won, 2);
    assert_eq!(a.counters().steps_down, 1);
    run_a.abort();
}
