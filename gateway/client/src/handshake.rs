//! Opening a connection: a token, TCP connect, HELLO, and the server's WELCOME
//! (`docs/protocol.md`, "Handshake"), all within the configured connect timeout.

use std::fmt;
use std::io;

use bytes::{Bytes, BytesMut};
use gateway_protocol::{
    CAPABILITY_HISTORY, DecodeError, Decoded, EncodeError, Frame, Goaway, GoawayReason, Hello,
    MIN_MAX_FRAME_SIZE, VERSION, Welcome, decode,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::ClientConfig;
use crate::credentials::Credentials;

/// The connection under the protocol.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A connection whose handshake succeeded.
#[derive(Debug)]
pub(crate) struct Established {
    pub(crate) stream: Stream,
    /// The connection's terms.
    pub(crate) welcome: Welcome,
    /// Bytes the server sent after WELCOME in the same read.
    pub(crate) read_buf: BytesMut,
}

/// Why one connection attempt failed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// TCP connect, or reading or writing during the handshake, failed.
    Io(io::Error),
    /// The TLS handshake failed (the gateway's certificate did not check out, typically).
    Tls(String),
    /// The attempt took longer than `connect_timeout`.
    TimedOut,
    /// The server closed the connection before WELCOME.
    Closed,
    /// The server broke the protocol.
    Protocol(String),
    /// The server refused the client with a GOAWAY.
    Refused(Goaway),
    /// The token provider gave no token.
    Token(String),
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Io(e) => write!(f, "{e}"),
            AttemptError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            AttemptError::TimedOut => f.write_str("no WELCOME within the connect timeout"),
            AttemptError::Closed => f.write_str("the server closed the connection before WELCOME"),
            AttemptError::Protocol(what) => write!(f, "protocol error: {what}"),
            AttemptError::Refused(goaway) => write!(f, "refused: {}", describe_goaway(goaway)),
            AttemptError::Token(e) => write!(f, "the token provider failed: {e}"),
        }
    }
}

/// `reason: message`, or just the reason when the message is empty.
pub(crate) fn describe_goaway(goaway: &Goaway) -> String {
    if goaway.message.is_empty() {
        goaway.reason.to_string()
    } else {
        format!("{}: {}", goaway.reason, goaway.message)
    }
}

/// Connects to `endpoint` and completes the handshake, presenting a token from `credentials`
/// (asked for first, so that a slow provider does not hold a connection open).
pub(crate) async fn connect(
    endpoint: &str,
    config: &ClientConfig,
    credentials: &Credentials,
    tls: Option<&TlsConnector>,
) -> Result<Established, AttemptError> {
    let attempt = async {
        let token = credentials.for_hello().await.map_err(AttemptError::Token)?;
        let endpoint = crate::endpoint::parse(endpoint)
            .ok_or_else(|| AttemptError::Protocol(format!("`{endpoint}` is not an endpoint")))?;
        let mut tcp = TcpStream::connect(endpoint.address).await.map_err(AttemptError::Io)?;
        // Frames are small and latency matters more than packet count; writes are coalesced by
        // the connection task instead.
        tcp.set_nodelay(true).map_err(AttemptError::Io)?;
        match (endpoint.tls, tls) {
            (false, _) => {
                let (welcome, read_buf) = handshake(&mut tcp, config, token).await?;
                Ok(Established { stream: Stream::Plain(tcp), welcome, read_buf })
            }
            (true, Some(connector)) => {
                let name = crate::tls::server_name(endpoint.host).map_err(AttemptError::Tls)?;
                let mut tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| AttemptError::Tls(e.to_string()))?;
                let (welcome, read_buf) = handshake(&mut tls, config, token).await?;
                Ok(Established { stream: Stream::Tls(Box::new(tls)), welcome, read_buf })
            }
            (true, None) => Err(AttemptError::Tls("no TLS connector was set up".into())),
        }
    };
    tokio::time::timeout(config.connect_timeout, attempt)
        .await
        .unwrap_or(Err(AttemptError::TimedOut))
}

/// HELLO and WELCOME: the connection's terms, and the bytes the server sent after WELCOME.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    config: &ClientConfig,
    token: Bytes,
) -> Result<(Welcome, BytesMut), AttemptError> {
    let hello = Frame::Hello(Hello {
        capabilities: CAPABILITY_HISTORY,
        version: VERSION,
        max_frame_size: config.max_frame_size,
        client_name: config.name.clone(),
        token,
    });
    let mut out = BytesMut::new();
    // The server's limit is not known yet: the protocol's minimum applies.
    hello
        .encode(&mut out, MIN_MAX_FRAME_SIZE)
        .map_err(|e: EncodeError| AttemptError::Protocol(format!("cannot send HELLO: {e}")))?;
    stream.write_all(&out).await.map_err(AttemptError::Io)?;
    stream.flush().await.map_err(AttemptError::Io)?;

    let mut read_buf = BytesMut::with_capacity(4096);
    let welcome = loop {
        match decode(&mut read_buf, config.max_frame_size).map_err(invalid)? {
            Decoded::Frame(Frame::Welcome(welcome)) => break welcome,
            Decoded::Frame(Frame::Goaway(goaway)) => return Err(AttemptError::Refused(goaway)),
            Decoded::Frame(other) => {
                let what = format!("{} before WELCOME", other.frame_type().name());
                return Err(fail(stream, GoawayReason::PROTOCOL_ERROR, what).await);
            }
            Decoded::Skipped { .. } => continue,
            Decoded::Incomplete { needed } => {
                read_buf.reserve(needed);
                if stream.read_buf(&mut read_buf).await.map_err(AttemptError::Io)? == 0 {
                    return Err(AttemptError::Closed);
                }
            }
        }
    };
    if welcome.version != VERSION {
        let what =
            format!("the server chose version {}, this client speaks {VERSION}", welcome.version);
        return Err(fail(stream, GoawayReason::UNSUPPORTED_VERSION, what).await);
    }
    if welcome.max_frame_size < MIN_MAX_FRAME_SIZE || welcome.max_in_flight == 0 {
        let what = format!(
            "WELCOME states max_frame_size {} and max_in_flight {}",
            welcome.max_frame_size, welcome.max_in_flight
        );
        return Err(fail(stream, GoawayReason::PROTOCOL_ERROR, what).await);
    }
    Ok((welcome, read_buf))
}

fn invalid(e: DecodeError) -> AttemptError {
    AttemptError::Protocol(e.to_string())
}

/// Tells the server why the client gives up on the connection, as the protocol asks, and
/// returns the error for the caller.
async fn fail<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reason: GoawayReason,
    what: String,
) -> AttemptError {
    let mut out = BytesMut::new();
    if Frame::Goaway(Goaway::new(reason, what.clone())).encode(&mut out, MIN_MAX_FRAME_SIZE).is_ok()
    {
        // The connection is abandoned whether or not the GOAWAY gets through.
        let _ = stream.write_all(&out).await;
        let _ = stream.flush().await;
    }
    AttemptError::Protocol(what)
}
