//! Pub/sub, the client side of generated code: typed stubs publish and subscribe through
//! [`Topics`].
//!
//! A topic is a stream of events, each a FlatBuffers message. A keyed topic
//! (`topic position[device_id: string]: Position`) is a family of streams, one per key; a
//! subscriber takes one key ([`Selector::Key`]) or all of them ([`Selector::AllKeys`], which is
//! also how an unkeyed topic is subscribed to). Keys travel as text: integer keys in decimal.
//!
//! The gateway's network client implements [`Topics`], and so does the bus adapter services use
//! to publish (`gateway_bus::BusTopics`). Generated stubs wrap the untyped [`RawEvent`]s of a
//! subscription into typed [`Event`]s.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use crate::message::Message;
use crate::service::TopicDesc;
use crate::status::Status;
use crate::table::Table;

/// Which events of a topic a subscription receives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// The events of one key of a keyed topic.
    Key(String),
    /// Every event: all keys of a keyed topic, or an unkeyed topic.
    AllKeys,
}

/// One event of a subscription, before decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// The event's key; empty for an unkeyed topic.
    pub key: String,
    /// The event message, FlatBuffers bytes as the publisher sent them (not yet verified).
    pub payload: Bytes,
    /// How many events of this subscription were dropped right before this one because the
    /// subscriber fell behind (the topic's `on_lag: drop_oldest`); 0 normally.
    pub missed: u64,
    /// This is the first event after the subscription was restored on a new connection. Unless
    /// `recovered` is set too, events published while it was down were not received, and how
    /// many is unknown.
    pub resumed: bool,
    /// With `resumed`: the events published while the subscription was down were recovered
    /// from the topic's history, and every one came before this one (`docs/protocol.md`,
    /// "History and recovery"). Only topics with a `history` recover.
    pub recovered: bool,
}

/// Publishes and subscribes to topics.
///
/// A subscription is a stream of `Result<RawEvent, Status>`. An `Err` item ends it (the
/// server refused or ended the subscription, or it could not be restored), and the stream
/// yields `None` after it, except an `Err` with code `data_loss`, which reports events lost and
/// goes on: the events a subscription to a topic with history missed while its connection was
/// down, when they could not be recovered (the application reloads what depends on them), or
/// (typed subscriptions) an event that is not a valid message. Dropping the stream
/// unsubscribes.
pub trait Topics: Send + Sync {
    /// The stream a subscription yields.
    type Subscription: Stream<Item = Result<RawEvent, Status>> + Send + Unpin + 'static;

    /// Publishes `payload` (a `topic.message` table) to `topic`, under `key` for a keyed topic
    /// (empty for an unkeyed one). Resolves once the event is handed to the bus; it says nothing
    /// about who receives it.
    fn publish(
        &self,
        topic: &'static TopicDesc,
        key: &str,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), Status>> + Send;

    /// Subscribes to `topic`. Resolves once the subscription is in place (events published
    /// after that are received), or with the reason it was refused.
    fn subscribe(
        &self,
        topic: &'static TopicDesc,
        selector: Selector,
    ) -> impl Future<Output = Result<Self::Subscription, Status>> + Send;
}

/// One event of a typed subscription.
#[derive(Debug)]
pub struct Event<T: Table> {
    key: String,
    message: Message<T>,
    missed: u64,
    resumed: bool,
    recovered: bool,
}

impl<T: Table> Event<T> {
    /// The event's key; empty for an unkeyed topic.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The event message, verified.
    pub fn message(&self) -> &Message<T> {
        &self.message
    }

    /// Takes the event message.
    pub fn into_message(self) -> Message<T> {
        self.message
    }

    /// How many events were dropped right before this one because the subscriber fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// True for the first event after the subscription was restored on a new connection; unless
    /// [`Event::recovered`], an unknown number of events may have been lost before it.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// With [`Event::resumed`]: the events published while the subscription was down were
    /// recovered from the topic's history and came before this one, none lost.
    pub fn recovered(&self) -> bool {
        self.recovered
    }
}

/// A typed subscription: a stream of `Result<Event<T>, Status>` over a [`Topics`]
/// implementation's raw stream. Dropping it unsubscribes.
///
/// An event whose payload is not a valid `T` is reported as an `Err(data_loss)` item and the
/// stream goes on; any other `Err` item ends the subscription.
pub struct Subscription<T, S> {
    raw: S,
    _message: PhantomData<fn() -> T>,
}

impl<T, S> Subscription<T, S> {
    pub fn new(raw: S) -> Subscription<T, S> {
        Subscription { raw, _message: PhantomData }
    }

    /// The untyped stream underneath.
    pub fn into_raw(self) -> S {
        self.raw
    }
}

impl<T, S> std::fmt::Debug for Subscription<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("message", &std::any::type_name::<T>()).finish()
    }
}

impl<T, S> Stream for Subscription<T, S>
where
    T: Table,
    S: Stream<Item = Result<RawEvent, Status>> + Unpin,
{
    type Item = Result<Event<T>, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let raw = match Pin::new(&mut self.raw).poll_next(cx) {
            Poll::Ready(Some(Ok(raw))) => raw,
            Poll::Ready(Some(Err(status))) => return Poll::Ready(Some(Err(status))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let event = match Message::<T>::from_bytes(raw.payload) {
            Ok(message) => Ok(Event {
                key: raw.key,
                message,
                missed: raw.missed,
                resumed: raw.resumed,
                recovered: raw.recovered,
            }),
            Err(e) => Err(Status::data_loss(format!(
                "an event with key `{}` is not a valid {}: {e}",
                raw.key,
                std::any::type_name::<T>()
            ))),
        };
        Poll::Ready(Some(event))
    }
}
