//! The devices the ingest knows, shared by its receive threads: each enabled device's key and
//! replay window, and the checks of `docs/tracker-devices.md` over a batch of datagrams.
//!
//! The table's lock is taken twice per batch, briefly: once to read the keys of the batch's
//! devices, once to check and move their replay windows. Decryption happens between, unlocked,
//! so the receive threads decrypt in parallel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Ack, Checked, IngestStats, Shard, Storage, StorageError, now_ms};
use crate::PositionT;
use crate::examples::tracker::DeviceReportT;
use crate::packet::{self, DeviceKey, DropReason, Header};
use crate::replay::ReplayWindow;

/// What the ingest knows of an enabled device.
#[derive(Debug)]
struct DeviceState {
    key: DeviceKey,
    window: ReplayWindow,
}

/// The device table. See the module docs.
#[derive(Debug)]
pub(super) struct Devices {
    table: Mutex<HashMap<u64, DeviceState>>,
    storage: Arc<dyn Storage>,
    shard: Shard,
    /// When the table was last read from the store.
    last_reload: Mutex<Instant>,
    reload_interval: Duration,
}

/// A datagram whose header is read and whose device is known.
struct Known {
    index: usize,
    header: Header,
    key: DeviceKey,
}

impl Devices {
    /// The enabled devices of `storage` in `shard`, each with a window restored from its
    /// highest counter.
    pub(super) fn load(
        storage: Arc<dyn Storage>,
        shard: Shard,
        reload_interval: Duration,
    ) -> Result<Devices, StorageError> {
        let devices = Devices {
            table: Mutex::default(),
            storage,
            shard,
            last_reload: Mutex::new(Instant::now()),
            reload_interval,
        };
        devices.reload()?;
        Ok(devices)
    }

    /// How many devices the table holds.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, DeviceState>> {
        // The table stays consistent whatever panicked: every change is one insert or one swap.
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the shard's enabled devices from the storage, keeping the windows of those already
    /// known with the same key.
    fn reload(&self) -> Result<(), StorageError> {
        let records = self.storage.devices(self.shard)?;
        let mut table = self.lock();
        let mut fresh = HashMap::with_capacity(records.len());
        for record in records {
            let window = match table.remove(&record.id) {
                Some(known) if known.key == record.key => known.window,
                _ => ReplayWindow::restored(record.highest_counter),
            };
            fresh.insert(record.id, DeviceState { key: record.key, window });
        }
        *table = fresh;
        Ok(())
    }

    /// Reloads the table unless it was reloaded less than the interval ago.
    fn reload_if_due(&self) {
        {
            let mut last = self.last_reload.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < self.reload_interval {
                return;
            }
            *last = Instant::now();
        }
        if let Err(e) = self.reload() {
            tracing::warn!(cause = %e, "cannot reload the devices");
        }
    }

    /// Checks a batch of datagrams received on socket `socket`, in the document's order:
    /// length, version, device, tag, replay, report. Counts each dropped one in `stats`;
    /// returns the accepted positions and their acknowledgements, in arrival order.
    pub(super) fn check(
        &self,
        datagrams: &[(&[u8], SocketAddr)],
        socket: usize,
        stats: &IngestStats,
    ) -> Checked {
        let drop = |index: usize, reason: DropReason| {
            stats.count_drop(reason);
            let (bytes, peer) = datagrams[index];
            tracing::debug!(%reason, %peer, len = bytes.len(), "report dropped");
        };

        // Headers, and the keys of their devices.
        let mut known = Vec::with_capacity(datagrams.len());
        let mut unknown = Vec::new();
        {
            let table = self.lock();
            for (index, (bytes, _)) in datagrams.iter().enumerate() {
                match Header::parse(bytes) {
                    Err(reason) => drop(index, reason),
                    Ok(header) => match table.get(&header.device_id) {
                        Some(device) => known.push(Known { index, header, key: device.key }),
                        None => unknown.push((index, header)),
                    },
                }
            }
        }
        if !unknown.is_empty() {
            // Perhaps enrolled since the table was read.
            self.reload_if_due();
            let table = self.lock();
            for (index, header) in unknown {
                match table.get(&header.device_id) {
                    Some(device) => known.push(Known { index, header, key: device.key }),
                    None => drop(index, DropReason::UnknownDevice),
                }
            }
            known.sort_unstable_by_key(|k| k.index);
        }

        // Tags and reports, unlocked. The report's verdict waits until the counter is checked:
        // a replayed datagram is `replayed` whatever its report.
        let opened: Vec<(Known, Result<DeviceReportT, DropReason>)> = known
            .into_iter()
            .filter_map(|k| match packet::open(datagrams[k.index].0, &k.header, &k.key) {
                Ok(plaintext) => Some((k, packet::parse_report(&plaintext))),
                Err(reason) => {
                    drop(k.index, reason);
                    None
                }
            })
            .collect();

        // Replay windows, locked.
        let mut accepted = Vec::with_capacity(opened.len());
        {
            let mut table = self.lock();
            for (k, report) in opened {
                // Disabled, or enrolled again with another key, since the keys were read.
                let Some(device) = table.get_mut(&k.header.device_id).filter(|d| d.key == k.key)
                else {
                    drop(k.index, DropReason::UnknownDevice);
                    continue;
                };
                if !device.window.check(k.header.counter) {
                    drop(k.index, DropReason::Replayed);
                    continue;
                }
                match report {
                    Ok(report) => {
                        device.window.accept(k.header.counter);
                        accepted.push((k, report));
                    }
                    Err(reason) => drop(k.index, reason),
                }
            }
        }

        let received_ms = now_ms();
        let mut checked =
            Checked { positions: Vec::with_capacity(accepted.len()), acks: Vec::new() };
        for (k, report) in accepted {
            checked.positions.push(PositionT {
                device_id: k.header.device_id,
                time_ms: report.time_ms,
                lat: report.lat,
                lon: report.lon,
                speed_mps: report.speed_mps,
                heading_deg: report.heading_deg,
                accuracy_m: report.accuracy_m,
                battery: report.battery,
                received_ms,
                counter: k.header.counter,
            });
            if k.header.ack_wanted() {
                checked.acks.push(Ack {
                    socket,
                    to: datagrams[k.index].1,
                    bytes: packet::encode_ack(&k.header, &k.key),
                });
            }
        }
        checked
    }
}
