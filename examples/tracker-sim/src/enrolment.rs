//! The enrolment URI a device scans (`docs/tracker-devices.md`, "Keys and device ids"):
//!
//! ```text
//! rpcgen-tracker:v1?id=<decimal>&key=<base64url, no padding>&ingest=<host:port>&name=<percent-encoded>
//! ```

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const SCHEME: &str = "rpcgen-tracker:";

/// What enrolment gave a device.
#[derive(Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// Never 0.
    pub device_id: u64,
    pub key: [u8; 32],
    /// Where reports go, `host:port` (resolved when the simulator starts).
    pub ingest: String,
    /// The device's display name; empty if the URI has none.
    pub name: String,
}

impl fmt::Debug for Enrolment {
    // Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolment")
            .field("device_id", &self.device_id)
            .field("ingest", &self.ingest)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why an enrolment URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrolmentError {
    #[error("not an enrolment URI: it must start with `rpcgen-tracker:`")]
    Scheme,
    #[error("unsupported enrolment version {0:?} (this simulator speaks `v1`)")]
    Version(String),
    #[error("the enrolment URI has no `{0}`")]
    Missing(&'static str),
    #[error("`{0}` appears twice in the enrolment URI")]
    Duplicate(String),
    #[error("parameter {0:?} is not name=value")]
    Parameter(String),
    #[error("id {0:?} is not a device id (a decimal number from 1 to 18446744073709551615)")]
    Id(String),
    #[error("key {0:?} is not 32 bytes in base64url without padding")]
    Key(String),
    #[error("ingest {0:?} is not host:port")]
    Ingest(String),
    #[error("{0:?} is not valid percent-encoded UTF-8")]
    Encoding(String),
}

impl std::str::FromStr for Enrolment {
    type Err = EnrolmentError;

    /// Parses an enrolment URI. Parameters other than the four are ignored (later versions of
    /// the tracker may add some).
    fn from_str(uri: &str) -> Result<Self, EnrolmentError> {
        let rest = uri.trim().strip_prefix(SCHEME).ok_or(EnrolmentError::Scheme)?;
        let (version, query) = rest.split_once('?').unwrap_or((rest, ""));
        if version != "v1" {
            return Err(EnrolmentError::Version(version.to_string()));
        }
        let (mut id, mut key, mut ingest, mut name) = (None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (field, raw) =
                pair.split_once('=').ok_or_else(|| EnrolmentError::Parameter(pair.to_string()))?;
            let slot = match field {
                "id" => &mut id,
                "key" => &mut key,
                "ingest" => &mut ingest,
                "name" => &mut name,
                _ => continue,
            };
            if slot.replace(percent_decode(raw)?).is_some() {
                return Err(EnrolmentError::Duplicate(field.to_string()));
            }
        }
        let id = id.ok_or(EnrolmentError::Missing("id"))?;
        let device_id = match id.parse::<u64>() {
            Ok(n) if n != 0 && id.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(EnrolmentError::Id(id)),
        };
        let key_text = key.ok_or(EnrolmentError::Missing("key"))?;
        let key = URL_SAFE_NO_PAD
            .decode(&key_text)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or(EnrolmentError::Key(key_text))?;
        let ingest = ingest.ok_or(EnrolmentError::Missing("ingest"))?;
        match ingest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {
            }
            _ => return Err(EnrolmentError::Ingest(ingest)),
        }
        Ok(Enrolment { device_id, key, ingest, name: name.unwrap_or_default() })
    }
}

impl fmt::Display for Enrolment {
    /// The URI, as a QR code would carry it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}v1?id={}&key={}&ingest={}&name={}",
            self.device_id,
            URL_SAFE_NO_PAD.encode(self.key),
            percent_encode(&self.ingest),
            percent_encode(&self.name)
        )
    }
}

/// `%XX` escapes (and `+` for a space, as HTML forms write it) to UTF-8 text.
fn percent_decode(raw: &str) -> Result<String, EnrolmentError> {
    let bad = || EnrolmentError::Encoding(raw.to_string());
    let mut bytes = Vec::with_capacity(raw.len());
    let mut input = raw.bytes();
    while let Some(b) = input.next() {
        bytes.push(match b {
            b'%' => {
                let hex = [input.next().ok_or_else(bad)?, input.next().ok_or_else(bad)?];
                let hex = std::str::from_utf8(&hex).map_err(|_| bad())?;
                u8::from_str_radix(hex, 16).map_err(|_| bad())?
            }
            b'+' => b' ',
            b => b,
        });
    }
    String::from_utf8(bytes).map_err(|_| bad())
}

/// Escapes everything but RFC 3986's unreserved characters (and `:` in `host:port`).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    #[test]
    fn parses_the_documented_form() {
        let uri =
            format!("rpcgen-tracker:v1?id=42&key={KEY}&ingest=127.0.0.1:7403&name=Van%207+%C3%A9");
        let e: Enrolment = uri.parse().unwrap();
        assert_eq!(e.device_id, 42);
        assert_eq!(e.key, std::array::from_fn::<u8, 32, _>(|i| i as u8));
        assert_eq!(e.ingest, "127.0.0.1:7403");
        assert_eq!(e.name, "Van 7 é");
        assert_eq!(e.to_string().parse::<Enrolment>().unwrap(), e, "Display round-trips");
        assert!(!format!("{e:?}").contains(KEY), "Debug hides the key");
        // Order does not matter, unknown parameters are ignored, the name may be absent.
        let e: Enrolment =
            format!("rpcgen-tracker:v1?ingest=[::1]:9&future=1&key={KEY}&id=7").parse().unwrap();
        assert_eq!((e.device_id, e.ingest.as_str(), e.name.as_str()), (7, "[::1]:9", ""));
    }

    #[test]
    fn every_error_names_what_is_wrong() {
        use EnrolmentError::*;
        let cases: Vec<(String, EnrolmentError)> = vec![
            ("https://x".into(), Scheme),
            (format!("rpcgen-tracker:v2?id=1&key={KEY}&ingest=h:1"), Version("v2".into())),
            (format!("rpcgen-tracker:v1?key={KEY}&ingest=h:1"), Missing("id")),
            ("rpcgen-tracker:v1?id=1&ingest=h:1".into(), Missing("key")),
            (format!("rpcgen-tracker:v1?id=1&key={KEY}"), Missing("ingest")),
            (format!("rpcgen-tracker:v1?id=1&id=2&key={KEY}&ingest=h:1"), Duplicate("id".into())),
            (format!("rpcgen-tracker:v1?id&key={KEY}&ingest=h:1"), Parameter("id".into())),
            (format!("rpcgen-tracker:v1?id=0&key={KEY}&ingest=h:1"), Id("0".into())),
            (format!("rpcgen-tracker:v1?id=+5&key={KEY}&ingest=h:1"), Id(" 5".into())),
            (
                format!("rpcgen-tracker:v1?id=18446744073709551616&key={KEY}&ingest=h:1"),
                Id("18446744073709551616".into()),
            ),
            ("rpcgen-tracker:v1?id=1&key=AAEC&ingest=h:1".into(), Key("AAEC".into())),
            (format!("rpcgen-tracker:v1?id=1&key={KEY}=&ingest=h:1"), Key(format!("{KEY}="))),
            (format!("rpcgen-tracker:v1?id=1&key={KEY}&ingest=host"), Ingest("host".into())),
            (format!("rpcgen-tracker:v1?id=1&key={KEY}&ingest=h:0"), Ingest("h:0".into())),
            (
                format!("rpcgen-tracker:v1?id=1&key={KEY}&ingest=h:1&name=%E9"),
                Encoding("%E9".into()),
            ),
            (format!("rpcgen-tracker:v1?id=1&key={KEY}&ingest=h:1&name=%4"), Encoding("%4".into())),
        ];
        for (uri, expected) in cases {
            assert_eq!(uri.parse::<Enrolment>(), Err(expected), "{uri}");
        }
        assert!(Missing("id").to_string().contains("`id`"));
    }
}
