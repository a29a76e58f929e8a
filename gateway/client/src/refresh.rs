//! Refreshing a connection's credentials before they expire.
//!
//! WELCOME and every AUTH_OK say how long the credentials last (`T`). At a random moment
//! between 75 % and 85 % of `T` (so that clients given tokens together do not all refresh
//! together) the connection's refresher asks the [`TokenProvider`] for a fresh token and sends
//! AUTH. A refusal is logged and tried again halfway to the expiry, up to
//! [`ATTEMPTS`] times; if every attempt fails, the gateway ends the connection at the expiry
//! (GOAWAY `token_expired`), and the client reconnects with a token from the provider.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::backoff::Jitter;
use crate::call::{far_deadline, submit};
use crate::command::{Answer, Handle, Outcome, Outgoing};
use crate::credentials::TokenProvider;

/// How many times a refresh is tried before the credentials expire.
pub(crate) const ATTEMPTS: u32 = 3;

/// Credentials that expire: when they were granted and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) at: Instant,
    pub(crate) lifetime: Duration,
}

impl Grant {
    /// The grant of a WELCOME or AUTH_OK received now; `None` for credentials that never
    /// expire (0).
    pub(crate) fn from_ms(expires_in_ms: u32) -> Option<Grant> {
        (expires_in_ms > 0).then(|| Grant {
            at: Instant::now(),
            lifetime: Duration::from_millis(u64::from(expires_in_ms)),
        })
    }

    fn expires_at(&self) -> Instant {
        self.at + self.lifetime
    }

    /// When to refresh: `at + lifetime × fraction`, `fraction` in `[0.75, 0.85)`.
    fn refresh_at(&self, unit: f64) -> Instant {
        self.at + self.lifetime.mul_f64(0.75 + 0.1 * unit)
    }
}

/// The task refreshing one connection's credentials; it ends with the connection (when the
/// grant's sender is dropped).
pub(crate) struct Refresher {
    pub(crate) handle: Arc<Handle>,
    pub(crate) provider: TokenProvider,
    pub(crate) grant: watch::Receiver<Option<Grant>>,
    /// Bounds each call of the provider and each AUTH.
    pub(crate) timeout: Duration,
}

impl Refresher {
    pub(crate) async fn run(mut self) {
        let mut jitter = Jitter::from_entropy();
        loop {
            let current = *self.grant.borrow_and_update();
            let Some(grant) = current else {
                if self.grant.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let mut at = grant.refresh_at(jitter.unit());
            let mut attempt = 1;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    // A refresh by the application, or the connection ended.
                    changed = self.grant.changed() => match changed {
                        Ok(()) => break,
                        Err(_) => return,
                    },
                }
                if self.handle.calls.is_closed() {
                    // The connection is going away; the next one starts with a fresh token.
                    return;
                }
                match self.refresh().await {
                    // The new grant arrives through the watch.
                    Ok(()) => break,
                    Err(error) => {
                        warn!(endpoint = %self.handle.endpoint, attempt, %error,
                            "token refresh failed");
                    }
                }
                let left = grant.expires_at().saturating_duration_since(Instant::now());
                if attempt == ATTEMPTS || left.is_zero() {
                    // The gateway ends the connection at the expiry; nothing to do until then.
                    if self.grant.changed().await.is_err() {
                        return;
                    }
                    break;
                }
                attempt += 1;
                at = Instant::now() + left / 2;
            }
        }
    }

    async fn refresh(&self) -> Result<(), String> {
        let fetch = tokio::time::timeout(self.timeout, self.provider.fetch());
        let token = match fetch.await {
            Ok(Ok(token)) => token,
            Ok(Err(e)) => return Err(format!("the token provider failed: {e}")),
            Err(_) => {
                return Err(format!("the token provider gave no token in {:?}", self.timeout));
            }
        };
        let deadline = far_deadline(self.timeout);
        let outcome =
            submit(&self.handle, &Outgoing::Auth, &token, deadline, self.timeout, false).await;
        match outcome.map_err(|status| status.to_string())? {
            Outcome::Done(Ok(Answer::Authenticated { expires_in_ms })) => {
                debug!(endpoint = %self.handle.endpoint, expires_in_ms, "token refreshed");
                Ok(())
            }
            Outcome::Done(Ok(other)) => Err(format!("the gateway answered AUTH with {other:?}")),
            Outcome::Done(Err(status)) => Err(format!("the gateway refused the token: {status}")),
            Outcome::NotSent => Err("the connection is closing".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refreshes_fall_between_75_and_85_percent_of_the_lifetime() {
        assert_eq!(Grant::from_ms(0), None, "0: never expires");
        let grant = Grant::from_ms(10_000).unwrap();
        assert_eq!(grant.refresh_at(0.0) - grant.at, Duration::from_millis(7500));
        assert_eq!(grant.refresh_at(0.5) - grant.at, Duration::from_millis(8000));
        assert!(grant.refresh_at(0.999_999) - grant.at < Duration::from_millis(8500));
        assert_eq!(grant.expires_at() - grant.at, Duration::from_secs(10));
    }
}
