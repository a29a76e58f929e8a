//! Property tests of rpcgen's generated code for every root type of `schemas/corpus`.
//!
//! - Round trip (this file): an arbitrary owned object (`strategies.rs`) is packed, finished,
//!   verified by `root_as_*`, read through every accessor (`readers.rs`) and unpacked; the result
//!   equals the object, with keyed vectors sorted by key as `pack` writes them.
//! - Robustness (`verifier.rs`): no byte string, random or a mutated valid buffer, makes the
//!   verifier, the readers or `unpack` panic.
//!
//! Each property runs [`CASES`] cases; set `PROPTEST_CASES` to run more. A failure is shrunk to a
//! minimal object and its seed saved under `proptest-regressions/`, to be committed with the fix.

mod readers;
mod strategies;
mod verifier;

use std::fmt::Debug;

use gateway_core::flatbuffers::FlatBufferBuilder;
use proptest::prelude::*;
use rpcgen_crosscheck::corpus::{
    attrs, crlf, enums, keywords, ns, rpc, scalars, structs, unions, variants, vectors,
};

/// Cases per property: enough to meet every variant and edge value many times, few enough that
/// the suite stays quick on two cores.
const CASES: u32 = 128;

fn config() -> ProptestConfig {
    ProptestConfig { cases: CASES, ..ProptestConfig::default() }
}

/// Equality with NaN equal to NaN. `Debug` prints a float as the shortest text that reads back as
/// the same value, `-0.0` with its sign and every NaN as `NaN`, so two objects print alike
/// exactly when they are equal field by field, NaNs aside (`readers.rs` compares float bits, so
/// payloads are checked there).
fn same<T: Debug + PartialEq>(actual: &T, expected: &T) -> Result<(), TestCaseError> {
    if actual != expected {
        prop_assert_eq!(format!("{actual:#?}"), format!("{expected:#?}"));
    }
    Ok(())
}

/// Defines a round-trip property: `$strategy` builds objects, `$finish` finishes the buffer,
/// `$root_as` verifies and reads it, `$check` compares the reader with the object after
/// `$expected` (what `pack` is expected to make of the object: keyed vectors sorted).
macro_rules! roundtrip {
    ($name:ident, $strategy:expr, $finish:path, $root_as:path, $check:path, $expected:expr) => {
        proptest! {
            #![proptest_config(config())]
            #[test]
            fn $name(object in $strategy) {
                let mut fbb = FlatBufferBuilder::new();
                let root = object.pack(&mut fbb);
                $finish(&mut fbb, root);
                let reader = match $root_as(fbb.finished_data()) {
                    Ok(reader) => reader,
                    Err(e) => return Err(TestCaseError::fail(format!("verifier rejects pack: {e}"))),
                };
                let expected = $expected(object);
                $check(reader, &expected);
                same(&reader.unpack(), &expected)?;
            }
        }
    };
}

/// Objects whose `pack` changes nothing: no keyed vectors, no float field defaulting to zero.
fn unchanged<T>(object: T) -> T {
    object
}

/// What a table's float field with default 0 reads back as. The builder leaves out a value equal
/// to the default, and `-0.0 == 0.0`, so `-0.0` is not written and reads as `0.0`. flatc's
/// builders do the same (`flatc -b` drops `-0.0` too); structs, vectors and optional (`= null`)
/// scalars keep the sign.
macro_rules! written {
    ($x:expr) => {
        if $x == 0.0 { 0.0 } else { $x }
    };
}

/// What `pack` writes for keyed vectors: stably sorted by key (equal keys keep their order).
fn sorted_tags(tags: &mut Option<Vec<rpcgen_crosscheck::corpus::common::TagT>>) {
    if let Some(tags) = tags {
        tags.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

fn sorted_vectors(mut object: vectors::VectorsT) -> vectors::VectorsT {
    sorted_tags(&mut object.tags);
    object
}

fn sorted_attrs(mut object: attrs::AttrsT) -> attrs::AttrsT {
    if let Some(ordered) = &mut object.ordered {
        ordered.b = written!(ordered.b);
    }
    object.by_id.sort_by_key(|e| e.id);
    if let Some(by_name) = &mut object.by_name {
        by_name.sort_by(|a, b| a.name.cmp(&b.name));
    }
    object
}

fn unions_written(mut object: unions::DrawingT) -> unions::DrawingT {
    use unions::ShapeT;
    for shape in [&mut object.main, &mut object.backup] {
        match shape {
            ShapeT::Circle(circle) => circle.radius = written!(circle.radius),
            ShapeT::Box(square) | ShapeT::Tile(square) => square.side = written!(square.side),
            _ => {}
        }
    }
    object
}

fn keywords_written(mut object: keywords::RootT) -> keywords::RootT {
    if let Some(a) = &mut object.a {
        a.float = written!(a.float);
    }
    object
}

fn sorted_world(mut object: ns::WorldT) -> ns::WorldT {
    let betas = object.beta.as_deref_mut().into_iter().chain(object.others.iter_mut().flatten());
    for beta in betas {
        if let Some(area) = &mut beta.area {
            sorted_tags(&mut area.tags);
        }
    }
    object
}

roundtrip!(
    scalars_round_trip,
    strategies::scalars(),
    scalars::finish_scalars_buffer,
    scalars::root_as_scalars,
    readers::scalars,
    unchanged
);
roundtrip!(
    enums_round_trip,
    strategies::enums(),
    enums::finish_enums_buffer,
    enums::root_as_enums,
    readers::enums,
    unchanged
);
roundtrip!(
    structs_round_trip,
    strategies::structs(),
    structs::finish_structs_buffer,
    structs::root_as_structs,
    readers::structs,
    unchanged
);
roundtrip!(
    vectors_round_trip,
    strategies::vectors(),
    vectors::finish_vectors_buffer,
    vectors::root_as_vectors,
    readers::vectors,
    sorted_vectors
);
roundtrip!(
    attrs_round_trip,
    strategies::attrs(),
    attrs::finish_attrs_buffer,
    attrs::root_as_attrs,
    readers::attrs,
    sorted_attrs
);
roundtrip!(
    unions_round_trip,
    strategies::drawing(),
    unions::finish_drawing_buffer,
    unions::root_as_drawing,
    readers::drawing,
    unions_written
);
roundtrip!(
    union_variants_round_trip,
    strategies::board(),
    variants::finish_board_buffer,
    variants::root_as_board,
    readers::board,
    unchanged
);
roundtrip!(
    keywords_round_trip,
    strategies::keywords(),
    keywords::finish_root_buffer,
    keywords::root_as_root,
    readers::keywords,
    keywords_written
);
roundtrip!(
    namespaces_round_trip,
    strategies::world(),
    ns::finish_world_buffer,
    ns::root_as_world,
    readers::world,
    sorted_world
);
roundtrip!(
    rpc_round_trip,
    strategies::request(),
    rpc::finish_request_buffer,
    rpc::root_as_request,
    readers::request,
    unchanged
);
roundtrip!(
    crlf_round_trip,
    strategies::line(),
    crlf::finish_line_buffer,
    crlf::root_as_line,
    readers::line,
    unchanged
);
