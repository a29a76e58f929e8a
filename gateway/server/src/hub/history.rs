//! The histories the hub holds for topics that declare one (`docs/protocol.md`, "History and
//! recovery"), in one of two places:
//!
//! - [`History::Memory`]: in this gateway's memory ([`TopicHistory`]), numbered as the hub
//!   receives the events. A recovery is answered at once, under the entry's lock.
//! - [`History::Shared`]: by the bus ([`SharedHistory`]: JetStream on NATS), numbered there, the
//!   same on every gateway. A recovery reads the bus, outside the lock: the subscription waits in
//!   [`Shared::recovering`] meanwhile, and the live events for it wait with it, so that when the
//!   read is in, the missed events (up to the offset the hub had reached, `through`) go first,
//!   then the waiting ones after it, and none twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_bus::history::{self, Limits, NotRecovered, Payload, SharedHistory, TopicHistory};
use gateway_core::TopicDesc;
use gateway_protocol::{Position, Recovery, SubscribedAt};

use super::HubOptions;
use crate::events::Publication;

/// A topic's history, where the hub keeps or finds it.
pub(super) enum History {
    Memory(TopicHistory<Kept>),
    Shared(Shared),
}

/// A publication as a memory history keeps it: ready to write again, weighed by its bytes.
#[derive(Clone, Debug)]
pub(super) struct Kept(pub(super) Arc<Publication>);

impl Payload for Kept {
    fn weight(&self) -> usize {
        self.0.tail.len()
    }
}

/// A history the bus keeps, as this hub follows it.
pub(super) struct Shared {
    pub(super) store: Arc<dyn SharedHistory>,
    /// The history's epoch (0 until it is opened, or after its sequence went back).
    pub(super) epoch: u64,
    /// The highest offset the hub has delivered (or the history held when opened).
    pub(super) head: u64,
    /// The offset of the last live event, which the next one must pass.
    pub(super) last_live: u64,
    /// Offsets read back from the history (or counted lost) because the live feed skipped
    /// them: the feed may still bring one late (it reorders events published at once), and
    /// that copy is dropped. Any other offset at or below `last_live` means the history
    /// started over.
    pub(super) read_back: std::collections::BTreeSet<u64>,
    /// Subscriptions reading what they missed from the bus.
    pub(super) recovering: Vec<Recovering>,
    next_token: u64,
}

/// A subscription reading what it missed, and the live events that came meanwhile.
pub(super) struct Recovering {
    token: u64,
    key: Option<String>,
    pub(super) waiting: Vec<Arc<Publication>>,
}

impl Shared {
    pub(super) fn new(store: Arc<dyn SharedHistory>) -> Shared {
        Shared {
            store,
            epoch: 0,
            head: 0,
            last_live: 0,
            read_back: std::collections::BTreeSet::new(),
            recovering: Vec::new(),
            next_token: 0,
        }
    }

    /// Registers a subscription to `key` (`None`: every key) about to read; the token takes it
    /// back.
    pub(super) fn start_recovery(&mut self, key: Option<&str>) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.recovering.push(Recovering {
            token,
            key: key.map(str::to_owned),
            waiting: Vec::new(),
        });
        token
    }

    /// The live events that came for the recovery with `token` while it read.
    pub(super) fn finish_recovery(&mut self, token: u64) -> Vec<Arc<Publication>> {
        match self.recovering.iter().position(|r| r.token == token) {
            Some(at) => self.recovering.swap_remove(at).waiting,
            None => Vec::new(),
        }
    }

    /// Keeps `event` for every recovery it belongs to.
    pub(super) fn hold_for_recoveries(&mut self, event: &Arc<Publication>) {
        for recovering in &mut self.recovering {
            if recovering.key.as_deref().is_none_or(|key| key == event.key) {
                recovering.waiting.push(event.clone());
            }
        }
    }
}

/// The limits of `topic`'s history under `options`.
pub(super) fn limits(topic: &TopicDesc, options: &HubOptions) -> Option<Limits> {
    let declared = topic.history?;
    Some(Limits {
        events: declared.events as usize,
        ttl: (declared.ttl_ms > 0).then(|| Duration::from_millis(declared.ttl_ms)),
        bytes: options.history_max_bytes,
        keys: options.history_max_keys,
    })
}

/// A new memory history's epoch: random, so that a position from before a restart, or from
/// another gateway's memory, is never mistaken for one of this history. Never 0.
pub(super) fn fresh_epoch() -> u64 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::hash::RandomState::new().hash_one((nanos, std::process::id())).max(1)
}

/// The wire's recovery result for a history's answer.
pub(super) fn recovery_of(why: NotRecovered) -> Recovery {
    match why {
        NotRecovered::EpochChanged => Recovery::EPOCH_CHANGED,
        NotRecovered::TooOld => Recovery::TOO_OLD,
        NotRecovered::TooMany => Recovery::TOO_MANY,
        NotRecovered::Ahead => Recovery::AHEAD,
    }
}

pub(super) fn to_history(position: Position) -> history::Position {
    history::Position { epoch: position.epoch, offset: position.offset }
}

/// What the first frame of a subscription to a topic with history is, and what follows it.
pub(super) struct Opening {
    pub(super) first: SubscribedAt,
    /// The missed events, when recovered (then a retain topic's last events are not sent).
    pub(super) missed: Option<Vec<Arc<Publication>>>,
    /// Live events that came while the bus's history was read, sent after the above.
    pub(super) waited: Vec<Arc<Publication>>,
    /// Live events at or below this offset are the subscriber's already.
    pub(super) after: u64,
}

/// The opening of subscription `id` to `key` (`None`: every key) of a memory history: at once,
/// the events after `from` when asked (`None`: a plain SUBSCRIBE), whole, within `cap` and the
/// `room` left in the connection's queue.
pub(super) fn open_memory(
    history: &mut TopicHistory<Kept>,
    id: u32,
    key: Option<&str>,
    from: Option<Position>,
    cap: usize,
    room: usize,
) -> Opening {
    let head = history.head();
    let head = Position { epoch: head.epoch, offset: head.offset };
    let Some(from) = from else {
        return Opening {
            first: opened(id, Recovery::NONE, head),
            missed: None,
            waited: Vec::new(),
            after: 0,
        };
    };
    let now = Instant::now();
    let found = match key {
        Some(key) => history.recover(key, to_history(from), cap, now),
        None => history.recover_all(to_history(from), cap, now),
    };
    let found = found.map(|events| events.into_iter().map(|e| e.payload.0).collect());
    settle(id, from, head, found, room)
}

/// The opening once the missed events are known (`found`): recovered when they fit `room`.
pub(super) fn settle(
    id: u32,
    from: Position,
    head: Position,
    found: Result<Vec<Arc<Publication>>, NotRecovered>,
    room: usize,
) -> Opening {
    match found {
        Ok(missed) => {
            let bytes: usize = missed.iter().map(|e| e.frame_size() + 8).sum();
            if bytes > room {
                Opening {
                    first: opened(id, Recovery::TOO_MANY, head),
                    missed: None,
                    waited: Vec::new(),
                    after: 0,
                }
            } else {
                let first = opened(id, Recovery::RECOVERED, from);
                Opening { first, missed: Some(missed), waited: Vec::new(), after: 0 }
            }
        }
        Err(why) => Opening {
            first: opened(id, recovery_of(why), head),
            missed: None,
            waited: Vec::new(),
            after: 0,
        },
    }
}

pub(super) fn opened(subscription_id: u32, recovery: Recovery, position: Position) -> SubscribedAt {
    SubscribedAt { subscription_id, recovery, position }
}
