//! Operator switches: per service, disabled (with a reason) or read-only, shared by every
//! gateway.
//!
//! An operator turns a service off, or stops its writes, without touching the service: every
//! gateway consults the switches before sending a call on the bus and refuses it at once
//! ([`ServiceSwitches::check`]): a disabled service's calls get `unavailable` with the operator's
//! reason, a read-only service's methods marked `(writes)` get `failed_precondition`; neither is
//! retryable, so clients' automatic retries do not hammer a service the operator stopped.
//!
//! The switches live in a [`SwitchStore`]: [`MemorySwitches`] for one process (the in-process
//! bus), `NatsSwitches` (feature `nats`) in a JetStream key-value bucket that every gateway on the NATS
//! deployment watches. Either way a gateway reads them from a [`Snapshot`] that the store keeps
//! current behind a `tokio::sync::watch` channel: a session keeps the `Arc` it last saw and looks
//! again only when the channel says it changed, so the call path takes no lock and allocates
//! nothing.
//!
//! The value format (`docs/operations.md` is the operator's guide), one JSON object per service:
//!
//! ```json
//! {"disabled": "database migration until 14:00", "read_only": false}
//! {"disabled": null, "read_only": true, "read_only_reason": "reindexing"}
//! ```
//!
//! Every field may be left out (absent means normal); unknown fields are refused.
//!
//! ```
//! use gateway_bus::switches::{MemorySwitches, ServiceSwitches, SwitchStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemorySwitches::new();
//! let snapshot = store.follow();
//! store.set("examples.some_api.SomeApi", ServiceSwitches::disabled("maintenance")).await?;
//! assert!(snapshot.borrow()["examples.some_api.SomeApi"].disabled.is_some());
//! store.clear("examples.some_api.SomeApi").await?;
//! assert!(snapshot.borrow().is_empty());
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "nats")]
mod nats;

#[cfg(feature = "nats")]
pub use nats::{BUCKET, NatsSwitches};

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use gateway_core::{BoxFuture, Code, MethodDesc, Status};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The longest reason accepted, in bytes: it is shown to every refused caller, and a status
/// message is for humans.
pub const MAX_REASON_LEN: usize = 512;

/// The switches of one service. The default is normal: enabled and writable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceSwitches {
    /// `Some(reason)`: the service is disabled; its calls get `unavailable` with the reason.
    pub disabled: Option<String>,
    /// Its methods marked `(writes)` are refused with `failed_precondition`.
    pub read_only: bool,
    /// Why it is read-only, told to refused callers. Only with `read_only`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_reason: Option<String>,
}

impl ServiceSwitches {
    /// Disabled for `reason`.
    pub fn disabled(reason: impl Into<String>) -> ServiceSwitches {
        ServiceSwitches { disabled: Some(reason.into()), ..ServiceSwitches::default() }
    }

    /// Read-only, with an optional reason.
    pub fn read_only(reason: Option<String>) -> ServiceSwitches {
        ServiceSwitches { read_only: true, read_only_reason: reason, ..ServiceSwitches::default() }
    }

    /// Neither disabled nor read-only: what a service without switches is.
    pub fn is_normal(&self) -> bool {
        self.disabled.is_none() && !self.read_only
    }

    /// Parses and checks a JSON value (an admin request's body, a bucket's value).
    ///
    /// # Errors
    ///
    /// Not JSON, not an object, unknown fields or wrong types (serde's message, with the line
    /// and column), or a value [`ServiceSwitches::validate`] refuses.
    pub fn from_json(json: &[u8]) -> Result<ServiceSwitches, String> {
        // serde would also take an array of the fields in order (`[null, true]`): not a format
        // anyone means to write.
        if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(r#"expected a JSON object such as {"read_only": true}"#.into());
        }
        let switches: ServiceSwitches = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        switches.validate()?;
        Ok(switches)
    }

    /// The canonical JSON, as stored and as the admin endpoint shows it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("switches serialize")
    }

    /// Checks what JSON cannot: reasons are non-empty, at most [`MAX_REASON_LEN`] bytes and free
    /// of control characters; `read_only_reason` comes with `read_only`.
    ///
    /// # Errors
    ///
    /// The first problem, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(reason) = &self.disabled {
            check_reason("disabled", reason)?;
        }
        if let Some(reason) = &self.read_only_reason {
            if !self.read_only {
                return Err("`read_only_reason` is given but `read_only` is not true".into());
            }
            check_reason("read_only_reason", reason)?;
        }
        Ok(())
    }

    /// Whether a call of `method`, one of this service's, may go to the service.
    ///
    /// # Errors
    ///
    /// The [`Refusal`] when the service is disabled, or read-only and `method` writes.
    pub fn check(&self, method: &MethodDesc) -> Result<(), Refusal> {
        if self.disabled.is_some() {
            Err(Refusal::Disabled)
        } else if self.read_only && method.writes {
            Err(Refusal::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// The status a caller refused by `refusal` gets: never retryable, since retrying cannot
    /// help until an operator changes the switch.
    pub fn refusal_status(&self, refusal: Refusal, service: &str, method: &MethodDesc) -> Status {
        match refusal {
            Refusal::Disabled => Status::unavailable(format!(
                "service `{service}` is disabled by the operator: {}",
                self.disabled.as_deref().unwrap_or("no reason given")
            )),
            Refusal::ReadOnly => {
                let why = match &self.read_only_reason {
                    Some(reason) => format!(": {reason}"),
                    None => String::new(),
                };
                Status::new(
                    Code::FailedPrecondition,
                    format!("service `{service}` is read-only{why} (`{}` writes)", method.name),
                )
            }
        }
        .with_retryable(false)
    }
}

impl fmt::Display for ServiceSwitches {
    /// For logs: `normal`, `disabled ("reason")`, `read-only`, `read-only ("reason")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.disabled, self.read_only) {
            (None, false) => f.write_str("normal"),
            (Some(reason), false) => write!(f, "disabled ({reason:?})"),
            (Some(reason), true) => write!(f, "disabled ({reason:?}) and read-only"),
            (None, true) => match &self.read_only_reason {
                Some(reason) => write!(f, "read-only ({reason:?})"),
                None => f.write_str("read-only"),
            },
        }
    }
}

fn check_reason(field: &str, reason: &str) -> Result<(), String> {
    if reason.trim().is_empty() {
        return Err(format!("`{field}` needs a reason: a non-empty string"));
    }
    if reason.len() > MAX_REASON_LEN {
        return Err(format!(
            "`{field}` is {} bytes; a reason is at most {MAX_REASON_LEN}",
            reason.len()
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(format!("`{field}` contains a control character"));
    }
    Ok(())
}

/// Why a call was refused by a switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The service is disabled.
    Disabled,
    /// The service is read-only and the method writes.
    ReadOnly,
}

impl Refusal {
    /// Both, in the order metrics list them.
    pub const ALL: [Refusal; 2] = [Refusal::Disabled, Refusal::ReadOnly];

    /// `disabled` or `read_only`, as metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Disabled => "disabled",
            Refusal::ReadOnly => "read_only",
        }
    }
}

/// Every service's switches, by fully qualified service name. Services without an entry are
/// normal; a store never keeps normal entries.
pub type Snapshot = Arc<HashMap<String, ServiceSwitches>>;

/// Why a switch could not be changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwitchError {
    /// The service name cannot name a switch (it is not a valid key).
    InvalidService { service: String, reason: &'static str },
    /// The switches are invalid ([`ServiceSwitches::validate`]).
    Invalid { reason: String },
    /// The store could not be reached or refused the change.
    Unavailable { reason: String },
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchError::InvalidService { service, reason } => {
                write!(f, "`{service}` cannot name a switch: {reason}")
            }
            SwitchError::Invalid { reason } => write!(f, "invalid switches: {reason}"),
            SwitchError::Unavailable { reason } => {
                write!(f, "the switch store is unavailable: {reason}")
            }
        }
    }
}

impl std::error::Error for SwitchError {}

/// Where the switches live. Object-safe: gateways hold an `Arc<dyn SwitchStore>`.
///
/// A store keeps its [`Snapshot`] current, including changes other gateways make: [`follow`]
/// returns a receiver of it. `set` and `clear` return once the change is stored and (for stores
/// shared between gateways, within a bounded wait) visible in this store's own snapshot, so a
/// gateway applies a change made through its admin endpoint before answering it.
///
/// [`follow`]: SwitchStore::follow
pub trait SwitchStore: Send + Sync + 'static {
    /// Replaces `service`'s switches. Normal switches ([`ServiceSwitches::is_normal`]) clear
    /// them.
    ///
    /// # Errors
    ///
    /// [`SwitchError::Invalid`] for switches that do not validate,
    /// [`SwitchError::InvalidService`] for a name the store cannot keep,
    /// [`SwitchError::Unavailable`] when the store cannot be reached.
    fn set<'a>(
        &'a self,
        service: &'a str,
        switches: ServiceSwitches,
    ) -> BoxFuture<'a, Result<(), SwitchError>>;

    /// Puts `service` back to normal. Clearing a normal service succeeds.
    ///
    /// # Errors
    ///
    /// As [`SwitchStore::set`].
    fn clear<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), SwitchError>>;

    /// The current switches, kept current by the store.
    fn follow(&self) -> watch::Receiver<Snapshot>;
}

/// Switches in memory, for one process (the in-process bus). Cloning gives another handle to the
/// same switches.
#[derive(Clone, Debug)]
pub struct MemorySwitches {
    snapshot: watch::Sender<Snapshot>,
}

impl MemorySwitches {
    /// No switches: every service normal.
    pub fn new() -> MemorySwitches {
        MemorySwitches { snapshot: watch::Sender::new(Snapshot::default()) }
    }
}

impl Default for MemorySwitches {
    fn default() -> MemorySwitches {
        MemorySwitches::new()
    }
}

impl SwitchStore for MemorySwitches {
    fn set<'a>(
        &'a self,
        service: &'a str,
        switches: ServiceSwitches,
    ) -> BoxFuture<'a, Result<(), SwitchError>> {
        let result = switches.validate().map_err(|reason| SwitchError::Invalid { reason });
        if result.is_ok() {
            self.snapshot.send_if_modified(|snapshot| apply(snapshot, service, Some(switches)));
        }
        Box::pin(std::future::ready(result))
    }

    fn clear<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), SwitchError>> {
        self.snapshot.send_if_modified(|snapshot| apply(snapshot, service, None));
        Box::pin(std::future::ready(Ok(())))
    }

    fn follow(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.subscribe()
    }
}

/// Sets (or with `None` or normal switches, removes) `service`'s entry in `snapshot`, copying the
/// map only when something changes. Returns whether it did.
fn apply(snapshot: &mut Snapshot, service: &str, switches: Option<ServiceSwitches>) -> bool {
    let switches = switches.filter(|s| !s.is_normal());
    if snapshot.get(service) == switches.as_ref() {
        return false;
    }
    let map = Arc::make_mut(snapshot);
    match switches {
        Some(switches) => map.insert(service.to_owned(), switches),
        None => map.remove(service),
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: MethodDesc = MethodDesc {
        id: 1,
        name: "t.S.get",
        request: "t.Q",
        response: Some("t.R"),
        idempotent: true,
        writes: false,
    };
    const WRITE: MethodDesc = MethodDesc { id: 2, name: "t.S.put", writes: true, ..READ };

    #[test]
    fn json_round_trips_in_the_documented_shape() {
        let disabled = ServiceSwitches::disabled("maintenance");
        assert_eq!(disabled.to_json(), r#"{"disabled":"maintenance","read_only":false}"#);
        assert_eq!(
            ServiceSwitches::read_only(None).to_json(),
            r#"{"disabled":null,"read_only":true}"#
        );
        let both = ServiceSwitches {
            disabled: Some("x".into()),
            read_only: true,
            read_only_reason: Some("y".into()),
        };
        assert_eq!(both.to_json(), r#"{"disabled":"x","read_only":true,"read_only_reason":"y"}"#);
        for value in [disabled, both, ServiceSwitches::default()] {
            assert_eq!(ServiceSwitches::from_json(value.to_json().as_bytes()), Ok(value));
        }
    }

    #[test]
    fn absent_fields_are_normal_and_partial_bodies_parse() {
        assert_eq!(ServiceSwitches::from_json(b"{}"), Ok(ServiceSwitches::default()));
        assert_eq!(
            ServiceSwitches::from_json(br#"{"read_only":true}"#),
            Ok(ServiceSwitches::read_only(None))
        );
        assert_eq!(
            ServiceSwitches::from_json(br#"{"disabled":"gone fishing"}"#),
            Ok(ServiceSwitches::disabled("gone fishing"))
        );
        assert!(ServiceSwitches::from_json(br#"{"disabled":null}"#).unwrap().is_normal());
    }

    #[test]
    fn bad_json_is_refused_with_a_message_naming_the_problem() {
        let cases: [(&[u8], &str); 10] = [
            (b"", "expected a JSON object"),
            (b" [null, true]", "expected a JSON object"),
            (b"{", "EOF while parsing"),
            (br#"{"readonly":true}"#, "unknown field `readonly`"),
            (br#"{"read_only":"yes"}"#, "invalid type: string \"yes\", expected a boolean"),
            (br#"{"disabled":5}"#, "invalid type: integer `5`"),
            (br#"{"disabled":""}"#, "`disabled` needs a reason"),
            (br#"{"read_only_reason":"x"}"#, "`read_only` is not true"),
            (br#"{"disabled":"a\nb"}"#, "control character"),
            (br#"{"read_only":true} x"#, "trailing characters"),
        ];
        for (json, words) in cases {
            let err = ServiceSwitches::from_json(json).unwrap_err();
            assert!(err.contains(words), "{}: {err}", String::from_utf8_lossy(json));
        }
        let long = format!(r#"{{"disabled":"{}"}}"#, "x".repeat(MAX_REASON_LEN + 1));
        let err = ServiceSwitches::from_json(long.as_bytes()).unwrap_err();
        assert!(err.contains("at most 512"), "{err}");
    }

    #[test]
    fn disabled_refuses_everything_and_read_only_refuses_writes() {
        let normal = ServiceSwitches::default();
        assert_eq!((normal.check(&READ), normal.check(&WRITE)), (Ok(()), Ok(())));
        let disabled = ServiceSwitches::disabled("migrating");
        assert_eq!(disabled.check(&READ), Err(Refusal::Disabled));
        assert_eq!(disabled.check(&WRITE), Err(Refusal::Disabled));
        let read_only = ServiceSwitches::read_only(Some("reindexing".into()));
        assert_eq!(
            (read_only.check(&READ), read_only.check(&WRITE)),
            (Ok(()), Err(Refusal::ReadOnly))
        );

        let status = disabled.refusal_status(Refusal::Disabled, "t.S", &READ);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "service `t.S` is disabled by the operator: migrating");
        assert!(!status.retryable(), "unavailable is retryable by default; a switch is not");
        let status = read_only.refusal_status(Refusal::ReadOnly, "t.S", &WRITE);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "service `t.S` is read-only: reindexing (`t.S.put` writes)");
        assert!(!status.retryable());
        let status =
            ServiceSwitches::read_only(None).refusal_status(Refusal::ReadOnly, "t.S", &WRITE);
        assert_eq!(status.message(), "service `t.S` is read-only (`t.S.put` writes)");
    }

    #[tokio::test]
    async fn memory_switches_publish_changes_and_keep_no_normal_entries() {
        let store = MemorySwitches::new();
        let mut follow = store.follow();
        store.set("a.B", ServiceSwitches::disabled("x")).await.unwrap();
        assert!(follow.has_changed().unwrap());
        assert_eq!(follow.borrow_and_update()["a.B"], ServiceSwitches::disabled("x"));

        // Setting the same state again is not a change.
        store.set("a.B", ServiceSwitches::disabled("x")).await.unwrap();
        assert!(!follow.has_changed().unwrap());

        store.set("a.B", ServiceSwitches::default()).await.unwrap();
        assert!(follow.borrow_and_update().is_empty(), "normal switches clear");
        store.set("a.B", ServiceSwitches::read_only(None)).await.unwrap();
        store.clear("a.B").await.unwrap();
        assert!(follow.borrow_and_update().is_empty());
        store.clear("never.Set").await.unwrap();

        let invalid = ServiceSwitches::disabled("");
        let err = store.set("a.B", invalid).await.unwrap_err();
        assert!(matches!(err, SwitchError::Invalid { .. }), "{err}");
        assert!(follow.borrow().is_empty(), "an invalid value changes nothing");
    }

    #[test]
    fn switches_display_for_logs() {
        assert_eq!(ServiceSwitches::default().to_string(), "normal");
        assert_eq!(ServiceSwitches::disabled("x").to_string(), "disabled (\"x\")");
        assert_eq!(ServiceSwitches::read_only(None).to_string(), "read-only");
        assert_eq!(ServiceSwitches::read_only(Some("y".into())).to_string(), "read-only (\"y\")");
    }
}
