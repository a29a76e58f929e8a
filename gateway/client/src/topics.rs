//! Pub/sub from the caller's side: [`Topics`] for [`Client`], and [`RawSubscription`], the
//! stream of one subscription's events.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use gateway_core::{RawEvent, Selector, Status, TopicDesc, Topics};
use tokio::sync::{mpsc, oneshot};

use crate::call::{far_deadline, payload};
use crate::client::Client;
use crate::command::{Answer, Command, Control, Handle, Outcome, Outgoing};
use crate::feed::Feed;
use crate::registry::Registry;

impl Topics for Client {
    type Subscription = RawSubscription;

    /// Sends PUBLISH with a request id and waits for the gateway's answer (an empty RESPONSE
    /// once the event is on the bus, or ERROR), within [`ClientConfig::default_timeout`].
    /// Failures are those of a call; one lost with its connection is not retryable, since the
    /// event may have been published.
    ///
    /// [`ClientConfig::default_timeout`]: crate::ClientConfig::default_timeout
    async fn publish(
        &self,
        topic: &'static TopicDesc,
        key: &str,
        event: Bytes,
    ) -> Result<(), Status> {
        let timeout = self.inner.config.default_timeout;
        let what = Outgoing::Publish { topic, key: key.to_owned() };
        let answer = self.exchange(what, event, timeout, false).await?;
        payload(answer, topic.name).map(drop)
    }

    /// Sends SUBSCRIBE and resolves on SUBSCRIBED with the stream of events, or with the
    /// status of SUBSCRIPTION_ENDED. Waits for a connection like a call does, and for the
    /// answer, within [`ClientConfig::default_timeout`] (`unavailable` / `deadline_exceeded`).
    ///
    /// [`ClientConfig::default_timeout`]: crate::ClientConfig::default_timeout
    async fn subscribe(
        &self,
        topic: &'static TopicDesc,
        selector: Selector,
    ) -> Result<RawSubscription, Status> {
        let inner = &self.inner;
        let timeout = inner.config.default_timeout;
        let deadline = far_deadline(timeout);
        let key = inner.registry.next_key();
        let feed = Arc::new(Feed::new(key, topic, selector, inner.config.subscription_buffer));
        // Dropped on any early return: it unsubscribes whatever was subscribed.
        let mut stream = RawSubscription::new(feed.clone(), inner.registry.clone());
        // A connection that closed before answering: subscribe on the next one.
        let mut closed: Option<Arc<Handle>> = None;
        loop {
            let handle = self.connection(deadline, timeout, closed.as_ref()).await?;
            let (reply, outcome) = oneshot::channel();
            stream.pending_on = Some(handle.control.clone());
            let command = Command::Subscribe { feed: feed.clone(), reply };
            match tokio::time::timeout_at(deadline, handle.calls.send(command)).await {
                Err(_) => return Err(no_answer(topic, timeout)),
                Ok(Err(_)) => {
                    closed = Some(handle);
                    continue;
                }
                Ok(Ok(())) => {}
            }
            let outcome = match tokio::time::timeout_at(deadline, outcome).await {
                Err(_) => return Err(no_answer(topic, timeout)),
                Ok(Err(_)) => return Err(Status::unavailable("the connection task ended")),
                Ok(Ok(outcome)) => outcome,
            };
            match outcome {
                Outcome::NotSent => closed = Some(handle),
                Outcome::Done(result) => {
                    // The connection answered: from now on it holds the subscription, or none.
                    stream.pending_on = None;
                    return match result? {
                        Answer::Subscribed => Ok(stream),
                        other => Err(Status::internal(format!(
                            "the gateway answered SUBSCRIBE with {other:?}"
                        ))),
                    };
                }
            }
        }
    }
}

/// The events of one subscription, as [`Topics::subscribe`] returns them: `Ok` events in the
/// order the gateway sent them, then, if the subscription ends, one `Err` and the end of the
/// stream. It waits (yields nothing) while the client reconnects, and is restored on the new
/// connection. Dropping it sends UNSUBSCRIBE.
pub struct RawSubscription {
    feed: Arc<Feed>,
    registry: Arc<Registry>,
    /// While SUBSCRIBE awaits its answer, the connection it went to (the registry does not
    /// know it yet), so that a stream dropped meanwhile still unsubscribes.
    pending_on: Option<mpsc::UnboundedSender<Control>>,
}

impl RawSubscription {
    fn new(feed: Arc<Feed>, registry: Arc<Registry>) -> RawSubscription {
        RawSubscription { feed, registry, pending_on: None }
    }
}

impl fmt::Debug for RawSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSubscription")
            .field("topic", &self.feed.topic.name)
            .field("selector", &self.feed.selector)
            .finish()
    }
}

impl Stream for RawSubscription {
    type Item = Result<RawEvent, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.feed.poll_next(cx)
    }
}

impl Drop for RawSubscription {
    fn drop(&mut self) {
        self.feed.close();
        let key = self.feed.key;
        // A connection that is gone has no subscription left to end.
        if let Some(control) = self.registry.remove(key) {
            let _ = control.send(Control::Unsubscribe(key));
        }
        if let Some(control) = self.pending_on.take() {
            let _ = control.send(Control::Unsubscribe(key));
        }
    }
}

fn no_answer(topic: &TopicDesc, timeout: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "subscribing to {} got no answer within {timeout:?}",
        topic.name
    ))
}
