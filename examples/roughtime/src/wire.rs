//! The Roughtime wire format (RFC 10049 §4, §5): packets (`ROUGHTIM`, a length, a message) and
//! messages (tagged values behind a header of offsets and tags, all little-endian).

use std::fmt;

/// The first eight bytes of every packet.
pub const MAGIC: [u8; 8] = *b"ROUGHTIM";

/// Bytes before a packet's message: the magic and the message length.
pub const PACKET_HEADER: usize = 12;

/// A tag: one to four capital letters padded with zero bytes, ordered as a little-endian `u32`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(pub u32);

impl Tag {
    /// The tag spelt by `name` (at most four bytes, zero-padded).
    pub const fn new(name: &[u8]) -> Tag {
        let mut bytes = [0u8; 4];
        let mut i = 0;
        while i < name.len() {
            bytes[i] = name[i];
            i += 1;
        }
        Tag(u32::from_le_bytes(bytes))
    }

    pub const SIG: Tag = Tag::new(b"SIG");
    pub const VER: Tag = Tag::new(b"VER");
    pub const SRV: Tag = Tag::new(b"SRV");
    pub const NONC: Tag = Tag::new(b"NONC");
    pub const DELE: Tag = Tag::new(b"DELE");
    pub const TYPE: Tag = Tag::new(b"TYPE");
    pub const PATH: Tag = Tag::new(b"PATH");
    pub const RADI: Tag = Tag::new(b"RADI");
    pub const PUBK: Tag = Tag::new(b"PUBK");
    pub const MIDP: Tag = Tag::new(b"MIDP");
    pub const SREP: Tag = Tag::new(b"SREP");
    pub const VERS: Tag = Tag::new(b"VERS");
    pub const MINT: Tag = Tag::new(b"MINT");
    pub const ROOT: Tag = Tag::new(b"ROOT");
    pub const CERT: Tag = Tag::new(b"CERT");
    pub const MAXT: Tag = Tag::new(b"MAXT");
    pub const INDX: Tag = Tag::new(b"INDX");
    pub const ZZZZ: Tag = Tag::new(b"ZZZZ");
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.to_le_bytes();
        let name: String = bytes
            .iter()
            .take_while(|b| **b != 0)
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
            .collect();
        write!(f, "{name}")
    }
}

/// Why bytes are not a packet or a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{0} bytes are too short for a packet header (12)")]
    ShortPacket(usize),
    #[error("the packet does not start with `ROUGHTIM`")]
    BadMagic,
    #[error("the packet's length field says {declared} bytes, but {actual} follow")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("{0} bytes are too short for a message header")]
    ShortMessage(usize),
    #[error("a message of {0} tags does not fit in its {1} bytes")]
    HeaderTooLong(u32, usize),
    #[error("offset {index} ({offset}) is not a multiple of 4")]
    UnalignedOffset { index: usize, offset: u32 },
    #[error(
        "offset {index} ({offset}) is before the previous one or past the values ({len} bytes)"
    )]
    BadOffset { index: usize, offset: u32, len: usize },
    #[error("tag {index} ({tag:?}) is not greater than the tag before it")]
    TagsNotAscending { index: usize, tag: Tag },
}

/// A packet's message: the bytes after the header, whose length the header gives exactly.
///
/// # Errors
///
/// A short packet, a wrong magic, or a length field that disagrees with the bytes that follow.
pub fn unframe(packet: &[u8]) -> Result<&[u8], WireError> {
    if packet.len() < PACKET_HEADER {
        return Err(WireError::ShortPacket(packet.len()));
    }
    if packet[..8] != MAGIC {
        return Err(WireError::BadMagic);
    }
    let declared = read_u32(&packet[8..12]) as usize;
    let actual = packet.len() - PACKET_HEADER;
    if declared != actual {
        return Err(WireError::LengthMismatch { declared, actual });
    }
    Ok(&packet[PACKET_HEADER..])
}

/// Appends the packet header for a message of `len` bytes.
pub fn frame_header(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

/// A parsed message: its tags and values, borrowed from the bytes.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    count: usize,
    /// `count - 1` offsets (the first is implicitly 0).
    offsets: &'a [u8],
    tags: &'a [u8],
    values: &'a [u8],
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|(tag, value)| (tag, value.len()))).finish()
    }
}

impl<'a> Message<'a> {
    /// Parses a message, checking every rule of RFC 10049 §4.2: offsets multiples of 4, in
    /// order and inside the values, tags strictly ascending (so none repeats).
    ///
    /// # Errors
    ///
    /// The first rule broken.
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, WireError> {
        if bytes.len() < 4 {
            return Err(WireError::ShortMessage(bytes.len()));
        }
        let n = read_u32(&bytes[..4]);
        let header = (n as u64) * 8;
        if n == 0 || header > bytes.len() as u64 {
            return Err(WireError::HeaderTooLong(n, bytes.len()));
        }
        let count = n as usize;
        let offsets = &bytes[4..4 * count];
        let tags = &bytes[4 * count..8 * count];
        let values = &bytes[8 * count..];
        let mut previous = 0u32;
        for index in 0..count - 1 {
            let offset = read_u32(&offsets[4 * index..]);
            if offset % 4 != 0 {
                return Err(WireError::UnalignedOffset { index: index + 1, offset });
            }
            if offset < previous || offset as usize > values.len() {
                return Err(WireError::BadOffset { index: index + 1, offset, len: values.len() });
            }
            previous = offset;
        }
        for index in 1..count {
            let tag = Tag(read_u32(&tags[4 * index..]));
            if tag <= Tag(read_u32(&tags[4 * (index - 1)..])) {
                return Err(WireError::TagsNotAscending { index, tag });
            }
        }
        Ok(Message { count, offsets, tags, values })
    }

    /// The number of tags.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Never true: a message has at least one tag.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn tag_at(&self, index: usize) -> Tag {
        Tag(read_u32(&self.tags[4 * index..]))
    }

    fn value_at(&self, index: usize) -> &'a [u8] {
        let start =
            if index == 0 { 0 } else { read_u32(&self.offsets[4 * (index - 1)..]) } as usize;
        let end = if index + 1 == self.count {
            self.values.len()
        } else {
            read_u32(&self.offsets[4 * index..]) as usize
        };
        &self.values[start..end]
    }

    /// The value of `tag`, if present (binary search: tags are sorted).
    pub fn get(&self, tag: Tag) -> Option<&'a [u8]> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.tag_at(mid).cmp(&tag) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Some(self.value_at(mid)),
            }
        }
        None
    }

    /// Every (tag, value) pair, in tag order.
    pub fn iter(&self) -> impl Iterator<Item = (Tag, &'a [u8])> + '_ {
        (0..self.count).map(|i| (self.tag_at(i), self.value_at(i)))
    }
}

/// Writes a message of `entries`, which must be sorted by tag, each value but the last a
/// multiple of 4 bytes long (as every fixed-size value is).
pub fn encode_into(out: &mut Vec<u8>, entries: &[(Tag, &[u8])]) {
    debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "tags sorted and unique");
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    let mut offset = 0u32;
    for (_, value) in &entries[..entries.len().saturating_sub(1)] {
        offset += value.len() as u32;
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for (tag, _) in entries {
        out.extend_from_slice(&tag.0.to_le_bytes());
    }
    for (_, value) in entries {
        out.extend_from_slice(value);
    }
}

/// [`encode_into`] a new vector.
pub fn encode(entries: &[(Tag, &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(entries));
    encode_into(&mut out, entries);
    out
}

/// The length [`encode`] gives.
pub fn encoded_len(entries: &[(Tag, &[u8])]) -> usize {
    8 * entries.len() + entries.iter().map(|(_, v)| v.len()).sum::<usize>()
}

/// The little-endian `u32` at the start of `bytes`.
pub(crate) fn read_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The little-endian `u64` `bytes` hold, if they are exactly 8.
pub(crate) fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_order_as_little_endian_integers() {
        assert_eq!(Tag::NONC.0, 0x434e_4f4e);
        assert_eq!(Tag::VER.0, 0x0052_4556);
        let mut response =
            [Tag::INDX, Tag::CERT, Tag::SREP, Tag::PATH, Tag::TYPE, Tag::NONC, Tag::SIG];
        response.sort();
        assert_eq!(
            response,
            [Tag::SIG, Tag::NONC, Tag::TYPE, Tag::PATH, Tag::SREP, Tag::CERT, Tag::INDX]
        );
    }

    #[test]
    fn messages_round_trip_and_reject_broken_headers() {
        let bytes =
            encode(&[(Tag::VER, &[1, 0, 0, 0]), (Tag::NONC, &[7; 32]), (Tag::TYPE, &[0; 4])]);
        let message = Message::parse(&bytes).expect("parses");
        assert_eq!(message.len(), 3);
        assert_eq!(message.get(Tag::NONC), Some(&[7u8; 32][..]));
        assert_eq!(message.get(Tag::TYPE), Some(&[0u8; 4][..]));
        assert_eq!(message.get(Tag::SRV), None);

        let mut unaligned = bytes.clone();
        unaligned[4] = 3;
        assert!(matches!(Message::parse(&unaligned), Err(WireError::UnalignedOffset { .. })));
        let mut descending = bytes.clone();
        descending[16..20].copy_from_slice(&Tag::SIG.0.to_le_bytes());
        assert!(matches!(Message::parse(&descending), Err(WireError::TagsNotAscending { .. })));
        let mut past_end = bytes.clone();
        past_end[8..12].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(Message::parse(&past_end), Err(WireError::BadOffset { .. })));
        assert!(matches!(Message::parse(&[9, 0, 0, 0, 1, 2]), Err(WireError::HeaderTooLong(9, 6))));
        assert!(matches!(Message::parse(&[0, 0, 0, 0]), Err(WireError::HeaderTooLong(0, 4))));
    }

    #[test]
    fn packets_need_the_magic_and_an_exact_length() {
        let mut packet = Vec::new();
        frame_header(&mut packet, 4);
        packet.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(unframe(&packet), Ok(&[1u8, 2, 3, 4][..]));
        assert_eq!(unframe(&packet[..11]), Err(WireError::ShortPacket(11)));
        assert_eq!(
            unframe(&packet[..15]),
            Err(WireError::LengthMismatch { declared: 4, actual: 3 })
        );
        packet[0] = b'X';
        assert_eq!(unframe(&packet), Err(WireError::BadMagic));
    }
}
