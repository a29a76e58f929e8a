//! [`ConnectError`]: why [`Client::connect`](crate::Client::connect) found no gateway.

use std::fmt;

use gateway_protocol::Goaway;

use crate::config::ConfigError;
use crate::handshake::describe_goaway;

/// Why [`Client::connect`](crate::Client::connect) returned no client.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// No endpoint completed the handshake: each endpoint with what went wrong there.
    Unreachable(Vec<(String, String)>),
    /// A gateway refused the client with a GOAWAY that advises against reconnecting
    /// (`unauthenticated`, `unsupported_version`, `policy`...).
    Refused {
        /// The gateway that refused.
        endpoint: String,
        /// Its GOAWAY.
        goaway: Goaway,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Config(e) => e.fmt(f),
            ConnectError::Unreachable(failures) => {
                f.write_str("no gateway reachable")?;
                for (i, (endpoint, error)) in failures.iter().enumerate() {
                    let sep = if i == 0 { ": " } else { "; " };
                    write!(f, "{sep}`{endpoint}`: {error}")?;
                }
                Ok(())
            }
            ConnectError::Refused { endpoint, goaway } => {
                write!(f, "gateway `{endpoint}` refused the client: {}", describe_goaway(goaway))
            }
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Config(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConfigError> for ConnectError {
    fn from(e: ConfigError) -> ConnectError {
        ConnectError::Config(e)
    }
}
