//! Measuring against several servers (RFC 10049 §8.2, §8.4): each nonce after the first is
//! derived from the previous response, so the answers prove the order they came in; two answers
//! whose times contradict that order prove a server lied, and the chain is written as a
//! malfeasance report anyone can check.

use base64::Engine as _;
use sha2::{Digest, Sha512};

use crate::verify::Verified;

/// The nonce for the next request: H(previous response packet ‖ rand).
pub fn chained_nonce(previous_response: &[u8], rand: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha512::new();
    hasher.update(previous_response);
    hasher.update(rand);
    let mut out = [0u8; 32];
    out.copy_from_slice(&hasher.finalize()[..32]);
    out
}

/// One answered request of a measurement sequence.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The server's name, for people.
    pub server: String,
    pub public_key: [u8; 32],
    /// The value the nonce was chained with (`None` for the first probe, whose nonce is random).
    pub rand: Option<[u8; 32]>,
    pub request: Vec<u8>,
    pub response: Vec<u8>,
    pub verified: Verified,
}

/// Two probes whose times contradict the order they were received in: the earlier one's
/// earliest possible time is after the later one's latest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contradiction {
    pub earlier: usize,
    pub later: usize,
}

/// §8.2: for each pair `i` before `j`, MIDP_i − RADI_i ≤ MIDP_j + RADI_j. Returns the first pair
/// that breaks it.
pub fn check_order(probes: &[Probe]) -> Option<Contradiction> {
    for (i, a) in probes.iter().enumerate() {
        for (j, b) in probes.iter().enumerate().skip(i + 1) {
            let earliest = i128::from(a.verified.midp) - i128::from(a.verified.radius);
            let latest = i128::from(b.verified.midp) + i128::from(b.verified.radius);
            if earliest > latest {
                return Some(Contradiction { earlier: i, later: j });
            }
        }
    }
    None
}

/// §8.4.1: the malfeasance report for `probes` (in the order received), as JSON.
pub fn malfeasance_report(probes: &[Probe]) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let responses: Vec<serde_json::Value> = probes
        .iter()
        .map(|p| {
            let mut object = serde_json::json!({
                "publicKey": b64(&p.public_key),
                "request": b64(&p.request),
                "response": b64(&p.response),
            });
            if let Some(rand) = &p.rand {
                object["rand"] = serde_json::Value::String(b64(rand));
            }
            object
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "responses": responses }))
        .expect("JSON of strings")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Version;

    fn probe(midp: u64, radius: u32) -> Probe {
        Probe {
            server: "s".into(),
            public_key: [0; 32],
            rand: None,
            request: vec![1],
            response: vec![2],
            verified: Verified {
                version: Version::Rfc,
                midp,
                radius,
                mint: 0,
                maxt: u64::MAX,
                online_key: [0; 32],
            },
        }
    }

    #[test]
    fn later_answers_may_not_be_earlier_than_the_uncertainty_allows() {
        assert_eq!(check_order(&[probe(100, 3), probe(96, 3)]), None, "within both radii");
        assert_eq!(
            check_order(&[probe(100, 3), probe(101, 3), probe(90, 3)]),
            Some(Contradiction { earlier: 0, later: 2 })
        );
    }

    #[test]
    fn nonces_chain_on_the_whole_previous_response() {
        let a = chained_nonce(b"ROUGHTIM response one", &[1; 32]);
        assert_ne!(a, chained_nonce(b"ROUGHTIM response one", &[2; 32]));
        assert_ne!(a, chained_nonce(b"ROUGHTIM response two", &[1; 32]));
        let mut hasher = Sha512::new();
        hasher.update(b"ROUGHTIM response one");
        hasher.update([1; 32]);
        assert_eq!(a[..], hasher.finalize()[..32]);
    }

    #[test]
    fn the_report_lists_every_probe_in_order_with_its_rand() {
        let mut second = probe(1, 1);
        second.rand = Some([7; 32]);
        let report: serde_json::Value =
            serde_json::from_str(&malfeasance_report(&[probe(1, 1), second])).expect("JSON");
        let responses = report["responses"].as_array().expect("a list");
        assert_eq!(responses.len(), 2);
        assert!(responses[0].get("rand").is_none());
        assert_eq!(
            responses[1]["rand"],
            base64::engine::general_purpose::STANDARD.encode([7u8; 32])
        );
        assert_eq!(responses[1]["request"], "AQ==");
        assert_eq!(responses[1]["response"], "Ag==");
    }
}
