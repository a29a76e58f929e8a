//! SUBSCRIBE, UNSUBSCRIBE and PUBLISH on an open session (`docs/protocol.md`, "Subscriptions"
//! and "Publishing"). The hub ([`crate::hub`]) does the fan-out; this is the session's side:
//! checking each frame, answering it, and keeping the connection's subscriptions.

use std::sync::Arc;

use bytes::Bytes;
use gateway_bus::{Headers, contract};
use gateway_core::{Selector, Status, TopicDesc};
use gateway_protocol::{
    ErrorReply, Frame, GoawayReason, Publish, Response, Subscribe, SubscriptionEnded,
};

use super::{Connection, End, Session, close};
use crate::auth::Permissions;

impl Session {
    /// Takes a SUBSCRIBE: answers it with SUBSCRIBED (queued by the hub, ahead of the events) or
    /// SUBSCRIPTION_ENDED.
    pub(super) async fn subscribe(&mut self, frame: Subscribe) -> Result<(), End> {
        let conn = self.conn.clone();
        let id = frame.subscription_id;
        if id == 0 {
            return Err(close(GoawayReason::PROTOCOL_ERROR, "subscription id 0"));
        }
        if conn.subscriptions.lock().expect("subscriptions lock").contains_key(&id) {
            let what = format!("subscription id {id} is in use");
            return Err(close(GoawayReason::PROTOCOL_ERROR, what));
        }
        let (topic, selector) = match self.check_subscribe(&frame) {
            Ok(checked) => checked,
            Err(status) => return refuse_subscription(&conn, id, status).await,
        };
        let hub = conn.shared.hub.clone();
        let subscribed = Frame::Subscribed { subscription_id: id };
        match hub.subscribe(topic, selector, &conn, id, subscribed).await {
            Ok(subscription) => {
                conn.subscriptions.lock().expect("subscriptions lock").insert(id, subscription);
                Ok(())
            }
            Err(status) => refuse_subscription(&conn, id, status).await,
        }
    }

    /// What a SUBSCRIBE asks for, if the connection may have it.
    fn check_subscribe(&self, frame: &Subscribe) -> Result<(&'static TopicDesc, Selector), Status> {
        let conn = &self.conn;
        let shared = &conn.shared;
        if shared.draining.is_cancelled() {
            return Err(Status::unavailable("the gateway is shutting down"));
        }
        let topic = find_topic(conn, frame.topic_id)?;
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
        let held = conn.subscriptions.lock().expect("subscriptions lock").len();
        if held >= shared.config.max_subscriptions_per_connection {
            return Err(Status::resource_exhausted(format!(
                "this connection holds {held} subscriptions, the most it may"
            )));
        }
        if !conn.may_subscribe(topic, &selector) {
            return Err(Status::permission_denied(format!(
                "not allowed to subscribe to {}{}",
                topic.name,
                describe(&selector)
            )));
        }
        Ok((topic, selector))
    }

    /// Takes an UNSUBSCRIBE. An id that is not subscribed is ignored: the subscription may have
    /// ended on the server's side meanwhile.
    pub(super) fn unsubscribe(&self, id: u32) {
        self.conn.unsubscribe(id);
    }

    /// Takes a PUBLISH: hands the event to the bus, and answers if the client asked for an
    /// answer.
    pub(super) async fn publish(&mut self, frame: Publish) -> Result<(), End> {
        let conn = self.conn.clone();
        let id = frame.request_id;
        if id != 0 && conn.calls.lock().expect("calls lock").contains_key(&id) {
            let what = format!("request id {id} is in flight");
            return Err(close(GoawayReason::PROTOCOL_ERROR, what));
        }
        if id != 0 {
            self.last_request_id = id;
        }
        let outcome = match check_publish(&conn, &frame) {
            Ok(topic) => {
                let subject = contract::topic_subject(topic, &frame.key);
                let published = conn
                    .shared
                    .bus
                    .publish(&subject, conn.publisher_headers(), frame.payload)
                    .await;
                published.map_err(|e| e.to_status())
            }
            Err(status) => Err(status),
        };
        if outcome.is_ok() {
            conn.shared.metrics.client_published();
        }
        if id == 0 {
            return Ok(());
        }
        let answer = match outcome {
            Ok(()) => Frame::Response(Response { request_id: id, payload: Bytes::new() }),
            Err(status) => {
                Frame::Error(ErrorReply { request_id: id, status, details: Bytes::new() })
            }
        };
        conn.queue.push(&answer).await.map_err(|_| End::ClientGone)
    }
}

impl Connection {
    /// Ends subscription `id` at the client's request.
    pub(crate) fn unsubscribe(self: &Arc<Self>, id: u32) {
        self.leave(id, None);
    }

    /// Takes subscription `id` out of the hub and ends it on the queue, with `last` as its final
    /// frame if given. An id that is not subscribed is ignored.
    fn leave(self: &Arc<Self>, id: u32, last: Option<Frame>) {
        let Some(subscription) = self.subscriptions.lock().expect("subscriptions lock").remove(&id)
        else {
            return;
        };
        self.shared.hub.unsubscribe(subscription, self, id);
        self.queue.end_subscription(id, last);
    }

    /// Ends every subscription (the connection is closing).
    pub(crate) fn unsubscribe_all(self: &Arc<Self>) {
        let all: Vec<_> = self.subscriptions.lock().expect("subscriptions lock").drain().collect();
        for (id, subscription) in all {
            self.shared.hub.unsubscribe(subscription, self, id);
        }
    }

    /// Ends subscription `id` on the gateway's side, telling the client with `last`. The hub
    /// has already forgotten it.
    pub(crate) fn end_subscription(&self, id: u32, last: Option<Frame>) {
        self.subscriptions.lock().expect("subscriptions lock").remove(&id);
        self.queue.end_subscription(id, last);
    }

    /// The client fell behind a topic whose policy is to disconnect it: the session closes the
    /// connection with GOAWAY `slow_consumer`.
    pub(crate) fn kick_slow_consumer(&self) {
        self.slow.cancel();
    }

    /// Ends the subscriptions `permissions` no longer allow (after a token refresh), with
    /// SUBSCRIPTION_ENDED `permission_denied`.
    pub(crate) fn end_forbidden_subscriptions(self: &Arc<Self>, permissions: &Permissions) {
        let forbidden: Vec<u32> = self
            .subscriptions
            .lock()
            .expect("subscriptions lock")
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

    /// Headers of an event this connection publishes: who published it. Built by the gateway
    /// alone, so a client cannot pass itself off as anyone else.
    fn publisher_headers(&self) -> Headers {
        let mut headers = Headers::new();
        crate::call::identity_headers(&mut headers, self.grant().identity.as_deref());
        headers
    }

    fn may_subscribe(&self, topic: &TopicDesc, selector: &Selector) -> bool {
        self.grant().permissions.may_subscribe(topic, selector)
    }

    fn may_publish(&self, topic: &TopicDesc, key: &str) -> bool {
        self.grant().permissions.may_publish(topic, key)
    }
}

/// Whether the connection may publish `frame`, and to which topic.
fn check_publish(conn: &Connection, frame: &Publish) -> Result<&'static TopicDesc, Status> {
    let topic = find_topic(conn, frame.topic_id)?;
    if !topic.client_publish {
        return Err(Status::new(
            gateway_core::Code::FailedPrecondition,
            format!("{} is published by its service only (it is not `client_publish`)", topic.name),
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
    if !conn.may_publish(topic, &frame.key) {
        return Err(Status::permission_denied(format!(
            "not allowed to publish to {}{}",
            topic.name,
            if frame.key.is_empty() { String::new() } else { format!(" key `{}`", frame.key) }
        )));
    }
    Ok(topic)
}

fn find_topic(conn: &Connection, id: u32) -> Result<&'static TopicDesc, Status> {
    conn.shared
        .registry
        .topic(id)
        .ok_or_else(|| Status::not_found(format!("unknown topic id {id:#010x}")))
}

fn describe(selector: &Selector) -> String {
    match selector {
        Selector::Key(key) => format!(" key `{key}`"),
        Selector::AllKeys => String::new(),
    }
}

async fn refuse_subscription(conn: &Connection, id: u32, status: Status) -> Result<(), End> {
    let frame = Frame::SubscriptionEnded(SubscriptionEnded { subscription_id: id, status });
    conn.queue.push(&frame).await.map_err(|_| End::ClientGone)
}
