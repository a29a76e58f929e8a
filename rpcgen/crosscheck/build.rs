//! Compiles every schema of `schemas/corpus` with rpcgen into `$OUT_DIR/corpus.rs`.

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
    "../../schemas/corpus/keys.fbs",
    "../../schemas/corpus/deep.fbs",
    "../../schemas/corpus/union_tags.fbs",
];

fn main() {
    rpcgen::Builder::new()
        .include_dir("../../schemas/corpus")
        // A second search path: `deep.fbs` includes `far/away.fbs`, which only this one holds.
        .include_dir("../../schemas/corpus/search")
        .out_name("corpus")
        .compile(SCHEMAS)
        .expect("corpus compiles");
}
