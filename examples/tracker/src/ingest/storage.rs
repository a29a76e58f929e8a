//! Where an ingest learns its devices and keeps what it accepts: the database itself
//! ([`Store`], one process), or the tracker's storage service on the bus
//! ([`crate::storage::RemoteStorage`], `tracker ingest`). Either way an ingest serves one
//! [`Shard`] of the devices.

use std::fmt;
use std::str::FromStr;

use gateway_core::Status;

use crate::PositionT;
use crate::packet::DeviceKey;
use crate::store::{Store, StoreError};

/// Which devices an ingest serves: those whose id modulo `count` is `index`. The default, `0/1`,
/// is every device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Every device.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; `None` unless `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Shard> {
        (index < count).then_some(Shard { index, count })
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// The shard device `id` belongs to, of `count` (at least 1).
    pub fn of(id: u64, count: u32) -> u32 {
        (id % u64::from(count.max(1))) as u32
    }

    /// True for the devices this shard serves.
    pub fn owns(self, id: u64) -> bool {
        Shard::of(id, self.count) == self.index
    }
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::ALL
    }
}

impl fmt::Display for Shard {
    /// `index/count`, as [`Shard::from_str`] reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `index/count`, `0 <= index < count`: `0/2`, `1/2`.
    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("a shard is INDEX/COUNT with INDEX below COUNT (`0/2`), not `{text}`");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index = index.trim().parse().map_err(|_| bad())?;
        let count = count.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count).ok_or_else(bad)
    }
}

/// A device as the ingest checks its reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestDevice {
    pub id: u64,
    pub key: DeviceKey,
    /// Every counter up to this one is refused as replayed.
    pub highest_counter: u64,
}

/// Why the storage failed; positions it failed to store are not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the tracker's storage service: {0}")]
    Remote(Status),
}

/// Where an ingest learns its devices and keeps what it accepts. Its calls block: the ingest
/// makes them from its own threads.
pub trait Storage: fmt::Debug + Send + Sync + 'static {
    /// The enabled devices of `shard`.
    ///
    /// # Errors
    /// The database, or the service, fails.
    fn devices(&self, shard: Shard) -> Result<Vec<IngestDevice>, StorageError>;

    /// Stores `positions` in one transaction, raising each device's highest counter; returns
    /// once they are durable. A position already stored is skipped.
    ///
    /// # Errors
    /// Nothing of the batch is stored (the service's answer lost on the way is the exception:
    /// the batch may be stored, and is then not acknowledged; the devices send it again, and the
    /// copies are skipped).
    fn insert_positions(&self, positions: &[PositionT]) -> Result<(), StorageError>;
}

impl Storage for Store {
    fn devices(&self, shard: Shard) -> Result<Vec<IngestDevice>, StorageError> {
        let records = self.enabled_devices_after(0, usize::MAX, |id| shard.owns(id))?;
        Ok(records
            .into_iter()
            .map(|d| IngestDevice { id: d.id, key: d.key, highest_counter: d.highest_counter })
            .collect())
    }

    fn insert_positions(&self, positions: &[PositionT]) -> Result<(), StorageError> {
        Ok(Store::insert_positions(self, positions)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_read_and_print_as_index_over_count_and_split_every_id() {
        let shard: Shard = "1/3".parse().unwrap();
        assert_eq!((shard.index(), shard.count()), (1, 3));
        assert_eq!(shard.to_string(), "1/3");
        assert_eq!(" 0 / 1 ".trim().parse::<Shard>().unwrap(), Shard::ALL);
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2", "1/2/3"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        for id in [1, 2, 3, 4, u64::MAX, u64::MAX - 1, 1 << 63] {
            let owners = shards.iter().filter(|s| s.owns(id)).count();
            assert_eq!(owners, 1, "device {id} belongs to exactly one shard");
            assert!(Shard::ALL.owns(id));
        }
        assert!(shards[0].owns(3) && shards[1].owns(4) && shards[2].owns(5));
    }
}
