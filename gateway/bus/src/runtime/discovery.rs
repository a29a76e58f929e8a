//! Discovery: a running [`super::ServiceRuntime`] answers the NATS Services API (ADR-32, "micro"
//! v1), so `nats micro ls`, `nats micro info` and any NATS client can find every instance of every
//! service and read its counters. `docs/bus.md` ("Discovery") specifies what is answered; this is
//! how.
//!
//! Each instance subscribes, without a queue group (every instance answers), to
//! `$SRV.<VERB>`, `$SRV.<VERB>.<name>` and `$SRV.<VERB>.<name>.<id>` for the verbs `PING`, `INFO`
//! and `STATS`, and answers each request with a JSON document on its reply subject. The ping and
//! info answers never change, so they are encoded once; the stats answer is built from the
//! method counters (`ServiceStats`) on each request. Requests are rare and cheap, so one task
//! serves them all, apart from the calls.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_core::Stream;
use gateway_core::ServiceDesc;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::stats::ServiceStats;
use crate::{Bus, BusError, BusMessage, Headers, Subscription, contract};

/// The prefix of every subject of the Services API.
pub const PREFIX: &str = "$SRV";

/// The requests the Services API defines (its `SCHEMA` verb is deprecated and not answered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Ping,
    Info,
    Stats,
}

impl Verb {
    const ALL: [Verb; 3] = [Verb::Ping, Verb::Info, Verb::Stats];

    fn as_str(self) -> &'static str {
        match self {
            Verb::Ping => "PING",
            Verb::Info => "INFO",
            Verb::Stats => "STATS",
        }
    }
}

/// The name a service goes by in the Services API, which allows only `A-Z a-z 0-9 _ -`: the fully
/// qualified name with every other character (the dots) replaced by `_`, so
/// `examples.some_api.SomeApi` is `examples_some_api_SomeApi`. The metadata's `service` entry
/// keeps the exact name.
pub fn service_name(service: &ServiceDesc) -> String {
    api_name(service.name)
}

/// [`service_name`] of the service whose fully qualified name is `name`.
pub fn api_name(name: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    name.chars().map(|c| if allowed(c) { c } else { '_' }).collect()
}

/// Whether `version` is a semantic version (`MAJOR.MINOR.PATCH`, optionally `-pre.release` and
/// `+build.metadata`), as the Services API requires of a service's version.
pub fn is_semver(version: &str) -> bool {
    let ident =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let number = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let core: Vec<&str> = core.split('.').collect();
    let pre_ok = pre.is_none_or(|pre| {
        pre.split('.')
            .all(|id| ident(id) && (!id.bytes().all(|b| b.is_ascii_digit()) || number(id)))
    });
    core.len() == 3
        && core.iter().all(|n| number(n))
        && pre_ok
        && build.is_none_or(|build| build.split('.').all(ident))
}

/// An instance's subscriptions and everything it answers with, ready to serve.
pub(super) struct Discovery {
    bus: Arc<dyn Bus>,
    stats: Arc<ServiceStats>,
    desc: &'static ServiceDesc,
    name: String,
    id: String,
    version: String,
    metadata: BTreeMap<&'static str, String>,
    /// RFC 3339, UTC: when the instance started.
    started: String,
    ping: Bytes,
    info: Bytes,
    subscriptions: Vec<(Verb, Subscription)>,
}

impl Discovery {
    /// Subscribes to the nine subjects of instance `id` of `desc`, whose version is `version`.
    ///
    /// # Errors
    ///
    /// The bus's error if it refuses a subscription.
    pub(super) async fn subscribe(
        bus: Arc<dyn Bus>,
        desc: &'static ServiceDesc,
        stats: Arc<ServiceStats>,
        version: &str,
        id: String,
    ) -> Result<Discovery, BusError> {
        let name = service_name(desc);
        let mut subscriptions = Vec::with_capacity(9);
        for verb in Verb::ALL {
            let verb_subject = format!("{PREFIX}.{}", verb.as_str());
            for subject in [
                format!("{verb_subject}.{name}.{id}"),
                format!("{verb_subject}.{name}"),
                verb_subject,
            ] {
                subscriptions.push((verb, bus.subscribe(&subject, None).await?));
            }
        }
        let metadata = BTreeMap::from([("service", desc.name.to_owned())]);
        let mut discovery = Discovery {
            bus,
            stats,
            desc,
            name,
            id,
            version: version.to_owned(),
            metadata,
            started: rfc3339(SystemTime::now()),
            ping: Bytes::new(),
            info: Bytes::new(),
            subscriptions,
        };
        discovery.ping = discovery.ping_json();
        discovery.info = discovery.info_json();
        Ok(discovery)
    }

    /// Answers requests until `stop` fires (or the bus closes every subscription); unsubscribes
    /// when it returns.
    pub(super) async fn serve(mut self, stop: CancellationToken) {
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                request = next(&mut self.subscriptions) => match request {
                    Some((verb, message)) => self.answer(verb, message).await,
                    None => break,
                },
            }
        }
    }

    async fn answer(&self, verb: Verb, request: BusMessage) {
        // A request without a reply subject asks for nothing.
        let Some(reply) = request.reply else { return };
        let payload = match verb {
            Verb::Ping => self.ping.clone(),
            Verb::Info => self.info.clone(),
            Verb::Stats => self.stats_json(),
        };
        if let Err(err) = self.bus.publish(&reply, Headers::new(), payload).await {
            tracing::warn!(
                service = self.desc.name,
                verb = verb.as_str(),
                cause = %err,
                "cannot answer a discovery request"
            );
        }
    }

    fn ping_json(&self) -> Bytes {
        to_json(&Ping {
            kind: "io.nats.micro.v1.ping_response",
            name: &self.name,
            id: &self.id,
            version: &self.version,
            metadata: &self.metadata,
        })
    }

    fn info_json(&self) -> Bytes {
        let queue_group = contract::queue_group(self.desc);
        let endpoints = self
            .desc
            .methods
            .iter()
            .map(|method| {
                let mut metadata = BTreeMap::from([
                    ("method_id", method.id.to_string()),
                    ("request", method.request.to_owned()),
                ]);
                if let Some(response) = method.response {
                    metadata.insert("response", response.to_owned());
                }
                EndpointInfo {
                    name: short_name(method.name),
                    subject: contract::method_subject(method),
                    queue_group,
                    metadata,
                }
            })
            .collect();
        to_json(&Info {
            kind: "io.nats.micro.v1.info_response",
            name: &self.name,
            id: &self.id,
            version: &self.version,
            metadata: &self.metadata,
            // Descriptors carry no doc text (yet), so the service's name describes it.
            description: self.desc.name,
            endpoints,
        })
    }

    fn stats_json(&self) -> Bytes {
        let queue_group = contract::queue_group(self.desc);
        let endpoints = self
            .desc
            .methods
            .iter()
            .enumerate()
            .map(|(index, method)| {
                let stats = self.stats.snapshot(index);
                EndpointStats {
                    name: short_name(method.name),
                    subject: contract::method_subject(method),
                    queue_group,
                    num_requests: stats.requests,
                    num_errors: stats.errors,
                    processing_time: nanos(stats.processing),
                    average_processing_time: nanos(stats.average()),
                    last_error: stats.last_error,
                }
            })
            .collect();
        to_json(&Stats {
            kind: "io.nats.micro.v1.stats_response",
            name: &self.name,
            id: &self.id,
            version: &self.version,
            metadata: &self.metadata,
            started: &self.started,
            endpoints,
        })
    }
}

/// The answer to `PING`.
#[derive(Serialize)]
struct Ping<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: &'a BTreeMap<&'static str, String>,
}

/// The answer to `INFO`.
#[derive(Serialize)]
struct Info<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: &'a BTreeMap<&'static str, String>,
    description: &'a str,
    endpoints: Vec<EndpointInfo>,
}

#[derive(Serialize)]
struct EndpointInfo {
    name: &'static str,
    subject: String,
    queue_group: &'static str,
    metadata: BTreeMap<&'static str, String>,
}

/// The answer to `STATS`.
#[derive(Serialize)]
struct Stats<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: &'a BTreeMap<&'static str, String>,
    started: &'a str,
    endpoints: Vec<EndpointStats>,
}

#[derive(Serialize)]
struct EndpointStats {
    name: &'static str,
    subject: String,
    queue_group: &'static str,
    num_requests: u64,
    num_errors: u64,
    /// Empty if the endpoint never failed.
    last_error: String,
    /// Nanoseconds.
    processing_time: u64,
    /// Nanoseconds.
    average_processing_time: u64,
}

fn to_json(value: &impl Serialize) -> Bytes {
    // Strings, integers and string maps: serializing them cannot fail.
    serde_json::to_vec(value).expect("discovery answers serialize").into()
}

/// `sum` for `examples.some_api.SomeApi.sum`.
fn short_name(method: &'static str) -> &'static str {
    method.rsplit_once('.').map_or(method, |(_, name)| name)
}

fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The next request on any of `subscriptions`, or `None` once every one is closed.
async fn next(subscriptions: &mut [(Verb, Subscription)]) -> Option<(Verb, BusMessage)> {
    poll_fn(|cx| {
        let mut open = false;
        for (verb, subscription) in subscriptions.iter_mut() {
            match Pin::new(subscription).poll_next(cx) {
                Poll::Ready(Some(message)) => return Poll::Ready(Some((*verb, message))),
                Poll::Ready(None) => {}
                Poll::Pending => open = true,
            }
        }
        if open { Poll::Pending } else { Poll::Ready(None) }
    })
    .await
}

/// `time` in RFC 3339, UTC, with nanoseconds: `2023-11-14T22:13:20.000000123Z`. Times before
/// 1970 (a clock gone wrong) read as 1970.
fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let (hour, minute, second) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let nanos = since_epoch.subsec_nanos();
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{nanos:09}Z")
}

/// The proleptic Gregorian date `days` days after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;

    #[test]
    fn service_names_keep_only_what_the_services_api_allows() {
        let desc = |name| ServiceDesc { name, methods: &[], topics: &[], errors: &[] };
        assert_eq!(service_name(&desc("examples.some_api.SomeApi")), "examples_some_api_SomeApi");
        assert_eq!(service_name(&desc("a-b.C9")), "a-b_C9");
        assert_eq!(service_name(&desc("ns.é")), "ns__");
    }

    #[test]
    fn versions_must_be_semantic() {
        for good in ["0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0+20130313"]
        {
            assert!(is_semver(good), "{good}");
        }
        for bad in
            ["", "1", "1.2", "1.2.3.4", "01.2.3", "1.2.x", "1.2.3-", "1.2.3-01", "1.2.3+", "v1.2.3"]
        {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn instance_ids_are_22_alphanumerics_and_differ() {
        let ids: HashSet<String> = (0..1000).map(|_| crate::contract::instance_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(
            ids.iter().all(|id| id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        );
    }

    #[test]
    fn times_are_rfc3339_utc_with_nanoseconds() {
        let at = |secs, nanos| UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(at(1_700_000_000, 123)), "2023-11-14T22:13:20.000000123Z");
        // 2000 is a leap year (divisible by 400), 2100 is not.
        assert_eq!(rfc3339(at(951_825_599, 999_999_999)), "2000-02-29T11:59:59.999999999Z");
        assert_eq!(rfc3339(at(4_107_542_400, 0)), "2100-03-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(at(1_735_689_599, 0)), "2024-12-31T23:59:59.000000000Z");
    }

    #[test]
    fn method_short_names_are_the_last_token() {
        assert_eq!(short_name("examples.some_api.SomeApi.sum"), "sum");
        assert_eq!(short_name("plain"), "plain");
    }
}
