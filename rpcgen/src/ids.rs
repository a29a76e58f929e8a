//! Stable numeric ids for methods, topics and errors.
//!
//! An id is the 32-bit FNV-1a hash of the item's qualified name (`pkg.Service.method`), so it
//! never changes while the name does not, needs no registry, and can be recomputed by any
//! implementation. 0 is reserved (the wire uses it for "no method"); a name that hashes to 0 is
//! rejected like a collision. Collisions within a kind are rejected by the checker; the
//! `(id: N)` attribute pins an id explicitly to resolve one or to keep an id across a rename.

/// FNV-1a, 32 bits, over the UTF-8 bytes of `qualified_name`.
pub fn stable_id(qualified_name: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in qualified_name.bytes() {
        hash ^= byte as u32;
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_published_fnv1a_vectors() {
        // Vectors from the FNV reference test suite.
        assert_eq!(stable_id(""), 0x811c_9dc5);
        assert_eq!(stable_id("a"), 0xe40c_292c);
        assert_eq!(stable_id("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn the_worked_examples_of_the_protocol_spec() {
        // docs/protocol.md, "Requests", and docs/service-files.md, "Stable ids".
        assert_eq!(stable_id("examples.some_api.SomeApi.sum"), 0xa32d_76cc);
        assert_eq!(stable_id("examples.echo.Echo.echo"), 0x62e9_e3df);
        assert_eq!(stable_id("examples.echo.Echo.delay"), 0x5b2b_38f1);
        assert_eq!(stable_id("SomeApi.sum"), 0x3a6e_81ea);
    }
}
