//! The server, in one of two shapes.
//!
//! By default (`workers: 0`) each socket's thread runs to completion: one `recvmmsg` brings a
//! batch (whatever was queued, up to `max_batch`), the thread parses the requests where the
//! kernel put them, answers them under one signature and sends the answers with one
//! `sendmmsg`, with no hand-off and no copy of a request. Sockets share the address
//! (`SO_REUSEPORT`), one per core by default, and the kernel spreads clients over them.
//!
//! With signing workers (`workers: N`), the seed's pipeline with its bottlenecks removed:
//!
//! ```text
//! sockets (SO_REUSEPORT, one receive thread each, recvmmsg)
//!   → request queue (bounded; when full the oldest request is dropped)
//!   → batcher (up to `max_batch` requests: what is queued when a worker is idle, else what
//!     arrives within `max_delay` of the first; `min_delay` holds a batch back for more)
//!   → batch queue (bounded; the batcher waits, so the request queue sheds)
//!   → signing workers (parse, one Merkle tree and one signature per version, sendmmsg)
//! ```
//!
//! It sheds the oldest requests under overload and signs on other cores than it receives on;
//! the hand-offs cost about a microsecond a request (docs/benchmarks.md). Workers send their
//! own responses in one `sendmmsg` per socket and batch, so no stage copies responses to
//! another. Every stage counts what it drops and the time it spends (see
//! [`Metrics`]). The online key is rotated before its delegation expires: batches in flight
//! finish with the key they started with, so no request is lost. Shutdown stops the receivers,
//! then the batcher sends what is queued, then the workers answer it.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver as BatchReceiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::keys::{Delegation, LongTermKey};
use crate::protocol::{Ignored, Request, now_seconds};
use crate::respond::Responder;
use crate::udp::{self, Datagram};

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to answer on (IANA's port is 5319).
    pub bind: SocketAddr,
    /// Sockets sharing the address, one thread each (default: one per core).
    pub sockets: usize,
    /// 0 (the default): each socket's thread answers what one `recvmmsg` brought (up to
    /// `max_batch` requests) itself, without hand-offs (`max_delay` and `queue` do not apply:
    /// the socket's buffer is the queue). N: the pipeline, with N signing threads.
    pub workers: usize,
    /// The most requests under one signature (a power of two keeps paths short).
    pub max_batch: usize,
    /// The longest a request waits for others to share its batch.
    pub max_delay: Duration,
    /// The shortest: a batch is formed for an idle worker only once its first request has
    /// waited this long (0: at once). Raising it trades latency for fewer signatures.
    pub min_delay: Duration,
    /// Requests waiting for the batcher; beyond this the oldest are dropped.
    pub queue: usize,
    /// RADI, seconds.
    pub radius: u32,
    /// How long an online key is delegated for; a new one takes over at 3/4 of it.
    pub key_lifetime: Duration,
    /// Seconds added to the time the server signs: 0 for an honest server. Other values make a
    /// server that lies, for testing clients' malfeasance detection.
    pub clock_offset: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([0, 0, 0, 0], 5319)),
            sockets: std::thread::available_parallelism().map_or(1, |n| n.get()),
            workers: 0,
            max_batch: 256,
            max_delay: Duration::from_millis(1),
            min_delay: Duration::ZERO,
            queue: 65_536,
            radius: 3,
            key_lifetime: Duration::from_secs(24 * 3600),
            clock_offset: 0,
        }
    }
}

/// Counters and times of every stage, read by [`Metrics::render`] as Prometheus text.
#[derive(Debug, Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub truncated: AtomicU64,
    pub receive_errors: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub ignored_malformed: AtomicU64,
    pub ignored_missing_tag: AtomicU64,
    pub ignored_not_request: AtomicU64,
    pub ignored_bad_versions: AtomicU64,
    pub ignored_no_common_version: AtomicU64,
    pub ignored_bad_nonce: AtomicU64,
    pub ignored_unknown_server: AtomicU64,
    pub ignored_too_short: AtomicU64,
    pub dropped_no_valid_key: AtomicU64,
    pub batches: AtomicU64,
    pub signatures: AtomicU64,
    pub responses: AtomicU64,
    pub send_failed: AtomicU64,
    pub key_rotations: AtomicU64,
    /// Nanoseconds of work per stage (not waiting).
    pub receive_ns: AtomicU64,
    pub batch_ns: AtomicU64,
    pub respond_ns: AtomicU64,
    pub send_ns: AtomicU64,
    /// Nanoseconds requests spent queued: before the batcher took them, and batched before a
    /// worker took them (summed over requests).
    pub queue_wait_ns: AtomicU64,
    pub batch_wait_ns: AtomicU64,
}

impl Metrics {
    fn ignored(&self, reason: Ignored) {
        let counter = match reason {
            Ignored::Malformed => &self.ignored_malformed,
            Ignored::MissingTag => &self.ignored_missing_tag,
            Ignored::NotARequest => &self.ignored_not_request,
            Ignored::BadVersionList => &self.ignored_bad_versions,
            Ignored::NoCommonVersion => &self.ignored_no_common_version,
            Ignored::BadNonce => &self.ignored_bad_nonce,
            Ignored::UnknownServer => &self.ignored_unknown_server,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        // Times are kept in nanoseconds and shown in seconds, as Prometheus expects.
        let mut counter = |name: &str, help: &str, samples: &[(&str, u64)]| {
            out.push_str(&format!(
                "# HELP roughtime_{name} {help}\n# TYPE roughtime_{name} counter\n"
            ));
            for (labels, value) in samples {
                if name.ends_with("seconds_total") {
                    out.push_str(&format!("roughtime_{name}{labels} {:.9}\n", *value as f64 / 1e9));
                } else {
                    out.push_str(&format!("roughtime_{name}{labels} {value}\n"));
                }
            }
        };
        counter("received_total", "Datagrams received.", &[("", get(&self.received))]);
        counter(
            "dropped_total",
            "Requests dropped, by stage and reason.",
            &[
                ("{stage=\"receive\",reason=\"truncated\"}", get(&self.truncated)),
                ("{stage=\"queue\",reason=\"full\"}", get(&self.dropped_queue_full)),
                ("{stage=\"respond\",reason=\"malformed\"}", get(&self.ignored_malformed)),
                ("{stage=\"respond\",reason=\"missing_tag\"}", get(&self.ignored_missing_tag)),
                ("{stage=\"respond\",reason=\"not_a_request\"}", get(&self.ignored_not_request)),
                ("{stage=\"respond\",reason=\"bad_versions\"}", get(&self.ignored_bad_versions)),
                (
                    "{stage=\"respond\",reason=\"no_common_version\"}",
                    get(&self.ignored_no_common_version),
                ),
                ("{stage=\"respond\",reason=\"bad_nonce\"}", get(&self.ignored_bad_nonce)),
                (
                    "{stage=\"respond\",reason=\"unknown_server\"}",
                    get(&self.ignored_unknown_server),
                ),
                ("{stage=\"respond\",reason=\"request_too_short\"}", get(&self.ignored_too_short)),
                ("{stage=\"respond\",reason=\"no_valid_key\"}", get(&self.dropped_no_valid_key)),
                ("{stage=\"send\",reason=\"failed\"}", get(&self.send_failed)),
            ],
        );
        counter(
            "receive_errors_total",
            "Receive errors (other than timeouts).",
            &[("", get(&self.receive_errors))],
        );
        counter("batches_total", "Batches answered.", &[("", get(&self.batches))]);
        counter(
            "signatures_total",
            "Response signatures made (one per version per batch).",
            &[("", get(&self.signatures))],
        );
        counter("responses_total", "Responses sent.", &[("", get(&self.responses))]);
        counter(
            "key_rotations_total",
            "Online keys replaced before their delegation expired.",
            &[("", get(&self.key_rotations))],
        );
        counter(
            "stage_seconds_total",
            "Time spent working, by stage.",
            &[
                ("{stage=\"receive\"}", get(&self.receive_ns)),
                ("{stage=\"batch\"}", get(&self.batch_ns)),
                ("{stage=\"respond\"}", get(&self.respond_ns)),
                ("{stage=\"send\"}", get(&self.send_ns)),
            ],
        );
        counter(
            "queue_wait_seconds_total",
            "Time requests spent queued, summed over requests, by queue.",
            &[
                ("{queue=\"requests\"}", get(&self.queue_wait_ns)),
                ("{queue=\"batches\"}", get(&self.batch_wait_ns)),
            ],
        );
        out
    }
}

/// A request waiting in the queue.
struct Pending {
    datagram: Datagram,
    socket: usize,
    received: Instant,
}

/// The request queue: bounded, shedding its oldest entries when full.
struct RequestQueue {
    inner: Mutex<(VecDeque<Pending>, bool)>,
    ready: Condvar,
    capacity: usize,
    /// Workers waiting for a batch that no batch has been formed for yet: while one waits, a
    /// batch is formed at once from what is queued instead of waiting for more.
    idle_workers: AtomicUsize,
}

impl RequestQueue {
    /// Adds requests; returns how many old ones were dropped to make room.
    fn push(&self, items: impl Iterator<Item = Pending>) -> u64 {
        let mut guard = self.inner.lock().expect("queue lock");
        let mut dropped = 0;
        for item in items {
            if guard.0.len() == self.capacity {
                guard.0.pop_front();
                dropped += 1;
            }
            guard.0.push_back(item);
        }
        drop(guard);
        self.ready.notify_one();
        dropped
    }

    fn close(&self) {
        self.inner.lock().expect("queue lock").1 = true;
        self.ready.notify_all();
    }

    /// A worker is about to wait for a batch.
    fn worker_idle(&self) {
        self.idle_workers.fetch_add(1, Ordering::Relaxed);
        // Under the lock, so that the batcher either saw the count or is waiting to be told.
        let _guard = self.inner.lock().expect("queue lock");
        self.ready.notify_all();
    }

    /// The next batch: up to `max` requests. While every worker is busy it waits for more,
    /// until `delays.1` after the first arrived; once a worker waits, it takes what is queued
    /// as soon as the first has waited `delays.0`, so with no minimum a lone request is not
    /// delayed and batches grow with the load. `None` once closed and empty.
    fn next_batch(&self, max: usize, delays: (Duration, Duration)) -> Option<Vec<Pending>> {
        let mut guard = self.inner.lock().expect("queue lock");
        loop {
            if let Some(first) = guard.0.front() {
                let (earliest, deadline) = (first.received + delays.0, first.received + delays.1);
                while guard.0.len() < max && !guard.1 {
                    let now = Instant::now();
                    let idle = self.idle_workers.load(Ordering::Relaxed) > 0;
                    if now >= deadline || (idle && now >= earliest) {
                        break;
                    }
                    let until = if idle { earliest.min(deadline) } else { deadline };
                    guard = self.ready.wait_timeout(guard, until - now).expect("queue lock").0;
                }
                let n = guard.0.len().min(max);
                // This batch is the one an idle worker, if any, will take.
                let _ = self
                    .idle_workers
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                return Some(guard.0.drain(..n).collect());
            }
            if guard.1 {
                return None;
            }
            guard = self.ready.wait(guard).expect("queue lock");
        }
    }
}

struct Batch {
    requests: Vec<Pending>,
    formed: Instant,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    receivers: Vec<JoinHandle<()>>,
    rest: Vec<JoinHandle<()>>,
    queue: Arc<RequestQueue>,
}

impl std::fmt::Debug for RequestQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestQueue").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

/// The MIDP to sign: now, moved by the configured offset.
fn midp(offset: i64) -> u64 {
    now_seconds().saturating_add_signed(offset)
}

fn nanos(since: Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}

/// A delegation to a new online key, from the (offset) time now.
fn delegate(key: &LongTermKey, lifetime: Duration, offset: i64) -> io::Result<Delegation> {
    key.delegate_from(midp(offset), lifetime)
        .map_err(|e| io::Error::other(format!("no randomness for an online key: {e}")))
}

impl Server {
    /// Binds the sockets and starts every thread.
    ///
    /// # Errors
    ///
    /// Binding a socket, or no randomness for the first online key.
    pub fn start(config: Config, key: LongTermKey) -> io::Result<Server> {
        let metrics = Arc::new(Metrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut sockets = vec![udp::bind_shared(config.bind, Duration::from_millis(50))?];
        let addr = sockets[0].local_addr()?;
        for _ in 1..config.sockets.max(1) {
            sockets.push(udp::bind_shared(addr, Duration::from_millis(50))?);
        }
        let sockets: Arc<Vec<UdpSocket>> = Arc::new(sockets);
        let responder = Arc::new(RwLock::new(Arc::new(Responder::new(
            delegate(&key, config.key_lifetime, config.clock_offset)?,
            config.radius,
        ))));
        let queue = Arc::new(RequestQueue {
            inner: Mutex::new((VecDeque::new(), false)),
            ready: Condvar::new(),
            capacity: config.queue.max(1),
            idle_workers: AtomicUsize::new(0),
        });

        let mut receivers = Vec::new();
        if config.workers == 0 {
            for index in 0..sockets.len() {
                let (sockets, responder, metrics, stop) =
                    (sockets.clone(), responder.clone(), metrics.clone(), stop.clone());
                let (max_batch, offset) =
                    (config.max_batch.clamp(1, udp::MAX_BATCH), config.clock_offset);
                receivers.push(spawn(format!("rt-answer-{index}"), move || {
                    answer_loop(&sockets[index], max_batch, offset, &responder, &metrics, &stop);
                })?);
            }
            let (rotating, metrics_for_rotation, stop_for_rotation) =
                (responder.clone(), metrics.clone(), stop.clone());
            let rotation = Rotation {
                lifetime: config.key_lifetime,
                radius: config.radius,
                offset: config.clock_offset,
            };
            let rest = vec![spawn("rt-rotate".into(), move || {
                rotate_loop(&key, &rotating, rotation, &metrics_for_rotation, &stop_for_rotation);
            })?];
            return Ok(Server { addr, metrics, stop, receivers, rest, queue });
        }
        for index in 0..sockets.len() {
            let (sockets, queue, metrics, stop) =
                (sockets.clone(), queue.clone(), metrics.clone(), stop.clone());
            receivers.push(spawn(format!("rt-receive-{index}"), move || {
                receive_loop(&sockets[index], index, &queue, &metrics, &stop);
            })?);
        }

        let (batch_tx, batch_rx) = sync_channel::<Batch>(config.workers.max(1) * 2);
        let batch_rx = Arc::new(Mutex::new(batch_rx));
        let mut rest = Vec::new();
        {
            let (queue, metrics) = (queue.clone(), metrics.clone());
            let max_batch = config.max_batch.clamp(1, 1 << 16);
            let delays = (config.min_delay.min(config.max_delay), config.max_delay);
            rest.push(spawn("rt-batch".into(), move || {
                batch_loop(&queue, &batch_tx, max_batch, delays, &metrics);
            })?);
        }
        for index in 0..config.workers.max(1) {
            let (batch_rx, queue, responder, sockets, metrics) = (
                batch_rx.clone(),
                queue.clone(),
                responder.clone(),
                sockets.clone(),
                metrics.clone(),
            );
            let offset = config.clock_offset;
            rest.push(spawn(format!("rt-sign-{index}"), move || {
                work_loop(&batch_rx, &queue, offset, &responder, &sockets, &metrics);
            })?);
        }
        {
            let (responder, metrics, stop) = (responder.clone(), metrics.clone(), stop.clone());
            let rotation = Rotation {
                lifetime: config.key_lifetime,
                radius: config.radius,
                offset: config.clock_offset,
            };
            rest.push(spawn("rt-rotate".into(), move || {
                rotate_loop(&key, &responder, rotation, &metrics, &stop);
            })?);
        }
        Ok(Server { addr, metrics, stop, receivers, rest, queue })
    }

    /// The address the sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stops receiving, answers what is queued, and waits for every thread.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.receivers {
            let _ = handle.join();
        }
        self.queue.close();
        for handle in self.rest {
            let _ = handle.join();
        }
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f)
}

fn receive_loop(
    socket: &UdpSocket,
    index: usize,
    queue: &RequestQueue,
    metrics: &Metrics,
    stop: &AtomicBool,
) {
    let mut receiver = udp::Receiver::new(64);
    let mut datagrams = Vec::with_capacity(64);
    while !stop.load(Ordering::Relaxed) {
        datagrams.clear();
        match receiver.receive(socket, &mut datagrams) {
            Ok((0, truncated)) => {
                metrics.truncated.fetch_add(truncated as u64, Ordering::Relaxed);
            }
            Ok((n, truncated)) => {
                let started = Instant::now();
                metrics.received.fetch_add((n + truncated) as u64, Ordering::Relaxed);
                metrics.truncated.fetch_add(truncated as u64, Ordering::Relaxed);
                let pending = datagrams.drain(..).map(|datagram| Pending {
                    datagram,
                    socket: index,
                    received: started,
                });
                let dropped = queue.push(pending);
                metrics.dropped_queue_full.fetch_add(dropped, Ordering::Relaxed);
                metrics.receive_ns.fetch_add(nanos(started), Ordering::Relaxed);
            }
            Err(_) => {
                metrics.receive_errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// Run to completion: receive a batch, answer it, send the answers, all in this thread and
/// without copying a request.
fn answer_loop(
    socket: &UdpSocket,
    max_batch: usize,
    offset: i64,
    responder: &RwLock<Arc<Responder>>,
    metrics: &Metrics,
    stop: &AtomicBool,
) {
    let mut receiver = udp::Receiver::new(max_batch);
    let mut answers: Vec<u8> = Vec::with_capacity(max_batch * 700);
    let mut ranges: Vec<(SocketAddr, std::ops::Range<usize>)> = Vec::with_capacity(max_batch);
    while !stop.load(Ordering::Relaxed) {
        let n = match receiver.receive_held(socket) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(_) => {
                metrics.receive_errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        let started = Instant::now();
        metrics.received.fetch_add(n as u64, Ordering::Relaxed);
        let responder = responder.read().expect("responder lock").clone();
        let srv = responder.srv();
        let mut requests = Vec::with_capacity(n);
        let mut senders = Vec::with_capacity(n);
        for i in 0..n {
            let Some((bytes, from)) = receiver.held(i) else {
                metrics.truncated.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            match Request::parse(bytes, &srv) {
                Ok(request) => {
                    requests.push(request);
                    senders.push(from);
                }
                Err(reason) => metrics.ignored(reason),
            }
        }
        answers.clear();
        ranges.clear();
        answer_batch(&responder, &requests, offset, &mut answers, metrics, |i, range| {
            ranges.push((senders[i], range));
        });
        metrics.respond_ns.fetch_add(nanos(started), Ordering::Relaxed);
        if !ranges.is_empty() {
            let sending = Instant::now();
            let datagrams: Vec<(SocketAddr, &[u8])> =
                ranges.iter().map(|(to, range)| (*to, &answers[range.clone()])).collect();
            let sent = udp::send(socket, &datagrams) as u64;
            metrics.responses.fetch_add(sent, Ordering::Relaxed);
            metrics.send_failed.fetch_add(ranges.len() as u64 - sent, Ordering::Relaxed);
            metrics.send_ns.fetch_add(nanos(sending), Ordering::Relaxed);
        }
    }
}

/// Answers `requests` into `out` with the time now (see [`Responder::respond_into`]) and counts
/// the batch. A batch whose MIDP the online key's delegation does not cover (the clock stepped
/// out of its window faster than the rotation thread looks, every 200 ms) is not answered, as
/// clients would reject the answers, and is counted.
fn answer_batch(
    responder: &Responder,
    requests: &[Request<'_>],
    offset: i64,
    out: &mut Vec<u8>,
    metrics: &Metrics,
    emitted: impl FnMut(usize, std::ops::Range<usize>),
) {
    if requests.is_empty() {
        return;
    }
    let midp = midp(offset);
    if !responder.delegation().covers(midp) {
        metrics.dropped_no_valid_key.fetch_add(requests.len() as u64, Ordering::Relaxed);
        return;
    }
    let answered = responder.respond_into(requests, midp, out, emitted);
    metrics.batches.fetch_add(1, Ordering::Relaxed);
    metrics.signatures.fetch_add(answered.signatures as u64, Ordering::Relaxed);
    metrics.ignored_too_short.fetch_add(answered.too_short as u64, Ordering::Relaxed);
}

fn batch_loop(
    queue: &RequestQueue,
    out: &SyncSender<Batch>,
    max: usize,
    delays: (Duration, Duration),
    metrics: &Metrics,
) {
    while let Some(requests) = queue.next_batch(max, delays) {
        let formed = Instant::now();
        let waited: u64 = requests.iter().map(|p| (formed - p.received).as_nanos() as u64).sum();
        metrics.queue_wait_ns.fetch_add(waited, Ordering::Relaxed);
        metrics.batch_ns.fetch_add(nanos(formed), Ordering::Relaxed);
        if out.send(Batch { requests, formed }).is_err() {
            return;
        }
    }
}

fn work_loop(
    batches: &Mutex<BatchReceiver<Batch>>,
    queue: &RequestQueue,
    offset: i64,
    responder: &RwLock<Arc<Responder>>,
    sockets: &[UdpSocket],
    metrics: &Metrics,
) {
    // Per socket: the responses end to end, and where each goes.
    let mut responses = Vec::new();
    let mut outgoing: Vec<Vec<(SocketAddr, std::ops::Range<usize>)>> =
        vec![Vec::new(); sockets.len()];
    loop {
        let batch = {
            let batches = batches.lock().expect("batch lock");
            match batches.try_recv() {
                Ok(batch) => batch,
                Err(TryRecvError::Empty) => {
                    queue.worker_idle();
                    match batches.recv() {
                        Ok(batch) => batch,
                        Err(_) => return,
                    }
                }
                Err(TryRecvError::Disconnected) => return,
            }
        };
        let started = Instant::now();
        metrics.batch_wait_ns.fetch_add(
            (started - batch.formed).as_nanos() as u64 * batch.requests.len() as u64,
            Ordering::Relaxed,
        );
        let responder = responder.read().expect("responder lock").clone();
        let srv = responder.srv();
        let mut answerable = Vec::with_capacity(batch.requests.len());
        let mut origin = Vec::with_capacity(batch.requests.len());
        for pending in &batch.requests {
            match Request::parse(&pending.datagram.bytes, &srv) {
                Ok(request) => {
                    answerable.push(request);
                    origin.push(pending);
                }
                Err(reason) => metrics.ignored(reason),
            }
        }
        responses.clear();
        answer_batch(&responder, &answerable, offset, &mut responses, metrics, |i, range| {
            outgoing[origin[i].socket].push((origin[i].datagram.from, range));
        });
        metrics.respond_ns.fetch_add(nanos(started), Ordering::Relaxed);
        let sending = Instant::now();
        for (socket, to_send) in sockets.iter().zip(outgoing.iter_mut()) {
            if to_send.is_empty() {
                continue;
            }
            let datagrams: Vec<(SocketAddr, &[u8])> =
                to_send.iter().map(|(to, range)| (*to, &responses[range.clone()])).collect();
            let sent = udp::send(socket, &datagrams) as u64;
            metrics.responses.fetch_add(sent, Ordering::Relaxed);
            metrics.send_failed.fetch_add(to_send.len() as u64 - sent, Ordering::Relaxed);
            to_send.clear();
        }
        metrics.send_ns.fetch_add(nanos(sending), Ordering::Relaxed);
    }
}

/// How online keys are made.
#[derive(Clone, Copy)]
struct Rotation {
    lifetime: Duration,
    radius: u32,
    offset: i64,
}

fn rotate_loop(
    key: &LongTermKey,
    responder: &RwLock<Arc<Responder>>,
    Rotation { lifetime, radius, offset }: Rotation,
    metrics: &Metrics,
    stop: &AtomicBool,
) {
    let lifetime_secs = lifetime.as_secs().max(4);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let (mint, maxt) = {
            let responder = responder.read().expect("responder lock");
            (responder.delegation().mint(), responder.delegation().maxt())
        };
        // Replace the key once a quarter of its window is left, or when the clock stepped back
        // before its window.
        let now = midp(offset);
        if now + lifetime_secs / 4 >= maxt || now < mint {
            if let Ok(delegation) = delegate(key, lifetime, offset) {
                *responder.write().expect("responder lock") =
                    Arc::new(Responder::new(delegation, radius));
                metrics.key_rotations.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Version, request_packet};

    #[test]
    fn a_batch_outside_the_delegation_is_not_answered_but_counted() {
        let key = LongTermKey::from_seed(&[3; 32]);
        let packet = request_packet(&[5; 32], &Version::ALL, None);
        let request = Request::parse(&packet, &key.srv()).expect("a request");
        let now = now_seconds();
        for (window, answered) in [((now - 60, now + 60), true), ((1, 1_000), false)] {
            let responder = Responder::new(key.delegate(&[4; 32], window.0, window.1), 3);
            let (metrics, mut out, mut emitted) = (Metrics::default(), Vec::new(), 0);
            answer_batch(&responder, &[request], 0, &mut out, &metrics, |_, _| emitted += 1);
            assert_eq!(emitted == 1, answered, "window {window:?}");
            assert_eq!(metrics.dropped_no_valid_key.load(Ordering::Relaxed), u64::from(!answered));
            assert_eq!(metrics.batches.load(Ordering::Relaxed), u64::from(answered));
        }
    }
}
