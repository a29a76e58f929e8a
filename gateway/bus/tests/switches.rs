//! `NatsSwitches` against a real nats-server with JetStream: two stores (two gateways) on one
//! server see each other's changes, new stores load what is there, malformed values written
//! straight into the bucket are ignored, and the watch survives a server restart.

use std::time::Duration;

use async_nats::jetstream;
use gateway_bus::switches::{BUCKET, NatsSwitches, ServiceSwitches, Snapshot, SwitchStore};
use gateway_testkit::NatsServer;
use tokio::sync::watch;

/// Every wait is bounded by this: generous, since a reconnection after a restart takes a few
/// seconds.
const WAIT: Duration = Duration::from_secs(20);

const SOME_API: &str = "examples.some_api.SomeApi";
const ECHO: &str = "examples.echo.Echo";

async fn store(nats: &NatsServer) -> NatsSwitches {
    let client = async_nats::connect(nats.url()).await.expect("connect to nats-server");
    NatsSwitches::new(client).await.expect("the switch store opens")
}

/// Waits (bounded) until `snapshot` satisfies `ok`.
async fn wait_for(
    snapshot: &mut watch::Receiver<Snapshot>,
    what: &str,
    ok: impl FnMut(&Snapshot) -> bool,
) {
    let reached = tokio::time::timeout(WAIT, snapshot.wait_for(ok)).await.map(|r| r.is_ok());
    match reached {
        Ok(true) => {}
        Ok(false) => panic!("the store stopped while waiting for {what}"),
        Err(_) => panic!("no {what} within {WAIT:?}; the snapshot is {:?}", snapshot.borrow()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_set_through_one_store_applies_in_the_other() {
    let nats = NatsServer::start();
    let (a, b) = (store(&nats).await, store(&nats).await);
    let mut seen_by_b = b.follow();
    assert!(seen_by_b.borrow().is_empty());

    a.set(SOME_API, ServiceSwitches::disabled("migrating the database")).await.unwrap();
    // `set` returns once the change is in the store's own snapshot.
    assert_eq!(a.follow().borrow()[SOME_API], ServiceSwitches::disabled("migrating the database"));
    wait_for(&mut seen_by_b, "the disabled switch reaching b", |s| {
        s.get(SOME_API) == Some(&ServiceSwitches::disabled("migrating the database"))
    })
    .await;

    b.set(ECHO, ServiceSwitches::read_only(Some("reindexing".into()))).await.unwrap();
    let mut seen_by_a = a.follow();
    wait_for(&mut seen_by_a, "the read-only switch reaching a", |s| {
        s.get(ECHO).is_some_and(|e| e.read_only) && s.contains_key(SOME_API)
    })
    .await;

    // A store opened now loads the switches already set.
    let late = store(&nats).await;
    assert_eq!(late.follow().borrow().len(), 2, "{:?}", late.follow().borrow());

    a.clear(SOME_API).await.unwrap();
    assert!(!a.follow().borrow().contains_key(SOME_API));
    wait_for(&mut seen_by_b, "the clear reaching b", |s| !s.contains_key(SOME_API)).await;
    // Normal switches clear too.
    b.set(ECHO, ServiceSwitches::default()).await.unwrap();
    wait_for(&mut seen_by_a, "everything normal again", |s| s.is_empty()).await;

    // The bucket holds the documented JSON under the service's name, or nothing once cleared.
    let kv = jetstream::new(async_nats::connect(nats.url()).await.unwrap())
        .get_key_value(BUCKET)
        .await
        .unwrap();
    late.set(ECHO, ServiceSwitches::disabled("x")).await.unwrap();
    let value = kv.get(ECHO).await.unwrap().expect("a value for the service");
    assert_eq!(&value[..], br#"{"disabled":"x","read_only":false}"#);
    assert_eq!(kv.get(SOME_API).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_values_in_the_bucket_are_ignored() {
    let nats = NatsServer::start();
    let gateway = store(&nats).await;
    let mut snapshot = gateway.follow();
    gateway.set(SOME_API, ServiceSwitches::disabled("maintenance")).await.unwrap();

    // An operator writing the bucket by hand, with mistakes.
    let kv = jetstream::new(async_nats::connect(nats.url()).await.unwrap())
        .get_key_value(BUCKET)
        .await
        .unwrap();
    kv.put(SOME_API, "{\"disabled\": ".into()).await.unwrap();
    kv.put(ECHO, r#"{"read_only":"yes"}"#.into()).await.unwrap();
    kv.put("examples.Other", r#"{"disabled":""}"#.into()).await.unwrap();
    // Then a valid value, the way `nats kv put` writes one: once it shows, the bad ones before it
    // have been seen (the watch delivers in order).
    kv.put("examples.Last", r#"{"read_only":true}"#.into()).await.unwrap();
    wait_for(&mut snapshot, "the valid value after the bad ones", |s| {
        s.contains_key("examples.Last")
    })
    .await;
    let now = snapshot.borrow().clone();
    assert_eq!(now.get(SOME_API), Some(&ServiceSwitches::disabled("maintenance")), "kept");
    assert!(!now.contains_key(ECHO), "garbage never applies");
    assert!(!now.contains_key("examples.Other"), "an invalid value never applies");
    assert_eq!(now.len(), 2, "{now:?}");

    // A store started on a bucket holding garbage loads the rest.
    let late = store(&nats).await;
    assert_eq!(*late.follow().borrow().clone(), *now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_survives_a_nats_server_restart() {
    let mut nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let a = NatsSwitches::new(client.clone()).await.unwrap();
    let b = store(&nats).await;
    a.set(SOME_API, ServiceSwitches::disabled("before the restart")).await.unwrap();
    let mut seen_by_b = b.follow();
    wait_for(&mut seen_by_b, "the first switch", |s| s.contains_key(SOME_API)).await;

    nats.kill();
    let down = async {
        while client.connection_state() == async_nats::connection::State::Connected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, down).await.expect("the client sees the server go");
    // While NATS is down the last switches stay in force, and a change fails at once, with
    // nothing left in the client's buffer to be stored later. (Regression: such a put used to
    // wait in async-nats's buffer, fail after its ack timeout, and be stored after the
    // reconnection anyway; found by probing the 503 path. The check on ECHO below catches it.)
    let err = a.set(ECHO, ServiceSwitches::disabled("while down")).await.unwrap_err();
    assert!(err.to_string().contains("nothing was changed for `examples.echo.Echo`"), "{err}");
    assert!(b.follow().borrow().contains_key(SOME_API));

    nats.restart();
    // The clients reconnect on their own; retry until a's connection is back.
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Err(e) = a.set(SOME_API, ServiceSwitches::read_only(None)).await {
        assert!(tokio::time::Instant::now() < deadline, "no set succeeded after the restart: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(&mut seen_by_b, "a switch set after the restart reaching b", |s| {
        s.get(SOME_API) == Some(&ServiceSwitches::read_only(None))
    })
    .await;
    // The watch delivers in order: the refused change would have come before this one.
    assert!(!seen_by_b.borrow().contains_key(ECHO), "{:?}", seen_by_b.borrow());
    b.set(ECHO, ServiceSwitches::disabled("after the restart")).await.unwrap();
    let mut seen_by_a = a.follow();
    wait_for(&mut seen_by_a, "b's switch reaching a", |s| s.contains_key(ECHO)).await;
    a.clear(SOME_API).await.unwrap();
    wait_for(&mut seen_by_b, "a clear after the restart", |s| !s.contains_key(SOME_API)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_and_values_are_refused_before_reaching_nats() {
    let nats = NatsServer::start();
    let gateway = store(&nats).await;
    let err = gateway.set("a b", ServiceSwitches::disabled("x")).await.unwrap_err();
    assert!(err.to_string().contains("`a b` cannot name a switch"), "{err}");
    let err = gateway.set(SOME_API, ServiceSwitches::disabled(" ")).await.unwrap_err();
    assert!(err.to_string().contains("`disabled` needs a reason"), "{err}");
    assert!(gateway.follow().borrow().is_empty());
}
