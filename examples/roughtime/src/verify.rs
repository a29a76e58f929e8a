//! A client's checks of a response (RFC 10049 §5.4): the delegation signed by the long-term
//! key, MIDP inside the delegation, the request in the signed Merkle tree, the SREP signed by
//! the delegated key, and the response answering this request.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::merkle::{self, Hash};
use crate::protocol::{MAX_VERSIONS, Version};
use crate::wire::{Message, Tag, WireError, read_u32, read_u64, unframe};

/// What a valid response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub version: Version,
    /// The time of processing, seconds since the Unix epoch.
    pub midp: u64,
    /// The server guarantees the true time was within `midp ± radius` seconds.
    pub radius: u32,
    /// The delegation's window.
    pub mint: u64,
    pub maxt: u64,
    /// The online key that signed the response.
    pub online_key: [u8; 32],
}

/// Why a response is not valid for a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {what} is not a packet or message: {error}")]
    Wire { what: &'static str, error: WireError },
    #[error("the {0} has no {1:?}")]
    Missing(&'static str, Tag),
    #[error("{0:?} has {1} bytes")]
    Size(Tag, usize),
    #[error("TYPE is not 1: not a response")]
    NotAResponse,
    #[error("the response's NONC is not the request's")]
    WrongNonce,
    #[error("the response's version {0:#x} is not one this client speaks")]
    UnknownVersion(u32),
    #[error("the response's version {0:#x} was not offered in the request")]
    VersionNotOffered(u32),
    #[error("VERS does not list the response's version, or is not sorted")]
    BadVers,
    #[error("RADI is 0")]
    ZeroRadius,
    #[error("the delegation is not signed by the long-term key")]
    BadDelegation,
    #[error("the response is not signed by the delegated key")]
    BadSignature,
    #[error("MIDP {midp} is outside the delegation's window {mint}..={maxt}")]
    OutsideDelegation { midp: u64, mint: u64, maxt: u64 },
    #[error("the request is not in the signed Merkle tree (INDX {index}, PATH of {hashes} hashes)")]
    NotInTree { index: u32, hashes: usize },
}

fn message<'a>(what: &'static str, bytes: &'a [u8]) -> Result<Message<'a>, VerifyError> {
    Message::parse(bytes).map_err(|error| VerifyError::Wire { what, error })
}

fn get<'a>(what: &'static str, m: &Message<'a>, tag: Tag) -> Result<&'a [u8], VerifyError> {
    m.get(tag).ok_or(VerifyError::Missing(what, tag))
}

fn fixed<'a, const N: usize>(
    what: &'static str,
    m: &Message<'a>,
    tag: Tag,
) -> Result<&'a [u8; N], VerifyError> {
    let value = get(what, m, tag)?;
    value.try_into().map_err(|_| VerifyError::Size(tag, value.len()))
}

fn u32_of(what: &'static str, m: &Message<'_>, tag: Tag) -> Result<u32, VerifyError> {
    Ok(read_u32(fixed::<4>(what, m, tag)?))
}

fn u64_of(what: &'static str, m: &Message<'_>, tag: Tag) -> Result<u64, VerifyError> {
    Ok(read_u64(fixed::<8>(what, m, tag)?).expect("8 bytes"))
}

fn check_signature(key: &[u8; 32], context: &[u8], value: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key) else { return false };
    let mut signed = Vec::with_capacity(context.len() + value.len());
    signed.extend_from_slice(context);
    signed.extend_from_slice(value);
    key.verify_strict(&signed, &Signature::from_bytes(signature)).is_ok()
}

/// Checks `response` (a packet) as the answer to `request` (the packet sent) from the server
/// whose long-term public key is `long_term_key`.
///
/// # Errors
///
/// The first check that fails.
pub fn verify(
    request: &[u8],
    response: &[u8],
    long_term_key: &[u8; 32],
) -> Result<Verified, VerifyError> {
    let wire = |what| move |error| VerifyError::Wire { what, error };
    let sent = message("request", unframe(request).map_err(wire("request"))?)?;
    let got = message("response", unframe(response).map_err(wire("response"))?)?;

    if fixed::<4>("response", &got, Tag::TYPE)? != &[1, 0, 0, 0] {
        return Err(VerifyError::NotAResponse);
    }
    if fixed::<32>("response", &got, Tag::NONC)? != fixed::<32>("request", &sent, Tag::NONC)? {
        return Err(VerifyError::WrongNonce);
    }

    let srep_bytes = get("response", &got, Tag::SREP)?;
    let srep = message("SREP", srep_bytes)?;
    let number = u32_of("SREP", &srep, Tag::VER)?;
    let version = Version::from_number(number).ok_or(VerifyError::UnknownVersion(number))?;
    let offered = get("request", &sent, Tag::VER)?;
    if !offered.chunks_exact(4).any(|n| read_u32(n) == number) {
        return Err(VerifyError::VersionNotOffered(number));
    }
    let vers = get("SREP", &srep, Tag::VERS)?;
    let listed: Vec<u32> = vers.chunks_exact(4).map(read_u32).collect();
    if vers.len() % 4 != 0
        || listed.len() > MAX_VERSIONS
        || !listed.windows(2).all(|w| w[0] < w[1])
        || !listed.contains(&number)
    {
        return Err(VerifyError::BadVers);
    }
    let radius = u32_of("SREP", &srep, Tag::RADI)?;
    if radius == 0 {
        return Err(VerifyError::ZeroRadius);
    }
    let midp = u64_of("SREP", &srep, Tag::MIDP)?;
    let root: &Hash = fixed::<32>("SREP", &srep, Tag::ROOT)?;

    // The delegation, signed by the long-term key.
    let cert = message("CERT", get("response", &got, Tag::CERT)?)?;
    let dele_bytes = get("CERT", &cert, Tag::DELE)?;
    let cert_signature = fixed::<64>("CERT", &cert, Tag::SIG)?;
    if !check_signature(long_term_key, version.delegation_context(), dele_bytes, cert_signature) {
        return Err(VerifyError::BadDelegation);
    }
    let dele = message("DELE", dele_bytes)?;
    let online_key = *fixed::<32>("DELE", &dele, Tag::PUBK)?;
    let (mint, maxt) = (u64_of("DELE", &dele, Tag::MINT)?, u64_of("DELE", &dele, Tag::MAXT)?);
    if !(mint..=maxt).contains(&midp) {
        return Err(VerifyError::OutsideDelegation { midp, mint, maxt });
    }

    // The response, signed by the delegated key.
    let signature = fixed::<64>("response", &got, Tag::SIG)?;
    if !check_signature(&online_key, version.response_context(), srep_bytes, signature) {
        return Err(VerifyError::BadSignature);
    }

    // The request, in the signed tree.
    let index = u32_of("response", &got, Tag::INDX)?;
    let path = get("response", &got, Tag::PATH)?;
    if !merkle::verify(&merkle::leaf(request), index, path, root) {
        return Err(VerifyError::NotInTree { index, hashes: path.len() / 32 });
    }
    Ok(Verified { version, midp, radius, mint, maxt, online_key })
}
