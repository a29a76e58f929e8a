//! The UDP ingest: one task owns the socket, takes reports apart ([`crate::packet`]), stores the
//! accepted positions in batches, then acknowledges those that asked, then publishes each on the
//! `position` topic. Nothing is acknowledged or published before its batch is committed.
//!
//! A batch is whatever is waiting on the socket when the task gets to it (up to
//! [`IngestOptions::batch_max`] datagrams): one datagram when the load is light, many under load,
//! so the commit (an fsync) is shared. Every datagram is counted in [`IngestStats`]: accepted, or
//! dropped with its reason.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gateway_core::Topics;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::packet::{self, DeviceKey, DropReason, Header};
use crate::replay::ReplayWindow;
use crate::store::{Store, StoreError};
use crate::{PositionT, TrackerClient};

/// How the ingest behaves.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// At most this many datagrams per stored batch. Default 256.
    pub batch_max: usize,
    /// A report from an id the ingest does not know makes it reload the devices from the store
    /// (to see devices enrolled since it started), at most once per this interval. Default 1 s.
    pub reload_interval: Duration,
}

impl Default for IngestOptions {
    fn default() -> IngestOptions {
        IngestOptions { batch_max: 256, reload_interval: Duration::from_secs(1) }
    }
}

/// The ingest's counters. Shared (`Arc`) with whoever reports them.
#[derive(Debug, Default)]
pub struct IngestStats {
    accepted: AtomicU64,
    dropped: [AtomicU64; 6],
    acks: AtomicU64,
    store_errors: AtomicU64,
    publish_errors: AtomicU64,
}

impl IngestStats {
    /// Reports stored (and so acknowledged if asked, and published).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Datagrams dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    /// Acknowledgements sent.
    pub fn acks(&self) -> u64 {
        self.acks.load(Ordering::Relaxed)
    }

    /// Reports that were valid but could not be stored (not acknowledged, not published).
    pub fn store_errors(&self) -> u64 {
        self.store_errors.load(Ordering::Relaxed)
    }

    /// Stored positions whose publication failed.
    pub fn publish_errors(&self) -> u64 {
        self.publish_errors.load(Ordering::Relaxed)
    }

    /// The counters in Prometheus' text format.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        out.push_str("# TYPE tracker_ingest_accepted_total counter\n");
        out.push_str(&format!("tracker_ingest_accepted_total {}\n", self.accepted()));
        out.push_str("# TYPE tracker_ingest_dropped_total counter\n");
        for reason in DropReason::ALL {
            out.push_str(&format!(
                "tracker_ingest_dropped_total{{reason=\"{reason}\"}} {}\n",
                self.dropped(reason)
            ));
        }
        for (name, value) in [
            ("acks", self.acks()),
            ("store_errors", self.store_errors()),
            ("publish_errors", self.publish_errors()),
        ] {
            out.push_str(&format!("# TYPE tracker_ingest_{name}_total counter\n"));
            out.push_str(&format!("tracker_ingest_{name}_total {value}\n"));
        }
        out
    }

    fn count_drop(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// What the ingest knows of an enabled device.
#[derive(Debug)]
struct DeviceState {
    key: DeviceKey,
    window: ReplayWindow,
}

/// A report that passed every check, waiting for its batch to be committed.
#[derive(Debug)]
struct Accepted {
    header: Header,
    from: SocketAddr,
    position: PositionT,
}

/// The UDP ingest. See the module docs.
#[derive(Debug)]
pub struct Ingest {
    socket: UdpSocket,
    store: Arc<Store>,
    options: IngestOptions,
    stats: Arc<IngestStats>,
    devices: HashMap<u64, DeviceState>,
    last_reload: Instant,
}

impl Ingest {
    /// An ingest reading `socket`, with the enabled devices of `store` and their highest
    /// counters (every counter up to it is refused as replayed).
    ///
    /// # Errors
    /// The devices cannot be read.
    pub fn new(
        socket: UdpSocket,
        store: Arc<Store>,
        options: IngestOptions,
    ) -> Result<Ingest, StoreError> {
        let mut ingest = Ingest {
            socket,
            store,
            options,
            stats: Arc::default(),
            devices: HashMap::new(),
            last_reload: Instant::now(),
        };
        ingest.reload()?;
        Ok(ingest)
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The counters, shared with the running ingest.
    pub fn stats(&self) -> Arc<IngestStats> {
        Arc::clone(&self.stats)
    }

    /// Serves until `shutdown` is cancelled, publishing accepted positions through `publisher`
    /// (no publication without one). A batch in progress is finished first.
    ///
    /// # Errors
    /// Only when the socket itself fails; nothing a datagram contains stops the ingest.
    pub async fn run<T: Topics + 'static>(
        mut self,
        publisher: Option<TrackerClient<T>>,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        // One byte more than the largest report, so a longer datagram shows as too long.
        let mut buf = vec![0; packet::MAX_LEN + 1];
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                received = self.socket.recv_from(&mut buf) => received,
            };
            let mut batch = Vec::new();
            match first {
                Ok((len, from)) => self.take(&buf[..len], from, &mut batch),
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(e),
            }
            while batch.len() < self.options.batch_max {
                match self.socket.try_recv_from(&mut buf) {
                    Ok((len, from)) => self.take(&buf[..len], from, &mut batch),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if transient(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
            if !batch.is_empty() {
                self.commit(batch, publisher.as_ref()).await;
            }
        }
    }

    /// Checks one datagram, adding it to `batch` if accepted, counting it if dropped.
    fn take(&mut self, datagram: &[u8], from: SocketAddr, batch: &mut Vec<Accepted>) {
        match self.check(datagram, from) {
            Ok(accepted) => batch.push(accepted),
            Err(reason) => {
                self.stats.count_drop(reason);
                tracing::debug!(%reason, peer = %from, len = datagram.len(), "report dropped");
            }
        }
    }

    /// The checks of `docs/tracker-devices.md`, in its order.
    fn check(&mut self, datagram: &[u8], from: SocketAddr) -> Result<Accepted, DropReason> {
        let header = Header::parse(datagram)?;
        if !self.devices.contains_key(&header.device_id)
            && self.last_reload.elapsed() >= self.options.reload_interval
            && let Err(e) = self.reload()
        {
            tracing::warn!(cause = %e, "cannot reload the devices");
        }
        let device = self.devices.get_mut(&header.device_id).ok_or(DropReason::UnknownDevice)?;
        let plaintext = packet::open(datagram, &header, &device.key)?;
        if !device.window.check(header.counter) {
            return Err(DropReason::Replayed);
        }
        let report = packet::parse_report(&plaintext)?;
        device.window.accept(header.counter);
        let position = PositionT {
            device_id: header.device_id,
            time_ms: report.time_ms,
            lat: report.lat,
            lon: report.lon,
            speed_mps: report.speed_mps,
            heading_deg: report.heading_deg,
            accuracy_m: report.accuracy_m,
            battery: report.battery,
            received_ms: now_ms(),
            counter: header.counter,
        };
        Ok(Accepted { header, from, position })
    }

    /// Reads the enabled devices from the store, keeping the windows of those already known.
    fn reload(&mut self) -> Result<(), StoreError> {
        self.last_reload = Instant::now();
        let records = self.store.devices()?;
        let mut devices = HashMap::with_capacity(records.len());
        for record in records.into_iter().filter(|d| d.enabled) {
            let window = match self.devices.remove(&record.id) {
                Some(known) if known.key == record.key => known.window,
                _ => ReplayWindow::restored(record.highest_counter),
            };
            devices.insert(record.id, DeviceState { key: record.key, window });
        }
        self.devices = devices;
        Ok(())
    }

    /// Stores a batch, then acknowledges and publishes it.
    async fn commit<T: Topics + 'static>(
        &mut self,
        batch: Vec<Accepted>,
        publisher: Option<&TrackerClient<T>>,
    ) {
        let positions: Vec<PositionT> = batch.iter().map(|a| a.position.clone()).collect();
        let store = Arc::clone(&self.store);
        let stored = tokio::task::spawn_blocking(move || store.insert_positions(&positions)).await;
        match stored {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return self.lost(batch.len(), &e),
            Err(e) => return self.lost(batch.len(), &e),
        }
        self.stats.accepted.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for accepted in batch.iter().filter(|a| a.header.ack_wanted()) {
            let Some(device) = self.devices.get(&accepted.header.device_id) else { continue };
            let ack = packet::encode_ack(&accepted.header, &device.key);
            match self.socket.send_to(&ack, accepted.from).await {
                Ok(_) => {
                    self.stats.acks.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(cause = %e, peer = %accepted.from, "cannot send an ack"),
            }
        }
        let Some(publisher) = publisher else { return };
        for accepted in batch {
            let device_id = accepted.position.device_id;
            if let Err(status) = publisher.publish_position(device_id, accepted.position).await {
                self.stats.publish_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(cause = %status, device_id, "cannot publish a position");
            }
        }
    }

    fn lost(&self, count: usize, cause: &dyn std::fmt::Display) {
        self.stats.store_errors.fetch_add(count as u64, Ordering::Relaxed);
        tracing::error!(%cause, count, "cannot store a batch of positions; they are not acknowledged");
    }
}

/// Errors a UDP receive reports for an earlier send (an ICMP port unreachable after an ack, on
/// some systems), which say nothing about the socket itself.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
