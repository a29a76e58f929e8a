//! The Merkle tree over a batch of requests (RFC 10049 §5.3): one signature covers them all,
//! and each response carries the path from its request's leaf to the signed root.

/// A node's value: the first 32 bytes of a SHA-512 digest.
pub type Hash = [u8; 32];

/// The most hashes a PATH may hold.
pub const MAX_PATH: usize = 32;

/// SHA-512 of the concatenated `parts`, cut to 32 bytes. `ring`'s SHA-512 is about 10% faster
/// here than `sha2`'s, and hashing is most of a response's cost.
fn hash(parts: &[&[u8]]) -> Hash {
    let mut context = ring::digest::Context::new(&ring::digest::SHA512);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&context.finish().as_ref()[..32]);
    out
}

/// A leaf: H(0x00 ‖ the whole request packet).
pub fn leaf(packet: &[u8]) -> Hash {
    hash(&[&[0x00], packet])
}

/// An inner node: H(0x01 ‖ left ‖ right).
pub fn node(left: &Hash, right: &Hash) -> Hash {
    hash(&[&[0x01], left, right])
}

/// The leaves of a batch of request packets, the same values as [`leaf`] of each. Hashing is
/// most of a response's cost, and independent messages hash several at a time: eight per
/// AVX-512F instruction stream (`commonware-cryptography`'s kernel), about four times the
/// throughput of one by one on the machine of docs/benchmarks.md.
pub fn leaves<'a>(packets: impl IntoIterator<Item = &'a [u8]>) -> Vec<Hash> {
    hash_prefixed(0x00, packets)
}

/// H(`prefix` ‖ message) of each message, cut to 32 bytes, hashed together.
fn hash_prefixed<'a>(prefix: u8, messages: impl IntoIterator<Item = &'a [u8]>) -> Vec<Hash> {
    use commonware_cryptography::{Hasher, Sha512};
    thread_local! {
        /// The kernel takes each message as one slice: they are laid out prefixed, end to end,
        /// in a buffer each thread keeps (a batch's is tens of kilobytes).
        static ARENA: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let messages: Vec<&[u8]> = messages.into_iter().collect();
    if let [message] = messages[..] {
        return vec![hash(&[&[prefix], message])];
    }
    ARENA.with_borrow_mut(|arena| {
        arena.clear();
        arena.reserve(messages.iter().map(|m| 1 + m.len()).sum());
        let mut ends = Vec::with_capacity(messages.len());
        for message in &messages {
            arena.push(prefix);
            arena.extend_from_slice(message);
            ends.push(arena.len());
        }
        let starts = std::iter::once(0).chain(ends.iter().copied());
        let slices: Vec<&[u8]> =
            starts.zip(&ends).map(|(start, &end)| &arena[start..end]).collect();
        Sha512::hash_many(&slices, &commonware_parallel::Sequential)
            .iter()
            .map(|digest| digest.as_ref()[..32].try_into().expect("64-byte digest"))
            .collect()
    })
}

/// A tree over leaves `0..n`, padded to a power of two with all-zero hashes (which no request
/// hashes to; any padding gives valid paths, as a client only follows its own).
#[derive(Clone, Debug)]
pub struct Tree {
    /// `levels[0]` are the (padded) leaves, the last level is the root alone.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// The tree over `leaves` (at least one).
    ///
    /// # Panics
    ///
    /// With no leaf, or more than 2^32.
    pub fn new(mut leaves: Vec<Hash>) -> Tree {
        assert!(!leaves.is_empty(), "a tree has at least one leaf");
        let width = leaves.len().next_power_of_two();
        assert!(width.trailing_zeros() as usize <= MAX_PATH, "too many leaves");
        leaves.resize(width, [0; 32]);
        let mut levels = vec![leaves];
        while levels.last().expect("one level").len() > 1 {
            let below = levels.last().expect("one level");
            let above = hash_prefixed(0x01, below.chunks_exact(2).map(|pair| pair.as_flattened()));
            levels.push(above);
        }
        Tree { levels }
    }

    pub fn root(&self) -> &Hash {
        &self.levels.last().expect("one level")[0]
    }

    /// The number of hashes in every path: the tree's height.
    pub fn height(&self) -> usize {
        self.levels.len() - 1
    }

    /// Appends the path of leaf `index` to `out`: its sibling at each level, bottom up.
    pub fn path_into(&self, index: usize, out: &mut Vec<u8>) {
        let mut i = index;
        for level in &self.levels[..self.levels.len() - 1] {
            out.extend_from_slice(&level[i ^ 1]);
            i /= 2;
        }
    }
}

/// RFC 10049 §5.3.1: whether `leaf` at `index`, with `path` (32-byte hashes, bottom up), leads to
/// `root`. Bits of `index` left over once the path is used up must be zero.
pub fn verify(leaf: &Hash, index: u32, path: &[u8], root: &Hash) -> bool {
    if path.len() % 32 != 0 || path.len() / 32 > MAX_PATH {
        return false;
    }
    let mut h = *leaf;
    let mut bits = index;
    for sibling in path.chunks_exact(32) {
        let sibling: &Hash = sibling.try_into().expect("32 bytes");
        h = if bits & 1 == 0 { node(&h, sibling) } else { node(sibling, &h) };
        bits >>= 1;
    }
    bits == 0 && h == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_proves_its_place_and_no_other() {
        for n in [1usize, 2, 3, 5, 8, 13] {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf(&[i as u8; 40])).collect();
            let tree = Tree::new(leaves.clone());
            assert_eq!(tree.height(), n.next_power_of_two().trailing_zeros() as usize);
            for (i, l) in leaves.iter().enumerate() {
                let mut path = Vec::new();
                tree.path_into(i, &mut path);
                assert_eq!(path.len(), 32 * tree.height());
                assert!(verify(l, i as u32, &path, tree.root()), "leaf {i} of {n}");
                if n > 1 {
                    assert!(!verify(l, (i as u32) ^ 1, &path, tree.root()), "wrong index");
                }
                // Leftover index bits must be zero.
                let high = (i as u32) | (1 << tree.height());
                assert!(!verify(l, high, &path, tree.root()));
            }
        }
    }

    #[test]
    fn leaves_hashed_together_equal_leaves_hashed_alone() {
        // Up to 19 messages: whole and partial groups of eight lanes, lengths that differ in
        // their number of blocks.
        for n in 1..20usize {
            let packets: Vec<Vec<u8>> =
                (0..n).map(|i| vec![i as u8; [1024, 1, 111, 112, 2048, 1280][i % 6]]).collect();
            let together = leaves(packets.iter().map(Vec::as_slice));
            let alone: Vec<Hash> = packets.iter().map(|p| leaf(p)).collect();
            assert_eq!(together, alone, "{n} packets");
        }
        assert!(leaves([]).is_empty());
    }

    #[test]
    fn a_single_leaf_is_the_root() {
        let l = leaf(b"request");
        let tree = Tree::new(vec![l]);
        assert_eq!(tree.root(), &l);
        assert!(verify(&l, 0, &[], &l));
    }
}
