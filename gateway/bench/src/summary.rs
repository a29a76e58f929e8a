//! What a run measured: every round trip's latency in an HDR histogram, the failures by status,
//! and the summary printed for humans and written as JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::LoadConfig;

/// The slowest round trip the histogram holds, in nanoseconds (60 s); a slower one is recorded
/// as this value, which a run that long would show in `max` anyway.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Significant decimal digits the histogram keeps: 3 means a recorded value is off by at most
/// 0.1%.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The outcomes one connection (or, merged, a whole run) saw during the measured period.
#[derive(Clone, Debug)]
pub struct Tally {
    /// Round-trip latencies of successful calls, in nanoseconds.
    latencies: Histogram<u64>,
    /// Failed calls by status code name (`resource_exhausted`), and `bad_payload` for a reply
    /// whose payload is not the request's.
    errors: BTreeMap<&'static str, u64>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally::new()
    }
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Tally {
        let latencies = Histogram::new_with_bounds(1, MAX_LATENCY_NS, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Tally { latencies, errors: BTreeMap::new() }
    }

    /// Records a successful round trip.
    pub fn record_ok(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latencies.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
    }

    /// Records a failed call under `kind`.
    pub fn record_error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Adds another tally's outcomes to this one.
    pub fn merge(&mut self, other: &Tally) {
        // Adding fails only when a value is out of this histogram's range; every tally has the
        // same range.
        self.latencies.add(&other.latencies).expect("tallies share their histogram bounds");
        for (kind, n) in &other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }

    /// How many calls succeeded.
    pub fn ok(&self) -> u64 {
        self.latencies.len()
    }

    /// How many calls failed.
    /// The failures by kind (a status code's name, or what went wrong).
    pub fn errors(&self) -> &BTreeMap<&'static str, u64> {
        &self.errors
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Round-trip latency percentiles, in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// The percentiles of `tally`'s latencies; all zero when it recorded none.
    pub fn of(tally: &Tally) -> Latency {
        let h = &tally.latencies;
        let us = |ns: u64| round1(ns as f64 / 1_000.0);
        if h.is_empty() {
            return Latency { mean: 0.0, p50: 0.0, p90: 0.0, p99: 0.0, p999: 0.0, max: 0.0 };
        }
        Latency {
            mean: round1(h.mean() / 1_000.0),
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// The result of one run, as printed and as written to JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// `gateway`, `raw` or `nats`.
    pub target: String,
    pub addr: String,
    pub connections: usize,
    /// Requests in flight per connection.
    pub depth: usize,
    /// The `Blob`'s data, in bytes.
    pub payload_bytes: usize,
    /// The REQUEST frame on the wire, length prefix included; for the NATS target, the `HPUB`
    /// message (control line, headers, payload, CRLF).
    pub request_frame_bytes: usize,
    pub warmup_s: f64,
    /// The measured period.
    pub duration_s: f64,
    /// Calls answered successfully during the measured period.
    pub requests: u64,
    /// Calls answered with an error during the measured period.
    pub errors: u64,
    /// `errors` by status code name; `bad_payload` when a reply differed from its request.
    pub errors_by_status: BTreeMap<String, u64>,
    /// Successful calls per second.
    pub throughput_rps: f64,
    /// Request frame bytes sent per second, in MB (10^6 bytes); the same again came back.
    pub throughput_mb_per_s: f64,
    /// Round-trip latency of successful calls, from just before the request's write to just after
    /// the read that brought its reply (for the NATS target, from just before the request is
    /// handed to the client to just after its answer is).
    pub latency_us: Latency,
}

impl Summary {
    /// Summarises `tally`, measured over `config.duration`.
    pub fn new(config: &LoadConfig, request_frame_bytes: usize, tally: &Tally) -> Summary {
        let secs = config.duration.as_secs_f64();
        let latency_us = Latency::of(tally);
        let requests = tally.ok();
        let throughput_rps = requests as f64 / secs;
        Summary {
            target: config.target.name().to_owned(),
            addr: config.addr.to_string(),
            connections: config.connections,
            depth: config.depth,
            payload_bytes: config.payload,
            request_frame_bytes,
            warmup_s: config.warmup.as_secs_f64(),
            duration_s: secs,
            requests,
            errors: tally.failed(),
            errors_by_status: tally.errors.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
            throughput_rps: round1(throughput_rps),
            throughput_mb_per_s: round1(throughput_rps * request_frame_bytes as f64 / 1e6),
            latency_us,
        }
    }

    /// The summary as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary always serialises")
    }
}

/// One decimal place is all a microsecond figure or a rate needs.
pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_us;
        writeln!(
            f,
            "{} at {}: {} conn x depth {}, payload {} B (frame {} B), {} s measured after {} s warm-up",
            self.target,
            self.addr,
            self.connections,
            self.depth,
            self.payload_bytes,
            self.request_frame_bytes,
            self.duration_s,
            self.warmup_s
        )?;
        writeln!(
            f,
            "  throughput  {:.0} req/s, {:.1} MB/s each way",
            self.throughput_rps, self.throughput_mb_per_s
        )?;
        writeln!(
            f,
            "  latency µs  p50 {}  p90 {}  p99 {}  p999 {}  max {}  (mean {})",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        )?;
        write!(f, "  requests    {} ok, {} failed", self.requests, self.errors)?;
        for (kind, n) in &self.errors_by_status {
            write!(f, ", {kind} {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::config::Target;

    fn config() -> LoadConfig {
        let mut config =
            LoadConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 7000)), Target::Raw);
        config.connections = 2;
        config.depth = 4;
        config.duration = Duration::from_secs(2);
        config
    }

    /// 1,000 calls of 1..=1000 µs spread over two tallies: the percentiles are known exactly (to
    /// the histogram's 0.1%), and so are the rates over 2 s.
    fn tally() -> Tally {
        let (mut a, mut b) = (Tally::new(), Tally::new());
        for us in 1..=1000u64 {
            let t = if us % 2 == 0 { &mut a } else { &mut b };
            t.record_ok(Duration::from_micros(us));
        }
        a.record_error("resource_exhausted");
        b.record_error("resource_exhausted");
        b.record_error("bad_payload");
        a.merge(&b);
        a
    }

    #[test]
    fn the_summary_has_the_percentiles_rates_and_errors_of_the_merged_tallies() {
        let s = Summary::new(&config(), 100, &tally());
        assert_eq!((s.requests, s.errors), (1000, 3));
        assert_eq!(s.throughput_rps, 500.0);
        assert_eq!(s.throughput_mb_per_s, 0.1); // 500 × 100 B
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.1;
        let l = &s.latency_us;
        assert!(close(l.p50, 500.0), "{l:?}");
        assert!(close(l.p90, 900.0), "{l:?}");
        assert!(close(l.p99, 990.0), "{l:?}");
        assert!(close(l.p999, 999.0), "{l:?}");
        assert!(close(l.max, 1000.0), "{l:?}");
        assert!(close(l.mean, 500.5), "{l:?}");
        assert_eq!(s.errors_by_status["resource_exhausted"], 2);
        assert_eq!(s.errors_by_status["bad_payload"], 1);
    }

    #[test]
    fn the_json_output_carries_every_figure_under_its_documented_name() {
        let s = Summary::new(&config(), 100, &tally());
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["target"], "raw");
        assert_eq!(json["addr"], "127.0.0.1:7000");
        assert_eq!((json["connections"].as_u64(), json["depth"].as_u64()), (Some(2), Some(4)));
        assert_eq!(json["payload_bytes"], 64);
        assert_eq!(json["request_frame_bytes"], 100);
        assert_eq!(json["duration_s"], 2.0);
        assert_eq!(json["requests"], 1000);
        assert_eq!(json["errors"], 3);
        assert_eq!(json["errors_by_status"]["resource_exhausted"], 2);
        assert_eq!(json["throughput_rps"], 500.0);
        assert_eq!(json["throughput_mb_per_s"], 0.1);
        let want = [("mean", 500.5), ("p50", 500.0), ("p90", 900.0), ("p99", 990.0)];
        let want = want.into_iter().chain([("p999", 999.0), ("max", 1000.0)]);
        for (key, us) in want {
            let got = json["latency_us"][key].as_f64().unwrap();
            assert!((got - us).abs() <= us * 0.001 + 0.1, "{key}: {got}");
        }
    }

    #[test]
    fn an_empty_run_reports_zeros_not_garbage() {
        let s = Summary::new(&config(), 100, &Tally::new());
        assert_eq!((s.requests, s.errors, s.throughput_rps), (0, 0, 0.0));
        assert_eq!(s.latency_us.max, 0.0);
        assert!(s.to_string().contains("0 ok, 0 failed"), "{s}");
    }

    #[test]
    fn the_human_summary_names_target_rates_percentiles_and_errors() {
        let text = Summary::new(&config(), 100, &tally()).to_string();
        assert!(text.starts_with("raw at 127.0.0.1:7000: 2 conn x depth 4"), "{text}");
        assert!(text.contains("500 req/s"), "{text}");
        assert!(text.contains("p99 99"), "{text}");
        assert!(text.contains("1000 ok, 3 failed, bad_payload 1, resource_exhausted 2"), "{text}");
    }
}
