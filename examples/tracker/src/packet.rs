//! Report and acknowledgement datagrams, as `docs/tracker-devices.md` specifies them (that
//! document is normative; this module follows it section by section).
//!
//! The ingest takes a datagram apart in the document's order, each step with its drop reason:
//! [`Header::parse`] (`bad_length`, `bad_version`), the device lookup (`unknown_device`, done by
//! the caller), [`open`] (`bad_tag`), the replay window (`replayed`, [`crate::replay`]) and
//! [`parse_report`] (`bad_report`). [`encode_ack`] answers an accepted report. The device side
//! ([`seal`], [`encode_report`], [`verify_ack`]) is here for tests and tools.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};

use crate::{DeviceReport, DeviceReportArgs, DeviceReportT};

/// The protocol version this module speaks.
pub const VERSION: u8 = 1;
/// Report flag: the device wants an acknowledgement.
pub const FLAG_ACK_WANTED: u8 = 0x01;
/// Acknowledgement flag.
pub const FLAG_ACK: u8 = 0x80;
/// Version, flags, device id, counter.
pub const HEADER_LEN: usize = 18;
/// The Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// The smallest datagram a tracker looks at: a header and a tag (an empty plaintext, which is
/// then a `bad_report`).
pub const MIN_LEN: usize = HEADER_LEN + TAG_LEN;
/// The largest datagram a tracker looks at.
pub const MAX_LEN: usize = 512;
/// An acknowledgement's length.
pub const ACK_LEN: usize = HEADER_LEN + TAG_LEN;

/// A device key: 32 bytes, known to the device and the tracker only.
pub type DeviceKey = [u8; 32];

/// Why a datagram was dropped: the reasons of `docs/tracker-devices.md`, "What the tracker
/// drops".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than [`MIN_LEN`] or longer than [`MAX_LEN`].
    BadLength,
    /// Not version 1, or undefined flag bits set.
    BadVersion,
    /// No enabled device has this id.
    UnknownDevice,
    /// The tag does not verify.
    BadTag,
    /// The counter was accepted before, or is below the replay window.
    Replayed,
    /// The plaintext is not a valid `DeviceReport`, or a value is out of range.
    BadReport,
}

impl DropReason {
    /// Every reason, in the document's order.
    pub const ALL: [DropReason; 6] = [
        DropReason::BadLength,
        DropReason::BadVersion,
        DropReason::UnknownDevice,
        DropReason::BadTag,
        DropReason::Replayed,
        DropReason::BadReport,
    ];

    /// The reason's name in the document and in metrics (`bad_length`...).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BadLength => "bad_length",
            DropReason::BadVersion => "bad_version",
            DropReason::UnknownDevice => "unknown_device",
            DropReason::BadTag => "bad_tag",
            DropReason::Replayed => "replayed",
            DropReason::BadReport => "bad_report",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A report's header (offsets 0–17), checked for length, version and flags only: nothing in
/// it is authenticated until [`open`] succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub flags: u8,
    pub device_id: u64,
    pub counter: u64,
}

impl Header {
    /// Reads a report's header, dropping what is too short, too long, of another version or
    /// with undefined flags.
    pub fn parse(datagram: &[u8]) -> Result<Header, DropReason> {
        if !(MIN_LEN..=MAX_LEN).contains(&datagram.len()) {
            return Err(DropReason::BadLength);
        }
        let header = Header::read(datagram);
        if datagram[0] != VERSION || header.flags & !FLAG_ACK_WANTED != 0 {
            return Err(DropReason::BadVersion);
        }
        Ok(header)
    }

    /// Whether the device asked for an acknowledgement.
    pub fn ack_wanted(&self) -> bool {
        self.flags & FLAG_ACK_WANTED != 0
    }

    /// The header fields of `bytes`, which holds at least [`HEADER_LEN`] bytes.
    fn read(bytes: &[u8]) -> Header {
        let u64_at = |at: usize| {
            let mut le = [0; 8];
            le.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(le)
        };
        Header { flags: bytes[1], device_id: u64_at(2), counter: u64_at(10) }
    }

    /// The 18 header bytes (the AEAD's associated data).
    fn bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[0] = VERSION;
        out[1] = self.flags;
        out[2..10].copy_from_slice(&self.device_id.to_le_bytes());
        out[10..18].copy_from_slice(&self.counter.to_le_bytes());
        out
    }
}

/// The two directions of the nonce's last four bytes.
#[derive(Clone, Copy, Debug)]
enum Direction {
    ToTracker = 0,
    ToDevice = 1,
}

/// The nonce: the counter (little-endian) then the direction as 4 little-endian bytes.
fn nonce(counter: u64, direction: Direction) -> [u8; 12] {
    let mut nonce = [0; 12];
    nonce[..8].copy_from_slice(&counter.to_le_bytes());
    nonce[8..].copy_from_slice(&(direction as u32).to_le_bytes());
    nonce
}

/// ChaCha20-Poly1305 decryption of `buffer` in place, with a detached tag.
fn open_detached(
    key: &DeviceKey,
    nonce: &[u8; 12],
    aad: &[u8],
    buffer: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> bool {
    ChaCha20Poly1305::new(key.into())
        .decrypt_in_place_detached(nonce.into(), aad, buffer, tag.into())
        .is_ok()
}

/// ChaCha20-Poly1305 encryption of `buffer` in place; returns the tag.
fn seal_detached(key: &DeviceKey, nonce: &[u8; 12], aad: &[u8], buffer: &mut [u8]) -> [u8; 16] {
    ChaCha20Poly1305::new(key.into())
        .encrypt_in_place_detached(nonce.into(), aad, buffer)
        .expect("ChaCha20-Poly1305 encrypts any buffer under 256 GiB")
        .into()
}

/// Checks a report's tag with the device's key and returns its plaintext. `datagram` is the
/// whole datagram, whose `header` [`Header::parse`] read.
pub fn open(datagram: &[u8], header: &Header, key: &DeviceKey) -> Result<Vec<u8>, DropReason> {
    let (aad, rest) = datagram.split_at(HEADER_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let tag: &[u8; TAG_LEN] = tag.try_into().expect("TAG_LEN bytes");
    let mut plaintext = ciphertext.to_vec();
    if open_detached(key, &nonce(header.counter, Direction::ToTracker), aad, &mut plaintext, tag) {
        Ok(plaintext)
    } else {
        Err(DropReason::BadTag)
    }
}

/// Reads and checks a report's plaintext: a verified `DeviceReport` buffer whose values are in
/// range (latitude within ±90, longitude within ±180, every float finite, speed and accuracy
/// not negative, battery at most 100).
pub fn parse_report(plaintext: &[u8]) -> Result<DeviceReportT, DropReason> {
    let report = crate::examples::tracker::root_as_device_report(plaintext)
        .map_err(|_| DropReason::BadReport)?
        .unpack();
    let in_range = report.lat.is_finite()
        && report.lon.is_finite()
        && (-90.0..=90.0).contains(&report.lat)
        && (-180.0..=180.0).contains(&report.lon)
        && report.speed_mps.is_finite()
        && report.speed_mps >= 0.0
        && report.heading_deg.is_finite()
        && report.accuracy_m.is_finite()
        && report.accuracy_m >= 0.0
        && report.battery.is_none_or(|b| b <= 100);
    if in_range { Ok(report) } else { Err(DropReason::BadReport) }
}

/// The acknowledgement of an accepted report (`header` is the report's).
pub fn encode_ack(header: &Header, key: &DeviceKey) -> [u8; ACK_LEN] {
    let ack = Header { flags: FLAG_ACK, ..*header };
    let aad = ack.bytes();
    let tag = seal_detached(key, &nonce(header.counter, Direction::ToDevice), &aad, &mut []);
    let mut out = [0; ACK_LEN];
    out[..HEADER_LEN].copy_from_slice(&aad);
    out[HEADER_LEN..].copy_from_slice(&tag);
    out
}

/// Device side: checks an acknowledgement with the device's key and returns the device id and
/// counter it acknowledges, or `None` if it is not a valid acknowledgement for this key.
pub fn verify_ack(datagram: &[u8], key: &DeviceKey) -> Option<(u64, u64)> {
    if datagram.len() != ACK_LEN || datagram[0] != VERSION || datagram[1] != FLAG_ACK {
        return None;
    }
    let header = Header::read(datagram);
    let tag: &[u8; TAG_LEN] = datagram[HEADER_LEN..].try_into().ok()?;
    let nonce = nonce(header.counter, Direction::ToDevice);
    open_detached(key, &nonce, &datagram[..HEADER_LEN], &mut [], tag)
        .then_some((header.device_id, header.counter))
}

/// Device side: a `DeviceReport` buffer (the plaintext of a report).
pub fn encode_report(report: &DeviceReportT) -> Vec<u8> {
    let mut fbb = gateway_core::flatbuffers::FlatBufferBuilder::with_capacity(96);
    let args = DeviceReportArgs {
        time_ms: report.time_ms,
        lat: report.lat,
        lon: report.lon,
        speed_mps: report.speed_mps,
        heading_deg: report.heading_deg,
        accuracy_m: report.accuracy_m,
        battery: report.battery,
    };
    let root = DeviceReport::create(&mut fbb, &args);
    crate::examples::tracker::finish_device_report_buffer(&mut fbb, root);
    fbb.finished_data().to_vec()
}

/// Device side: a report datagram carrying `plaintext` (any bytes: tests seal invalid ones too).
pub fn seal(header: &Header, key: &DeviceKey, plaintext: &[u8]) -> Vec<u8> {
    let aad = header.bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&aad);
    out.extend_from_slice(plaintext);
    let nonce = nonce(header.counter, Direction::ToTracker);
    let tag = seal_detached(key, &nonce, &aad, &mut out[HEADER_LEN..]);
    out.extend_from_slice(&tag);
    out
}

#[cfg(test)]
mod tests;
