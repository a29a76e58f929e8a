//! Answering a batch of requests with one signature per version (RFC 10049 §5.2, §5.3): the
//! requests' packets are the leaves of a Merkle tree, the SREP holding its root is signed once,
//! and each response carries its leaf's path and index.

use std::ops::Range;

use crate::keys::Delegation;
use crate::merkle::{self, Tree};
use crate::protocol::{Request, Version};
use crate::wire::{PACKET_HEADER, Tag, encode, encode_into, frame_header};

/// What answering a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answered {
    /// Responses emitted.
    pub responses: usize,
    /// Signatures made: one per version present in the batch.
    pub signatures: usize,
    /// Requests left unanswered because their response would be longer than they are (§5.1).
    pub too_short: usize,
}

/// The server's answer to batches, given its delegation and radius.
#[derive(Debug)]
pub struct Responder {
    delegation: Delegation,
    /// RADI: the uncertainty of MIDP, in seconds (never 0).
    radius: u32,
}

/// The VERS value: every version this server speaks, ascending.
fn vers() -> Vec<u8> {
    Version::ALL.iter().flat_map(|v| v.number().to_le_bytes()).collect()
}

impl Responder {
    /// # Panics
    ///
    /// With a radius of 0, which RFC 10049 forbids.
    pub fn new(delegation: Delegation, radius: u32) -> Responder {
        assert!(radius > 0, "RADI must not be 0");
        Responder { delegation, radius }
    }

    pub fn delegation(&self) -> &Delegation {
        &self.delegation
    }

    /// The SRV value of the long-term key this responder answers for.
    pub fn srv(&self) -> [u8; 32] {
        *self.delegation.srv()
    }

    /// Answers `requests` with MIDP `midp`: `emit(i, response packet)` for each request `i`
    /// answered. Requests of each version share a tree and a signature.
    pub fn respond(
        &self,
        requests: &[Request<'_>],
        midp: u64,
        mut emit: impl FnMut(usize, &[u8]),
    ) -> Answered {
        let (mut responses, mut ranges) = (Vec::new(), Vec::new());
        let answered =
            self.respond_into(requests, midp, &mut responses, |i, range| ranges.push((i, range)));
        for (i, range) in ranges {
            emit(i, &responses[range]);
        }
        answered
    }

    /// As [`Responder::respond`], appending the responses to `out`, end to end, and calling
    /// `emitted(i, range of out)` for each: no copy between answering and sending.
    pub fn respond_into(
        &self,
        requests: &[Request<'_>],
        midp: u64,
        out: &mut Vec<u8>,
        mut emitted: impl FnMut(usize, Range<usize>),
    ) -> Answered {
        let mut answered = Answered::default();
        let mut path = Vec::with_capacity(32 * 8);
        for version in Version::ALL {
            let indices: Vec<usize> =
                (0..requests.len()).filter(|&i| requests[i].version == version).collect();
            if indices.is_empty() {
                continue;
            }
            let tree = Tree::new(merkle::leaves(indices.iter().map(|&i| requests[i].packet)));
            let (ver, radi, midp_bytes, vers) = (
                version.number().to_le_bytes(),
                self.radius.to_le_bytes(),
                midp.to_le_bytes(),
                vers(),
            );
            let srep = encode(&[
                (Tag::VER, &ver),
                (Tag::RADI, &radi),
                (Tag::MIDP, &midp_bytes),
                (Tag::VERS, &vers),
                (Tag::ROOT, tree.root()),
            ]);
            let signature = self.delegation.sign_response(version, &srep);
            answered.signatures += 1;
            let cert = self.delegation.cert(version);
            for (leaf_index, &i) in indices.iter().enumerate() {
                path.clear();
                tree.path_into(leaf_index, &mut path);
                let index = (leaf_index as u32).to_le_bytes();
                let entries: [(Tag, &[u8]); 7] = [
                    (Tag::SIG, &signature),
                    (Tag::NONC, requests[i].nonce),
                    (Tag::TYPE, &[1, 0, 0, 0]),
                    (Tag::PATH, &path),
                    (Tag::SREP, &srep),
                    (Tag::CERT, cert),
                    (Tag::INDX, &index),
                ];
                let len = crate::wire::encoded_len(&entries);
                if PACKET_HEADER + len > requests[i].packet.len() {
                    answered.too_short += 1;
                    continue;
                }
                let start = out.len();
                frame_header(out, len);
                encode_into(out, &entries);
                emitted(i, start..out.len());
                answered.responses += 1;
            }
        }
        answered
    }
}
