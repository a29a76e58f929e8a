//! Enrolment: a new device gets a random id and key, stored by the tracker and handed to the
//! device as the enrolment URI of `docs/tracker-devices.md` ("Keys and device ids"), usually
//! through a QR code.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ingest::now_ms;
use crate::packet::DeviceKey;
use crate::store::{Store, StoreError};

/// The URI scheme and version prefix.
pub const URI_PREFIX: &str = "rpcgen-tracker:v1?";

/// What a device needs to report: its id, its key, where to send, and its name.
#[derive(Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub id: u64,
    pub key: DeviceKey,
    /// The ingest's `host:port`.
    pub ingest: String,
    pub name: String,
}

impl std::fmt::Debug for Enrolment {
    /// Leaves the key out, so it does not end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("id", &self.id)
            .field("ingest", &self.ingest)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why enrolment failed, or an enrolment URI could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot make a QR code of the enrolment URI: {0}")]
    Qr(#[from] qrcode::types::QrError),
    #[error("not an enrolment URI: {0}")]
    BadUri(String),
}

/// Creates a device named `name` in `store`, with a random id (never 0, not already taken) and a
/// random key, both from the operating system's generator, reporting to `ingest` (`host:port`).
///
/// # Errors
/// The generator or the store fails.
pub fn enrol(store: &Store, name: &str, ingest: &str) -> Result<Enrolment, EnrolError> {
    enrol_sharded(store, name, &[ingest.to_owned()])
}

/// [`enrol`], for an ingest split in shards (`docs/tracker.md`, "Ingest processes on NATS"):
/// `ingests` has each shard's address, in shard order, and the device reports to its shard's,
/// `ingests[id % ingests.len()]`.
///
/// # Errors
/// The generator or the store fails.
///
/// # Panics
/// If `ingests` is empty.
pub fn enrol_sharded(
    store: &Store,
    name: &str,
    ingests: &[String],
) -> Result<Enrolment, EnrolError> {
    assert!(!ingests.is_empty(), "a device needs an ingest address");
    let shards = u32::try_from(ingests.len()).unwrap_or(u32::MAX);
    let mut key = [0; 32];
    getrandom::fill(&mut key).map_err(EnrolError::Random)?;
    loop {
        let id = getrandom::u64().map_err(EnrolError::Random)?;
        if id == 0 {
            continue;
        }
        match store.add_device(id, name, &key, now_ms()) {
            Ok(()) => {
                let ingest = ingests[crate::ingest::Shard::of(id, shards) as usize].clone();
                return Ok(Enrolment { id, key, ingest, name: name.into() });
            }
            Err(StoreError::DuplicateDevice(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl Enrolment {
    /// The enrolment URI:
    /// `rpcgen-tracker:v1?id=<decimal>&key=<base64url, no padding>&ingest=<host:port>&name=<percent-encoded>`.
    pub fn uri(&self) -> String {
        format!(
            "{URI_PREFIX}id={}&key={}&ingest={}&name={}",
            self.id,
            URL_SAFE_NO_PAD.encode(self.key),
            percent_encode(&self.ingest, b":[]"),
            percent_encode(&self.name, b"")
        )
    }

    /// Reads an enrolment URI (the inverse of [`Enrolment::uri`]).
    ///
    /// # Errors
    /// [`EnrolError::BadUri`] naming what is wrong.
    pub fn parse_uri(uri: &str) -> Result<Enrolment, EnrolError> {
        let bad = |what: &str| EnrolError::BadUri(what.to_owned());
        let query = uri
            .strip_prefix(URI_PREFIX)
            .ok_or_else(|| bad("it does not start with `rpcgen-tracker:v1?`"))?;
        let (mut id, mut key, mut ingest, mut name) = (None, None, None, None);
        for pair in query.split('&') {
            let (field, value) =
                pair.split_once('=').ok_or_else(|| bad("a parameter has no `=`"))?;
            match field {
                "id" => id = value.parse::<u64>().ok().filter(|&id| id != 0),
                "key" => {
                    key = URL_SAFE_NO_PAD.decode(value).ok().and_then(|k| k.try_into().ok());
                }
                "ingest" => ingest = percent_decode(value),
                "name" => name = percent_decode(value),
                _ => {}
            }
        }
        Ok(Enrolment {
            id: id.ok_or_else(|| bad("no valid `id` (a decimal number other than 0)"))?,
            key: key.ok_or_else(|| bad("no valid `key` (32 bytes, base64url)"))?,
            ingest: ingest.ok_or_else(|| bad("no valid `ingest`"))?,
            name: name.ok_or_else(|| bad("no valid `name`"))?,
        })
    }

    /// A QR code of the URI, as an SVG document.
    ///
    /// # Errors
    /// The URI is too long for a QR code (a name of a few thousand bytes).
    pub fn qr_svg(&self) -> Result<String, EnrolError> {
        let code = qrcode::QrCode::new(self.uri().as_bytes())?;
        Ok(code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(256, 256).build())
    }
}

/// Percent-encodes every byte but RFC 3986's unreserved characters and those of `keep` (the
/// ingest's `host:port` keeps its colon, and an IPv6 host its brackets, as the document shows).
fn percent_encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` if one is malformed or the result is not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sharded_ingest_enrols_each_device_to_its_shards_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db")).unwrap();
        let ingests: Vec<String> = (0..3).map(|i| format!("10.0.0.{i}:7403")).collect();
        let mut shards_seen = [false; 3];
        for n in 0..40 {
            let device = enrol_sharded(&store, &format!("d{n}"), &ingests).unwrap();
            let shard = (device.id % 3) as usize;
            assert_eq!(device.ingest, ingests[shard], "device {}", device.id);
            shards_seen[shard] = true;
        }
        assert_eq!(shards_seen, [true; 3], "40 random ids cover 3 shards");
    }

    #[test]
    fn enrolment_stores_a_random_device_and_its_uri_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db")).unwrap();
        let a = enrol(&store, "Ana's bike / 2", "127.0.0.1:7403").unwrap();
        let b = enrol(&store, "van", "127.0.0.1:7403").unwrap();
        assert_ne!(a.id, 0);
        assert_ne!(a.id, b.id);
        assert_ne!(a.key, b.key);
        assert_ne!(a.key, [0; 32]);
        let stored = store.device(a.id).unwrap().unwrap();
        assert_eq!(
            (stored.key, stored.name.as_str(), stored.enabled),
            (a.key, "Ana's bike / 2", true)
        );

        let uri = a.uri();
        let prefix = format!("rpcgen-tracker:v1?id={}&key=", a.id);
        assert!(uri.starts_with(&prefix), "{uri}");
        assert!(uri.ends_with("&ingest=127.0.0.1:7403&name=Ana%27s%20bike%20%2F%202"), "{uri}");
        let key = &uri[prefix.len()..prefix.len() + 43];
        assert_eq!(
            URL_SAFE_NO_PAD.decode(key).unwrap(),
            a.key,
            "43 base64url characters, no padding"
        );
        assert_eq!(Enrolment::parse_uri(&uri).unwrap(), a);
        assert!(!format!("{a:?}").contains("key"), "the key stays out of Debug");
    }

    #[test]
    fn a_fixed_uri_and_bad_ones() {
        let e = Enrolment {
            id: 42,
            key: [0xfb; 32],
            ingest: "tracker.local:7403".into(),
            name: "é x".into(),
        };
        assert_eq!(
            e.uri(),
            "rpcgen-tracker:v1?id=42&key=-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_s&ingest=tracker.local:7403&name=%C3%A9%20x"
        );
        for bad in [
            "http://x",
            "rpcgen-tracker:v1?id=0&key=AA&ingest=a&name=b",
            "rpcgen-tracker:v1?id=1&key=AA&ingest=a&name=b",
            "rpcgen-tracker:v1?id=1&ingest=a&name=b",
            "rpcgen-tracker:v1?id=1&key=-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_s&ingest=a&name=%ZZ",
        ] {
            assert!(matches!(Enrolment::parse_uri(bad), Err(EnrolError::BadUri(_))), "{bad}");
        }
    }

    #[test]
    fn the_qr_code_is_an_svg() {
        let e =
            Enrolment { id: 7, key: [1; 32], ingest: "127.0.0.1:7403".into(), name: "bike".into() };
        let svg = e.qr_svg().unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg") && svg.contains("</svg>"),
            "{svg}"
        );
        assert!(svg.contains("<path"), "modules are drawn");
    }
}
