//! Parses every schema of flatc's own test suite that we keep (see `flatc_corpus/README.md`):
//! whatever flatc accepts, the parser must accept too.

use std::path::PathBuf;

use rpcgen::diag::Diagnostics;
use rpcgen::load::{Ast, LoadOptions, load};
use rpcgen::source::SourceMap;

#[test]
fn every_corpus_schema_parses_without_a_diagnostic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/flatc_corpus");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "fbs"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 9, "corpus files missing: {inputs:?}");

    let mut sources = SourceMap::new();
    let mut diags = Diagnostics::new();
    let files = load(&inputs, &LoadOptions::default(), &mut sources, &mut diags);
    assert!(diags.is_empty(), "{}", diags.render(&sources, false));
    assert_eq!(files.len(), inputs.len());

    // Spot checks that the trees hold what the files say.
    let monster = files
        .iter()
        .find(|f| sources.get(f.file).name.ends_with("monster_test.fbs"))
        .expect("monster_test.fbs loaded");
    let Ast::Fbs(ast) = &monster.ast else {
        panic!("monster_test.fbs is a schema")
    };
    assert_eq!(ast.items.len(), 23);
    let includes: Vec<&str> = monster
        .includes
        .iter()
        .map(|&id| sources.get(id).name.as_str())
        .collect();
    assert_eq!(includes.len(), 1);
    assert!(includes[0].ends_with("include_test1.fbs"));
}
