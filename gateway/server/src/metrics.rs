//! The gateway's counters, and their Prometheus text rendering for the admin `/metrics`.
//!
//! Hand-written rather than a metrics library: a handful of atomics, and per-method tables laid
//! out by the [`Registry`]'s route index, so that recording a finished call is a few relaxed
//! atomic adds with no lock, no hashing and no allocation. Only rendering (a scrape, rare)
//! allocates.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use gateway_bus::switches::Refusal;
use gateway_core::Code;
use gateway_protocol::GoawayReason;

use crate::auth::AuthErrorKind;
use crate::router::Registry;

/// Upper bounds of the latency histogram buckets, in microseconds (the last bucket, `+Inf`, is
/// implicit): 100 µs to 10 s, roughly ×2.5 apart, enough to tell a cache hit from a slow query.
const BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Which bound shed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shed {
    /// The connection's `max_in_flight_per_connection`.
    Connection,
    /// The gateway's `max_in_flight_total`.
    Global,
}

/// How a client connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The byte stream on `listen`.
    Tcp,
    /// WebSocket on `ws_listen`.
    WebSocket,
}

/// Counters of one method.
#[derive(Debug)]
struct MethodMetrics {
    name: &'static str,
    /// The method's service's name.
    service: &'static str,
    /// Calls refused by an operator switch, by [`Refusal`] (in `Refusal::ALL` order).
    refused: [AtomicU64; Refusal::ALL.len()],
    /// Finished calls by status code (`ok` for successes).
    by_code: [AtomicU64; Code::ALL.len()],
    /// Latency histogram, per bucket (not cumulative; rendering sums them), `+Inf` last.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl MethodMetrics {
    fn new(name: &'static str, service: &'static str) -> MethodMetrics {
        MethodMetrics {
            name,
            service,
            refused: std::array::from_fn(|_| AtomicU64::new(0)),
            by_code: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

/// One method's counters for the operator's console. Percentiles are the upper bounds of the
/// latency histogram's buckets that hold them (`None`: no calls yet, or past the last bound).
#[derive(Debug, serde::Serialize)]
pub struct MethodView {
    pub method: &'static str,
    pub service: &'static str,
    /// Finished calls.
    pub calls: u64,
    /// Finished calls whose status was not `ok`.
    pub errors: u64,
    /// Finished calls by status name, those with any.
    pub codes: std::collections::BTreeMap<&'static str, u64>,
    /// Calls refused by an operator switch.
    pub refused: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Every counter of one gateway.
#[derive(Debug)]
pub struct Metrics {
    connections_current: AtomicI64,
    connections_total: AtomicU64,
    connections_rejected: AtomicU64,
    connections_waiting: AtomicI64,
    connections_waited: AtomicU64,
    tls_failed: AtomicU64,
    websocket: WebSocketMetrics,
    in_flight: AtomicI64,
    queued_bytes: AtomicI64,
    shed_connection: AtomicU64,
    shed_global: AtomicU64,
    unknown_method: AtomicU64,
    protocol_errors: AtomicU64,
    /// GOAWAYs sent, by reason number (1..=11; index 0 counts reasons without a name).
    goaways: [AtomicU64; GoawayReason::ALL.len() + 1],
    methods: Vec<MethodMetrics>,
    ready: AtomicBool,
    pubsub: PubSubMetrics,
    /// Refused tokens, by `AuthErrorKind` (in `AuthErrorKind::ALL` order).
    auth_failures: [AtomicU64; AuthErrorKind::ALL.len()],
}

/// Counters of the WebSocket listener; its sessions also count in the connection counters.
#[derive(Debug, Default)]
struct WebSocketMetrics {
    connections_current: AtomicI64,
    connections_total: AtomicU64,
    origins_refused: AtomicU64,
    upgrades_failed: AtomicU64,
}

/// Counters of the pub/sub hub and the connections' event queues.
#[derive(Debug, Default)]
struct PubSubMetrics {
    subscriptions: AtomicI64,
    bus_subscriptions: AtomicI64,
    publications: AtomicU64,
    events_sent: AtomicU64,
    events_dropped: AtomicU64,
    events_conflated: AtomicU64,
    published_by_clients: AtomicU64,
    /// Subscriptions that asked to recover (SUBSCRIBE_FROM), by SUBSCRIBED_AT's `recovery`
    /// (1 to 6; 0, not asked, is not counted).
    recoveries: [AtomicU64; 7],
    events_recovered: AtomicU64,
    /// Events a bus-kept history's live feed skipped: read back from the history, or lost.
    gap_filled: AtomicU64,
    gap_lost: AtomicU64,
}

impl Metrics {
    /// Counters for every route of `registry`, all zero; not ready.
    pub fn new(registry: &Registry) -> Metrics {
        Metrics {
            connections_current: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            connections_rejected: AtomicU64::new(0),
            connections_waiting: AtomicI64::new(0),
            connections_waited: AtomicU64::new(0),
            tls_failed: AtomicU64::new(0),
            websocket: WebSocketMetrics::default(),
            in_flight: AtomicI64::new(0),
            queued_bytes: AtomicI64::new(0),
            shed_connection: AtomicU64::new(0),
            shed_global: AtomicU64::new(0),
            unknown_method: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            goaways: std::array::from_fn(|_| AtomicU64::new(0)),
            methods: registry
                .routes()
                .iter()
                .map(|r| MethodMetrics::new(r.method.name, r.service.name))
                .collect(),
            ready: AtomicBool::new(false),
            pubsub: PubSubMetrics::default(),
            auth_failures: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// A token refused, at the handshake or in a refresh.
    pub fn auth_failed(&self, kind: AuthErrorKind) {
        if let Some(at) = AuthErrorKind::ALL.iter().position(|&k| k == kind) {
            self.auth_failures[at].fetch_add(1, Relaxed);
        }
    }

    /// Client subscriptions opened (`1`) or ended (`-1`).
    pub fn subscriptions(&self, delta: i64) {
        self.pubsub.subscriptions.fetch_add(delta, Relaxed);
    }

    /// Bus subscriptions the hub holds, opened (`1`) or released (`-1`).
    pub fn bus_subscriptions(&self, delta: i64) {
        self.pubsub.bus_subscriptions.fetch_add(delta, Relaxed);
    }

    /// A publication the hub received from the bus.
    pub fn publication(&self) {
        self.pubsub.publications.fetch_add(1, Relaxed);
    }

    /// EVENT frames handed to the socket.
    pub fn events_sent(&self, n: usize) {
        if n > 0 {
            self.pubsub.events_sent.fetch_add(n as u64, Relaxed);
        }
    }

    /// Events dropped for slow subscribers, and events replaced by a newer one of their key.
    pub fn events_lagged(&self, dropped: u32, conflated: u32) {
        if dropped > 0 {
            self.pubsub.events_dropped.fetch_add(u64::from(dropped), Relaxed);
        }
        if conflated > 0 {
            self.pubsub.events_conflated.fetch_add(u64::from(conflated), Relaxed);
        }
    }

    /// A SUBSCRIBE_FROM answered with `recovery`, and the events it recovered.
    pub fn recovery(&self, recovery: gateway_protocol::Recovery, events: usize) {
        if let Some(count) = self.pubsub.recoveries.get(usize::from(recovery.0)) {
            count.fetch_add(1, Relaxed);
        }
        self.pubsub.events_recovered.fetch_add(events as u64, Relaxed);
    }

    /// `events` a bus-kept history's live feed skipped, `filled` from the history or lost.
    pub fn live_gap(&self, filled: bool, events: u64) {
        let counter = if filled { &self.pubsub.gap_filled } else { &self.pubsub.gap_lost };
        counter.fetch_add(events, Relaxed);
    }

    /// An event a client published.
    pub fn client_published(&self) {
        self.pubsub.published_by_clients.fetch_add(1, Relaxed);
    }

    /// Whether `/readyz` says yes: listening and not draining.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    /// A session opened: a TCP connection accepted, or a WebSocket upgraded.
    pub fn connection_opened(&self, transport: Transport) {
        self.connections_current.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
        if transport == Transport::WebSocket {
            self.websocket.connections_current.fetch_add(1, Relaxed);
            self.websocket.connections_total.fetch_add(1, Relaxed);
        }
    }

    /// Connections open now, over both transports.
    pub fn connections_open(&self) -> usize {
        usize::try_from(self.connections_current.load(Relaxed)).unwrap_or(0)
    }

    pub fn connection_closed(&self, transport: Transport) {
        self.connections_current.fetch_sub(1, Relaxed);
        if transport == Transport::WebSocket {
            self.websocket.connections_current.fetch_sub(1, Relaxed);
        }
    }

    /// A WebSocket upgrade refused with 403 because of its `Origin`.
    pub fn origin_refused(&self) {
        self.websocket.origins_refused.fetch_add(1, Relaxed);
    }

    /// A connection to the WebSocket listener that did not become a WebSocket: not an upgrade
    /// request, or not one within the handshake timeout (refused origins are counted apart).
    pub fn upgrade_failed(&self) {
        self.websocket.upgrades_failed.fetch_add(1, Relaxed);
    }

    /// A TLS handshake that failed or did not finish within the handshake timeout.
    pub fn tls_failed(&self) {
        self.tls_failed.fetch_add(1, Relaxed);
    }

    /// A connection refused at the connection limit.
    pub fn connection_rejected(&self) {
        self.connections_rejected.fetch_add(1, Relaxed);
    }

    /// A connection accepted and put in a lobby to wait for its turn to be let in, while a wave
    /// of handshakes is paced.
    pub(crate) fn connection_waits(&self) {
        self.connections_waiting.fetch_add(1, Relaxed);
        self.connections_waited.fetch_add(1, Relaxed);
    }

    /// `n` connections out of a lobby: let in, or closed with it.
    pub(crate) fn connections_done_waiting(&self, n: usize) {
        self.connections_waiting.fetch_sub(n as i64, Relaxed);
    }

    /// Takes a place among the gateway's calls in flight for a call about to start, or `false`
    /// when `max` calls (`max_in_flight_total`) hold one already. The cap and the
    /// `gateway_requests_in_flight` gauge count the same thing, with one atomic addition per
    /// call; the place is given back when the call is counted finished.
    pub fn try_start_call(&self, max: usize) -> bool {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        if self.in_flight.fetch_add(1, Relaxed) >= max {
            self.in_flight.fetch_sub(1, Relaxed);
            return false;
        }
        true
    }

    /// A call of route `index` ended with `code` after `elapsed`: its place in flight is given
    /// back.
    pub fn call_finished(&self, index: usize, code: Code, elapsed: Duration) {
        self.in_flight.fetch_sub(1, Relaxed);
        let Some(method) = self.methods.get(index) else { return };
        method.by_code[code as usize].fetch_add(1, Relaxed);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US.iter().position(|&le| us <= le).unwrap_or(BUCKETS_US.len());
        method.buckets[bucket].fetch_add(1, Relaxed);
        method.sum_us.fetch_add(us, Relaxed);
    }

    /// Calls that ended, each `(route index, code, elapsed)`, as [`Metrics::call_finished`] but
    /// added up first: a run of calls of one method with one code costs a few atomic additions
    /// however long it is (a session hands over its calls once per turn).
    pub fn calls_finished(&self, calls: impl IntoIterator<Item = (usize, Code, Duration)>) {
        let mut total = 0;
        let mut run: Option<(usize, Code)> = None;
        let mut count = 0;
        let mut sum = 0;
        let mut buckets = [0u64; BUCKETS_US.len() + 1];
        let flush =
            |key: Option<(usize, Code)>, count: &mut u64, sum: &mut u64, buckets: &mut [u64]| {
                let Some((index, code)) = key else { return };
                if let Some(method) = self.methods.get(index) {
                    method.by_code[code as usize].fetch_add(*count, Relaxed);
                    method.sum_us.fetch_add(*sum, Relaxed);
                    for (bucket, n) in method.buckets.iter().zip(buckets.iter()) {
                        if *n > 0 {
                            bucket.fetch_add(*n, Relaxed);
                        }
                    }
                }
                (*count, *sum) = (0, 0);
                buckets.fill(0);
            };
        for (index, code, elapsed) in calls {
            total += 1;
            if run != Some((index, code)) {
                flush(run, &mut count, &mut sum, &mut buckets);
                run = Some((index, code));
            }
            let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            count += 1;
            sum += us;
            buckets[BUCKETS_US.iter().position(|&le| us <= le).unwrap_or(BUCKETS_US.len())] += 1;
        }
        flush(run, &mut count, &mut sum, &mut buckets);
        if total > 0 {
            self.in_flight.fetch_sub(total, Relaxed);
        }
    }

    /// A request of route `index` answered at once with `code`, without starting a call.
    pub fn call_refused(&self, index: usize, code: Code) {
        if let Some(method) = self.methods.get(index) {
            method.by_code[code as usize].fetch_add(1, Relaxed);
        }
    }

    /// A request of route `index` refused at once by an operator switch, answered with `code`.
    pub fn switch_refused(&self, index: usize, refusal: Refusal, code: Code) {
        self.call_refused(index, code);
        if let Some(method) = self.methods.get(index) {
            let at = Refusal::ALL.iter().position(|&r| r == refusal).unwrap_or(0);
            method.refused[at].fetch_add(1, Relaxed);
        }
    }

    /// A request answered `resource_exhausted` at once because `bound` was reached.
    pub fn shed(&self, bound: Shed) {
        match bound {
            Shed::Connection => self.shed_connection.fetch_add(1, Relaxed),
            Shed::Global => self.shed_global.fetch_add(1, Relaxed),
        };
    }

    /// A request for a method id no registered service has.
    pub fn unknown_method(&self) {
        self.unknown_method.fetch_add(1, Relaxed);
    }

    /// Bytes entering (positive) or leaving (negative) a connection's send queue.
    pub fn queued(&self, bytes: i64) {
        self.queued_bytes.fetch_add(bytes, Relaxed);
    }

    /// A GOAWAY sent; protocol errors (`protocol_error`, `frame_too_large`) are counted apart too.
    pub fn goaway_sent(&self, reason: GoawayReason) {
        let at = usize::from(reason.0);
        let at = if reason.name().is_some() { at } else { 0 };
        self.goaways[at].fetch_add(1, Relaxed);
        if matches!(reason, GoawayReason::PROTOCOL_ERROR | GoawayReason::FRAME_TOO_LARGE) {
            self.protocol_errors.fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every counter.
    /// Every method's counters as the operator's console shows them, in registry order.
    pub fn methods(&self) -> Vec<MethodView> {
        self.methods
            .iter()
            .map(|m| {
                let mut codes = std::collections::BTreeMap::new();
                for (code, count) in Code::ALL.iter().zip(&m.by_code) {
                    let count = count.load(Relaxed);
                    if count > 0 {
                        codes.insert(code.name(), count);
                    }
                }
                let calls: u64 = codes.values().sum();
                let buckets: Vec<u64> = m.buckets.iter().map(|b| b.load(Relaxed)).collect();
                let quantile = |q: f64| {
                    let total: u64 = buckets.iter().sum();
                    if total == 0 {
                        return None;
                    }
                    // The bucket holding the q-th call; its upper bound (None past the last).
                    let rank = (q * total as f64).ceil().max(1.0) as u64;
                    let mut seen = 0;
                    for (i, count) in buckets.iter().enumerate() {
                        seen += count;
                        if seen >= rank {
                            return BUCKETS_US.get(i).map(|us| *us as f64 / 1000.0);
                        }
                    }
                    None
                };
                MethodView {
                    method: m.name,
                    service: m.service,
                    errors: calls - codes.get("ok").copied().unwrap_or(0),
                    calls,
                    codes,
                    refused: m.refused.iter().map(|r| r.load(Relaxed)).sum(),
                    p50_ms: quantile(0.50),
                    p90_ms: quantile(0.90),
                    p99_ms: quantile(0.99),
                }
            })
            .collect()
    }

    pub fn render(&self) -> String {
        self.render_with_events(0)
    }

    /// [`Metrics::render`], with `events_queued` bytes of events waiting in the connections'
    /// mailboxes added to `gateway_send_queue_bytes` (counted by whoever renders: the admin
    /// endpoint walks the connections).
    pub fn render_with_events(&self, events_queued: usize) -> String {
        let mut out = String::with_capacity(4096 + self.methods.len() * 2048);
        let gauge = |out: &mut String, name: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        gauge(
            &mut out,
            "gateway_connections",
            "Client connections open now.",
            self.connections_current.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_connections_total",
            "Client connections accepted and let in.",
            self.connections_total.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_connections_rejected_total",
            "Client connections refused at the connection limit.",
            self.connections_rejected.load(Relaxed),
        );
        gauge(
            &mut out,
            "gateway_connections_waiting",
            "Client connections accepted and waiting to be let in while a wave of handshakes is paced.",
            self.connections_waiting.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_connections_waited_total",
            "Client connections that waited to be let in while a wave of handshakes was paced.",
            self.connections_waited.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_tls_handshakes_failed_total",
            "TLS handshakes on the client listeners that failed or timed out.",
            self.tls_failed.load(Relaxed),
        );
        let ws = &self.websocket;
        gauge(
            &mut out,
            "gateway_websocket_connections",
            "WebSocket sessions open now (also counted in gateway_connections).",
            ws.connections_current.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_websocket_connections_total",
            "WebSocket upgrades accepted (also counted in gateway_connections_total).",
            ws.connections_total.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_websocket_origins_refused_total",
            "WebSocket upgrades refused with 403 for an origin not in allowed_origins.",
            ws.origins_refused.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_websocket_upgrades_failed_total",
            "Connections to the WebSocket listener that sent no valid upgrade in time.",
            ws.upgrades_failed.load(Relaxed),
        );
        gauge(
            &mut out,
            "gateway_requests_in_flight",
            "Calls started and not yet answered.",
            self.in_flight.load(Relaxed),
        );
        gauge(
            &mut out,
            "gateway_send_queue_bytes",
            "Bytes queued for writing to clients, all connections together.",
            self.queued_bytes.load(Relaxed) + events_queued as i64,
        );
        counter(
            &mut out,
            "gateway_unknown_method_total",
            "Requests for a method id no registered service has.",
            self.unknown_method.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_protocol_errors_total",
            "Connections closed for breaking the protocol.",
            self.protocol_errors.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP gateway_shed_total Requests answered resource_exhausted at once, by bound.\n\
             # TYPE gateway_shed_total counter\n\
             gateway_shed_total{{bound=\"connection\"}} {}\n\
             gateway_shed_total{{bound=\"global\"}} {}",
            self.shed_connection.load(Relaxed),
            self.shed_global.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP gateway_goaway_total GOAWAY frames sent, by reason.\n\
             # TYPE gateway_goaway_total counter"
        );
        for (i, count) in self.goaways.iter().enumerate() {
            let reason = u16::try_from(i).ok().map(GoawayReason).and_then(GoawayReason::name);
            let _ = writeln!(
                out,
                "gateway_goaway_total{{reason=\"{}\"}} {}",
                reason.unwrap_or("other"),
                count.load(Relaxed)
            );
        }
        let p = &self.pubsub;
        gauge(
            &mut out,
            "gateway_subscriptions",
            "Client topic subscriptions open now.",
            p.subscriptions.load(Relaxed),
        );
        gauge(
            &mut out,
            "gateway_bus_subscriptions",
            "Bus subscriptions the pub/sub hub holds (one per topic or pattern).",
            p.bus_subscriptions.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_publications_total",
            "Topic events received from the bus.",
            p.publications.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_events_sent_total",
            "EVENT frames written to clients.",
            p.events_sent.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_events_dropped_total",
            "Events dropped because a subscriber fell behind.",
            p.events_dropped.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_events_conflated_total",
            "Pending events replaced by a newer event of the same key (keep_latest).",
            p.events_conflated.load(Relaxed),
        );
        counter(
            &mut out,
            "gateway_client_publications_total",
            "Events clients published.",
            p.published_by_clients.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP gateway_recoveries_total Subscriptions that asked to recover missed events \
             (SUBSCRIBE_FROM), by result.\n\
             # TYPE gateway_recoveries_total counter"
        );
        for (n, count) in p.recoveries.iter().enumerate().skip(1) {
            let result = gateway_protocol::Recovery(n as u8).name().unwrap_or("unknown");
            let _ = writeln!(
                out,
                "gateway_recoveries_total{{result=\"{result}\"}} {}",
                count.load(Relaxed)
            );
        }
        counter(
            &mut out,
            "gateway_events_recovered_total",
            "Missed events sent to subscriptions that recovered them.",
            p.events_recovered.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP gateway_live_gap_events_total Events of a history the bus keeps that its live \
             feed skipped (NATS drops what a slow subscriber cannot take), by what became of \
             them: read back from the history, or lost.\n\
             # TYPE gateway_live_gap_events_total counter\n\
             gateway_live_gap_events_total{{result=\"filled\"}} {}\n\
             gateway_live_gap_events_total{{result=\"lost\"}} {}",
            p.gap_filled.load(Relaxed),
            p.gap_lost.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP gateway_auth_failures_total Tokens refused, by reason.\n\
             # TYPE gateway_auth_failures_total counter"
        );
        for (kind, count) in AuthErrorKind::ALL.iter().zip(&self.auth_failures) {
            let _ = writeln!(
                out,
                "gateway_auth_failures_total{{reason=\"{}\"}} {}",
                kind.name(),
                count.load(Relaxed)
            );
        }
        self.render_methods(&mut out);
        self.render_refusals(&mut out);
        out
    }

    /// `gateway_calls_refused_total`, by service and switch: every service with methods is
    /// listed, with zeros, so that an alert can watch it before the first refusal.
    fn render_refusals(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP gateway_calls_refused_total Calls refused by an operator switch, by service \
             and reason.\n\
             # TYPE gateway_calls_refused_total counter"
        );
        let mut services: Vec<(&str, [u64; Refusal::ALL.len()])> = Vec::new();
        for m in &self.methods {
            let counts = std::array::from_fn(|i| m.refused[i].load(Relaxed));
            match services.iter_mut().find(|(s, _)| *s == m.service) {
                Some((_, total)) => total.iter_mut().zip(counts).for_each(|(t, n)| *t += n),
                None => services.push((m.service, counts)),
            }
        }
        for (service, counts) in services {
            for (refusal, n) in Refusal::ALL.iter().zip(counts) {
                let _ = writeln!(
                    out,
                    "gateway_calls_refused_total{{service=\"{service}\",reason=\"{}\"}} {n}",
                    refusal.name()
                );
            }
        }
    }

    fn render_methods(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP gateway_requests_total Calls finished, by method and status code.\n\
             # TYPE gateway_requests_total counter"
        );
        for m in &self.methods {
            for code in Code::ALL {
                let n = m.by_code[code as usize].load(Relaxed);
                // Zero series for every code would be 17 lines per method; `ok` is always shown
                // so each method appears, the others once they happen.
                if n > 0 || code == Code::Ok {
                    let _ = writeln!(
                        out,
                        "gateway_requests_total{{method=\"{}\",code=\"{}\"}} {n}",
                        m.name,
                        code.name()
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP gateway_request_duration_seconds Time from a REQUEST's receipt to its answer.\n\
             # TYPE gateway_request_duration_seconds histogram"
        );
        for m in &self.methods {
            let mut cumulative = 0;
            for (i, bucket) in m.buckets.iter().enumerate() {
                cumulative += bucket.load(Relaxed);
                let le = BUCKETS_US.get(i).map_or("+Inf".to_owned(), |&us| seconds(us));
                let _ = writeln!(
                    out,
                    "gateway_request_duration_seconds_bucket{{method=\"{}\",le=\"{le}\"}} \
                     {cumulative}",
                    m.name
                );
            }
            let _ = writeln!(
                out,
                "gateway_request_duration_seconds_sum{{method=\"{}\"}} {}\n\
                 gateway_request_duration_seconds_count{{method=\"{}\"}} {cumulative}",
                m.name,
                seconds(m.sum_us.load(Relaxed)),
                m.name
            );
        }
    }
}

/// Microseconds as decimal seconds without float noise (`2500` → `0.0025`).
fn seconds(us: u64) -> String {
    let frac = format!("{:06}", us % 1_000_000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}", us / 1_000_000)
    } else {
        format!("{}.{frac}", us / 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::{MethodDesc, ServiceDesc};

    static S: ServiceDesc = ServiceDesc {
        name: "t.S",
        methods: &[MethodDesc {
            id: 5,
            name: "t.S.m",
            request: "t.Q",
            response: Some("t.R"),
            idempotent: false,
            writes: false,
        }],
        topics: &[],
        errors: &[],
    };

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(100), "0.0001");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(10_000_000), "10");
        assert_eq!(seconds(0), "0");
    }

    #[test]
    fn the_console_view_counts_codes_and_reads_percentiles_from_the_buckets() {
        let mut registry = Registry::new();
        registry.register(&S).unwrap();
        let metrics = Metrics::new(&registry);
        assert_eq!(metrics.methods()[0].p50_ms, None, "no calls, no percentiles");
        // 90 calls within 100 µs, 9 within 2.5 ms, 1 over 10 s.
        for _ in 0..90 {
            metrics.call_finished(0, Code::Ok, Duration::from_micros(80));
        }
        for _ in 0..9 {
            metrics.call_finished(0, Code::Unavailable, Duration::from_micros(2_000));
        }
        metrics.call_finished(0, Code::Ok, Duration::from_secs(11));
        metrics.switch_refused(0, Refusal::Disabled, Code::Unavailable);
        let view = &metrics.methods()[0];
        assert_eq!((view.method, view.service), ("t.S.m", "t.S"));
        assert_eq!((view.calls, view.errors, view.refused), (101, 10, 1));
        assert_eq!(view.codes.get("ok"), Some(&91));
        assert_eq!(view.codes.get("unavailable"), Some(&10));
        assert_eq!(view.p50_ms, Some(0.1));
        assert_eq!(view.p90_ms, Some(0.1));
        assert_eq!(view.p99_ms, Some(2.5));
    }

    #[test]
    fn calls_land_in_their_method_code_and_bucket() {
        let mut registry = Registry::new();
        registry.register(&S).unwrap();
        let metrics = Metrics::new(&registry);
        assert!(metrics.try_start_call(2) && metrics.try_start_call(2));
        assert!(!metrics.try_start_call(2), "the third call of two places is refused");
        metrics.call_finished(0, Code::Ok, Duration::from_micros(300));
        metrics.shed(Shed::Global);
        metrics.goaway_sent(GoawayReason::FRAME_TOO_LARGE);
        metrics.switch_refused(0, Refusal::ReadOnly, Code::FailedPrecondition);
        let text = metrics.render();
        for line in [
            "gateway_requests_in_flight 1",
            "gateway_requests_total{method=\"t.S.m\",code=\"ok\"} 1",
            "gateway_request_duration_seconds_bucket{method=\"t.S.m\",le=\"0.00025\"} 0",
            "gateway_request_duration_seconds_bucket{method=\"t.S.m\",le=\"0.0005\"} 1",
            "gateway_request_duration_seconds_bucket{method=\"t.S.m\",le=\"+Inf\"} 1",
            "gateway_request_duration_seconds_sum{method=\"t.S.m\"} 0.0003",
            "gateway_request_duration_seconds_count{method=\"t.S.m\"} 1",
            "gateway_shed_total{bound=\"global\"} 1",
            "gateway_goaway_total{reason=\"frame_too_large\"} 1",
            "gateway_protocol_errors_total 1",
            "gateway_requests_total{method=\"t.S.m\",code=\"failed_precondition\"} 1",
            "gateway_calls_refused_total{service=\"t.S\",reason=\"disabled\"} 0",
            "gateway_calls_refused_total{service=\"t.S\",reason=\"read_only\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
        assert!(!text.contains("code=\"cancelled\""), "unused codes are not listed");
        assert!(metrics.try_start_call(2), "the finished call gave its place back");
    }

    #[test]
    fn a_batch_of_calls_adds_up_as_the_calls_one_by_one_would() {
        let mut registry = Registry::new();
        registry.register(&S).unwrap();
        let (one_by_one, batched) = (Metrics::new(&registry), Metrics::new(&registry));
        let calls = [
            (0, Code::Ok, Duration::from_micros(80)),
            (0, Code::Ok, Duration::from_micros(300)),
            (0, Code::NotFound, Duration::from_micros(2)),
            (0, Code::Ok, Duration::from_secs(20)),
            (7, Code::Ok, Duration::from_micros(1)),
        ];
        for _ in calls {
            assert!(one_by_one.try_start_call(usize::MAX) && batched.try_start_call(usize::MAX));
        }
        for (index, code, elapsed) in calls {
            one_by_one.call_finished(index, code, elapsed);
        }
        batched.calls_finished(calls);
        assert_eq!(batched.render(), one_by_one.render());
        assert!(batched.render().lines().any(|l| l == "gateway_requests_in_flight 0"));
    }
}
