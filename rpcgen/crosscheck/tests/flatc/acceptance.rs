//! Accept/reject agreement: small schemas, one construct each, given to rpcgen and to flatc's
//! Rust and TypeScript generators. rpcgen must accept every schema flatc accepts for Rust or
//! TypeScript, and reject, with a diagnostic, every one both refuse. (Where flatc's Rust output
//! for an accepted schema does not compile, as for struct keys, rpcgen's must: the corpus
//! schemas, compiled in this crate, cover that.)

use std::path::Path;

use crate::runner::Flatc;

/// Each case: a name, the schema, and whether flatc (Rust or TypeScript) accepts it.
const CASES: &[(&str, &str, bool)] = &[
    (
        "struct key with arrays",
        "struct P { x: short; } struct K { a: uint; b: [ubyte:4]; c: [P:2]; } table T { k: K (key); } table R { v: [T]; } root_type R;",
        true,
    ),
    ("empty union", "union Nothing {} table T { n: Nothing; } root_type T;", true),
    (
        "union variant ids",
        "table A { x: int; } table B { y: int; } union U { A (id: 5), B (id: 2) } table T { u: U; } root_type T;",
        true,
    ),
    ("force_align on a vector", "table T { v: [ubyte] (force_align: 16); } root_type T;", true),
    (
        "force_align on a struct",
        "struct S (force_align: 16) { a: int; } table T { s: S; } root_type T;",
        true,
    ),
    (
        "a table whose only non-scalar field is a union",
        "table A {} union U { A } table T { u: U; } root_type T;",
        true,
    ),
    (
        "nested flatbuffer",
        "table In { a: int; } table T { b: [ubyte] (nested_flatbuffer: \"In\"); } root_type T;",
        true,
    ),
    (
        "rpc_service",
        "table Q {} table A {} rpc_service S { Call(Q): A (streaming: \"server\"); } root_type Q;",
        true,
    ),
    (
        "deep namespaces, partial names",
        "namespace a.b.c.d.e.f; table L {} namespace a.b; table B { l: c.d.e.f.L; } root_type B;",
        true,
    ),
    (
        "NaN and infinite defaults",
        "table T { a: double = nan; b: float = -inf; c: double = +infinity; } root_type T;",
        true,
    ),
    (
        "unions with declared tag types",
        "table A {} table B {} union W: int { A = 555, B } union S: byte { A = -3, B } table T { w: W; s: [S]; } root_type T;",
        true,
    ),
    (
        "a union tagged with a bool",
        "table A {} union U: bool { A } table T { u: U; } root_type T;",
        false,
    ),
    (
        "a union tag out of its type's range",
        "table A {} union U: ubyte { A = 300 } table T { u: U; } root_type T;",
        false,
    ),
    ("a union tag of 0", "table A {} union U: int { A = 0 } table T { u: U; } root_type T;", false),
    ("a 64-bit offset vector", "table T { v: [int] (vector64); } root_type T;", false),
    ("a 64-bit offset string", "table T { s: string (offset64); } root_type T;", false),
    ("key on a vector", "table T { v: [int] (key); } root_type T;", false),
    ("two keys", "table T { a: int (key); b: int (key); } root_type T;", false),
    ("a vector of vectors", "table T { v: [[int]]; } root_type T;", false),
    ("a union in a struct", "table A {} union U { A } struct S { u: U; } root_type A;", false),
    (
        "nested_flatbuffer on a string",
        "table In {} table T { s: string (nested_flatbuffer: \"In\"); } root_type T;",
        false,
    ),
    ("an unknown type", "table T { m: Missing; } root_type T;", false),
    (
        "a struct field with a default",
        "struct S { a: int = 3; } table T { s: S; } root_type T;",
        false,
    ),
];

/// Whether flatc's `generator` (`--rust`, `--ts`) accepts `schema`.
fn flatc_accepts(flatc: &Flatc, schema: &Path, generator: &str, out: &Path) -> bool {
    let out = out.display().to_string();
    let schema = schema.display().to_string();
    flatc.run_in(&[generator, "--gen-object-api", "-o", &out, &schema]).is_ok()
}

#[test]
fn rpcgen_accepts_what_flatc_accepts_and_rejects_what_it_rejects() {
    let flatc = Flatc::locate();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut failures = Vec::new();
    for (index, (name, text, accepted)) in CASES.iter().enumerate() {
        let schema = dir.path().join(format!("case{index}.fbs"));
        std::fs::write(&schema, text).expect("the schema is written");
        let out = dir.path().join(format!("out{index}"));
        let flatc_rust = flatc_accepts(&flatc, &schema, "--rust", &out);
        let flatc_ts = flatc_accepts(&flatc, &schema, "--ts", &out);
        let checked = rpcgen::check_files(std::slice::from_ref(&schema), &Default::default());
        let ours = checked.model.is_some();
        if (flatc_rust || flatc_ts) != *accepted {
            failures.push(format!(
                "{name}: flatc accepts it for Rust: {flatc_rust}, for TypeScript: {flatc_ts}; \
                 the case says {accepted}"
            ));
        }
        if ours != *accepted {
            failures.push(format!(
                "{name}: rpcgen {} it, flatc does not\n{}",
                if ours { "accepts" } else { "rejects" },
                checked.render()
            ));
        }
        if !ours && !checked.render().contains("error") {
            failures.push(format!("{name}: rejected without an error diagnostic"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
