//! The `pub` topic carries the running total: a `Calculator` made with `with_topics` publishes
//! the new total after each `sub`, and a subscriber on the same bus sees it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gateway_bus::{BusTopics, LocalBus, TopicSubscription};
use gateway_core::{LocalTransport, Subscription};
use some_api::{Calculator, RequestSubT, RequestSumT, SomeApiClient, SomeApiServer, TotalT};

/// The next total published, waiting at most a second.
async fn next_total(totals: &mut Subscription<TotalT, TopicSubscription>) -> TotalT {
    let item = tokio::time::timeout(Duration::from_secs(1), totals.next()).await;
    let event = item.expect("a total within a second").expect("the stream goes on");
    let event = event.expect("an event, not an error");
    assert_eq!(event.key(), "", "`pub` has no key");
    event.message().unpack()
}

#[tokio::test]
async fn each_sub_publishes_the_new_total_and_sum_publishes_nothing() {
    let bus = Arc::new(LocalBus::new());
    let calculator = Calculator::with_topics(BusTopics::new(bus.clone()));
    let client = SomeApiClient::new(LocalTransport::new(Arc::new(SomeApiServer::new(calculator))));
    let watcher = SomeApiClient::new(BusTopics::new(bus.clone()));
    let mut totals = watcher.subscribe_pub().await.unwrap();

    client.sub(RequestSubT { amount: 5 }).await.unwrap();
    assert_eq!(next_total(&mut totals).await, TotalT { value: -5, changes: 1 });
    client.sub(RequestSubT { amount: -7 }).await.unwrap();
    assert_eq!(next_total(&mut totals).await, TotalT { value: 2, changes: 2 });

    // `sum` answers only after it ran, so anything it published would be queued by now.
    let published = bus.stats().published;
    client.sum(RequestSumT { a: 1, b: 2 }).await.unwrap();
    assert_eq!(bus.stats().published, published);
}
