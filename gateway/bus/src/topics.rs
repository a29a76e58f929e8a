//! [`BusTopics`]: topics straight on the bus, without a gateway in between.
//!
//! This is how a service publishes its topics (and how any program on the bus subscribes to
//! them): give a generated client a `BusTopics` and call its `publish_<topic>` and
//! `subscribe_<topic>` methods. Events go to the subjects `docs/bus.md` names
//! ([`contract::topic_subject`]); gateways subscribed to them relay the events to their clients.
//!
//! ```
//! use std::sync::Arc;
//!
//! use futures::StreamExt;
//! use gateway_bus::{BusTopics, LocalBus};
//! use some_api::{SomeApiClient, TotalT};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let topics = SomeApiClient::new(BusTopics::new(Arc::new(LocalBus::new())));
//! let mut totals = topics.subscribe_pub().await?;
//! topics.publish_pub(TotalT { value: -5, changes: 1 }).await?;
//! let event = totals.next().await.ok_or("the subscription ended")??;
//! assert_eq!(event.message().get().value(), -5);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use gateway_core::{RawEvent, Selector, Status, TopicDesc, Topics};

use crate::{Bus, Headers, contract};

/// Publishes and subscribes to topics on a bus. Cloning gives another handle to the same bus.
///
/// A publication carries no identity header: whoever holds the bus publishes as itself (a gateway
/// adds the identity of the clients it publishes for; see `docs/bus.md`).
#[derive(Clone)]
pub struct BusTopics {
    bus: Arc<dyn Bus>,
}

impl BusTopics {
    pub fn new(bus: Arc<dyn Bus>) -> BusTopics {
        BusTopics { bus }
    }

    /// The bus underneath.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }
}

impl std::fmt::Debug for BusTopics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusTopics").finish_non_exhaustive()
    }
}

impl Topics for BusTopics {
    type Subscription = TopicSubscription;

    /// # Errors
    ///
    /// What the bus refuses, through [`crate::BusError::to_status`]: a payload larger than the
    /// bus carries is `resource_exhausted` (not retryable), a lost connection `unavailable`.
    fn publish(
        &self,
        topic: &'static TopicDesc,
        key: &str,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        let subject = contract::topic_subject(topic, key);
        async move {
            self.bus.publish(&subject, Headers::new(), payload).await.map_err(|e| e.to_status())
        }
    }

    fn subscribe(
        &self,
        topic: &'static TopicDesc,
        selector: Selector,
    ) -> impl Future<Output = Result<TopicSubscription, Status>> + Send {
        let pattern = contract::topic_pattern(topic, &selector);
        async move {
            let messages = self.bus.subscribe(&pattern, None).await.map_err(|e| e.to_status())?;
            Ok(TopicSubscription { topic, messages })
        }
    }
}

/// The events of one [`BusTopics`] subscription, with their keys. Dropping it unsubscribes.
///
/// It never yields an `Err`: the bus does not end subscriptions with a reason. It ends (`None`)
/// when the bus closes the subscription. Events the bus dropped because this subscription fell
/// behind are not counted in [`RawEvent::missed`] (the bus does not say which were dropped).
#[derive(Debug)]
pub struct TopicSubscription {
    topic: &'static TopicDesc,
    messages: crate::Subscription,
}

impl Stream for TopicSubscription {
    type Item = Result<RawEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let message = match Pin::new(&mut self.messages).poll_next(cx) {
                Poll::Ready(Some(message)) => message,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            // Anyone on the bus can publish to a subject that matches the pattern but is not a
            // valid key token (`topic.x.a%zz`); such a message is no event of the topic.
            let Some(key) = contract::key_from_subject(self.topic, &message.subject) else {
                tracing::debug!(
                    topic = self.topic.name,
                    subject = %message.subject,
                    "skipping a message whose subject names no key of the topic"
                );
                continue;
            };
            let payload = message.payload;
            let event = RawEvent { key, payload, missed: 0, resumed: false, recovered: false };
            return Poll::Ready(Some(Ok(event)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gateway_core::{Code, LagPolicy};
    use tokio::time::timeout;

    use super::*;
    use crate::LocalBus;

    static KEYED: TopicDesc = TopicDesc {
        id: 1,
        name: "ns.Tracker.position",
        message: "ns.Position",
        key: Some("device_id"),
        on_lag: LagPolicy::KeepLatest,
        retain: false,
        client_publish: false,
        history: None,
    };
    static PLAIN: TopicDesc = TopicDesc { key: None, name: "ns.Tracker.alerts", ..KEYED };

    fn topics() -> (Arc<LocalBus>, BusTopics) {
        let bus = Arc::new(LocalBus::new());
        (bus.clone(), BusTopics::new(bus))
    }

    /// The next event, waiting at most a second.
    async fn next(subscription: &mut TopicSubscription) -> RawEvent {
        let item = timeout(Duration::from_secs(1), futures::StreamExt::next(subscription)).await;
        item.expect("an event within a second").expect("the stream goes on").expect("no error")
    }

    /// Asserts nothing more is queued for `subscription` (LocalBus delivers synchronously, so
    /// whatever was published before is already queued).
    fn assert_empty(subscription: &mut TopicSubscription) {
        let waker = std::task::Waker::noop();
        let polled = Pin::new(subscription).poll_next(&mut Context::from_waker(waker));
        assert!(polled.is_pending(), "unexpected item {polled:?}");
    }

    fn payload(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[tokio::test]
    async fn a_key_subscription_gets_its_key_only_and_all_keys_gets_every_key() {
        let (_, topics) = topics();
        let mut one = topics.subscribe(&KEYED, Selector::Key("dev-7".into())).await.unwrap();
        let mut all = topics.subscribe(&KEYED, Selector::AllKeys).await.unwrap();
        topics.publish(&KEYED, "dev-8", payload("eight")).await.unwrap();
        topics.publish(&KEYED, "dev-7", payload("seven")).await.unwrap();

        let event = next(&mut one).await;
        assert_eq!((event.key.as_str(), &event.payload[..]), ("dev-7", &b"seven"[..]));
        assert_eq!((event.missed, event.resumed), (0, false));
        assert_empty(&mut one);

        let keys = [next(&mut all).await.key, next(&mut all).await.key];
        assert_eq!(keys, ["dev-8", "dev-7"]);
        assert_empty(&mut all);
    }

    #[tokio::test]
    async fn an_unkeyed_topic_has_empty_keys_and_ignores_the_key_given() {
        let (bus, topics) = topics();
        let mut all = topics.subscribe(&PLAIN, Selector::AllKeys).await.unwrap();
        assert_eq!(bus.subscriptions("topic.ns.Tracker.alerts"), 1);
        topics.publish(&PLAIN, "ignored", payload("fire")).await.unwrap();
        let event = next(&mut all).await;
        assert_eq!((event.key.as_str(), &event.payload[..]), ("", &b"fire"[..]));
    }

    #[tokio::test]
    async fn keys_with_dots_spaces_and_unicode_round_trip() {
        let (_, topics) = topics();
        let keys = ["a.b", "x y", "ünï", "", "%41", "*", ">", "dev/7"];
        let mut subscriptions = Vec::new();
        for key in keys {
            subscriptions.push(topics.subscribe(&KEYED, Selector::Key(key.into())).await.unwrap());
        }
        let mut all = topics.subscribe(&KEYED, Selector::AllKeys).await.unwrap();
        for key in keys {
            topics.publish(&KEYED, key, Bytes::from(key.as_bytes().to_vec())).await.unwrap();
        }
        for (key, subscription) in keys.iter().zip(&mut subscriptions) {
            let event = next(subscription).await;
            assert_eq!(event.key, *key);
            assert_eq!(event.payload, key.as_bytes());
            assert_empty(subscription);
        }
        for key in keys {
            assert_eq!(next(&mut all).await.key, key);
        }
    }

    #[tokio::test]
    async fn a_message_on_a_subject_that_names_no_key_is_skipped() {
        let (bus, topics) = topics();
        let mut all = topics.subscribe(&KEYED, Selector::AllKeys).await.unwrap();
        // `%4` is not a key token; someone published it raw on the bus.
        bus.publish("topic.ns.Tracker.position.%4", Headers::new(), payload("odd")).await.unwrap();
        topics.publish(&KEYED, "dev-1", payload("fine")).await.unwrap();
        let event = next(&mut all).await;
        assert_eq!((event.key.as_str(), &event.payload[..]), ("dev-1", &b"fine"[..]));
    }

    #[tokio::test]
    async fn dropping_the_stream_unsubscribes() {
        let (bus, topics) = topics();
        let pattern = "topic.ns.Tracker.position.*";
        let first = topics.subscribe(&KEYED, Selector::AllKeys).await.unwrap();
        let second = topics.subscribe(&KEYED, Selector::AllKeys).await.unwrap();
        assert_eq!(bus.subscriptions(pattern), 2);
        drop(first);
        assert_eq!(bus.subscriptions(pattern), 1);
        drop(second);
        assert_eq!(bus.subscriptions(pattern), 0);
    }

    #[tokio::test]
    async fn bus_errors_become_statuses() {
        let bus = Arc::new(LocalBus::with_options(crate::LocalBusOptions {
            max_payload: 4,
            ..Default::default()
        }));
        let topics = BusTopics::new(bus);
        let status = topics.publish(&PLAIN, "", payload("too large")).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(!status.retryable(), "{status}");
    }
}
