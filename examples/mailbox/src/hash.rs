//! The hashes statements carry: SHA-256, each kind of input behind its own prefix so that no
//! input of one kind hashes like one of another.

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

const RECIPIENTS: &[u8] = b"rpcgen mailbox recipients v1\0";
const COMMON: &[u8] = b"rpcgen mailbox common v1\0";
const PART: &[u8] = b"rpcgen mailbox part v1\0";
const STATEMENT: &[u8] = b"rpcgen mailbox statement v1\0";
const NODE: &[u8] = b"rpcgen mailbox node v1\0";
const SHARD: &[u8] = b"rpcgen mailbox shard v1\0";
/// What a shard's signature covers: this prefix, then the root of the batch's tree.
pub const ROOT: &[u8] = b"rpcgen mailbox root v1\0";

/// The hash of a bundle's recipient list, in the sender's order: the prefix, the count (u32),
/// then each device id's length (u16) and UTF-8 bytes, all big-endian.
///
/// # Panics
///
/// With more than 2^32 recipients or an id longer than 65,535 bytes (the service refuses
/// both long before).
pub fn recipients_hash<S: AsRef<str>>(recipients: &[S]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(RECIPIENTS);
    hasher.update(u32::try_from(recipients.len()).expect("at most 2^32 recipients").to_be_bytes());
    for device in recipients {
        let device = device.as_ref().as_bytes();
        hasher.update(
            u16::try_from(device.len()).expect("ids of at most 65,535 bytes").to_be_bytes(),
        );
        hasher.update(device);
    }
    hasher.finalize().into()
}

/// The hash of a bundle's common ciphertext (the same for every recipient).
pub fn common_hash(common: &[u8]) -> Digest {
    prefixed(COMMON, common)
}

/// The hash of one recipient's part of a bundle.
pub fn part_hash(part: &[u8]) -> Digest {
    prefixed(PART, part)
}

/// The hash of a statement's bytes (without its signature): what the next attestation of the
/// same device names as its predecessor.
pub fn statement_hash(body: &[u8]) -> Digest {
    prefixed(STATEMENT, body)
}

/// An inner node of a batch's tree, over its two children (an absent leaf is 32 zero bytes).
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(NODE);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The shard, of `shards`, that holds `device`'s mailbox: the first four bytes of SHA-256 over
/// `"rpcgen mailbox shard v1\0"` and the id's UTF-8 bytes, as a big-endian u32, modulo
/// `shards` (0 when there is one shard).
///
/// # Panics
///
/// With no shards.
pub fn owner(device: &str, shards: u32) -> u32 {
    assert!(shards > 0, "at least one shard");
    if shards == 1 {
        return 0;
    }
    let digest = prefixed(SHARD, device.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % shards
}

fn prefixed(prefix: &[u8], bytes: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(prefix);
    hasher.update(bytes);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(digest: Digest) -> String {
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_documented_vectors() {
        // docs/mailbox.md, "Hashes" (also computed with Python's hashlib).
        assert_eq!(
            hex(recipients_hash(&["alice-phone", "bob"])),
            "20d36da2a14deebaa2cb61075ef1954e94a971d0ac62a49a0f44724e093402dc"
        );
        assert_eq!(
            hex(common_hash(b"hello")),
            "35d275e3d9f55e8d5c150f7dcd2c3e83b848faa89e82c7fd31b9621740b459ab"
        );
        assert_eq!(
            hex(part_hash(b"p2")),
            "5f3fcd14608ee15d38db3e706a827c65d0b653fdcfe49c5f90a3ab77f5675a09"
        );
    }

    #[test]
    fn owners_follow_the_documented_rule() {
        // docs/mailbox.md, "Shards" (also computed with Python's hashlib).
        let owners: Vec<u32> =
            ["alice-phone", "bob", "carol", "dave"].iter().map(|device| owner(device, 2)).collect();
        assert_eq!(owners, [1, 1, 0, 1]);
        assert!(["alice-phone", "bob"].iter().all(|device| owner(device, 1) == 0));
        assert_eq!(owner("bob", 7), 5);
    }

    #[test]
    fn lists_that_concatenate_alike_hash_apart() {
        assert_ne!(recipients_hash(&["ab", "c"]), recipients_hash(&["a", "bc"]));
        assert_ne!(recipients_hash(&["a", "b"]), recipients_hash(&["b", "a"]));
        assert_ne!(common_hash(b"x"), part_hash(b"x"));
    }
}
