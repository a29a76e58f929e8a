//! Topic history over NATS, as processes: a real nats-server with JetStream, `gateway --nats`
//! processes, and typed clients over TCP (`docs/protocol.md`, "History and recovery";
//! `docs/bus.md`, "Topic history"). Echo's `journal` topic keeps a history: a client recovers
//! what it missed on another gateway than the one it left, after the gateway it used restarted,
//! and gateways publishing at once give every subscriber the same order. A gateway told to keep
//! histories in its memory (`history_store = "memory"`) leaves JetStream alone.
//!
//! The service binaries are not needed: `journal` is published by clients. Readiness is
//! observed, never slept on (`support`).

use echo::{BlobT, EchoClient};
use futures::StreamExt as _;
use gateway_client::{Client, ClientConfig};

mod support;
use support::{System, WAIT, eventually};

/// Where each gateway receives the journal's kept events (docs/bus.md).
const JOURNAL_LIVE: &str = "history.topic.examples.echo.Echo.journal";

/// The journal's own subject, which a gateway keeping histories in its memory follows.
const JOURNAL: &str = "topic.examples.echo.Echo.journal";

fn blob(text: String) -> BlobT {
    BlobT { data: Some(text.into_bytes()) }
}

async fn client_of(endpoints: &[&support::Gateway]) -> Client {
    let config = ClientConfig::new(endpoints.iter().map(|g| g.addr.to_string()));
    tokio::time::timeout(WAIT, Client::connect(config)).await.unwrap().unwrap()
}

/// The next event as a number, with whether it is the first after a restore and recovered.
async fn next<S>(events: &mut gateway_core::Subscription<BlobT, S>) -> (u64, bool, bool)
where
    S: futures::Stream<Item = Result<gateway_core::RawEvent, gateway_core::Status>> + Unpin,
{
    let event = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event in time")
        .expect("the subscription goes on")
        .expect("no error: nothing is lost");
    let text = String::from_utf8(event.message().get().data().unwrap().bytes().to_vec()).unwrap();
    (text.parse().unwrap(), event.resumed(), event.recovered())
}

/// Reads `n` events, which must be `first..first + n` in order; returns how many said
/// `resumed` (each also `recovered`).
async fn read_in_order<S>(
    events: &mut gateway_core::Subscription<BlobT, S>,
    first: u64,
    n: u64,
) -> usize
where
    S: futures::Stream<Item = Result<gateway_core::RawEvent, gateway_core::Status>> + Unpin,
{
    let mut restores = 0;
    for want in first..first + n {
        let (got, resumed, recovered) = next(events).await;
        assert_eq!(got, want, "a gap or a repeat");
        if resumed {
            assert!(recovered, "event {got}: restored without what was missed");
            restores += 1;
        }
    }
    restores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_on_another_gateway_and_after_its_gateway_restarted() {
    let system = System::start();
    let (one, two) = (system.gateway("gw-1").await, system.gateway("gw-2").await);
    system.wait_for_subscribers("gw-1", JOURNAL_LIVE, 1).await;
    system.wait_for_subscribers("gw-2", JOURNAL_LIVE, 1).await;

    // The watcher knows both gateways and starts on gw-1; the writer publishes through gw-2.
    let watcher = EchoClient::new(client_of(&[&one, &two]).await);
    let writer = EchoClient::new(two.client().await);
    let mut journal = watcher.subscribe_journal().await.expect("subscribed through gw-1");
    for n in 0..20 {
        writer.publish_journal(blob(n.to_string())).await.unwrap();
    }
    assert_eq!(read_in_order(&mut journal, 0, 20).await, 0);

    // gw-1 dies; the watcher moves to gw-2 while the writer goes on.
    let mut one = one;
    one.process.kill();
    for n in 20..60 {
        writer.publish_journal(blob(n.to_string())).await.unwrap();
    }
    assert_eq!(read_in_order(&mut journal, 20, 40).await, 1, "one restore, on gw-2");
    assert_eq!(two.metric("gateway_recoveries_total{result=\"recovered\"}"), 1.0);

    // gw-1 comes back on its address; a client of it alone is away while it is down, and
    // recovers from the history JetStream kept, the same epoch, after the restart.
    let one = system.restart(one).await;
    let faithful = EchoClient::new(client_of(&[&one]).await);
    let mut mine = faithful.subscribe_journal().await.unwrap();
    writer.publish_journal(blob("60".into())).await.unwrap();
    assert_eq!(read_in_order(&mut mine, 60, 1).await, 0);
    let one = system.restart(one).await;
    for n in 61..80 {
        writer.publish_journal(blob(n.to_string())).await.unwrap();
    }
    assert_eq!(read_in_order(&mut mine, 61, 19).await, 1, "recovered after the restart");
    eventually("the restarted gateway to count the recovery", || {
        (one.metric("gateway_recoveries_total{result=\"recovered\"}") == 1.0).then_some(())
    })
    .await;
    // The watcher on gw-2 saw every one of them too, without another restore.
    assert_eq!(read_in_order(&mut journal, 60, 20).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_publishing_at_once_give_every_subscriber_the_same_order() {
    let system = System::start();
    let (one, two) = (system.gateway("gw-1").await, system.gateway("gw-2").await);
    system.wait_for_subscribers("gw-1", JOURNAL_LIVE, 1).await;
    system.wait_for_subscribers("gw-2", JOURNAL_LIVE, 1).await;
    let (near, far) = (EchoClient::new(one.client().await), EchoClient::new(two.client().await));
    let mut on_one = near.subscribe_journal().await.unwrap();
    let mut on_two = far.subscribe_journal().await.unwrap();
    let publish = |client: EchoClient<Client>, tag: &'static str| {
        tokio::spawn(async move {
            for n in 0..100 {
                client.publish_journal(blob(format!("{tag}{n}"))).await.unwrap();
            }
        })
    };
    let (a, b) = (publish(near.clone(), "a"), publish(far.clone(), "b"));
    a.await.unwrap();
    b.await.unwrap();
    let mut orders = Vec::new();
    for events in [&mut on_one, &mut on_two] {
        let mut order = Vec::new();
        for _ in 0..200 {
            let event = tokio::time::timeout(WAIT, events.next()).await.unwrap().unwrap().unwrap();
            order.push(
                String::from_utf8(event.message().get().data().unwrap().bytes().to_vec()).unwrap(),
            );
        }
        orders.push(order);
    }
    assert_eq!(orders[0], orders[1], "the stream's order, on both gateways");
    // Each publisher's own events in its order.
    for tag in ["a", "b"] {
        let mine: Vec<&String> = orders[0].iter().filter(|e| e.starts_with(tag)).collect();
        let want: Vec<String> = (0..100).map(|n| format!("{tag}{n}")).collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_keeping_histories_in_its_memory_leaves_jetstream_alone() {
    let system = System::start();
    let args = ["--anonymous-roles", "all", "--history-store", "memory"];
    let gateway = system.gateway_with("gw-memory", &args).await;
    system.wait_for_subscribers("gw-memory", JOURNAL, 1).await;
    assert!(system.subscriptions("gw-memory", JOURNAL_LIVE).iter().all(|&n| n == 0));

    let watcher = EchoClient::new(gateway.client().await);
    let writer = EchoClient::new(gateway.client().await);
    let mut journal = watcher.subscribe_journal().await.unwrap();
    for n in 0..20 {
        writer.publish_journal(blob(n.to_string())).await.unwrap();
    }
    assert_eq!(read_in_order(&mut journal, 0, 20).await, 0);
    // The operator switches' bucket is the one stream (docs/operations.md); no history's.
    let jsz = system.nats.monitor("/jsz?accounts=true&streams=true");
    let streams: Vec<&str> = jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
        .filter_map(|stream| stream["name"].as_str())
        .collect();
    assert!(!streams.is_empty(), "the switches' bucket is listed: {jsz}");
    assert!(streams.iter().all(|name| !name.starts_with("HISTORY_")), "{streams:?}");
    assert_eq!(jsz["messages"], 0, "no event stored: {jsz}");
}
