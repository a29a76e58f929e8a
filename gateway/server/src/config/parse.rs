//! Parsers for the values of settings: text in, a typed value or the problem out. Each problem is
//! lower case and says what was expected; the caller adds the key, the value and where it came
//! from.

use std::net::SocketAddr;
use std::time::Duration;

pub(super) fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| "not a socket address like `127.0.0.1:7400`".to_owned())
}

/// `*`, or comma-separated `scheme://host[:port]` origins (as a browser's `Origin` header
/// writes them), normalized.
pub(super) fn parse_origins(s: &str) -> Result<Vec<String>, String> {
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
pub(super) fn normalize_origin(origin: &str) -> String {
    let origin = origin.trim().to_ascii_lowercase();
    for (scheme, port) in [("http://", ":80"), ("https://", ":443")] {
        if origin.starts_with(scheme) && origin.ends_with(port) {
            return origin[..origin.len() - port.len()].to_owned();
        }
    }
    origin
}

/// Comma-separated names, blanks dropped.
pub(super) fn parse_names(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|r| !r.is_empty()).map(String::from).collect()
}

pub(super) fn at_least(s: &str, min: usize) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| "not a whole number".to_owned())?;
    if n < min { Err(format!("must be at least {min}")) } else { Ok(n) }
}

pub(super) fn at_most(n: usize, max: usize) -> Result<usize, String> {
    if n > max { Err(format!("must be at most {max}")) } else { Ok(n) }
}

/// For the numbers that travel in a `u32` (WELCOME's limits, the rate limiter's).
pub(super) fn to_u32(n: usize) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("must be at most {}", u32::MAX))
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("not a duration like `5s` or `250ms` ({e})"))
}

pub(super) fn positive_duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).and_then(non_zero)
}

pub(super) fn non_zero(d: Duration) -> Result<Duration, String> {
    if d.is_zero() { Err("must be longer than zero".into()) } else { Ok(d) }
}

/// A duration that travels in a `u32` of milliseconds (WELCOME, REQUEST).
pub(super) fn wire_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.as_millis() > u128::from(u32::MAX) {
        Err(format!("must be at most {}ms", u32::MAX))
    } else {
        Ok(d)
    }
}

/// A name WELCOME carries, in at most 255 bytes.
pub(super) fn parse_server_id(s: &str) -> Result<String, String> {
    if s.len() > 255 { Err("must be at most 255 bytes".into()) } else { Ok(s.into()) }
}

/// A bearer token: what an HTTP header can carry after `Bearer ` (visible ASCII, no spaces).
pub(super) fn parse_token(s: &str) -> Result<String, String> {
    if s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s.to_owned())
    } else {
        Err("a token is visible ASCII characters without spaces".into())
    }
}

/// `nats://host:port` (or `host:port`, `tls://…`), comma-separated; empty for none.
pub(super) fn parse_nats_urls(s: &str) -> Result<Option<String>, String> {
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
