//! The gateway deployed over NATS, as processes: a real nats-server (JetStream on), `gateway
//! --nats` processes, service processes (`echo-service`, `some-api-service`), and clients over
//! TCP with the generated typed clients. What issue 5's proof asks: topics across gateways, calls
//! spread over instances, an instance killed under load, one NATS subscription per topic per
//! gateway, and nats-server killed under load and restarted. Also the Roughtime service process
//! (`roughtime-service`) behind a gateway over NATS. (The timestamp oracle's processes: `tso.rs`.)
//!
//! The service binaries belong to other packages; they are found next to this package's
//! `gateway` binary, in the same target directory. `cargo test --workspace` builds them;
//! `cargo test -p gateway` alone does not (run `cargo build -p echo -p some-api -p roughtime -p tso --bins`
//! first).
//!
//! Readiness is observed, never slept on: a gateway is up when its `/readyz` answers 200, a
//! service or a gateway's topic subscription when nats-server's `/connz?subs=1` lists it. Every
//! wait is bounded. Each process's log goes to a file, printed when a test fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use echo::{BlobT, EchoClient};
use futures::StreamExt as _;
use gateway_client::Client;
use gateway_core::{Code, Status};
use roughtime::service::{EmptyT, RoughtimeClient, TimeRequestT};
use roughtime::wire::{Message, Tag, unframe};
use some_api::{RequestSubT, SomeApiClient};
use tokio::task::JoinSet;

mod support;
use support::{System, WAIT, eventually, sibling_binary};

/// The deadline of each call in the load tests: a call that hangs until it shows up as
/// `deadline_exceeded`, not as the prompt `unavailable` expected.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The subscriptions nats-server lists for each service instance and gateway (docs/bus.md).
const ECHO_CALLS: &str = "rpc.examples.echo.Echo.*";
const SOME_API_CALLS: &str = "rpc.examples.some_api.SomeApi.*";
const BROADCAST: &str = "topic.examples.echo.Echo.broadcast";
const TOTALS: &str = "topic.examples.some_api.SomeApi.pub";
const ROUGHTIME_CALLS: &str = "rpc.examples.roughtime.Roughtime.*";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_one_gateway_receives_what_is_published_through_the_other() {
    let system = System::start();
    let _service = system.service("some-api-service", "some-api-service", &[]);
    let (one, two) = (system.gateway("gw-1").await, system.gateway("gw-2").await);
    system.wait_for_subscribers("some-api-service", SOME_API_CALLS, 1).await;

    // A service's topic: the service publishes its running total after each `sub` called
    // through gateway 2; a client of gateway 1 receives each total.
    let watcher = SomeApiClient::new(one.client().await);
    let caller = SomeApiClient::new(two.client().await);
    let mut totals = watcher.subscribe_pub().await.expect("subscribed to the totals on gw-1");
    system.wait_for_subscribers("gw-1", TOTALS, 1).await;
    for (amount, value, changes) in [(5, -5, 1), (-7, 2, 2)] {
        caller.sub(RequestSubT { amount }).await.expect("`sub` through gw-2");
        let event = next(&mut totals).await;
        let total = event.message().get();
        assert_eq!((total.value(), total.changes()), (value, changes), "after sub({amount})");
        assert_eq!((event.missed(), event.resumed()), (0, false));
    }

    // A client-published topic: published by a client of gateway 2, received in order by a
    // client of gateway 1 (and by one of gateway 2's own).
    let far = EchoClient::new(one.client().await);
    let near = EchoClient::new(two.client().await);
    let mut far_events = far.subscribe_broadcast().await.expect("subscribed on gw-1");
    let mut near_events = near.subscribe_broadcast().await.expect("subscribed on gw-2");
    system.wait_for_subscribers("gw-1", BROADCAST, 1).await;
    system.wait_for_subscribers("gw-2", BROADCAST, 1).await;
    let sent: [&[u8]; 3] = [b"one", b"two", b"three"];
    for payload in sent {
        near.publish_broadcast(blob(payload)).await.expect("published through gw-2");
    }
    for events in [&mut far_events, &mut near_events] {
        for payload in sent {
            let event = next(events).await;
            assert_eq!(event.message().get().data().map(|d| d.bytes()), Some(payload));
            assert_eq!(event.missed(), 0);
        }
    }
}

/// Issue 18: a gateway and a service process authenticate to a nats-server in operator mode
/// with `.creds` files (the gateway through `GATEWAY_NATS_CREDS`, the service through
/// `--nats-creds`) and serve calls. A service or a gateway whose credentials the server does
/// not trust exits at once, saying which file was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_and_a_service_authenticate_with_creds_files() {
    let dir = tempfile::tempdir().unwrap();
    let operator = gateway_testkit::nats_jwt::Operator::new();
    let config = operator.write_server_config(dir.path());
    let system = System::with(gateway_testkit::NatsServer::start_with(&["-c", path(&config)]));
    let echo_creds = operator.write_user_creds(dir.path(), "echo");
    let _echo =
        system.service("echo-service", "echo-service", &["--nats-creds", path(&echo_creds)]);
    system.wait_for_subscribers("echo-service", ECHO_CALLS, 1).await;
    let gateway_creds = operator.write_user_creds(dir.path(), "gateway");
    let gateway = system
        .gateway_with_env(
            "gw-creds",
            &["--anonymous-roles", "all"],
            &[("GATEWAY_NATS_CREDS", &gateway_creds)],
        )
        .await;
    let echo = EchoClient::new(gateway.client().await).with_timeout(CALL_TIMEOUT);
    let reply = echo.echo(blob(b"over creds")).await.expect("an echo call");
    assert_eq!(reply.get().data().map(|d| d.bytes()), Some(&b"over creds"[..]));

    let stranger = operator.write_stranger_creds(dir.path(), "stranger");
    let url = system.nats.url();
    let refused = |program: std::path::PathBuf, args: Vec<&str>| {
        let output = std::process::Command::new(program).args(args).output().expect("run it");
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = refused(
        sibling_binary("echo-service"),
        vec!["--nats", &url, "--nats-creds", path(&stranger)],
    );
    assert!(
        stderr.contains("the server refused the user JWT in") && stderr.contains("stranger.creds"),
        "{stderr}"
    );
    let stderr = refused(
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_gateway")),
        vec![
            "--nats",
            &url,
            "--nats-creds",
            path(&stranger),
            "--anonymous-roles",
            "all",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    assert!(
        stderr.contains("the server refused the user JWT in") && stderr.contains("stranger.creds"),
        "{stderr}"
    );
}

fn path(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_spread_over_two_instances_of_a_service() {
    let system = System::start();
    let _instances = [
        system.service("echo-service", "echo-service-1", &[]),
        system.service("echo-service", "echo-service-2", &[]),
    ];
    system.wait_for_subscribers("echo-service", ECHO_CALLS, 2).await;
    let gateway = system.gateway("gw-1").await;
    let echo = EchoClient::new(gateway.client().await).with_timeout(CALL_TIMEOUT);

    let before = system.messages_delivered("echo-service");
    let mut calls = JoinSet::new();
    for i in 0..200u32 {
        let echo = echo.clone();
        calls.spawn(async move {
            let payload = i.to_le_bytes();
            let reply = echo.echo(blob(&payload)).await.expect("an echo call");
            assert_eq!(reply.get().data().map(|d| d.bytes()), Some(&payload[..]));
        });
    }
    while let Some(done) = calls.join_next().await {
        done.expect("a call task");
    }
    let after = system.messages_delivered("echo-service");
    assert_eq!(before.len(), 2);
    assert_eq!(after.len(), 2);
    let served: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    // Every call went to exactly one instance (a queue group), and both took their share:
    // nats-server picks a member at random, so fewer than 20 of 200 would be a 1-in-10^30 event.
    assert_eq!(served.iter().sum::<u64>(), 200, "calls delivered per instance: {served:?}");
    assert!(served.iter().all(|&n| n >= 20), "calls delivered per instance: {served:?}");
}

/// The gateway learns that an instance died from the running notices and pings of docs/bus.md
/// ("Running notices and stopped instances"): a call the instance confirmed fails on the next
/// ping (every 250 ms), one it received but had not confirmed yet 500 ms after it was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_instance_under_load_fails_only_its_calls_in_flight_and_promptly() {
    const LOOPS: usize = 8;
    let system = System::start();
    let mut doomed = system.service("echo-service", "echo-service-1", &["--delay", "100ms"]);
    let _survivor = system.service("echo-service", "echo-service-2", &["--delay", "100ms"]);
    system.wait_for_subscribers("echo-service", ECHO_CALLS, 2).await;
    let gateway = system.gateway("gw-1").await;
    let echo = EchoClient::new(gateway.client().await).with_timeout(CALL_TIMEOUT);

    let load = Load::start(&echo, LOOPS, Duration::ZERO);
    load.wait_for_successes(2 * LOOPS).await;
    let killed = Instant::now();
    doomed.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = load.stop().await;

    let failures: Vec<&CallRecord> = calls.iter().filter(|c| c.result.is_err()).collect();
    for failure in &failures {
        let status = failure.result.as_ref().unwrap_err();
        assert!(
            status.code() == Code::Unavailable && status.retryable(),
            "a call failed with {status} ({:?}, retryable: {}) after {:?}; only a retryable \
             `unavailable` is expected",
            status.code(),
            status.retryable(),
            failure.took(),
        );
        // Only the calls the instance had: those sent before it died (a call sent in the
        // moment nats-server takes to notice the closed socket may still go to it).
        assert!(
            failure.started < killed + Duration::from_millis(100),
            "a call sent {:?} after the kill failed: {status}",
            failure.started - killed,
        );
        // Promptly: noticed by the gateway within about half a second, not by the call's
        // deadline running out.
        assert!(
            failure.ended < killed + Duration::from_millis(1_500),
            "a call in flight on the killed instance failed {:?} after the kill: {status}",
            failure.ended - killed,
        );
    }
    assert!(
        failures.len() <= LOOPS,
        "{} calls failed, more than the {LOOPS} that could be in flight",
        failures.len()
    );
    let settled = failures.iter().map(|c| c.ended).max().unwrap_or(killed).max(killed);
    let later: Vec<&CallRecord> = calls.iter().filter(|c| c.started > settled).collect();
    assert!(later.iter().all(|c| c.result.is_ok()), "a call after the failures failed");
    assert!(later.len() >= LOOPS, "the survivor served {} calls after the kill", later.len());
    eprintln!(
        "{} calls, {} failed (at most {:?} after the kill), {} after the failures all served",
        calls.len(),
        failures.len(),
        failures.iter().map(|c| c.ended - killed).max().unwrap_or_default(),
        later.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roughtime_service_answers_over_nats_with_the_key_from_its_file() {
    let system = System::start();
    let key_file = system.logs.path().join("roughtime.key");
    let seed = [42u8; 32];
    std::fs::write(&key_file, base64::engine::general_purpose::STANDARD.encode(seed))
        .expect("key file written");
    let key_file = key_file.display().to_string();
    let _service = system.service("roughtime-service", "roughtime-service", &["--key", &key_file]);
    let gateway = system.gateway("gw-1").await;
    system.wait_for_subscribers("roughtime-service", ROUGHTIME_CALLS, 1).await;

    let time = RoughtimeClient::new(gateway.client().await);
    let public = roughtime::keys::LongTermKey::from_seed(&seed).public();
    let served = time.public_key(EmptyT {}).await.expect("public_key over NATS");
    assert_eq!(served.get().unpack().key, public.to_vec(), "the key from the file");
    // Calls at once share a signature in the service; every answer verifies against the key.
    let calls = (0..16u8).map(|i| {
        let time = time.clone();
        async move {
            let nonce = [i; 32];
            let reply = time.time(TimeRequestT { nonce: nonce.to_vec(), draft: false }).await;
            (nonce, reply.expect("time over NATS").get().unpack())
        }
    });
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    for (nonce, reply) in futures::future::join_all(calls).await {
        let verified = roughtime::verify::verify(&reply.request, &reply.response, &public)
            .expect("the answer verifies");
        let request =
            Message::parse(unframe(&reply.request).expect("a packet")).expect("a message");
        assert_eq!(request.get(Tag::NONC), Some(&nonce[..]), "the request carries our nonce");
        assert!(verified.midp.abs_diff(now) < 60, "midp {} is not now ({now})", verified.midp);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_gateway_holds_one_nats_subscription_per_topic_however_many_clients_subscribe() {
    const CLIENTS: usize = 20;
    let system = System::start();
    let gateways = [system.gateway("gw-1").await, system.gateway("gw-2").await];
    let mut subscribers = Vec::new();
    for gateway in &gateways {
        for _ in 0..CLIENTS {
            let echo = EchoClient::new(gateway.client().await);
            let events = echo.subscribe_broadcast().await.expect("subscribed");
            subscribers.push((echo, events));
        }
    }
    for gateway in &gateways {
        system.wait_for_subscribers(&gateway.name, BROADCAST, 1).await;
        let held = system.subscriptions(&gateway.name, BROADCAST);
        assert_eq!(held, [1], "{}'s subscriptions to {BROADCAST}, {CLIENTS} clients", gateway.name);
    }
    // And those two subscriptions carry an event to all 40 clients.
    subscribers[0].0.publish_broadcast(blob(b"to all")).await.expect("published");
    for (_, events) in &mut subscribers {
        let event = next(events).await;
        assert_eq!(event.message().get().data().map(|d| d.bytes()), Some(&b"to all"[..]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_nats_fails_calls_promptly_and_service_resumes_after_its_restart() {
    const LOOPS: usize = 4;
    let mut system = System::start();
    let _service = system.service("echo-service", "echo-service", &[]);
    system.wait_for_subscribers("echo-service", ECHO_CALLS, 1).await;
    let mut gateway = system.gateway("gw-1").await;
    let echo = EchoClient::new(gateway.client().await).with_timeout(CALL_TIMEOUT);
    let watcher = EchoClient::new(gateway.client().await);
    let mut events = watcher.subscribe_broadcast().await.expect("subscribed");
    system.wait_for_subscribers("gw-1", BROADCAST, 1).await;
    echo.publish_broadcast(blob(b"before")).await.expect("published before the kill");
    assert_eq!(payload(&next(&mut events).await), b"before");

    // A failed call is retried after 10 ms, as a client would, so the loops do not spin.
    let load = Load::start(&echo, LOOPS, Duration::from_millis(10));
    load.wait_for_successes(10 * LOOPS).await;
    let killing = Instant::now();
    system.nats.kill();
    let killed = Instant::now();
    load.wait_for_failures(LOOPS).await;
    // Down long enough for the gateway's reconnect attempts to back off.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(gateway.process.child.is_running(), "the gateway exited when NATS went away");
    assert_eq!(gateway.readiness(), 503, "ready without its bus");
    system.nats.restart();
    let restarted = Instant::now();
    let resumed = load.wait_for_success_after(restarted).await;
    let calls = load.stop().await;

    for call in &calls {
        if let Err(status) = &call.result {
            assert!(
                status.code() == Code::Unavailable && status.retryable(),
                "a call failed with {status} ({:?}); only a retryable `unavailable` is expected",
                status.code(),
            );
            assert!(
                call.took() < Duration::from_secs(1),
                "a call took {:?}: {status}",
                call.took()
            );
        }
    }
    let down: Vec<&CallRecord> =
        calls.iter().filter(|c| c.started > killed && c.ended < restarted).collect();
    assert!(down.len() >= LOOPS, "{} calls while NATS was down", down.len());
    assert!(down.iter().all(|c| c.result.is_err()), "a call succeeded without NATS");
    assert!(calls.iter().filter(|c| c.ended < killing).all(|c| c.result.is_ok()));
    assert!(
        resumed - restarted < Duration::from_secs(5),
        "resumed {:?} after the restart",
        resumed - restarted
    );
    assert!(gateway.process.child.is_running());
    assert_eq!(gateway.readiness(), 200, "ready again with its bus back");

    // The topic subscription made before the outage still delivers, on the same client
    // connection: the gateway restored its NATS subscription by itself.
    echo.publish_broadcast(blob(b"after")).await.expect("published after the restart");
    let event = next(&mut events).await;
    assert_eq!(payload(&event), b"after");
    assert!(!event.resumed(), "the client's connection to the gateway stayed up");
    assert_eq!(gateway.metric("gateway_connections_total"), 2.0, "no client reconnected");
    eprintln!(
        "{} calls; {} failed while NATS was down, the slowest in {:?}; calls served again {:?} \
         after its restart",
        calls.len(),
        down.len(),
        calls.iter().filter(|c| c.result.is_err()).map(CallRecord::took).max().unwrap_or_default(),
        resumed - restarted,
    );
}

/// One call of a [`Load`].
#[derive(Debug)]
struct CallRecord {
    started: Instant,
    ended: Instant,
    result: Result<(), Status>,
}

impl CallRecord {
    fn took(&self) -> Duration {
        self.ended - self.started
    }
}

/// Loops calling `echo` one call after another, each loop recording its calls, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    loops: JoinSet<Vec<CallRecord>>,
    /// Every loop's calls so far, for waiting on them.
    seen: Arc<std::sync::Mutex<Vec<(Instant, bool)>>>,
}

impl Load {
    /// `pause`: how long a loop waits after a failed call before the next.
    fn start(echo: &EchoClient<Client>, loops: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut set = JoinSet::new();
        for n in 0..loops {
            let (echo, stop, seen) = (echo.clone(), stop.clone(), seen.clone());
            set.spawn(async move {
                let mut calls = Vec::new();
                let payload = (n as u32).to_le_bytes();
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let result = echo.echo(blob(&payload)).await.map(|reply| {
                        assert_eq!(reply.get().data().map(|d| d.bytes()), Some(&payload[..]));
                    });
                    let ended = Instant::now();
                    let ok = result.is_ok();
                    seen.lock().unwrap().push((ended, ok));
                    calls.push(CallRecord { started, ended, result });
                    if !ok {
                        tokio::time::sleep(pause).await;
                    }
                }
                calls
            });
        }
        Load { stop, loops: set, seen }
    }

    async fn wait_for_successes(&self, n: usize) {
        eventually(&format!("{n} successful calls"), || {
            (self.seen.lock().unwrap().iter().filter(|(_, ok)| *ok).count() >= n).then_some(())
        })
        .await;
    }

    async fn wait_for_failures(&self, n: usize) {
        eventually(&format!("{n} failed calls"), || {
            (self.seen.lock().unwrap().iter().filter(|(_, ok)| !*ok).count() >= n).then_some(())
        })
        .await;
    }

    /// Waits for a call that succeeded after `since`; returns when it ended.
    async fn wait_for_success_after(&self, since: Instant) -> Instant {
        eventually("a successful call", || {
            let seen = self.seen.lock().unwrap();
            seen.iter().find(|(ended, ok)| *ok && *ended > since).map(|(ended, _)| *ended)
        })
        .await
    }

    /// Stops the loops and returns every call they made, in no particular order.
    async fn stop(mut self) -> Vec<CallRecord> {
        self.stop.store(true, Ordering::SeqCst);
        let mut calls = Vec::new();
        let joined = async {
            while let Some(done) = self.loops.join_next().await {
                calls.extend(done.expect("a load loop"));
            }
        };
        tokio::time::timeout(CALL_TIMEOUT + WAIT, joined).await.expect("the load loops ended");
        calls
    }
}

fn blob(data: &[u8]) -> BlobT {
    BlobT { data: Some(data.to_vec()) }
}

fn payload(event: &gateway_core::Event<BlobT>) -> Vec<u8> {
    event.message().get().data().map(|d| d.bytes().to_vec()).unwrap_or_default()
}

/// The next event of a subscription, within [`WAIT`].
async fn next<T, S>(subscription: &mut gateway_core::Subscription<T, S>) -> gateway_core::Event<T>
where
    gateway_core::Subscription<T, S>:
        futures::Stream<Item = Result<gateway_core::Event<T>, Status>> + Unpin,
    T: gateway_core::Table,
{
    tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("an event within the wait")
        .expect("the subscription goes on")
        .expect("an event, not an error")
}
