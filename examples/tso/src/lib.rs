//! A highly available hybrid-timestamp oracle (issue 16; `docs/tso.md`): unique, strictly
//! increasing 16-byte timestamps, handed out by one leader among several instances, its fencing
//! state in a replicated JetStream key-value bucket changed only by compare-and-set.
//!
//! The parts:
//! - [`Timestamp`]: the 16-byte value (epoch in Unix nanoseconds, index within the epoch, both
//!   big-endian, so byte order is time order).
//! - [`fence`]: the leadership and fencing state (who leads, under which term, and the highest
//!   epoch that term may serve) and its compare-and-set transitions.
//! - [`oracle`]: an instance: following, taking and keeping the lead, and serving.
//! - [`service`]: `examples.tso.Tso` behind the gateway, served only while leading.
//! - [`client`]: a client that collapses concurrent callers into one call in flight.
//! - [`http`]: an HTTP endpoint compatible with EpicEpoch's, and the instance's metrics.

pub mod client;
pub mod fence;
pub mod http;
pub mod oracle;
pub mod service;

/// A hybrid timestamp: the `epoch` (the Unix time in nanoseconds at which the leader opened it)
/// and the `index` of the timestamp within the epoch. Ordered by epoch, then index; its
/// 16-byte form (both big-endian) sorts the same way as bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub epoch: u64,
    pub index: u64,
}

impl Timestamp {
    /// The length of the byte form.
    pub const LEN: usize = 16;

    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.epoch.to_be_bytes());
        out[8..].copy_from_slice(&self.index.to_be_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8; 16]) -> Timestamp {
        let (epoch, index) = bytes.split_at(8);
        Timestamp {
            epoch: u64::from_be_bytes(epoch.try_into().expect("8 bytes")),
            index: u64::from_be_bytes(index.try_into().expect("8 bytes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_time_order_and_the_bytes_round_trip() {
        let edges = [0, 1, 255, 256, 1 << 32, u64::MAX - 1, u64::MAX];
        let stamps: Vec<Timestamp> = edges
            .iter()
            .flat_map(|&epoch| edges.iter().map(move |&index| Timestamp { epoch, index }))
            .collect();
        for a in &stamps {
            assert_eq!(Timestamp::from_bytes(&a.to_bytes()), *a);
            for b in &stamps {
                assert_eq!(a.cmp(b), a.to_bytes().cmp(&b.to_bytes()), "{a:?} and {b:?}");
            }
        }
        let t = Timestamp { epoch: 0x0102_0304_0506_0708, index: 0x090a_0b0c_0d0e_0f10 };
        assert_eq!(t.to_bytes(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    }
}
