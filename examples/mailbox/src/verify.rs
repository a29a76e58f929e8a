//! A device's check of what it is delivered (docs/mailbox.md, "Verifying"): each batch against
//! its attestation, and each attestation against the device's chain.

use std::sync::Arc;

use bytes::Bytes;

use crate::SeqId;
use crate::hash::{common_hash, part_hash, recipients_hash};
use crate::proof::Proof;
use crate::statement::{Entry, KeyRing, SignatureError, Signed};

/// A message as a device receives it. The bundle's recipient list and common ciphertext are
/// shared by its messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub id: SeqId,
    pub bundle: SeqId,
    /// The bundle's recipient list, in the sender's order.
    pub recipients: Arc<[String]>,
    /// The ciphertext common to every recipient.
    pub common: Bytes,
    /// This recipient's part.
    pub part: Bytes,
}

impl Delivered {
    /// The entry an attestation lists for this message.
    pub fn entry(&self) -> Entry {
        Entry {
            id: self.id,
            bundle: self.bundle,
            recipients: recipients_hash(&self.recipients),
            common: common_hash(&self.common),
            part: part_hash(&self.part),
        }
    }
}

/// Why a batch was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("{0}")]
    Signature(#[from] SignatureError),
    #[error("the statement is not an attestation for this device")]
    NotThisDevice,
    /// The relay contradicted itself: the proof convinces anyone with the shards' keys.
    #[error("the relay misbehaved ({}): a proof is attached", .0.kind())]
    Misbehaved(Box<Proof>),
    /// Attestations between the last accepted and this one are missing: fetch them from
    /// `from_epoch` and offer them first.
    #[error("attestations from epoch {from_epoch} are missing")]
    Missing { from_epoch: u64 },
    /// What was delivered is not what the attestation lists (the signed statement stands;
    /// the delivery was damaged or incomplete): fetch the messages again.
    #[error("the delivery does not match its attestation: {0}")]
    Mismatch(String),
}

/// One device's verifier: the shards' keys and the last attestation it accepted (the head of
/// its chain).
#[derive(Clone, Debug)]
pub struct DeviceVerifier {
    device: String,
    keys: KeyRing,
    head: Option<Signed>,
}

impl DeviceVerifier {
    /// A verifier for `device` that trusts the first attestation it is given as the start of
    /// the chain (or, with [`DeviceVerifier::resume`], one it accepted before).
    pub fn new(device: &str, keys: KeyRing) -> DeviceVerifier {
        DeviceVerifier { device: device.to_owned(), keys, head: None }
    }

    /// A verifier continuing from `head`, the last attestation accepted before.
    pub fn resume(device: &str, keys: KeyRing, head: Signed) -> DeviceVerifier {
        DeviceVerifier { device: device.to_owned(), keys, head: Some(head) }
    }

    /// The last attestation accepted.
    pub fn head(&self) -> Option<&Signed> {
        self.head.as_ref()
    }

    /// Checks `batch` (the device's messages, in order) against `signed`, its attestation,
    /// and the attestation against the chain; on success `signed` becomes the head. An
    /// attestation already accepted is accepted again (a repeated delivery).
    ///
    /// # Errors
    ///
    /// See [`Rejected`]: only [`Rejected::Misbehaved`] blames the relay.
    pub fn accept(&mut self, signed: &Signed, batch: &[Delivered]) -> Result<(), Rejected> {
        signed.verify(&self.keys)?;
        let attestation = match signed.attestation() {
            Some(a) if a.device == self.device => a,
            _ => return Err(Rejected::NotThisDevice),
        };
        if attestation.broken_rule().is_some() {
            return Err(misbehaved(Proof::Invalid { statement: signed.clone() }));
        }
        if let Some(head) = &self.head {
            let last = head.attestation().expect("the head is an attestation");
            if head.body() == signed.body() {
                return check_batch(&self.device, attestation.entries.as_slice(), batch);
            }
            if attestation.from_epoch <= last.to_epoch {
                if attestation.to_epoch >= last.from_epoch {
                    return Err(misbehaved(Proof::Fork { a: head.clone(), b: signed.clone() }));
                }
                return Err(Rejected::Mismatch(format!(
                    "an attestation for epochs {}..={}, before the last accepted",
                    attestation.from_epoch, attestation.to_epoch
                )));
            }
            let adjacent = attestation.from_epoch == last.to_epoch + 1;
            let follows = attestation.prev == head.hash();
            match (adjacent, follows) {
                (true, true) => {}
                (true, false) => {
                    return Err(misbehaved(Proof::ChainBreak {
                        a: head.clone(),
                        b: signed.clone(),
                    }));
                }
                (false, true) => {
                    return Err(misbehaved(Proof::Skipped { a: head.clone(), b: signed.clone() }));
                }
                (false, false) => return Err(Rejected::Missing { from_epoch: last.to_epoch + 1 }),
            }
        }
        check_batch(&self.device, &attestation.entries, batch)?;
        self.head = Some(signed.clone());
        Ok(())
    }
}

fn misbehaved(proof: Proof) -> Rejected {
    Rejected::Misbehaved(Box::new(proof))
}

fn check_batch(device: &str, entries: &[Entry], batch: &[Delivered]) -> Result<(), Rejected> {
    if entries.len() != batch.len() {
        return Err(Rejected::Mismatch(format!(
            "{} messages delivered, {} attested",
            batch.len(),
            entries.len()
        )));
    }
    for (entry, message) in entries.iter().zip(batch) {
        if message.entry() != *entry {
            return Err(Rejected::Mismatch(format!(
                "message {} differs from its entry",
                message.id
            )));
        }
        let position = message.id.position_in(message.bundle).map(|p| p as usize);
        if position.and_then(|p| message.recipients.get(p)).map(String::as_str) != Some(device) {
            return Err(Rejected::Mismatch(format!(
                "message {} is not addressed to this device at its position",
                message.id
            )));
        }
    }
    Ok(())
}
