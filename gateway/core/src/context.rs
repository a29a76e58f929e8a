//! What a service sees of the call it is serving besides the request itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::status::Status;

/// Who is calling, as established by the gateway's authentication. Services receive it; clients
/// can never set it themselves (the gateway strips any identity a client tries to supply).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The authenticated subject (a JWT's `sub`), e.g. a user or device id.
    pub subject: String,
    /// Further claims the gateway forwards, by name.
    pub claims: BTreeMap<String, String>,
}

/// The context of one call: its method, its caller, its deadline and its cancellation.
///
/// Cheap to clone; clones share the cancellation signal.
#[derive(Clone, Debug)]
pub struct CallContext {
    method_id: u32,
    identity: Option<Arc<Identity>>,
    deadline: Option<Instant>,
    cancel: CancellationToken,
}

impl CallContext {
    /// A context for `method_id` with no caller identity, no deadline and a fresh cancellation
    /// signal.
    pub fn new(method_id: u32) -> CallContext {
        CallContext { method_id, identity: None, deadline: None, cancel: CancellationToken::new() }
    }

    pub fn with_identity(mut self, identity: Option<Arc<Identity>>) -> CallContext {
        self.identity = identity;
        self
    }

    pub fn with_deadline(mut self, deadline: Option<Instant>) -> CallContext {
        self.deadline = deadline;
        self
    }

    /// Uses `token` as this call's cancellation signal (the runtime cancels it when the caller
    /// cancels, goes away, or the deadline passes).
    pub fn with_cancellation(mut self, token: CancellationToken) -> CallContext {
        self.cancel = token;
        self
    }

    /// The id of the method being called.
    pub fn method_id(&self) -> u32 {
        self.method_id
    }

    /// The authenticated caller, if the gateway has authenticated one.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// When the caller stops waiting, if it set a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline: `None` without a deadline, zero once it has passed. Pass
    /// it on to downstream calls so they give up when the caller does.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// True once the call is cancelled: the caller cancelled or went away, or the deadline
    /// passed. Long-running services check this, or await [`CallContext::cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the call is cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// The cancellation signal itself, to hand to spawned work.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// `Err(cancelled)` if the call is cancelled, for early returns with `?`.
    pub fn check(&self) -> Result<(), Status> {
        if self.is_cancelled() { Err(Status::cancelled("the call was cancelled")) } else { Ok(()) }
    }
}
