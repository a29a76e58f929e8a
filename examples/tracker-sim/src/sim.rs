//! The simulator proper: every enrolled device rides a vehicle of the [`Fleet`] and sends its
//! fixes as sealed reports over real UDP, at a steady rate, optionally asking for and counting
//! acknowledgements (no resends: a lost report stays lost).
//!
//! Simulated time runs `speedup` times faster than the wall clock and starts at the wall
//! clock's now, so with a speedup the reports' times run ahead of real time.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::city::{City, CityConfig};
use crate::counters::{CounterError, Counters};
use crate::device::{self, AckError};
use crate::enrolment::Enrolment;
use crate::motion::{Fleet, Kind};
use crate::rng::Rng;

/// How long to wait for acknowledgements after the last report.
const ACK_GRACE: Duration = Duration::from_secs(1);
/// How many unacknowledged counters each device remembers.
const MAX_OUTSTANDING: usize = 1024;
/// Devices per sending socket (at most [`MAX_SOCKETS`] sockets): many source addresses, as many
/// devices would have, so that a tracker's sockets sharing a port share the load.
const DEVICES_PER_SOCKET: usize = 1000;
const MAX_SOCKETS: usize = 64;
/// The longest the simulator sleeps without reading acknowledgements.
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// A checked configuration for [`run`].
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub devices: Vec<Enrolment>,
    /// Reports per second per device.
    pub rate: f64,
    /// Simulated seconds per wall-clock second.
    pub speedup: f64,
    /// Ask for acknowledgements and count them.
    pub ack: bool,
    /// Stop after this long (wall clock); `None`: until `stop` is set.
    pub duration: Option<Duration>,
    /// How often `on_stats` is called.
    pub stats_every: Duration,
    pub city: CityConfig,
    /// The counter file (see [`crate::counters`]).
    pub counters: PathBuf,
}

/// What has happened so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub sent: u64,
    /// Acknowledgements whose tag verified, for a report sent and not acknowledged before.
    pub acked: u64,
    /// Sends that failed, and datagrams that were not valid acknowledgements.
    pub errors: u64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sent={} acked={} errors={}", self.sent, self.acked, self.errors)
    }
}

/// Why the simulator could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no devices to simulate")]
    NoDevices,
    #[error("device {device}'s ingest {ingest:?} does not resolve: {reason}")]
    Resolve { device: u64, ingest: String, reason: String },
    #[error("ingest addresses mix IPv4 and IPv6 ({0} and {1}); run one simulator per family")]
    MixedFamilies(SocketAddr, SocketAddr),
    #[error("cannot open a UDP socket: {0}")]
    Socket(std::io::Error),
    #[error(transparent)]
    Counters(#[from] CounterError),
}

struct Sim {
    devices: Vec<(Enrolment, SocketAddr)>,
    by_id: HashMap<u64, usize>,
    outstanding: Vec<BTreeSet<u64>>,
    stats: Stats,
}

impl Sim {
    fn on_datagram(&mut self, datagram: &[u8]) {
        let taken = device::ack_header(datagram).and_then(|h| {
            let i = *self.by_id.get(&h.device_id).ok_or(AckError::BadTag)?;
            device::verify_ack(&self.devices[i].0.key, datagram).map(|h| (i, h.counter))
        });
        match taken {
            Ok((i, counter)) if self.outstanding[i].remove(&counter) => self.stats.acked += 1,
            // A duplicate, or for a report long forgotten: authentic, but not news.
            Ok(_) => {}
            Err(_) => self.stats.errors += 1,
        }
    }
}

/// Runs the simulation until `config.duration` passes or `stop` is set, calling `on_stats` every
/// `config.stats_every`; returns the final figures.
///
/// # Errors
///
/// If there are no devices, an ingest address does not resolve, the socket cannot be opened,
/// or the counter file cannot be read or written (no report is ever sent with a counter that
/// was not saved first).
pub fn run(
    config: RunConfig,
    stop: &AtomicBool,
    mut on_stats: impl FnMut(&Stats),
) -> Result<Stats, RunError> {
    if config.devices.is_empty() {
        return Err(RunError::NoDevices);
    }
    let mut devices = Vec::new();
    for e in &config.devices {
        let resolve_error = |reason: String| RunError::Resolve {
            device: e.device_id,
            ingest: e.ingest.clone(),
            reason,
        };
        let addr = e
            .ingest
            .to_socket_addrs()
            .map_err(|err| resolve_error(err.to_string()))?
            .next()
            .ok_or_else(|| resolve_error("no address".into()))?;
        if let Some((_, first)) = devices.first()
            && SocketAddr::is_ipv4(first) != addr.is_ipv4()
        {
            return Err(RunError::MixedFamilies(*first, addr));
        }
        devices.push((e.clone(), addr));
    }
    let bind: SocketAddr = if devices[0].1.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .expect("a valid address");
    let sockets = (0..devices.len().div_ceil(DEVICES_PER_SOCKET).clamp(1, MAX_SOCKETS))
        .map(|_| {
            let socket = UdpSocket::bind(bind)?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(RunError::Socket)?;
    let mut counters = Counters::open(&config.counters)?;
    counters.reserve(devices.iter().map(|(e, _)| e.device_id))?;

    let city = Arc::new(City::generate(config.city));
    let kinds: Vec<Kind> = devices
        .iter()
        .map(|(e, _)| Kind::draw(&mut Rng::new(config.city.seed).derive(e.device_id)))
        .collect();
    let sim_start_ms =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut fleet = Fleet::new(city, &kinds, config.city.seed, sim_start_ms);

    let n = devices.len();
    let mut sim = Sim {
        by_id: devices.iter().enumerate().map(|(i, (e, _))| (e.device_id, i)).collect(),
        outstanding: vec![BTreeSet::new(); n],
        devices,
        stats: Stats::default(),
    };
    let period = Duration::from_secs_f64(1.0 / config.rate);
    let start = Instant::now();
    // When each device reports next, soonest first; staggered, so that they do not all send
    // at once.
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> =
        (0..n).map(|i| Reverse((start + period.mul_f64(i as f64 / n as f64), i))).collect();
    let end = config.duration.map(|d| start + d);
    let mut next_stats = start + config.stats_every;
    let mut buf = [0u8; 1024];
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || end.is_some_and(|end| now >= end) {
            break;
        }
        while let Some(&Reverse((at, i))) = due.peek() {
            if at > now {
                break;
            }
            due.pop();
            let elapsed = now.duration_since(start).as_secs_f64() * config.speedup;
            let fix = fleet.fix_at(i, sim_start_ms + (elapsed * 1000.0) as u64);
            let (enrolment, addr) = &sim.devices[i];
            let counter = counters.next(enrolment.device_id)?;
            let plaintext = device::encode_report(&fix);
            let socket = &sockets[i % sockets.len()];
            match device::seal_report(
                &enrolment.key,
                enrolment.device_id,
                counter,
                config.ack,
                &plaintext,
            ) {
                Ok(datagram) if socket.send_to(&datagram, addr).is_ok() => {
                    sim.stats.sent += 1;
                    if config.ack {
                        let outstanding = &mut sim.outstanding[i];
                        outstanding.insert(counter);
                        if outstanding.len() > MAX_OUTSTANDING {
                            outstanding.pop_first();
                        }
                    }
                }
                _ => sim.stats.errors += 1,
            }
            // Falling behind (a slow machine) skips reports rather than bursting.
            due.push(Reverse(((at + period).max(now), i)));
        }
        if now >= next_stats {
            on_stats(&sim.stats);
            next_stats += config.stats_every;
        }
        let next_due = due.peek().map(|Reverse((at, _))| *at).expect("devices");
        let wake = next_due.min(next_stats).min(end.unwrap_or(next_stats));
        receive_until(&sockets, &mut sim, &mut buf, wake);
    }
    if config.ack {
        let deadline = Instant::now() + ACK_GRACE;
        while sim.outstanding.iter().any(|o| !o.is_empty()) && Instant::now() < deadline {
            receive_until(&sockets, &mut sim, &mut buf, deadline);
        }
    }
    on_stats(&sim.stats);
    Ok(sim.stats)
}

/// Takes the acknowledgements waiting on every socket, then sleeps until `wake` (at most
/// [`MAX_SLEEP`]); again until `wake`.
fn receive_until(sockets: &[UdpSocket], sim: &mut Sim, buf: &mut [u8], wake: Instant) {
    loop {
        for socket in sockets {
            // Until it would block (or an ICMP error from a closed port, on some systems).
            while let Ok((len, _)) = socket.recv_from(buf) {
                sim.on_datagram(&buf[..len]);
            }
        }
        let now = Instant::now();
        if now >= wake {
            return;
        }
        std::thread::sleep(wake.duration_since(now).min(MAX_SLEEP));
    }
}
