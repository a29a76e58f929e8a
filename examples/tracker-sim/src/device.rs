//! The device side of the report protocol, `docs/tracker-devices.md` (normative): the
//! `DeviceReport` plaintext, sealed reports, and acknowledgement checks.
//!
//! A report datagram is the 18-byte header (`version`, `flags`, `device_id`, `counter`,
//! little-endian), then the ChaCha20-Poly1305 ciphertext of the `DeviceReport` and its 16-byte
//! tag. The nonce is the counter (8 bytes LE) then `00 00 00 00` for reports and `01 00 00 00`
//! for acknowledgements; the associated data is the header.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

use crate::motion::Fix;

/// The protocol version, the first byte of every datagram.
pub const VERSION: u8 = 1;
/// `flags` bit 0 of a report: answer with an acknowledgement.
pub const FLAG_ACK_WANTED: u8 = 0x01;
/// `flags` of an acknowledgement.
pub const FLAG_ACK: u8 = 0x80;
/// `version`, `flags`, `device_id`, `counter`.
pub const HEADER_LEN: usize = 18;
pub const TAG_LEN: usize = 16;
/// The largest datagram a tracker accepts.
pub const MAX_DATAGRAM: usize = 512;
/// An acknowledgement: a header and a tag.
pub const ACK_LEN: usize = HEADER_LEN + TAG_LEN;

/// Which way a datagram goes: the last 4 bytes of the nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Reports: `00 00 00 00`.
    ToTracker,
    /// Acknowledgements: `01 00 00 00`.
    ToDevice,
}

/// The 12-byte nonce for `counter` in `direction`.
pub fn nonce(counter: u64, direction: Direction) -> [u8; 12] {
    let mut nonce = [0; 12];
    nonce[..8].copy_from_slice(&counter.to_le_bytes());
    nonce[8] = match direction {
        Direction::ToTracker => 0,
        Direction::ToDevice => 1,
    };
    nonce
}

/// The 18-byte header, which is also the associated data.
pub fn header(flags: u8, device_id: u64, counter: u64) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[0] = VERSION;
    h[1] = flags;
    h[2..10].copy_from_slice(&device_id.to_le_bytes());
    h[10..18].copy_from_slice(&counter.to_le_bytes());
    h
}

/// The `DeviceReport` FlatBuffers table (`schemas/tracker/tracker.fbs`) for `fix`: fields
/// `time_ms: ulong` (0), `lat: double` (1), `lon: double` (2), `speed_mps: float` (3),
/// `heading_deg: float` (4), `accuracy_m: float` (5), `battery: ubyte` (6, optional: absent when
/// the fix has none). Every other field is always written, even when it is 0.
pub fn encode_report(fix: &Fix) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::with_capacity(96);
    let table = fbb.start_table();
    // Largest first, so no padding is needed between fields.
    fbb.push_slot_always::<u64>(4, fix.time_ms);
    fbb.push_slot_always::<f64>(6, fix.lat);
    fbb.push_slot_always::<f64>(8, fix.lon);
    fbb.push_slot_always::<f32>(10, fix.speed_mps);
    fbb.push_slot_always::<f32>(12, fix.heading_deg);
    fbb.push_slot_always::<f32>(14, fix.accuracy_m);
    if let Some(battery) = fix.battery {
        fbb.push_slot_always::<u8>(16, battery);
    }
    let root = fbb.end_table(table);
    fbb.finish_minimal(root);
    fbb.finished_data().to_vec()
}

/// Why a report could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("a report of {0} bytes is over the {MAX_DATAGRAM}-byte limit")]
    TooLarge(usize),
}

/// The report datagram for `plaintext`, sealed with `key`.
///
/// # Errors
///
/// If the datagram would be longer than [`MAX_DATAGRAM`].
pub fn seal_report(
    key: &[u8; 32],
    device_id: u64,
    counter: u64,
    ack_wanted: bool,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let len = HEADER_LEN + plaintext.len() + TAG_LEN;
    if len > MAX_DATAGRAM {
        return Err(SealError::TooLarge(len));
    }
    let flags = if ack_wanted { FLAG_ACK_WANTED } else { 0 };
    let head = header(flags, device_id, counter);
    let mut datagram = Vec::with_capacity(len);
    datagram.extend_from_slice(&head);
    datagram.extend_from_slice(plaintext);
    let tag = ChaCha20Poly1305::new(&Key::from(*key))
        .encrypt_in_place_detached(
            &Nonce::from(nonce(counter, Direction::ToTracker)),
            &head,
            &mut datagram[HEADER_LEN..],
        )
        .expect("ChaCha20-Poly1305 seals anything under 256 GiB");
    datagram.extend_from_slice(&tag);
    Ok(datagram)
}

/// The 16 bytes of `tag` as a [`Tag`].
fn tag_of(tag: &[u8]) -> Tag {
    Tag::from(<[u8; TAG_LEN]>::try_from(tag).expect("callers pass 16 bytes"))
}

/// Why a datagram was not taken as an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("an acknowledgement is {ACK_LEN} bytes, not {0}")]
    Length(usize),
    #[error("not a version-1 acknowledgement (version {version}, flags {flags:#04x})")]
    NotAnAck { version: u8, flags: u8 },
    #[error("the acknowledgement's tag does not verify")]
    BadTag,
}

/// An acknowledgement's claimed device and counter, not yet checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckHeader {
    pub device_id: u64,
    pub counter: u64,
}

/// Reads an acknowledgement's header, so the receiver can find the device's key.
///
/// # Errors
///
/// If the datagram is not [`ACK_LEN`] bytes or not a version-1 `ACK`.
pub fn ack_header(datagram: &[u8]) -> Result<AckHeader, AckError> {
    if datagram.len() != ACK_LEN {
        return Err(AckError::Length(datagram.len()));
    }
    if datagram[0] != VERSION || datagram[1] != FLAG_ACK {
        return Err(AckError::NotAnAck { version: datagram[0], flags: datagram[1] });
    }
    let word = |at: usize| u64::from_le_bytes(datagram[at..at + 8].try_into().expect("8 bytes"));
    Ok(AckHeader { device_id: word(2), counter: word(10) })
}

/// Checks an acknowledgement with the device's key: the counter it acknowledges, if the tag
/// verifies (a device MUST check it before taking it as one).
///
/// # Errors
///
/// As [`ack_header`], or [`AckError::BadTag`].
pub fn verify_ack(key: &[u8; 32], datagram: &[u8]) -> Result<AckHeader, AckError> {
    let ack = ack_header(datagram)?;
    let (head, tag) = datagram.split_at(HEADER_LEN);
    ChaCha20Poly1305::new(&Key::from(*key))
        .decrypt_in_place_detached(
            &Nonce::from(nonce(ack.counter, Direction::ToDevice)),
            head,
            &mut [],
            &tag_of(tag),
        )
        .map_err(|_| AckError::BadTag)?;
    Ok(ack)
}

/// What a tracker sends back for a report: for tests and for tools that play the tracker.
pub fn seal_ack(key: &[u8; 32], device_id: u64, counter: u64) -> [u8; ACK_LEN] {
    let head = header(FLAG_ACK, device_id, counter);
    let tag = ChaCha20Poly1305::new(&Key::from(*key))
        .encrypt_in_place_detached(
            &Nonce::from(nonce(counter, Direction::ToDevice)),
            &head,
            &mut [],
        )
        .expect("an empty plaintext always seals");
    let mut ack = [0; ACK_LEN];
    ack[..HEADER_LEN].copy_from_slice(&head);
    ack[HEADER_LEN..].copy_from_slice(&tag);
    ack
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn fix(battery: Option<u8>) -> Fix {
        Fix {
            time_ms: 1_700_000_000_123,
            lat: 52.371_234_5,
            lon: 4.890_987_6,
            speed_mps: 12.5,
            heading_deg: 271.25,
            accuracy_m: 4.5,
            battery,
        }
    }

    /// Reads field `index` of the root table by hand from the FlatBuffers rules (root offset,
    /// vtable at `table - soffset`, field offsets after the two vtable sizes): `None` if absent.
    fn field(buf: &[u8], index: usize, size: usize) -> Option<&[u8]> {
        let u16_at = |at: usize| u16::from_le_bytes([buf[at], buf[at + 1]]) as usize;
        let table = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
        let vtable = (table as i64
            - i32::from_le_bytes(buf[table..table + 4].try_into().unwrap()) as i64)
            as usize;
        let vtable_len = u16_at(vtable);
        let slot = 4 + 2 * index;
        if slot >= vtable_len || u16_at(vtable + slot) == 0 {
            return None;
        }
        let at = table + u16_at(vtable + slot);
        assert_eq!(at % size, 0, "field {index} is misaligned");
        Some(&buf[at..at + size])
    }

    #[test]
    fn the_report_has_the_documented_fields_in_order() {
        let buf = encode_report(&fix(Some(87)));
        assert_eq!(field(&buf, 0, 8).unwrap(), 1_700_000_000_123u64.to_le_bytes());
        assert_eq!(field(&buf, 1, 8).unwrap(), 52.371_234_5f64.to_le_bytes());
        assert_eq!(field(&buf, 2, 8).unwrap(), 4.890_987_6f64.to_le_bytes());
        assert_eq!(field(&buf, 3, 4).unwrap(), 12.5f32.to_le_bytes());
        assert_eq!(field(&buf, 4, 4).unwrap(), 271.25f32.to_le_bytes());
        assert_eq!(field(&buf, 5, 4).unwrap(), 4.5f32.to_le_bytes());
        assert_eq!(field(&buf, 6, 1).unwrap(), [87]);
        assert_eq!(field(&encode_report(&fix(None)), 6, 1), None, "no battery, no field");
        // Zeros are still written: a reader that ignores defaults sees them.
        let zero = Fix { lat: 0.0, speed_mps: 0.0, ..fix(None) };
        assert_eq!(field(&encode_report(&zero), 1, 8).unwrap(), 0f64.to_le_bytes());
        assert!(buf.len() < 100, "{} bytes", buf.len());
    }

    #[test]
    fn a_sealed_report_follows_the_layout_byte_for_byte() {
        let plaintext = encode_report(&fix(Some(50)));
        let device_id = 0x0102_0304_0506_0708;
        let counter = 0x1112_1314_1516_1718;
        let d = seal_report(&KEY, device_id, counter, true, &plaintext).unwrap();
        assert_eq!(d.len(), 34 + plaintext.len());
        let expected_header = [
            1, 0x01, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x18, 0x17, 0x16, 0x15, 0x14,
            0x13, 0x12, 0x11,
        ];
        assert_eq!(d[..18], expected_header);
        assert_eq!(seal_report(&KEY, device_id, counter, false, &plaintext).unwrap()[1], 0);
        assert_eq!(
            nonce(counter, Direction::ToTracker),
            [0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, 0, 0, 0, 0]
        );
        assert_eq!(
            nonce(counter, Direction::ToDevice),
            [0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, 1, 0, 0, 0]
        );
        // Opened with the nonce and AAD written out here, not with the module's helpers.
        let cipher = ChaCha20Poly1305::new(&Key::from(KEY));
        let mut body = d[18..d.len() - 16].to_vec();
        let nonce = [0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, 0, 0, 0, 0];
        cipher
            .decrypt_in_place_detached(
                &Nonce::from(nonce),
                &expected_header,
                &mut body,
                &tag_of(&d[d.len() - 16..]),
            )
            .expect("opens with the documented nonce and AAD");
        assert_eq!(body, plaintext);
        assert_ne!(d[18..d.len() - 16], plaintext[..], "the position is encrypted");
        // The AAD covers the header: a changed flag fails.
        let mut wrong_aad = expected_header;
        wrong_aad[1] = 0;
        let mut body = d[18..d.len() - 16].to_vec();
        assert!(
            cipher
                .decrypt_in_place_detached(
                    &Nonce::from(nonce),
                    &wrong_aad,
                    &mut body,
                    &tag_of(&d[d.len() - 16..])
                )
                .is_err()
        );
        assert_eq!(seal_report(&KEY, 1, 1, false, &[0; 479]), Err(SealError::TooLarge(513)));
        assert_eq!(seal_report(&KEY, 1, 1, false, &[0; 478]).unwrap().len(), 512);
    }

    #[test]
    fn an_ack_is_taken_only_with_the_right_tag() {
        let ack = seal_ack(&KEY, 42, 9);
        assert_eq!(ack[..2], [1, 0x80]);
        assert_eq!(ack[2..10], 42u64.to_le_bytes());
        assert_eq!(ack[10..18], 9u64.to_le_bytes());
        assert_eq!(verify_ack(&KEY, &ack), Ok(AckHeader { device_id: 42, counter: 9 }));
        assert_eq!(verify_ack(&[8; 32], &ack), Err(AckError::BadTag), "another key");
        for byte in 2..ACK_LEN {
            let mut altered = ack;
            altered[byte] ^= 0x01;
            assert_eq!(verify_ack(&KEY, &altered), Err(AckError::BadTag), "byte {byte} altered");
        }
        let mut report_direction = ack;
        let tag = ChaCha20Poly1305::new(&Key::from(KEY))
            .encrypt_in_place_detached(
                &Nonce::from(nonce(9, Direction::ToTracker)),
                &ack[..18],
                &mut [],
            )
            .unwrap();
        report_direction[18..].copy_from_slice(&tag);
        assert_eq!(
            verify_ack(&KEY, &report_direction),
            Err(AckError::BadTag),
            "the nonce's direction counts"
        );
        assert_eq!(verify_ack(&KEY, &ack[..33]), Err(AckError::Length(33)));
        let mut flags = ack;
        flags[1] = 0x81;
        assert_eq!(verify_ack(&KEY, &flags), Err(AckError::NotAnAck { version: 1, flags: 0x81 }));
        assert_eq!(ack_header(&[0; 3]), Err(AckError::Length(3)));
    }
}
