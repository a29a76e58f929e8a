//! [`ClientConfig`]: where the gateways are, how long to wait, how to reconnect.
//!
//! Every field has a documented default ([`ClientConfig::new`]); [`ClientConfig::validate`]
//! checks the whole configuration before the client starts, and names the field and the value
//! that are wrong.

use std::fmt;
use std::time::Duration;

use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE};

use crate::credentials::TokenProvider;

/// How a [`Client`](crate::Client) connects and calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The gateways, as `host:port` (or `tcp://host:port`), or `tls://host:port` for the
    /// protocol inside TLS, tried in order, then round again. At least one. Default: none (the
    /// one field a caller always sets).
    pub endpoints: Vec<String>,
    /// The CA certificates (PEM) that `tls://` gateways' certificates must chain to. `None`:
    /// the system's CA certificates. Default: `None`.
    pub tls_ca: Option<Vec<u8>>,
    /// How long one connection attempt may take, from the TCP connect to the server's WELCOME.
    /// Default: 5 s.
    pub connect_timeout: Duration,
    /// The timeout of calls whose [`CallOptions`](gateway_core::CallOptions) set none. Default:
    /// 10 s, as [`LocalTransport`](gateway_core::LocalTransport)'s.
    pub default_timeout: Duration,
    /// The largest frame the client accepts from the server, in bytes (sent in HELLO). At least
    /// 65,536, the protocol's minimum. Default: 16 MiB, the protocol's default.
    pub max_frame_size: u32,
    /// A name for the server's logs (`"device-tracker/1.4"`), at most 255 bytes. Default:
    /// `"gateway-client/<crate version>"`.
    pub name: String,
    /// Credentials for the server's auth layer, sent in HELLO when there is no
    /// [`token_provider`](ClientConfig::token_provider); at most 65,535 bytes. A static token is
    /// not refreshed by the client: the application calls
    /// [`Client::refresh_token`](crate::Client::refresh_token). Default: none.
    pub token: Option<Vec<u8>>,
    /// Asked for a fresh token before every connection, and again before the current token
    /// expires (crate docs, "Authentication"); `token` is then unused. Default: none.
    pub token_provider: Option<TokenProvider>,
    /// How reconnection attempts are spaced.
    pub backoff: Backoff,
    /// How often the client pings an otherwise silent connection; a connection whose peer
    /// answers nothing for two intervals is treated as lost. `None` turns pings off. The client
    /// pings more often when the server's idle timeout (from WELCOME) demands it. Default: 15 s.
    pub keepalive_interval: Option<Duration>,
    /// How many calls may wait to be written to the connection before callers wait for room
    /// (within their deadlines). Default: 1024.
    pub queue_capacity: usize,
    /// How many events each subscription holds for an application that has not read them yet;
    /// past it the oldest are dropped and counted in the next event's `missed`. Default: 1024.
    pub subscription_buffer: usize,
}

/// Exponential backoff with full jitter: before reconnection attempt `n` (from 0) the client
/// waits a uniformly random time between zero and `min(max, initial × factorⁿ)`, so that many
/// clients losing one gateway at once do not all come back at the same moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// The bound of the first delay. Default: 50 ms.
    pub initial: Duration,
    /// The bound no delay exceeds. Default: 5 s.
    pub max: Duration,
    /// How much the bound grows per failed attempt, at least 1. Default: 2.
    pub factor: f64,
}

// `factor` is validated finite, so equality is total on every configuration that is used.
impl Eq for Backoff {}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { initial: Duration::from_millis(50), max: Duration::from_secs(5), factor: 2.0 }
    }
}

impl ClientConfig {
    /// The default configuration for these endpoints (see each field for its default).
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> ClientConfig {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls_ca: None,
            connect_timeout: Duration::from_secs(5),
            default_timeout: Duration::from_secs(10),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            name: concat!("gateway-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            token: None,
            token_provider: None,
            backoff: Backoff::default(),
            keepalive_interval: Some(Duration::from_secs(15)),
            queue_capacity: 1024,
            subscription_buffer: 1024,
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field whose value cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &'static str, value: String, problem: &'static str| {
            Err(ConfigError { field, value, problem })
        };
        if self.endpoints.is_empty() {
            return err("endpoints", "[]".into(), "at least one endpoint is needed");
        }
        if let Some(bad) = self.endpoints.iter().find(|e| crate::endpoint::parse(e).is_none()) {
            return err(
                "endpoints",
                bad.clone(),
                "an endpoint is `host:port` or `tls://host:port`",
            );
        }
        for (field, value) in [
            ("connect_timeout", self.connect_timeout),
            ("default_timeout", self.default_timeout),
            ("backoff.initial", self.backoff.initial),
            ("backoff.max", self.backoff.max),
        ] {
            if value.is_zero() {
                return err(field, format!("{value:?}"), "must be more than zero");
            }
        }
        if self.default_timeout.as_millis() > u128::from(u32::MAX) {
            let value = format!("{:?}", self.default_timeout);
            return err("default_timeout", value, "the protocol's timeouts stop at u32::MAX ms");
        }
        if self.max_frame_size < MIN_MAX_FRAME_SIZE {
            let value = self.max_frame_size.to_string();
            return err("max_frame_size", value, "the protocol's minimum is 65536");
        }
        if self.name.len() > 255 {
            return err("name", self.name.clone(), "at most 255 bytes");
        }
        if let Some(token) = &self.token
            && token.len() > usize::from(u16::MAX)
        {
            return err("token", format!("{} bytes", token.len()), "at most 65535 bytes");
        }
        if self.backoff.max < self.backoff.initial {
            let value = format!("{:?}", self.backoff.max);
            return err("backoff.max", value, "must not be less than `backoff.initial`");
        }
        if !(self.backoff.factor.is_finite() && self.backoff.factor >= 1.0) {
            let value = self.backoff.factor.to_string();
            return err("backoff.factor", value, "must be a finite number of at least 1");
        }
        if self.keepalive_interval.is_some_and(|i| i.is_zero()) {
            return err("keepalive_interval", "0ns".into(), "use `None` to turn pings off");
        }
        if self.queue_capacity == 0 {
            return err("queue_capacity", "0".into(), "must be at least 1");
        }
        if self.subscription_buffer == 0 {
            return err("subscription_buffer", "0".into(), "must be at least 1");
        }
        Ok(())
    }
}

/// A configuration value that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The field, as named in [`ClientConfig`] (`backoff.max`).
    pub field: &'static str,
    /// The offending value, as text.
    pub value: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}` value `{}`: {}", self.field, self.value, self.problem)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_as_documented() {
        let config = ClientConfig::new(["127.0.0.1:7000", "gw.example:7000"]);
        config.validate().unwrap();
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.default_timeout, Duration::from_secs(10));
        assert_eq!(config.max_frame_size, 16 * 1024 * 1024);
        assert_eq!(config.backoff.initial, Duration::from_millis(50));
        assert_eq!(config.backoff.max, Duration::from_secs(5));
        assert_eq!(config.backoff.factor, 2.0);
        assert_eq!(config.keepalive_interval, Some(Duration::from_secs(15)));
        assert_eq!(config.subscription_buffer, 1024);
        assert_eq!(config.token_provider, None);
        assert!(config.name.starts_with("gateway-client/"));
    }

    #[test]
    fn errors_name_the_field_and_the_value() {
        let check = |edit: fn(&mut ClientConfig), expected: &str| {
            let mut config = ClientConfig::new(["localhost:7000"]);
            edit(&mut config);
            assert_eq!(config.validate().unwrap_err().to_string(), expected);
        };
        check(
            |c| c.endpoints.clear(),
            "invalid `endpoints` value `[]`: at least one endpoint is needed",
        );
        check(
            |c| c.endpoints.push("localhost".into()),
            "invalid `endpoints` value `localhost`: an endpoint is `host:port` or `tls://host:port`",
        );
        check(
            |c| c.max_frame_size = 1000,
            "invalid `max_frame_size` value `1000`: the protocol's minimum is 65536",
        );
        check(
            |c| c.backoff.max = Duration::from_millis(10),
            "invalid `backoff.max` value `10ms`: must not be less than `backoff.initial`",
        );
        check(
            |c| c.backoff.factor = f64::NAN,
            "invalid `backoff.factor` value `NaN`: must be a finite number of at least 1",
        );
        check(
            |c| c.connect_timeout = Duration::ZERO,
            "invalid `connect_timeout` value `0ns`: must be more than zero",
        );
        check(|c| c.queue_capacity = 0, "invalid `queue_capacity` value `0`: must be at least 1");
        check(
            |c| c.subscription_buffer = 0,
            "invalid `subscription_buffer` value `0`: must be at least 1",
        );
    }
}
