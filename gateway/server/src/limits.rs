//! Connection limits beyond the global one: per client IP (a rate) and per user (a count); how
//! fast an accept loop may turn connections away, close them to make room or let them in
//! ([`Pace`]); and how many connections are in their handshake ([`Handshakes`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How fast an accept loop does something that costs the connections being served: turn a
/// connection away, close one to make room for another, let one in during a wave of handshakes.
/// A token bucket of `burst` tokens refilled at `rate` a second, by the time that has really
/// passed. A pause asks for the time until the next token, and the runtime's timer overshoots it
/// (it rounds up to whole milliseconds, and more on a busy host); the tokens that accrue
/// meanwhile, up to `burst`, are spent one after another, so the pace delivers `rate` as long as
/// a pause overshoots by less than `burst / rate`. Counting in fixed windows instead lost every
/// overshoot (2,000 a second asked for, about 1,400 delivered), and a window's whole budget spent
/// at once made bursts the served connections queued behind (docs/reliability.md, "The pace by
/// the clock" and "Cores that poll, and smooth paces").
#[derive(Debug)]
pub(crate) struct Pace {
    rate: f64,
    burst: f64,
    bucket: Bucket,
}

impl Pace {
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Pace {
        let burst = f64::from(burst.max(1));
        Pace { rate: f64::from(rate.max(1)), burst, bucket: Bucket { tokens: burst, at: now } }
    }

    /// Counts one connection turned away, closed or let in at `now`: takes a token, or none if
    /// the bucket is empty (a connection let in while the pace is off costs the bucket nothing it
    /// does not have).
    pub(crate) fn count(&mut self, now: Instant) {
        let tokens = self.bucket.refilled(now, self.rate, self.burst);
        self.bucket = Bucket { tokens: (tokens - 1.0).max(0.0), at: now };
    }

    /// How long to stop at `now` before the next connection, if the bucket holds no token.
    pub(crate) fn pause(&self, now: Instant) -> Option<Duration> {
        let tokens = self.bucket.refilled(now, self.rate, self.burst);
        (tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - tokens) / self.rate))
    }
}

/// The connections between their accept and the end of their handshake (HELLO answered, or
/// the connection gone), counted so that an accept loop can tell a wave of connections that
/// say nothing from clients that connect and speak at once.
#[derive(Debug, Default)]
pub(crate) struct Handshakes {
    pending: std::sync::atomic::AtomicUsize,
}

impl Handshakes {
    /// Counts one more connection in its handshake until the guard is dropped.
    pub(crate) fn start(self: &Arc<Handshakes>) -> Handshaking {
        self.pending.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Handshaking(Arc::clone(self))
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One connection in its handshake; dropped when the handshake ends, however it ends.
#[derive(Debug)]
pub(crate) struct Handshaking(Arc<Handshakes>);

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Past this many tracked addresses, buckets that are full again (idle addresses) are dropped.
const MAX_TRACKED: usize = 65_536;

/// New connections per second per IP address, as a token bucket: `burst` at once, then `rate`
/// per second. An IPv6 address counts as its /64 ([`rate_key`]). Its memory is bounded: idle
/// addresses are forgotten.
#[derive(Debug)]
pub(crate) struct ConnectionRate {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl ConnectionRate {
    /// `rate` 0 means no limit.
    pub(crate) fn new(rate: u32, burst: u32) -> ConnectionRate {
        ConnectionRate {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` has a token left at `now` (taking none).
    pub(crate) fn allows(&self, ip: IpAddr, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let buckets = self.buckets.lock().expect("rate lock");
        buckets
            .get(&rate_key(ip))
            .is_none_or(|bucket| bucket.refilled(now, self.rate, self.burst) >= 1.0)
    }

    /// Whether `ip` may open a connection at `now` (and takes its token if so).
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let ip = rate_key(ip);
        let mut buckets = self.buckets.lock().expect("rate lock");
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.refilled(now, rate, burst) < burst);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket { tokens: self.burst, at: now });
        bucket.tokens = bucket.refilled(now, self.rate, self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The address a connection counts under: an IPv4 address itself (also when it comes mapped in
/// IPv6), an IPv6 address its /64. One host is commonly given a whole /64, so counting each of
/// its addresses alone would let it open as many connections as it has addresses.
fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(segments))
            }
        },
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, rate: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate).min(burst)
    }
}

/// Open connections per authenticated subject.
#[derive(Debug, Default)]
pub(crate) struct UserConnections {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One connection's place under its user's limit; released on drop.
#[derive(Debug)]
pub(crate) struct UserSlot {
    users: Arc<UserConnections>,
    subject: String,
}

impl UserConnections {
    /// `max` 0 means no limit.
    pub(crate) fn new(max: usize) -> Arc<UserConnections> {
        Arc::new(UserConnections { max, open: Mutex::new(HashMap::new()) })
    }

    /// A place for one more connection of `subject`, or `None` at the limit.
    pub(crate) fn take(self: &Arc<Self>, subject: &str) -> Option<UserSlot> {
        let mut open = self.open.lock().expect("users lock");
        let count = open.entry(subject.to_owned()).or_insert(0);
        if self.max != 0 && *count >= self.max {
            if *count == 0 {
                open.remove(subject);
            }
            return None;
        }
        *count += 1;
        Some(UserSlot { users: self.clone(), subject: subject.to_owned() })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = self.users.open.lock().expect("users lock");
        if let Some(count) = open.get_mut(&self.subject) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.subject);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_connection_counts_as_handshaking_until_its_guard_goes() {
        let handshakes = Arc::new(Handshakes::default());
        let first = handshakes.start();
        let second = handshakes.start();
        assert_eq!(handshakes.pending(), 2);
        drop(first);
        assert_eq!(handshakes.pending(), 1);
        // Moved into a task that ends (a session that returns early) counts the same.
        std::thread::spawn(move || drop(second)).join().unwrap();
        assert_eq!(handshakes.pending(), 0);
    }

    #[test]
    fn the_pace_spends_a_few_tokens_at_once_then_one_per_refill() {
        let t0 = Instant::now();
        let mut pace = Pace::new(2_000, 5, t0);
        for _ in 0..5 {
            assert_eq!(pace.pause(t0), None, "the burst");
            pace.count(t0);
        }
        assert_eq!(pace.pause(t0), Some(Duration::from_micros(500)), "one token per 500 µs");
        let t1 = t0 + Duration::from_micros(200);
        assert_eq!(pace.pause(t1), Some(Duration::from_micros(300)));
        assert_eq!(pace.pause(t0 + Duration::from_micros(500)), None);
        // A long quiet spell refills the bucket to its burst, no further.
        let later = t0 + Duration::from_secs(10);
        for _ in 0..5 {
            assert_eq!(pace.pause(later), None);
            pace.count(later);
        }
        assert!(pace.pause(later).is_some());
        // Counting with the bucket empty (the pace is off) leaves no debt.
        for _ in 0..100 {
            pace.count(later);
        }
        assert_eq!(pace.pause(later + Duration::from_micros(500)), None);
    }

    #[test]
    fn the_pace_keeps_its_rate_when_every_pause_overshoots() {
        // A loop that pauses as asked, but wakes up to 1.9 ms late (the runtime's timer rounds up
        // to whole milliseconds), still lets in 2,000 a second, give or take the burst.
        let start = Instant::now();
        let mut pace = Pace::new(2_000, 5, start);
        let (mut now, mut admitted) = (start, 0);
        while now < start + Duration::from_secs(1) {
            match pace.pause(now) {
                None => {
                    pace.count(now);
                    admitted += 1;
                }
                Some(pause) => now += pause + Duration::from_micros(100 + admitted % 19 * 100),
            }
        }
        assert!((1_995..=2_005).contains(&admitted), "{admitted} let in");
    }

    #[test]
    fn the_rate_allows_a_burst_then_refills() {
        let rate = ConnectionRate::new(2, 3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert!((0..3).all(|_| rate.admit(ip, t0)));
        assert!(!rate.admit(ip, t0), "burst spent");
        assert!(rate.admit(other, t0), "per address");
        assert!(rate.admit(ip, t0 + Duration::from_millis(500)), "one token per 500 ms");
        assert!(!rate.admit(ip, t0 + Duration::from_millis(600)));
        assert!(ConnectionRate::new(0, 1).admit(ip, t0), "0 = no limit");
    }

    #[test]
    fn failures_are_counted_without_refusing_until_the_bucket_is_empty() {
        let failures = ConnectionRate::new(1, 2);
        let (ip, t0) = (IpAddr::from([10, 0, 0, 1]), Instant::now());
        assert!(failures.allows(ip, t0), "an address never seen");
        failures.admit(ip, t0);
        assert!(failures.allows(ip, t0), "one failure of two allowed");
        failures.admit(ip, t0);
        assert!(!failures.allows(ip, t0), "the bucket is empty");
        assert!(failures.allows(IpAddr::from([10, 0, 0, 2]), t0), "another address");
        assert!(failures.allows(ip, t0 + Duration::from_secs(1)), "refilled after a second");
        assert!(ConnectionRate::new(0, 1).allows(ip, t0), "0 = no limit");
    }

    #[test]
    fn an_ipv6_prefix_counts_as_one_address_and_a_mapped_ipv4_as_itself() {
        let rate = ConnectionRate::new(1, 2);
        let t0 = Instant::now();
        let host: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(rate.admit(host, t0));
        assert!(rate.admit(same_64, t0));
        assert!(!rate.admit(host, t0), "the /64's burst is spent, whichever address asks");
        assert!(rate.admit(next_64, t0), "another /64");
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(rate.admit(v4, t0) && rate.admit(mapped, t0));
        assert!(!rate.admit(v4, t0), "the mapped address is the same IPv4 address");
    }

    #[test]
    fn users_are_counted_until_their_connections_close() {
        let users = UserConnections::new(2);
        let a = users.take("alice").unwrap();
        let _b = users.take("alice").unwrap();
        assert!(users.take("alice").is_none());
        assert!(users.take("bob").is_some());
        drop(a);
        assert!(users.take("alice").is_some());
    }
}
