//! Golden tests for the Rust backend: every `tests/golden/*.fbs` is compiled and the output
//! compared with the `.rs` file beside it.
//!
//! To regenerate the expected files after an intended change, run
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p rpcgen --test golden
//! ```
//!
//! and review the diff. The `.rs` files are also compiled and exercised by `tests/generated.rs`,
//! so a golden file that stops compiling fails there.

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
        .filter(|p| p.extension().is_some_and(|e| e == "fbs"))
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
