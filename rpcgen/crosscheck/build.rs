//! Compiles every schema of `schemas/corpus` with rpcgen into `$OUT_DIR/corpus.rs`, and every
//! schema of flatc's own test suite (`rpcgen/tests/flatc_corpus`) into `$OUT_DIR/flatc_corpus.rs`.

use std::path::PathBuf;

/// The corpus schemas with a root type; `common.fbs` and `inc/geo.fbs` come in through includes.
const SCHEMAS: &[&str] = &[
    "../../schemas/corpus/scalars.fbs",
    "../../schemas/corpus/enums.fbs",
    "../../schemas/corpus/structs.fbs",
    "../../schemas/corpus/vectors.fbs",
    "../../schemas/corpus/attributes.fbs",
    "../../schemas/corpus/unions.fbs",
    "../../schemas/corpus/union_variants.fbs",
    "../../schemas/corpus/keywords.fbs",
    "../../schemas/corpus/namespaces.fbs",
    "../../schemas/corpus/rpc.fbs",
    "../../schemas/corpus/crlf.fbs",
];

/// flatc's test schemas, copied from its repository (see the folder's README).
const FLATC_CORPUS: &str = "../tests/flatc_corpus";

fn main() {
    rpcgen::Builder::new()
        .include_dir("../../schemas/corpus")
        .out_name("corpus")
        .compile(SCHEMAS)
        .expect("corpus compiles");

    // Every `.fbs` file of the folder, so that a schema copied there is compiled (and must pass
    // clippy with the crate) without editing this list. They share one output: their
    // declarations do not clash.
    println!("cargo:rerun-if-changed={FLATC_CORPUS}");
    let mut flatc_schemas: Vec<PathBuf> = std::fs::read_dir(FLATC_CORPUS)
        .expect("flatc corpus folder")
        .map(|entry| entry.expect("flatc corpus entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "fbs"))
        .collect();
    flatc_schemas.sort();
    rpcgen::Builder::new()
        .out_name("flatc_corpus")
        .compile(&flatc_schemas)
        .expect("flatc's test schemas compile");
}
