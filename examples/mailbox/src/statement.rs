//! What a shard signs (docs/mailbox.md, "Statements"): an **attestation** of one device's
//! messages over a range of epochs, and a **receipt** for a bundle it took in. Each is a byte
//! string beginning with its magic. A shard signs a whole batch of statements at once: their
//! hashes are the leaves of a binary tree, and one Ed25519 signature covers the root; each
//! signed statement carries its position, the path of sibling hashes to the root, and the
//! signature.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use bytes::Bytes;

use crate::SeqId;
use crate::hash::{Digest, ROOT, node_hash, statement_hash};

const ATTESTATION: &[u8; 8] = b"MBXATT01";
const RECEIPT: &[u8; 8] = b"MBXRCP01";

/// One delivered message, as an attestation lists it: 128 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The message's id.
    pub id: SeqId,
    /// Its bundle's id (the first of the bundle's ids).
    pub bundle: SeqId,
    /// The hash of the bundle's recipient list.
    pub recipients: Digest,
    /// The hash of the bundle's common ciphertext.
    pub common: Digest,
    /// The hash of this recipient's part.
    pub part: Digest,
}

impl Entry {
    pub const LEN: usize = 16 + 16 + 32 * 3;
}

/// "Device `device`'s messages in epochs `from_epoch..=to_epoch` are exactly `entries`, and
/// my previous attestation for it hashes to `prev`."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    pub shard: u32,
    pub device: String,
    pub from_epoch: u64,
    pub to_epoch: u64,
    /// [`statement_hash`] of the device's previous attestation; zeros for its first.
    pub prev: Digest,
    pub entries: Vec<Entry>,
}

impl Attestation {
    /// The rule this attestation breaks, if any: every honest one keeps them all.
    pub fn broken_rule(&self) -> Option<&'static str> {
        if self.device.is_empty() {
            return Some("the device id is empty");
        }
        if self.from_epoch > self.to_epoch {
            return Some("the epoch range is empty (from after to)");
        }
        let mut last: Option<SeqId> = None;
        for entry in &self.entries {
            if last.is_some_and(|last| entry.id <= last) {
                return Some("ids are not strictly increasing");
            }
            last = Some(entry.id);
            if !(self.from_epoch..=self.to_epoch).contains(&entry.id.epoch) {
                return Some("an id's epoch is outside the range");
            }
            if entry.id.position_in(entry.bundle).is_none() {
                return Some("an id is not one of its bundle's ids");
            }
        }
        // A device is at most once in a recipient list: one message per bundle.
        let mut bundles: Vec<SeqId> = self.entries.iter().map(|e| e.bundle).collect();
        bundles.sort_unstable();
        if bundles.windows(2).any(|pair| pair[0] == pair[1]) {
            return Some("two messages of one bundle");
        }
        None
    }

    /// Whether the attestation vouches for `epoch`.
    pub fn covers(&self, epoch: u64) -> bool {
        (self.from_epoch..=self.to_epoch).contains(&epoch)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(ATTESTATION);
        out.extend_from_slice(&self.shard.to_be_bytes());
        out.extend_from_slice(&self.from_epoch.to_be_bytes());
        out.extend_from_slice(&self.to_epoch.to_be_bytes());
        out.extend_from_slice(&self.prev);
        let device = self.device.as_bytes();
        out.extend_from_slice(&u16::try_from(device.len()).expect("checked").to_be_bytes());
        out.extend_from_slice(device);
        out.extend_from_slice(&u32::try_from(self.entries.len()).expect("checked").to_be_bytes());
        for entry in &self.entries {
            out.extend_from_slice(&entry.id.to_bytes());
            out.extend_from_slice(&entry.bundle.to_bytes());
            out.extend_from_slice(&entry.recipients);
            out.extend_from_slice(&entry.common);
            out.extend_from_slice(&entry.part);
        }
    }
}

/// "I took in the bundle `bundle`, for the `count` recipients whose list hashes to
/// `recipients`, with the common ciphertext hashing to `common`: recipient `i` gets id
/// `bundle + i`."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub shard: u32,
    pub bundle: SeqId,
    pub recipients: Digest,
    pub common: Digest,
    pub count: u32,
}

impl Receipt {
    /// The rule this receipt breaks, if any.
    pub fn broken_rule(&self) -> Option<&'static str> {
        if self.count == 0 {
            return Some("a bundle has no recipients");
        }
        if self.bundle.offset(self.count - 1).is_none() {
            return Some("the bundle's ids run past the last index");
        }
        if self.bundle.shard != self.shard {
            return Some("the bundle was numbered by another shard");
        }
        None
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(RECEIPT);
        out.extend_from_slice(&self.shard.to_be_bytes());
        out.extend_from_slice(&self.bundle.to_bytes());
        out.extend_from_slice(&self.recipients);
        out.extend_from_slice(&self.common);
        out.extend_from_slice(&self.count.to_be_bytes());
    }
}

/// A statement of either kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    Attestation(Attestation),
    Receipt(Receipt),
}

impl Statement {
    /// The shard whose key signs it.
    pub fn shard(&self) -> u32 {
        match self {
            Statement::Attestation(a) => a.shard,
            Statement::Receipt(r) => r.shard,
        }
    }

    /// The rule it breaks, if any.
    pub fn broken_rule(&self) -> Option<&'static str> {
        match self {
            Statement::Attestation(a) => a.broken_rule(),
            Statement::Receipt(r) => r.broken_rule(),
        }
    }

    /// Its bytes.
    ///
    /// # Errors
    ///
    /// A device id longer than 65,535 bytes or more than 2^32 entries.
    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        self.encode_with_room(0)
    }

    /// [`Statement::encode`] into a buffer with `room` bytes to spare (for what a signed
    /// statement adds).
    fn encode_with_room(&self, room: usize) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::new();
        match self {
            Statement::Attestation(a) => {
                if a.device.len() > usize::from(u16::MAX) {
                    return Err(FormatError::TooLong("the device id"));
                }
                if u32::try_from(a.entries.len()).is_err() {
                    return Err(FormatError::TooLong("the entries"));
                }
                out.reserve_exact(70 + a.device.len() + a.entries.len() * Entry::LEN + room);
                a.encode(&mut out);
            }
            Statement::Receipt(r) => {
                out.reserve_exact(96 + room);
                r.encode(&mut out);
            }
        }
        Ok(out)
    }

    /// Reads a statement's bytes (exactly: nothing may follow).
    ///
    /// # Errors
    ///
    /// Bytes that are not a statement, naming what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Statement, FormatError> {
        let (statement, len) = Statement::decode_prefix(bytes)?;
        if len != bytes.len() {
            return Err(FormatError::Trailing(bytes.len() - len));
        }
        Ok(statement)
    }

    /// Reads the statement at the start of `bytes`; it and its length.
    fn decode_prefix(bytes: &[u8]) -> Result<(Statement, usize), FormatError> {
        let mut r = Reader(bytes);
        let magic: [u8; 8] = r.array("the magic")?;
        let statement = match &magic {
            ATTESTATION => {
                let shard = r.u32("the shard")?;
                let from_epoch = r.u64("from_epoch")?;
                let to_epoch = r.u64("to_epoch")?;
                let prev = r.array("prev")?;
                let len = usize::from(r.u16("the device id's length")?);
                let device = std::str::from_utf8(r.take(len, "the device id")?)
                    .map_err(|_| FormatError::Utf8)?
                    .to_owned();
                let count = r.u32("the entry count")? as usize;
                let needed = count.saturating_mul(Entry::LEN);
                if r.0.len() < needed {
                    return Err(FormatError::Length {
                        what: "the entries",
                        expected: needed,
                        found: r.0.len(),
                    });
                }
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    entries.push(Entry {
                        id: SeqId::from_bytes(&r.array("an id")?),
                        bundle: SeqId::from_bytes(&r.array("a bundle")?),
                        recipients: r.array("a recipients hash")?,
                        common: r.array("a common hash")?,
                        part: r.array("a part hash")?,
                    });
                }
                Statement::Attestation(Attestation {
                    shard,
                    device,
                    from_epoch,
                    to_epoch,
                    prev,
                    entries,
                })
            }
            RECEIPT => Statement::Receipt(Receipt {
                shard: r.u32("the shard")?,
                bundle: SeqId::from_bytes(&r.array("the bundle")?),
                recipients: r.array("the recipients hash")?,
                common: r.array("the common hash")?,
                count: r.u32("the count")?,
            }),
            _ => return Err(FormatError::Magic(magic)),
        };
        Ok((statement, bytes.len() - r.0.len()))
    }
}

/// The deepest tree a batch may have: 2^32 statements.
const MAX_DEPTH: usize = 32;

/// The tree over a batch's statements: its depth, and each level's hashes (`levels[0]`: the
/// leaves, padded with zeros to 2^depth; each next level half as long; the last, the root).
fn tree(bodies: &[Vec<u8>]) -> (usize, Vec<Vec<Digest>>) {
    let depth = (bodies.len() as u64).next_power_of_two().trailing_zeros() as usize;
    let mut levels: Vec<Vec<Digest>> = Vec::with_capacity(depth + 1);
    let mut leaves: Vec<Digest> = Vec::with_capacity(1 << depth);
    leaves.extend(bodies.iter().map(|body| statement_hash(body)));
    leaves.resize(1 << depth, [0; 32]);
    levels.push(leaves);
    for level in 0..depth {
        let next =
            levels[level].chunks_exact(2).map(|pair| node_hash(&pair[0], &pair[1])).collect();
        levels.push(next);
    }
    (depth, levels)
}

/// Each statement with its bytes, index, path and the batch's signature.
fn assemble(
    statements: Vec<Statement>,
    bodies: Vec<Vec<u8>>,
    depth: usize,
    levels: &[Vec<Digest>],
    signature: &[u8; 64],
) -> Vec<Signed> {
    statements
        .into_iter()
        .zip(bodies)
        .enumerate()
        .map(|(index, (statement, mut bytes))| {
            let body = bytes.len();
            bytes.reserve_exact(5 + 32 * depth + 64);
            bytes.extend_from_slice(&u32::try_from(index).expect("checked").to_be_bytes());
            bytes.push(u8::try_from(depth).expect("at most 32"));
            for (level, hashes) in levels.iter().take(depth).enumerate() {
                bytes.extend_from_slice(&hashes[(index >> level) ^ 1]);
            }
            bytes.extend_from_slice(signature);
            Signed { statement, bytes: Bytes::from(bytes), body }
        })
        .collect()
}

/// A statement, signed: its bytes, then its place in the batch it was signed in (the leaf
/// index, u32), the path to the root (a depth, u8, then that many sibling hashes, the leaf's
/// first), then the shard's Ed25519 signature over [`ROOT`] and the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    statement: Statement,
    /// Everything: the statement's bytes, the index, the path, the signature.
    bytes: Bytes,
    /// The length of the statement's bytes.
    body: usize,
}

impl Signed {
    /// Signs one statement alone (a batch of one: no path).
    ///
    /// # Errors
    ///
    /// A statement too long to encode.
    pub fn sign(statement: Statement, key: &SigningKey) -> Result<Signed, FormatError> {
        Ok(Signed::sign_batch(vec![statement], key)?.remove(0))
    }

    /// Signs `statements` (all of one shard) with one signature: the leaves of the tree are
    /// their hashes in order, the tree is as deep as needed for them (absent leaves are 32 zero
    /// bytes), and the signature covers the root.
    ///
    /// # Errors
    ///
    /// A statement too long to encode, or more than 2^32 statements.
    pub fn sign_batch(
        statements: Vec<Statement>,
        key: &SigningKey,
    ) -> Result<Vec<Signed>, FormatError> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        if u32::try_from(statements.len() - 1).is_err() {
            return Err(FormatError::TooLong("the batch"));
        }
        let depth = (statements.len() as u64).next_power_of_two().trailing_zeros() as usize;
        let room = 5 + 32 * depth + 64;
        let bodies: Vec<Vec<u8>> = statements
            .iter()
            .map(|statement| statement.encode_with_room(room))
            .collect::<Result<_, _>>()?;
        let (depth, levels) = tree(&bodies);
        let signature = key.sign(&[ROOT, &levels[depth][0]].concat()).to_bytes();
        Ok(assemble(statements, bodies, depth, &levels, &signature))
    }

    /// The signed statements of one batch from their bytes, in leaf order, and the batch's
    /// signature: how a store that keeps each statement's bytes and the signature once gets
    /// them back. The signature is not checked ([`Signed::verify`] does).
    ///
    /// # Errors
    ///
    /// Bytes that are not a statement, or more than 2^32 of them.
    pub fn batch_from(
        bodies: Vec<Vec<u8>>,
        signature: &[u8; 64],
    ) -> Result<Vec<Signed>, FormatError> {
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        if u32::try_from(bodies.len() - 1).is_err() {
            return Err(FormatError::TooLong("the batch"));
        }
        let statements: Vec<Statement> =
            bodies.iter().map(|body| Statement::decode(body)).collect::<Result<_, _>>()?;
        let (depth, levels) = tree(&bodies);
        Ok(assemble(statements, bodies, depth, &levels, signature))
    }

    /// Reads a signed statement (its signature is checked by [`Signed::verify`]).
    ///
    /// # Errors
    ///
    /// Bytes that are not a signed statement.
    pub fn decode(bytes: &[u8]) -> Result<Signed, FormatError> {
        let (statement, body) = Statement::decode_prefix(bytes)?;
        let rest = &bytes[body..];
        if rest.len() < 5 {
            return Err(FormatError::Length {
                what: "the index and depth",
                expected: 5,
                found: rest.len(),
            });
        }
        let index = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
        let depth = usize::from(rest[4]);
        if depth > MAX_DEPTH || (depth < MAX_DEPTH && u64::from(index) >> depth != 0) {
            return Err(FormatError::Path { index, depth });
        }
        let expected = 5 + 32 * depth + 64;
        if rest.len() != expected {
            return Err(FormatError::Length {
                what: "the path and signature",
                expected,
                found: rest.len(),
            });
        }
        Ok(Signed { statement, bytes: Bytes::copy_from_slice(bytes), body })
    }

    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// The attestation, if it is one.
    pub fn attestation(&self) -> Option<&Attestation> {
        match &self.statement {
            Statement::Attestation(a) => Some(a),
            Statement::Receipt(_) => None,
        }
    }

    /// The receipt, if it is one.
    pub fn receipt(&self) -> Option<&Receipt> {
        match &self.statement {
            Statement::Receipt(r) => Some(r),
            Statement::Attestation(_) => None,
        }
    }

    /// All of it: the statement's bytes, the index, the path and the signature.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The statement's bytes alone.
    pub fn body(&self) -> &[u8] {
        &self.bytes[..self.body]
    }

    /// [`Signed::body`], sharing the statement's buffer.
    pub fn body_shared(&self) -> Bytes {
        self.bytes.slice(..self.body)
    }

    /// [`statement_hash`] of the body: the statement's leaf, and what the device's next
    /// attestation names as `prev`.
    pub fn hash(&self) -> Digest {
        statement_hash(self.body())
    }

    /// The root of the batch's tree, from the leaf, the index and the path.
    pub fn root(&self) -> Digest {
        let trailer = &self.bytes[self.body..];
        let index = u32::from_be_bytes(trailer[..4].try_into().expect("4 bytes"));
        let depth = usize::from(trailer[4]);
        let mut node = self.hash();
        for level in 0..depth {
            let sibling: Digest =
                trailer[5 + 32 * level..5 + 32 * (level + 1)].try_into().expect("32 bytes");
            node = if (u64::from(index) >> level) & 1 == 0 {
                node_hash(&node, &sibling)
            } else {
                node_hash(&sibling, &node)
            };
        }
        node
    }

    /// The shard's signature over the root.
    pub fn signature(&self) -> [u8; 64] {
        self.bytes[self.bytes.len() - 64..].try_into().expect("64 bytes")
    }

    /// Checks the signature over the root with the key `keys` holds for the statement's shard.
    ///
    /// # Errors
    ///
    /// An unknown shard, or a signature that does not verify.
    pub fn verify(&self, keys: &KeyRing) -> Result<(), SignatureError> {
        let shard = self.statement.shard();
        let key = keys.get(shard).ok_or(SignatureError::UnknownShard(shard))?;
        key.verify(&[ROOT, &self.root()].concat(), &Signature::from_bytes(&self.signature()))
            .map_err(|_| SignatureError::Invalid(shard))
    }
}

/// The shards' public keys.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: BTreeMap<u32, VerifyingKey>,
}

impl KeyRing {
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    pub fn insert(&mut self, shard: u32, key: VerifyingKey) -> &mut KeyRing {
        self.keys.insert(shard, key);
        self
    }

    pub fn get(&self, shard: u32) -> Option<&VerifyingKey> {
        self.keys.get(&shard)
    }
}

/// Why bytes are not a statement.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a statement: the magic is {0:02x?}")]
    Magic([u8; 8]),
    #[error("{what}: expected {expected} bytes, found {found}")]
    Length { what: &'static str, expected: usize, found: usize },
    #[error("{0} bytes follow the statement")]
    Trailing(usize),
    #[error("the device id is not UTF-8")]
    Utf8,
    #[error("{0} is too long to encode")]
    TooLong(&'static str),
    #[error("leaf {index} is not in a tree of depth {depth} (at most 32)")]
    Path { index: u32, depth: usize },
}

/// Why a signature does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no key is known for shard {0}")]
    UnknownShard(u32),
    #[error("the signature is not shard {0}'s")]
    Invalid(u32),
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FormatError> {
        if self.0.len() < n {
            return Err(FormatError::Length { what, expected: n, found: self.0.len() });
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], FormatError> {
        Ok(self.take(N, what)?.try_into().expect("N bytes"))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, FormatError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, FormatError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
}
