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

use std::time::Duration;

use gateway_core::{Code, MethodDesc, ServiceDesc, Status};

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

/// The subject cancellations of `service`'s calls go to.
pub fn cancel_subject(service_name: &str) -> String {
    format!("cancel.{service_name}")
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
    remaining.as_micros().div_ceil(1000).to_string()
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

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(timeout_header(Duration::from_micros(1)), "1");
        assert_eq!(timeout_header(Duration::from_millis(250)), "250");
        assert_eq!(timeout_header(Duration::ZERO), "0");
    }
}
