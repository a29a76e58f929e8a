//! The timestamp oracle as processes (docs/tso.md): `tso` instances on NATS behind a real
//! `gateway`, called with the generated client and the collapsing client. The leader killed:
//! another serves, above, within the lease plus a second. Then many concurrent callers record
//! every call's start, end and timestamps while the system suffers, one after another, the
//! leader killed, the next leader paused (SIGSTOP) for twice the lease and resumed, a leader's
//! wall clock stepped back 10 s, a NATS node (of 3) killed, and the first leader leading again
//! (A -> B -> A); the history must hold no timestamp twice and none lower than one returned
//! before its call began.
//!
//! Like `nats.rs`, this needs the `tso` binary built next to `gateway` (`cargo test
//! --workspace` does it).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway_core::Status;
use gateway_testkit::NatsCluster;
use tokio::task::JoinSet;
use tso::Timestamp;
use tso::client::Collapsing;
use tso::service::{TimestampsRequestT, TsoClient};

mod support;
use support::{Gateway, Nats, Process, System, WAIT, eventually};

/// The subscription of the oracle's calls, held by the leader only.
const TSO_CALLS: &str = "rpc.examples.tso.Tso.*";

/// The instances' lease in these tests.
const LEASE: Duration = Duration::from_secs(1);

/// Waits bound after a NATS node is killed: while the cluster elects new leaders for the
/// fencing bucket's stream, writes fail (for up to several seconds), and so nothing is served.
const AFTER_NODE_LOSS: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_fails_over_when_its_leader_is_killed_and_never_goes_back() {
    let system = System::start();
    // Two instances, a 1 s lease, the fencing bucket with one replica (one nats-server here).
    let args = |id| ["--id", id, "--replicas", "1", "--lease", "1s"];
    let mut instances = [
        Some(system.service("tso", "tso-1", &args("1"))),
        Some(system.service("tso", "tso-2", &args("2"))),
    ];
    let gateway = system.gateway("gw-1").await;
    // Only the leader subscribes to the oracle's calls.
    let leader = eventually("one instance serving", || {
        let serving: Vec<usize> = (0..2)
            .filter(|&i| {
                system.subscriptions(&format!("tso-{}", i + 1), TSO_CALLS).iter().any(|&n| n > 0)
            })
            .collect();
        (serving.len() == 1).then(|| serving[0])
    })
    .await;
    let oracle = TsoClient::new(gateway.client().await);
    let take = |n: u32| {
        let oracle = oracle.clone();
        async move {
            let reply = oracle.timestamps(TimestampsRequestT { n }).await?;
            let first: [u8; 16] = reply.get().first().bytes().try_into().expect("16 bytes");
            Ok::<_, Status>(Timestamp::from_bytes(&first))
        }
    };
    let mut last = Timestamp { epoch: 0, index: 0 };
    for _ in 0..200 {
        let first = take(4).await.expect("the leader serves");
        assert!(first > last, "{first:?} after {last:?}");
        last = Timestamp { index: first.index + 3, ..first };
    }

    // The leader dies; calls fail with a retryable status until the other instance has waited
    // out the lease and claimed, within the lease plus a second.
    instances[leader].take().expect("running").kill();
    let killed = Instant::now();
    let first = loop {
        match take(1).await {
            Ok(first) => break first,
            Err(status) => {
                assert!(status.retryable(), "{status:?}");
                assert!(killed.elapsed() < Duration::from_secs(5), "no new leader: {status:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let failover = killed.elapsed();
    assert!(failover < Duration::from_secs(2), "failover took {failover:?}");
    assert!(first > last, "{first:?}, from the new leader, is not above {last:?}");
    eprintln!("failover took {failover:?}");
}

/// The instance (0-based, of `count`) subscribed to the oracle's calls, once exactly one is.
async fn serving<N: Nats>(system: &System<N>, count: usize, not: Option<usize>) -> usize {
    eventually("exactly one instance serving", || {
        let serving: Vec<usize> = (0..count)
            .filter(|&i| {
                system.subscriptions(&format!("tso-{}", i + 1), TSO_CALLS).iter().any(|&n| n > 0)
            })
            .collect();
        (serving.len() == 1 && Some(serving[0]) != not).then(|| serving[0])
    })
    .await
}

fn signal(process: &Process, name: &str) {
    let pid = process.child.id().expect("running").to_string();
    let sent = Command::new("kill").args([&format!("-{name}"), &pid]).status().expect("kill runs");
    assert!(sent.success(), "kill -{name} {pid}");
}

/// One call that returned timestamps.
#[derive(Clone, Copy, Debug)]
struct Call {
    start: Instant,
    end: Instant,
    first: Timestamp,
    n: u32,
}

impl Call {
    fn last(&self) -> Timestamp {
        Timestamp { index: self.first.index + u64::from(self.n) - 1, ..self.first }
    }
}

/// Callers asking for timestamps in a loop through collapsing clients, each recording its
/// calls.
struct History {
    stop: Arc<AtomicBool>,
    callers: JoinSet<Vec<Call>>,
    /// When the latest call that returned timestamps began (nanoseconds since `origin`).
    last_ok: Arc<AtomicU64>,
    /// How many calls have returned timestamps.
    returned: Arc<AtomicU64>,
    origin: Instant,
}

impl History {
    /// `connections` gateway connections, each with a collapsing client shared by `callers`
    /// callers.
    async fn start(gateway: &Gateway, connections: usize, callers: usize) -> History {
        let returned = Arc::new(AtomicU64::new(0));
        let (stop, last_ok, origin) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Instant::now());
        let mut tasks = JoinSet::new();
        for c in 0..connections {
            let client = TsoClient::new(gateway.client().await).with_timeout(LEASE * 2);
            let collapsing = Collapsing::new(client);
            for k in 0..callers {
                let (collapsing, stop, last_ok, returned) =
                    (collapsing.clone(), stop.clone(), last_ok.clone(), returned.clone());
                tasks.spawn(async move {
                    let mut calls = Vec::new();
                    let mut i = c + k;
                    while !stop.load(Ordering::Relaxed) {
                        let n = 1 + (i % 4) as u32;
                        i += 1;
                        let start = Instant::now();
                        match collapsing.timestamps(n).await {
                            Ok(first) => {
                                let end = Instant::now();
                                calls.push(Call { start, end, first, n });
                                let at = start.duration_since(origin).as_nanos() as u64;
                                last_ok.fetch_max(at, Ordering::Relaxed);
                                returned.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(status) => {
                                assert!(status.retryable(), "a call failed for good: {status:?}");
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                    }
                    calls
                });
            }
        }
        History { stop, callers: tasks, last_ok, returned, origin }
    }

    /// Waits until a call that began after `since` has returned timestamps; how long that took
    /// from `since` (to within the 5 ms this polls at).
    async fn served_after(&self, since: Instant, within: Duration) -> Duration {
        loop {
            let began = self.origin + Duration::from_nanos(self.last_ok.load(Ordering::Relaxed));
            if began > since {
                return since.elapsed();
            }
            assert!(since.elapsed() < within, "no timestamps served within {within:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until `more` calls have returned timestamps from now on: the system serves for a
    /// while in the state it is in.
    async fn more(&self, more: u64) {
        let target = self.returned.load(Ordering::Relaxed) + more;
        let started = Instant::now();
        while self.returned.load(Ordering::Relaxed) < target {
            assert!(started.elapsed() < WAIT, "{more} calls did not return within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(mut self) -> Vec<Call> {
        self.stop.store(true, Ordering::Relaxed);
        let mut calls = Vec::new();
        while let Some(done) = self.callers.join_next().await {
            calls.extend(done.expect("a caller"));
        }
        calls
    }
}

/// The history's two properties: no timestamp twice, and a call that began after another
/// returned got only larger timestamps.
fn check(calls: &[Call]) -> Result<(), String> {
    let mut ranges: Vec<(Timestamp, Timestamp)> =
        calls.iter().map(|c| (c.first, c.last())).collect();
    ranges.sort();
    for pair in ranges.windows(2) {
        if pair[1].0 <= pair[0].1 {
            return Err(format!("issued twice: {:?} and {:?} overlap", pair[0], pair[1]));
        }
    }
    let mut by_start: Vec<&Call> = calls.iter().collect();
    by_start.sort_by_key(|c| c.start);
    let mut by_end: Vec<&Call> = calls.iter().collect();
    by_end.sort_by_key(|c| c.end);
    let (mut ended, mut highest): (usize, Option<Timestamp>) = (0, None);
    for call in by_start {
        while ended < by_end.len() && by_end[ended].end < call.start {
            highest = highest.max(Some(by_end[ended].last()));
            ended += 1;
        }
        if let Some(highest) = highest.filter(|&h| call.first <= h) {
            return Err(format!(
                "went back: {:?} was returned after {highest:?} had been, to a call that began later",
                call.first
            ));
        }
    }
    Ok(())
}

#[test]
fn the_checker_finds_a_repeat_and_a_step_back() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let ts = |epoch, index| Timestamp { epoch, index };
    let call = |start, end, first, n| Call { start: at(start), end: at(end), first, n };
    let good = [call(0, 10, ts(5, 0), 2), call(5, 15, ts(5, 2), 1), call(20, 30, ts(6, 0), 3)];
    assert_eq!(check(&good), Ok(()));
    // Overlapping ranges in one epoch.
    let repeat = [call(0, 10, ts(5, 0), 2), call(20, 30, ts(5, 1), 1)];
    assert!(check(&repeat).unwrap_err().contains("issued twice"));
    // Lower than one returned before the call began (concurrent calls may be in any order).
    let back = [call(0, 10, ts(6, 0), 1), call(20, 30, ts(5, 9), 1)];
    assert!(check(&back).unwrap_err().contains("went back"));
    let concurrent = [call(0, 30, ts(6, 0), 1), call(20, 40, ts(5, 9), 1)];
    assert_eq!(check(&concurrent), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_timestamp_repeats_or_goes_back_through_crashes_pauses_clock_steps_and_a_lost_node() {
    let mut system = System::start_cluster(3);
    let clocks: Vec<PathBuf> =
        (1..=3).map(|i| system.logs.path().join(format!("clock-{i}"))).collect();
    let start = |system: &System<NatsCluster>, i: usize| {
        let (id, clock) = ((i + 1).to_string(), clocks[i].display().to_string());
        let args = ["--id", &id, "--lease", "1s", "--clock-offset-file", &clock];
        system.service("tso", &format!("tso-{id}"), &args)
    };
    let mut instances: Vec<Process> = (0..3).map(|i| start(&system, i)).collect();
    let gateway = system.gateway("gw-1").await;
    let first = serving(&system, 3, None).await;
    let history = History::start(&gateway, 4, 16).await;
    history.served_after(Instant::now(), WAIT).await;
    history.more(10_000).await;

    // The leader crashes; once another serves, it comes back as a follower.
    instances[first].kill();
    let failover = history.served_after(Instant::now(), WAIT).await;
    assert!(failover < LEASE + Duration::from_secs(1), "failover took {failover:?}");
    instances[first] = start(&system, first);

    // The new leader is paused for twice its lease, then resumed: by then another leads, and
    // the resumed one serves nothing more.
    let paused = serving(&system, 3, Some(first)).await;
    signal(&instances[paused], "STOP");
    let stopped = Instant::now();
    tokio::time::sleep(LEASE * 2).await;
    signal(&instances[paused], "CONT");
    history.served_after(stopped + LEASE, WAIT).await;

    // The leader's wall clock steps back ten seconds.
    let stepped = serving(&system, 3, Some(paused)).await;
    std::fs::write(&clocks[stepped], "-10000000000").expect("the clock file");
    history.served_after(Instant::now(), WAIT).await;
    history.more(15_000).await;

    // A NATS node dies; the others go on.
    system.nats.kill(2);
    history.served_after(Instant::now(), AFTER_NODE_LOSS).await;
    history.more(15_000).await;

    // The first leader leads again: every other instance is paused until it does.
    let others: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    for &i in &others {
        signal(&instances[i], "STOP");
    }
    let paused = Instant::now();
    while !system.subscriptions(&format!("tso-{}", first + 1), TSO_CALLS).iter().any(|&n| n > 0) {
        assert!(paused.elapsed() < AFTER_NODE_LOSS, "the first leader does not serve again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    history.served_after(Instant::now(), AFTER_NODE_LOSS).await;
    for &i in &others {
        signal(&instances[i], "CONT");
    }
    history.served_after(Instant::now(), WAIT).await;
    history.more(10_000).await;

    let calls = history.stop().await;
    assert!(calls.len() > 1_000, "only {} calls returned timestamps", calls.len());
    if let Err(violation) = check(&calls) {
        panic!("{violation} ({} calls)", calls.len());
    }
    eprintln!("{} calls checked; first failover {failover:?}", calls.len());
}
