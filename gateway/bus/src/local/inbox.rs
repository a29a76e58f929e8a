//! Reply inboxes of pending requests.
//!
//! Each request gets the subject `_INBOX.<n>`. Rather than a subscription per request (a write
//! lock on the routing table twice per call), pending requests live in a map from `n` to the
//! request's one-shot channel, split in shards so concurrent requests rarely share a lock. An
//! answer published to `_INBOX.<n>` goes straight to the waiting request; once the request is
//! answered or dropped, its entry is gone and a late answer finds nobody.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::BusMessage;

/// The prefix of reply subjects. Subjects under it that name no pending request are routed like
/// any other subject.
pub(super) const PREFIX: &str = "_INBOX.";

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<u64, oneshot::Sender<BusMessage>>>;

/// The pending requests. A std mutex per shard: it is held only to insert or remove an entry.
pub(super) struct Inboxes {
    shards: [Shard; SHARDS],
    next: AtomicU64,
}

impl Inboxes {
    pub(super) fn new() -> Inboxes {
        Inboxes { shards: std::array::from_fn(|_| Mutex::default()), next: AtomicU64::new(0) }
    }

    fn shard(&self, id: u64) -> &Shard {
        &self.shards[(id % SHARDS as u64) as usize]
    }

    /// Opens an inbox; it closes when the returned guard drops.
    pub(super) fn open(self: &Arc<Self>) -> (String, oneshot::Receiver<BusMessage>, InboxGuard) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shard(id).lock().unwrap_or_else(PoisonError::into_inner).insert(id, tx);
        (format!("{PREFIX}{id}"), rx, InboxGuard { inboxes: self.clone(), id })
    }

    /// Hands `message` to the request waiting on its subject: `Ok(true)` if it took it, `Ok(false)`
    /// if that request is being dropped right now (the answer is lost, like a late one). Gives
    /// the message back if its subject names no pending request.
    pub(super) fn answer(&self, message: BusMessage) -> Result<bool, BusMessage> {
        let Some(id) = message.subject.strip_prefix(PREFIX).and_then(|n| n.parse::<u64>().ok())
        else {
            return Err(message);
        };
        let waiting = self.shard(id).lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        match waiting {
            Some(tx) => Ok(tx.send(message).is_ok()),
            None => Err(message),
        }
    }

    /// How many requests are waiting.
    pub(super) fn pending(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }
}

/// Closes an inbox when dropped, so an abandoned request leaves nothing behind.
pub(super) struct InboxGuard {
    inboxes: Arc<Inboxes>,
    id: u64,
}

impl Drop for InboxGuard {
    fn drop(&mut self) {
        let shard = self.inboxes.shard(self.id);
        shard.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}
