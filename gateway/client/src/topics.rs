//! Pub/sub from the caller's side: [`Topics`] for [`Client`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::{Selector, Status, TopicDesc, Topics};
use tokio::sync::oneshot;

use crate::call::{Outgoing, far_deadline, payload};
use crate::client::Client;
use crate::connection::{Command, Handle};
use crate::feed::{Feed, RawSubscription};
use crate::inflight::{Answer, Outcome};

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

fn no_answer(topic: &TopicDesc, timeout: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "subscribing to {} got no answer within {timeout:?}",
        topic.name
    ))
}
