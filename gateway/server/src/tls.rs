//! TLS on the client listeners (`tls_cert`, `tls_key`): the TCP listener then speaks the
//! protocol inside TLS (`tls://` for clients) and the WebSocket listener is `wss://`.
//!
//! - **Certificates** are a PEM chain (the server's certificate first) and a PEM private key
//!   (PKCS#8, PKCS#1 or SEC1), checked to match when loaded.
//! - **Reloading.** The files are read again every [`POLL`] and on SIGHUP; when either changed
//!   and the pair loads, new handshakes use it at once. Connections already open keep the
//!   session they have. A pair that does not load (a key written before its certificate, a
//!   truncated file) leaves the previous one in use and is logged, once per content.
//! - **The handshake** falls under `handshake_timeout`, with the HELLO after it; a failed one is
//!   counted (`gateway_tls_handshakes_failed_total`) and logged at debug level.
//!
//! [`Stream`] is a connection either way, so that sessions do not care.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the certificate files are read for changes.
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// Why a certificate and key cannot be used; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The listeners' TLS: the acceptor and the certificate it presents, which [`Tls::reload`]
/// replaces.
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
    cert: PathBuf,
    key: PathBuf,
}

/// The certificate new handshakes get, and the file contents it came from.
#[derive(Debug)]
struct Current {
    key: RwLock<Arc<CertifiedKey>>,
    /// The files' contents when last read: the loaded pair's, or one that failed (so that it is
    /// logged once).
    seen: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("cert", &self.cert).field("key", &self.key).finish()
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

impl Tls {
    /// Loads the PEM certificate chain at `cert` and the private key at `key`.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or holds no certificate or key, or a key that does not match
    /// the certificate.
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert_pem, key_pem) = read_pair(cert, key)?;
        let certified = certified_key(&provider, cert, &cert_pem, key, &key_pem)?;
        let current = Arc::new(Current {
            key: RwLock::new(Arc::new(certified)),
            seen: Mutex::new((cert_pem, key_pem)),
        });
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The TLS handshake on an accepted connection.
    pub(crate) async fn accept(&self, stream: TcpStream) -> io::Result<Stream> {
        let tls = self.acceptor.accept(stream).await?;
        Ok(Stream::Tls(Box::new(tls)))
    }

    /// Reads the files and, if they changed (or `force`), loads them for new handshakes.
    /// `Ok(true)`: a new pair is in use.
    ///
    /// # Errors
    ///
    /// The new pair's problem; the previous one stays in use.
    pub(crate) fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let (cert_pem, key_pem) = read_pair(&self.cert, &self.key)?;
        let mut seen = self.current.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if !force && seen.0 == cert_pem && seen.1 == key_pem {
            return Ok(false);
        }
        seen.0.clone_from(&cert_pem);
        seen.1.clone_from(&key_pem);
        drop(seen);
        let provider = rustls::crypto::ring::default_provider();
        let certified = certified_key(&provider, &self.cert, &cert_pem, &self.key, &key_pem)?;
        *self.current.key.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
        Ok(true)
    }

    /// Reloads when the files change (read every [`POLL`]) and on SIGHUP, until `stop`. SIGHUP
    /// is listened for from this call on (not from the future's first poll), so that a SIGHUP
    /// sent once the gateway says it listens cannot meet the default action, which ends the
    /// process.
    pub(crate) fn watch(
        self: Arc<Tls>,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send {
        #[cfg(unix)]
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(e) => {
                warn!(cause = %e, "cannot listen for SIGHUP; certificates reload on change only");
                None
            }
        };
        async move {
            let mut poll = tokio::time::interval(POLL);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // A file that stays unreadable is logged once, not every second.
            let mut last_failure: Option<String> = None;
            loop {
                #[cfg(unix)]
                let hup = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hup = std::future::pending::<Option<()>>();
                let force = tokio::select! {
                    () = stop.cancelled() => return,
                    _ = poll.tick() => false,
                    _ = hup => true,
                };
                match self.reload(force) {
                    Ok(true) => {
                        last_failure = None;
                        info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let failure = e.to_string();
                        if force || last_failure.as_ref() != Some(&failure) {
                            warn!(cause = %failure, "TLS certificate not reloaded; the previous one stays in use");
                        }
                        last_failure = Some(failure);
                    }
                }
            }
        }
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |path: &Path, key: &str| {
        std::fs::read(path)
            .map_err(|e| TlsError(format!("cannot read {key} `{}`: {e}", path.display())))
    };
    Ok((read(cert, "tls_cert")?, read(key, "tls_key")?))
}

fn certified_key(
    provider: &CryptoProvider,
    cert: &Path,
    cert_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("tls_cert `{}` is not PEM: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "tls_cert `{}` holds no certificate (a `-----BEGIN CERTIFICATE-----` block)",
            cert.display()
        )));
    }
    let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        TlsError(format!("tls_key `{}` holds no usable private key: {e}", key.display()))
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        TlsError(format!(
            "tls_key `{}` does not go with tls_cert `{}`: {e}",
            key.display(),
            cert.display()
        ))
    })
}

/// The TLS handshake on an accepted connection when the gateway has TLS, under the handshake
/// `deadline` and given up when the gateway drains; `None` (counted, logged at debug level)
/// when it fails. The connection as it is without TLS.
pub(crate) async fn secure(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<&Tls>,
    draining: &CancellationToken,
    metrics: &crate::metrics::Metrics,
    deadline: tokio::time::Instant,
) -> Option<Stream> {
    let Some(tls) = tls else { return Some(Stream::Plain(stream)) };
    let handshake = tokio::select! {
        biased;
        _ = draining.cancelled() => return None,
        handshake = tokio::time::timeout_at(deadline, tls.accept(stream)) => handshake,
    };
    match handshake {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            metrics.tls_failed();
            tracing::debug!(%peer, cause = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics.tls_failed();
            tracing::debug!(%peer, "no TLS handshake within the handshake timeout");
            None
        }
    }
}

/// An accepted client connection, inside TLS or not.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// Asks the kernel not to wake a reader of this connection until `bytes` bytes are there to
    /// read (`SO_RCVLOWAT`), for a handshake that cannot go on before they are: a client
    /// trickling its first bytes then costs one wake-up instead of one a byte. A connection that
    /// closes or fails is still reported at once. Only set on a plain connection, whose bytes are
    /// the protocol's (through TLS they are records), and only on Linux; elsewhere it does
    /// nothing. `bytes` must never be more than the reader needs to make progress, or it would
    /// wait for bytes that are not coming: call with 1 to go back to waking for every byte.
    pub(crate) fn set_low_water(&self, bytes: usize) {
        #[cfg(target_os = "linux")]
        if let Stream::Plain(stream) = self {
            use std::os::fd::AsRawFd;
            let value = libc::c_int::try_from(bytes.max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: the descriptor is the stream's, open for as long as `stream` is borrowed;
            // the option's value is a `c_int` that lives through the call, its size passed
            // with it.
            let rc = unsafe {
                libc::setsockopt(
                    stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVLOWAT,
                    (&raw const value).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                let e = io::Error::last_os_error();
                tracing::debug!(cause = %e, bytes, "setting SO_RCVLOWAT failed");
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = bytes;
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
