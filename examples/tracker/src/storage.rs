//! The `TrackerStorage` service, and its client for ingest processes that run apart from the
//! database (`tracker ingest`; docs/tracker.md, "Ingest processes on NATS").
//!
//! [`StorageService`] runs in the process that holds the database (`tracker serve
//! --remote-ingest`). [`RemoteStorage`] is an ingest's [`Storage`] on the bus: it reads its
//! shard's devices a page at a time and stores each batch with one call, which answers once the
//! batch is committed, so the ingest still acknowledges nothing before it is durable.
//!
//! The service hands out device keys, so it lives on the bus only: the gateway does not route
//! it (it is not in the gateway's registry).

use std::sync::Arc;

use gateway_bus::{Bus, BusCalls, BusError};
use gateway_core::{CallContext, Message, Status};

use crate::ingest::{IngestDevice, Shard, Storage, StorageError};
use crate::store::{Store, StoreError};
use crate::{
    IngestDeviceListT, IngestDeviceT, IngestDevicesT, PositionT, StorePositionsT, StoredT,
    TrackerStorage, TrackerStorageClient, TrackerStorageError,
};

/// The most devices one `ingest_devices` page holds (about 250 KiB of answer).
pub const DEVICES_PAGE_MAX: u32 = 4096;

/// The most positions one `store_positions` call stores (about 650 KiB of request: NATS
/// carries 1 MiB by default).
pub const STORE_MAX: usize = 8192;

/// The service. See the module docs.
#[derive(Debug)]
pub struct StorageService {
    store: Arc<Store>,
}

impl StorageService {
    pub fn new(store: Arc<Store>) -> StorageService {
        StorageService { store }
    }

    /// Runs a store call off the async threads.
    async fn blocking<R: Send + 'static>(
        &self,
        call: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, Status> {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || call(&store)).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(StoreError::UnknownDevice(id))) => Err(TrackerStorageError::UnknownDevice
                .status(format!("no device {id}: it was deleted since the ingest read it"))),
            Ok(Err(e)) => {
                tracing::error!(cause = %e, "the storage service's database failed");
                Err(Status::internal(format!("the tracker's database failed: {e}")))
            }
            Err(e) => Err(Status::internal(format!("the storage call failed: {e}"))),
        }
    }
}

impl TrackerStorage for StorageService {
    async fn ingest_devices(
        &self,
        _ctx: CallContext,
        request: Message<IngestDevicesT>,
    ) -> Result<Message<IngestDeviceListT>, Status> {
        let r = request.unpack();
        let shard = Shard::new(r.shard, r.shards).ok_or_else(|| {
            TrackerStorageError::BadArgument
                .status(format!("no shard {} of {}: a shard is below the count", r.shard, r.shards))
        })?;
        let limit = match r.limit {
            0 => DEVICES_PAGE_MAX,
            n => n.min(DEVICES_PAGE_MAX),
        } as usize;
        let page = self
            .blocking(move |s| s.enabled_devices_after(r.after, limit, |id| shard.owns(id)))
            .await?;
        let devices = page
            .into_iter()
            .map(|d| IngestDeviceT {
                id: d.id,
                key: Some(d.key.to_vec()),
                highest_counter: d.highest_counter,
            })
            .collect();
        Ok(IngestDeviceListT { devices: Some(devices) }.into())
    }

    async fn store_positions(
        &self,
        _ctx: CallContext,
        request: Message<StorePositionsT>,
    ) -> Result<Message<StoredT>, Status> {
        let positions = request.unpack().positions.unwrap_or_default();
        if positions.len() > STORE_MAX {
            return Err(TrackerStorageError::BadArgument.status(format!(
                "{} positions in one call; at most {STORE_MAX}",
                positions.len()
            )));
        }
        let count = positions.len() as u32;
        self.blocking(move |s| s.insert_positions(&positions)).await?;
        Ok(StoredT { count }.into())
    }
}

/// An ingest's [`Storage`] on the bus: the `TrackerStorage` service of `tracker serve
/// --remote-ingest`. Its calls block the calling thread (the ingest's own threads) on `runtime`.
#[derive(Debug)]
pub struct RemoteStorage {
    client: TrackerStorageClient<BusCalls>,
    runtime: tokio::runtime::Handle,
}

impl RemoteStorage {
    /// Calls the storage service on `bus`, driving the calls on `runtime`.
    ///
    /// # Errors
    /// The service's subjects are not valid on this bus (rpcgen's names always are).
    pub fn new(
        bus: Arc<dyn Bus>,
        runtime: tokio::runtime::Handle,
    ) -> Result<RemoteStorage, BusError> {
        let client = TrackerStorageClient::new(BusCalls::new(bus, &crate::STORAGE_DESCRIPTOR)?);
        Ok(RemoteStorage { client, runtime })
    }
}

impl Storage for RemoteStorage {
    fn devices(&self, shard: Shard) -> Result<Vec<IngestDevice>, StorageError> {
        let mut devices = Vec::new();
        let mut after = 0;
        loop {
            let request = IngestDevicesT {
                shard: shard.index(),
                shards: shard.count(),
                after,
                limit: DEVICES_PAGE_MAX,
            };
            let page = self
                .runtime
                .block_on(self.client.ingest_devices(request))
                .map_err(StorageError::Remote)?
                .unpack()
                .devices
                .unwrap_or_default();
            let full = page.len() == DEVICES_PAGE_MAX as usize;
            for device in page {
                let Ok(key) = device.key.unwrap_or_default().try_into() else {
                    let reason = format!("device {} came without a 32-byte key", device.id);
                    return Err(StorageError::Remote(Status::internal(reason)));
                };
                after = device.id;
                devices.push(IngestDevice {
                    id: device.id,
                    key,
                    highest_counter: device.highest_counter,
                });
            }
            if !full {
                return Ok(devices);
            }
        }
    }

    fn insert_positions(&self, positions: &[PositionT]) -> Result<(), StorageError> {
        for chunk in positions.chunks(STORE_MAX) {
            let request = StorePositionsT { positions: Some(chunk.to_vec()) };
            self.runtime
                .block_on(self.client.store_positions(request))
                .map_err(StorageError::Remote)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_bus::{LocalBus, ServiceRuntime};
    use gateway_core::Code;
    use tokio_util::sync::CancellationToken;

    use crate::TrackerStorageServer;

    fn position(device_id: u64, counter: u64) -> PositionT {
        PositionT {
            device_id,
            counter,
            time_ms: 1_000 * counter,
            received_ms: 1_000 * counter + 5,
            lat: 52.0,
            lon: 4.0,
            speed_mps: 1.0,
            heading_deg: 0.0,
            accuracy_m: 3.0,
            battery: Some(80),
        }
    }

    #[test]
    fn the_largest_batch_fits_what_nats_carries_by_default() {
        let positions = (0..STORE_MAX as u64).map(|i| position(u64::MAX - i, i)).collect();
        let bytes = Message::from(StorePositionsT { positions: Some(positions) }).into_bytes();
        assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ingest_on_the_bus_reads_its_shard_and_stores_through_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("tracker.db")).unwrap());
        // More devices than a page, some with ids SQLite stores as negative numbers.
        let ids: Vec<u64> = (1..=5_000u64).chain((1..=1_000).map(|i| u64::MAX - i * 7)).collect();
        let keys: Vec<(u64, [u8; 32])> =
            ids.iter().map(|&id| (id, [(id % 200) as u8; 32])).collect();
        store.add_devices(keys.iter().map(|(id, key)| (*id, "d", key)), 0).unwrap();
        store.set_enabled(8, false).unwrap();

        let bus = Arc::new(LocalBus::new());
        let stop = CancellationToken::new();
        let server = Arc::new(TrackerStorageServer::new(StorageService::new(Arc::clone(&store))));
        let serving = ServiceRuntime::new(bus.clone(), server).start(stop.clone()).await.unwrap();
        let remote = RemoteStorage::new(bus.clone(), tokio::runtime::Handle::current()).unwrap();

        let (odd, stored) = tokio::task::spawn_blocking(move || {
            let odd = remote.devices(Shard::new(1, 2).unwrap()).unwrap();
            remote.insert_positions(&[position(2, 9), position(3, 4), position(2, 10)]).unwrap();
            let missing = remote.insert_positions(&[position(6, 1), position(999_999, 1)]);
            (odd, missing)
        })
        .await
        .unwrap();

        let expected: Vec<u64> = {
            let mut odd: Vec<u64> = ids.iter().copied().filter(|id| id % 2 == 1).collect();
            odd.sort_unstable();
            odd
        };
        let got: Vec<u64> = odd.iter().map(|d| d.id).collect();
        assert_eq!(got, expected, "every odd device once, by id, across pages");
        assert_eq!(odd[0].key, [1; 32]);

        match stored {
            Err(StorageError::Remote(status)) => assert_eq!(status.code(), Code::NotFound),
            other => panic!("a batch with an unknown device: {other:?}"),
        }
        assert_eq!(store.device(2).unwrap().unwrap().highest_counter, 10);
        assert_eq!(store.device(3).unwrap().unwrap().highest_counter, 4);
        assert!(store.history(6, 0, u64::MAX, 10, false).unwrap().is_empty(), "all or nothing");
        // The even shard has no disabled device 8.
        let store2 = Arc::clone(&store);
        let even = tokio::task::spawn_blocking(move || {
            Storage::devices(&*store2, Shard::new(0, 2).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
        assert!(even.iter().all(|d| d.id % 2 == 0 && d.id != 8));
        assert_eq!(even.len() + odd.len(), ids.len() - 1);
        stop.cancel();
        serving.stopped().await;
    }
}
