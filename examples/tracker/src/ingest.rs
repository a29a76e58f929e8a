//! The UDP ingest: reports in, checked ([`crate::packet`]), stored in batches, then acknowledged
//! and published on the `position` topic. Nothing is acknowledged or published before the
//! transaction holding it is committed.
//!
//! The work is batched at every step, so that each fixed cost is paid once per batch:
//!
//! - **Receive threads**, one per socket, all sockets bound to the ingest's address with
//!   `SO_REUSEPORT` (the kernel spreads senders over them by address). Each takes up to
//!   [`IngestOptions::receive_batch`] datagrams per system call (`recvmmsg`), checks them in the
//!   document's order (decryption outside any lock: the threads are the decryption pool), and
//!   hands the accepted reports to the writer as one batch, their acknowledgements already
//!   sealed.
//! - **The writer thread** takes every batch waiting (up to [`IngestOptions::batch_max`]
//!   positions) into one transaction: one commit, one fsync, for all of them, in its
//!   [`Storage`] (the database itself, or the storage service of `tracker serve` on the bus, for
//!   an ingest running as a process of its own and serving one [`Shard`] of the devices). Then
//!   it sends the acknowledgements (`sendmmsg`, from the socket each report came in on) and
//!   hands the positions to the publisher.
//! - **The publisher** (a task) publishes them on the bus, in commit order: each on `position`,
//!   and each tile's on `tile` (`crate::tiles`).
//!
//! Everything between is bounded: a receive thread waits when [`IngestOptions::queue`] batches
//! are waiting for the writer (the kernel's socket buffer then fills, and drops what no longer
//! fits, as a network would); positions the publisher has no room for are stored and
//! acknowledged but not published live, and counted. Every datagram is counted in
//! [`IngestStats`]: accepted, or dropped with its reason.

mod devices;
mod storage;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_core::Topics;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::packet::{self, DropReason};
use crate::{PositionT, TrackerClient};
use devices::Devices;
pub use storage::{IngestDevice, Shard, Storage, StorageError};

/// How long a receive thread waits for a datagram before it looks at the stop flag again.
const RECEIVE_TIMEOUT: Duration = Duration::from_millis(50);

/// How the ingest behaves.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// Receive threads, each with its own socket: what [`bind`] binds. Default: one per core.
    pub receivers: usize,
    /// At most this many datagrams per receive system call. Default 256.
    pub receive_batch: usize,
    /// At most this many positions per transaction. Default 8,192.
    pub batch_max: usize,
    /// Batches that may wait for the writer, and for the publisher. Default 64.
    pub queue: usize,
    /// A report from an id the ingest does not know makes it reload the devices from the store
    /// (to see devices enrolled since it started), at most once per this interval. Default 1 s.
    pub reload_interval: Duration,
    /// The devices this ingest serves; reports of others are dropped as from unknown devices.
    /// Default: every device.
    pub shard: Shard,
}

impl Default for IngestOptions {
    fn default() -> IngestOptions {
        IngestOptions {
            receivers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            receive_batch: 256,
            batch_max: 8192,
            queue: 64,
            reload_interval: Duration::from_secs(1),
            shard: Shard::ALL,
        }
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
    transactions: AtomicU64,
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

    /// Publications that did not happen: stored positions the bus refused or the publisher was
    /// too far behind to take, and tile events (`crate::tiles`) the bus refused.
    pub fn publish_errors(&self) -> u64 {
        self.publish_errors.load(Ordering::Relaxed)
    }

    /// Transactions committed (so `accepted / transactions` is the mean batch).
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
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
            ("transactions", self.transactions()),
        ] {
            out.push_str(&format!("# TYPE tracker_ingest_{name}_total counter\n"));
            out.push_str(&format!("tracker_ingest_{name}_total {value}\n"));
        }
        out
    }

    /// Logs the counters every `every` while they change, until `stop` is cancelled: what an
    /// operator reads when nothing scrapes [`IngestStats::metrics_text`].
    pub async fn log_every(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut last = String::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let line = self.to_string();
            if line != last {
                tracing::info!(stats = %line, "ingest");
                last = line;
            }
        }
    }

    fn count_drop(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Display for IngestStats {
    /// One line: `accepted=… transactions=… acks=… store_errors=… publish_errors=…`, then each
    /// drop reason that counted any (`bad_tag=3`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "accepted={} transactions={} acks={} store_errors={} publish_errors={}",
            self.accepted(),
            self.transactions(),
            self.acks(),
            self.store_errors(),
            self.publish_errors()
        )?;
        for reason in DropReason::ALL {
            let dropped = self.dropped(reason);
            if dropped > 0 {
                write!(f, " {reason}={dropped}")?;
            }
        }
        Ok(())
    }
}

/// Reports that passed every check, on their way to the writer: the positions, and the
/// acknowledgements to send once they are committed.
#[derive(Debug, Default)]
struct Checked {
    positions: Vec<PositionT>,
    acks: Vec<Ack>,
}

/// A sealed acknowledgement, and where it goes.
#[derive(Debug)]
struct Ack {
    /// The socket the report came in on (an index into the ingest's sockets).
    socket: usize,
    to: SocketAddr,
    bytes: [u8; packet::ACK_LEN],
}

/// Binds `count` UDP sockets (at least one) to `addr`, sharing it with `SO_REUSEPORT`: the
/// sockets an [`Ingest`] with [`IngestOptions::receivers`] = `count` reads. With port 0, the
/// first socket's port is taken by all.
///
/// # Errors
/// A socket cannot be created or bound (the address is in use by another program, say).
pub fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    let first = udp_batch::bind_shared(addr, RECEIVE_TIMEOUT)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(udp_batch::bind_shared(addr, RECEIVE_TIMEOUT)?);
    }
    Ok(sockets)
}

/// The UDP ingest. See the module docs.
#[derive(Debug)]
pub struct Ingest {
    sockets: Vec<Arc<UdpSocket>>,
    storage: Arc<dyn Storage>,
    options: IngestOptions,
    stats: Arc<IngestStats>,
    devices: Arc<Devices>,
}

impl Ingest {
    /// An ingest reading `sockets` (all bound to the same address; see [`bind`]), with the
    /// enabled devices of `storage` in [`IngestOptions::shard`] and their highest counters (every
    /// counter up to it is refused as replayed). It blocks while it reads them: call it from a
    /// thread that may block, not from an async task, when `storage` is on the bus.
    ///
    /// # Errors
    /// The devices cannot be read, or a socket cannot be configured (made blocking, with a
    /// receive timeout).
    pub fn new<S: Storage>(
        sockets: Vec<UdpSocket>,
        storage: Arc<S>,
        options: IngestOptions,
    ) -> Result<Ingest, IngestError> {
        let storage: Arc<dyn Storage> = storage;
        if sockets.is_empty() {
            return Err(IngestError::NoSocket);
        }
        for socket in &sockets {
            socket.set_nonblocking(false).map_err(IngestError::Socket)?;
            socket.set_read_timeout(Some(RECEIVE_TIMEOUT)).map_err(IngestError::Socket)?;
        }
        let devices = Devices::load(Arc::clone(&storage), options.shard, options.reload_interval)?;
        Ok(Ingest {
            sockets: sockets.into_iter().map(Arc::new).collect(),
            storage,
            options,
            stats: Arc::default(),
            devices: Arc::new(devices),
        })
    }

    /// The address the sockets are bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sockets[0].local_addr()
    }

    /// How many devices it serves (the enabled devices of its shard, as last read).
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// The counters, shared with the running ingest.
    pub fn stats(&self) -> Arc<IngestStats> {
        Arc::clone(&self.stats)
    }

    /// Serves until `shutdown` is cancelled, publishing accepted positions through `publisher`
    /// (no publication without one). What was received is stored, acknowledged and published
    /// before it returns.
    ///
    /// # Errors
    /// Only when a socket itself fails (the others are then stopped too); nothing a datagram
    /// contains stops the ingest.
    pub async fn run<T: Topics + 'static>(
        self,
        publisher: Option<TrackerClient<T>>,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = CancellationToken::new();
        let queue = self.options.queue.max(1);
        let (checked_tx, checked_rx) = sync_channel::<Checked>(queue);
        let mut receivers = Vec::new();
        for (index, socket) in self.sockets.iter().enumerate() {
            let receiver = ReceiveThread {
                index,
                socket: Arc::clone(socket),
                devices: Arc::clone(&self.devices),
                stats: Arc::clone(&self.stats),
                batch: self.options.receive_batch,
                out: checked_tx.clone(),
                stop: Arc::clone(&stop),
                failed: failed.clone(),
            };
            match spawn(&format!("ingest-recv-{index}"), move || receiver.run()) {
                Ok(thread) => receivers.push(thread),
                Err(e) => {
                    // The threads already started see the flag and end.
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        drop(checked_tx);
        let (published_tx, mut published_rx) = mpsc::channel::<Vec<PositionT>>(queue);
        let writer = WriteThread {
            storage: Arc::clone(&self.storage),
            sockets: self.sockets.clone(),
            stats: Arc::clone(&self.stats),
            batch_max: self.options.batch_max.max(1),
            input: checked_rx,
            publish: publisher.is_some().then_some(published_tx),
        };
        let writer = match spawn("ingest-write", move || writer.run()) {
            Ok(thread) => thread,
            Err(e) => {
                // The receive threads end: at the flag, or when their batch finds no writer.
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        };

        let publishing = async {
            while let Some(positions) = published_rx.recv().await {
                let Some(publisher) = &publisher else { continue };
                // Each tile's positions of the commit in one event, for viewers of a region.
                for (tile, in_tile) in crate::tiles::by_tile(&positions) {
                    let event = crate::TilePositionsT { tile, positions: Some(in_tile) };
                    if let Err(status) = publisher.publish_tile(tile, event).await {
                        self.stats.publish_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(cause = %status, tile, "cannot publish a tile's positions");
                    }
                }
                for position in positions {
                    let device_id = position.device_id;
                    if let Err(status) = publisher.publish_position(device_id, position).await {
                        self.stats.publish_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(cause = %status, device_id, "cannot publish a position");
                    }
                }
            }
        };
        let stopping = async {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = failed.cancelled() => {}
            }
            stop.store(true, Ordering::Relaxed);
        };
        // The publisher ends once the writer has finished, which it does once every receive
        // thread has stopped and its last batch is committed.
        tokio::join!(publishing, stopping);
        let joined = tokio::task::spawn_blocking(move || {
            let mut first_error = None;
            for receiver in receivers {
                match receiver.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        first_error.get_or_insert(e);
                    }
                    Err(_) => {
                        first_error.get_or_insert(io::Error::other("a receive thread panicked"));
                    }
                }
            }
            if writer.join().is_err() {
                first_error.get_or_insert(io::Error::other("the write thread panicked"));
            }
            first_error
        })
        .await
        .map_err(io::Error::other)?;
        match joined {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Why an ingest could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the ingest needs at least one socket")]
    NoSocket,
    #[error("cannot configure the ingest's socket: {0}")]
    Socket(io::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn spawn(
    name: &str,
    f: impl FnOnce() -> io::Result<()> + Send + 'static,
) -> io::Result<std::thread::JoinHandle<io::Result<()>>> {
    std::thread::Builder::new().name(name.into()).spawn(f)
}

/// One socket's receive thread. See the module docs.
struct ReceiveThread {
    index: usize,
    socket: Arc<UdpSocket>,
    devices: Arc<Devices>,
    stats: Arc<IngestStats>,
    batch: usize,
    out: SyncSender<Checked>,
    stop: Arc<AtomicBool>,
    failed: CancellationToken,
}

impl ReceiveThread {
    fn run(self) -> io::Result<()> {
        let mut receiver = udp_batch::Receiver::new(self.batch);
        while !self.stop.load(Ordering::Relaxed) {
            let received = match receiver.receive_held(&self.socket) {
                Ok(received) => received,
                Err(e) if transient(&e) => continue,
                Err(e) => {
                    tracing::error!(cause = %e, socket = self.index, "the ingest's socket failed");
                    self.failed.cancel();
                    return Err(e);
                }
            };
            if received == 0 {
                continue;
            }
            let mut datagrams = Vec::with_capacity(received);
            for i in 0..received {
                match receiver.held(i) {
                    Some(datagram) => datagrams.push(datagram),
                    // Longer than any buffer: certainly longer than a report.
                    None => self.stats.count_drop(DropReason::BadLength),
                }
            }
            let checked = self.devices.check(&datagrams, self.index, &self.stats);
            if !checked.positions.is_empty() && self.out.send(checked).is_err() {
                // The writer is gone, which only a panic does: stop the ingest (the writer's
                // join reports it).
                self.failed.cancel();
                return Ok(());
            }
        }
        Ok(())
    }
}

/// The writer thread. See the module docs.
struct WriteThread {
    storage: Arc<dyn Storage>,
    sockets: Vec<Arc<UdpSocket>>,
    stats: Arc<IngestStats>,
    batch_max: usize,
    input: Receiver<Checked>,
    /// Where committed positions go to be published; `None` without a publisher.
    publish: Option<mpsc::Sender<Vec<PositionT>>>,
}

impl WriteThread {
    fn run(self) -> io::Result<()> {
        // Ends when every receive thread has stopped and all they sent is handled.
        while let Ok(mut batch) = self.input.recv() {
            while batch.positions.len() < self.batch_max {
                match self.input.try_recv() {
                    Ok(more) => {
                        batch.positions.extend(more.positions);
                        batch.acks.extend(more.acks);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.commit(batch);
        }
        Ok(())
    }

    /// Stores a batch, then acknowledges it and hands it to the publisher.
    fn commit(&self, batch: Checked) {
        let count = batch.positions.len() as u64;
        if let Err(e) = self.storage.insert_positions(&batch.positions) {
            self.stats.store_errors.fetch_add(count, Ordering::Relaxed);
            tracing::error!(cause = %e, count, "cannot store a batch of positions; they are not acknowledged");
            return;
        }
        self.stats.transactions.fetch_add(1, Ordering::Relaxed);
        self.stats.accepted.fetch_add(count, Ordering::Relaxed);
        for (index, socket) in self.sockets.iter().enumerate() {
            let acks: Vec<(SocketAddr, &[u8])> = batch
                .acks
                .iter()
                .filter(|ack| ack.socket == index)
                .map(|ack| (ack.to, &ack.bytes[..]))
                .collect();
            if !acks.is_empty() {
                let sent = udp_batch::send(socket, &acks);
                self.stats.acks.fetch_add(sent as u64, Ordering::Relaxed);
            }
        }
        let Some(publish) = &self.publish else { return };
        if let Err(full) = publish.try_send(batch.positions) {
            let positions = match full {
                mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
            };
            self.stats.publish_errors.fetch_add(positions.len() as u64, Ordering::Relaxed);
            tracing::warn!(
                count = positions.len(),
                "the publisher is behind: stored positions not published live"
            );
        }
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
