//! Golden tests for the Rust backend: every `tests/golden/*.fbs` and `*.service` is compiled and
//! the output compared with the `.rs` file beside it.
//!
//! To regenerate the expected files after an intended change, run
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p rpcgen --test golden
//! ```
//!
//! and review the diff. The `.rs` files are also compiled and exercised by `tests/generated.rs`
//! (the service's topic methods by `tests/topics.rs`), so a golden file that stops compiling
//! fails there.

use std::fs;
use std::path::{Path, PathBuf};

use rpcgen::emit::rust::{RustOptions, generate};
use rpcgen::{LoadOptions, check_files};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compiles one schema with the Rust backend, panicking with the diagnostics if it fails.
fn compile(input: &Path) -> String {
    let checked = check_files(&[input.to_path_buf()], &LoadOptions::default());
    let Some(model) = &checked.model else {
        panic!("{} does not check:\n{}", input.display(), checked.render());
    };
    let name = input.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let options = RustOptions { sources: vec![name], ..RustOptions::default() };
    match generate(model, &options) {
        Ok(code) => code,
        Err(diags) => {
            let checked = rpcgen::Checked { diagnostics: diags, ..checked };
            panic!("{} does not generate:\n{}", input.display(), checked.render())
        }
    }
}

#[test]
fn generated_rust_matches_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut inputs: Vec<PathBuf> = fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "fbs" || e == "service"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no golden inputs found");
    let mut mismatches = Vec::new();
    for input in &inputs {
        let actual = compile(input);
        let expected_path = input.with_extension("rs");
        if update {
            fs::write(&expected_path, &actual).expect("golden file is writable");
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            mismatches.push(expected_path.display().to_string());
        }
    }
    assert!(
        mismatches.is_empty(),
        "generated code differs from {mismatches:?}; run UPDATE_GOLDEN=1 cargo test -p rpcgen --test golden and review the diff"
    );
}

/// Checks `text` as a schema file and runs the Rust backend on it.
fn generate_text(text: &str, options: &RustOptions) -> (rpcgen::Checked, Result<String, String>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("schema.fbs");
    fs::write(&path, text).expect("temporary file is writable");
    let checked = check_files(&[path], &LoadOptions::default());
    let model = checked.model.as_ref().unwrap_or_else(|| panic!("{}", checked.render()));
    let result = generate(model, options)
        .map_err(|diags| diags.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("\n"));
    (checked, result)
}

#[test]
fn generated_name_clashes_are_reported() {
    let (_, result) = generate_text(
        "table Monster { a: int; }\ntable MonsterT { b: int; }\nstruct MonsterArgs { c: int; }\n",
        &RustOptions::default(),
    );
    let errors = result.expect_err("clash");
    assert!(
        errors.contains(
            "generated Rust name `MonsterT` of table `MonsterT` clashes with table `Monster`"
        ),
        "{errors}"
    );
    assert!(errors.contains("`MonsterArgs` of struct `MonsterArgs`"), "{errors}");
}

#[test]
fn escaped_names_that_meet_are_reported() {
    let (_, result) =
        generate_text("table Self { a: int; }\ntable Self_ { b: int; }\n", &RustOptions::default());
    let errors = result.expect_err("clash");
    assert!(errors.contains("`Self_`"), "{errors}");
}

/// Found by the corpus: a union of tables `Self` and `self` generated two `as_self()` methods,
/// which did not compile.
#[test]
fn members_whose_accessors_meet_are_reported() {
    let (_, result) = generate_text(
        "table Self { a: int; }\ntable self { b: int; }\nunion Which { Self, self }\n\
         table T { fooBar: int; foo_bar: int; }\n",
        &RustOptions::default(),
    );
    let errors = result.expect_err("clash");
    assert!(
        errors.contains(
            "generated Rust name `self` of variant `self` of `Which` clashes with variant `Self` of `Which`"
        ),
        "{errors}"
    );
    assert!(errors.contains("`foo_bar` of field `foo_bar` of `T`"), "{errors}");
}

/// Found by the service golden file: service `Audit` became module `audit`, beside the module of
/// namespace `shop.audit`.
#[test]
fn a_service_named_like_a_sibling_namespace_is_reported() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let fbs = dir.path().join("m.fbs");
    fs::write(&fbs, "namespace shop.audit;\ntable Entry { a: int; }\n").expect("writable");
    let service = dir.path().join("s.service");
    fs::write(
        &service,
        "include \"m.fbs\";\nnamespace shop;\nservice Audit { w: audit.Entry -> void; }\n",
    )
    .expect("writable");
    let checked = check_files(&[service], &LoadOptions::default());
    let model = checked.model.as_ref().unwrap_or_else(|| panic!("{}", checked.render()));
    let errors = generate(model, &RustOptions::default()).expect_err("clash");
    let messages: Vec<_> = errors.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        ["generated Rust name `audit` of service `shop.Audit` clashes with namespace `shop.audit`"]
    );
}

#[test]
fn header_names_sources_and_runtime_path_is_configurable() {
    let options = RustOptions {
        runtime: "crate::rt".into(),
        sources: vec!["a.fbs".into()],
        ..RustOptions::default()
    };
    let (_, result) = generate_text("table T { a: int; }\nroot_type T;\n", &options);
    let code = result.expect("generates");
    assert!(code.starts_with("// @generated by rpcgen from a.fbs. Do not edit.\n"), "{code}");
    assert!(code.contains("const _: () = crate::rt::codegen::require_abi(1);"), "{code}");
    assert!(code.contains("crate::rt::flatbuffers::Table<'a>"), "{code}");
    assert!(!code.contains("::gateway_core"), "{code}");
}
