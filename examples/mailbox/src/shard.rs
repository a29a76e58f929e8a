//! A shard (docs/mailbox.md, "Shards and epochs"). As an inbox, it takes bundles in and, when
//! an epoch is closed, numbers them, writes ahead those with recipients on other shards, routes
//! each owner its part and answers the senders once every owner has committed. As an owner,
//! once every shard's route of an epoch is in, it attests each of its mailboxes that got
//! messages (chained to its last attestation), signs its receipts and attestations as one
//! batch, commits the epoch to its store in one transaction, then answers the routes and pushes
//! each device its batch. Alone, it ends its own epochs ([`Shard::run`]); with others, the
//! sequencer does ([`crate::sequencer`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;

use crate::hash::{Digest, common_hash, owner, part_hash, recipients_hash};
use crate::store::{EpochRecord, Store, StoreError, StoredBundle};
use crate::{Attestation, Delivered, Entry, Receipt, SeqId, Signed, Statement};

/// Bounds on what a shard holds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Messages a mailbox holds before sends to it are refused.
    pub mailbox_messages: usize,
    /// Bytes (common ciphertexts and parts) a mailbox holds before sends to it are refused.
    pub mailbox_bytes: usize,
    /// Recipients of one bundle.
    pub recipients: usize,
    /// Bytes of one bundle (its common ciphertext and all its parts).
    pub bundle_bytes: usize,
    /// Bundles waiting for their epoch to end, before sends are refused as busy.
    pub pending: usize,
    /// Bytes of a device id.
    pub device_id: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            mailbox_messages: 10_000,
            mailbox_bytes: 64 << 20,
            recipients: 1024,
            bundle_bytes: 1 << 20,
            pending: 1 << 20,
            device_id: 256,
        }
    }
}

/// A shard's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// This shard's number (in sequence ids and statements), below `shards`.
    pub shard: u32,
    /// How many shards the relay has (mailboxes are spread over them by
    /// [`crate::hash::owner`]; fixed for the life of the relay's stores).
    pub shards: u32,
    /// Its signing key.
    pub key: SigningKey,
    /// How often an epoch ends.
    pub epoch_every: Duration,
    pub limits: Limits,
    /// Its store.
    pub store: PathBuf,
}

/// The signing key kept beside a shard's store: `path` holds its 32-byte seed, made (with
/// permissions 0600) on first use. The same key across restarts keeps devices' chains
/// verifiable.
///
/// # Errors
///
/// A file that cannot be read or written, or that is not 32 bytes.
pub fn key_file(path: &std::path::Path) -> std::io::Result<SigningKey> {
    match std::fs::read(path) {
        Ok(seed) => {
            let seed: [u8; 32] = seed.try_into().map_err(|seed: Vec<u8>| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} holds {} bytes, not a 32-byte key seed",
                        path.display(),
                        seed.len()
                    ),
                )
            })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
            file.write_all(&seed)?;
            file.sync_all()?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(e),
    }
}

/// An epoch interval as written (`5ms`, `1s`), between 1 ms and 10 s: what `--epoch` and
/// `MAILBOX_EPOCH` take.
///
/// # Errors
///
/// Text that is not a duration, or one outside that range, said in words.
pub fn epoch_interval(text: &str) -> Result<Duration, String> {
    let every = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    if every < Duration::from_millis(1) || every > Duration::from_secs(10) {
        return Err(format!("{text:?} is outside 1ms to 10s"));
    }
    Ok(every)
}

/// Opens shard `shard` of `shards` in `dir` (made if missing): its store `shard-<n>.sqlite`
/// and its key `shard-<n>.key` ([`key_file`]), the default limits.
///
/// # Errors
///
/// What cannot be made or opened, named.
pub fn open_in(
    dir: &std::path::Path,
    shard: u32,
    shards: u32,
    epoch_every: Duration,
) -> Result<Shard, String> {
    if shard >= shards {
        return Err(format!("shard {shard} of {shards}: shards are numbered from 0"));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let key_path = dir.join(format!("shard-{shard}.key"));
    let key = key_file(&key_path).map_err(|e| format!("the key {}: {e}", key_path.display()))?;
    Shard::open(Config {
        shard,
        shards,
        key,
        epoch_every,
        limits: Limits::default(),
        store: dir.join(format!("shard-{shard}.sqlite")),
    })
    .map_err(|e| e.to_string())
}

/// A lie a shard can be told to tell, for tests of the verifier against the running relay
/// (docs/mailbox.md, "Proofs"): [`Shard::misbehave`]. Each is told once, in the first epoch it
/// fits; what the shard stores stays true (a restart forgets the lie).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lie {
    /// Leave the last recipient's message of a bundle to several devices out of its batch and
    /// attestation (a recipient that got another message in the epoch).
    Drop,
    /// Show the last recipient of a bundle to several devices another recipient list (its first
    /// recipient replaced by `mallory`).
    SwapRecipients,
    /// Give the first message of one bundle the id of the first message of an earlier bundle to
    /// another device.
    ReuseId,
    /// Swap the contents of two messages of one device, from two bundles where it stands at the
    /// same position.
    Reorder,
    /// Keep a second attestation of a device's epoch, without its messages, and show that one to
    /// whoever asks for the device's attestations.
    Fork,
}

/// A bundle to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// Device ids, each at most once.
    pub recipients: Vec<String>,
    /// The ciphertext common to all.
    pub common: Bytes,
    /// One part per recipient, in the same order.
    pub parts: Vec<Bytes>,
}

/// A bundle taken in, durable in every recipient's mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The bundle's id; recipient `i` got `bundle + i`.
    pub bundle: SeqId,
    /// The shard's receipt for it.
    pub receipt: Signed,
}

/// One device's delivery of one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub device: String,
    pub attestation: Signed,
    pub messages: Vec<Delivered>,
}

/// Why a send was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a bundle needs at least one recipient")]
    NoRecipients,
    #[error("{0} recipients; at most {1}")]
    TooManyRecipients(usize, usize),
    #[error("{parts} parts for {recipients} recipients")]
    Parts { parts: usize, recipients: usize },
    #[error("the device id {0:?} is not 1 to {1} bytes")]
    BadDevice(String, usize),
    #[error("{0:?} is a recipient twice")]
    Duplicate(String),
    #[error("the bundle is {0} bytes; at most {1}")]
    TooLarge(usize, usize),
    #[error("the mailbox of {0:?} is full")]
    MailboxFull(String),
    #[error("the shard is busy: {0} bundles wait for their epoch; try again")]
    Busy(usize),
    #[error("the shard could not store the epoch: {0}")]
    Storage(String),
    #[error("the shard stopped")]
    Stopped,
}

impl Refused {
    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Refused::MailboxFull(_) | Refused::Busy(_) | Refused::Storage(_) | Refused::Stopped
        )
    }
}

#[derive(Debug)]
struct Pending {
    /// The bundle's recipients (shared with its record and messages), common part, parts.
    recipients: Arc<[String]>,
    common: Bytes,
    parts: Vec<Bytes>,
    /// The shard holding each recipient's mailbox (empty with one shard: all here).
    owners: Vec<u32>,
    reply: oneshot::Sender<Result<Sent, Refused>>,
}

/// What one shard hands the owner of some mailboxes for an epoch (docs/mailbox.md, "Between
/// shards"): the bundles it took in during the epoch that have recipients there, each with
/// those recipients' parts, in id order.
#[derive(Clone, Debug, Default)]
pub struct Routed {
    /// The shard that took the bundles in.
    pub from: u32,
    pub bundles: Vec<StoredBundle>,
    /// The bundles' recipients and common hashes, when the inbox already has them (its own
    /// route): one per bundle, or none.
    digests: Vec<(Digest, Digest)>,
    /// The receipts of every bundle the inbox took in during the epoch: in its route to itself,
    /// so that they are signed with its attestations.
    receipts: Vec<Receipt>,
    /// Sent by a shard opened again, in its first close, for an epoch above the last it stored:
    /// it cannot tell whether it committed the epoch with nothing in it before dying (such an
    /// epoch leaves nothing in the store), so it asks the owner to route its own route of the
    /// epoch back to it if the owner has finished closing it (docs/mailbox.md, "When a process
    /// dies").
    pub asks_again: bool,
}

impl Routed {
    /// Bundles from shard `from`.
    pub fn new(from: u32, bundles: Vec<StoredBundle>) -> Routed {
        Routed { from, bundles, ..Routed::default() }
    }

    fn is_empty(&self) -> bool {
        self.bundles.is_empty() && self.receipts.is_empty()
    }
}

/// How a shard hands an epoch's bundles to the other shards ([`crate::peers::BusRouter`] over
/// the bus).
pub trait Router: Sync {
    /// Hands `routed`, bundles of `epoch`, to shard `to`, and resolves once `to` has
    /// committed the epoch: until then it tries again.
    fn route(&self, to: u32, epoch: u64, routed: Routed) -> impl Future<Output = ()> + Send;
}

/// The router of a shard that is the only one: it never routes.
#[derive(Clone, Copy, Debug)]
pub struct Alone;

impl Router for Alone {
    #[allow(clippy::manual_async_fn)]
    fn route(&self, to: u32, epoch: u64, _: Routed) -> impl Future<Output = ()> + Send {
        async move { unreachable!("a shard that is alone routed epoch {epoch} to shard {to}") }
    }
}

/// A shard process's closes as an inbox.
#[derive(Clone, Copy, Debug, Default)]
struct Closes {
    /// The last epoch whose close finished.
    done: u64,
    /// The epoch being closed, if any.
    running: Option<u64>,
}

/// Marks a close as no longer running when it ends, however it ends.
struct Running<'a> {
    closes: &'a tokio::sync::watch::Sender<Closes>,
    epoch: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.closes.send_modify(|c| {
            if c.running == Some(self.epoch) {
                c.running = None;
            }
        });
    }
}

/// An epoch's routes arriving at their owner: what each shard sent, and who waits for the commit.
#[derive(Debug)]
struct Arriving {
    routes: Vec<Option<Routed>>,
    waiters: Vec<(u32, oneshot::Sender<Vec<Signed>>)>,
}

/// A mailbox: its batches not yet acknowledged (whole), its chain's head, its load.
#[derive(Debug, Default)]
struct Mailbox {
    batches: VecDeque<(u64, Arc<Batch>)>,
    head: Option<Signed>,
    /// The head's statement hash and last epoch: what the next attestation chains to.
    link: Option<(Digest, u64)>,
    messages: usize,
    bytes: usize,
    /// Messages and bytes on their way from this shard's own inbox.
    pending_messages: usize,
    pending_bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    /// The last epoch this shard closed as an inbox (numbered the bundles it took in).
    closed: u64,
    /// Whether it has closed an epoch since it opened: the first close after opening numbers
    /// nothing (before a crash, the shard may have routed that epoch as empty).
    closed_since_open: bool,
    /// The last epoch it committed as an owner.
    committed: u64,
    collecting: Vec<Pending>,
    /// Write-aheads of epochs whose bundles some owner may not have committed yet.
    written: BTreeMap<u64, Arc<EpochRecord>>,
    /// Write-aheads every owner committed, to delete with the next commit.
    routed: Vec<u64>,
    /// Epochs being routed here, not yet complete.
    arriving: BTreeMap<u64, Arriving>,
    /// Epochs whose routes are all here, to commit in order.
    ready: BTreeMap<u64, Arriving>,
    /// Epochs taken from `ready` and not yet committed.
    committing: BTreeSet<u64>,
    /// This shard's full mailboxes (for the other shards' inboxes), and that set's version.
    full: BTreeSet<String>,
    full_version: u64,
    /// Each other shard's full mailboxes as it last said: its version and the devices.
    remote_full: HashMap<u32, (u64, HashSet<String>)>,
    mailboxes: HashMap<String, Mailbox>,
    acks: Vec<(String, SeqId)>,
    /// Per stored epoch, the batches of it not yet acknowledged.
    live: BTreeMap<u64, usize>,
    /// Stored epochs every device has acknowledged, to delete at the next commit.
    forget: Vec<u64>,
    stopped: bool,
    /// A lie to tell ([`Shard::misbehave`]), and the forks told.
    lie: Option<Lie>,
    forks: HashMap<String, Signed>,
}

impl State {
    /// Whether `device`'s mailbox is full for senders on other shards: it holds as many
    /// messages or bytes as it may.
    fn update_full(&mut self, device: &str, limits: &Limits) {
        let full = self.mailboxes.get(device).is_some_and(|m| {
            m.messages >= limits.mailbox_messages || m.bytes >= limits.mailbox_bytes
        });
        let changed =
            if full { self.full.insert(device.to_owned()) } else { self.full.remove(device) };
        if changed {
            self.full_version = self.full_version.wrapping_add(1);
        }
    }
}

/// A shard; cheap to clone. [`Shard::run`] ends its epochs when it is the only one; otherwise
/// the sequencer does ([`crate::sequencer`]).
#[derive(Clone, Debug)]
pub struct Shard {
    config: Arc<Config>,
    state: Arc<Mutex<State>>,
    store: Arc<Mutex<Store>>,
    deliveries: broadcast::Sender<Arc<Batch>>,
    /// One epoch is numbered at a time; one is prepared at a time (its attestations chain to
    /// the last prepared); one is stored at a time, in the order they were prepared (the
    /// mutexes are fair), so epoch `e + 1` is prepared while `e` is being stored.
    closing: Arc<tokio::sync::Mutex<()>>,
    ending: Arc<tokio::sync::Mutex<()>>,
    storing: Arc<tokio::sync::Mutex<()>>,
    /// This process's closes as an inbox (the last finished, the one running): a close asked
    /// for again waits for the running one rather than routing anything a second time.
    closes: Arc<tokio::sync::watch::Sender<Closes>>,
    /// The most bytes a bundle may take in a record, when routes must fit a bus's messages
    /// ([`Shard::limit_bundles`]).
    routable: Arc<std::sync::atomic::AtomicUsize>,
}

/// A device named twice in `recipients`, if any (pairwise for short lists: no allocation).
fn duplicate(recipients: &[String]) -> Option<&String> {
    if recipients.len() <= 16 {
        return recipients
            .iter()
            .enumerate()
            .find(|(i, device)| recipients[..*i].contains(device))
            .map(|(_, device)| device);
    }
    let mut seen = HashSet::with_capacity(recipients.len());
    recipients.iter().find(|device| !seen.insert(device.as_str()))
}

fn size(bundle: &Bundle) -> usize {
    bundle.common.len() + bundle.parts.iter().map(Bytes::len).sum::<usize>()
}

impl Shard {
    /// Opens the shard's store and rebuilds its mailboxes from it.
    ///
    /// # Errors
    ///
    /// The store's.
    ///
    /// # Panics
    ///
    /// If `config.shard` is not below `config.shards`.
    pub fn open(config: Config) -> Result<Shard, StoreError> {
        assert!(config.shard < config.shards, "shard {} of {}", config.shard, config.shards);
        let store = Store::open(&config.store)?;
        let acked: HashMap<String, SeqId> = store.acks()?.into_iter().collect();
        let committed = store.last_epoch()?;
        let written: BTreeMap<u64, Arc<EpochRecord>> =
            store.inboxes()?.into_iter().map(|r| (r.epoch, Arc::new(r))).collect();
        // The full set's version: new after every restart (peers ask for the set when theirs
        // differs).
        let version = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos() as u64);
        let mut state = State {
            closed: written.keys().next_back().copied().unwrap_or(0).max(committed),
            committed,
            written,
            full_version: version,
            ..State::default()
        };
        for record in store.epochs()? {
            let statements = record.signed()?;
            let mut messages: HashMap<&str, Vec<Delivered>> = HashMap::new();
            for stored in &record.bundles {
                for (position, part) in &stored.parts {
                    let device =
                        stored.recipients.get(*position as usize).ok_or(StoreError::Corrupt {
                            epoch: record.epoch,
                            what: "a part's position",
                        })?;
                    messages.entry(device.as_str()).or_default().push(Delivered {
                        id: stored
                            .bundle
                            .offset(*position)
                            .ok_or(StoreError::Corrupt { epoch: record.epoch, what: "an id" })?,
                        bundle: stored.bundle,
                        recipients: stored.recipients.clone(),
                        common: stored.common.clone(),
                        part: part.clone(),
                    });
                }
            }
            let mut live = 0;
            for signed in statements {
                let Some(attestation) = signed.attestation() else { continue };
                let device = attestation.device.clone();
                let mut batch_messages = messages.remove(device.as_str()).unwrap_or_default();
                batch_messages.sort_by_key(|m| m.id);
                let mailbox = state.mailboxes.entry(device.clone()).or_default();
                mailbox.link = Some((signed.hash(), attestation.to_epoch));
                mailbox.head = Some(signed.clone());
                let last = batch_messages.last().map(|m| m.id);
                if last.is_some_and(|last| acked.get(&device).is_none_or(|upto| last > *upto)) {
                    mailbox.messages += batch_messages.len();
                    mailbox.bytes +=
                        batch_messages.iter().map(|m| m.common.len() + m.part.len()).sum::<usize>();
                    mailbox.batches.push_back((
                        record.epoch,
                        Arc::new(Batch { device, attestation: signed, messages: batch_messages }),
                    ));
                    live += 1;
                }
            }
            if live > 0 {
                state.live.insert(record.epoch, live);
            } else {
                state.forget.push(record.epoch);
            }
        }
        let devices: Vec<String> = state.mailboxes.keys().cloned().collect();
        for device in devices {
            state.update_full(&device, &config.limits);
        }
        Ok(Shard {
            config: Arc::new(config),
            state: Arc::new(Mutex::new(state)),
            store: Arc::new(Mutex::new(store)),
            deliveries: broadcast::channel(4096).0,
            closing: Arc::new(tokio::sync::Mutex::new(())),
            ending: Arc::new(tokio::sync::Mutex::new(())),
            storing: Arc::new(tokio::sync::Mutex::new(())),
            closes: Arc::new(tokio::sync::watch::Sender::new(Closes::default())),
            routable: Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX)),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every batch delivered from now on, as it is committed (a receiver that falls behind
    /// misses batches: it fetches them).
    pub fn deliveries(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.deliveries.subscribe()
    }

    /// This shard's number.
    pub fn number(&self) -> u32 {
        self.config.shard
    }

    /// How many shards the relay has.
    pub fn shards(&self) -> u32 {
        self.config.shards
    }

    /// Its Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.config.key.verifying_key().to_bytes()
    }

    /// Bundles taken in and waiting for the epoch collecting now to end.
    pub fn waiting(&self) -> usize {
        self.state().collecting.len()
    }

    /// The epoch collecting now (with one shard: what the next [`Shard::end_epoch`] closes).
    pub fn epoch(&self) -> u64 {
        self.state().closed + 1
    }

    /// Whether this shard's process has finished closing `epoch` (or a later one): every owner
    /// answered its route of it, so each committed it.
    pub fn has_closed(&self, epoch: u64) -> bool {
        self.closes.borrow().done >= epoch
    }

    /// The last epoch closed here as an inbox, and the last committed here as an owner.
    pub fn progress(&self) -> (u64, u64) {
        let state = self.state();
        (state.closed, state.committed)
    }

    /// Refuses, from now on, bundles (to recipients on other shards) that would take more than
    /// `bytes` in a route: what the bus between the shards carries in one message, less a
    /// route's header (`crate::peers::largest_routable`).
    pub fn limit_bundles(&self, bytes: usize) {
        self.routable.store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Resolves once `epoch` is committed here.
    pub async fn committed(&self, epoch: u64) {
        let answer = {
            let mut state = self.state();
            if epoch <= state.committed {
                return;
            }
            let shards = self.config.shards as usize;
            let arriving = state.arriving.entry(epoch).or_insert_with(|| Arriving {
                routes: (0..shards).map(|_| None).collect(),
                waiters: Vec::new(),
            });
            let (tx, rx) = oneshot::channel();
            arriving.waiters.push((u32::MAX, tx));
            rx
        };
        let _ = answer.await;
    }

    /// Refuses sends from now on (those taken in still get their epoch).
    pub fn stop(&self) {
        self.state().stopped = true;
    }

    /// Takes `bundle` in; resolves once its epoch is committed by every shard holding one of
    /// its recipients.
    ///
    /// # Errors
    ///
    /// See [`Refused`].
    pub async fn send(&self, bundle: Bundle) -> Result<Sent, Refused> {
        let limits = self.config.limits;
        if bundle.recipients.is_empty() {
            return Err(Refused::NoRecipients);
        }
        if bundle.recipients.len() > limits.recipients {
            return Err(Refused::TooManyRecipients(bundle.recipients.len(), limits.recipients));
        }
        if bundle.parts.len() != bundle.recipients.len() {
            return Err(Refused::Parts {
                parts: bundle.parts.len(),
                recipients: bundle.recipients.len(),
            });
        }
        for device in &bundle.recipients {
            if device.is_empty() || device.len() > limits.device_id {
                return Err(Refused::BadDevice(device.clone(), limits.device_id));
            }
        }
        if let Some(twice) = duplicate(&bundle.recipients) {
            return Err(Refused::Duplicate(twice.clone()));
        }
        let bytes = size(&bundle);
        if bytes > limits.bundle_bytes {
            return Err(Refused::TooLarge(bytes, limits.bundle_bytes));
        }
        let (me, shards) = (self.config.shard, self.config.shards);
        let owners: Vec<u32> = if shards == 1 {
            Vec::new()
        } else {
            bundle.recipients.iter().map(|device| owner(device, shards)).collect()
        };
        if owners.iter().any(|&o| o != me) {
            let routable = self.routable.load(std::sync::atomic::Ordering::Relaxed);
            let recorded = 28
                + bundle.common.len()
                + bundle.recipients.iter().map(|r| 2 + r.len()).sum::<usize>()
                + bundle.parts.iter().map(|p| 8 + p.len()).sum::<usize>();
            if recorded > routable {
                return Err(Refused::TooLarge(recorded, routable));
            }
        }
        let owner_of = |i: usize| owners.get(i).copied().unwrap_or(me);
        let (reply, answer) = oneshot::channel();
        {
            let mut state = self.state();
            if state.stopped {
                return Err(Refused::Stopped);
            }
            if state.collecting.len() >= limits.pending {
                return Err(Refused::Busy(state.collecting.len()));
            }
            for (i, (device, part)) in bundle.recipients.iter().zip(&bundle.parts).enumerate() {
                let full = if owner_of(i) == me {
                    let mailbox = state.mailboxes.get(device);
                    let messages = mailbox.map_or(0, |m| m.messages + m.pending_messages);
                    let held = mailbox.map_or(0, |m| m.bytes + m.pending_bytes);
                    messages + 1 > limits.mailbox_messages
                        || held + bundle.common.len() + part.len() > limits.mailbox_bytes
                } else {
                    state
                        .remote_full
                        .get(&owner_of(i))
                        .is_some_and(|(_, full)| full.contains(device))
                };
                if full {
                    return Err(Refused::MailboxFull(device.clone()));
                }
            }
            for (i, (device, part)) in bundle.recipients.iter().zip(&bundle.parts).enumerate() {
                if owner_of(i) == me {
                    let mailbox = match state.mailboxes.get_mut(device) {
                        Some(mailbox) => mailbox,
                        None => state.mailboxes.entry(device.clone()).or_default(),
                    };
                    mailbox.pending_messages += 1;
                    mailbox.pending_bytes += bundle.common.len() + part.len();
                }
            }
            let Bundle { recipients, common, parts } = bundle;
            state.collecting.push(Pending {
                recipients: recipients.into(),
                common,
                parts,
                owners,
                reply,
            });
        }
        answer.await.map_err(|_| Refused::Stopped)?
    }

    /// The device's batches after `after` (whole batches whose last message is above it), at
    /// most `max`.
    pub fn fetch(&self, device: &str, after: Option<SeqId>, max: usize) -> Vec<Arc<Batch>> {
        let state = self.state();
        let Some(mailbox) = state.mailboxes.get(device) else { return Vec::new() };
        mailbox
            .batches
            .iter()
            .filter(|(_, batch)| {
                batch.messages.last().is_some_and(|m| after.is_none_or(|after| m.id > after))
            })
            .take(max)
            .map(|(_, batch)| batch.clone())
            .collect()
    }

    /// For tests of the verifier only: tells `lie` in the first epoch it fits.
    pub fn misbehave(&self, lie: Lie) {
        self.state().lie = Some(lie);
    }

    /// The device's attestations still held (of batches not acknowledged, and its chain's head)
    /// vouching for `from_epoch` or later.
    pub fn attestations(&self, device: &str, from_epoch: u64) -> Vec<Signed> {
        let state = self.state();
        let Some(mailbox) = state.mailboxes.get(device) else { return Vec::new() };
        let mut out: Vec<Signed> =
            mailbox.batches.iter().map(|(_, b)| b.attestation.clone()).collect();
        if let Some(fork) = state.forks.get(device) {
            let fork_epoch = fork.attestation().map(|a| a.to_epoch);
            out.retain(|s| s.attestation().map(|a| a.to_epoch) != fork_epoch);
            out.insert(0, fork.clone());
        }
        if let Some(head) = &mailbox.head
            && !out.contains(head)
        {
            out.push(head.clone());
        }
        out.retain(|s| s.attestation().is_some_and(|a| a.to_epoch >= from_epoch));
        out
    }

    /// Acknowledges the device's messages up to `upto`: batches whose messages are all at or
    /// below it are deleted. Returns the messages deleted. An id above the last delivered is
    /// taken as the last delivered.
    pub fn ack(&self, device: &str, upto: SeqId) -> usize {
        let mut state = self.state();
        let State { mailboxes, live, forget, acks, .. } = &mut *state;
        let Some(mailbox) = mailboxes.get_mut(device) else { return 0 };
        let last = mailbox.batches.back().and_then(|(_, b)| b.messages.last()).map(|m| m.id);
        let Some(upto) = last.map(|last| last.min(upto)) else { return 0 };
        let mut deleted = 0;
        while let Some((epoch, batch)) = mailbox.batches.front() {
            if batch.messages.last().is_none_or(|m| m.id > upto) {
                break;
            }
            let epoch = *epoch;
            deleted += batch.messages.len();
            mailbox.messages -= batch.messages.len();
            mailbox.bytes -=
                batch.messages.iter().map(|m| m.common.len() + m.part.len()).sum::<usize>();
            mailbox.batches.pop_front();
            if let Some(count) = live.get_mut(&epoch) {
                *count -= 1;
                if *count == 0 {
                    live.remove(&epoch);
                    forget.push(epoch);
                }
            }
        }
        if deleted > 0 {
            acks.push((device.to_owned(), upto));
            if state.full.contains(device) {
                state.update_full(device, &self.config.limits);
            }
        }
        deleted
    }

    /// This shard's full mailboxes, if their version is not `known`: its version and the
    /// devices.
    pub fn full_since(&self, known: u64) -> Option<(u64, Vec<String>)> {
        let state = self.state();
        (state.full_version != known)
            .then(|| (state.full_version, state.full.iter().cloned().collect()))
    }

    /// The version of shard `shard`'s full mailboxes this shard knows (0 for none).
    pub fn known_full(&self, shard: u32) -> u64 {
        self.state().remote_full.get(&shard).map_or(0, |(version, _)| *version)
    }

    /// What shard `shard` says its full mailboxes are: sends to them are refused here.
    pub fn learn_full(&self, shard: u32, version: u64, devices: Vec<String>) {
        self.state().remote_full.insert(shard, (version, devices.into_iter().collect()));
    }

    /// Ends an epoch every `epoch_every` until `stop`; then ends the one collecting and refuses
    /// what comes after. For a shard that is the only one (with several, the sequencer ends
    /// epochs).
    ///
    /// # Panics
    ///
    /// If the shard is one of several.
    pub async fn run(&self, stop: CancellationToken) {
        assert_eq!(self.config.shards, 1, "the sequencer ends the epochs of several shards");
        /// Epochs closed and not yet answered: one stored while the next is prepared.
        const IN_FLIGHT: u32 = 2;
        let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT as usize));
        let mut tick = tokio::time::interval(self.config.epoch_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                () = stop.cancelled() => true,
            };
            if stopping {
                self.stop();
            }
            let permit = in_flight.clone().acquire_owned().await.expect("never closed");
            let closing = self.closing.clone().lock_owned().await;
            let (shard, epoch) = (self.clone(), self.epoch());
            tokio::spawn(async move {
                shard.close_locked(epoch, &Alone, closing).await;
                drop(permit);
            });
            if stopping {
                let _ = in_flight.acquire_many(IN_FLIGHT).await;
                return;
            }
        }
    }

    /// Closes the next epoch of a shard that is the only one: numbers, attests, signs,
    /// commits, answers, delivers.
    ///
    /// # Panics
    ///
    /// If the shard is one of several.
    pub async fn end_epoch(&self) {
        assert_eq!(self.config.shards, 1, "the sequencer ends the epochs of several shards");
        let epoch = self.epoch();
        self.close(epoch, &Alone).await;
    }

    /// Closes `epoch` as an inbox (docs/mailbox.md, "Epochs"): numbers the bundles taken in
    /// since the last close, writes ahead those with recipients on other shards, routes each
    /// owner its part (itself included) with `router`, and once every owner has committed the
    /// epoch, answers the senders. Closing an epoch again (the sequencer retrying, or after a
    /// restart) routes again what was written ahead and numbers nothing. Returns the bundles
    /// numbered.
    pub async fn close<R: Router>(&self, epoch: u64, router: &R) -> usize {
        let closing = self.closing.clone().lock_owned().await;
        self.close_locked(epoch, router, closing).await
    }

    /// [`Shard::close`], holding the numbering lock until this shard's own route is in.
    async fn close_locked<R: Router>(
        &self,
        epoch: u64,
        router: &R,
        closing: tokio::sync::OwnedMutexGuard<()>,
    ) -> usize {
        let (me, shards) = (self.config.shard, self.config.shards);
        let repeated = {
            let state = self.state();
            state.closed_since_open && epoch <= state.closed
        };
        let closing = if repeated {
            // Asked again (the sequencer's request was answered late, or it restarted): this
            // process routed the epoch already, and its routes are tried until answered.
            // Routing it again could only differ (numbering nothing, it would route it empty):
            // wait for that close to finish instead. Only if it ended without finishing (its
            // work failed) is the epoch closed again, as after a restart.
            drop(closing);
            let mut closes = self.closes.subscribe();
            let finished = closes
                .wait_for(|c| c.done >= epoch || c.running != Some(epoch))
                .await
                .is_ok_and(|c| c.done >= epoch);
            if finished {
                return 0;
            }
            self.closing.clone().lock_owned().await
        } else {
            closing
        };
        self.closes.send_modify(|c| c.running = Some(epoch));
        let _running = Running { closes: &self.closes, epoch };
        let (pending, again, unsure) = {
            let mut state = self.state();
            let first = !std::mem::replace(&mut state.closed_since_open, true);
            let fresh = epoch > state.closed && !(first && shards > 1);
            // Opened again, with other shards: epochs above the last one stored may have been
            // committed empty before dying, their routes answered then and not sent again.
            let committed = state.committed;
            let unsure = move |e: u64| first && shards > 1 && e > committed;
            state.closed = state.closed.max(epoch);
            let pending = if fresh { std::mem::take(&mut state.collecting) } else { Vec::new() };
            let again: Vec<Arc<EpochRecord>> =
                state.written.range(..=epoch).map(|(_, r)| r.clone()).collect();
            (pending, again, unsure)
        };
        // Write-aheads of earlier epochs: every owner committed them before this epoch was
        // closed, unless this shard died first; the owners that did answer at once.
        for record in again.iter().filter(|r| r.epoch < epoch) {
            let routes =
                asking_again(split(me, shards, record.as_ref().clone()), unsure(record.epoch));
            self.route(record.epoch, routes, router, false, None).await;
        }
        let current = again.iter().find(|r| r.epoch == epoch);
        let numbered = pending.len();
        let (routes, answers) = if let Some(record) = current {
            (split(me, shards, record.as_ref().clone()), Vec::new())
        } else if pending.is_empty() {
            (empty_routes(me, shards), Vec::new())
        } else {
            let store = self.store.clone();
            let work = tokio::task::spawn_blocking(move || {
                let record = number(me, epoch, &pending);
                let (routes, record) = if shards == 1 {
                    (split(me, shards, record), EpochRecord::default())
                } else {
                    (split(me, shards, record.clone()), record)
                };
                let written = if remote_parts(me, &routes) {
                    let stored =
                        store.lock().unwrap_or_else(|p| p.into_inner()).write_inbox(&record);
                    Some(stored.map(|()| Arc::new(record)).map_err(|e| e.to_string()))
                } else {
                    None
                };
                (routes, written, pending)
            });
            let Ok((routes, written, pending)) = work.await else {
                tracing::error!(shard = me, epoch, "numbering the epoch's bundles did not finish");
                return 0;
            };
            match written {
                Some(Err(e)) => {
                    tracing::error!(shard = me, epoch, error = %e, "cannot write the epoch's bundles ahead; its sends are refused");
                    self.release(&pending);
                    for p in pending {
                        let _ = p.reply.send(Err(Refused::Storage(e.clone())));
                    }
                    (empty_routes(me, shards), Vec::new())
                }
                Some(Ok(record)) => {
                    self.state().written.insert(epoch, record);
                    (routes, pending)
                }
                None => (routes, pending),
            }
        };
        let routes = asking_again(routes, unsure(epoch));
        let receipts = self.route(epoch, routes, router, true, Some(closing)).await;
        self.release(&answers);
        if receipts.len() == answers.len() {
            for (p, receipt) in answers.into_iter().zip(receipts) {
                let sent = Sent { bundle: receipt.receipt().expect("a receipt").bundle, receipt };
                let _ = p.reply.send(Ok(sent));
            }
        } else {
            tracing::error!(shard = me, epoch, "the epoch was committed without its receipts");
        }
        let mut state = self.state();
        let done: Vec<u64> = state.written.range(..=epoch).map(|(e, _)| *e).collect();
        for e in done {
            state.written.remove(&e);
            state.routed.push(e);
        }
        drop(state);
        self.closes.send_modify(|c| c.done = c.done.max(epoch));
        numbered
    }

    /// Routes an epoch's `routes` (one per shard) to their owners: this shard's to itself,
    /// the others with `router` (with `all`, the empty ones too: the owners wait for every
    /// shard's route). Returns this shard's signed receipts. `closing`, the numbering lock, is
    /// let go once this shard's own route is in (so epochs reach the owner in order).
    async fn route<R: Router>(
        &self,
        epoch: u64,
        routes: Vec<Routed>,
        router: &R,
        all: bool,
        closing: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Vec<Signed> {
        let me = self.config.shard;
        let mut own = Routed { from: me, ..Routed::default() };
        let mut remote = Vec::new();
        for (to, routed) in (0u32..).zip(routes) {
            if to == me {
                own = routed;
            } else if all || !routed.bundles.is_empty() {
                remote.push(router.route(to, epoch, routed));
            }
        }
        let own = self.register(epoch, own);
        drop(closing);
        let own = async move {
            match own {
                Some(answer) => answer.await.unwrap_or_default(),
                None => Vec::new(),
            }
        };
        let (receipts, _) = tokio::join!(own, futures::future::join_all(remote));
        receipts
    }

    /// Takes the pending counts of this shard's own mailboxes back, for bundles whose epoch is
    /// over (committed, or refused).
    fn release(&self, pending: &[Pending]) {
        let me = self.config.shard;
        let mut state = self.state();
        for p in pending {
            for (i, (device, part)) in p.recipients.iter().zip(&p.parts).enumerate() {
                if p.owners.get(i).copied().unwrap_or(me) != me {
                    continue;
                }
                if let Some(mailbox) = state.mailboxes.get_mut(device) {
                    mailbox.pending_messages -= 1;
                    mailbox.pending_bytes -= p.common.len() + part.len();
                }
            }
        }
    }

    /// Takes a route of `epoch` to this shard (docs/mailbox.md, "Between shards"); resolves
    /// once the epoch is committed here, with the signed receipts when the route is this
    /// shard's own. Once every shard's route of the epoch is here, commits it. A route of an
    /// epoch already committed resolves at once.
    ///
    /// # Panics
    ///
    /// If `routed.from` is not a shard.
    pub async fn accept(&self, epoch: u64, routed: Routed) -> Vec<Signed> {
        match self.register(epoch, routed) {
            Some(answer) => answer.await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Takes a route in ([`Shard::accept`]): `None` for an epoch already committed, else what
    /// will answer once it is.
    fn register(&self, epoch: u64, routed: Routed) -> Option<oneshot::Receiver<Vec<Signed>>> {
        let shards = self.config.shards as usize;
        assert!((routed.from as usize) < shards, "a route from shard {}", routed.from);
        let complete = {
            let mut state = self.state();
            if epoch <= state.committed {
                return None;
            }
            // An epoch already complete (waiting to commit, or committing) is not made
            // complete a second time by routes that come again: they wait in `arriving`, and
            // are answered once it is committed (`answer`).
            let again = state.ready.contains_key(&epoch) || state.committing.contains(&epoch);
            let arriving = state.arriving.entry(epoch).or_insert_with(|| Arriving {
                routes: (0..shards).map(|_| None).collect(),
                waiters: Vec::new(),
            });
            let from = routed.from;
            // A route that comes again is the same route (a shard routes an epoch once, or,
            // restarted, routes its write-ahead again): the first copy stands.
            arriving.routes[from as usize].get_or_insert(routed);
            let (tx, rx) = oneshot::channel();
            arriving.waiters.push((from, tx));
            let complete = !again && arriving.routes.iter().all(Option::is_some);
            if complete {
                let arriving = state.arriving.remove(&epoch).expect("arriving");
                state.ready.insert(epoch, arriving);
            }
            (rx, complete)
        };
        let (answer, complete) = complete;
        if complete {
            tokio::spawn(self.clone().commit());
        }
        Some(answer)
    }

    /// Commits `epoch` as an owner: attests each mailbox that got messages (chained to its
    /// last attestation), signs this shard's receipts and attestations as one batch, stores
    /// the epoch in one transaction (trying again until the store takes it: other shards may
    /// have committed their part), then delivers and answers who waits.
    ///
    /// Each call commits the lowest epoch ready (one call is made per epoch made ready), so
    /// epochs commit in order however the tasks are scheduled.
    async fn commit(self) {
        let ending = self.ending.clone().lock_owned().await;
        let (epoch, arriving) = {
            let mut state = self.state();
            let Some((epoch, arriving)) = state.ready.pop_first() else { return };
            if epoch <= state.committed {
                // Committed already (made ready twice): answer who waits, change nothing.
                drop(state);
                drop(ending);
                self.answer(epoch, arriving.waiters, Vec::new());
                return;
            }
            state.committing.insert(epoch);
            (epoch, arriving)
        };
        let routes: Vec<Routed> = arriving.routes.into_iter().flatten().collect();
        let nothing = routes.iter().all(Routed::is_empty);
        let idle = nothing && {
            let state = self.state();
            state.acks.is_empty() && state.forget.is_empty() && state.routed.is_empty()
        };
        if idle {
            // Nothing to store: committed once the epochs before it are stored.
            let _storing = self.storing.clone().lock_owned().await;
            drop(ending);
            {
                let mut state = self.state();
                state.committed = epoch.max(state.committed);
                state.committing.remove(&epoch);
            }
            self.answer(epoch, arriving.waiters, Vec::new());
            return;
        }
        let (acks, forget, routed, heads, lie) = {
            let mut state = self.state();
            let mut heads: HashMap<String, (Digest, u64)> = HashMap::new();
            for bundle in routes.iter().flat_map(|r| &r.bundles) {
                for (position, _) in &bundle.parts {
                    let device = &bundle.recipients[*position as usize];
                    if let Some(link) = state.mailboxes.get(device).and_then(|m| m.link) {
                        heads.insert(device.clone(), link);
                    }
                }
            }
            (
                std::mem::take(&mut state.acks),
                std::mem::take(&mut state.forget),
                std::mem::take(&mut state.routed),
                heads,
                if nothing { None } else { state.lie.take() },
            )
        };
        let (shard, key) = (self.config.shard, self.config.key.clone());
        let started = std::time::Instant::now();
        let prepared =
            tokio::task::spawn_blocking(move || prepare(shard, &key, epoch, routes, &heads, lie))
                .await;
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                tracing::error!(shard, epoch, error = %e, "preparing the epoch did not finish");
                return;
            }
        };
        // The next epoch's attestations chain to these, whether or not they are stored yet:
        // the store takes epochs in order, and nobody sees these before it has.
        {
            let mut state = self.state();
            for batch in &prepared.batches {
                let link = (batch.attestation.hash(), epoch);
                match state.mailboxes.get_mut(&batch.device) {
                    Some(mailbox) => mailbox.link = Some(link),
                    None => {
                        let mailbox = Mailbox { link: Some(link), ..Mailbox::default() };
                        state.mailboxes.insert(batch.device.clone(), mailbox);
                    }
                }
            }
        }
        let prepared_us = started.elapsed().as_micros() as u64;
        let storing = self.storing.clone().lock_owned().await;
        drop(ending);
        let store = self.store.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let record = (!prepared.record.bundles.is_empty()).then_some(&prepared.record);
            let mut wait = Duration::from_millis(10);
            loop {
                let stored = store
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .commit(epoch, record, &acks, &forget, &routed);
                match stored {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(shard, epoch, error = %e, "cannot store the epoch; trying again in {wait:?}");
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                }
            }
            prepared
        })
        .await;
        let prepared = match stored {
            Ok(prepared) => prepared,
            Err(e) => {
                tracing::error!(shard, epoch, error = %e, "storing the epoch did not finish");
                return;
            }
        };
        tracing::debug!(
            shard,
            epoch,
            statements = prepared.record.statements.len(),
            prepared_us,
            stored_us = started.elapsed().as_micros() as u64,
            "epoch committed"
        );
        let limits = self.config.limits;
        let mut state = self.state();
        state.committed = state.committed.max(epoch);
        state.committing.remove(&epoch);
        if prepared.untold.is_some() {
            state.lie = prepared.untold;
        }
        if let Some((device, fork)) = prepared.fork {
            state.forks.insert(device, fork);
        }
        let batches: Vec<Arc<Batch>> = prepared.batches.into_iter().map(Arc::new).collect();
        if !batches.is_empty() {
            state.live.insert(epoch, batches.len());
        }
        for batch in &batches {
            let mailbox = state.mailboxes.entry(batch.device.clone()).or_default();
            mailbox.head = Some(batch.attestation.clone());
            mailbox.messages += batch.messages.len();
            mailbox.bytes +=
                batch.messages.iter().map(|m| m.common.len() + m.part.len()).sum::<usize>();
            mailbox.batches.push_back((epoch, batch.clone()));
            state.update_full(&batch.device, &limits);
        }
        drop(state);
        self.answer(epoch, arriving.waiters, prepared.receipts);
        for batch in batches {
            let _ = self.deliveries.send(batch);
        }
        drop(storing);
    }

    /// Answers who waits for `epoch`'s commit (this shard's own route gets `receipts`), and
    /// who waits on routes of it (or earlier) that came again after it was complete.
    fn answer(
        &self,
        epoch: u64,
        waiters: Vec<(u32, oneshot::Sender<Vec<Signed>>)>,
        receipts: Vec<Signed>,
    ) {
        let me = self.config.shard;
        let mut receipts = Some(receipts);
        let late: Vec<Arriving> = {
            let mut state = self.state();
            let stale: Vec<u64> = state.arriving.range(..=epoch).map(|(e, _)| *e).collect();
            stale.into_iter().filter_map(|e| state.arriving.remove(&e)).collect()
        };
        for (from, waiter) in waiters.into_iter().chain(late.into_iter().flat_map(|a| a.waiters)) {
            let signed = if from == me { receipts.take().unwrap_or_default() } else { Vec::new() };
            let _ = waiter.send(signed);
        }
    }
}

/// Numbers `pending`, the bundles an inbox took in during `epoch`, in the order they came:
/// the epoch's record of them, with every part.
fn number(shard: u32, epoch: u64, pending: &[Pending]) -> EpochRecord {
    let mut index = 0u32;
    let bundles = pending
        .iter()
        .map(|p| {
            let bundle = SeqId { epoch, shard, index };
            index += p.recipients.len() as u32;
            StoredBundle {
                bundle,
                recipients: p.recipients.clone(),
                common: p.common.clone(),
                parts: (0u32..).zip(p.parts.iter().cloned()).collect(),
            }
        })
        .collect();
    EpochRecord { epoch, bundles, ..EpochRecord::default() }
}

/// Splits an inbox's record of an epoch into one route per shard (by [`owner`]); this shard's
/// own carries every bundle's receipt.
fn split(me: u32, shards: u32, record: EpochRecord) -> Vec<Routed> {
    let mut routes = empty_routes(me, shards);
    let own = me as usize;
    routes[own].receipts.reserve(record.bundles.len());
    for bundle in record.bundles {
        let digests = (recipients_hash(&bundle.recipients), common_hash(&bundle.common));
        routes[own].receipts.push(Receipt {
            shard: me,
            bundle: bundle.bundle,
            recipients: digests.0,
            common: digests.1,
            count: bundle.recipients.len() as u32,
        });
        if shards == 1 {
            routes[own].digests.push(digests);
            routes[own].bundles.push(bundle);
            continue;
        }
        let StoredBundle { bundle: id, recipients, common, parts: every } = bundle;
        let mut parts: Vec<Vec<(u32, Bytes)>> = vec![Vec::new(); shards as usize];
        for (position, part) in every {
            let to = owner(&recipients[position as usize], shards);
            parts[to as usize].push((position, part));
        }
        for (to, parts) in parts.into_iter().enumerate().filter(|(_, p)| !p.is_empty()) {
            let routed = StoredBundle {
                bundle: id,
                recipients: recipients.clone(),
                common: common.clone(),
                parts,
            };
            if to == own {
                routes[own].digests.push(digests);
            }
            routes[to].bundles.push(routed);
        }
    }
    routes
}

/// `routes`, each asking its owner for the owner's own route again when `ask` (see
/// [`Routed::asks_again`]).
fn asking_again(mut routes: Vec<Routed>, ask: bool) -> Vec<Routed> {
    for route in &mut routes {
        route.asks_again = ask;
    }
    routes
}

/// An empty route from `me` to each of `shards`.
fn empty_routes(me: u32, shards: u32) -> Vec<Routed> {
    (0..shards).map(|_| Routed { from: me, ..Routed::default() }).collect()
}

/// Whether any route but this shard's own carries bundles.
fn remote_parts(me: u32, routes: &[Routed]) -> bool {
    (0u32..).zip(routes).any(|(to, r)| to != me && !r.bundles.is_empty())
}

struct Prepared {
    record: EpochRecord,
    /// A lie that did not fit this epoch, to tell later.
    untold: Option<Lie>,
    /// A forked attestation told ([`Lie::Fork`]): the device and the other attestation.
    fork: Option<(String, Signed)>,
    /// The own inbox's receipts, signed.
    receipts: Vec<Signed>,
    batches: Vec<Batch>,
}

/// Builds an owner's epoch from every shard's route (in shard order, so ids increase along
/// each mailbox): the mailboxes' batches and their attestations (chained to `heads`), signed
/// with the own inbox's receipts as one batch.
fn prepare(
    shard: u32,
    key: &SigningKey,
    epoch: u64,
    routes: Vec<Routed>,
    heads: &HashMap<String, (Digest, u64)>,
    lie: Option<Lie>,
) -> Prepared {
    let mut statements: Vec<Statement> = Vec::new();
    let mut messages: BTreeMap<&str, Vec<(Delivered, Entry)>> = BTreeMap::new();
    for route in &routes {
        statements.extend(route.receipts.iter().cloned().map(Statement::Receipt));
        for (i, bundle) in route.bundles.iter().enumerate() {
            let (recipients_digest, common_digest) =
                route.digests.get(i).copied().unwrap_or_else(|| {
                    (recipients_hash(&bundle.recipients), common_hash(&bundle.common))
                });
            for (position, part) in &bundle.parts {
                let device = &bundle.recipients[*position as usize];
                let id = bundle.bundle.offset(*position).expect("within the epoch's indexes");
                let entry = Entry {
                    id,
                    bundle: bundle.bundle,
                    recipients: recipients_digest,
                    common: common_digest,
                    part: part_hash(part),
                };
                let message = Delivered {
                    id,
                    bundle: bundle.bundle,
                    recipients: bundle.recipients.clone(),
                    common: bundle.common.clone(),
                    part: part.clone(),
                };
                messages.entry(device.as_str()).or_default().push((message, entry));
            }
        }
    }
    let untold = match lie {
        Some(Lie::Fork) | None => None,
        Some(lie) => (!tell(lie, &mut messages)).then_some(lie),
    };
    let receipts = statements.len();
    let mut devices = Vec::with_capacity(messages.len());
    for (device, batch) in &messages {
        let (prev, from_epoch) =
            heads.get(*device).map_or(([0; 32], 1), |&(hash, last)| (hash, last + 1));
        statements.push(Statement::Attestation(Attestation {
            shard,
            device: (*device).to_owned(),
            from_epoch,
            to_epoch: epoch,
            prev,
            entries: batch.iter().map(|(_, entry)| *entry).collect(),
        }));
        devices.push(*device);
    }
    let signed = if statements.is_empty() {
        Vec::new()
    } else {
        Signed::sign_batch(statements, key).expect("statements of bounded size")
    };
    let (receipts_signed, attestations) = signed.split_at(receipts);
    let (fork, untold) = match (lie, attestations.first()) {
        (Some(Lie::Fork), Some(first)) => {
            let mut other = first.attestation().expect("an attestation").clone();
            other.entries.clear();
            let other = Signed::sign(Statement::Attestation(other), key).expect("signs");
            (Some((devices[0].to_owned(), other)), None)
        }
        (Some(Lie::Fork), None) => (None, Some(Lie::Fork)),
        _ => (None, untold),
    };
    let batches = devices
        .into_iter()
        .zip(attestations)
        .map(|(device, attestation)| Batch {
            device: device.to_owned(),
            attestation: attestation.clone(),
            messages: messages
                .remove(device)
                .expect("a batch")
                .into_iter()
                .map(|(m, _)| m)
                .collect(),
        })
        .collect();
    let receipts = receipts_signed.to_vec();
    drop(messages);
    let record = EpochRecord {
        epoch,
        bundles: routes.into_iter().flat_map(|r| r.bundles).collect(),
        statements: signed.iter().map(Signed::body_shared).collect(),
        signature: signed.first().map(Signed::signature),
    };
    Prepared { record, untold, fork, receipts, batches }
}

/// Tells `lie` in this epoch's `messages` (device → its messages and their entries, in id
/// order), if it fits; whether it did.
fn tell(lie: Lie, messages: &mut BTreeMap<&str, Vec<(Delivered, Entry)>>) -> bool {
    match lie {
        Lie::Drop => {
            for list in messages.values_mut().filter(|list| list.len() >= 2) {
                if let Some(i) = list.iter().position(|(m, _)| m.recipients.len() >= 2) {
                    list.remove(i);
                    return true;
                }
            }
            false
        }
        Lie::SwapRecipients => {
            for list in messages.values_mut() {
                let found = list.iter_mut().find(|(m, _)| {
                    m.recipients.len() >= 2 && m.id.position_in(m.bundle) != Some(0)
                });
                if let Some((message, entry)) = found {
                    let mut swapped = message.recipients.to_vec();
                    swapped[0] = "mallory".to_owned();
                    message.recipients = swapped.into();
                    *entry = message.entry();
                    return true;
                }
            }
            false
        }
        Lie::ReuseId => {
            let mut ordered: Vec<(&str, SeqId)> = messages
                .iter()
                .flat_map(|(device, list)| list.iter().map(move |(m, _)| (*device, m)))
                .filter(|(_, m)| m.id == m.bundle)
                .map(|(device, m)| (device, m.id))
                .collect();
            ordered.sort_by_key(|(_, id)| *id);
            let Some(&(first_device, first)) = ordered.first() else { return false };
            let Some(&(device, later)) = ordered.iter().find(|(d, _)| *d != first_device) else {
                return false;
            };
            let list = messages.get_mut(device).expect("its messages");
            let (message, entry) = list.iter_mut().find(|(m, _)| m.id == later).expect("found");
            message.id = first;
            message.bundle = first;
            *entry = message.entry();
            list.sort_by_key(|(m, _)| m.id);
            true
        }
        Lie::Reorder => {
            for list in messages.values_mut() {
                for i in 0..list.len() {
                    for j in i + 1..list.len() {
                        let (a, b) = (&list[i].0, &list[j].0);
                        let same_place = a.id.position_in(a.bundle) == b.id.position_in(b.bundle);
                        if same_place && a.bundle != b.bundle && a.recipients.len() >= 2 {
                            let (a, b) = (a.clone(), b.clone());
                            list[i].0 = Delivered { id: a.id, bundle: a.bundle, ..b.clone() };
                            list[j].0 = Delivered { id: b.id, bundle: b.bundle, ..a };
                            list[i].1 = list[i].0.entry();
                            list[j].1 = list[j].0.entry();
                            return true;
                        }
                    }
                }
            }
            false
        }
        Lie::Fork => false,
    }
}
