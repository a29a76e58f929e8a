use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use super::*;

fn small(queue_capacity: usize) -> LocalBus {
    LocalBus::with_options(LocalBusOptions { queue_capacity, ..LocalBusOptions::default() })
}

async fn publish(bus: &LocalBus, subject: &str, payload: &'static str) {
    bus.publish(subject, Headers::new(), Bytes::from_static(payload.as_bytes())).await.unwrap();
}

/// Every message waiting in `sub`'s queue, without waiting for more.
fn drain(sub: &mut Subscription) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(Some(message)) = poll_once(sub) {
        out.push(String::from_utf8(message.payload.to_vec()).unwrap());
    }
    out
}

/// Polls `sub.next()` once: `None` if nothing is waiting.
fn poll_once(sub: &mut Subscription) -> Option<Option<BusMessage>> {
    let mut cx = Context::from_waker(Waker::noop());
    match std::pin::pin!(sub.next()).poll(&mut cx) {
        Poll::Ready(message) => Some(message),
        Poll::Pending => None,
    }
}

#[tokio::test]
async fn exact_and_wildcard_subscriptions_see_what_they_match() {
    let bus = LocalBus::new();
    let mut exact = bus.subscribe("a.b", None).await.unwrap();
    let mut star = bus.subscribe("a.*", None).await.unwrap();
    let mut rest = bus.subscribe("a.>", None).await.unwrap();
    let mut other = bus.subscribe("b.>", None).await.unwrap();
    publish(&bus, "a.b", "1").await;
    publish(&bus, "a.c", "2").await;
    publish(&bus, "a.b.c", "3").await;
    assert_eq!(drain(&mut exact), ["1"]);
    assert_eq!(drain(&mut star), ["1", "2"]);
    assert_eq!(drain(&mut rest), ["1", "2", "3"]);
    assert!(drain(&mut other).is_empty());
    assert_eq!(bus.stats(), LocalBusStats { published: 3, delivered: 6, dropped: 0 });
}

#[tokio::test]
async fn headers_subject_and_payload_arrive_intact_and_in_order() {
    let bus = LocalBus::new();
    let mut sub = bus.subscribe("x.*", None).await.unwrap();
    let mut headers = Headers::new();
    headers.insert("k", "v");
    let payload = Bytes::from(vec![7u8; 1000]);
    bus.publish("x.y", headers.clone(), payload.clone()).await.unwrap();
    let message = sub.next().await.unwrap();
    assert_eq!((message.subject.as_str(), &message.headers), ("x.y", &headers));
    assert_eq!(message.reply, None);
    assert_eq!(message.payload, payload);
    // One publisher's messages to one subject keep their order.
    for i in 0..100 {
        bus.publish("x.y", Headers::new(), Bytes::from(i.to_string())).await.unwrap();
    }
    let got = drain(&mut sub);
    assert_eq!(got, (0..100).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_queue_group_shares_messages_round_robin() {
    let bus = LocalBus::new();
    let mut a = bus.subscribe("job.*", Some("workers")).await.unwrap();
    let mut b = bus.subscribe("job.*", Some("workers")).await.unwrap();
    let mut watcher = bus.subscribe("job.*", None).await.unwrap();
    for _ in 0..10 {
        publish(&bus, "job.x", "j").await;
    }
    assert_eq!((drain(&mut a).len(), drain(&mut b).len()), (5, 5));
    assert_eq!(drain(&mut watcher).len(), 10, "a plain subscriber sees every message");
}

#[tokio::test]
async fn a_queue_group_spans_the_patterns_its_members_used() {
    let bus = LocalBus::new();
    let mut exact = bus.subscribe("job.x", Some("workers")).await.unwrap();
    let mut wild = bus.subscribe("job.*", Some("workers")).await.unwrap();
    let mut others = bus.subscribe("job.>", Some("others")).await.unwrap();
    for _ in 0..10 {
        publish(&bus, "job.x", "j").await;
    }
    assert_eq!(drain(&mut exact).len() + drain(&mut wild).len(), 10);
    assert_eq!(drain(&mut others).len(), 10);
}

#[tokio::test]
async fn a_full_member_is_skipped_and_a_full_group_drops() {
    let bus = small(2);
    let mut a = bus.subscribe("q", Some("g")).await.unwrap();
    let mut b = bus.subscribe("q", Some("g")).await.unwrap();
    for _ in 0..6 {
        publish(&bus, "q", "m").await;
    }
    // Four fit (two each), two are dropped; nothing waited.
    assert_eq!(bus.stats(), LocalBusStats { published: 6, delivered: 4, dropped: 2 });
    assert_eq!((drain(&mut a).len(), drain(&mut b).len()), (2, 2));
}

#[tokio::test]
async fn a_slow_subscriber_costs_bounded_memory_and_loses_the_rest() {
    let bus = small(16);
    let mut slow = bus.subscribe("t", None).await.unwrap();
    for _ in 0..10_000 {
        publish(&bus, "t", "m").await;
    }
    assert_eq!(bus.stats(), LocalBusStats { published: 10_000, delivered: 16, dropped: 9_984 });
    assert_eq!(drain(&mut slow).len(), 16);
}

#[tokio::test]
async fn requests_are_answered_on_their_inbox() {
    let bus = LocalBus::new();
    let mut server = bus.subscribe("echo", Some("echo")).await.unwrap();
    let responder = bus.clone();
    tokio::spawn(async move {
        while let Some(message) = server.next().await {
            let reply = message.reply.unwrap();
            assert!(reply.starts_with("_INBOX."), "{reply}");
            let mut headers = Headers::new();
            headers.insert("seen", message.headers.get("ask").unwrap_or("-"));
            responder.publish(&reply, headers, message.payload).await.unwrap();
        }
    });
    let mut headers = Headers::new();
    headers.insert("ask", "yes");
    let answer =
        bus.request("echo", headers, Bytes::from_static(b"hi"), Duration::from_secs(5)).await;
    let answer = answer.unwrap();
    assert_eq!(answer.payload, Bytes::from_static(b"hi"));
    assert_eq!(answer.headers.get("seen"), Some("yes"));
    assert_eq!(bus.pending_requests(), 0);
}

#[tokio::test]
async fn a_request_nobody_serves_fails_at_once() {
    let bus = LocalBus::new();
    let err = bus.request("nobody", Headers::new(), Bytes::new(), Duration::from_secs(60)).await;
    assert_eq!(err.unwrap_err(), BusError::NoResponders { subject: "nobody".into() });
    assert_eq!(bus.pending_requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_request_times_out_and_a_late_answer_is_discarded() {
    let bus = LocalBus::new();
    let mut server = bus.subscribe("slow", None).await.unwrap();
    let started = tokio::time::Instant::now();
    let timeout = Duration::from_millis(250);
    let err = bus.request("slow", Headers::new(), Bytes::new(), timeout).await.unwrap_err();
    assert_eq!(err, BusError::Timeout { subject: "slow".into(), timeout });
    assert_eq!(started.elapsed(), timeout);
    assert_eq!(bus.pending_requests(), 0);
    let late = server.next().await.unwrap();
    let before = bus.stats();
    bus.publish(&late.reply.unwrap(), Headers::new(), Bytes::new()).await.unwrap();
    assert_eq!(bus.stats().delivered, before.delivered, "the late answer went nowhere");
}

#[tokio::test]
async fn dropping_a_request_closes_its_inbox() {
    let bus = LocalBus::new();
    let _server = bus.subscribe("s", None).await.unwrap();
    let request = bus.request("s", Headers::new(), Bytes::new(), Duration::from_secs(60));
    assert_eq!(bus.pending_requests(), 1);
    drop(request);
    assert_eq!(bus.pending_requests(), 0);
}

#[tokio::test]
async fn a_request_every_responder_is_too_busy_for_fails_at_once() {
    let bus = small(1);
    let _server = bus.subscribe("s", Some("g")).await.unwrap();
    let first = bus.request("s", Headers::new(), Bytes::new(), Duration::from_secs(60));
    let second = bus.request("s", Headers::new(), Bytes::new(), Duration::from_secs(60)).await;
    assert_eq!(second.unwrap_err(), BusError::Overloaded { subject: "s".into() });
    assert_eq!(bus.pending_requests(), 1, "only the first request waits");
    drop(first);
    assert_eq!(bus.stats().dropped, 1);
    assert_eq!(Bus::dropped(&bus), 1, "the count a gateway's /metrics shows");
}

#[tokio::test]
async fn oversized_payloads_and_bad_subjects_are_refused_before_sending() {
    let bus = LocalBus::with_options(LocalBusOptions { max_payload: 4, ..Default::default() });
    assert_eq!(bus.max_payload(), 4);
    let _sub = bus.subscribe(">", None).await.unwrap();
    let err = bus.publish("a", Headers::new(), Bytes::from_static(b"12345")).await.unwrap_err();
    assert_eq!(err, BusError::TooLarge { size: 5, max: 4 });
    let err = bus.request("a", Headers::new(), Bytes::from_static(b"12345"), Duration::ZERO).await;
    assert_eq!(err.unwrap_err(), BusError::TooLarge { size: 5, max: 4 });
    let err = bus.publish("a.*", Headers::new(), Bytes::new()).await.unwrap_err();
    assert!(matches!(err, BusError::InvalidSubject { .. }), "{err:?}");
    let err = bus.subscribe("a..b", None).await.unwrap_err();
    assert!(matches!(err, BusError::InvalidSubject { .. }), "{err:?}");
    let err = bus.subscribe("a", Some("bad group")).await.unwrap_err();
    assert!(matches!(err, BusError::InvalidSubject { .. }), "{err:?}");
    assert_eq!(bus.stats(), LocalBusStats::default(), "nothing was sent");
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    let bus = LocalBus::new();
    let a = bus.subscribe("s.*", Some("g")).await.unwrap();
    let mut b = bus.subscribe("s.*", Some("g")).await.unwrap();
    drop(a);
    for _ in 0..4 {
        publish(&bus, "s.x", "m").await;
    }
    assert_eq!(drain(&mut b).len(), 4, "the remaining member gets everything");
    drop(b);
    let err = bus.request("s.x", Headers::new(), Bytes::new(), Duration::from_secs(1)).await;
    assert!(matches!(err, Err(BusError::NoResponders { .. })), "{err:?}");
}

#[tokio::test]
async fn subscriptions_end_when_the_bus_is_gone() {
    let bus = LocalBus::new();
    let mut sub = bus.subscribe("s", None).await.unwrap();
    publish(&bus, "s", "last").await;
    drop(bus);
    assert_eq!(sub.next().await.map(|m| m.payload), Some(Bytes::from_static(b"last")));
    assert!(sub.next().await.is_none());
}

#[tokio::test]
async fn inbox_subjects_that_name_no_request_are_ordinary_subjects() {
    let bus = LocalBus::new();
    let mut sub = bus.subscribe("_INBOX.>", None).await.unwrap();
    publish(&bus, "_INBOX.999", "a").await;
    publish(&bus, "_INBOX.x.y", "b").await;
    assert_eq!(drain(&mut sub), ["a", "b"]);
}
