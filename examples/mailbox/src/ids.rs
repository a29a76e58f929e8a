//! Sequence ids.

/// A delivered message's sequence id: the epoch it was sequenced in, the shard that took its
/// bundle in, and its index among that shard's messages of the epoch. A bundle's messages (one
/// per recipient, in the order of its recipient list) have consecutive indexes; the bundle is
/// named by the first. Its 16-byte form (epoch, shard, index, big-endian) sorts as the ids do,
/// and a mailbox receives its messages in that order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeqId {
    pub epoch: u64,
    pub shard: u32,
    pub index: u32,
}

impl SeqId {
    /// The length of the byte form.
    pub const LEN: usize = 16;

    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.epoch.to_be_bytes());
        out[8..12].copy_from_slice(&self.shard.to_be_bytes());
        out[12..].copy_from_slice(&self.index.to_be_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8; 16]) -> SeqId {
        SeqId {
            epoch: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            shard: u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")),
            index: u32::from_be_bytes(bytes[12..].try_into().expect("4 bytes")),
        }
    }

    /// The id `by` places after this one in its bundle (`None` past the last index).
    pub fn offset(self, by: u32) -> Option<SeqId> {
        Some(SeqId { index: self.index.checked_add(by)?, ..self })
    }

    /// Where this id stands in the bundle named `bundle`: `None` if it is not one of its ids.
    pub fn position_in(self, bundle: SeqId) -> Option<u32> {
        (self.epoch == bundle.epoch && self.shard == bundle.shard && self.index >= bundle.index)
            .then(|| self.index - bundle.index)
    }
}

impl std::fmt::Display for SeqId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.epoch, self.shard, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_id_order_and_the_bytes_round_trip() {
        let epochs = [0, 1, 255, 1 << 40, u64::MAX];
        let small = [0, 1, 256, u32::MAX];
        let mut ids = Vec::new();
        for epoch in epochs {
            for shard in small {
                for index in small {
                    ids.push(SeqId { epoch, shard, index });
                }
            }
        }
        for a in &ids {
            assert_eq!(SeqId::from_bytes(&a.to_bytes()), *a);
            for b in &ids {
                assert_eq!(a.cmp(b), a.to_bytes().cmp(&b.to_bytes()), "{a} and {b}");
            }
        }
        let id = SeqId { epoch: 0x0102_0304_0506_0708, shard: 0x090a_0b0c, index: 0x0d0e_0f10 };
        assert_eq!(id.to_bytes(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    }

    #[test]
    fn positions_within_a_bundle() {
        let bundle = SeqId { epoch: 7, shard: 2, index: 10 };
        assert_eq!(bundle.offset(3), Some(SeqId { index: 13, ..bundle }));
        assert_eq!(SeqId { index: u32::MAX, ..bundle }.offset(1), None);
        assert_eq!(SeqId { index: 13, ..bundle }.position_in(bundle), Some(3));
        assert_eq!(SeqId { index: 9, ..bundle }.position_in(bundle), None);
        assert_eq!(SeqId { shard: 3, ..bundle }.position_in(bundle), None);
        assert_eq!(SeqId { epoch: 8, ..bundle }.position_in(bundle), None);
    }
}
