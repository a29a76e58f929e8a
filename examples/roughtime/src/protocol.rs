//! Versions and requests (RFC 10049 §5.1): what a server answers and what it ignores.

use crate::wire::{Message, Tag, read_u32, unframe};

/// A protocol version this implementation speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// Version 1, RFC 10049.
    Rfc,
    /// `0x8000000c`, drafts 12 to 19: version 1's format with other signature context strings.
    Draft,
}

impl Version {
    /// Every version, in ascending wire order (as VERS lists them).
    pub const ALL: [Version; 2] = [Version::Rfc, Version::Draft];

    /// The version number on the wire.
    pub const fn number(self) -> u32 {
        match self {
            Version::Rfc => 1,
            Version::Draft => 0x8000_000c,
        }
    }

    /// The version with wire number `number`, if this implementation speaks it.
    pub fn from_number(number: u32) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.number() == number)
    }

    /// The context string the long-term key's signature over DELE starts with (terminating
    /// zero byte included).
    pub const fn delegation_context(self) -> &'static [u8] {
        match self {
            Version::Rfc => b"Roughtime v1 delegation signature\0",
            Version::Draft => b"RoughTime v1 delegation signature\0",
        }
    }

    /// The context string the online key's signature over SREP starts with.
    pub const fn response_context(self) -> &'static [u8] {
        match self {
            Version::Rfc => b"Roughtime v1 response signature\0",
            Version::Draft => b"RoughTime v1 response signature\0",
        }
    }
}

/// A Roughtime timestamp (§4.1.4) of the system clock now: seconds since the Unix epoch.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The most version numbers a VER tag may hold.
pub const MAX_VERSIONS: usize = 32;

/// Why a server ignores a packet (it never answers with an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// Not a packet, or not a message.
    Malformed,
    /// VER, NONC or TYPE missing.
    MissingTag,
    /// TYPE is not a 4-byte 0.
    NotARequest,
    /// VER empty, longer than 32 numbers, not a multiple of 4 bytes, unsorted or repeating.
    BadVersionList,
    /// VER names no version this server speaks.
    NoCommonVersion,
    /// NONC is not 32 bytes.
    BadNonce,
    /// SRV is not 32 bytes, or names a key this server does not have.
    UnknownServer,
}

/// A request a server can answer.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The whole packet, header included: the Merkle leaf is its hash.
    pub packet: &'a [u8],
    pub nonce: &'a [u8; 32],
    /// The version of the answer: version 1 if offered, else the draft.
    pub version: Version,
    /// The SRV value, if the client named a long-term key.
    pub srv: Option<&'a [u8; 32]>,
}

impl<'a> Request<'a> {
    /// Parses a request packet as a server must: anything wrong means the request is ignored,
    /// with the reason. `srv` is this server's long-term key's SRV value: a request naming
    /// another key is ignored.
    ///
    /// # Errors
    ///
    /// Why the request is ignored.
    pub fn parse(packet: &'a [u8], srv: &[u8; 32]) -> Result<Request<'a>, Ignored> {
        let message = unframe(packet).map_err(|_| Ignored::Malformed)?;
        let message = Message::parse(message).map_err(|_| Ignored::Malformed)?;
        let (Some(ver), Some(nonce), Some(kind)) =
            (message.get(Tag::VER), message.get(Tag::NONC), message.get(Tag::TYPE))
        else {
            return Err(Ignored::MissingTag);
        };
        if kind != [0, 0, 0, 0] {
            return Err(Ignored::NotARequest);
        }
        let version = negotiate(ver)?;
        let nonce: &[u8; 32] = nonce.try_into().map_err(|_| Ignored::BadNonce)?;
        let srv_value = match message.get(Tag::SRV) {
            Some(value) => {
                let value: &[u8; 32] = value.try_into().map_err(|_| Ignored::UnknownServer)?;
                if value != srv {
                    return Err(Ignored::UnknownServer);
                }
                Some(value)
            }
            None => None,
        };
        Ok(Request { packet, nonce, version, srv: srv_value })
    }
}

/// The version to answer a VER list with: version 1 if offered, else the draft; unknown
/// numbers are skipped (§5.1.1).
fn negotiate(ver: &[u8]) -> Result<Version, Ignored> {
    if ver.is_empty() || ver.len() % 4 != 0 || ver.len() / 4 > MAX_VERSIONS {
        return Err(Ignored::BadVersionList);
    }
    let mut best = None;
    let mut previous = None;
    for chunk in ver.chunks_exact(4) {
        let number = read_u32(chunk);
        if previous.is_some_and(|p| number <= p) {
            return Err(Ignored::BadVersionList);
        }
        previous = Some(number);
        best = match (best, Version::from_number(number)) {
            (Some(Version::Rfc), _) | (_, Some(Version::Rfc)) => Some(Version::Rfc),
            (b, v) => b.or(v),
        };
    }
    best.ok_or(Ignored::NoCommonVersion)
}

/// A request packet for `nonce`, offering `versions` (sorted), padded with ZZZZ to at least
/// 1024 bytes as clients should send over UDP.
pub fn request_packet(nonce: &[u8; 32], versions: &[Version], srv: Option<&[u8; 32]>) -> Vec<u8> {
    let ver: Vec<u8> = versions.iter().flat_map(|v| v.number().to_le_bytes()).collect();
    let mut entries: Vec<(Tag, &[u8])> =
        vec![(Tag::VER, &ver), (Tag::NONC, nonce), (Tag::TYPE, &[0; 4])];
    if let Some(srv) = srv {
        entries.push((Tag::SRV, srv));
    }
    let without_padding = crate::wire::encoded_len(&entries) + 8;
    let padding = vec![0u8; 1024usize.saturating_sub(crate::wire::PACKET_HEADER + without_padding)];
    entries.push((Tag::ZZZZ, &padding));
    entries.sort_by_key(|(tag, _)| *tag);
    let message = crate::wire::encode(&entries);
    let mut packet = Vec::with_capacity(crate::wire::PACKET_HEADER + message.len());
    crate::wire::frame_header(&mut packet, message.len());
    packet.extend_from_slice(&message);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRV: [u8; 32] = [5; 32];

    #[test]
    fn a_padded_request_is_1024_bytes_and_parses() {
        let packet = request_packet(&[9; 32], &Version::ALL, Some(&SRV));
        assert_eq!(packet.len(), 1024);
        let request = Request::parse(&packet, &SRV).expect("answered");
        assert_eq!(request.version, Version::Rfc);
        assert_eq!(request.nonce, &[9; 32]);
        assert_eq!(request.srv, Some(&SRV));
    }

    #[test]
    fn version_negotiation_prefers_version_one_and_skips_unknown_numbers() {
        let list =
            |numbers: &[u32]| numbers.iter().flat_map(|n| n.to_le_bytes()).collect::<Vec<u8>>();
        assert_eq!(negotiate(&list(&[1, 0x8000_000c])), Ok(Version::Rfc));
        assert_eq!(negotiate(&list(&[0x8000_000b, 0x8000_000c])), Ok(Version::Draft));
        assert_eq!(negotiate(&list(&[2, 3])), Err(Ignored::NoCommonVersion));
        assert_eq!(negotiate(&list(&[1, 1])), Err(Ignored::BadVersionList));
        assert_eq!(negotiate(&list(&[0x8000_000c, 1])), Err(Ignored::BadVersionList));
        assert_eq!(negotiate(&list(&(1..=33).collect::<Vec<_>>())), Err(Ignored::BadVersionList));
        assert_eq!(negotiate(&[1, 0, 0]), Err(Ignored::BadVersionList));
        assert_eq!(negotiate(&[]), Err(Ignored::BadVersionList));
    }
}
