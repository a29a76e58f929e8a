//! The operator's console: a page on the admin port (`GET /console`) and the JSON it reads.
//!
//! - `GET /console`: the page (HTML, styles and script in one file, `console.html`). It holds no
//!   data, so it is served to anyone who can reach the port.
//! - `GET /console/state`: connections and their users, calls per method (counts by status,
//!   latency percentiles; the page turns successive counts into rates), topics with this
//!   gateway's subscribers, the operator switches, the settings as loaded (secrets masked).
//! - `GET /console/services`: each service's instances, from the Services API (`$SRV.PING`,
//!   every instance answers within 300 ms).
//!
//! With `admin_token` set, both JSON documents need `Authorization: Bearer <admin_token>`, as
//! changing a switch does: connections and users are not for everyone who can reach the port.
//! The page asks for the token once and keeps it for the browser tab.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gateway_bus::runtime::discovery::api_name;
use gateway_bus::switches::ServiceSwitches;
use serde::Serialize;

use super::switches::authorized;
use super::{Admin, Request, Response};
use crate::config::Setting;
use crate::hub::Hub;
use crate::metrics::MethodView;
use crate::state::{ConnectionView, Shared};

/// The page.
const PAGE: &str = include_str!("console.html");

/// How long `/console/services` waits for instances to answer.
const DISCOVERY_WINDOW: Duration = Duration::from_millis(300);

/// What the console reads besides what [`Admin`] has for the other endpoints.
pub(crate) struct Sources {
    hub: Arc<Hub>,
    /// Every topic of the registry: (service, topic).
    topics: Vec<(&'static str, &'static str)>,
    settings: Vec<Setting>,
    tls: bool,
    started: SystemTime,
}

impl Sources {
    pub(crate) fn new(shared: &Shared) -> Sources {
        let topics = shared
            .registry
            .services()
            .iter()
            .flat_map(|service| service.topics.iter().map(|topic| (service.name, topic.name)))
            .collect();
        Sources {
            hub: shared.hub.clone(),
            topics,
            settings: shared.config.sources.clone(),
            tls: shared.tls.is_some(),
            started: SystemTime::now(),
        }
    }
}

#[cfg(any(test, feature = "fuzz"))]
impl Sources {
    /// Nothing to show but an empty hub on `bus`.
    pub(crate) fn empty(
        bus: Arc<dyn gateway_bus::Bus>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Sources {
        Sources {
            hub: Hub::new(bus, metrics, crate::hub::HubOptions::for_tests()),
            topics: Vec::new(),
            settings: Vec::new(),
            tls: false,
            started: SystemTime::now(),
        }
    }
}

/// The response to a request for `/console` or below.
pub(super) async fn route(request: &Request, admin: &Admin) -> Response {
    if request.method != "GET" {
        return Response::text(405, "the console takes GET");
    }
    let path = request.path.as_str();
    if path == "/console" || path == "/console/" {
        return Response {
            content_type: "text/html; charset=utf-8",
            headers: &["Cache-Control: no-store"],
            ..Response::text(200, PAGE)
        };
    }
    if !matches!(path, "/console/state" | "/console/services") {
        return Response::text(404, "not found");
    }
    if !authorized(request, &admin.token) {
        return Response {
            headers: &["WWW-Authenticate: Bearer"],
            ..Response::text(401, "the console needs `Authorization: Bearer <admin_token>`")
        };
    }
    let json = if path == "/console/state" {
        serde_json::to_string(&state(admin))
    } else {
        serde_json::to_string(&services(admin).await)
    };
    Response::json(200, json.expect("the console's documents serialize"))
}

/// `/console/state`.
#[derive(Debug, Serialize)]
struct State {
    server_id: String,
    /// Seconds since the Unix epoch, now and when the gateway started.
    now: f64,
    started: f64,
    ready: bool,
    bus_connected: bool,
    tls: bool,
    token_required: bool,
    connections: Vec<ConnectionView>,
    methods: Vec<MethodView>,
    topics: Vec<TopicView>,
    switches: BTreeMap<String, ServiceSwitches>,
    settings: Vec<Setting>,
}

#[derive(Debug, Serialize)]
struct TopicView {
    service: &'static str,
    topic: &'static str,
    /// Subscriptions of this gateway's clients.
    subscribers: usize,
    /// Keys subscribed one by one.
    keys: usize,
}

fn state(admin: &Admin) -> State {
    let console = &admin.console;
    let subscribers = console.hub.subscribers();
    let topics = console
        .topics
        .iter()
        .map(|&(service, topic)| {
            let (subscribers, keys) = subscribers.get(topic).copied().unwrap_or_default();
            TopicView { service, topic, subscribers, keys }
        })
        .collect();
    let mut switches: BTreeMap<String, ServiceSwitches> =
        admin.services.iter().map(|&s| (s.to_owned(), ServiceSwitches::default())).collect();
    switches.extend(admin.switches.follow().borrow().iter().map(|(s, v)| (s.clone(), v.clone())));
    State {
        server_id: admin.gateway.clone(),
        now: seconds(SystemTime::now()),
        started: seconds(console.started),
        ready: admin.metrics.is_ready(),
        bus_connected: admin.bus.is_connected(),
        tls: console.tls,
        token_required: !admin.token.is_empty(),
        connections: admin.connections.list(),
        methods: admin.metrics.methods(),
        topics,
        switches,
        settings: console.settings.clone(),
    }
}

fn seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// `/console/services`: one entry per service the gateway routes to.
#[derive(Debug, Serialize)]
struct ServiceView {
    service: &'static str,
    /// Each instance's `$SRV.PING` answer (`id`, `version`, `metadata`, ...), as it sent it.
    instances: Vec<serde_json::Value>,
}

async fn services(admin: &Admin) -> Vec<ServiceView> {
    let asks = admin.services.iter().map(|&service| async move {
        let subject = format!("$SRV.PING.{}", api_name(service));
        let answers = admin.bus.gather(&subject, Bytes::new(), DISCOVERY_WINDOW).await;
        let mut instances: Vec<serde_json::Value> = answers
            .unwrap_or_default()
            .iter()
            .filter_map(|answer| serde_json::from_slice(&answer.payload).ok())
            .collect();
        instances.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        ServiceView { service, instances }
    });
    futures::future::join_all(asks).await
}
