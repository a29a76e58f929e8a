//! What a fan-out run measured, printed for humans and written as JSON.

use std::fmt;

use serde::Serialize;

use crate::fanout::config::{FanoutConfig, Pace};
use crate::fanout::publisher::Published;
use crate::fanout::subscribers::Seen;
use crate::summary::{Latency, round1};

/// The result of one fan-out run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FanoutSummary {
    /// `gateway` or `raw`.
    pub target: String,
    pub addr: String,
    pub subscribers: usize,
    /// The event's payload, in bytes.
    pub payload_bytes: usize,
    /// The EVENT frame on the wire, length prefix included.
    pub event_frame_bytes: usize,
    /// `rate` (open loop) or `max` (acknowledged publishes, `window` in flight).
    pub pace: String,
    /// The open loop's target, in events/s; 0 for `max`.
    pub target_rate: f64,
    /// The closed loop's publishes in flight; 0 for `rate`.
    pub window: u32,
    pub warmup_s: f64,
    /// The measured period.
    pub duration_s: f64,
    /// Events published during the measured period.
    pub published: u64,
    /// `published` per second.
    pub publish_rate: f64,
    /// `published` × `subscribers`: the deliveries of a server that loses nothing.
    pub expected: u64,
    /// Events published during the measured period and received by a subscriber (each
    /// subscriber's copy counts once).
    pub deliveries: u64,
    /// `deliveries` per second of the measured period.
    pub deliveries_per_s: f64,
    /// Events that arrived during the measured period (whenever they were sent), per second: the
    /// rate the server sustains when it falls behind and `deliveries` arrive after the period.
    pub arrivals_per_s: f64,
    /// The sum of the MISSED counts the subscribers received (whole run, warm-up included).
    pub missed: u64,
    /// Events skipped between two a subscriber received (whole run): equal to `missed` when the
    /// server reports every event it drops.
    pub gaps: u64,
    /// Events after each subscriber's last received one, up to the publisher's last: not yet
    /// delivered (still queued, or lost) when the drain period ended.
    pub tail: u64,
    /// Events received after a later one.
    pub out_of_order: u64,
    /// Subscribers still waiting for the last event when the drain period ended.
    pub unfinished: u64,
    /// How far the open loop fell behind its schedule at worst, in ms.
    pub publisher_behind_ms: f64,
    /// Publish-to-deliver latency of the counted deliveries: from just before the publisher's
    /// write to just after the read that brought the event.
    pub latency_us: Latency,
}

impl FanoutSummary {
    /// Summarises a run of `config`.
    pub(crate) fn new(
        config: &FanoutConfig,
        event_frame_bytes: usize,
        published: &Published,
        seen: &Seen,
    ) -> FanoutSummary {
        let secs = config.duration.as_secs_f64();
        let (pace, target_rate, window) = match config.pace {
            Pace::Rate { events_per_s } => ("rate", events_per_s, 0),
            Pace::Max { window } => ("max", 0.0, window),
        };
        let deliveries = seen.tally.ok();
        FanoutSummary {
            target: config.target.name().to_owned(),
            addr: config.addr.to_string(),
            subscribers: config.subscribers,
            payload_bytes: config.payload,
            event_frame_bytes,
            pace: pace.to_owned(),
            target_rate,
            window,
            warmup_s: config.warmup.as_secs_f64(),
            duration_s: secs,
            published: published.in_window,
            publish_rate: round1(published.in_window as f64 / secs),
            expected: published.in_window * config.subscribers as u64,
            deliveries,
            deliveries_per_s: round1(deliveries as f64 / secs),
            arrivals_per_s: round1(seen.arrived as f64 / secs),
            missed: seen.missed,
            gaps: seen.gaps,
            tail: seen.tail,
            out_of_order: seen.out_of_order,
            unfinished: seen.unfinished,
            publisher_behind_ms: round1(published.max_behind.as_secs_f64() * 1_000.0),
            latency_us: Latency::of(&seen.tally),
        }
    }

    /// The summary as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary always serialises")
    }
}

impl fmt::Display for FanoutSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pace = match self.pace.as_str() {
            "max" => format!("max ({} acknowledged publishes in flight)", self.window),
            _ => format!("{} events/s", self.target_rate),
        };
        writeln!(
            f,
            "{} at {}: fan-out to {} subscribers, payload {} B (event frame {} B), {pace}, {} s \
             measured after {} s warm-up",
            self.target,
            self.addr,
            self.subscribers,
            self.payload_bytes,
            self.event_frame_bytes,
            self.duration_s,
            self.warmup_s
        )?;
        writeln!(
            f,
            "  published   {} events, {:.0}/s (fell behind schedule by {} ms at worst)",
            self.published, self.publish_rate, self.publisher_behind_ms
        )?;
        writeln!(
            f,
            "  delivered   {} of {} expected, {:.0} deliveries/s ({:.0}/s arrived while measuring)",
            self.deliveries, self.expected, self.deliveries_per_s, self.arrivals_per_s
        )?;
        writeln!(
            f,
            "  lost        {} reported by MISSED, {} skipped, {} out of order; {} not received \
             after the drain by {} subscribers",
            self.missed, self.gaps, self.out_of_order, self.tail, self.unfinished
        )?;
        let l = &self.latency_us;
        write!(
            f,
            "  latency µs  p50 {}  p90 {}  p99 {}  p999 {}  max {}  (mean {})",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        )
    }
}
