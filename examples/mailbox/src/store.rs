//! A shard's storage (docs/mailbox.md, "Storage"): one SQLite file, written once per epoch.
//!
//! - `epochs`: one row per committed epoch that had messages: the epoch's bundles as this shard
//!   holds them (each with the parts for this shard's devices) and every statement the shard
//!   signed for it, in one blob ([`EpochRecord`]). Committing an epoch is one transaction, so
//!   one fsync however many messages it holds.
//! - `acks`: per device, the highest id it acknowledged. Acknowledgements are written with the
//!   next epoch's commit (or on their own when nothing else is written); one lost in a crash
//!   only means its messages are delivered again.
//! - `inbox`: the write-ahead of an epoch's bundles taken in here with recipients on other
//!   shards (every part), written before any of them is routed and deleted (with a later
//!   commit) once every owner committed them: a shard that dies while routing routes the same
//!   bundles again when it comes back, so a bundle never reaches only some of its recipients.
//! - `meta`: the last committed epoch.
//!
//! WAL mode with `synchronous = FULL`: a committed epoch survives a crash of the process and of
//! the machine, which is what lets a send be answered once its epoch is committed. The store is
//! synchronous; the shard calls it from `spawn_blocking`.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use rusqlite::{Connection, OptionalExtension, params};

use crate::SeqId;

/// The schema migrations, in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE epochs (epoch INTEGER PRIMARY KEY, record BLOB NOT NULL);
     CREATE TABLE acks (device TEXT PRIMARY KEY, upto BLOB NOT NULL CHECK (length(upto) = 16));
     CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    "CREATE TABLE inbox (epoch INTEGER PRIMARY KEY, record BLOB NOT NULL);",
];

/// A bundle as one shard stores it: the parts of the recipients it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBundle {
    pub bundle: SeqId,
    pub recipients: Arc<[String]>,
    pub common: Bytes,
    /// `(position in the recipient list, part)` for this shard's recipients.
    pub parts: Vec<(u32, Bytes)>,
}

/// One committed epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochRecord {
    pub epoch: u64,
    pub bundles: Vec<StoredBundle>,
    /// The statements the shard signed for the epoch, in the order of its batch's leaves: each
    /// one's bytes without index, path or signature when `signature` is set (the signed forms
    /// come back with [`crate::Signed::batch_from`]); whole signed statements in records a
    /// build before that wrote.
    pub statements: Vec<Bytes>,
    /// The batch's one signature.
    pub signature: Option<[u8; 64]>,
}

impl EpochRecord {
    /// The signed statements the record holds.
    ///
    /// # Errors
    ///
    /// Statements that do not decode.
    pub fn signed(&self) -> Result<Vec<crate::Signed>, StoreError> {
        let corrupt = StoreError::Corrupt { epoch: self.epoch, what: "a statement" };
        match &self.signature {
            Some(signature) => crate::Signed::batch_from(
                self.statements.iter().map(|b| b.to_vec()).collect(),
                signature,
            )
            .map_err(|_| corrupt),
            None => self
                .statements
                .iter()
                .map(|bytes| crate::Signed::decode(bytes))
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt),
        }
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the mailbox store {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("the mailbox store {path} has schema version {found}; this build knows up to {known}")]
    NewerSchema { path: String, found: i64, known: usize },
    #[error("the mailbox store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the mailbox store holds a damaged record of epoch {epoch}: {what}")]
    Corrupt { epoch: u64, what: &'static str },
}

/// A shard's store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating) the store at `path`.
    ///
    /// # Errors
    ///
    /// A file that cannot be opened or is not a database, or a newer schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open { path: path.display().to_string(), source };
        let mut conn = Connection::open(path).map_err(open_error)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_error)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_error)?;
        let version: i64 =
            conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_error)?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::NewerSchema {
                path: path.display().to_string(),
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Store { conn })
    }

    /// Writes the write-ahead of the bundles this shard took in during `record.epoch` (with
    /// every part), in one transaction.
    ///
    /// # Errors
    ///
    /// SQLite's.
    pub fn write_inbox(&mut self, record: &EpochRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO inbox (epoch, record) VALUES (?1, ?2)",
            params![to_sql(record.epoch), encode(record)],
        )?;
        Ok(())
    }

    /// The write-aheads not yet deleted, in epoch order.
    ///
    /// # Errors
    ///
    /// SQLite's, or a damaged record.
    pub fn inboxes(&self) -> Result<Vec<EpochRecord>, StoreError> {
        self.records("SELECT epoch, record FROM inbox ORDER BY epoch")
    }

    /// The records a query of `(epoch, record)` rows returns.
    fn records(&self, query: &str) -> Result<Vec<EpochRecord>, StoreError> {
        let mut statement = self.conn.prepare(query)?;
        let rows =
            statement.query_map([], |r| Ok((from_sql(r.get(0)?), r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (epoch, bytes) = row?;
            out.push(decode(epoch, &bytes)?);
        }
        Ok(out)
    }

    /// Commits an epoch (if it has a record), acknowledgements, deletions of epochs every
    /// device has acknowledged and of write-aheads every owner committed (`routed`), in one
    /// transaction.
    ///
    /// # Errors
    ///
    /// SQLite's.
    pub fn commit(
        &mut self,
        epoch: u64,
        record: Option<&EpochRecord>,
        acks: &[(String, SeqId)],
        forget: &[u64],
        routed: &[u64],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        if let Some(record) = record {
            tx.execute(
                "INSERT OR REPLACE INTO epochs (epoch, record) VALUES (?1, ?2)",
                params![to_sql(record.epoch), encode(record)],
            )?;
        }
        for (device, upto) in acks {
            tx.prepare_cached(
                "INSERT INTO acks (device, upto) VALUES (?1, ?2) ON CONFLICT (device) DO UPDATE SET upto = max(upto, excluded.upto)",
            )?
            .execute(params![device, upto.to_bytes().as_slice()])?;
        }
        for epoch in forget {
            tx.execute("DELETE FROM epochs WHERE epoch = ?1", params![to_sql(*epoch)])?;
        }
        for epoch in routed {
            tx.execute("DELETE FROM inbox WHERE epoch = ?1", params![to_sql(*epoch)])?;
        }
        tx.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?1) ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)", params![to_sql(epoch)])?;
        tx.commit()?;
        Ok(())
    }

    /// The last committed epoch (0 for a new store).
    pub fn last_epoch(&self) -> Result<u64, StoreError> {
        let value: Option<i64> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| r.get(0))
            .optional()?;
        Ok(value.map_or(0, from_sql))
    }

    /// Every stored epoch, in order.
    pub fn epochs(&self) -> Result<Vec<EpochRecord>, StoreError> {
        self.records("SELECT epoch, record FROM epochs ORDER BY epoch")
    }

    /// Every device's acknowledged id.
    pub fn acks(&self) -> Result<Vec<(String, SeqId)>, StoreError> {
        let mut statement = self.conn.prepare("SELECT device, upto FROM acks")?;
        let rows =
            statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (device, upto) = row?;
            let upto: [u8; 16] = upto
                .try_into()
                .map_err(|_| StoreError::Corrupt { epoch: 0, what: "an ack is not 16 bytes" })?;
            out.push((device, SeqId::from_bytes(&upto)));
        }
        Ok(out)
    }
}

fn to_sql(n: u64) -> i64 {
    n as i64
}

fn from_sql(n: i64) -> u64 {
    n as u64
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A record's bytes (`encode`): what shards route to each other too (docs/mailbox.md,
/// "Between shards").
pub fn record_bytes(record: &EpochRecord) -> Vec<u8> {
    encode(record)
}

/// The record of `epoch` in `bytes` ([`record_bytes`]).
///
/// # Errors
///
/// Bytes that are not a record.
pub fn record_from(epoch: u64, bytes: &[u8]) -> Result<EpochRecord, StoreError> {
    decode(epoch, bytes)
}

/// The first bytes of a record that keeps its statements' bytes and the signature once (older
/// records begin with their bundle count, which never reaches `0x4d425852`).
const COMPACT: &[u8; 8] = b"MBXREC02";

/// The record's bytes: `MBXREC02`, then bundles (count u32; each: id 16, recipients (count u32, each a u16
/// length and UTF-8), common (u32 length, bytes), parts (count u32, each position u32 and a
/// u32-length part)), then statements (count u32, each u32-length bytes), then, with
/// statements, the signature (64 bytes). (Older records: the same without the magic and the
/// signature, their statements signed whole.)
fn encode(record: &EpochRecord) -> Vec<u8> {
    let bundles: usize = record
        .bundles
        .iter()
        .map(|b| {
            28 + b.common.len()
                + b.recipients.iter().map(|r| 2 + r.len()).sum::<usize>()
                + b.parts.iter().map(|(_, p)| 8 + p.len()).sum::<usize>()
        })
        .sum();
    let statements: usize = record.statements.iter().map(|s| 4 + s.len()).sum();
    let mut out = Vec::with_capacity(80 + bundles + statements);
    out.extend_from_slice(COMPACT);
    out.extend_from_slice(&(record.bundles.len() as u32).to_be_bytes());
    for bundle in &record.bundles {
        out.extend_from_slice(&bundle.bundle.to_bytes());
        out.extend_from_slice(&(bundle.recipients.len() as u32).to_be_bytes());
        for device in bundle.recipients.iter() {
            out.extend_from_slice(&(device.len() as u16).to_be_bytes());
            out.extend_from_slice(device.as_bytes());
        }
        put_bytes(&mut out, &bundle.common);
        out.extend_from_slice(&(bundle.parts.len() as u32).to_be_bytes());
        for (position, part) in &bundle.parts {
            out.extend_from_slice(&position.to_be_bytes());
            put_bytes(&mut out, part);
        }
    }
    out.extend_from_slice(&(record.statements.len() as u32).to_be_bytes());
    for statement in &record.statements {
        put_bytes(&mut out, statement);
    }
    if !record.statements.is_empty() {
        out.extend_from_slice(&record.signature.unwrap_or([0; 64]));
    }
    out
}

fn decode(epoch: u64, mut bytes: &[u8]) -> Result<EpochRecord, StoreError> {
    let corrupt = |what| StoreError::Corrupt { epoch, what };
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (bytes.len() >= n).then(|| bytes.split_at(n))?;
        *bytes = tail;
        Some(head)
    }
    let u32_of =
        |bytes: &mut &[u8]| take(bytes, 4).map(|b| u32::from_be_bytes(b.try_into().expect("4")));
    let mut record = EpochRecord { epoch, ..EpochRecord::default() };
    let compact = bytes.starts_with(COMPACT);
    if compact {
        bytes = &bytes[COMPACT.len()..];
    }
    let bundles = u32_of(&mut bytes).ok_or(corrupt("the bundle count"))?;
    for _ in 0..bundles {
        let id = take(&mut bytes, 16).ok_or(corrupt("a bundle id"))?;
        let id = SeqId::from_bytes(id.try_into().expect("16"));
        let count = u32_of(&mut bytes).ok_or(corrupt("a recipient count"))?;
        let mut recipients = Vec::with_capacity(count.min(1024) as usize);
        for _ in 0..count {
            let len = take(&mut bytes, 2).ok_or(corrupt("a recipient"))?;
            let len = u16::from_be_bytes(len.try_into().expect("2")) as usize;
            let device = take(&mut bytes, len).ok_or(corrupt("a recipient"))?;
            recipients.push(
                String::from_utf8(device.to_vec())
                    .map_err(|_| corrupt("a recipient is not UTF-8"))?,
            );
        }
        let len = u32_of(&mut bytes).ok_or(corrupt("the common ciphertext"))? as usize;
        let common =
            Bytes::copy_from_slice(take(&mut bytes, len).ok_or(corrupt("the common ciphertext"))?);
        let count = u32_of(&mut bytes).ok_or(corrupt("a part count"))?;
        let mut parts = Vec::with_capacity(count.min(1024) as usize);
        for _ in 0..count {
            let position = u32_of(&mut bytes).ok_or(corrupt("a part"))?;
            let len = u32_of(&mut bytes).ok_or(corrupt("a part"))? as usize;
            parts.push((
                position,
                Bytes::copy_from_slice(take(&mut bytes, len).ok_or(corrupt("a part"))?),
            ));
        }
        record.bundles.push(StoredBundle {
            bundle: id,
            recipients: recipients.into(),
            common,
            parts,
        });
    }
    let statements = u32_of(&mut bytes).ok_or(corrupt("the statement count"))?;
    for _ in 0..statements {
        let len = u32_of(&mut bytes).ok_or(corrupt("a statement"))? as usize;
        record
            .statements
            .push(Bytes::copy_from_slice(take(&mut bytes, len).ok_or(corrupt("a statement"))?));
    }
    if compact && statements > 0 {
        let signature = take(&mut bytes, 64).ok_or(corrupt("the signature"))?;
        record.signature = Some(signature.try_into().expect("64"));
    }
    if !bytes.is_empty() {
        return Err(corrupt("bytes after the record"));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(signature: Option<[u8; 64]>) -> EpochRecord {
        EpochRecord {
            epoch: 7,
            bundles: vec![StoredBundle {
                bundle: SeqId { epoch: 7, shard: 1, index: 3 },
                recipients: vec!["alice".to_owned(), "bob".to_owned()].into(),
                common: Bytes::from_static(b"common"),
                parts: vec![(1, Bytes::from_static(b"bob's"))],
            }],
            statements: vec![Bytes::from_static(b"first"), Bytes::from_static(b"second")],
            signature,
        }
    }

    #[test]
    fn records_come_back_as_written() {
        let written = record(Some([9; 64]));
        let bytes = encode(&written);
        assert!(bytes.starts_with(COMPACT));
        assert_eq!(decode(7, &bytes).expect("decodes"), written);
        // Cut anywhere, it is refused by name rather than misread.
        for len in 0..bytes.len() {
            assert!(decode(7, &bytes[..len]).is_err(), "{len} bytes of {}", bytes.len());
        }
    }

    #[test]
    fn records_of_the_older_layout_still_decode() {
        // The older layout: no magic, no signature (each statement signed whole).
        let older = record(None);
        let bytes = encode(&older);
        let without_magic = &bytes[COMPACT.len()..bytes.len() - 64];
        assert_eq!(decode(7, without_magic).expect("decodes"), older);
    }
}
