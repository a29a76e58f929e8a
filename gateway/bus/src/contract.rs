//! What gateways and services agree on over the bus: subjects and headers. `docs/bus.md` is the
//! normative text; this module is its single implementation in Rust.
//!
//! - A call to method `examples.some_api.SomeApi.sum` is a request on the subject
//!   `rpc.examples.some_api.SomeApi.sum`; the instances of a service subscribe to
//!   `rpc.examples.some_api.SomeApi.*` in the queue group `examples.some_api.SomeApi`, so each call
//!   goes to one of them. Fire-and-forget calls are published without a reply subject.
//! - Cancelling a call publishes its call id on `cancel.examples.some_api.SomeApi`, which every
//!   instance of the service subscribes to (no queue group: the caller does not know which
//!   instance has the call).
//! - The answer carries the reply payload, or a status in headers.
//! - An event of topic `examples.tracker.Tracker.position` with key `dev-7` is published on
//!   `topic.examples.tracker.Tracker.position.dev-7` (an unkeyed topic has no key token); a
//!   subscriber to all keys subscribes to `topic.examples.tracker.Tracker.position.*`. Keys are
//!   escaped into one subject token by [`key_token`].

use std::borrow::Cow;
use std::fmt::Write as _;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_core::{Code, MethodDesc, Selector, ServiceDesc, Status, TopicDesc};

use crate::Headers;

/// Header names. All start with `rpc-`; a gateway removes every such header a client supplies.
pub mod header {
    /// The method id, decimal.
    pub const METHOD: &str = "rpc-method";
    /// Time the caller still waits, in milliseconds, decimal, as of sending. Absent: no deadline.
    pub const TIMEOUT_MS: &str = "rpc-timeout-ms";
    /// A caller-chosen id, unique per caller, naming the call in cancel messages.
    pub const CALL_ID: &str = "rpc-call-id";
    /// The authenticated caller's subject. Absent for anonymous callers.
    pub const IDENTITY: &str = "rpc-identity";
    /// Prefix of forwarded claims: `rpc-claim-<name>`.
    pub const CLAIM_PREFIX: &str = "rpc-claim-";
    /// Trace id, for logs across gateway and services.
    pub const TRACE_ID: &str = "rpc-trace-id";
    /// On answers: the status code, decimal. Absent or `0`: success, the payload is the reply.
    pub const STATUS: &str = "rpc-status";
    /// On failed answers: the human-readable message.
    pub const MESSAGE: &str = "rpc-message";
    /// On failed answers: `1` if retrying can help, `0` if not.
    pub const RETRYABLE: &str = "rpc-retryable";
    /// On failed answers: the application error id, decimal, if any.
    pub const ERROR_ID: &str = "rpc-error-id";
    /// On calls: if the call is still running this many milliseconds (decimal) after the
    /// service received it, the service sends a running notice (see [`RUNNING`]).
    pub const NOTIFY_MS: &str = "rpc-notify-ms";
    /// On running notices (messages to a call's reply subject that are not its answer): a
    /// subject that the instance serving the call answers requests on for as long as it runs;
    /// once requests to it meet "no responders", the instance is gone, and so are its calls.
    pub const RUNNING: &str = "rpc-running";
}

/// The subject a method's calls are sent to.
pub fn method_subject(method: &MethodDesc) -> String {
    format!("rpc.{}", method.name)
}

/// The pattern an instance of `service` subscribes to for its calls.
pub fn service_pattern(service: &ServiceDesc) -> String {
    format!("rpc.{}.*", service.name)
}

/// The queue group the instances of `service` share.
pub fn queue_group(service: &ServiceDesc) -> &'static str {
    service.name
}

/// The subject instance `id` of a service answers requests on for as long as it runs: what
/// its running notices name (`rpc-running`).
pub fn liveness_subject(service_name: &str, id: &str) -> String {
    format!("instance.{service_name}.{id}")
}

/// The subject cancellations of `service`'s calls go to.
pub fn cancel_subject(service_name: &str) -> String {
    format!("cancel.{service_name}")
}

/// The subject an event of `topic` with `key` is published on. `key` is ignored for an unkeyed
/// topic.
pub fn topic_subject(topic: &TopicDesc, key: &str) -> String {
    match topic.key {
        None => format!("topic.{}", topic.name),
        Some(_) => format!("topic.{}.{}", topic.name, key_token(key)),
    }
}

/// The subject (or pattern, for all keys) a subscription to `topic` listens on.
pub fn topic_pattern(topic: &TopicDesc, selector: &Selector) -> String {
    match (topic.key, selector) {
        (None, _) => format!("topic.{}", topic.name),
        (Some(_), Selector::Key(key)) => topic_subject(topic, key),
        (Some(_), Selector::AllKeys) => format!("topic.{}.*", topic.name),
    }
}

/// The key of an event received on `subject`, a subject of `topic`: empty for an unkeyed topic,
/// `None` if the subject is not one of the topic's.
pub fn key_from_subject(topic: &TopicDesc, subject: &str) -> Option<String> {
    let rest = subject.strip_prefix("topic.")?.strip_prefix(topic.name)?;
    match topic.key {
        None => rest.is_empty().then(String::new),
        Some(_) => unescape_key(rest.strip_prefix('.')?),
    }
}

/// A key as one subject token: ASCII letters, digits, `-` and `_` stay as they are; every other
/// byte of its UTF-8 (`.`, `*`, `>`, `%`, spaces, non-ASCII) becomes `%` and two upper-case hex
/// digits. The empty key is `%`. The mapping is one-to-one, so the key is recovered exactly.
pub fn key_token(key: &str) -> Cow<'_, str> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if key.is_empty() {
        return Cow::Borrowed("%");
    }
    if key.bytes().all(plain) {
        return Cow::Borrowed(key);
    }
    let mut token = String::with_capacity(key.len() * 3);
    for b in key.bytes() {
        if plain(b) {
            token.push(char::from(b));
        } else {
            let _ = write!(token, "%{b:02X}");
        }
    }
    Cow::Owned(token)
}

/// The key a [`key_token`] stands for, or `None` if `token` is not one.
pub fn unescape_key(token: &str) -> Option<String> {
    if token == "%" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut key = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = token.get(i + 1..i + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)) {
                    return None;
                }
                key.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' => {
                key.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(key).ok()
}

/// A new instance id: 22 characters of `0-9 A-Z a-z` (like NATS's NUIDs), from 128 bits hashed
/// with the standard library's randomly keyed SipHash out of the time, the process id and a
/// counter, so ids differ between the instances of one process and between processes.
pub fn instance_id() -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let serial = NEXT.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    // Each `RandomState::new()` has keys of its own.
    let word =
        |half: u8| u128::from(RandomState::new().hash_one((half, now, std::process::id(), serial)));
    let mut bits = (word(0) << 64) | word(1);
    // 62^22 > 2^128: 22 digits hold every value.
    (0..22)
        .map(|_| {
            let digit = DIGITS[(bits % 62) as usize];
            bits /= 62;
            char::from(digit)
        })
        .collect()
}

/// Headers describing a failed call.
pub fn status_headers(status: &Status) -> Headers {
    let mut headers = Headers::new();
    headers.insert(header::STATUS, (status.code() as u8).to_string());
    headers.insert(header::MESSAGE, status.message());
    headers.insert(header::RETRYABLE, if status.retryable() { "1" } else { "0" });
    if status.error_id() != 0 {
        headers.insert(header::ERROR_ID, status.error_id().to_string());
    }
    headers
}

/// The status an answer carries, or `None` if it is a success.
pub fn status_from_headers(headers: &Headers) -> Option<Status> {
    let code = headers.get(header::STATUS)?.parse::<u8>().map_or(Code::Unknown, Code::from_u8);
    if code == Code::Ok {
        return None;
    }
    let message = headers.get(header::MESSAGE).unwrap_or_default().to_owned();
    let retryable =
        headers.get(header::RETRYABLE).map_or(code.retryable_by_default(), |v| v == "1");
    let error_id = headers.get(header::ERROR_ID).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(Status::new(code, message).with_retryable(retryable).with_error_id(error_id))
}

/// The `rpc-timeout-ms` value for a remaining time (rounded up, so a call never gets less time
/// than it has).
pub fn timeout_header(remaining: Duration) -> String {
    timeout_ms(remaining).to_string()
}

/// The `rpc-timeout-ms` value for `remaining`, as a number.
pub fn timeout_ms(remaining: Duration) -> u64 {
    u64::try_from(remaining.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_survive_the_headers() {
        let status = Status::not_found("no device 7").with_error_id(42);
        assert_eq!(status_from_headers(&status_headers(&status)), Some(status));
        let odd = Status::unavailable("disabled").with_retryable(false);
        assert_eq!(status_from_headers(&status_headers(&odd)), Some(odd));
    }

    #[test]
    fn a_missing_or_zero_status_is_success_and_garbage_is_unknown() {
        assert_eq!(status_from_headers(&Headers::new()), None);
        let mut ok = Headers::new();
        ok.insert(header::STATUS, "0");
        assert_eq!(status_from_headers(&ok), None);
        let mut odd = Headers::new();
        odd.insert(header::STATUS, "banana");
        assert_eq!(status_from_headers(&odd).map(|s| s.code()), Some(Code::Unknown));
    }

    static KEYED: TopicDesc = TopicDesc {
        id: 1,
        name: "ns.Tracker.position",
        message: "ns.Position",
        key: Some("device_id"),
        on_lag: gateway_core::LagPolicy::KeepLatest,
        retain: false,
        client_publish: false,
        history: None,
    };
    static PLAIN: TopicDesc = TopicDesc { key: None, name: "ns.Tracker.alerts", ..KEYED };

    #[test]
    fn topic_subjects_carry_the_escaped_key() {
        assert_eq!(topic_subject(&KEYED, "dev-7"), "topic.ns.Tracker.position.dev-7");
        assert_eq!(topic_subject(&KEYED, "a.b *>"), "topic.ns.Tracker.position.a%2Eb%20%2A%3E");
        assert_eq!(topic_subject(&PLAIN, "ignored"), "topic.ns.Tracker.alerts");
        assert_eq!(topic_pattern(&KEYED, &Selector::AllKeys), "topic.ns.Tracker.position.*");
        assert_eq!(
            topic_pattern(&KEYED, &Selector::Key("x".into())),
            "topic.ns.Tracker.position.x"
        );
        assert_eq!(topic_pattern(&PLAIN, &Selector::AllKeys), "topic.ns.Tracker.alerts");
    }

    #[test]
    fn keys_survive_the_subject() {
        for key in ["dev-7", "", "%", "a.b", "ünï", "*", ">", "x y", "%41"] {
            let subject = topic_subject(&KEYED, key);
            assert!(crate::subject::validate_subject(&subject).is_ok(), "{subject}");
            assert_eq!(key_from_subject(&KEYED, &subject).as_deref(), Some(key), "{subject}");
        }
        assert_eq!(key_from_subject(&PLAIN, "topic.ns.Tracker.alerts").as_deref(), Some(""));
        assert_eq!(key_from_subject(&KEYED, "topic.ns.Tracker.alerts.x"), None);
        assert_eq!(key_from_subject(&KEYED, "topic.ns.Tracker.position.%4"), None);
        assert_eq!(key_from_subject(&KEYED, "topic.ns.Tracker.position.%4a"), None);
        assert_eq!(key_from_subject(&KEYED, "topic.ns.Tracker.position.a.b"), None);
    }

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(timeout_header(Duration::from_micros(1)), "1");
        assert_eq!(timeout_header(Duration::from_millis(250)), "250");
        assert_eq!(timeout_header(Duration::ZERO), "0");
    }
}
