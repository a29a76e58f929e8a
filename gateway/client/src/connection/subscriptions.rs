//! The connection's side of subscriptions: its subscription ids, the frames that open and
//! close them, and the events it pushes into their feeds (`docs/protocol.md`,
//! "Subscriptions").
//!
//! Ids are chosen here, sequentially from 1 and skipping ids still live, as request ids are. A
//! subscription restored on a new connection gets a new id there. Frames for an id this
//! connection does not hold (a subscription unsubscribed meanwhile) are ignored. The frames to
//! send go to the connection's [`Outbox`].
//!
//! When the gateway speaks positions (its WELCOME announced `HISTORY`), a subscription that
//! has one is restored with SUBSCRIBE_FROM, and the answer says whether what it missed follows
//! (`docs/protocol.md`, "History and recovery"); the feed tells the application.

use std::collections::HashMap;
use std::sync::Arc;

use gateway_core::Status;
use gateway_protocol::{Event, EventAt, Frame, SubscribedAt, SubscriptionEnded};
use tokio::sync::oneshot;
use tracing::debug;

use super::outbox::Outbox;
use crate::command::{Answer, Outcome};
use crate::feed::Feed;
use crate::registry::Registry;

/// The subscriptions of one connection.
#[derive(Debug)]
pub(super) struct Subscriptions {
    by_id: HashMap<u32, Subscription>,
    /// The id of each feed's subscription on this connection.
    by_feed: HashMap<u64, u32>,
    next_id: u32,
    /// The client's live subscriptions, which this connection serves while it lasts.
    registry: Arc<Registry>,
    /// The gateway announced `HISTORY`: it takes SUBSCRIBE_FROM.
    positions: bool,
}

#[derive(Debug)]
struct Subscription {
    feed: Arc<Feed>,
    /// The caller of a first SUBSCRIBE, until the gateway answers it. `None` for a subscription
    /// restored on this connection: its stream exists already.
    confirm: Option<oneshot::Sender<Outcome>>,
}

impl Subscriptions {
    pub(super) fn new(registry: Arc<Registry>, positions: bool) -> Subscriptions {
        Subscriptions {
            by_id: HashMap::new(),
            by_feed: HashMap::new(),
            next_id: 1,
            registry,
            positions,
        }
    }

    fn insert(&mut self, feed: Arc<Feed>, confirm: Option<oneshot::Sender<Outcome>>) -> u32 {
        // Fewer than `u32::MAX` subscriptions are live, so the loop ends.
        let id = loop {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.by_id.contains_key(&id) {
                break id;
            }
        };
        self.by_feed.insert(feed.key, id);
        self.by_id.insert(id, Subscription { feed, confirm });
        id
    }

    fn remove(&mut self, id: u32) -> Option<Subscription> {
        let subscription = self.by_id.remove(&id)?;
        self.by_feed.remove(&subscription.feed.key);
        Some(subscription)
    }

    /// Restores the client's live subscriptions on this new connection.
    pub(super) fn resubscribe(&mut self, feeds: Vec<Arc<Feed>>, out: &mut Outbox) {
        for feed in feeds {
            if feed.is_closed() {
                self.registry.remove(feed.key);
                continue;
            }
            feed.mark_resumed();
            self.open(feed, None, out);
        }
    }

    /// A first SUBSCRIBE, from [`Topics::subscribe`](gateway_core::Topics::subscribe).
    pub(super) fn on_subscribe(
        &mut self,
        feed: Arc<Feed>,
        reply: oneshot::Sender<Outcome>,
        out: &mut Outbox,
    ) {
        if !feed.is_closed() {
            self.open(feed, Some(reply), out);
        }
    }

    fn open(
        &mut self,
        feed: Arc<Feed>,
        confirm: Option<oneshot::Sender<Outcome>>,
        out: &mut Outbox,
    ) {
        let id = self.insert(feed.clone(), confirm);
        if let Err(e) = out.queue(&feed.subscribe_frame(id, self.positions)) {
            // Only a key longer than the protocol allows gets here.
            let status =
                Status::invalid_argument(format!("cannot subscribe to {}: {e}", feed.topic.name))
                    .with_retryable(false);
            self.end_subscription(id, status);
        }
    }

    /// SUBSCRIBED, or SUBSCRIBED_AT (`at`).
    pub(super) fn on_subscribed(&mut self, id: u32, at: Option<SubscribedAt>, out: &mut Outbox) {
        let Some(subscription) = self.by_id.get_mut(&id) else {
            debug!(subscription_id = id, "SUBSCRIBED for a subscription no longer wanted");
            return;
        };
        let restored = subscription.confirm.is_none();
        match at {
            Some(at) => subscription.feed.opened_at(at.recovery, at.position, restored),
            None => subscription.feed.opened(restored),
        }
        let Some(confirm) = subscription.confirm.take() else { return };
        let feed = subscription.feed.clone();
        // From now on the subscription outlives this connection. The stream may have been
        // dropped meanwhile; then its key is removed again by the UNSUBSCRIBE that follows.
        self.registry.insert(feed.clone());
        if feed.is_closed() || confirm.send(Outcome::Done(Ok(Answer::Subscribed))).is_err() {
            self.unsubscribe(id, out);
        }
    }

    pub(super) fn on_event(&mut self, event: Event, out: &mut Outbox) {
        let Event { subscription_id, key, payload } = event;
        let Some(subscription) = self.by_id.get(&subscription_id) else { return };
        if !subscription.feed.push(key, payload) {
            self.unsubscribe(subscription_id, out);
        }
    }

    pub(super) fn on_event_at(&mut self, event: EventAt, out: &mut Outbox) {
        let EventAt { subscription_id, offset, key, payload } = event;
        let Some(subscription) = self.by_id.get(&subscription_id) else { return };
        if !subscription.feed.push_at(key, payload, Some(offset)) {
            self.unsubscribe(subscription_id, out);
        }
    }

    pub(super) fn on_missed(&mut self, id: u32, count: u32, out: &mut Outbox) {
        let Some(subscription) = self.by_id.get(&id) else { return };
        if !subscription.feed.add_missed(u64::from(count)) {
            self.unsubscribe(id, out);
        }
    }

    pub(super) fn on_subscription_ended(&mut self, ended: SubscriptionEnded) {
        self.end_subscription(ended.subscription_id, ended.status);
    }

    /// The subscription is over: its first SUBSCRIBE is refused, or its stream ends.
    fn end_subscription(&mut self, id: u32, status: Status) {
        let Some(subscription) = self.remove(id) else { return };
        match subscription.confirm {
            Some(confirm) => {
                let _ = confirm.send(Outcome::Done(Err(status)));
            }
            None => {
                self.registry.remove(subscription.feed.key);
                subscription.feed.end(status);
            }
        }
    }

    /// The stream of the subscription with this key was dropped.
    pub(super) fn on_unsubscribe(&mut self, key: u64, out: &mut Outbox) {
        if let Some(&id) = self.by_feed.get(&key) {
            self.unsubscribe(id, out);
        }
    }

    fn unsubscribe(&mut self, id: u32, out: &mut Outbox) {
        if let Some(subscription) = self.remove(id) {
            self.registry.remove(subscription.feed.key);
            out.queue_control(Frame::Unsubscribe { subscription_id: id });
        }
    }

    /// The connection no longer serves subscriptions (GOAWAY, or it ended): first SUBSCRIBEs
    /// still unanswered may go to the next connection, which restores the others.
    pub(super) fn detach(&mut self) {
        self.by_feed.clear();
        for (_, subscription) in self.by_id.drain() {
            if let Some(confirm) = subscription.confirm {
                let _ = confirm.send(Outcome::NotSent);
            }
        }
    }
}
