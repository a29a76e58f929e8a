//! Why a load run failed. A run fails as a whole: a benchmark with a broken connection measures
//! nothing worth printing.

use std::io;
use std::net::SocketAddr;

use gateway_protocol::{DecodeError, EncodeError};

/// Why a load run stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration cannot run.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A connection could not be opened.
    #[error("cannot connect to `{addr}`: {source}")]
    Connect {
        /// The address connected to.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The gateway did not accept the connection on the run's terms.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// Reading or writing an open connection failed.
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection {0}")]
    Closed(String),
    /// The server sent something the protocol does not allow here.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A NATS client connection failed during the run, or refused a request before sending it
    /// (the NATS target).
    #[error("NATS: {0}")]
    Nats(String),
    /// A connection's task panicked or was cancelled.
    #[error("connection task failed: {0}")]
    Task(String),
}

impl LoadError {
    /// A frame that cannot be encoded: the payload is larger than the server accepts.
    pub(crate) fn encode(err: EncodeError) -> LoadError {
        LoadError::Config(err.to_string())
    }
}

impl From<DecodeError> for LoadError {
    fn from(err: DecodeError) -> LoadError {
        LoadError::Protocol(err.to_string())
    }
}
