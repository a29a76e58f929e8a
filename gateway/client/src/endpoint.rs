//! Endpoints as [`ClientConfig::endpoints`](crate::ClientConfig::endpoints) names them:
//! `host:port` (or `tcp://host:port`) and `tls://host:port`.

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
