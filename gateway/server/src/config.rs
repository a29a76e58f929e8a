//! The gateway's settings: where they come from, their defaults, and their validation.
//!
//! Every setting is a key (`max_in_flight_per_connection`) that can be given in three places,
//! which win in this order: a command-line flag (`--max-in-flight-per-connection 64`), an
//! environment variable (`GATEWAY_MAX_IN_FLIGHT_PER_CONNECTION=64`), a TOML file named by
//! `--config` (`max_in_flight_per_connection = 64`). A key given nowhere takes its default
//! ([`KEYS`] lists them). Durations are humane strings everywhere (`"5s"`, `"250ms"`, `"1m 30s"`).
//!
//! Raw values from all three places are gathered as text first and then parsed and checked in one
//! pass ([`Config::load`]), so that every error names the key, the value and where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use gateway_protocol::MIN_MAX_FRAME_SIZE;

use crate::auth::{AuthConfig, Authenticator};

/// The checked settings of one gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where clients connect (the wire protocol over TCP).
    pub listen: SocketAddr,
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
    /// Topic subscriptions one connection may hold; past it SUBSCRIBE is refused with
    /// `resource_exhausted`.
    pub max_subscriptions_per_connection: usize,
    /// How long the hub keeps a topic's bus subscription after its last local subscriber left,
    /// so that subscription churn does not thrash the bus.
    pub topic_linger: Duration,
    /// Keys whose last event a `retain` topic keeps; past it the least recently updated key is
    /// forgotten.
    pub retain_max_keys: usize,
    /// Connections one authenticated subject may have open at once; 0 = no limit.
    pub max_connections_per_user: usize,
    /// New connections per second accepted from one IP address; 0 = no limit.
    pub connection_rate: u32,
    /// How many connections one IP address may open at once before `connection_rate` applies.
    pub connection_burst: u32,
    /// Authentication: keys, roles, and the roles of anonymous connections (`anonymous_roles`).
    pub auth: AuthConfig,
    /// The NATS server(s) of the bus (`nats://host:port`, comma-separated for a cluster); `None`:
    /// the in-process bus, with the services in the same process.
    pub nats: Option<String>,
    /// When not empty, the admin endpoint's changes (`PUT`/`DELETE /switches/...`) need
    /// `Authorization: Bearer <admin_token>`. Reads stay open: the admin port listens on loopback
    /// by default and must never be exposed beyond the operators' network.
    pub admin_token: String,
}

impl Default for Config {
    /// Every key's documented default ([`KEYS`]).
    fn default() -> Config {
        let layers = Layers::default();
        // The defaults are constants checked by a unit test, so this cannot fail.
        Config::from_layers(&layers).expect("the documented defaults are valid")
    }
}

/// One setting: its name in the TOML file and its default (what it means is on the flag's
/// `--help` text, [`Args`]). The flag is the name with dashes (`--max-connections`), the
/// environment variable the name in upper case after `GATEWAY_` (`GATEWAY_MAX_CONNECTIONS`).
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
}

/// Every setting, with its default.
pub const KEYS: &[Key] = &[
    Key { name: "listen", default: "127.0.0.1:7400" },
    Key { name: "admin_listen", default: "127.0.0.1:7401" },
    Key { name: "ws_listen", default: "127.0.0.1:7402" },
    Key { name: "allowed_origins", default: "" },
    Key { name: "ws_ping_interval", default: "30s" },
    Key { name: "max_connections", default: "10000" },
    Key { name: "max_frame_size", default: "16777216" },
    Key { name: "max_in_flight_per_connection", default: "256" },
    Key { name: "max_in_flight_total", default: "65536" },
    Key { name: "send_queue_bytes", default: "4194304" },
    Key { name: "handshake_timeout", default: "10s" },
    Key { name: "idle_timeout", default: "5m" },
    Key { name: "default_timeout", default: "30s" },
    Key { name: "max_timeout", default: "5m" },
    Key { name: "drain_timeout", default: "30s" },
    Key { name: "server_id", default: "gateway" },
    Key { name: "max_subscriptions_per_connection", default: "1024" },
    Key { name: "topic_linger", default: "1s" },
    Key { name: "retain_max_keys", default: "100000" },
    Key { name: "anonymous_roles", default: "" },
    Key { name: "max_connections_per_user", default: "0" },
    Key { name: "connection_rate", default: "0" },
    Key { name: "connection_burst", default: "20" },
    Key { name: "nats", default: "" },
    Key { name: "admin_token", default: "" },
];

/// The gateway's command line. Each setting flag overrides the environment and the file.
#[derive(Debug, Default, Parser)]
#[command(
    name = "gateway",
    version,
    about = "The RPC gateway: with the in-process bus and the example services, or alone over NATS (--nats)"
)]
pub struct Args {
    /// TOML file of settings (keys as the flags below, with underscores)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address clients connect to [default: 127.0.0.1:7400] [env: GATEWAY_LISTEN]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address of the admin HTTP (/healthz, /readyz, /metrics, /switches); keep it private
    /// [default: 127.0.0.1:7401] [env: GATEWAY_ADMIN_LISTEN]
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// Address WebSocket clients connect to (browsers, Node); `off` = none
    /// [default: 127.0.0.1:7402] [env: GATEWAY_WS_LISTEN]
    #[arg(long, value_name = "ADDR")]
    pub ws_listen: Option<String>,
    /// Browser origins allowed to open a WebSocket, comma-separated `scheme://host[:port]`, or
    /// `*` for any; requests without an Origin header are always allowed [default: none]
    /// [env: GATEWAY_ALLOWED_ORIGINS]
    #[arg(long, value_name = "ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Ping a silent WebSocket client after this long, close it after twice this long; 0 = never
    /// [default: 30s] [env: GATEWAY_WS_PING_INTERVAL]
    #[arg(long, value_name = "DURATION")]
    pub ws_ping_interval: Option<String>,
    /// Client connections open at once; more get GOAWAY too_many_connections [default: 10000]
    /// [env: GATEWAY_MAX_CONNECTIONS]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<String>,
    /// Largest frame accepted, in bytes, at least 65536 [default: 16777216]
    /// [env: GATEWAY_MAX_FRAME_SIZE]
    #[arg(long, value_name = "BYTES")]
    pub max_frame_size: Option<String>,
    /// Requests one connection may have in flight; more are answered resource_exhausted
    /// [default: 256] [env: GATEWAY_MAX_IN_FLIGHT_PER_CONNECTION]
    #[arg(long, value_name = "N")]
    pub max_in_flight_per_connection: Option<String>,
    /// Requests in flight across all connections; more are answered resource_exhausted
    /// [default: 65536] [env: GATEWAY_MAX_IN_FLIGHT_TOTAL]
    #[arg(long, value_name = "N")]
    pub max_in_flight_total: Option<String>,
    /// Bytes of replies queued for writing per connection [default: 4194304]
    /// [env: GATEWAY_SEND_QUEUE_BYTES]
    #[arg(long, value_name = "BYTES")]
    pub send_queue_bytes: Option<String>,
    /// Time a new connection has to send HELLO [default: 10s] [env: GATEWAY_HANDSHAKE_TIMEOUT]
    #[arg(long, value_name = "DURATION")]
    pub handshake_timeout: Option<String>,
    /// Close connections idle (nothing received, nothing in flight) this long; 0 = never
    /// [default: 5m] [env: GATEWAY_IDLE_TIMEOUT]
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// Deadline of calls whose request sets none [default: 30s] [env: GATEWAY_DEFAULT_TIMEOUT]
    #[arg(long, value_name = "DURATION")]
    pub default_timeout: Option<String>,
    /// Longest deadline any call gets [default: 5m] [env: GATEWAY_MAX_TIMEOUT]
    #[arg(long, value_name = "DURATION")]
    pub max_timeout: Option<String>,
    /// On SIGINT/SIGTERM, how long to let calls in flight finish [default: 30s]
    /// [env: GATEWAY_DRAIN_TIMEOUT]
    #[arg(long, value_name = "DURATION")]
    pub drain_timeout: Option<String>,
    /// Name of this gateway, sent to clients in WELCOME [default: gateway]
    /// [env: GATEWAY_SERVER_ID]
    #[arg(long, value_name = "NAME")]
    pub server_id: Option<String>,
    /// Topic subscriptions one connection may hold [default: 1024]
    /// [env: GATEWAY_MAX_SUBSCRIPTIONS_PER_CONNECTION]
    #[arg(long, value_name = "N")]
    pub max_subscriptions_per_connection: Option<String>,
    /// Keep a topic's bus subscription this long after its last subscriber left [default: 1s]
    /// [env: GATEWAY_TOPIC_LINGER]
    #[arg(long, value_name = "DURATION")]
    pub topic_linger: Option<String>,
    /// Keys whose last event a retain topic keeps [default: 100000] [env: GATEWAY_RETAIN_MAX_KEYS]
    #[arg(long, value_name = "N")]
    pub retain_max_keys: Option<String>,
    /// Roles of connections without a token, comma-separated; empty refuses them; `all` allows
    /// everything (development only) [default: none] [env: GATEWAY_ANONYMOUS_ROLES]
    #[arg(long, value_name = "ROLES")]
    pub anonymous_roles: Option<String>,
    /// Connections one user (token subject) may have open; 0 = no limit [default: 0]
    /// [env: GATEWAY_MAX_CONNECTIONS_PER_USER]
    #[arg(long, value_name = "N")]
    pub max_connections_per_user: Option<String>,
    /// New connections per second per client IP; 0 = no limit [default: 0]
    /// [env: GATEWAY_CONNECTION_RATE]
    #[arg(long, value_name = "N")]
    pub connection_rate: Option<String>,
    /// Connections a client IP may open at once before connection_rate applies [default: 20]
    /// [env: GATEWAY_CONNECTION_BURST]
    #[arg(long, value_name = "N")]
    pub connection_burst: Option<String>,
    /// NATS server URL(s), comma-separated, for the bus; services then run as their own
    /// processes. Empty: the in-process bus with the example services [default: empty]
    /// [env: GATEWAY_NATS]
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Bearer token the admin endpoint requires to change switches (PUT, DELETE); empty = none
    /// [default: empty] [env: GATEWAY_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<String>,
}

impl Args {
    /// The settings given as flags, by key.
    fn values(&self) -> BTreeMap<&'static str, String> {
        let given = [
            ("listen", &self.listen),
            ("admin_listen", &self.admin_listen),
            ("ws_listen", &self.ws_listen),
            ("allowed_origins", &self.allowed_origins),
            ("ws_ping_interval", &self.ws_ping_interval),
            ("max_connections", &self.max_connections),
            ("max_frame_size", &self.max_frame_size),
            ("max_in_flight_per_connection", &self.max_in_flight_per_connection),
            ("max_in_flight_total", &self.max_in_flight_total),
            ("send_queue_bytes", &self.send_queue_bytes),
            ("handshake_timeout", &self.handshake_timeout),
            ("idle_timeout", &self.idle_timeout),
            ("default_timeout", &self.default_timeout),
            ("max_timeout", &self.max_timeout),
            ("drain_timeout", &self.drain_timeout),
            ("server_id", &self.server_id),
            ("max_subscriptions_per_connection", &self.max_subscriptions_per_connection),
            ("topic_linger", &self.topic_linger),
            ("retain_max_keys", &self.retain_max_keys),
            ("anonymous_roles", &self.anonymous_roles),
            ("max_connections_per_user", &self.max_connections_per_user),
            ("connection_rate", &self.connection_rate),
            ("connection_burst", &self.connection_burst),
            ("nats", &self.nats),
            ("admin_token", &self.admin_token),
        ];
        given.into_iter().filter_map(|(k, v)| Some((k, v.clone()?))).collect()
    }
}

/// `nats://host:port` (or `host:port`, `tls://…`), comma-separated; empty for none.
fn parse_nats_urls(s: &str) -> Result<Option<String>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    for url in s.split(',').map(str::trim) {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if scheme.is_some_and(|s| !matches!(s, "nats" | "tls" | "ws" | "wss")) {
            return Err(format!("`{url}`: the scheme must be nats://, tls://, ws:// or wss://"));
        }
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(format!("`{url}` is not a NATS server address (nats://host:port)"));
        }
    }
    Ok(Some(s.to_owned()))
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File(path) => write!(f, "`{}`", path.display()),
            Origin::Env(var) => write!(f, "environment variable `{var}`"),
            Origin::Flag(flag) => write!(f, "flag `{flag}`"),
        }
    }
}

/// Why the settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value does not parse or is out of range.
    #[error("{key} = {value:?} (from {origin}): {problem}")]
    Invalid { key: &'static str, value: String, origin: Origin, problem: String },
    /// Two settings contradict each other.
    #[error("{0}")]
    Conflict(String),
    /// The file names a key the gateway does not have.
    #[error("unknown key `{key}` in `{}`", path.display())]
    UnknownKey { key: String, path: PathBuf },
    /// The `[auth]` table or `anonymous_roles` are unusable.
    #[error("{0}")]
    Auth(String),
    /// The file cannot be read.
    #[error("cannot read config file `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not TOML, or a value is neither a string nor a number.
    #[error("config file `{}`: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
}

/// Raw text values by key, each with its origin; later inserts win. The `[auth]` table comes from
/// the file only.
#[derive(Debug, Default)]
struct Layers {
    values: BTreeMap<&'static str, (String, Origin)>,
    auth: AuthConfig,
}

impl Layers {
    fn value(&self, key: &'static str) -> (String, Origin) {
        match self.values.get(key) {
            Some(v) => v.clone(),
            None => (default_of(key).to_owned(), Origin::Default),
        }
    }

    /// Parses `key`'s winning value, wrapping the problem into a [`ConfigError`] that names it.
    fn parse<T>(
        &self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let (value, origin) = self.value(key);
        parse(value.trim()).map_err(|problem| ConfigError::Invalid { key, value, origin, problem })
    }
}

fn default_of(key: &str) -> &'static str {
    KEYS.iter().find(|k| k.name == key).map_or("", |k| k.default)
}

/// The environment variable of `key`.
pub fn env_var(key: &str) -> String {
    format!("GATEWAY_{}", key.to_ascii_uppercase())
}

impl Config {
    /// Gathers settings from `args`, the environment (through `env`, so tests need not touch the
    /// process's) and the file `args.config` names, then parses and checks them.
    ///
    /// # Errors
    ///
    /// The first unparsable or out-of-range value, naming its key, value and origin; a file that
    /// cannot be read, is not TOML, or has unknown keys; an `[auth]` table whose keys cannot be
    /// loaded, or no way to authenticate anyone.
    pub fn load(args: &Args, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut layers = Layers::default();
        if let Some(path) = &args.config {
            let (values, auth) = read_file(path)?;
            for (key, value) in values {
                layers.values.insert(key, (value, Origin::File(path.clone())));
            }
            layers.auth = auth;
        }
        for key in KEYS {
            let var = env_var(key.name);
            if let Some(value) = env(&var) {
                layers.values.insert(key.name, (value, Origin::Env(var)));
            }
        }
        for (key, value) in args.values() {
            layers
                .values
                .insert(key, (value, Origin::Flag(format!("--{}", key.replace('_', "-")))));
        }
        let config = Config::from_layers(&layers)?;
        Authenticator::new(&config.auth).map_err(|e| ConfigError::Auth(e.to_string()))?;
        Ok(config)
    }

    fn from_layers(layers: &Layers) -> Result<Config, ConfigError> {
        let p = layers;
        let config = Config {
            listen: p.parse("listen", parse_addr)?,
            admin_listen: p.parse("admin_listen", parse_addr)?,
            ws_listen: p.parse("ws_listen", |s| match s {
                "" | "off" => Ok(None),
                s => parse_addr(s).map(Some),
            })?,
            allowed_origins: p.parse("allowed_origins", parse_origins)?,
            ws_ping_interval: p.parse("ws_ping_interval", parse_duration)?,
            max_connections: p.parse("max_connections", |s| at_least(s, 1))?,
            max_frame_size: p.parse("max_frame_size", |s| {
                let n = at_least(s, MIN_MAX_FRAME_SIZE as usize)?;
                u32::try_from(n).map_err(|_| format!("must be at most {}", u32::MAX))
            })?,
            max_in_flight_per_connection: p.parse("max_in_flight_per_connection", |s| {
                let n = at_least(s, 1)?;
                u32::try_from(n).map_err(|_| format!("must be at most {}", u32::MAX))
            })?,
            max_in_flight_total: p.parse("max_in_flight_total", |s| at_least(s, 1))?,
            send_queue_bytes: p.parse("send_queue_bytes", |s| {
                let n = at_least(s, MIN_SEND_QUEUE)?;
                if n > MAX_SEND_QUEUE {
                    Err(format!("must be at most {MAX_SEND_QUEUE}"))
                } else {
                    Ok(n)
                }
            })?,
            handshake_timeout: p.parse("handshake_timeout", positive_duration)?,
            idle_timeout: p.parse("idle_timeout", wire_duration)?,
            default_timeout: p.parse("default_timeout", |s| wire_duration(s).and_then(non_zero))?,
            max_timeout: p.parse("max_timeout", |s| wire_duration(s).and_then(non_zero))?,
            drain_timeout: p.parse("drain_timeout", parse_duration)?,
            server_id: p.parse("server_id", |s| {
                if s.len() > 255 { Err("must be at most 255 bytes".into()) } else { Ok(s.into()) }
            })?,
            max_subscriptions_per_connection: p
                .parse("max_subscriptions_per_connection", |s| at_least(s, 1))?,
            topic_linger: p.parse("topic_linger", parse_duration)?,
            retain_max_keys: p.parse("retain_max_keys", |s| at_least(s, 1))?,
            max_connections_per_user: p.parse("max_connections_per_user", |s| at_least(s, 0))?,
            connection_rate: p.parse("connection_rate", |s| {
                u32::try_from(at_least(s, 0)?).map_err(|_| format!("must be at most {}", u32::MAX))
            })?,
            connection_burst: p.parse("connection_burst", |s| {
                u32::try_from(at_least(s, 1)?).map_err(|_| format!("must be at most {}", u32::MAX))
            })?,
            nats: p.parse("nats", parse_nats_urls)?,
            admin_token: p.parse("admin_token", parse_token)?,
            auth: AuthConfig {
                anonymous_roles: p.parse("anonymous_roles", |s| {
                    Ok(s.split(',')
                        .map(str::trim)
                        .filter(|r| !r.is_empty())
                        .map(String::from)
                        .collect())
                })?,
                ..p.auth.clone()
            },
        };
        let listeners = [
            ("listen", Some(config.listen)),
            ("admin_listen", Some(config.admin_listen)),
            ("ws_listen", config.ws_listen),
        ];
        for (i, &(a, addr)) in listeners.iter().enumerate() {
            let Some(addr) = addr else { continue };
            for &(b, other) in &listeners[i + 1..] {
                if addr.port() != 0 && other == Some(addr) {
                    return Err(ConfigError::Conflict(format!(
                        "{a} and {b} are both {addr}: each listener needs its own address"
                    )));
                }
            }
        }
        if config.default_timeout > config.max_timeout {
            return Err(ConfigError::Conflict(format!(
                "default_timeout = {:?} is longer than max_timeout = {:?}",
                humantime::format_duration(config.default_timeout).to_string(),
                humantime::format_duration(config.max_timeout).to_string(),
            )));
        }
        Ok(config)
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

/// The smallest per-connection send queue: room for a few small replies at once. A reply larger
/// than the queue is still sent, alone, so the bound cannot deadlock.
const MIN_SEND_QUEUE: usize = 4096;

/// The largest per-connection send queue, 1 GiB: a larger one would defeat its purpose (and the
/// queue counts its bytes in `u32`s).
const MAX_SEND_QUEUE: usize = 1 << 30;

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| "not a socket address like `127.0.0.1:7400`".to_owned())
}

/// `*`, or comma-separated `scheme://host[:port]` origins (as a browser's `Origin` header
/// writes them), normalized.
fn parse_origins(s: &str) -> Result<Vec<String>, String> {
    let mut origins = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if entry != "*" {
            check_origin(entry)?;
        }
        origins.push(normalize_origin(entry));
    }
    Ok(origins)
}

/// Whether `entry` has the shape of a serialized origin: a scheme, `://`, a host and an optional
/// port, and nothing else (no path, not even `/`).
fn check_origin(entry: &str) -> Result<(), String> {
    let shape = || {
        format!(
            "`{entry}` is not an origin like `https://app.example.com` or \
             `http://localhost:5173` (scheme://host[:port], no path), nor `*`"
        )
    };
    let (scheme, rest) = entry.split_once("://").ok_or_else(shape)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 host (`[::1]`) has colons of its own: the port follows its `]`.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && !host.contains(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '@' | '*'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    if scheme_ok && host_ok && port_ok { Ok(()) } else { Err(shape()) }
}

/// An origin as compared: lower case, without the scheme's default port (browsers leave it
/// out, so `https://a.example:443` and `https://a.example` are the same origin).
pub(crate) fn normalize_origin(origin: &str) -> String {
    let origin = origin.trim().to_ascii_lowercase();
    for (scheme, port) in [("http://", ":80"), ("https://", ":443")] {
        if origin.starts_with(scheme) && origin.ends_with(port) {
            return origin[..origin.len() - port.len()].to_owned();
        }
    }
    origin
}

fn at_least(s: &str, min: usize) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| "not a whole number".to_owned())?;
    if n < min { Err(format!("must be at least {min}")) } else { Ok(n) }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("not a duration like `5s` or `250ms` ({e})"))
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).and_then(non_zero)
}

fn non_zero(d: Duration) -> Result<Duration, String> {
    if d.is_zero() { Err("must be longer than zero".into()) } else { Ok(d) }
}

/// A bearer token: what an HTTP header can carry after `Bearer ` (visible ASCII, no spaces).
fn parse_token(s: &str) -> Result<String, String> {
    if s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s.to_owned())
    } else {
        Err("a token is visible ASCII characters without spaces".into())
    }
}

/// A duration that travels in a `u32` of milliseconds (WELCOME, REQUEST).
fn wire_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.as_millis() > u128::from(u32::MAX) {
        Err(format!("must be at most {}ms", u32::MAX))
    } else {
        Ok(d)
    }
}

/// A file's flat settings as raw text by key, and its `[auth]` table.
type FileValues = (Vec<(&'static str, String)>, AuthConfig);

/// Reads a TOML file into raw values (strings as they are, integers as decimal text) and its
/// `[auth]` table.
fn read_file(path: &Path) -> Result<FileValues, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })?;
    let mut values = Vec::new();
    let mut auth = AuthConfig::default();
    for (name, value) in table {
        if name == "auth" {
            auth = value.try_into().map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: path.to_owned(),
                message: format!("[auth]: {}", e.message()),
            })?;
            continue;
        }
        let Some(key) = KEYS.iter().find(|k| k.name == name) else {
            return Err(ConfigError::UnknownKey { key: name, path: path.to_owned() });
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            other => {
                return Err(ConfigError::Syntax {
                    path: path.to_owned(),
                    message: format!(
                        "`{name}` must be a string or a whole number, not a {}",
                        other.type_str()
                    ),
                });
            }
        };
        values.push((key.name, text));
    }
    Ok((values, auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Anonymous connections allowed, so that a config needs no keys.
    fn anonymous() -> Args {
        Args { anonymous_roles: Some("all".into()), ..Args::default() }
    }

    #[test]
    fn the_defaults_are_valid_and_documented() {
        let config = Config::load(&anonymous(), no_env).unwrap();
        assert_eq!(config.listen, "127.0.0.1:7400".parse().unwrap());
        assert_eq!(config.admin_listen, "127.0.0.1:7401".parse().unwrap());
        assert_eq!(config.max_frame_size, 16 * 1024 * 1024);
        assert_eq!(config.handshake_timeout, Duration::from_secs(10));
        assert_eq!(config.idle_timeout_ms(), 300_000);
        assert_eq!(config.admin_token, "", "no admin token unless one is set");
        let mut default = Config::default();
        default.auth.anonymous_roles = vec!["all".into()];
        assert_eq!(config, default);
    }

    #[test]
    fn by_default_nobody_can_connect_so_the_gateway_refuses_to_start() {
        let err = Config::load(&Args::default(), no_env).unwrap_err().to_string();
        assert!(err.contains("no way to authenticate anyone"), "{err}");
        assert!(err.contains("--anonymous-roles all"), "{err}");
    }

    #[test]
    fn the_auth_table_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        let args = Args { config: Some(path.clone()), ..Args::default() };
        std::fs::write(
            &path,
            "[auth]\naudience = \"tracker\"\nleeway = \"2s\"\n\
             [[auth.keys]]\nalgorithm = \"HS256\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
             [auth.roles.viewer]\ncall = [\"Tracker.*\"]\n",
        )
        .unwrap();
        let config = Config::load(&args, no_env).unwrap();
        assert_eq!(config.auth.audience.as_deref(), Some("tracker"));
        assert_eq!(config.auth.leeway(), Duration::from_secs(2));
        assert_eq!(config.auth.roles["viewer"].call, ["Tracker.*"]);

        let bad = [
            ("[auth]\nkeys = [{ algorithm = \"HS256\", secret = \"short\" }]\n", "at least 32"),
            ("[auth]\nkeys = [{ algorithm = \"none\", secret = \"x\" }]\n", "not one of"),
            (
                "[auth]\nkeys = [{ algorithm = \"RS256\", public_key_file = \"/nonexistent.pem\" }]\n",
                "cannot read `/nonexistent.pem`",
            ),
            ("[auth]\nroles.x.call = [\"a..b\"]\n", "empty token"),
            ("[auth]\nroles.all.call = [\"a\"]\n", "cannot be redefined"),
            ("[auth]\nsurprise = 1\n", "unknown field `surprise`"),
        ];
        for (text, words) in bad {
            std::fs::write(&path, text).unwrap();
            let args = Args { config: Some(path.clone()), ..anonymous() };
            let err = Config::load(&args, no_env).unwrap_err().to_string();
            assert!(err.contains(words), "{text}: {err}");
        }
        let args = Args { anonymous_roles: Some("guest".into()), ..Args::default() };
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.contains("anonymous_roles names role `guest`"), "{err}");
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(
            &path,
            "max_connections = 5\nmax_in_flight_total = 6\nidle_timeout = \"250ms\"\n",
        )
        .unwrap();
        let args = Args { config: Some(path), max_connections: Some("7".into()), ..anonymous() };
        let env = |var: &str| match var {
            "GATEWAY_MAX_CONNECTIONS" => Some("8".into()),
            "GATEWAY_MAX_IN_FLIGHT_TOTAL" => Some("9".into()),
            _ => None,
        };
        let config = Config::load(&args, env).unwrap();
        assert_eq!(config.max_connections, 7, "flag over env and file");
        assert_eq!(config.max_in_flight_total, 9, "env over file");
        assert_eq!(config.idle_timeout, Duration::from_millis(250), "file over default");
        assert_eq!(config.max_in_flight_per_connection, 256, "default");
    }

    #[test]
    fn errors_name_the_key_the_value_and_the_origin() {
        let args = Args { max_in_flight_per_connection: Some("0".into()), ..Args::default() };
        let err = Config::load(&args, no_env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "max_in_flight_per_connection = \"0\" (from flag `--max-in-flight-per-connection`): \
             must be at least 1"
        );

        let env = |var: &str| (var == "GATEWAY_IDLE_TIMEOUT").then(|| "soon".to_owned());
        let err = Config::load(&Args::default(), env).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "idle_timeout = \"soon\" (from environment variable `GATEWAY_IDLE_TIMEOUT`): \
                 not a duration"
            ),
            "{err}"
        );

        let args = Args { max_frame_size: Some("1000".into()), ..Args::default() };
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.ends_with("must be at least 65536"), "{err}");

        let args = Args { listen: Some("localhost".into()), ..Args::default() };
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.starts_with("listen = \"localhost\""), "{err}");

        let args = Args { admin_token: Some("two words".into()), ..anonymous() };
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.ends_with("visible ASCII characters without spaces"), "{err}");
    }

    #[test]
    fn contradictions_and_bad_files_are_reported() {
        let args = Args {
            default_timeout: Some("10m".into()),
            max_timeout: Some("1m".into()),
            ..Args::default()
        };
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert_eq!(err, "default_timeout = \"10m\" is longer than max_timeout = \"1m\"");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, "max_conections = 5\n").unwrap();
        let args = Args { config: Some(path.clone()), ..Args::default() };
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.starts_with("unknown key `max_conections`"), "{err}");

        std::fs::write(&path, "drain_timeout = 1.5\n").unwrap();
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.contains("`drain_timeout` must be a string or a whole number"), "{err}");

        std::fs::write(&path, "handshake_timeout = \"0\"\n").unwrap();
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert!(err.contains("(from `"), "{err}");
        assert!(err.ends_with("must be longer than zero"), "{err}");
    }

    #[test]
    fn nats_urls_are_checked_and_empty_means_the_in_process_bus() {
        assert_eq!(Config::load(&anonymous(), no_env).unwrap().nats, None);
        let env = |var: &str| {
            (var == "GATEWAY_NATS").then(|| "nats://10.0.0.1:4222, nats://10.0.0.2:4222".to_owned())
        };
        let config = Config::load(&anonymous(), env).unwrap();
        assert_eq!(config.nats.as_deref(), Some("nats://10.0.0.1:4222, nats://10.0.0.2:4222"));
        for (bad, words) in [("http://x:1", "the scheme must be"), ("nats://", "not a NATS")] {
            let args = Args { nats: Some(bad.into()), ..anonymous() };
            let err = Config::load(&args, no_env).unwrap_err().to_string();
            assert!(err.starts_with("nats = ") && err.contains(words), "{bad}: {err}");
        }
    }

    #[test]
    fn websocket_settings_are_parsed_checked_and_can_turn_the_listener_off() {
        let config = Config::load(&anonymous(), no_env).unwrap();
        assert_eq!(config.ws_listen, Some("127.0.0.1:7402".parse().unwrap()));
        assert!(config.allowed_origins.is_empty(), "no browser origin by default");
        assert!(!config.origin_allowed("http://localhost:5173"));
        assert_eq!(config.ws_ping_interval, Duration::from_secs(30));

        for off in ["off", ""] {
            let args = Args { ws_listen: Some(off.into()), ..anonymous() };
            assert_eq!(Config::load(&args, no_env).unwrap().ws_listen, None, "{off:?}");
        }
        let args = Args { ws_ping_interval: Some("0".into()), ..anonymous() };
        assert_eq!(Config::load(&args, no_env).unwrap().ws_ping_interval, Duration::ZERO);

        let env = |var: &str| {
            (var == "GATEWAY_ALLOWED_ORIGINS").then(|| {
                " https://App.Example.com:443, http://localhost:5173 ,http://[::1]:8080,\
                 chrome-extension://abcdef"
                    .to_owned()
            })
        };
        let config = Config::load(&anonymous(), env).unwrap();
        assert_eq!(
            config.allowed_origins,
            [
                "https://app.example.com",
                "http://localhost:5173",
                "http://[::1]:8080",
                "chrome-extension://abcdef"
            ]
        );
        assert!(config.origin_allowed("https://app.example.com"));
        assert!(config.origin_allowed("HTTPS://APP.EXAMPLE.COM"));
        assert!(config.origin_allowed("http://[::1]:8080"));
        assert!(!config.origin_allowed("http://app.example.com"), "the scheme counts");
        assert!(!config.origin_allowed("http://localhost:5174"), "the port counts");
        assert!(!config.origin_allowed("http://localhost"));

        let args = Args { allowed_origins: Some("*".into()), ..anonymous() };
        assert!(Config::load(&args, no_env).unwrap().origin_allowed("https://anything.test"));

        for (bad, words) in [
            ("https://app.example.com/", "no path"),
            ("app.example.com", "not an origin"),
            ("https://*.example.com", "not an origin"),
            ("http://localhost:99999", "not an origin"),
            ("https://", "not an origin"),
        ] {
            let args = Args { allowed_origins: Some(bad.into()), ..anonymous() };
            let err = Config::load(&args, no_env).unwrap_err().to_string();
            assert!(err.starts_with("allowed_origins = ") && err.contains(words), "{bad}: {err}");
        }

        let args = Args { ws_listen: Some("127.0.0.1:7400".into()), ..anonymous() };
        let err = Config::load(&args, no_env).unwrap_err().to_string();
        assert_eq!(
            err,
            "listen and ws_listen are both 127.0.0.1:7400: each listener needs its own address"
        );
        let args = Args {
            listen: Some("127.0.0.1:0".into()),
            ws_listen: Some("127.0.0.1:0".into()),
            admin_listen: Some("127.0.0.1:0".into()),
            ..anonymous()
        };
        assert!(Config::load(&args, no_env).is_ok(), "port 0 is a fresh port each time");
    }

    #[test]
    fn every_flag_has_a_key() {
        for key in KEYS {
            let mut args = Args::default();
            let flag = format!("--{}", key.name.replace('_', "-"));
            args = Args::try_parse_from(["gateway", flag.as_str(), key.default]).unwrap_or(args);
            assert_eq!(args.values().get(key.name).map(String::as_str), Some(key.default));
        }
    }
}
