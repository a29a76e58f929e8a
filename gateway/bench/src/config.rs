//! What one load run does: where it connects, how hard it pushes, for how long.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// What the load generator talks to. The gateway and the raw echo get the same REQUEST frames
/// through the same client code, so that their figures compare; the NATS target sends the same
/// `Blob` straight to the echo service as a NATS request, the baseline of a gateway on NATS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A gateway: HELLO/WELCOME first, then REQUEST frames for `examples.echo.Echo.echo`,
    /// answered by RESPONSE or ERROR frames.
    Gateway,
    /// The raw echo (`raw-echo`): no handshake; every REQUEST frame comes back unchanged and
    /// counts as the reply to itself.
    Raw,
    /// The Echo service itself over NATS, no gateway: the address is a NATS server's, and each
    /// connection is an `async-nats` client sending requests on `rpc.examples.echo.Echo.echo`
    /// with the headers `docs/bus.md` specifies (method id, timeout, call id), exactly what a
    /// gateway on NATS sends for the same call.
    Nats,
}

impl Target {
    /// The name the command line and the JSON output use.
    pub const fn name(self) -> &'static str {
        match self {
            Target::Gateway => "gateway",
            Target::Raw => "raw",
            Target::Nats => "nats",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One load run, checked by [`LoadConfig::validate`] before it starts.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The server's address: the gateway's, the raw echo's, or the NATS server's.
    pub addr: SocketAddr,
    /// What the server is.
    pub target: Target,
    /// How many TCP connections to open (NATS client connections for [`Target::Nats`]).
    pub connections: usize,
    /// How many requests each connection keeps in flight: a new one leaves as soon as a reply
    /// comes back (a closed loop).
    pub depth: usize,
    /// The size of the `Blob`'s `data`, in bytes; the request's FlatBuffer is a little larger.
    pub payload: usize,
    /// How long to run before measuring: connections are set up, buffers and caches warm.
    pub warmup: Duration,
    /// How long to measure.
    pub duration: Duration,
    /// The `timeout_ms` of every request (the gateway fails calls not answered by then; on NATS,
    /// the `rpc-timeout-ms` header and the client's own wait).
    pub timeout_ms: u32,
    /// TLS to a gateway whose listeners have it (`tls_cert`); `None`: plain TCP.
    pub tls: Option<TlsTarget>,
}

/// How the load generator speaks TLS: a connector (its trusted CA) and the name the gateway's
/// certificate must be for.
#[derive(Clone)]
pub struct TlsTarget {
    pub connector: tokio_rustls::TlsConnector,
    pub name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget").field("name", &self.name).finish_non_exhaustive()
    }
}

impl TlsTarget {
    /// Trusts the PEM CA certificates in `ca` and expects certificates for `name`.
    ///
    /// # Errors
    ///
    /// `ca` holds no certificate, or `name` is neither a DNS name nor an IP address.
    pub fn new(ca: &[u8], name: &str) -> Result<TlsTarget, String> {
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca) {
            let cert = cert.map_err(|e| format!("the CA file is not PEM: {e}"))?;
            roots.add(cert).map_err(|e| format!("the CA file: {e}"))?;
        }
        if roots.is_empty() {
            return Err("the CA file holds no certificate".into());
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned())
            .map_err(|e| format!("`{name}`: {e}"))?;
        Ok(TlsTarget { connector: std::sync::Arc::new(config).into(), name })
    }
}

impl LoadConfig {
    /// The configuration with the defaults the command line documents: 1 connection, depth 1,
    /// 64 bytes, 1 s warm-up, 5 s measured, 5 s request timeout.
    pub fn new(addr: SocketAddr, target: Target) -> LoadConfig {
        LoadConfig {
            addr,
            target,
            connections: 1,
            depth: 1,
            payload: 64,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            timeout_ms: 5_000,
            tls: None,
        }
    }

    /// Checks the values a run cannot start with.
    ///
    /// # Errors
    ///
    /// A message naming the setting and its value.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("`connections` must be at least 1, not `0`".into());
        }
        // Request ids run from 1 to `depth` on each connection and are reused.
        if self.depth == 0 || u32::try_from(self.depth).is_err() {
            return Err(format!(
                "`depth` must be between 1 and {}, not `{}`",
                u32::MAX,
                self.depth
            ));
        }
        if self.duration.is_zero() {
            return Err("`duration` must be longer than 0".into());
        }
        Ok(())
    }
}
