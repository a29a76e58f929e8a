//! The tracker's storage: one SQLite file holding the devices (with their keys and highest
//! accepted counters) and every accepted position.
//!
//! - The schema is created and migrated by [`Store::open`]: [`MIGRATIONS`] is an ordered list,
//!   `PRAGMA user_version` says how many are applied, each is applied in its own transaction, and
//!   a database from a newer tracker (a version above the list's length) is refused.
//! - WAL mode with `synchronous = FULL`: a committed batch survives a crash of the process and of
//!   the machine, which is what lets the ingest acknowledge a report once its batch is committed.
//! - SQLite integers are signed: device ids and counters (`u64`) are stored bit for bit as `i64`;
//!   times (ms since 1970) are stored as they are, saturating at `i64::MAX`.
//!
//! The store is synchronous: two connections, each behind a std mutex never held across an
//! `.await`: one writes, one reads (WAL lets readers read while the writer writes, so queries do
//! not wait behind the ingest's transactions). Async code calls it through
//! `tokio::task::spawn_blocking`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::PositionT;
use crate::packet::DeviceKey;

/// The schema migrations, in order. `PRAGMA user_version` is the number applied. Append only:
/// never edit one that has shipped.
pub const MIGRATIONS: &[&str] = &[
    // 1: devices and positions.
    "CREATE TABLE devices (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL,
         key BLOB NOT NULL CHECK (length(key) = 32),
         enabled INTEGER NOT NULL DEFAULT 1,
         created_ms INTEGER NOT NULL,
         highest_counter INTEGER NOT NULL DEFAULT 0,
         last_seen_ms INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE positions (
         device_id INTEGER NOT NULL REFERENCES devices (id),
         counter INTEGER NOT NULL,
         time_ms INTEGER NOT NULL,
         received_ms INTEGER NOT NULL,
         lat REAL NOT NULL,
         lon REAL NOT NULL,
         speed REAL NOT NULL,
         heading REAL NOT NULL,
         accuracy REAL NOT NULL,
         battery INTEGER,
         PRIMARY KEY (device_id, counter)
     ) WITHOUT ROWID;
     CREATE INDEX positions_by_time ON positions (device_id, time_ms, counter);",
    // 2: accounts (`store::accounts`): users with an Argon2id password hash and a role, each
    // device's owner, devices shared with other users, and trip descriptions.
    "CREATE TABLE users (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL UNIQUE COLLATE NOCASE,
         password TEXT NOT NULL,
         role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
         created_ms INTEGER NOT NULL
     );
     ALTER TABLE devices ADD COLUMN owner INTEGER REFERENCES users (id) ON DELETE SET NULL;
     CREATE TABLE shares (
         device_id INTEGER NOT NULL REFERENCES devices (id),
         user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
         PRIMARY KEY (device_id, user_id)
     ) WITHOUT ROWID;
     CREATE INDEX shares_by_user ON shares (user_id, device_id);
     CREATE TABLE trip_descriptions (
         device_id INTEGER NOT NULL REFERENCES devices (id),
         start_ms INTEGER NOT NULL,
         description TEXT NOT NULL,
         updated_ms INTEGER NOT NULL,
         PRIMARY KEY (device_id, start_ms)
     ) WITHOUT ROWID;",
    // 3: the store's own bookkeeping (how far downsampling has gone).
    "CREATE TABLE meta (
         key TEXT PRIMARY KEY,
         value INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 4: positions kept in (device, fix time, counter) order, without the separate time index.
    // Each stored position then changes one tree instead of two (half the pages the log writes,
    // which is what an insert costs once the table outgrows memory), and a device's range of
    // fix times is one range of the table. A position stored twice is the same report twice
    // (same counter and fix time: the ingest's replay window lets no counter through twice),
    // so the key still skips duplicates.
    "CREATE TABLE positions_v4 (
         device_id INTEGER NOT NULL REFERENCES devices (id),
         counter INTEGER NOT NULL,
         time_ms INTEGER NOT NULL,
         received_ms INTEGER NOT NULL,
         lat REAL NOT NULL,
         lon REAL NOT NULL,
         speed REAL NOT NULL,
         heading REAL NOT NULL,
         accuracy REAL NOT NULL,
         battery INTEGER,
         PRIMARY KEY (device_id, time_ms, counter)
     ) WITHOUT ROWID;
     INSERT INTO positions_v4 SELECT * FROM positions ORDER BY device_id, time_ms, counter;
     DROP TABLE positions;
     ALTER TABLE positions_v4 RENAME TO positions;",
];

/// The `meta` key of the fix time before which positions are downsampled.
const DOWNSAMPLED_BEFORE: &str = "downsampled_before_ms";

/// A file kept next to the database at `db`: its path with `suffix` appended
/// (`tracker.db` → `tracker.db.users`).
pub fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(suffix);
    PathBuf::from(path)
}

/// Creates the file `path` for writing, readable by its owner only (mode 0600 on Unix): it
/// holds secrets. Fails with `AlreadyExists` if it exists.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database `{path}`: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error(
        "the database `{path}` has schema version {found}, newer than this tracker knows ({known}): run a newer tracker"
    )]
    NewerSchema { path: PathBuf, found: i64, known: usize },
    #[error("cannot migrate the database `{path}` to schema version {version}: {source}")]
    Migrate { path: PathBuf, version: usize, source: rusqlite::Error },
    #[error("a device with id {0} already exists")]
    DuplicateDevice(u64),
    #[error("no device with id {0}")]
    UnknownDevice(u64),
    #[error("a user named {0:?} already exists")]
    DuplicateUser(String),
    #[error("no user with id {0}")]
    UnknownUser(u64),
    #[error("{0}")]
    BadAccount(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// An enrolled device, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: u64,
    pub name: String,
    pub key: DeviceKey,
    pub enabled: bool,
    pub created_ms: u64,
    /// The highest counter accepted from it (0 if none).
    pub highest_counter: u64,
    /// When its last position was received (0 if never).
    pub last_seen_ms: u64,
}

/// The database. See the module docs.
#[derive(Debug)]
pub struct Store {
    /// The connection that writes.
    writer: Mutex<Connection>,
    /// The connection that reads (`query_only`).
    reader: Mutex<Connection>,
}

/// `u64` ids and counters, bit for bit.
fn to_sql(v: u64) -> i64 {
    v as i64
}

fn from_sql(v: i64) -> u64 {
    v as u64
}

/// Times, saturating.
fn time_to_sql(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

const POSITION_COLUMNS: &str =
    "device_id, counter, time_ms, received_ms, lat, lon, speed, heading, accuracy, battery";

fn position_from_row(row: &Row<'_>) -> rusqlite::Result<PositionT> {
    Ok(PositionT {
        device_id: from_sql(row.get(0)?),
        counter: from_sql(row.get(1)?),
        time_ms: from_sql(row.get::<_, i64>(2)?.max(0)),
        received_ms: from_sql(row.get::<_, i64>(3)?.max(0)),
        lat: row.get(4)?,
        lon: row.get(5)?,
        speed_mps: row.get::<_, f64>(6)? as f32,
        heading_deg: row.get::<_, f64>(7)? as f32,
        accuracy_m: row.get::<_, f64>(8)? as f32,
        battery: row.get(9)?,
    })
}

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    let key: Vec<u8> = row.get(2)?;
    Ok(DeviceRecord {
        id: from_sql(row.get(0)?),
        name: row.get(1)?,
        // The CHECK constraint keeps every key 32 bytes long.
        key: key.try_into().unwrap_or([0; 32]),
        enabled: row.get(3)?,
        created_ms: from_sql(row.get::<_, i64>(4)?.max(0)),
        highest_counter: from_sql(row.get(5)?),
        last_seen_ms: from_sql(row.get::<_, i64>(6)?.max(0)),
    })
}

const DEVICE_COLUMNS: &str = "id, name, key, enabled, created_ms, highest_counter, last_seen_ms";

impl Store {
    /// Opens (creating it if needed) the database at `path`, and brings its schema up to date.
    ///
    /// # Errors
    /// The file cannot be opened or is not a database ([`StoreError::Open`]), its schema is newer
    /// than this tracker knows ([`StoreError::NewerSchema`]), or a migration fails.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let open_error = |source| StoreError::Open { path: path.to_owned(), source };
        let mut writer = Connection::open(path).map_err(open_error)?;
        writer.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_error)?;
        // Switching to WAL needs the file to itself for a moment, and SQLite answers "busy" at
        // once (without waiting) while another process opens it: tried again, a bounded while.
        retry_busy(|| writer.pragma_update(None, "journal_mode", "WAL")).map_err(open_error)?;
        writer.pragma_update(None, "synchronous", "FULL").map_err(open_error)?;
        writer.pragma_update(None, "foreign_keys", true).map_err(open_error)?;
        migrate(&mut writer, path)?;
        let reader = Connection::open(path).map_err(open_error)?;
        reader.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_error)?;
        reader.pragma_update(None, "query_only", true).map_err(open_error)?;
        Ok(Store { writer: Mutex::new(writer), reader: Mutex::new(reader) })
    }

    // A panic while holding a lock leaves the connection usable: SQLite rolls back an unfinished
    // transaction when it is dropped.
    fn writer(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The schema version (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.reader().pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Adds a device.
    ///
    /// # Errors
    /// [`StoreError::DuplicateDevice`] if the id is taken.
    pub fn add_device(
        &self,
        id: u64,
        name: &str,
        key: &DeviceKey,
        created_ms: u64,
    ) -> Result<(), StoreError> {
        self.add_devices([(id, name, key)], created_ms)
    }

    /// Adds devices (id, name, key), all in one transaction: one commit however many.
    ///
    /// # Errors
    /// [`StoreError::DuplicateDevice`] naming the first id taken (by an enrolled device or one
    /// earlier in `devices`); then none is added.
    pub fn add_devices<'a>(
        &self,
        devices: impl IntoIterator<Item = (u64, &'a str, &'a DeviceKey)>,
        created_ms: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO devices (id, name, key, created_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (id, name, key) in devices {
                let result =
                    insert.execute(params![to_sql(id), name, &key[..], time_to_sql(created_ms)]);
                match result {
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        return Err(StoreError::DuplicateDevice(id));
                    }
                    other => other.map(drop)?,
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Enables or disables a device (a disabled device's reports are dropped as unknown).
    pub fn set_enabled(&self, id: u64, enabled: bool) -> Result<(), StoreError> {
        let changed = self.writer().execute(
            "UPDATE devices SET enabled = ?2 WHERE id = ?1",
            params![to_sql(id), enabled],
        )?;
        if changed == 0 { Err(StoreError::UnknownDevice(id)) } else { Ok(()) }
    }

    /// Every device, by id.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY id"))?;
        let mut devices = stmt.query_map([], device_from_row)?.collect::<Result<Vec<_>, _>>()?;
        devices.sort_by_key(|d| d.id);
        Ok(devices)
    }

    /// Up to `limit` enabled devices with an id above `after` for which `keep` is true, by id
    /// (ids compared as unsigned): one page of a long list, the next page after the last id.
    pub fn enabled_devices_after(
        &self,
        after: u64,
        limit: usize,
        keep: impl Fn(u64) -> bool,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        // Ids are stored bit for bit as signed integers: in unsigned order, the ids stored as
        // 0..=i64::MAX come first, then those stored as i64::MIN..=-1. Each range is read in the
        // table's own order, from the first id above `after`.
        const HALF: u64 = 1 << 63;
        let mut ranges = Vec::with_capacity(2);
        if after < HALF - 1 {
            ranges.push((to_sql(after + 1), i64::MAX));
        }
        if after < HALF {
            ranges.push((i64::MIN, -1));
        } else if after < u64::MAX {
            ranges.push((to_sql(after + 1), -1));
        }
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id BETWEEN ?1 AND ?2 AND enabled ORDER BY id"
        ))?;
        let mut page = Vec::new();
        for (low, high) in ranges {
            for device in stmt.query_map([low, high], device_from_row)? {
                let device = device?;
                if keep(device.id) {
                    page.push(device);
                    if page.len() >= limit.max(1) {
                        return Ok(page);
                    }
                }
            }
        }
        Ok(page)
    }

    /// One device.
    pub fn device(&self, id: u64) -> Result<Option<DeviceRecord>, StoreError> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"))?;
        Ok(stmt.query_row([to_sql(id)], device_from_row).optional()?)
    }

    /// Stores a batch of accepted positions in one transaction, raising each device's highest
    /// counter and last-seen time (once per device in the batch). When it returns `Ok`, the
    /// batch is durable. A position whose (device, fix time, counter) is already stored is
    /// skipped.
    ///
    /// # Errors
    /// On any error nothing of the batch is stored.
    pub fn insert_positions(&self, positions: &[PositionT]) -> Result<(), StoreError> {
        // Per device: the highest counter and the latest receive time in the batch.
        let mut raised: HashMap<u64, (u64, i64)> = HashMap::new();
        for p in positions {
            let entry = raised.entry(p.device_id).or_insert((0, 0));
            entry.0 = entry.0.max(p.counter);
            entry.1 = entry.1.max(time_to_sql(p.received_ms));
        }
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        {
            // The devices first: one that does not exist fails the batch by name.
            let mut read = tx.prepare_cached(
                "SELECT highest_counter, last_seen_ms FROM devices WHERE id = ?1",
            )?;
            let mut update = tx.prepare_cached(
                "UPDATE devices SET highest_counter = ?2, last_seen_ms = ?3 WHERE id = ?1",
            )?;
            for (&device_id, &(counter, received)) in &raised {
                let (highest, last_seen): (i64, i64) = read
                    .query_row([to_sql(device_id)], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .ok_or(StoreError::UnknownDevice(device_id))?;
                // Counters are unsigned, stored bit for bit: compared as `u64`, not in SQL.
                let highest = from_sql(highest).max(counter);
                update.execute(params![
                    to_sql(device_id),
                    to_sql(highest),
                    last_seen.max(received)
                ])?;
            }
            let mut insert = tx.prepare_cached(&format!(
                "INSERT OR IGNORE INTO positions ({POSITION_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))?;
            for p in positions {
                insert.execute(params![
                    to_sql(p.device_id),
                    to_sql(p.counter),
                    time_to_sql(p.time_ms),
                    time_to_sql(p.received_ms),
                    p.lat,
                    p.lon,
                    f64::from(p.speed_mps),
                    f64::from(p.heading_deg),
                    f64::from(p.accuracy_m),
                    p.battery,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Retention: deletes every position with a fix time before `before_ms`, device by device
    /// (a range of the primary key each), a thousand devices per transaction (so the
    /// write-ahead log stays small and the ingest's transactions get their turn between).
    /// Returns how many were deleted. The freed pages are reused by later inserts; the file does
    /// not shrink.
    ///
    /// # Errors
    /// A database error; what the finished transactions deleted stays deleted.
    pub fn delete_positions_before(&self, before_ms: u64) -> Result<u64, StoreError> {
        self.delete_device_by_device(
            "DELETE FROM positions WHERE device_id = ?1 AND time_ms < ?2",
            &[time_to_sql(before_ms)],
        )
    }

    /// Runs `delete` (the device's id as `?1`, then `rest`) for every device, a thousand
    /// devices per transaction, so the write-ahead log stays small and the ingest's
    /// transactions get their turn between; returns how many rows it deleted.
    fn delete_device_by_device(&self, delete: &str, rest: &[i64]) -> Result<u64, StoreError> {
        let ids: Vec<u64> = self.devices()?.into_iter().map(|d| d.id).collect();
        let mut deleted = 0u64;
        for chunk in ids.chunks(1000) {
            let mut conn = self.writer();
            let tx = conn.transaction()?;
            {
                let mut delete = tx.prepare_cached(delete)?;
                for &id in chunk {
                    let values = std::iter::once(to_sql(id)).chain(rest.iter().copied());
                    deleted += delete.execute(rusqlite::params_from_iter(values))? as u64;
                }
            }
            tx.commit()?;
        }
        Ok(deleted)
    }

    /// Downsampling: of the positions with a fix time before `before_ms`, keeps the first (by
    /// fix time) of each `bucket_ms` interval (intervals counted from the Unix epoch) and
    /// deletes the others, device by device, a thousand devices per transaction. `before_ms` is
    /// rounded down to a whole interval. Positions already downsampled by an earlier call (the
    /// store keeps how far it went) are not read again, so an hourly call costs the hour's
    /// positions, not the whole history. Returns how many were deleted.
    ///
    /// # Errors
    /// A database error; what the finished transactions deleted stays deleted, and the next call
    /// goes over the same interval again.
    ///
    /// # Panics
    /// If `bucket_ms` is 0.
    pub fn downsample_before(&self, before_ms: u64, bucket_ms: u64) -> Result<u64, StoreError> {
        assert!(bucket_ms > 0, "a downsampling interval is longer than 0 ms");
        let before_ms = before_ms / bucket_ms * bucket_ms;
        let from_ms = self.meta(DOWNSAMPLED_BEFORE)?.map_or(0, |v| from_sql(v.max(0)));
        if before_ms <= from_ms {
            return Ok(0);
        }
        // The bare `counter` beside `min(time_ms)` is the counter of the row with that minimum
        // (SQLite's rule for min() and max() aggregates).
        let deleted = self.delete_device_by_device(
            "DELETE FROM positions
             WHERE device_id = ?1 AND time_ms >= ?2 AND time_ms < ?3
               AND counter NOT IN (
                 SELECT counter FROM (
                   SELECT counter, min(time_ms) FROM positions
                   WHERE device_id = ?1 AND time_ms >= ?2 AND time_ms < ?3
                   GROUP BY time_ms / ?4))",
            &[time_to_sql(from_ms), time_to_sql(before_ms), time_to_sql(bucket_ms)],
        )?;
        self.set_meta(DOWNSAMPLED_BEFORE, time_to_sql(before_ms))?;
        Ok(deleted)
    }

    fn meta(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.reader();
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta(&self, key: &str, value: i64) -> Result<(), StoreError> {
        self.writer().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// A device's newest position by fix time (the highest counter among equal times).
    pub fn last_position(&self, device_id: u64) -> Result<Option<PositionT>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {POSITION_COLUMNS} FROM positions WHERE device_id = ?1
             ORDER BY time_ms DESC, counter DESC LIMIT 1"
        ))?;
        Ok(stmt.query_row([to_sql(device_id)], position_from_row).optional()?)
    }

    /// A device's positions with a fix time in `from_ms ..= to_ms`, at most `limit` of them:
    /// the oldest first, or with `newest_first` the newest first (so the most recent `limit`).
    pub fn history(
        &self,
        device_id: u64,
        from_ms: u64,
        to_ms: u64,
        limit: u32,
        newest_first: bool,
    ) -> Result<Vec<PositionT>, StoreError> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {POSITION_COLUMNS} FROM positions
             WHERE device_id = ?1 AND time_ms BETWEEN ?2 AND ?3
             ORDER BY time_ms {order}, counter {order} LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![to_sql(device_id), time_to_sql(from_ms), time_to_sql(to_ms), limit],
            position_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// `f`'s result, tried again every 10 ms for up to 5 s while SQLite answers "busy".
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// Applies the migrations the database lacks, each in its own transaction.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|source| StoreError::Open { path: path.to_owned(), source })?;
    if found < 0 || found as u64 > MIGRATIONS.len() as u64 {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            known: MIGRATIONS.len(),
        });
    }
    // Each step takes the write lock first and reads the version again under it: another
    // process opening the same file at the same time (`tracker serve` and `tracker demo --nats`
    // on one database) may have applied it meanwhile.
    loop {
        let lock_error = |source| StoreError::Open { path: path.to_owned(), source };
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(lock_error)?;
        let current: i64 =
            tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(lock_error)?;
        let Some(sql) = usize::try_from(current).ok().and_then(|i| MIGRATIONS.get(i)) else {
            return Ok(());
        };
        let version = current as usize + 1;
        let migrate_error = |source| StoreError::Migrate { path: path.to_owned(), version, source };
        // A fresh file's steps are instant; an existing database's may copy a large table.
        let started = std::time::Instant::now();
        if current > 0 {
            tracing::info!(db = %path.display(), version, "migrating the database's schema");
        }
        tx.execute_batch(sql).map_err(migrate_error)?;
        tx.pragma_update(None, "user_version", version as i64).map_err(migrate_error)?;
        tx.commit().map_err(migrate_error)?;
        if current > 0 {
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(db = %path.display(), version, seconds, "schema migrated");
        }
    }
}

pub mod accounts;

#[cfg(test)]
mod tests;
