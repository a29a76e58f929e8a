//! A shard (docs/mailbox.md, "The shard"): takes bundles in, ends an epoch every
//! `epoch_every`, numbers the epoch's bundles, appends their messages to the recipients'
//! mailboxes, attests each mailbox that got messages (chained to its last attestation), signs
//! the epoch's receipts and attestations as one batch, commits the epoch to its store in one
//! transaction, and only then answers the senders and pushes each device its batch. While an
//! epoch is committed, the next one collects.
//!
//! This shard holds every mailbox (one shard); several shards routing to each other is the next
//! step (docs/mailbox.md).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;

use crate::hash::{Digest, common_hash, part_hash, recipients_hash};
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
    /// This shard's number (in sequence ids and statements).
    pub shard: u32,
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
    bundle: Bundle,
    reply: oneshot::Sender<Result<Sent, Refused>>,
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
    /// Messages and bytes on their way (in the epoch collecting or committing).
    pending_messages: usize,
    pending_bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    /// The epoch collecting.
    epoch: u64,
    collecting: Vec<Pending>,
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

/// A shard; cheap to clone. [`Shard::run`] ends its epochs.
#[derive(Clone, Debug)]
pub struct Shard {
    config: Arc<Config>,
    state: Arc<Mutex<State>>,
    store: Arc<Mutex<Store>>,
    deliveries: broadcast::Sender<Arc<Batch>>,
    /// One epoch ends at a time.
    ending: Arc<tokio::sync::Mutex<()>>,
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
    pub fn open(config: Config) -> Result<Shard, StoreError> {
        let store = Store::open(&config.store)?;
        let acked: HashMap<String, SeqId> = store.acks()?.into_iter().collect();
        let mut state = State { epoch: store.last_epoch()? + 1, ..State::default() };
        for record in store.epochs()? {
            let mut statements = Vec::new();
            for bytes in &record.statements {
                statements.push(Signed::decode(bytes).map_err(|_| StoreError::Corrupt {
                    epoch: record.epoch,
                    what: "a statement",
                })?);
            }
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
        Ok(Shard {
            config: Arc::new(config),
            state: Arc::new(Mutex::new(state)),
            store: Arc::new(Mutex::new(store)),
            deliveries: broadcast::channel(4096).0,
            ending: Arc::new(tokio::sync::Mutex::new(())),
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

    /// Its Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.config.key.verifying_key().to_bytes()
    }

    /// Bundles taken in and waiting for the epoch collecting now to end.
    pub fn waiting(&self) -> usize {
        self.state().collecting.len()
    }

    /// The epoch collecting now.
    pub fn epoch(&self) -> u64 {
        self.state().epoch
    }

    /// Takes `bundle` in; resolves once its epoch is committed.
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
        let mut seen = HashSet::new();
        for device in &bundle.recipients {
            if device.is_empty() || device.len() > limits.device_id {
                return Err(Refused::BadDevice(device.clone(), limits.device_id));
            }
            if !seen.insert(device.as_str()) {
                return Err(Refused::Duplicate(device.clone()));
            }
        }
        let bytes = size(&bundle);
        if bytes > limits.bundle_bytes {
            return Err(Refused::TooLarge(bytes, limits.bundle_bytes));
        }
        let (reply, answer) = oneshot::channel();
        {
            let mut state = self.state();
            if state.stopped {
                return Err(Refused::Stopped);
            }
            if state.collecting.len() >= limits.pending {
                return Err(Refused::Busy(state.collecting.len()));
            }
            for (device, part) in bundle.recipients.iter().zip(&bundle.parts) {
                let mailbox = state.mailboxes.get(device);
                let messages = mailbox.map_or(0, |m| m.messages + m.pending_messages);
                let held = mailbox.map_or(0, |m| m.bytes + m.pending_bytes);
                if messages + 1 > limits.mailbox_messages
                    || held + bundle.common.len() + part.len() > limits.mailbox_bytes
                {
                    return Err(Refused::MailboxFull(device.clone()));
                }
            }
            for (device, part) in bundle.recipients.iter().zip(&bundle.parts) {
                let mailbox = state.mailboxes.entry(device.clone()).or_default();
                mailbox.pending_messages += 1;
                mailbox.pending_bytes += bundle.common.len() + part.len();
            }
            state.collecting.push(Pending { bundle, reply });
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
        }
        deleted
    }

    /// Ends an epoch every `epoch_every` until `stop`; then ends the one collecting and refuses
    /// what comes after.
    pub async fn run(&self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.epoch_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                () = stop.cancelled() => true,
            };
            if stopping {
                self.state().stopped = true;
            }
            self.end_epoch().await;
            if stopping {
                return;
            }
        }
    }

    /// Ends the epoch collecting: numbers, attests, signs, commits, answers, delivers.
    pub async fn end_epoch(&self) {
        let _ending = self.ending.lock().await;
        let (epoch, pending, acks, forget, heads, lie) = {
            let mut state = self.state();
            if state.collecting.is_empty() && state.acks.is_empty() && state.forget.is_empty() {
                return;
            }
            let epoch = state.epoch;
            state.epoch += 1;
            let pending = std::mem::take(&mut state.collecting);
            let heads: HashMap<String, (Digest, u64)> = pending
                .iter()
                .flat_map(|p| p.bundle.recipients.iter())
                .filter_map(|d| Some((d.clone(), state.mailboxes.get(d)?.link?)))
                .collect();
            (
                epoch,
                pending,
                std::mem::take(&mut state.acks),
                std::mem::take(&mut state.forget),
                heads,
                state.lie.take(),
            )
        };
        let shard = self.config.shard;
        let key = self.config.key.clone();
        let store = self.store.clone();
        let work = tokio::task::spawn_blocking(move || {
            let mut prepared = prepare(shard, &key, epoch, &pending, &heads, lie);
            let record = (!prepared.record.bundles.is_empty()).then_some(&prepared.record);
            let committed = store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .commit(epoch, record, &acks, &forget)
                .map_err(|e| e.to_string());
            (prepared.acks, prepared.forget) = (acks, forget);
            (prepared, pending, committed)
        });
        let (prepared, pending, committed) = match work.await {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(shard, epoch, error = %e, "the epoch's commit did not finish");
                return;
            }
        };
        let mut state = self.state();
        for p in &pending {
            for (device, part) in p.bundle.recipients.iter().zip(&p.bundle.parts) {
                if let Some(mailbox) = state.mailboxes.get_mut(device) {
                    mailbox.pending_messages -= 1;
                    mailbox.pending_bytes -= p.bundle.common.len() + part.len();
                }
            }
        }
        if let Err(e) = committed {
            tracing::error!(shard, epoch, error = %e, "cannot store the epoch; its sends are refused");
            // The acknowledgements and deletions go with the next commit.
            state.acks.extend(prepared.acks);
            state.forget.extend(prepared.forget);
            drop(state);
            for p in pending {
                let _ = p.reply.send(Err(Refused::Storage(e.clone())));
            }
            return;
        }
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
            mailbox.link = Some((batch.attestation.hash(), epoch));
            mailbox.messages += batch.messages.len();
            mailbox.bytes +=
                batch.messages.iter().map(|m| m.common.len() + m.part.len()).sum::<usize>();
            mailbox.batches.push_back((epoch, batch.clone()));
        }
        drop(state);
        for (p, sent) in pending.into_iter().zip(prepared.sent) {
            let _ = p.reply.send(Ok(sent));
        }
        for batch in batches {
            let _ = self.deliveries.send(batch);
        }
    }
}

struct Prepared {
    record: EpochRecord,
    /// A lie that did not fit this epoch, to tell later.
    untold: Option<Lie>,
    /// A forked attestation told ([`Lie::Fork`]): the device and the other attestation.
    fork: Option<(String, Signed)>,
    acks: Vec<(String, SeqId)>,
    forget: Vec<u64>,
    sent: Vec<Sent>,
    batches: Vec<Batch>,
}

/// Numbers the epoch's bundles in the order they came, builds the mailboxes' batches and their
/// attestations (chained to `heads`), and signs them with the receipts as one batch.
fn prepare(
    shard: u32,
    key: &SigningKey,
    epoch: u64,
    pending: &[Pending],
    heads: &HashMap<String, (Digest, u64)>,
    lie: Option<Lie>,
) -> Prepared {
    let mut index = 0u32;
    let mut statements = Vec::with_capacity(pending.len() * 2);
    let mut bundles = Vec::with_capacity(pending.len());
    let mut messages: BTreeMap<&str, Vec<(Delivered, Entry)>> = BTreeMap::new();
    for p in pending {
        let count = p.bundle.recipients.len() as u32;
        let bundle = SeqId { epoch, shard, index };
        index += count;
        let recipients: Arc<[String]> = p.bundle.recipients.clone().into();
        let (recipients_digest, common_digest) =
            (recipients_hash(&recipients), common_hash(&p.bundle.common));
        statements.push(Statement::Receipt(Receipt {
            shard,
            bundle,
            recipients: recipients_digest,
            common: common_digest,
            count,
        }));
        for (position, (device, part)) in
            p.bundle.recipients.iter().zip(&p.bundle.parts).enumerate()
        {
            let id = bundle.offset(position as u32).expect("within the epoch's indexes");
            let entry = Entry {
                id,
                bundle,
                recipients: recipients_digest,
                common: common_digest,
                part: part_hash(part),
            };
            let message = Delivered {
                id,
                bundle,
                recipients: recipients.clone(),
                common: p.bundle.common.clone(),
                part: part.clone(),
            };
            messages.entry(device.as_str()).or_default().push((message, entry));
        }
        bundles.push(StoredBundle {
            bundle,
            recipients,
            common: p.bundle.common.clone(),
            parts: p
                .bundle
                .parts
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, part)| (i as u32, part))
                .collect(),
        });
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
    let signed = Signed::sign_batch(statements, key).expect("statements of bounded size");
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
    let sent = pending
        .iter()
        .zip(receipts_signed)
        .map(|(_, receipt)| Sent {
            bundle: receipt.receipt().expect("a receipt").bundle,
            receipt: receipt.clone(),
        })
        .collect();
    let record = EpochRecord {
        epoch,
        bundles,
        statements: signed.iter().map(|s| s.bytes().to_vec()).collect(),
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
    Prepared { record, untold, fork, acks: Vec::new(), forget: Vec::new(), sent, batches }
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
