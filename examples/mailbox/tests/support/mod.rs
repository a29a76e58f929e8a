//! An honest relay in memory, for the verifier's tests: shards number the bundles they take in,
//! each epoch's messages reach their recipients' mailboxes in id order, and each mailbox with
//! messages in an epoch gets an attestation chained to its last. Tests then lie on its behalf.
#![allow(dead_code)]

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use mailbox::hash::{Digest, common_hash, recipients_hash};
use mailbox::{Attestation, Delivered, KeyRing, Receipt, SeqId, Signed, Statement};

pub(crate) fn key(shard: u32) -> SigningKey {
    SigningKey::from_bytes(&[u8::try_from(shard + 1).expect("few shards"); 32])
}

pub(crate) fn keys(shards: u32) -> KeyRing {
    let mut ring = KeyRing::new();
    for shard in 0..shards {
        ring.insert(shard, key(shard).verifying_key());
    }
    ring
}

/// The devices' mailboxes live on shard `home(device)`.
pub(crate) fn home(device: &str, shards: u32) -> u32 {
    device.bytes().map(u32::from).sum::<u32>() % shards
}

/// One device's delivery of one epoch: the attestation and the messages it lists.
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    pub(crate) device: String,
    pub(crate) attestation: Signed,
    pub(crate) messages: Vec<Delivered>,
}

#[derive(Debug)]
pub(crate) struct Relay {
    pub(crate) shards: u32,
    pub(crate) epoch: u64,
    next_index: Vec<u32>,
    /// This epoch's messages, by recipient.
    pending: BTreeMap<String, Vec<Delivered>>,
    /// Each device's attestations: their hashes and last epochs, the last last.
    heads: BTreeMap<String, Vec<(Digest, u64)>>,
    pub(crate) receipts: Vec<Signed>,
    pub(crate) lists: Vec<Vec<String>>,
}

impl Relay {
    pub(crate) fn new(shards: u32) -> Relay {
        Relay {
            shards,
            epoch: 1,
            next_index: vec![0; shards as usize],
            pending: BTreeMap::new(),
            heads: BTreeMap::new(),
            receipts: Vec::new(),
            lists: Vec::new(),
        }
    }

    /// Shard `inbox` takes in a bundle: `common` for all, `parts[i]` for `recipients[i]`.
    pub(crate) fn send(
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
        for (i, device) in list.iter().enumerate() {
            let message = Delivered {
                id: bundle.offset(u32::try_from(i).expect("few")).expect("in range"),
                bundle,
                recipients: list.clone(),
                common: common.to_vec(),
                part: parts[i].to_vec(),
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
        self.receipts.push(Signed::sign(Statement::Receipt(receipt), &key(inbox)).expect("signs"));
        self.lists.push(list);
        bundle
    }

    /// Ends the epoch: each device with messages gets them in id order, attested.
    pub(crate) fn end_epoch(&mut self) -> Vec<Batch> {
        let pending = std::mem::take(&mut self.pending);
        let mut batches = Vec::new();
        for (device, mut messages) in pending {
            messages.sort_by_key(|m| m.id);
            let batch = self.attest(&device, self.epoch, messages);
            batches.push(batch);
        }
        self.epoch += 1;
        batches
    }

    /// Signs an attestation of `messages` for `device` up to `epoch`, chained to its last, as
    /// its home shard.
    pub(crate) fn attest(&mut self, device: &str, epoch: u64, messages: Vec<Delivered>) -> Batch {
        let (prev, last) =
            self.heads.get(device).and_then(|h| h.last()).copied().unwrap_or(([0; 32], 0));
        let statement = Attestation {
            shard: home(device, self.shards),
            device: device.to_owned(),
            from_epoch: last + 1,
            to_epoch: epoch,
            prev,
            entries: messages.iter().map(Delivered::entry).collect(),
        };
        let attestation = sign(statement);
        self.heads.entry(device.to_owned()).or_default().push((attestation.hash(), epoch));
        Batch { device: device.to_owned(), attestation, messages }
    }

    /// Replaces `device`'s last attestation with one of `messages` instead (a lie, when they
    /// are not what was sent).
    pub(crate) fn reattest(&mut self, device: &str, messages: Vec<Delivered>) -> Batch {
        let (_, epoch) = self.heads.get_mut(device).and_then(Vec::pop).expect("attested before");
        self.attest(device, epoch, messages)
    }
}

pub(crate) fn sign(statement: Attestation) -> Signed {
    let shard = statement.shard;
    Signed::sign(Statement::Attestation(statement), &key(shard)).expect("signs")
}
