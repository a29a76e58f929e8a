//! The typed topic methods generated from `golden/service.service`, end to end in memory: a
//! generated client over `gateway_bus::BusTopics` on a `LocalBus` publishes typed messages and
//! subscribes to typed events, for string, integer and no keys.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gateway_bus::{Bus, BusTopics, Headers, LocalBus};
use gateway_core::bytes::Bytes;
use gateway_core::{Code, Event, Status, Table};

mod service {
    include!("golden/service.rs");
}

use service::shop::audit::EntryT;
use service::shop::shop::ShopClient;
use service::shop::{EmptyT, StockT};

fn client() -> (Arc<LocalBus>, ShopClient<BusTopics>) {
    let bus = Arc::new(LocalBus::new());
    (bus.clone(), ShopClient::new(BusTopics::new(bus)))
}

fn stock(item: &str, level: i32) -> StockT {
    StockT { item: item.into(), level }
}

/// The next item of a stream, waiting at most a second.
async fn next<S: futures::Stream + Unpin>(stream: &mut S) -> S::Item {
    let item = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
    item.expect("an item within a second").expect("the stream goes on")
}

/// The next event, which must be one.
async fn event<T: Table, S>(stream: &mut S) -> Event<T>
where
    S: futures::Stream<Item = Result<Event<T>, Status>> + Unpin,
{
    next(stream).await.expect("an event, not an error")
}

/// Asserts nothing more is queued (LocalBus delivers while publishing, so whatever was
/// published is already queued).
fn assert_nothing_queued<S: futures::Stream + Unpin>(stream: &mut S)
where
    S::Item: std::fmt::Debug,
{
    let polled =
        stream.poll_next_unpin(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    assert!(polled.is_pending(), "unexpected item {polled:?}");
}

#[tokio::test]
async fn a_string_keyed_topic_delivers_typed_events_per_key_and_for_all_keys() {
    let (_, client) = client();
    let mut pens = client.subscribe_stock("pen").await.unwrap();
    let mut all = client.subscribe_stock_all().await.unwrap();
    client.publish_stock("ink", stock("ink", 3)).await.unwrap();
    client.publish_stock("pen", &stock("pen", 12)).await.unwrap();

    let pen = event(&mut pens).await;
    assert_eq!(pen.key(), "pen");
    assert_eq!(pen.message().unpack(), stock("pen", 12));
    assert_eq!((pen.missed(), pen.resumed()), (0, false));
    assert_nothing_queued(&mut pens);

    let first = event(&mut all).await;
    assert_eq!((first.key(), first.message().get().level()), ("ink", 3));
    let second = event(&mut all).await;
    assert_eq!(second.key(), "pen");
    assert_eq!(second.into_message().unpack(), stock("pen", 12));
    assert_nothing_queued(&mut all);
}

#[tokio::test]
async fn integer_keys_travel_in_decimal() {
    let (bus, client) = client();
    // What other programs on the bus see: the key's decimal text as the subject's last token.
    let mut shelf_7 = bus.subscribe("topic.shop.Shop.pub.7", None).await.unwrap();
    let mut note_minus_3 = bus.subscribe("topic.shop.Shop.notes.-3", None).await.unwrap();
    let mut shelves = client.subscribe_pub(65535).await.unwrap();
    let mut notes = client.subscribe_notes_all().await.unwrap();

    client.publish_pub(7, stock("pen", 1)).await.unwrap();
    client.publish_pub(u16::MAX, stock("ink", 2)).await.unwrap();
    client.publish_notes(-3, EntryT { text: Some("low".into()) }).await.unwrap();

    assert_eq!(next(&mut shelf_7).await.subject, "topic.shop.Shop.pub.7");
    let shelf = event(&mut shelves).await;
    assert_eq!((shelf.key(), shelf.message().get().item()), ("65535", "ink"));
    assert_nothing_queued(&mut shelves);
    assert_eq!(next(&mut note_minus_3).await.subject, "topic.shop.Shop.notes.-3");
    let note = event(&mut notes).await;
    assert_eq!((note.key(), note.message().get().text()), ("-3", Some("low")));
}

#[tokio::test]
async fn an_unkeyed_topic_has_one_stream_with_empty_keys() {
    let (bus, client) = client();
    let mut news = client.subscribe_news().await.unwrap();
    assert_eq!(bus.subscriptions("topic.shop.Shop.news"), 1);
    client.publish_news(EntryT { text: Some("open".into()) }).await.unwrap();
    let event = event(&mut news).await;
    assert_eq!((event.key(), event.message().get().text()), ("", Some("open")));
    drop(news);
    assert_eq!(bus.subscriptions("topic.shop.Shop.news"), 0);
}

#[tokio::test]
async fn a_keyword_key_is_an_ordinary_parameter() {
    let (_, client) = client();
    let mut tags = client.subscribe_tags("a.b c").await.unwrap();
    client.publish_tags("a.b c", EmptyT::default()).await.unwrap();
    assert_eq!(event(&mut tags).await.key(), "a.b c");
}

#[tokio::test]
async fn an_undecodable_event_is_a_data_loss_item_and_the_stream_goes_on() {
    let (bus, client) = client();
    let mut all = client.subscribe_stock_all().await.unwrap();
    let garbage = Bytes::from_static(&[0xff; 3]);
    bus.publish("topic.shop.Shop.stock.pen", Headers::new(), garbage).await.unwrap();
    client.publish_stock("pen", stock("pen", 5)).await.unwrap();

    let status = next(&mut all).await.expect_err("the garbage is reported");
    assert_eq!(status.code(), Code::DataLoss);
    assert!(status.message().contains("`pen`"), "{status}");
    let event = event(&mut all).await;
    assert_eq!(event.message().get().level(), 5);
}
