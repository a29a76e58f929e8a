//! Chaos under load (`docs/reliability.md`, "Chaos"): two gateways, a cluster of three
//! nats-servers with JetStream and two echo services, as processes on loopback, under steady
//! load. Each component in turn is killed (SIGKILL) or paused (SIGSTOP), then restarted or
//! resumed, while:
//!
//! - four callers call `echo` every 5 ms with a 1 s deadline, each through both gateways (the
//!   client fails over);
//! - a publisher publishes numbered events on `journal` (a topic with history) every 10 ms;
//! - a subscriber, through both gateways, reads them.
//!
//! Then it checks what the issue asks: no call hangs (each ends within its deadline and a
//! margin), every failed call says it may be retried, calls succeed again within a bound after
//! each component is back (the time is measured and printed), every acknowledged event reaches
//! the subscriber once and in order, and the gateways' open files come back.
//!
//! Ignored in the test command: `scripts/chaos` runs it (about two minutes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echo::{BlobT, EchoClient};
use futures::StreamExt as _;
use gateway_client::{Client, ClientConfig};

mod support;
use support::{Gateway, Process, System, WAIT};

/// Each call's deadline.
const DEADLINE: Duration = Duration::from_secs(1);
/// How much later than its deadline a call may end before it counts as hung.
const HANG_MARGIN: Duration = Duration::from_secs(2);
/// How long a fault lasts before the component is brought back.
const FAULT: Duration = Duration::from_secs(3);
/// How long after bringing it back before the next fault.
const SETTLE: Duration = Duration::from_secs(6);
/// The longest time calls may keep failing once the component is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

/// One call's end, in time since the start.
#[derive(Clone, Debug)]
struct Call {
    started: Duration,
    ended: Duration,
    /// `None`: answered. Otherwise the status code and whether it may be retried.
    failed: Option<(&'static str, bool)>,
}

/// A fault injected: what, when it began, when the component was back.
#[derive(Clone, Debug)]
struct Fault {
    what: String,
    began: Duration,
    restored: Duration,
}

fn blob(text: String) -> BlobT {
    BlobT { data: Some(text.into_bytes()) }
}

async fn client(gateways: &[&Gateway]) -> Client {
    let mut config = ClientConfig::new(gateways.iter().map(|g| g.addr.to_string()));
    config.default_timeout = DEADLINE;
    tokio::time::timeout(WAIT, Client::connect(config)).await.unwrap().unwrap()
}

/// Open files of process `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: scripts/chaos runs it"]
async fn every_component_killed_and_paused_in_turn_under_load() {
    let mut system = System::start_cluster(3);
    let mut gateways = vec![system.gateway("gw-a").await, system.gateway("gw-b").await];
    let mut services: Vec<Process> =
        (1..=2).map(|i| system.service("echo-service", &format!("echo-{i}"), &[])).collect();
    let probe = EchoClient::new(client(&[&gateways[0], &gateways[1]]).await);
    let deadline = Instant::now() + WAIT;
    while probe.echo(blob("probe".into())).await.is_err() {
        assert!(Instant::now() < deadline, "echo never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let files_before: Vec<usize> =
        gateways.iter().map(|g| open_files(g.process.child.id().unwrap())).collect();

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(Mutex::new(Vec::<Call>::new()));
    let mut load = Vec::new();
    for caller in 0..4 {
        let order = if caller % 2 == 0 { [0, 1] } else { [1, 0] };
        let echo = EchoClient::new(client(&[&gateways[order[0]], &gateways[order[1]]]).await);
        let (stop, calls) = (stop.clone(), calls.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = start.elapsed();
                let answer =
                    tokio::time::timeout(DEADLINE + HANG_MARGIN, echo.echo(blob("x".into()))).await;
                let failed = match answer {
                    Ok(Ok(_)) => None,
                    Ok(Err(status)) => Some((status.code().name(), status.retryable())),
                    Err(_) => Some(("hung", false)),
                };
                let ended = start.elapsed();
                calls.lock().unwrap().push(Call { started, ended, failed });
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    // The journal: numbered events, each published until acknowledged; what was acknowledged,
    // and what the subscriber read.
    let acknowledged = Arc::new(Mutex::new(Vec::<(u64, Duration)>::new()));
    let received = Arc::new(Mutex::new(Vec::<u64>::new()));
    let lost = Arc::new(Mutex::new(Vec::<String>::new()));
    let subscriber = EchoClient::new(client(&[&gateways[1], &gateways[0]]).await);
    let mut journal = subscriber.subscribe_journal().await.expect("subscribed to journal");
    let stop_reading = Arc::new(AtomicBool::new(false));
    let reader = {
        let (received, lost, stop) = (received.clone(), lost.clone(), stop_reading.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), journal.next()).await {
                    Ok(Some(Ok(event))) => {
                        let data = event.message().get().data().map(|d| d.bytes().to_vec());
                        let n = String::from_utf8(data.unwrap_or_default()).unwrap();
                        received.lock().unwrap().push(n.parse().unwrap());
                    }
                    Ok(Some(Err(status))) => lost.lock().unwrap().push(status.to_string()),
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
        })
    };
    {
        let publisher = EchoClient::new(client(&[&gateways[0], &gateways[1]]).await);
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sent = tokio::time::timeout(
                    DEADLINE + HANG_MARGIN,
                    publisher.publish_journal(blob(n.to_string())),
                )
                .await;
                if let Ok(Ok(())) = sent {
                    acknowledged.lock().unwrap().push((n, start.elapsed()));
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut faults = Vec::new();
    let mut fault = |what: &str, began: Duration| {
        faults.push(Fault { what: what.to_owned(), began, restored: start.elapsed() });
    };
    // Gateways: killed and restarted on their addresses; paused and resumed.
    for i in 0..2 {
        let began = start.elapsed();
        gateways[i].process.kill();
        tokio::time::sleep(FAULT).await;
        let old = gateways.remove(i);
        let again = system.restart(old).await;
        gateways.insert(i, again);
        fault(&format!("kill -9 gateway {}", gateways[i].name), began);
        tokio::time::sleep(SETTLE).await;
    }
    for gateway in &gateways {
        let began = start.elapsed();
        gateway.process.child.pause();
        tokio::time::sleep(FAULT).await;
        gateway.process.child.resume();
        fault(&format!("SIGSTOP gateway {}", gateway.name), began);
        tokio::time::sleep(SETTLE).await;
    }
    // Services: killed and started again; paused and resumed.
    for (i, service) in services.iter_mut().enumerate() {
        let began = start.elapsed();
        service.kill();
        tokio::time::sleep(FAULT).await;
        *service = system.service("echo-service", &format!("echo-{}", i + 1), &[]);
        fault(&format!("kill -9 echo-{}", i + 1), began);
        tokio::time::sleep(SETTLE).await;
    }
    for (i, service) in services.iter().enumerate() {
        let began = start.elapsed();
        service.child.pause();
        tokio::time::sleep(FAULT).await;
        service.child.resume();
        fault(&format!("SIGSTOP echo-{}", i + 1), began);
        tokio::time::sleep(SETTLE).await;
    }
    // NATS: each node killed and restarted (with its store); each paused and resumed.
    for i in 0..3 {
        let began = start.elapsed();
        system.nats.kill(i);
        tokio::time::sleep(FAULT).await;
        system.nats.restart(i);
        fault(&format!("kill -9 nats {}", system.nats.name(i)), began);
        tokio::time::sleep(SETTLE).await;
    }
    for i in 0..3 {
        let began = start.elapsed();
        system.nats.pause(i);
        tokio::time::sleep(FAULT).await;
        system.nats.resume(i);
        fault(&format!("SIGSTOP nats {}", system.nats.name(i)), began);
        tokio::time::sleep(SETTLE).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    // The last acknowledged events are on their way to the subscriber: wait for them (bounded).
    let last = acknowledged.lock().unwrap().last().map(|&(n, _)| n);
    let deadline = Instant::now() + WAIT;
    while last.is_some_and(|last| !received.lock().unwrap().contains(&last))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_reading.store(true, Ordering::Relaxed);
    reader.await.unwrap();

    // What happened, fault by fault.
    let calls = calls.lock().unwrap().clone();
    let mut report = Vec::new();
    let mut recoveries = Vec::new();
    for (k, fault) in faults.iter().enumerate() {
        let until = faults.get(k + 1).map_or(Duration::MAX, |next| next.began);
        // A call belongs to the last fault that began before it ended.
        let during: Vec<&Call> =
            calls.iter().filter(|c| c.ended >= fault.began && c.ended < until).collect();
        let failed = during.iter().filter(|c| c.failed.is_some()).count();
        // Calls keep failing after the component is back until: the end of the last failed
        // call that started after it was back.
        let last_failure = during
            .iter()
            .filter(|c| c.failed.is_some() && c.started >= fault.restored)
            .map(|c| c.ended)
            .max();
        let recovery = last_failure.map_or(Duration::ZERO, |end| end - fault.restored);
        recoveries.push((fault.what.clone(), recovery));
        report.push(format!(
            "{:<28} calls {:>5}  failed {:>4}  failing for {:>6.2} s after it was back",
            fault.what,
            during.len(),
            failed,
            recovery.as_secs_f64()
        ));
    }
    let by_code = calls.iter().filter_map(|c| c.failed).fold(
        std::collections::BTreeMap::<(&str, bool), usize>::new(),
        |mut m, f| {
            *m.entry(f).or_default() += 1;
            m
        },
    );
    let acknowledged = acknowledged.lock().unwrap().clone();
    let received = received.lock().unwrap().clone();
    let lost = lost.lock().unwrap().clone();
    let files_after: Vec<usize> =
        gateways.iter().map(|g| open_files(g.process.child.id().unwrap())).collect();
    println!("chaos: {} calls in {:.0} s", calls.len(), start.elapsed().as_secs_f64());
    for line in &report {
        println!("  {line}");
    }
    println!("  failures by status (code, retryable): {by_code:?}");
    println!(
        "  journal: {} acknowledged, {} received, losses reported: {lost:?}",
        acknowledged.len(),
        received.len()
    );
    println!("  gateways' open files: before {files_before:?}, after {files_after:?}");
    let received_set: std::collections::HashSet<u64> = received.iter().copied().collect();
    let missing: Vec<(u64, Duration)> =
        acknowledged.iter().copied().filter(|(n, _)| !received_set.contains(n)).collect();
    // The faults the missing events were acknowledged in.
    let mut missing_by_fault = std::collections::BTreeMap::<String, Vec<u64>>::new();
    for &(n, at) in &missing {
        let fault = faults.iter().rev().find(|f| f.began <= at).map_or("none", |f| f.what.as_str());
        missing_by_fault.entry(fault.to_owned()).or_default().push(n);
    }
    for (fault, numbers) in &missing_by_fault {
        println!(
            "  journal: {} acknowledged events never received, acknowledged during {fault}: {}..={}",
            numbers.len(),
            numbers[0],
            numbers[numbers.len() - 1]
        );
    }

    let hung: Vec<&Call> = calls.iter().filter(|c| c.failed == Some(("hung", false))).collect();
    assert!(
        hung.is_empty(),
        "{} calls hung past their deadline: {:?}",
        hung.len(),
        &hung[..hung.len().min(5)]
    );
    // A failed call either says it may be retried (`unavailable`), or ran out its deadline
    // (`deadline_exceeded`: the caller's own bound; whether to try again is the caller's
    // choice, as the call may have run). Nothing else: no `internal`, no lost connection.
    let other = calls
        .iter()
        .filter(|c| matches!(c.failed, Some((code, retryable)) if !retryable && code != "deadline_exceeded"))
        .count();
    assert_eq!(
        other, 0,
        "failed calls that are neither retryable nor past their deadline: {by_code:?}"
    );
    for (what, recovery) in &recoveries {
        assert!(
            *recovery <= RECOVERY_BOUND,
            "{what}: calls failed for {recovery:?} after it was back"
        );
    }
    let mut seen = std::collections::HashSet::new();
    let repeats: Vec<u64> = received.iter().copied().filter(|n| !seen.insert(*n)).collect();
    assert!(repeats.is_empty(), "events received twice: {repeats:?}");
    assert!(received.windows(2).all(|w| w[0] < w[1]), "events out of order");
    assert!(missing.is_empty(), "acknowledged events never received (losses reported: {lost:?})");
    for (before, after) in files_before.iter().zip(&files_after) {
        assert!(*after <= before + 16, "a gateway's open files grew from {before} to {after}");
    }
}
