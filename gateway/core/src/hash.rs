//! [`FastHasher`]: a cheap hash for the gateway's hot maps (method and subscription ids, request
//! tokens, subjects, event keys), where SipHash's resistance to chosen collisions is not needed.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A multiply and rotate per 8 bytes, or per integer (FxHash's scheme). For keys an adversary
/// cannot choose to collide: ids the gateway assigns or hashes already, subjects it made from
/// its registry, and keys that only collide within one connection's bounded queue.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastHasher(u64);

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

const K: u64 = 0x517c_c1b7_2722_0a95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_nearby_keys_apart() {
        let build = BuildHasherDefault::<FastHasher>::default();
        assert_eq!(build.hash_one("rpc.a.b"), build.hash_one("rpc.a.b"));
        assert_ne!(build.hash_one("rpc.a.b"), build.hash_one("rpc.a.c"));
        assert_ne!(build.hash_one(1u32), build.hash_one(2u32));
        assert_ne!(build.hash_one(7u64), build.hash_one(8u64));
        // A string is its bytes then a terminator: "ab" + "c" differs from "a" + "bc".
        assert_ne!(build.hash_one(("ab", "c")), build.hash_one(("a", "bc")));
        // Hashes spread over the high bits a hash table takes its tags from.
        let tops: std::collections::HashSet<u64> =
            (0u32..256).map(|n| build.hash_one(n) >> 57).collect();
        assert!(tops.len() > 64, "{} distinct tags", tops.len());
    }
}
