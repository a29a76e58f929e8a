//! What every session of one gateway shares ([`Shared`]), built once by [`crate::run`]: the
//! settings, the registry, the bus, the hub, the authenticator, the limits, and the open
//! connections' mailboxes, through which the gateway tells them to drain.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use gateway_bus::switches::SwitchStore;
use gateway_bus::{Bus, CallId};
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::hub::Hub;
use crate::limits::{ConnectionRate, UserConnections};
use crate::mailbox::Mailbox;
use crate::metrics::Metrics;
use crate::router::Registry;
use crate::tls::Tls;

/// What every session of one gateway shares. Read-only but for atomics and the connections'
/// registry.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) bus: Arc<dyn Bus>,
    /// The operator switches, which every call is checked against (`crate::switches`).
    pub(crate) switches: Arc<dyn SwitchStore>,
    pub(crate) metrics: Arc<Metrics>,
    /// Cancelled when the graceful shutdown starts (sessions learn it from their mailboxes).
    pub(crate) draining: CancellationToken,
    pub(crate) call_ids: CallIds,
    pub(crate) hub: Arc<Hub>,
    pub(crate) auth: Authenticator,
    pub(crate) users: Arc<UserConnections>,
    pub(crate) rate: ConnectionRate,
    /// Failed authentications per IP address (`auth_failure_burst`, refilled one a second).
    pub(crate) auth_failures: ConnectionRate,
    pub(crate) connections: Arc<Connections>,
    /// The connections in their handshake, which the accept loops pace by.
    pub(crate) handshakes: Arc<crate::limits::Handshakes>,
    /// The async runtime's worker threads.
    pub(crate) workers: usize,
    /// TLS on the client listeners, when `tls_cert` is set.
    pub(crate) tls: Option<Arc<Tls>>,
}

impl Shared {
    /// The TLS handshake on an accepted connection when the gateway has TLS
    /// ([`crate::tls::secure`]); the connection as it is without.
    pub(crate) async fn secure(
        &self,
        stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        deadline: tokio::time::Instant,
    ) -> Option<crate::tls::Stream> {
        let tls = self.tls.as_deref();
        crate::tls::secure(stream, peer, tls, &self.draining, &self.metrics, deadline).await
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Call ids (`rpc-call-id`): unique among the calls of every gateway on the bus, since services
/// match cancellations by them alone: a random instance number and a counter. Sessions take the
/// counter in blocks ([`CallIdBlock`]), so that numbering a call touches no shared memory.
#[derive(Debug)]
pub(crate) struct CallIds {
    instance: u64,
    next: AtomicU64,
}

/// Serials a session takes at once.
const BLOCK: u64 = 256;

impl CallIds {
    pub(crate) fn new() -> CallIds {
        // The std hasher's per-process random keys: randomness without a dependency.
        let instance = RandomState::new().hash_one(std::process::id());
        CallIds { instance, next: AtomicU64::new(1) }
    }

    /// A block of serials for one session.
    pub(crate) fn block(&self) -> CallIdBlock {
        let start = self.next.fetch_add(BLOCK, Ordering::Relaxed);
        CallIdBlock { instance: self.instance, next: start, end: start + BLOCK }
    }
}

/// A session's share of the gateway's call ids.
#[derive(Debug)]
pub(crate) struct CallIdBlock {
    instance: u64,
    next: u64,
    end: u64,
}

impl CallIdBlock {
    /// The next call's id; `ids` refills the block when it runs out.
    pub(crate) fn next(&mut self, ids: &CallIds) -> CallId {
        if self.next == self.end {
            *self = ids.block();
        }
        let serial = self.next;
        self.next += 1;
        CallId { instance: self.instance, serial }
    }
}

/// The open connections' mailboxes, so that the gateway can tell every session to drain, then
/// to give up its calls, and what the operator's console shows of each.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    /// A std mutex: held to add, remove or walk, never across an `.await`.
    open: Mutex<HashMap<u64, Open>>,
    next: AtomicU64,
}

/// An open connection's mailbox and what the console shows of it.
type Open = (Arc<Mailbox>, Arc<ConnectionInfo>);

/// What the console shows of one connection: set when it opens, and at its HELLO.
#[derive(Debug)]
pub(crate) struct ConnectionInfo {
    pub(crate) peer: std::net::SocketAddr,
    pub(crate) transport: crate::metrics::Transport,
    pub(crate) tls: bool,
    pub(crate) since: std::time::SystemTime,
    /// The client's name and the token's subject (`None`: anonymous), once welcomed.
    pub(crate) hello: std::sync::OnceLock<(String, Option<String>)>,
}

/// One open connection as the console lists it.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ConnectionView {
    pub(crate) id: u64,
    pub(crate) peer: String,
    pub(crate) transport: &'static str,
    pub(crate) tls: bool,
    /// Seconds since the Unix epoch.
    pub(crate) since: f64,
    /// `None` until HELLO.
    pub(crate) client: Option<String>,
    /// The token's subject; `None`: anonymous, or before HELLO.
    pub(crate) user: Option<String>,
    pub(crate) welcomed: bool,
}

impl Connections {
    /// Adds a connection's mailbox and what is known of it; the number returned removes it.
    pub(crate) fn add(&self, mailbox: Arc<Mailbox>, info: Arc<ConnectionInfo>) -> u64 {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().unwrap_or_else(PoisonError::into_inner).insert(key, (mailbox, info));
        key
    }

    /// Every open connection, oldest first.
    pub(crate) fn list(&self) -> Vec<ConnectionView> {
        let open: Vec<(u64, Arc<ConnectionInfo>)> = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key, (_, info))| (*key, info.clone()))
            .collect();
        let mut list: Vec<ConnectionView> = open
            .into_iter()
            .map(|(id, info)| {
                let hello = info.hello.get();
                ConnectionView {
                    id,
                    peer: info.peer.to_string(),
                    transport: match info.transport {
                        crate::metrics::Transport::Tcp => "tcp",
                        crate::metrics::Transport::WebSocket => "websocket",
                    },
                    tls: info.tls,
                    since: info
                        .since
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                    client: hello.map(|(name, _)| name.clone()),
                    user: hello.and_then(|(_, user)| user.clone()),
                    welcomed: hello.is_some(),
                }
            })
            .collect();
        list.sort_by_key(|c| c.id);
        list
    }

    pub(crate) fn remove(&self, key: u64) {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
    }

    /// Bytes of events queued in every open connection's mailbox (for the metrics; walks them
    /// all).
    pub(crate) fn queued(&self) -> usize {
        let open: Vec<_> =
            self.open.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        open.iter().map(|(mailbox, _)| mailbox.queued()).sum()
    }

    /// Raises `bit` on the mailbox of connection `key`; false when no such connection is open.
    pub(crate) fn signal(&self, key: u64, bit: u8) -> bool {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((mailbox, _)) = open.get(&key) else { return false };
        mailbox.signal(bit);
        true
    }

    /// Raises `bit` on every open connection's mailbox.
    pub(crate) fn signal_all(&self, bit: u8) {
        let open: Vec<_> =
            self.open.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        for (mailbox, _) in open {
            mailbox.signal(bit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_unique_across_blocks_and_share_the_instance() {
        let ids = CallIds::new();
        let (mut a, mut b) = (ids.block(), ids.block());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 * BLOCK {
            assert!(seen.insert(a.next(&ids)));
            assert!(seen.insert(b.next(&ids)));
        }
        assert!(seen.iter().all(|id| id.instance == ids.instance));
        assert_ne!(CallIds::new().instance, ids.instance, "two gateways pick different numbers");
    }
}
