//! What a service sees of the call it is serving besides the request itself.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, OnceLock};
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
    signal: Arc<Signal>,
}

/// A call's cancellation signal. Most calls end without anyone waiting on it, so it is a flag
/// until a handler asks for something to wait on ([`CallContext::cancelled`],
/// [`CallContext::cancellation`]): only then is a [`CancellationToken`] made. Firing it is an
/// atomic store (and the token's cancel, if one was made).
#[derive(Default)]
struct Signal {
    fired: AtomicBool,
    token: OnceLock<CancellationToken>,
}

impl Signal {
    fn with_token(token: CancellationToken) -> Signal {
        Signal { fired: AtomicBool::new(false), token: OnceLock::from(token) }
    }

    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        // Paired with the fence in `token`: either this sees the token made there, or that sees
        // the flag set here (or both), so a token never misses the signal.
        fence(Ordering::SeqCst);
        if let Some(token) = self.token.get() {
            token.cancel();
        }
    }

    fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire) || self.token.get().is_some_and(|t| t.is_cancelled())
    }

    fn token(&self) -> &CancellationToken {
        let token = self.token.get_or_init(CancellationToken::new);
        fence(Ordering::SeqCst);
        if self.fired.load(Ordering::SeqCst) {
            token.cancel();
        }
        token
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("fired", &self.is_fired()).finish()
    }
}

/// Fires a call's cancellation signal: what whoever runs the call keeps to tell the handler (and
/// what it spawned) that the call is over. Made by [`CallContext::canceller`].
#[derive(Clone, Debug)]
pub struct Canceller(Arc<Signal>);

impl Canceller {
    /// Fires the signal: [`CallContext::is_cancelled`] turns true, and whoever waits on
    /// [`CallContext::cancelled`] or on the token of [`CallContext::cancellation`] wakes.
    pub fn cancel(&self) {
        self.0.fire();
    }

    /// Fires the signal if anyone but this canceller can still see it: a call whose handler is
    /// over and kept no copy of its context needs no signal.
    pub fn cancel_if_watched(&self) {
        if Arc::strong_count(&self.0) > 1 {
            self.0.fire();
        }
    }
}

impl CallContext {
    /// A context for `method_id` with no caller identity, no deadline and a fresh cancellation
    /// signal.
    pub fn new(method_id: u32) -> CallContext {
        CallContext { method_id, identity: None, deadline: None, signal: Arc::default() }
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
        self.signal = Arc::new(Signal::with_token(token));
        self
    }

    /// What fires this call's cancellation signal (for whoever runs the call).
    pub fn canceller(&self) -> Canceller {
        Canceller(self.signal.clone())
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
        self.signal.is_fired()
    }

    /// Completes when the call is cancelled.
    pub async fn cancelled(&self) {
        self.signal.token().cancelled().await
    }

    /// The cancellation signal as a token, to hand to spawned work (made the first time it is
    /// asked for).
    pub fn cancellation(&self) -> &CancellationToken {
        self.signal.token()
    }

    /// `Err(cancelled)` if the call is cancelled, for early returns with `?`.
    pub fn check(&self) -> Result<(), Status> {
        if self.is_cancelled() { Err(Status::cancelled("the call was cancelled")) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_signal_reaches_flag_waiters_and_tokens_made_before_or_after() {
        let ctx = CallContext::new(1);
        let before = ctx.cancellation().clone();
        let waiting = {
            let ctx = ctx.clone();
            tokio::spawn(async move { ctx.cancelled().await })
        };
        assert!(!ctx.is_cancelled());
        ctx.canceller().cancel();
        assert!(ctx.is_cancelled() && before.is_cancelled());
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();

        // A token first asked for after the signal fired is cancelled already.
        let late = CallContext::new(1);
        late.canceller().cancel();
        assert!(late.cancellation().is_cancelled());

        // A context built on a token follows it both ways.
        let token = CancellationToken::new();
        let given = CallContext::new(1).with_cancellation(token.clone());
        token.cancel();
        assert!(given.is_cancelled());
        let other = CancellationToken::new();
        let given = CallContext::new(1).with_cancellation(other.clone());
        given.canceller().cancel();
        assert!(other.is_cancelled());
    }
}
