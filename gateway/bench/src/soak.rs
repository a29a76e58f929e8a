//! The soak mode (`loadgen soak`): a steady, mixed load held for a long time and sampled at a
//! fixed interval, so that `scripts/soak` can show the gateway's memory, open files and latency
//! over time (`docs/reliability.md`, "Soak").
//!
//! The load, all through one gateway serving the echo example:
//!
//! - **calls**: `connections` connections share `calls_per_s` echo calls a second, sent on a
//!   fixed schedule (open loop: a slow answer does not delay the next call), each call timed
//!   from its write to its answer. At most `in_flight` calls are unanswered per connection; a
//!   call due past that is counted `behind` and not sent. A call unanswered after 10 s is counted
//!   `unanswered` and forgotten.
//! - **pub/sub**: one publisher sends `events_per_s` stamped events a second (sequence number and
//!   send time, as the fan-out mode's) on `broadcast`; `subscribers` connections receive them. A
//!   gap in a subscriber's sequence (what a MISSED frame reports) is counted `missed`.
//! - **churn**: `churn_per_s` times a second a new connection says HELLO, subscribes, makes one
//!   call and closes: a leak per connection would show in the gateway's memory or open files.
//!
//! Every `interval` the run hands a [`Sample`] to its caller: what happened since the last one
//! and the gateway's resident memory and open files, read from `/proc`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gateway_protocol::{Decoded, Frame, Publish, Request, Subscribe, decode};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, interval, timeout};
use tokio_util::sync::CancellationToken;

use crate::attack::next_frame;
use crate::connection::hello;
use crate::error::LoadError;
use crate::fanout::stamp::Stamp;
use crate::summary::{Latency, Tally};

/// A call unanswered for this long is counted `unanswered` and forgotten (the gateway fails
/// calls at their 5 s deadline, so none should be).
const FORGET_AFTER: Duration = Duration::from_secs(10);

/// Subscribers, which send nothing otherwise, PING this often so the gateway's idle timeout
/// (5 minutes by default) does not close them, as `docs/protocol.md` asks of idle clients.
const KEEPALIVE: Duration = Duration::from_secs(60);

/// Churning connections at once; one due past this is counted failed.
const CHURN_AT_ONCE: usize = 64;

/// The soak's load and how long it runs.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// The gateway's TCP address.
    pub addr: SocketAddr,
    /// Echo calls a second, all connections together.
    pub calls_per_s: f64,
    /// Connections the calls are spread over.
    pub connections: usize,
    /// Unanswered calls allowed per connection.
    pub in_flight: usize,
    /// Bytes of each call's `Blob`.
    pub payload: usize,
    /// Subscriber connections on `broadcast`.
    pub subscribers: usize,
    /// Events published a second on `broadcast`.
    pub events_per_s: f64,
    /// New short-lived connections a second.
    pub churn_per_s: f64,
    /// How long the load runs.
    pub duration: Duration,
    /// How often a sample is taken.
    pub interval: Duration,
    /// The gateway's process id, for its memory and open files.
    pub gateway_pid: Option<u32>,
}

/// What one interval saw.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the load started, at the end of the interval.
    pub t_s: f64,
    /// Calls answered with a RESPONSE.
    pub calls: u64,
    /// Calls answered with an ERROR, by status; `connection_lost` for calls of a connection that
    /// ended.
    pub call_errors: BTreeMap<&'static str, u64>,
    /// Calls due but not sent: their connection had `in_flight` unanswered.
    pub calls_behind: u64,
    /// Calls given up on after 10 s without an answer.
    pub calls_unanswered: u64,
    /// Answered calls' latency (µs), from the write of each to its answer.
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Events received, all subscribers together.
    pub events: u64,
    /// Events a subscriber did not receive (gaps in its sequence).
    pub events_missed: u64,
    /// Publish-to-deliver latency (µs).
    pub event_p99_us: f64,
    /// Short-lived connections that did their round (HELLO, SUBSCRIBE, call, close), and ones
    /// that failed.
    pub churned: u64,
    pub churn_failed: u64,
    /// The gateway's resident memory (KiB) and open files at the end of the interval.
    pub rss_kib: Option<u64>,
    pub fds: Option<usize>,
}

/// The counters every task adds to, emptied at each sample.
#[derive(Default)]
struct Shared {
    calls: Mutex<Tally>,
    events: Mutex<Tally>,
    behind: AtomicU64,
    unanswered: AtomicU64,
    missed: AtomicU64,
    churned: AtomicU64,
    churn_failed: AtomicU64,
}

/// Runs the soak `config` describes, handing each sample to `each` as it is taken.
///
/// # Errors
///
/// A connection that cannot be opened at the start, or a call connection, publisher or
/// subscriber that the gateway closes during the run: a soak must keep every connection.
pub async fn run(config: &SoakConfig, mut each: impl FnMut(&Sample)) -> Result<(), LoadError> {
    if config.connections == 0 || config.in_flight == 0 {
        return Err(LoadError::Config("--connections and --in-flight must be at least 1".into()));
    }
    let topic_id = crate::fanout::topic_id(crate::fanout::TOPIC_NAME)?;
    let shared = Arc::new(Shared::default());
    let stop = CancellationToken::new();
    let epoch = Instant::now();
    let call = crate::attack::blob(&vec![0x42; config.payload]);

    let mut tasks: JoinSet<Result<(), LoadError>> = JoinSet::new();
    for _ in 0..config.subscribers {
        let opened = open_subscriber(config.addr, topic_id).await?;
        tasks.spawn(subscriber(opened, epoch, shared.clone(), stop.clone()));
    }
    let per_connection = config.calls_per_s / config.connections as f64;
    for _ in 0..config.connections {
        let opened = open(config.addr).await?;
        let (limit, payload) = (config.in_flight, call.clone());
        tasks.spawn(caller(opened, per_connection, limit, payload, shared.clone(), stop.clone()));
    }
    if config.events_per_s > 0.0 {
        let opened = open(config.addr).await?;
        tasks.spawn(publisher(opened, topic_id, config.events_per_s, epoch, stop.clone()));
    }
    if config.churn_per_s > 0.0 {
        let churn = churn(config.addr, topic_id, config.churn_per_s, call, shared.clone());
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = churn => {}
            }
            Ok(())
        });
    }

    let start = Instant::now();
    let mut tick = interval(config.interval);
    tick.tick().await;
    let outcome = loop {
        tokio::select! {
            _ = tick.tick() => {}
            ended = tasks.join_next() => {
                // Nothing ends before the stop: an end is a connection the gateway closed.
                let error = match ended {
                    Some(Ok(Err(error))) => error,
                    Some(Err(panic)) => LoadError::Task(panic.to_string()),
                    Some(Ok(Ok(()))) | None => LoadError::Closed("a load task ended early".into()),
                };
                break Err(error);
            }
        }
        let sample = take_sample(&shared, start.elapsed(), config.gateway_pid);
        each(&sample);
        if start.elapsed() + config.interval / 2 >= config.duration {
            break Ok(());
        }
    };
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    outcome
}

fn take_sample(shared: &Shared, elapsed: Duration, gateway_pid: Option<u32>) -> Sample {
    let calls = std::mem::take(&mut *shared.calls.lock().expect("calls tally"));
    let events = std::mem::take(&mut *shared.events.lock().expect("events tally"));
    let latency = Latency::of(&calls);
    let usage = gateway_pid.and_then(process_use);
    Sample {
        t_s: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        calls: calls.ok(),
        call_errors: calls.errors().clone(),
        calls_behind: shared.behind.swap(0, Relaxed),
        calls_unanswered: shared.unanswered.swap(0, Relaxed),
        p50_us: latency.p50,
        p99_us: latency.p99,
        p999_us: latency.p999,
        max_us: latency.max,
        events: events.ok(),
        events_missed: shared.missed.swap(0, Relaxed),
        event_p99_us: Latency::of(&events).p99,
        churned: shared.churned.swap(0, Relaxed),
        churn_failed: shared.churn_failed.swap(0, Relaxed),
        rss_kib: usage.map(|u| u.0),
        fds: usage.map(|u| u.1),
    }
}

/// Resident memory (KiB) and open files of process `pid`, from `/proc`.
pub fn process_use(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let rss_kib = rss.trim().trim_end_matches("kB").trim().parse().ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss_kib, fds))
}

/// The CPU time process `pid` has used (user and system, all threads, in ms; the kernel counts
/// in ticks, 10 ms here) and the context switches of its threads (voluntary and not: about one
/// per time a thread slept and was woken), from `/proc`.
pub fn process_cpu(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue };
        switches += status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    Some((ticks * 1000 / per_second, switches))
}

/// A welcomed connection: its stream and the bytes read past the WELCOME.
struct Opened {
    stream: TcpStream,
    buf: BytesMut,
}

async fn open(addr: SocketAddr) -> Result<Opened, LoadError> {
    let connect = |source| LoadError::Connect { addr, source };
    let mut stream = timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| connect(std::io::ErrorKind::TimedOut.into()))?
        .map_err(connect)?;
    stream.set_nodelay(true).map_err(connect)?;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    timeout(Duration::from_secs(5), hello(&mut stream, &mut buf))
        .await
        .map_err(|_| LoadError::Handshake("no WELCOME within 5 s".into()))??;
    Ok(Opened { stream, buf })
}

fn subscribe_frame(topic_id: u32) -> Frame {
    Frame::Subscribe(Subscribe {
        subscription_id: 1,
        topic_id,
        all_keys: false,
        key: String::new(),
    })
}

/// Opens a connection and subscribes it to `broadcast`, waiting for SUBSCRIBED.
async fn open_subscriber(addr: SocketAddr, topic_id: u32) -> Result<Opened, LoadError> {
    let mut opened = open(addr).await?;
    write(&mut opened.stream, &subscribe_frame(topic_id)).await?;
    let subscribed = async {
        loop {
            match next_frame(&mut opened.stream, &mut opened.buf).await? {
                Frame::Subscribed { .. } => return Ok(()),
                Frame::SubscriptionEnded(ended) => {
                    let status = ended.status.code().name();
                    return Err(LoadError::Handshake(format!("SUBSCRIBE refused: {status}")));
                }
                _ => {}
            }
        }
    };
    timeout(Duration::from_secs(5), subscribed)
        .await
        .map_err(|_| LoadError::Handshake("no SUBSCRIBED within 5 s".into()))??;
    Ok(opened)
}

async fn write<W: AsyncWriteExt + Unpin>(stream: &mut W, frame: &Frame) -> Result<(), LoadError> {
    let mut out = BytesMut::new();
    frame.encode(&mut out, u32::MAX).map_err(LoadError::encode)?;
    stream.write_all(&out).await?;
    Ok(())
}

/// Answers a PING; any other frame is the caller's.
async fn pong(writer: &mut OwnedWriteHalf, frame: &Frame) -> Result<(), LoadError> {
    if let Frame::Ping { data } = frame {
        write(writer, &Frame::Pong { data: *data }).await?;
    }
    Ok(())
}

/// A fixed rate on a 1 ms tick: how many sends are due at each tick, counted from the start (a
/// late tick makes up what it missed).
struct Schedule {
    tick: tokio::time::Interval,
    start: Instant,
    rate: f64,
}

impl Schedule {
    fn new(rate: f64) -> Schedule {
        let mut tick = interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Schedule { tick, start: Instant::now(), rate }
    }

    /// Waits for the next tick: the time now (not the tick's scheduled instant: the timer's own
    /// lateness, up to a millisecond, is the load generator's, not the gateway's) and how many
    /// sends are due since the start. Cancel-safe.
    async fn due(&mut self) -> (Instant, u64) {
        self.tick.tick().await;
        let now = Instant::now();
        (now, (now.duration_since(self.start).as_secs_f64() * self.rate) as u64)
    }
}

/// One call connection: `rate` calls a second on a 1 ms schedule, answers timed and counted.
async fn caller(
    opened: Opened,
    rate: f64,
    limit: usize,
    payload: Bytes,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> Result<(), LoadError> {
    let Opened { stream, mut buf } = opened;
    let (mut reader, mut writer) = stream.into_split();
    let mut pending: HashMap<u32, Instant> = HashMap::with_capacity(limit);
    let mut schedule = Schedule::new(rate);
    let (mut due_sent, mut next_id, mut last_sweep) = (0u64, 0u32, Instant::now());
    let mut out = BytesMut::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            (now, due) = schedule.due() => {
                // Every call due by now, each timed from this write.
                while due_sent < due {
                    due_sent += 1;
                    if pending.len() >= limit {
                        shared.behind.fetch_add(1, Relaxed);
                        continue;
                    }
                    next_id = next_id.wrapping_add(1).max(1);
                    pending.insert(next_id, now);
                    let request = Frame::Request(Request {
                        request_id: next_id,
                        method_id: echo::examples::echo::echo::method::ECHO,
                        timeout_ms: 5_000,
                        fire_and_forget: false,
                        payload: payload.clone(),
                    });
                    request.encode(&mut out, u32::MAX).map_err(LoadError::encode)?;
                }
                if !out.is_empty() {
                    writer.write_all(&out).await?;
                    out.clear();
                }
                if now.duration_since(last_sweep) >= Duration::from_secs(1) {
                    last_sweep = now;
                    let before = pending.len();
                    pending.retain(|_, sent| now.duration_since(*sent) < FORGET_AFTER);
                    shared.unanswered.fetch_add((before - pending.len()) as u64, Relaxed);
                }
            }
            read = reader.read_buf(&mut buf) => {
                if read? == 0 {
                    return Err(LoadError::Closed("a call connection, by the gateway".into()));
                }
                let now = Instant::now();
                let mut pings = Vec::new();
                {
                    let mut tally = shared.calls.lock().expect("calls tally");
                    loop {
                        let frame = match decode(&mut buf, u32::MAX)? {
                            Decoded::Frame(frame) => frame,
                            Decoded::Skipped { .. } => continue,
                            Decoded::Incomplete { .. } => break,
                        };
                        match frame {
                            Frame::Response(r) => {
                                if let Some(sent) = pending.remove(&r.request_id) {
                                    tally.record_ok(now.duration_since(sent));
                                }
                            }
                            Frame::Error(e) if pending.remove(&e.request_id).is_some() => {
                                tally.record_error(e.status.code().name());
                            }
                            Frame::Goaway(g) => {
                                let what = format!("GOAWAY `{}`: {}", g.reason, g.message);
                                return Err(LoadError::Closed(what));
                            }
                            ping @ Frame::Ping { .. } => pings.push(ping),
                            _ => {}
                        }
                    }
                }
                for ping in &pings {
                    pong(&mut writer, ping).await?;
                }
            }
        }
    }
}

/// The publisher: `rate` stamped events a second on `broadcast`, unacknowledged.
async fn publisher(
    opened: Opened,
    topic_id: u32,
    rate: f64,
    epoch: Instant,
    stop: CancellationToken,
) -> Result<(), LoadError> {
    let Opened { stream, mut buf } = opened;
    let (mut reader, mut writer) = stream.into_split();
    let mut schedule = Schedule::new(rate);
    let mut seq = 0u64;
    let (mut out, mut payload) = (BytesMut::new(), BytesMut::new());
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            (now, due) = schedule.due() => {
                while seq < due {
                    seq += 1;
                    let sent_ns = now.duration_since(epoch).as_nanos() as u64;
                    Stamp { seq, sent_ns }.put(&mut payload, 64);
                    let publish = Frame::Publish(Publish {
                        request_id: 0,
                        topic_id,
                        key: String::new(),
                        payload: payload.split().freeze(),
                    });
                    publish.encode(&mut out, u32::MAX).map_err(LoadError::encode)?;
                }
                if !out.is_empty() {
                    writer.write_all(&out).await?;
                    out.clear();
                }
            }
            read = reader.read_buf(&mut buf) => {
                if read? == 0 {
                    return Err(LoadError::Closed("the publisher, by the gateway".into()));
                }
                loop {
                    match decode(&mut buf, u32::MAX)? {
                        Decoded::Frame(frame) => pong(&mut writer, &frame).await?,
                        Decoded::Skipped { .. } => {}
                        Decoded::Incomplete { .. } => break,
                    }
                }
            }
        }
    }
}

/// One subscriber: every event timed, gaps counted, a PING now and then.
async fn subscriber(
    opened: Opened,
    epoch: Instant,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> Result<(), LoadError> {
    let Opened { stream, mut buf } = opened;
    let (mut reader, mut writer) = stream.into_split();
    let mut keepalive = interval(KEEPALIVE);
    keepalive.tick().await;
    let mut last_seq = 0u64;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = keepalive.tick() => write(&mut writer, &Frame::Ping { data: 0 }).await?,
            read = reader.read_buf(&mut buf) => {
                if read? == 0 {
                    return Err(LoadError::Closed("a subscriber, by the gateway".into()));
                }
                let now = Instant::now().duration_since(epoch).as_nanos() as u64;
                loop {
                    let frame = match decode(&mut buf, u32::MAX)? {
                        Decoded::Frame(frame) => frame,
                        Decoded::Skipped { .. } => continue,
                        Decoded::Incomplete { .. } => break,
                    };
                    match &frame {
                        Frame::Event(event) => {
                            let Some(stamp) = Stamp::read(&event.payload) else { continue };
                            if last_seq != 0 && stamp.seq > last_seq + 1 {
                                shared.missed.fetch_add(stamp.seq - last_seq - 1, Relaxed);
                            }
                            last_seq = last_seq.max(stamp.seq);
                            let latency = Duration::from_nanos(now.saturating_sub(stamp.sent_ns));
                            shared.events.lock().expect("events tally").record_ok(latency);
                        }
                        // The gap in the sequence numbers counts what MISSED reports.
                        Frame::Missed { .. } => {}
                        Frame::SubscriptionEnded(_) | Frame::Goaway(_) => {
                            return Err(LoadError::Closed(format!(
                                "a subscriber was sent {}",
                                frame.frame_type().name()
                            )));
                        }
                        _ => pong(&mut writer, &frame).await?,
                    }
                }
            }
        }
    }
}

/// `rate` times a second, a short-lived connection: HELLO, SUBSCRIBE, one call, close.
async fn churn(addr: SocketAddr, topic_id: u32, rate: f64, call: Bytes, shared: Arc<Shared>) {
    let mut tick = interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut running = JoinSet::new();
    loop {
        tick.tick().await;
        while running.try_join_next().is_some() {}
        if running.len() >= CHURN_AT_ONCE {
            shared.churn_failed.fetch_add(1, Relaxed);
            continue;
        }
        let (call, shared) = (call.clone(), shared.clone());
        running.spawn(async move {
            let round = timeout(Duration::from_secs(10), churn_once(addr, topic_id, call)).await;
            match round {
                Ok(Ok(())) => shared.churned.fetch_add(1, Relaxed),
                _ => shared.churn_failed.fetch_add(1, Relaxed),
            };
        });
    }
}

async fn churn_once(addr: SocketAddr, topic_id: u32, payload: Bytes) -> Result<(), LoadError> {
    let mut opened = open_subscriber(addr, topic_id).await?;
    let request = Frame::Request(Request {
        request_id: 1,
        method_id: echo::examples::echo::echo::method::ECHO,
        timeout_ms: 5_000,
        fire_and_forget: false,
        payload,
    });
    write(&mut opened.stream, &request).await?;
    loop {
        match next_frame(&mut opened.stream, &mut opened.buf).await? {
            Frame::Response(r) if r.request_id == 1 => return Ok(()),
            Frame::Error(e) if e.request_id == 1 => {
                return Err(LoadError::Closed(format!(
                    "the churned call failed: {}",
                    e.status.code().name()
                )));
            }
            _ => {}
        }
    }
}
