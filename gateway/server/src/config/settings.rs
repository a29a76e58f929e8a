//! Every setting, defined once: the checked [`Config`] and the [`KEYS`] that fill it in, each
//! with its name, its default, its `--help` text and the parser that checks a value into its
//! field. The flags, the environment variables and the file keys follow from the names.
//!
//! To add a setting, add its field to [`Config`] and its [`Key`] to [`KEYS`]; the command line
//! (`super::args`), the environment, the file and `--help` take it from there.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gateway_protocol::MIN_MAX_FRAME_SIZE;

use super::parse::{
    at_least, at_most, non_zero, normalize_origin, parse_addr, parse_duration, parse_names,
    parse_nats_urls, parse_origins, parse_server_id, parse_token, positive_duration, to_u32,
    wire_duration,
};
use crate::auth::{AuthConfig, Authenticator};

/// The checked settings of one gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where clients connect (the wire protocol over TCP).
    pub listen: SocketAddr,
    /// The PEM certificate chain (the server's first) of TLS on the client listeners; with
    /// `tls_key`. `None`: no TLS.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Where the admin HTTP endpoints (`/healthz`, `/readyz`, `/metrics`) listen.
    pub admin_listen: SocketAddr,
    /// Where WebSocket clients connect (the same protocol, one frame per binary message); `None`:
    /// no WebSocket listener (`ws_listen = "off"`).
    pub ws_listen: Option<SocketAddr>,
    /// The browser origins allowed to open a WebSocket, normalized (lower case, no default
    /// port): exact `scheme://host[:port]` entries, or `*` for any. A request without an `Origin`
    /// header (not a browser) is always allowed. Empty: no browser page may connect.
    pub allowed_origins: Vec<String>,
    /// After this long without hearing from a WebSocket client the gateway pings it, and closes
    /// the connection after twice this long; zero disables both.
    pub ws_ping_interval: Duration,
    /// Client connections open at once; past it a new connection gets GOAWAY
    /// `too_many_connections` and is closed.
    pub max_connections: usize,
    /// The largest frame the gateway accepts, stated in WELCOME.
    pub max_frame_size: u32,
    /// Requests one connection may have in flight, stated in WELCOME as `max_in_flight`.
    pub max_in_flight_per_connection: u32,
    /// Requests in flight across all connections.
    pub max_in_flight_total: usize,
    /// Bytes of replies queued for writing on one connection; a reply that does not fit waits
    /// for the writer (and the client) to catch up.
    pub send_queue_bytes: usize,
    /// How long a new connection has to send HELLO.
    pub handshake_timeout: Duration,
    /// A connection that sent nothing and has nothing in flight for this long is closed with
    /// GOAWAY `idle_timeout`; zero disables it.
    pub idle_timeout: Duration,
    /// The deadline of a call whose REQUEST gives none (`timeout_ms` 0).
    pub default_timeout: Duration,
    /// The longest deadline a call gets, whatever its REQUEST asks.
    pub max_timeout: Duration,
    /// How long a graceful shutdown waits for calls in flight before abandoning them.
    pub drain_timeout: Duration,
    /// The name WELCOME gives the client, for its logs.
    pub server_id: String,
    /// Threads running the gateway's tasks; `None`: one per core it may run on.
    pub worker_threads: Option<usize>,
    /// Topic subscriptions one connection may hold; past it SUBSCRIBE is refused with
    /// `resource_exhausted`.
    pub max_subscriptions_per_connection: usize,
    /// How long the hub keeps a topic's bus subscription after its last local subscriber left,
    /// so that subscription churn does not thrash the bus.
    pub topic_linger: Duration,
    /// Keys whose last event a `retain` topic keeps; past it the least recently updated key is
    /// forgotten.
    pub retain_max_keys: usize,
    /// Payload bytes the history of one topic keeps; past it its oldest events are evicted.
    pub history_max_bytes: usize,
    /// Keys the history of one topic keeps; past it the key appended to longest ago is
    /// forgotten, all its events.
    pub history_max_keys: usize,
    /// Where topic histories live: where the bus keeps them, or in this gateway's memory.
    pub history_store: HistoryStore,
    /// The most events one recovery (SUBSCRIBE_FROM) sends; a subscription that missed more is
    /// told `too_many`.
    pub recovery_max_events: usize,
    /// Connections one authenticated subject may have open at once; 0 = no limit.
    pub max_connections_per_user: usize,
    /// New connections per second accepted from one IP address; 0 = no limit.
    pub connection_rate: u32,
    /// How many connections one IP address may open at once before `connection_rate` applies.
    pub connection_burst: u32,
    /// Failed authentications one IP address may have at once; past them, one more a second,
    /// and its new connections are refused at accept meanwhile. 0 = no limit.
    pub auth_failure_burst: u32,
    /// Authentication: keys, roles, and the roles of anonymous connections (`anonymous_roles`).
    pub auth: AuthConfig,
    /// The NATS server(s) of the bus (`nats://host:port`, comma-separated for a cluster); `None`:
    /// the in-process bus, with the services in the same process.
    pub nats: Option<String>,
    /// Credentials and TLS of the NATS connection (`nats_user`, `nats_nkey`, `nats_ca`, ...).
    pub nats_auth: NatsAuthKeys,
    /// Messages each of the gateway's NATS subscriptions may hold while the gateway catches up;
    /// past it they are dropped and counted (`gateway_bus_dropped_total`).
    pub nats_subscription_capacity: usize,
    /// When not empty, the admin endpoint's changes (`PUT`/`DELETE /switches/...`) need
    /// `Authorization: Bearer <admin_token>`. Reads stay open: the admin port listens on loopback
    /// by default and must never be exposed beyond the operators' network.
    pub admin_token: String,
    /// Every key's value as loaded and where it came from, secrets (`admin_token`,
    /// `nats_password`, `nats_token`) masked: what the operator's console shows. Filled by
    /// [`Config::load`] (and [`Config::default`]); a config changed in code afterwards is not
    /// reflected here.
    pub sources: Vec<Setting>,
    /// The [`Authenticator`] built from `auth`: [`Config::load`] builds it to check the settings
    /// and keeps it, so that [`run`](crate::run) does not load the keys a second time. `None` in
    /// a config made in code, for which [`Config::authenticator`] builds one.
    pub authenticator: Option<Authenticator>,
}

/// One key's value as loaded ([`Config::sources`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    pub key: &'static str,
    /// The text given (`***` for a secret that is set).
    pub value: String,
    /// `default`, `file <path>`, `env <VAR>` or `flag --<name>`.
    pub origin: String,
}

/// Keys whose values are secrets: shown as `***` when set.
pub const SECRET_KEYS: [&str; 3] = ["admin_token", "nats_password", "nats_token"];

/// The NATS connection's credentials and TLS files as given, each empty when unset; the gateway
/// binary checks them and reads the files (`gateway_bus::nats::NatsAuthSettings`). `Debug`
/// masks the password and the token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NatsAuthKeys {
    pub user: String,
    pub password: String,
    pub token: String,
    /// A file holding an NKey seed.
    pub nkey: String,
    /// A `.creds` file (user JWT and NKey seed).
    pub creds: String,
    /// A PEM file of CA certificates; turns TLS on.
    pub ca: String,
    /// A PEM client certificate chain (with `key`).
    pub cert: String,
    pub key: String,
}

impl NatsAuthKeys {
    /// Whether any is set.
    pub fn any(&self) -> bool {
        *self != NatsAuthKeys::default()
    }
}

impl fmt::Debug for NatsAuthKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = |s: &str| if s.is_empty() { "" } else { "***" };
        f.debug_struct("NatsAuthKeys")
            .field("user", &self.user)
            .field("password", &mask(&self.password))
            .field("token", &mask(&self.token))
            .field("nkey", &self.nkey)
            .field("creds", &self.creds)
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

impl Config {
    /// Every field empty or zero, but `auth` (the file's `[auth]` table), for [`KEYS`] to fill
    /// in: each key sets its field, so none of these values is ever seen.
    pub(super) fn unset(auth: AuthConfig) -> Config {
        let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
        Config {
            listen: nowhere,
            admin_listen: nowhere,
            tls_cert: None,
            tls_key: None,
            ws_listen: None,
            allowed_origins: Vec::new(),
            ws_ping_interval: Duration::ZERO,
            max_connections: 0,
            max_frame_size: 0,
            max_in_flight_per_connection: 0,
            max_in_flight_total: 0,
            send_queue_bytes: 0,
            handshake_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            default_timeout: Duration::ZERO,
            max_timeout: Duration::ZERO,
            drain_timeout: Duration::ZERO,
            server_id: String::new(),
            worker_threads: None,
            max_subscriptions_per_connection: 0,
            topic_linger: Duration::ZERO,
            retain_max_keys: 0,
            history_max_bytes: 0,
            history_max_keys: 0,
            history_store: HistoryStore::Bus,
            recovery_max_events: 0,
            max_connections_per_user: 0,
            connection_rate: 0,
            connection_burst: 0,
            auth_failure_burst: 0,
            auth,
            nats: None,
            nats_auth: NatsAuthKeys::default(),
            nats_subscription_capacity: 0,
            admin_token: String::new(),
            sources: Vec::new(),
            authenticator: None,
        }
    }

    /// Whether a WebSocket upgrade request carrying `Origin: origin` is allowed
    /// ([`Config::allowed_origins`]).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let origin = normalize_origin(origin);
        self.allowed_origins.iter().any(|allowed| allowed == "*" || *allowed == origin)
    }

    /// `idle_timeout` as WELCOME states it (0 = none).
    pub fn idle_timeout_ms(&self) -> u32 {
        // Validated to fit a u32 of milliseconds.
        u32::try_from(self.idle_timeout.as_millis()).unwrap_or(u32::MAX)
    }
}

/// One setting. Its name is its key in the TOML file; with dashes it is the flag
/// (`--max-connections`, [`Key::long`]); in upper case after `GATEWAY_`, the environment variable
/// (`GATEWAY_MAX_CONNECTIONS`, [`env_var`]).
#[derive(Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    /// What `--help` calls the flag's value (`--max-connections <N>`).
    pub value_name: &'static str,
    /// The value when the setting is given nowhere; `--help` shows an empty one as `none`.
    pub default: &'static str,
    /// What the flag's `--help` says; the default and the environment variable follow it.
    pub help: &'static str,
    /// Parses and checks a value (trimmed) into its field, or says what is wrong with it.
    set: fn(&str, &mut Config) -> Result<(), String>,
}

impl Key {
    /// The command-line flag without its dashes (`max-connections`), clap's `long`.
    pub fn long(&self) -> String {
        self.name.replace('_', "-")
    }

    /// The flag's `--help` text, ending with the default and the environment variable.
    pub fn help_text(&self) -> String {
        let default = if self.default.is_empty() { "none" } else { self.default };
        format!("{} [default: {default}] [env: {}]", self.help, env_var(self.name))
    }

    /// Parses and checks `value` into its field of `config`.
    ///
    /// # Errors
    ///
    /// What is wrong with the value, in lower case.
    pub(super) fn apply(&self, value: &str, config: &mut Config) -> Result<(), String> {
        (self.set)(value, config)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("value_name", &self.value_name)
            .field("default", &self.default)
            .field("help", &self.help)
            .finish_non_exhaustive()
    }
}

/// The environment variable of the setting named `key`: `GATEWAY_` and the name in upper case.
pub fn env_var(key: &str) -> String {
    format!("GATEWAY_{}", key.to_ascii_uppercase())
}

/// Where the gateway keeps topic histories (`history_store`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HistoryStore {
    /// Where the bus keeps them, when it does (JetStream on NATS, shared by every gateway and
    /// outliving them); else in this gateway's memory.
    #[default]
    Bus,
    /// In this gateway's memory whatever the bus: no message stored per event, but a client
    /// moving to another gateway, or coming back after a restart, cannot recover.
    Memory,
}

/// Stores a parsed value into its field.
fn store<T>(field: &mut T, value: Result<T, String>) -> Result<(), String> {
    *field = value?;
    Ok(())
}

/// The smallest per-connection send queue: room for a few small replies at once. A reply larger
/// than the queue is still sent, alone, so the bound cannot deadlock.
const MIN_SEND_QUEUE: usize = 4096;

/// The largest per-connection send queue, 1 GiB: a larger one would defeat its purpose (and the
/// queue counts its bytes in `u32`s).
const MAX_SEND_QUEUE: usize = 1 << 30;

/// Every setting, in the order `--help` lists them (and values are checked).
pub const KEYS: &[Key] = &[
    Key {
        name: "listen",
        value_name: "ADDR",
        default: "127.0.0.1:7400",
        help: "Address clients connect to",
        set: |s, c| store(&mut c.listen, parse_addr(s)),
    },
    Key {
        name: "admin_listen",
        value_name: "ADDR",
        default: "127.0.0.1:7401",
        help: "Address of the admin HTTP (/healthz, /readyz, /metrics, /switches); keep it \
               private",
        set: |s, c| store(&mut c.admin_listen, parse_addr(s)),
    },
    Key {
        name: "tls_cert",
        value_name: "FILE",
        default: "",
        help: "PEM certificate chain for TLS on the client listeners (tls:// and wss://), with \
               tls_key; reloaded when the file changes or on SIGHUP. Empty: no TLS",
        set: |s, c| store(&mut c.tls_cert, Ok((!s.is_empty()).then(|| PathBuf::from(s)))),
    },
    Key {
        name: "tls_key",
        value_name: "FILE",
        default: "",
        help: "PEM private key of tls_cert",
        set: |s, c| store(&mut c.tls_key, Ok((!s.is_empty()).then(|| PathBuf::from(s)))),
    },
    Key {
        name: "ws_listen",
        value_name: "ADDR",
        default: "127.0.0.1:7402",
        help: "Address WebSocket clients connect to (browsers, Node); `off` = none",
        set: |s, c| {
            let addr = match s {
                "" | "off" => Ok(None),
                s => parse_addr(s).map(Some),
            };
            store(&mut c.ws_listen, addr)
        },
    },
    Key {
        name: "allowed_origins",
        value_name: "ORIGINS",
        default: "",
        help: "Browser origins allowed to open a WebSocket, comma-separated \
               `scheme://host[:port]`, or `*` for any; requests without an Origin header are \
               always allowed",
        set: |s, c| store(&mut c.allowed_origins, parse_origins(s)),
    },
    Key {
        name: "ws_ping_interval",
        value_name: "DURATION",
        default: "30s",
        help: "Ping a silent WebSocket client after this long, close it after twice this long; \
               0 = never",
        set: |s, c| store(&mut c.ws_ping_interval, parse_duration(s)),
    },
    Key {
        name: "max_connections",
        value_name: "N",
        default: "10000",
        help: "Client connections open at once; more get GOAWAY too_many_connections",
        set: |s, c| store(&mut c.max_connections, at_least(s, 1)),
    },
    Key {
        name: "max_frame_size",
        value_name: "BYTES",
        default: "16777216",
        help: "Largest frame accepted, in bytes, at least 65536",
        set: |s, c| {
            store(&mut c.max_frame_size, at_least(s, MIN_MAX_FRAME_SIZE as usize).and_then(to_u32))
        },
    },
    Key {
        name: "max_in_flight_per_connection",
        value_name: "N",
        default: "256",
        help: "Requests one connection may have in flight; more are answered resource_exhausted",
        set: |s, c| store(&mut c.max_in_flight_per_connection, at_least(s, 1).and_then(to_u32)),
    },
    Key {
        name: "max_in_flight_total",
        value_name: "N",
        default: "65536",
        help: "Requests in flight across all connections; more are answered resource_exhausted",
        set: |s, c| store(&mut c.max_in_flight_total, at_least(s, 1)),
    },
    Key {
        name: "send_queue_bytes",
        value_name: "BYTES",
        default: "4194304",
        help: "Bytes of replies queued for writing per connection",
        set: |s, c| {
            let bytes = at_least(s, MIN_SEND_QUEUE).and_then(|n| at_most(n, MAX_SEND_QUEUE));
            store(&mut c.send_queue_bytes, bytes)
        },
    },
    Key {
        name: "handshake_timeout",
        value_name: "DURATION",
        default: "10s",
        help: "Time a new connection has to send HELLO",
        set: |s, c| store(&mut c.handshake_timeout, positive_duration(s)),
    },
    Key {
        name: "idle_timeout",
        value_name: "DURATION",
        default: "5m",
        help: "Close connections idle (nothing received, nothing in flight) this long; 0 = never",
        set: |s, c| store(&mut c.idle_timeout, wire_duration(s)),
    },
    Key {
        name: "default_timeout",
        value_name: "DURATION",
        default: "30s",
        help: "Deadline of calls whose request sets none",
        set: |s, c| store(&mut c.default_timeout, wire_duration(s).and_then(non_zero)),
    },
    Key {
        name: "max_timeout",
        value_name: "DURATION",
        default: "5m",
        help: "Longest deadline any call gets",
        set: |s, c| store(&mut c.max_timeout, wire_duration(s).and_then(non_zero)),
    },
    Key {
        name: "drain_timeout",
        value_name: "DURATION",
        default: "30s",
        help: "On SIGINT/SIGTERM, how long to let calls in flight finish",
        set: |s, c| store(&mut c.drain_timeout, parse_duration(s)),
    },
    Key {
        name: "server_id",
        value_name: "NAME",
        default: "gateway",
        help: "Name of this gateway, sent to clients in WELCOME",
        set: |s, c| store(&mut c.server_id, parse_server_id(s)),
    },
    Key {
        name: "worker_threads",
        value_name: "N",
        default: "auto",
        help: "Threads running the gateway's tasks, 1 to 1024; auto = one per core it may run on",
        set: |s, c| {
            let threads = match s {
                "auto" => None,
                s => Some(at_least(s, 1).and_then(|n| at_most(n, 1024))?),
            };
            c.worker_threads = threads;
            Ok(())
        },
    },
    Key {
        name: "max_subscriptions_per_connection",
        value_name: "N",
        default: "1024",
        help: "Topic subscriptions one connection may hold",
        set: |s, c| store(&mut c.max_subscriptions_per_connection, at_least(s, 1)),
    },
    Key {
        name: "topic_linger",
        value_name: "DURATION",
        default: "1s",
        help: "Keep a topic's bus subscription this long after its last subscriber left",
        set: |s, c| store(&mut c.topic_linger, parse_duration(s)),
    },
    Key {
        name: "retain_max_keys",
        value_name: "N",
        default: "100000",
        help: "Keys whose last event a retain topic keeps",
        set: |s, c| store(&mut c.retain_max_keys, at_least(s, 1)),
    },
    Key {
        name: "history_max_bytes",
        value_name: "BYTES",
        default: "67108864",
        help: "Payload bytes the history of one topic keeps; its oldest events go first",
        set: |s, c| store(&mut c.history_max_bytes, at_least(s, 1)),
    },
    Key {
        name: "history_max_keys",
        value_name: "N",
        default: "100000",
        help: "Keys the history of one topic keeps; the key appended to longest ago goes first",
        set: |s, c| store(&mut c.history_max_keys, at_least(s, 1)),
    },
    Key {
        name: "history_store",
        value_name: "bus|memory",
        default: "bus",
        help: "Where topic histories live: `bus` keeps them where the bus does (JetStream on \
               NATS, shared by every gateway; this gateway's memory on the in-process bus), \
               `memory` in this gateway's memory whatever the bus (no stored message per event, \
               but a client moving to another gateway cannot recover)",
        set: |s, c| {
            let history_store = match s {
                "bus" => Ok(HistoryStore::Bus),
                "memory" => Ok(HistoryStore::Memory),
                other => Err(format!("`bus` or `memory`, not `{other}`")),
            };
            store(&mut c.history_store, history_store)
        },
    },
    Key {
        name: "recovery_max_events",
        value_name: "N",
        default: "10000",
        help: "Events one recovery sends at most; a subscription that missed more is told \
               too_many",
        set: |s, c| store(&mut c.recovery_max_events, at_least(s, 1)),
    },
    Key {
        name: "anonymous_roles",
        value_name: "ROLES",
        default: "",
        help: "Roles of connections without a token, comma-separated; empty refuses them; `all` \
               allows everything (development only)",
        set: |s, c| store(&mut c.auth.anonymous_roles, Ok(parse_names(s))),
    },
    Key {
        name: "max_connections_per_user",
        value_name: "N",
        default: "0",
        help: "Connections one user (token subject) may have open; 0 = no limit",
        set: |s, c| store(&mut c.max_connections_per_user, at_least(s, 0)),
    },
    Key {
        name: "connection_rate",
        value_name: "N",
        default: "0",
        help: "New connections per second per client IP (an IPv6 address counts as its /64); 0 \
               = no limit",
        set: |s, c| store(&mut c.connection_rate, at_least(s, 0).and_then(to_u32)),
    },
    Key {
        name: "connection_burst",
        value_name: "N",
        default: "20",
        help: "Connections a client IP may open at once before connection_rate applies",
        set: |s, c| store(&mut c.connection_burst, at_least(s, 1).and_then(to_u32)),
    },
    Key {
        name: "auth_failure_burst",
        value_name: "N",
        default: "0",
        help: "Failed authentications a client IP may have at once; past them, one a second, and \
               its new connections are refused meanwhile; 0 = no limit",
        set: |s, c| store(&mut c.auth_failure_burst, at_least(s, 0).and_then(to_u32)),
    },
    Key {
        name: "nats",
        value_name: "URL",
        default: "",
        help: "NATS server URL(s), comma-separated, for the bus; services then run as their own \
               processes. Credentials in the URL: nats://user:password@host:4222 or \
               nats://token@host:4222. Empty: the in-process bus with the example services",
        set: |s, c| store(&mut c.nats, parse_nats_urls(s)),
    },
    Key {
        name: "nats_subscription_capacity",
        value_name: "N",
        default: "8192",
        help: "Messages each of the gateway's NATS subscriptions holds while the gateway catches \
               up; past it they are dropped (gateway_bus_dropped_total). Raise it for topics \
               carrying tens of thousands of events a second",
        set: |s, c| store(&mut c.nats_subscription_capacity, at_least(s, 1)),
    },
    Key {
        name: "nats_user",
        value_name: "USER",
        default: "",
        help: "NATS user name (with nats_password)",
        set: |s, c| store(&mut c.nats_auth.user, Ok(s.to_owned())),
    },
    Key {
        name: "nats_password",
        value_name: "PASSWORD",
        default: "",
        help: "NATS password (with nats_user); better in the environment than as a flag",
        set: |s, c| store(&mut c.nats_auth.password, Ok(s.to_owned())),
    },
    Key {
        name: "nats_token",
        value_name: "TOKEN",
        default: "",
        help: "NATS authentication token; better in the environment than as a flag",
        set: |s, c| store(&mut c.nats_auth.token, Ok(s.to_owned())),
    },
    Key {
        name: "nats_nkey",
        value_name: "FILE",
        default: "",
        help: "File holding the NKey seed (SU...) to authenticate to NATS with",
        set: |s, c| store(&mut c.nats_auth.nkey, Ok(s.to_owned())),
    },
    Key {
        name: "nats_creds",
        value_name: "FILE",
        default: "",
        help: "NATS .creds file (user JWT and NKey seed) to authenticate with",
        set: |s, c| store(&mut c.nats_auth.creds, Ok(s.to_owned())),
    },
    Key {
        name: "nats_ca",
        value_name: "FILE",
        default: "",
        help: "PEM file of the CA certificates the NATS servers' certificates chain to; turns on \
               TLS to NATS",
        set: |s, c| store(&mut c.nats_auth.ca, Ok(s.to_owned())),
    },
    Key {
        name: "nats_cert",
        value_name: "FILE",
        default: "",
        help: "PEM client certificate chain presented to NATS over TLS (with nats_key)",
        set: |s, c| store(&mut c.nats_auth.cert, Ok(s.to_owned())),
    },
    Key {
        name: "nats_key",
        value_name: "FILE",
        default: "",
        help: "PEM private key of nats_cert",
        set: |s, c| store(&mut c.nats_auth.key, Ok(s.to_owned())),
    },
    Key {
        name: "admin_token",
        value_name: "TOKEN",
        default: "",
        help: "Bearer token the admin endpoint requires to change switches (PUT, DELETE); empty \
               = none",
        set: |s, c| store(&mut c.admin_token, parse_token(s)),
    },
];
