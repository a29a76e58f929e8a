//! The verifiers rpcgen generates, on the corpus schemas (`schemas/corpus`): the gate every
//! service and client puts before reading a payload. The first byte picks the root type, the
//! rest is the buffer. A buffer the verifier accepts is read whole (every accessor, through
//! `Debug` and `unpack`) and written again; the copy verifies, and copying it again gives the
//! same bytes (the first copy may differ from the input: packing sorts keyed vectors and leaves
//! out fields equal to their default).

use gateway_core::flatbuffers::FlatBufferBuilder;
use rpcgen_crosscheck::corpus::{
    attrs, crlf, enums, keywords, ns, rpc, scalars, structs, unions, variants, vectors,
};

/// Defines the function that checks one root type.
macro_rules! root {
    ($name:ident, $root_as:path, $finish:path) => {
        fn $name(bytes: &[u8]) {
            let Ok(reader) = $root_as(bytes) else { return };
            let _ = format!("{reader:?}");
            let object = reader.unpack();
            let copy = {
                let mut fbb = FlatBufferBuilder::new();
                let root = object.pack(&mut fbb);
                $finish(&mut fbb, root);
                fbb.finished_data().to_vec()
            };
            let again = $root_as(&copy).expect("a buffer packed from a read one verifies").unpack();
            // Packing sorts vectors of keyed tables, as flatc does: the copy of a copy is the
            // same. `Debug`, not `==`: a NaN read is a NaN written.
            let mut fbb = FlatBufferBuilder::new();
            let root = again.pack(&mut fbb);
            $finish(&mut fbb, root);
            assert_eq!(fbb.finished_data(), &copy[..], "a buffer written otherwise once copied");
            let third = $root_as(fbb.finished_data()).expect("the copy verifies").unpack();
            assert_eq!(format!("{third:?}"), format!("{again:?}"), "a copy read otherwise");
        }
    };
}

root!(scalars, scalars::root_as_scalars, scalars::finish_scalars_buffer);
root!(enums, enums::root_as_enums, enums::finish_enums_buffer);
root!(structs, structs::root_as_structs, structs::finish_structs_buffer);
root!(vectors, vectors::root_as_vectors, vectors::finish_vectors_buffer);
root!(attrs, attrs::root_as_attrs, attrs::finish_attrs_buffer);
root!(drawing, unions::root_as_drawing, unions::finish_drawing_buffer);
root!(board, variants::root_as_board, variants::finish_board_buffer);
root!(keywords, keywords::root_as_root, keywords::finish_root_buffer);
root!(world, ns::root_as_world, ns::finish_world_buffer);
root!(request, rpc::root_as_request, rpc::finish_request_buffer);
root!(line, crlf::root_as_line, crlf::finish_line_buffer);

/// A root type's check.
type Check = fn(&[u8]);

/// The root types (named as their schema), in the order of the first byte's value (modulo
/// their number).
pub const ROOTS: &[(&str, Check)] = &[
    ("scalars", scalars),
    ("enums", enums),
    ("structs", structs),
    ("vectors", vectors),
    ("attributes", attrs),
    ("unions", drawing),
    ("union_variants", board),
    ("keywords", keywords),
    ("namespaces", world),
    ("rpc", request),
    ("crlf", line),
];

/// A buffer for the root type its first byte picks.
pub fn verify(data: &[u8]) {
    let Some((&which, buffer)) = data.split_first() else { return };
    (ROOTS[usize::from(which) % ROOTS.len()].1)(buffer);
}
