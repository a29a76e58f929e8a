//! What an event's payload carries: its sequence number and its send time, so that every
//! subscriber can tell how late the event is and whether it missed any.
//!
//! The payload is opaque to the gateway (it relays bytes, `docs/protocol.md`), so it is plain
//! bytes rather than a FlatBuffer: the sequence number (`u64` little-endian, from 1), the send
//! time (`u64` little-endian, nanoseconds since the load generator's epoch), then a fixed filler
//! up to the configured size.

use bytes::{BufMut, BytesMut};

/// The fields at the front of every event's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The event's number, from 1, in publication order.
    pub(crate) seq: u64,
    /// When the publisher wrote it, in nanoseconds after the run's epoch.
    pub(crate) sent_ns: u64,
}

/// The stamp's size at the front of the payload.
const STAMP_SIZE: usize = 16;

impl Stamp {
    /// Appends a payload of `len` bytes (at least 16, checked by the configuration) carrying the
    /// stamp to `out`.
    pub(crate) fn put(self, out: &mut BytesMut, len: usize) {
        out.put_u64_le(self.seq);
        out.put_u64_le(self.sent_ns);
        out.put_bytes(0xA5, len.saturating_sub(STAMP_SIZE));
    }

    /// The stamp at the front of `payload`, if it is long enough to carry one.
    pub(crate) fn read(payload: &[u8]) -> Option<Stamp> {
        let seq = payload.get(..8)?.try_into().ok().map(u64::from_le_bytes)?;
        let sent_ns = payload.get(8..STAMP_SIZE)?.try_into().ok().map(u64::from_le_bytes)?;
        Some(Stamp { seq, sent_ns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_from_a_payload_of_the_requested_size() {
        let mut out = BytesMut::new();
        let stamp = Stamp { seq: 7, sent_ns: 1_234_567_890 };
        stamp.put(&mut out, 64);
        assert_eq!(out.len(), 64);
        assert_eq!(Stamp::read(&out), Some(stamp));
    }

    #[test]
    fn a_payload_too_short_for_a_stamp_has_none() {
        assert_eq!(Stamp::read(&[1; 15]), None);
    }
}
