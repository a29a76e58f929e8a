//! Proofs of a relay's misbehaviour: signed statements that cannot all be true, checkable by
//! anyone with the shards' public keys (docs/mailbox.md, "Proofs").

use std::collections::BTreeMap;

use crate::SeqId;
use crate::hash::{Digest, recipients_hash};
use crate::statement::{Attestation, Entry, KeyRing, SignatureError, Signed, Statement};

/// Signed statements that cannot all be true.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proof {
    /// One statement that breaks a rule every honest statement keeps.
    Invalid { statement: Signed },
    /// Two different attestations for one device vouching for a common epoch.
    Fork { a: Signed, b: Signed },
    /// Attestations for one device for adjacent ranges, the later not naming the earlier as
    /// its predecessor.
    ChainBreak { a: Signed, b: Signed },
    /// An attestation naming another as its predecessor without starting where it ends
    /// (epochs in between that nobody vouched for).
    Skipped { a: Signed, b: Signed },
    /// Two statements that disagree about `id`: the same message id delivered to two devices
    /// or with different contents, or the same bundle with different recipients or common
    /// ciphertext, or a message beyond its bundle's recipients.
    Conflict { a: Signed, b: Signed, id: SeqId },
    /// `a` (a receipt, or an attestation listing the bundle) sends bundle `bundle` to
    /// `recipients` (the list that hashes as `a` says); `b`, an attestation for one of them
    /// vouching for the bundle's epoch, lacks that recipient's message.
    Omission { a: Signed, recipients: Vec<String>, b: Signed, bundle: SeqId },
}

/// Why a proof does not prove anything.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotAProof {
    #[error("a statement's signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("the statements do not contradict each other: {0}")]
    NoContradiction(&'static str),
}

impl Proof {
    /// What the proof shows, in a few words.
    pub fn kind(&self) -> &'static str {
        match self {
            Proof::Invalid { .. } => "an invalid statement",
            Proof::Fork { .. } => "a forked chain",
            Proof::ChainBreak { .. } => "a broken chain",
            Proof::Skipped { .. } => "skipped epochs",
            Proof::Conflict { .. } => "conflicting statements",
            Proof::Omission { .. } => "an omitted message",
        }
    }

    /// Checks the signatures and the contradiction, from the proof alone.
    ///
    /// # Errors
    ///
    /// A signature that does not hold, or statements that can all be true.
    pub fn check(&self, keys: &KeyRing) -> Result<(), NotAProof> {
        let no = NotAProof::NoContradiction;
        match self {
            Proof::Invalid { statement } => {
                statement.verify(keys)?;
                statement.statement().broken_rule().map(|_| ()).ok_or(no("it breaks no rule"))
            }
            Proof::Fork { a, b } => {
                let (x, y) = same_device(keys, a, b)?;
                if x.to_epoch < y.from_epoch || y.to_epoch < x.from_epoch {
                    return Err(no("their epochs do not overlap"));
                }
                if a.body() == b.body() {
                    return Err(no("they are the same statement"));
                }
                Ok(())
            }
            Proof::ChainBreak { a, b } => {
                let (x, y) = same_device(keys, a, b)?;
                if x.to_epoch.checked_add(1) != Some(y.from_epoch) {
                    return Err(no("the second does not start where the first ends"));
                }
                if y.prev == a.hash() {
                    return Err(no("the second names the first as its predecessor"));
                }
                Ok(())
            }
            Proof::Skipped { a, b } => {
                let (x, y) = same_device(keys, a, b)?;
                if y.prev != a.hash() {
                    return Err(no("the second does not name the first"));
                }
                if x.to_epoch.checked_add(1) == Some(y.from_epoch) {
                    return Err(no("the second starts where the first ends"));
                }
                Ok(())
            }
            Proof::Conflict { a, b, id } => {
                a.verify(keys)?;
                b.verify(keys)?;
                if conflict(a, b, *id) { Ok(()) } else { Err(no("they agree about the id")) }
            }
            Proof::Omission { a, recipients, b, bundle } => {
                a.verify(keys)?;
                b.verify(keys)?;
                if omission(a, recipients, b, *bundle) {
                    Ok(())
                } else {
                    Err(no("the message is not missing"))
                }
            }
        }
    }
}

fn same_device<'a>(
    keys: &KeyRing,
    a: &'a Signed,
    b: &'a Signed,
) -> Result<(&'a Attestation, &'a Attestation), NotAProof> {
    a.verify(keys)?;
    b.verify(keys)?;
    let (Some(x), Some(y)) = (a.attestation(), b.attestation()) else {
        return Err(NotAProof::NoContradiction("both must be attestations"));
    };
    if x.device != y.device {
        return Err(NotAProof::NoContradiction("they are for different devices"));
    }
    Ok((x, y))
}

/// What a statement says about a bundle: its recipients hash, common hash, and (a receipt)
/// its recipient count or (an entry) the position of the attested device.
#[derive(Clone, Copy)]
struct BundleFact {
    recipients: Digest,
    common: Digest,
    count: Option<u32>,
    position: Option<u32>,
}

fn bundle_facts(signed: &Signed, bundle: SeqId) -> Vec<BundleFact> {
    match signed.statement() {
        Statement::Receipt(r) if r.bundle == bundle => vec![BundleFact {
            recipients: r.recipients,
            common: r.common,
            count: Some(r.count),
            position: None,
        }],
        Statement::Receipt(_) => Vec::new(),
        Statement::Attestation(a) => a
            .entries
            .iter()
            .filter(|e| e.bundle == bundle)
            .map(|e| BundleFact {
                recipients: e.recipients,
                common: e.common,
                count: None,
                position: e.id.position_in(e.bundle),
            })
            .collect(),
    }
}

fn entries_with_id(signed: &Signed, id: SeqId) -> Vec<(&str, &Entry)> {
    signed
        .attestation()
        .map(|a| a.entries.iter().filter(|e| e.id == id).map(|e| (a.device.as_str(), e)).collect())
        .unwrap_or_default()
}

/// Whether `a` and `b` cannot both be true about the message or bundle `id`.
fn conflict(a: &Signed, b: &Signed, id: SeqId) -> bool {
    for (device_a, x) in entries_with_id(a, id) {
        for (device_b, y) in entries_with_id(b, id) {
            // Ids are unique: one message, one device, one content.
            if device_a != device_b || x != y {
                return true;
            }
        }
    }
    let (xs, ys) = (bundle_facts(a, id), bundle_facts(b, id));
    for x in &xs {
        for y in &ys {
            if x.recipients != y.recipients || x.common != y.common {
                return true;
            }
            let beyond = |fact: &BundleFact, count: Option<u32>| matches!((fact.position, count), (Some(p), Some(c)) if p >= c);
            if beyond(x, y.count) || beyond(y, x.count) {
                return true;
            }
        }
    }
    false
}

/// Whether `a` sends bundle `bundle` to `recipients`, one of whom `b` attests for over the
/// bundle's epoch without its message.
fn omission(a: &Signed, recipients: &[String], b: &Signed, bundle: SeqId) -> bool {
    let facts = bundle_facts(a, bundle);
    let hash = recipients_hash(recipients);
    let Some(fact) = facts.iter().find(|fact| fact.recipients == hash) else { return false };
    if fact.count.is_some_and(|count| count as usize != recipients.len()) {
        return false;
    }
    let Some(attested) = b.attestation() else { return false };
    if !attested.covers(bundle.epoch) {
        return false;
    }
    recipients.iter().enumerate().any(|(position, device)| {
        let id = u32::try_from(position).ok().and_then(|p| bundle.offset(p));
        *device == attested.device
            && id.is_some_and(|id| !attested.entries.iter().any(|e| e.id == id))
    })
}

/// Looks for a proof among statements gathered from any number of devices and senders, with
/// the recipient lists they know (as delivered with messages). Statements whose signatures do
/// not verify with `keys` are left out (they are nobody's word). The first contradiction found,
/// in this order: an invalid statement, a device's chain (fork, broken, skipped), ids and
/// bundles (conflict), omissions.
pub fn find(statements: &[Signed], lists: &[Vec<String>], keys: &KeyRing) -> Option<Proof> {
    let statements: Vec<Signed> =
        statements.iter().filter(|s| s.verify(keys).is_ok()).cloned().collect();
    let statements = statements.as_slice();
    if let Some(bad) = statements.iter().find(|s| s.statement().broken_rule().is_some()) {
        return Some(Proof::Invalid { statement: bad.clone() });
    }
    // One device's chain.
    let mut by_device: BTreeMap<&str, Vec<&Signed>> = BTreeMap::new();
    for signed in statements {
        if let Some(a) = signed.attestation() {
            by_device.entry(a.device.as_str()).or_default().push(signed);
        }
    }
    for chain in by_device.values() {
        for (i, a) in chain.iter().enumerate() {
            for b in &chain[i + 1..] {
                for (a, b) in [(*a, *b), (*b, *a)] {
                    let (x, y) =
                        (a.attestation().expect("grouped"), b.attestation().expect("grouped"));
                    let overlap = x.from_epoch <= y.to_epoch && y.from_epoch <= x.to_epoch;
                    if overlap && a.body() != b.body() {
                        return Some(Proof::Fork { a: a.clone(), b: b.clone() });
                    }
                    let adjacent = x.to_epoch.checked_add(1) == Some(y.from_epoch);
                    if adjacent && y.prev != a.hash() {
                        return Some(Proof::ChainBreak { a: a.clone(), b: b.clone() });
                    }
                    if !adjacent && !overlap && y.prev == a.hash() {
                        return Some(Proof::Skipped { a: a.clone(), b: b.clone() });
                    }
                }
            }
        }
    }
    // Ids and bundles named by more than one statement.
    let mut named: BTreeMap<SeqId, Vec<&Signed>> = BTreeMap::new();
    for signed in statements {
        match signed.statement() {
            Statement::Receipt(r) => named.entry(r.bundle).or_default().push(signed),
            Statement::Attestation(a) => {
                for entry in &a.entries {
                    named.entry(entry.id).or_default().push(signed);
                    if entry.bundle != entry.id {
                        named.entry(entry.bundle).or_default().push(signed);
                    }
                }
            }
        }
    }
    for (id, named) in &named {
        for (i, a) in named.iter().enumerate() {
            for b in &named[i + 1..] {
                if conflict(a, b, *id) {
                    return Some(Proof::Conflict { a: (*a).clone(), b: (*b).clone(), id: *id });
                }
            }
        }
    }
    // Messages a sender's receipt or a co-recipient's attestation says a device got, missing
    // from that device's attestation of the epoch.
    let lists: BTreeMap<Digest, &Vec<String>> =
        lists.iter().map(|list| (recipients_hash(list), list)).collect();
    for a in statements {
        let bundles: Vec<(SeqId, Digest)> = match a.statement() {
            Statement::Receipt(r) => vec![(r.bundle, r.recipients)],
            Statement::Attestation(x) => {
                x.entries.iter().map(|e| (e.bundle, e.recipients)).collect()
            }
        };
        for (bundle, hash) in bundles {
            let Some(recipients) = lists.get(&hash) else { continue };
            for device in recipients.iter() {
                for b in by_device.get(device.as_str()).into_iter().flatten() {
                    if omission(a, recipients, b, bundle) {
                        return Some(Proof::Omission {
                            a: a.clone(),
                            recipients: (*recipients).clone(),
                            b: (*b).clone(),
                            bundle,
                        });
                    }
                }
            }
        }
    }
    None
}
