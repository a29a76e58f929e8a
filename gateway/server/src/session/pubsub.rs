//! SUBSCRIBE, UNSUBSCRIBE and PUBLISH on an open session (`docs/protocol.md`, "Subscriptions"
//! and "Publishing"). The hub ([`crate::hub`]) does the fan-out; this is the session's side:
//! checking each frame, answering it, and keeping the connection's subscriptions.
//!
//! Subscribing and publishing may wait for the bus (a first subscriber's bus subscription, a
//! publication over NATS). Such a wait is the session's [`Control`]: the frames after it are
//! not taken until it is over, so they are handled in the order the client sent them, while
//! the calls in flight and the events go on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use gateway_bus::{Headers, contract};
use gateway_core::{Selector, Status, TopicDesc};
use gateway_protocol::{Frame, GoawayReason, Position, Publish, Subscribe, SubscriptionEnded};

use super::{End, Session, Transport, close};
use crate::auth::Permissions;
use crate::hub::{HubSubscription, Start};

/// A SUBSCRIBE or PUBLISH the bus is working on.
pub(super) type Control = Pin<Box<dyn Future<Output = Done> + Send>>;

/// How a [`Control`] ended.
pub(super) enum Done {
    Subscribed { id: u32, result: Result<HubSubscription, Status> },
    Published { request_id: u32, result: Result<(), Status> },
}

impl<T: Transport> Session<T> {
    /// Polls the SUBSCRIBE or PUBLISH under way, and handles its end: `true` if it ended.
    pub(super) fn poll_control(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(control) = &mut self.control else { return false };
        let Poll::Ready(done) = control.as_mut().poll(cx) else { return false };
        self.control = None;
        self.on_done(done);
        true
    }

    /// Starts `control`, handling it at once if the bus needs no wait.
    fn start(&mut self, mut control: Control, cx: &mut Context<'_>) {
        match control.as_mut().poll(cx) {
            Poll::Ready(done) => self.on_done(done),
            Poll::Pending => self.control = Some(control),
        }
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Subscribed { id, result: Ok(subscription) } => {
                self.subscriptions.insert(id, subscription);
            }
            Done::Subscribed { id, result: Err(status) } => self.refuse_subscription(id, status),
            Done::Published { request_id, result } => {
                if result.is_ok() {
                    self.shared.metrics.client_published();
                }
                if request_id == 0 {
                    return;
                }
                let _ = match result {
                    Ok(()) => self.outbox.response(request_id, &Bytes::new()),
                    Err(status) => self.outbox.error(request_id, status, Bytes::new()),
                };
            }
        }
    }

    /// Takes a SUBSCRIBE, or a SUBSCRIBE_FROM (`from`, the position to recover after):
    /// answered with SUBSCRIBED or SUBSCRIBED_AT (queued by the hub in the mailbox, ahead of
    /// the events) or SUBSCRIPTION_ENDED.
    pub(super) fn subscribe(
        &mut self,
        frame: Subscribe,
        from: Option<Position>,
        cx: &mut Context<'_>,
    ) -> Result<(), End> {
        let id = frame.subscription_id;
        if id == 0 {
            return Err(close(GoawayReason::PROTOCOL_ERROR, "subscription id 0"));
        }
        if self.subscriptions.contains_key(&id) {
            let what = format!("subscription id {id} is in use");
            return Err(close(GoawayReason::PROTOCOL_ERROR, what));
        }
        let (topic, selector) = match self.check_subscribe(&frame) {
            Ok(checked) => checked,
            Err(status) => {
                self.refuse_subscription(id, status);
                return Ok(());
            }
        };
        let hub = self.shared.hub.clone();
        let mailbox = self.mailbox.clone();
        // A SUBSCRIBE_FROM is for clients that speak positions (the server announced it, and
        // the client is to announce it too); from one that did not, it is taken as it says.
        let start = match from {
            Some(position) => Start::From(position),
            None if self.positions => Start::Live,
            None => Start::Plain,
        };
        let control = Box::pin(async move {
            let result = hub.subscribe(topic, selector, &mailbox, id, start).await;
            Done::Subscribed { id, result }
        });
        self.start(control, cx);
        Ok(())
    }

    /// What a SUBSCRIBE asks for, if the connection may have it.
    fn check_subscribe(&self, frame: &Subscribe) -> Result<(&'static TopicDesc, Selector), Status> {
        let shared = &self.shared;
        if shared.draining.is_cancelled() {
            return Err(Status::unavailable("the gateway is shutting down"));
        }
        let topic = self.find_topic(frame.topic_id)?;
        let selector = match (topic.key, frame.all_keys) {
            (None, false) if frame.key.is_empty() => Selector::AllKeys,
            (None, _) => {
                return Err(Status::invalid_argument(format!(
                    "{} has no key: subscribe with an empty key and no ALL_KEYS",
                    topic.name
                )));
            }
            (Some(_), true) if frame.key.is_empty() => Selector::AllKeys,
            (Some(_), true) => {
                return Err(Status::invalid_argument("ALL_KEYS with a key"));
            }
            (Some(name), false) if frame.key.is_empty() => {
                return Err(Status::invalid_argument(format!(
                    "{} is keyed by `{name}`: give a key, or ALL_KEYS",
                    topic.name
                )));
            }
            (Some(_), false) => Selector::Key(frame.key.clone()),
        };
        let held = self.subscriptions.len();
        if held >= shared.config.max_subscriptions_per_connection {
            return Err(Status::resource_exhausted(format!(
                "this connection holds {held} subscriptions, the most it may"
            )));
        }
        if !self.grant.permissions.may_subscribe(topic, &selector) {
            return Err(Status::permission_denied(format!(
                "not allowed to subscribe to {}{}",
                topic.name,
                describe(&selector)
            )));
        }
        Ok((topic, selector))
    }

    fn refuse_subscription(&mut self, id: u32, status: Status) {
        self.push(&Frame::SubscriptionEnded(SubscriptionEnded { subscription_id: id, status }));
    }

    /// Takes an UNSUBSCRIBE. An id that is not subscribed is ignored: the subscription may have
    /// ended on the server's side meanwhile.
    pub(super) fn unsubscribe(&mut self, id: u32) {
        self.leave(id, None);
    }

    /// Takes subscription `id` out of the hub and ends it in the mailbox, with `last` as its
    /// final frame if given. An id that is not subscribed is ignored.
    fn leave(&mut self, id: u32, last: Option<Frame>) {
        let Some(subscription) = self.subscriptions.remove(&id) else { return };
        self.shared.hub.unsubscribe(subscription, &self.mailbox, id);
        self.mailbox.end_subscription(id, last);
    }

    /// Ends every subscription (the connection is closing).
    pub(super) fn unsubscribe_all(&mut self) {
        for (id, subscription) in std::mem::take(&mut self.subscriptions) {
            self.shared.hub.unsubscribe(subscription, &self.mailbox, id);
        }
    }

    /// Ends the subscriptions `permissions` no longer allow (after a token refresh), with
    /// SUBSCRIPTION_ENDED `permission_denied`.
    pub(super) fn end_forbidden_subscriptions(&mut self, permissions: &Permissions) {
        let forbidden: Vec<u32> = self
            .subscriptions
            .iter()
            .filter(|(_, sub)| {
                let (topic, selector) = sub.target();
                !permissions.may_subscribe(topic, &selector)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in forbidden {
            let status = Status::permission_denied("the refreshed token does not allow it");
            let ended = SubscriptionEnded { subscription_id: id, status };
            self.leave(id, Some(Frame::SubscriptionEnded(ended)));
        }
    }

    /// Takes a PUBLISH: hands the event to the bus, and answers if the client asked for an
    /// answer.
    pub(super) fn publish(&mut self, frame: Publish, cx: &mut Context<'_>) -> Result<(), End> {
        let request_id = frame.request_id;
        if request_id != 0 && self.calls.contains(request_id) {
            let what = format!("request id {request_id} is in flight");
            return Err(close(GoawayReason::PROTOCOL_ERROR, what));
        }
        if request_id != 0 {
            self.last_request_id = request_id;
        }
        let topic = match self.check_publish(&frame) {
            Ok(topic) => topic,
            Err(status) => {
                self.on_done(Done::Published { request_id, result: Err(status) });
                return Ok(());
            }
        };
        let subject = contract::topic_subject(topic, &frame.key);
        // Built by the gateway alone, so a client cannot pass itself off as anyone else.
        let mut headers = Headers::new();
        gateway_bus::call::identity_headers(&mut headers, self.grant.identity.as_deref());
        let published = self.shared.hub.publish_event(topic, subject, headers, frame.payload);
        let control = Box::pin(async move {
            let published = published.await;
            Done::Published { request_id, result: published.map_err(|e| e.to_status()) }
        });
        self.start(control, cx);
        Ok(())
    }

    /// Whether the connection may publish `frame`, and to which topic.
    fn check_publish(&self, frame: &Publish) -> Result<&'static TopicDesc, Status> {
        let topic = self.find_topic(frame.topic_id)?;
        if !topic.client_publish {
            return Err(Status::new(
                gateway_core::Code::FailedPrecondition,
                format!(
                    "{} is published by its service only (it is not `client_publish`)",
                    topic.name
                ),
            ));
        }
        match (topic.key, frame.key.is_empty()) {
            (None, false) => {
                return Err(Status::invalid_argument(format!("{} has no key", topic.name)));
            }
            (Some(name), true) => {
                return Err(Status::invalid_argument(format!(
                    "{} is keyed by `{name}`: an event needs a key",
                    topic.name
                )));
            }
            _ => {}
        }
        if !self.grant.permissions.may_publish(topic, &frame.key) {
            return Err(Status::permission_denied(format!(
                "not allowed to publish to {}{}",
                topic.name,
                if frame.key.is_empty() { String::new() } else { format!(" key `{}`", frame.key) }
            )));
        }
        Ok(topic)
    }

    fn find_topic(&self, id: u32) -> Result<&'static TopicDesc, Status> {
        self.shared
            .registry
            .topic(id)
            .ok_or_else(|| Status::not_found(format!("unknown topic id {id:#010x}")))
    }
}

fn describe(selector: &Selector) -> String {
    match selector {
        Selector::Key(key) => format!(" key `{key}`"),
        Selector::AllKeys => String::new(),
    }
}
