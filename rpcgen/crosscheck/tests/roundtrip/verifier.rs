//! The verifier as a gate: whatever bytes `root_as_*` is given, it returns an error or a reader,
//! never panics; and on a buffer it accepts, reading every field (accessors, `Debug`, `unpack`)
//! does not panic either, and the reader agrees with what `unpack` copied.
//!
//! Inputs are random byte strings and valid buffers (packed arbitrary objects) with a few random
//! edits: bytes overwritten, bits flipped, 32-bit words set to telling values (0, -1, small
//! offsets, the buffer's length), the buffer cut short. Mutated buffers keep most of their
//! structure, so they reach deep into the verifier, where random bytes stop at the root offset.

use gateway_core::flatbuffers::FlatBufferBuilder;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use rpcgen_crosscheck::corpus::{
    attrs, crlf, enums, keywords, ns, rpc, scalars, structs, unions, variants, vectors,
};

use crate::{config, readers, strategies};

/// One edit of a buffer.
#[derive(Clone, Debug)]
enum Edit {
    /// Overwrite one byte.
    Byte(Index, u8),
    /// Flip one bit.
    Flip(Index, u8),
    /// Overwrite a little-endian 32-bit word (offsets, lengths, vtable entries).
    Word(Index, u32),
    /// Cut the buffer at this point.
    Truncate(Index),
}

/// In an [`Edit::Word`], stands for the buffer's length (an offset just past the end).
const LENGTH: u32 = 0x8000_0000;

fn edit() -> impl Strategy<Value = Edit> {
    let word = prop_oneof![Just(0u32), Just(u32::MAX), Just(LENGTH), 0..64u32, any::<u32>(),];
    prop_oneof![
        4 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Byte(i, b)),
        4 => (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Edit::Flip(i, bit)),
        3 => (any::<Index>(), word).prop_map(|(i, w)| Edit::Word(i, w)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        if bytes.is_empty() {
            break;
        }
        let len = bytes.len();
        match edit {
            Edit::Byte(at, value) => bytes[at.index(len)] = *value,
            Edit::Flip(at, bit) => bytes[at.index(len)] ^= 1 << bit,
            Edit::Word(at, value) => {
                let value = if *value == LENGTH { len as u32 } else { *value };
                let start = at.index(len);
                let end = (start + 4).min(len);
                bytes[start..end].copy_from_slice(&value.to_le_bytes()[..end - start]);
            }
            Edit::Truncate(at) => bytes.truncate(at.index(len)),
        }
    }
    bytes
}

/// Random bytes, or a valid buffer from `valid` with one to eight edits.
fn inputs(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let mutated = (valid, vec(edit(), 1..8)).prop_map(|(bytes, edits)| apply(bytes, &edits));
    prop_oneof![1 => vec(any::<u8>(), 0..256), 4 => mutated]
}

/// Defines a property: no input makes `$root_as`, the reader checks or `unpack` panic.
macro_rules! never_panics {
    ($name:ident, $strategy:expr, $finish:path, $root_as:path, $check:path) => {
        proptest! {
            #![proptest_config(config())]
            #[test]
            fn $name(bytes in inputs($strategy.prop_map(|object| {
                let mut fbb = FlatBufferBuilder::new();
                let root = object.pack(&mut fbb);
                $finish(&mut fbb, root);
                fbb.finished_data().to_vec()
            }))) {
                if let Ok(reader) = $root_as(&bytes) {
                    let _ = format!("{reader:?}");
                    $check(reader, &reader.unpack());
                }
            }
        }
    };
}

never_panics!(
    scalars_never_panic,
    strategies::scalars(),
    scalars::finish_scalars_buffer,
    scalars::root_as_scalars,
    readers::scalars
);
never_panics!(
    enums_never_panic,
    strategies::enums(),
    enums::finish_enums_buffer,
    enums::root_as_enums,
    readers::enums
);
never_panics!(
    structs_never_panic,
    strategies::structs(),
    structs::finish_structs_buffer,
    structs::root_as_structs,
    readers::structs
);
never_panics!(
    vectors_never_panic,
    strategies::vectors(),
    vectors::finish_vectors_buffer,
    vectors::root_as_vectors,
    readers::vectors
);
never_panics!(
    attrs_never_panic,
    strategies::attrs(),
    attrs::finish_attrs_buffer,
    attrs::root_as_attrs,
    readers::attrs
);
never_panics!(
    unions_never_panic,
    strategies::drawing(),
    unions::finish_drawing_buffer,
    unions::root_as_drawing,
    readers::drawing
);
never_panics!(
    union_variants_never_panic,
    strategies::board(),
    variants::finish_board_buffer,
    variants::root_as_board,
    readers::board
);
never_panics!(
    keywords_never_panic,
    strategies::keywords(),
    keywords::finish_root_buffer,
    keywords::root_as_root,
    readers::keywords
);
never_panics!(
    namespaces_never_panic,
    strategies::world(),
    ns::finish_world_buffer,
    ns::root_as_world,
    readers::world
);
never_panics!(
    rpc_never_panic,
    strategies::request(),
    rpc::finish_request_buffer,
    rpc::root_as_request,
    readers::request
);
never_panics!(
    crlf_never_panic,
    strategies::line(),
    crlf::finish_line_buffer,
    crlf::root_as_line,
    readers::line
);
