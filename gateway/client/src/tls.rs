//! `tls://host:port` endpoints: the protocol inside TLS, the gateway's certificate checked
//! against [`ClientConfig::tls_ca`] (or the system's CA certificates) for the endpoint's host
//! name or IP address.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::config::{ClientConfig, ConfigError};

/// Where an endpoint is and whether it is TLS.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Endpoint<'a> {
    /// `host:port`, as `TcpStream::connect` takes it.
    pub(crate) address: &'a str,
    /// The host alone (an IPv6 address without its brackets), for the certificate check.
    pub(crate) host: &'a str,
    pub(crate) tls: bool,
}

/// `host:port`, `tcp://host:port` or `tls://host:port`; `None` for anything else.
pub(crate) fn parse(endpoint: &str) -> Option<Endpoint<'_>> {
    let (tls, address) = match endpoint.split_once("://") {
        Some(("tls", rest)) => (true, rest),
        Some(("tcp", rest)) => (false, rest),
        Some(_) => return None,
        None => (false, endpoint),
    };
    let (host, port) = address.rsplit_once(':')?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return None;
    }
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some(Endpoint { address, host, tls })
}

/// The connector for the `tls://` endpoints of `config`; `None` when it has none.
///
/// # Errors
///
/// `tls_ca` holds no PEM certificate, or (without it) the system's cannot be read.
pub(crate) fn connector(config: &ClientConfig) -> Result<Option<TlsConnector>, ConfigError> {
    if !config.endpoints.iter().any(|e| parse(e).is_some_and(|e| e.tls)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_their_transport() {
        let plain = Endpoint { address: "gw:7400", host: "gw", tls: false };
        assert_eq!(parse("gw:7400"), Some(plain));
        assert_eq!(parse("tcp://gw:7400").map(|e| e.tls), Some(false));
        assert_eq!(
            parse("tls://[::1]:7400"),
            Some(Endpoint { address: "[::1]:7400", host: "::1", tls: true })
        );
        for bad in ["gw", "tls://gw", "ws://gw:7400", "tls://:7400", "gw:99999"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
