//! A relay in memory, honest unless told to lie, for tests and vectors: shards number the
//! bundles they take in, each epoch's messages reach their recipients' mailboxes in id order,
//! and each mailbox with messages in an epoch gets an attestation chained to its last. Its keys
//! are not secret (shard `s` signs with the seed of 32 bytes `s + 1`). [`scenarios`] are the
//! lies of issue 17, each with what the verifier must make of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use ed25519_dalek::SigningKey;

use crate::hash::{Digest, common_hash, recipients_hash};
use crate::{Attestation, Delivered, KeyRing, Receipt, SeqId, Signed, Statement};

/// Shard `shard`'s signing key: the seed of 32 bytes `shard + 1` (shards 0 to 254).
///
/// # Panics
///
/// For shards above 254.
pub fn key(shard: u32) -> SigningKey {
    SigningKey::from_bytes(&[u8::try_from(shard + 1).expect("few shards"); 32])
}

/// A running shard 0 with [`key`]`(0)`, an epoch every 5 ms and the default limits, its store
/// in `dir`: the tests' shard.
///
/// # Panics
///
/// If the store cannot be opened.
pub fn shard_in(dir: &std::path::Path) -> crate::shard::Shard {
    crate::shard::Shard::open(crate::shard::Config {
        shard: 0,
        shards: 1,
        key: key(0),
        epoch_every: std::time::Duration::from_millis(5),
        limits: crate::shard::Limits::default(),
        store: dir.join("shard.sqlite"),
    })
    .expect("the shard's store opens")
}

/// The public keys of shards `0..shards`.
pub fn keys(shards: u32) -> KeyRing {
    let mut ring = KeyRing::new();
    for shard in 0..shards {
        ring.insert(shard, key(shard).verifying_key());
    }
    ring
}

/// The devices' mailboxes live on shard `home(device)`.
pub fn home(device: &str, shards: u32) -> u32 {
    device.bytes().map(u32::from).sum::<u32>() % shards
}

/// One device's delivery of one epoch: the attestation and the messages it lists.
#[derive(Clone, Debug)]
pub struct Batch {
    pub device: String,
    pub attestation: Signed,
    pub messages: Vec<Delivered>,
}

/// The relay: `shards` shards, the current epoch, and what it has signed.
#[derive(Debug)]
pub struct Relay {
    pub shards: u32,
    pub epoch: u64,
    next_index: Vec<u32>,
    /// This epoch's messages, by recipient.
    pending: BTreeMap<String, Vec<Delivered>>,
    /// This epoch's receipts, by shard, to be signed with its attestations.
    pending_receipts: BTreeMap<u32, Vec<Receipt>>,
    /// Each device's attestations: their hashes and last epochs, the last last.
    heads: BTreeMap<String, Vec<(Digest, u64)>>,
    pub receipts: Vec<Signed>,
    pub lists: Vec<Vec<String>>,
}

impl Relay {
    /// A relay of `shards` shards at epoch 1.
    pub fn new(shards: u32) -> Relay {
        Relay {
            shards,
            epoch: 1,
            next_index: vec![0; shards as usize],
            pending: BTreeMap::new(),
            pending_receipts: BTreeMap::new(),
            heads: BTreeMap::new(),
            receipts: Vec::new(),
            lists: Vec::new(),
        }
    }

    /// Shard `inbox` takes in a bundle: `common` for all, `parts[i]` for `recipients[i]`.
    pub fn send(
        &mut self,
        inbox: u32,
        recipients: &[&str],
        common: &[u8],
        parts: &[&[u8]],
    ) -> SeqId {
        let index = &mut self.next_index[inbox as usize];
        let bundle = SeqId { epoch: self.epoch, shard: inbox, index: *index };
        *index += u32::try_from(recipients.len()).expect("few");
        let list: Vec<String> = recipients.iter().map(|r| (*r).to_owned()).collect();
        let shared: Arc<[String]> = list.clone().into();
        for (i, device) in list.iter().enumerate() {
            let message = Delivered {
                id: bundle.offset(u32::try_from(i).expect("few")).expect("in range"),
                bundle,
                recipients: shared.clone(),
                common: Bytes::copy_from_slice(common),
                part: Bytes::copy_from_slice(parts[i]),
            };
            self.pending.entry(device.clone()).or_default().push(message);
        }
        let receipt = Receipt {
            shard: inbox,
            bundle,
            recipients: recipients_hash(&list),
            common: common_hash(common),
            count: u32::try_from(list.len()).expect("few"),
        };
        self.pending_receipts.entry(inbox).or_default().push(receipt);
        self.lists.push(list);
        bundle
    }

    /// Ends the epoch: each device with messages gets them in id order, attested. Each shard
    /// signs its epoch's receipts and attestations as one batch (one signature).
    pub fn end_epoch(&mut self) -> Vec<Batch> {
        let pending = std::mem::take(&mut self.pending);
        let mut by_shard: BTreeMap<u32, Vec<Statement>> = BTreeMap::new();
        for (shard, receipts) in std::mem::take(&mut self.pending_receipts) {
            by_shard.entry(shard).or_default().extend(receipts.into_iter().map(Statement::Receipt));
        }
        let mut deliveries = Vec::new();
        for (device, mut messages) in pending {
            messages.sort_by_key(|m| m.id);
            let statement = self.statement(&device, self.epoch, &messages);
            by_shard.entry(statement.shard).or_default().push(Statement::Attestation(statement));
            deliveries.push((device, messages));
        }
        let mut attestations: BTreeMap<String, Signed> = BTreeMap::new();
        for (shard, statements) in by_shard {
            for signed in Signed::sign_batch(statements, &key(shard)).expect("signs") {
                match signed.attestation() {
                    Some(a) => {
                        self.heads
                            .entry(a.device.clone())
                            .or_default()
                            .push((signed.hash(), self.epoch));
                        attestations.insert(a.device.clone(), signed);
                    }
                    None => self.receipts.push(signed),
                }
            }
        }
        self.epoch += 1;
        deliveries
            .into_iter()
            .map(|(device, messages)| {
                let attestation = attestations.remove(&device).expect("attested");
                Batch { device, attestation, messages }
            })
            .collect()
    }

    /// The attestation of `messages` for `device` up to `epoch`, chained to its last, by its
    /// home shard.
    fn statement(&self, device: &str, epoch: u64, messages: &[Delivered]) -> Attestation {
        let (prev, last) =
            self.heads.get(device).and_then(|h| h.last()).copied().unwrap_or(([0; 32], 0));
        Attestation {
            shard: home(device, self.shards),
            device: device.to_owned(),
            from_epoch: last + 1,
            to_epoch: epoch,
            prev,
            entries: messages.iter().map(Delivered::entry).collect(),
        }
    }

    /// Signs, alone, an attestation of `messages` for `device` up to `epoch`, chained to its
    /// last, as its home shard.
    pub fn attest(&mut self, device: &str, epoch: u64, messages: Vec<Delivered>) -> Batch {
        let attestation = sign(self.statement(device, epoch, &messages));
        self.heads.entry(device.to_owned()).or_default().push((attestation.hash(), epoch));
        Batch { device: device.to_owned(), attestation, messages }
    }

    /// Replaces `device`'s last attestation with one of `messages` instead (a lie, when they
    /// are not what was sent).
    pub fn reattest(&mut self, device: &str, messages: Vec<Delivered>) -> Batch {
        let (_, epoch) = self.heads.get_mut(device).and_then(Vec::pop).expect("attested before");
        self.attest(device, epoch, messages)
    }
}

/// Signs `statement` with its shard's key.
pub fn sign(statement: Attestation) -> Signed {
    let shard = statement.shard;
    Signed::sign(Statement::Attestation(statement), &key(shard)).expect("signs")
}

/// A history to verify: batches in the order they are offered (one verifier per device, fresh
/// at the start), and the receipts and recipient lists known to whoever compares statements.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub shards: u32,
    pub batches: Vec<Batch>,
    pub receipts: Vec<Signed>,
    pub lists: Vec<Vec<String>>,
}

impl Scenario {
    fn new(name: &'static str, relay: Relay, batches: Vec<Batch>) -> Scenario {
        Scenario {
            name,
            shards: relay.shards,
            batches,
            receipts: relay.receipts,
            lists: relay.lists,
        }
    }

    /// Every statement: the receipts, then the batches' attestations.
    pub fn statements(&self) -> Vec<Signed> {
        self.receipts
            .iter()
            .cloned()
            .chain(self.batches.iter().map(|b| b.attestation.clone()))
            .collect()
    }
}

/// Every scenario, honest first.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        honest(),
        dropped_message(),
        swapped_recipients(),
        reused_id(),
        reordered(),
        forked_view(),
        chain_faults(),
        bad_deliveries(),
    ]
}

fn index_of(batches: &[Batch], device: &str) -> usize {
    batches.iter().position(|b| b.device == device).expect("the device has a batch")
}

/// Three devices on two shards over three epochs (nothing in the second).
pub fn honest() -> Scenario {
    let mut relay = Relay::new(2);
    let mut batches = Vec::new();
    relay.send(0, &["alice-phone", "alice-laptop", "bob"], b"hello", &[b"p1", b"p2", b"p3"]);
    relay.send(1, &["bob"], b"just bob", &[b"p"]);
    batches.extend(relay.end_epoch());
    relay.end_epoch();
    relay.send(1, &["alice-laptop", "bob"], b"second", &[b"q1", b"q2"]);
    relay.send(0, &["alice-phone"], b"note to self", &[b"r"]);
    batches.extend(relay.end_epoch());
    Scenario::new("honest", relay, batches)
}

/// Bob's message of a bundle to alice and bob is left out of his delivery and attestation.
pub fn dropped_message() -> Scenario {
    let mut relay = Relay::new(2);
    relay.send(0, &["alice-phone", "bob"], b"hello", &[b"p1", b"p2"]);
    let mut batches = relay.end_epoch();
    let bob = index_of(&batches, "bob");
    batches[bob] = relay.reattest("bob", Vec::new());
    Scenario::new("dropped message", relay, batches)
}

/// Bob is shown a bundle to alice and bob as sent to carol and bob.
pub fn swapped_recipients() -> Scenario {
    let mut relay = Relay::new(2);
    relay.send(0, &["alice-phone", "bob"], b"hello", &[b"p1", b"p2"]);
    let mut batches = relay.end_epoch();
    let bob = index_of(&batches, "bob");
    let mut messages = batches[bob].messages.clone();
    messages[0].recipients = vec!["carol".to_owned(), "bob".to_owned()].into();
    batches[bob] = relay.reattest("bob", messages);
    Scenario::new("swapped recipient list", relay, batches)
}

/// Bob's message is given the id of alice's.
pub fn reused_id() -> Scenario {
    let mut relay = Relay::new(1);
    relay.send(0, &["alice-phone"], b"one", &[b"a"]);
    relay.send(0, &["bob"], b"two", &[b"b"]);
    let mut batches = relay.end_epoch();
    let bob = index_of(&batches, "bob");
    let mut messages = batches[bob].messages.clone();
    messages[0].id = SeqId { epoch: 1, shard: 0, index: 0 };
    messages[0].bundle = messages[0].id;
    batches[bob] = relay.reattest("bob", messages);
    Scenario::new("reused sequence id", relay, batches)
}

/// Of two bundles to alice and bob, bob gets each one's content under the other's ids.
pub fn reordered() -> Scenario {
    let mut relay = Relay::new(1);
    relay.send(0, &["alice-phone", "bob"], b"first", &[b"a1", b"b1"]);
    relay.send(0, &["alice-phone", "bob"], b"second", &[b"a2", b"b2"]);
    let mut batches = relay.end_epoch();
    let bob = index_of(&batches, "bob");
    let mut messages = batches[bob].messages.clone();
    let (first, second) = (messages[0].clone(), messages[1].clone());
    messages[0] = Delivered { id: first.id, bundle: first.bundle, ..second.clone() };
    messages[1] = Delivered { id: second.id, bundle: second.bundle, ..first };
    batches[bob] = relay.reattest("bob", messages);
    Scenario::new("reordered messages", relay, batches)
}

/// Bob's two honest epochs, then another attestation of his second epoch, without its message,
/// as the relay shows it to someone comparing with bob.
pub fn forked_view() -> Scenario {
    let mut relay = Relay::new(2);
    relay.send(0, &["bob"], b"one", &[b"a"]);
    let mut batches = relay.end_epoch();
    relay.send(0, &["bob"], b"two", &[b"b"]);
    batches.extend(relay.end_epoch());
    let shown = sign(Attestation {
        entries: Vec::new(),
        ..batches[1].attestation.attestation().expect("an attestation").clone()
    });
    batches.push(Batch { device: "bob".into(), attestation: shown, messages: Vec::new() });
    Scenario::new("forked view", relay, batches)
}

/// After bob's first epoch: a next attestation not naming it, one naming it but skipping an
/// epoch, one from further on (some missing in between), an impossible one, then the right one.
pub fn chain_faults() -> Scenario {
    let mut relay = Relay::new(1);
    relay.send(0, &["bob"], b"one", &[b"a"]);
    let mut batches = relay.end_epoch();
    let first = batches[0].attestation.clone();
    let head = first.attestation().expect("an attestation").clone();
    let next = |from, to, prev| {
        let statement = Attestation {
            from_epoch: from,
            to_epoch: to,
            prev,
            entries: Vec::new(),
            ..head.clone()
        };
        Batch { device: "bob".into(), attestation: sign(statement), messages: Vec::new() }
    };
    batches.push(next(2, 5, [7; 32]));
    batches.push(next(3, 5, first.hash()));
    batches.push(next(3, 5, [7; 32]));
    batches.push(next(6, 5, first.hash()));
    batches.push(next(2, 5, first.hash()));
    Scenario::new("chain faults", relay, batches)
}

/// Deliveries that do not match their attestations, a batch offered to the wrong device, and
/// a statement signed with another shard's key; then the real delivery, twice.
pub fn bad_deliveries() -> Scenario {
    let mut relay = Relay::new(2);
    relay.send(0, &["alice-phone", "bob"], b"hello", &[b"p1", b"p2"]);
    let honest = relay.end_epoch();
    let bob = honest[index_of(&honest, "bob")].clone();
    let alice = honest[index_of(&honest, "alice-phone")].clone();
    let mut altered = bob.messages.clone();
    altered[0].common = Bytes::from_static(b"HELLO");
    let statement = bob.attestation.attestation().expect("an attestation").clone();
    let shard = statement.shard;
    let forged = Signed::sign(Statement::Attestation(statement), &key(1 - shard)).expect("signs");
    let batches = vec![
        Batch { messages: altered, ..bob.clone() },
        Batch { messages: Vec::new(), ..bob.clone() },
        Batch { device: "bob".into(), ..alice },
        Batch { attestation: forged, ..bob.clone() },
        bob.clone(),
        bob,
    ];
    Scenario::new("bad deliveries", relay, batches)
}

/// What the verifier makes of each batch in turn — `ok`, `signature`, `not this device`,
/// `misbehaved: <proof kind>`, `missing from <epoch>`, `mismatch` — and the proof
/// [`crate::proof::find`] finds among all the scenario's statements, if any.
pub fn verdicts(scenario: &Scenario) -> (Vec<String>, Option<crate::Proof>) {
    use crate::{DeviceVerifier, Rejected};
    let mut verifiers: BTreeMap<&str, DeviceVerifier> = BTreeMap::new();
    let verdicts = scenario
        .batches
        .iter()
        .map(|batch| {
            let verifier = verifiers
                .entry(batch.device.as_str())
                .or_insert_with(|| DeviceVerifier::new(&batch.device, keys(scenario.shards)));
            match verifier.accept(&batch.attestation, &batch.messages) {
                Ok(()) => "ok".to_owned(),
                Err(Rejected::Signature(_)) => "signature".to_owned(),
                Err(Rejected::NotThisDevice) => "not this device".to_owned(),
                Err(Rejected::Misbehaved(proof)) => format!("misbehaved: {}", proof.kind()),
                Err(Rejected::Missing { from_epoch }) => format!("missing from {from_epoch}"),
                Err(Rejected::Mismatch(_)) => "mismatch".to_owned(),
            }
        })
        .collect();
    (verdicts, crate::proof::find(&scenario.statements(), &scenario.lists, &keys(scenario.shards)))
}
