//! `tls://host:port` endpoints: the protocol inside TLS, the gateway's certificate checked
//! against [`ClientConfig::tls_ca`] (or the system's CA certificates) for the endpoint's host
//! name or IP address.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::config::{ClientConfig, ConfigError};
use crate::endpoint;

/// The connector for the `tls://` endpoints of `config`; `None` when it has none.
///
/// # Errors
///
/// `tls_ca` holds no PEM certificate, or (without it) the system's cannot be read.
pub(crate) fn connector(config: &ClientConfig) -> Result<Option<TlsConnector>, ConfigError> {
    if !config.endpoints.iter().any(|e| endpoint::parse(e).is_some_and(|e| e.tls)) {
        return Ok(None);
    }
    let bad =
        |value: String, problem: &'static str| ConfigError { field: "tls_ca", value, problem };
    let mut roots = rustls::RootCertStore::empty();
    match &config.tls_ca {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string(), "not PEM certificates"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(bad(format!("{} bytes", pem.len()), "holds no usable PEM certificate"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let value = "none (the system's)".to_owned();
                return Err(bad(value, "no CA certificate found on this system; give tls_ca"));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| bad(String::new(), "no TLS version in common with the crypto provider"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(TlsConnector::from(Arc::new(tls))))
}

/// The name the gateway's certificate must be for.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("`{host}` is neither a DNS name nor an IP address: {e}"))
}
