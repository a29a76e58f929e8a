//! Golden tests for the TypeScript backend: `tests/golden/monster.fbs` and
//! `tests/golden/service.service` are compiled and every module compared with the files under
//! `tests/golden/ts/<name>/`. To regenerate them after an intended change, run
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p rpcgen --test golden_ts
//! ```
//!
//! and review the diff. The same output is compiled with `tsc` under every strictness option and
//! exercised in Node by `cargo test -p rpcgen-crosscheck --test typescript`. This file also checks
//! the names the backend refuses to generate, and the command line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rpcgen::emit::ts::{GeneratedFile, TsOptions, generate};
use rpcgen::{LoadOptions, check_files};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn compile(input: &Path) -> Vec<GeneratedFile> {
    let checked = check_files(&[input.to_path_buf()], &LoadOptions::default());
    let Some(model) = &checked.model else {
        panic!("{} does not check:\n{}", input.display(), checked.render());
    };
    let name = input.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let options = TsOptions { sources: vec![name], ..TsOptions::default() };
    match generate(model, &options) {
        Ok(files) => files,
        Err(diags) => {
            let checked = rpcgen::Checked { diagnostics: diags, ..checked };
            panic!("{} does not generate:\n{}", input.display(), checked.render())
        }
    }
}

/// Every file under `dir`, as paths relative to it with `/` separators.
fn files_under(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        if entry.path().is_dir() {
            files_under(&entry.path(), &path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn generated_typescript_matches_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (input, name) in [("monster.fbs", "monster"), ("service.service", "service")] {
        let files = compile(&golden_dir().join(input));
        let dir = golden_dir().join("ts").join(name);
        if update {
            let _ = fs::remove_dir_all(&dir);
            for file in &files {
                let path = dir.join(&file.path);
                fs::create_dir_all(path.parent().expect("a folder"))
                    .expect("golden folder is writable");
                fs::write(&path, &file.contents).expect("golden file is writable");
            }
            continue;
        }
        let mut expected = Vec::new();
        files_under(&dir, "", &mut expected);
        expected.sort();
        let mut actual: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        actual.sort();
        if expected != actual {
            mismatches.push(format!("{name}: files {actual:?}, golden files {expected:?}"));
            continue;
        }
        for file in &files {
            let golden = fs::read_to_string(dir.join(&file.path)).unwrap_or_default();
            if golden != file.contents {
                mismatches.push(format!("{name}/{}", file.path));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "generated TypeScript differs from the golden files: {mismatches:?}; run \
         UPDATE_GOLDEN=1 cargo test -p rpcgen --test golden_ts and review the diff"
    );
}

/// Checks `files` (name, text) and runs the TypeScript backend on them.
fn generate_files(
    files: &[(&str, &str)],
    options: &TsOptions,
) -> Result<Vec<GeneratedFile>, String> {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (name, text) in files {
        fs::write(dir.path().join(name), text).expect("temporary file is writable");
    }
    let inputs: Vec<PathBuf> = files.iter().map(|(name, _)| dir.path().join(name)).collect();
    let checked = check_files(&inputs, &LoadOptions::default());
    let model = checked.model.as_ref().unwrap_or_else(|| panic!("{}", checked.render()));
    generate(model, options).map_err(|diags| checked_render(&checked, diags))
}

fn checked_render(checked: &rpcgen::Checked, diags: rpcgen::diag::Diagnostics) -> String {
    diags.render(&checked.sources, false)
}

fn clash(text: &str) -> String {
    generate_files(&[("schema.fbs", text)], &TsOptions::default()).expect_err("a clash")
}

#[test]
fn generated_name_clashes_are_reported() {
    let errors = clash("table Monster { a: int; }\ntable MonsterT { b: int; }\n");
    assert!(
        errors.contains(
            "generated TypeScript name `MonsterT` of table `MonsterT` clashes with the object \
             class of table `Monster`"
        ),
        "{errors}"
    );
}

#[test]
fn members_whose_names_meet_are_reported() {
    // `items` gives `itemsLength()`, and so does the field `items_length`; `fooBar` and
    // `foo_bar` are both `fooBar()`.
    let errors = clash("table T { items: [int]; items_length: int; fooBar: int; foo_bar: int; }\n");
    assert!(
        errors.contains("generated TypeScript name `itemsLength` of field `items_length` of `T` clashes with field `items` of `T`"),
        "{errors}"
    );
    assert!(errors.contains("name `fooBar` of field `foo_bar` of `T`"), "{errors}");
}

#[test]
fn a_type_named_like_a_child_namespace_is_reported() {
    let errors = clash("namespace a;\ntable b { x: int; }\nnamespace a.b;\ntable C { y: int; }\n");
    assert!(
        errors
            .contains("generated TypeScript name `b` of namespace `a.b` clashes with table `a.b`"),
        "{errors}"
    );
}

#[test]
fn namespaces_that_differ_only_in_case_are_reported() {
    let errors =
        clash("namespace a.Foo;\ntable T { x: int; }\nnamespace a.foo;\ntable U { y: int; }\n");
    assert!(
        errors.contains("generated TypeScript files `a/Foo.ts` and `a/foo.ts` differ only in case"),
        "{errors}"
    );
}

#[test]
fn a_service_and_a_table_of_the_same_generated_name_are_reported() {
    let errors = generate_files(
        &[
            ("m.fbs", "namespace s;\ntable Ping { n: int; }\ntable ApiClient { n: int; }\n"),
            (
                "api.service",
                "include \"m.fbs\";\nnamespace s;\nservice Api { ping: Ping -> Ping; }\n",
            ),
        ],
        &TsOptions::default(),
    )
    .expect_err("a clash");
    assert!(
        errors.contains(
            "`ApiClient` of the client class of service `s.Api` clashes with table `s.ApiClient`"
        ),
        "{errors}"
    );
}

#[test]
fn reserved_words_are_escaped_and_globals_left_alone() {
    let files = generate_files(
        &[("k.fbs", "namespace k;\ntable super { enum: int; constructor: int; }\ntable BigInt { x: int; }\n")],
        &TsOptions::default(),
    )
    .expect("generates");
    let module = &files.iter().find(|f| f.path == "k.ts").expect("k.ts").contents;
    assert!(module.contains("export class super_ {"), "{module}");
    assert!(module.contains("export class BigInt_ {"), "{module}");
    assert!(module.contains("  enum(): number {"), "a member may be a reserved word");
    assert!(module.contains("  constructor_(): number {"), "but not `constructor`");
    assert!(
        module.contains("static addEnum(builder: $fb.Builder, enum_: number): void {"),
        "{module}"
    );
}

#[test]
fn modules_follow_namespaces_and_import_the_runtime_given() {
    let options = TsOptions { runtime: "my-runtime".into(), sources: vec!["a.fbs".into()] };
    let files = generate_files(
        &[("a.fbs", "namespace x.y;\ntable T { u: x.z.U; }\nnamespace x.z;\ntable U { n: int; }\nroot_type x.y.T;\n")],
        &options,
    )
    .expect("generates");
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["index.ts", "x.ts", "x/y.ts", "x/z.ts"]);
    let y = &files[2].contents;
    assert!(y.starts_with("// @generated by rpcgen from a.fbs. Do not edit.\n"), "{y}");
    assert!(y.contains("import * as $v from \"my-runtime/verify\";"), "{y}");
    assert!(y.contains("import * as $ns$x$z from \"./z.js\";"), "{y}");
    assert!(y.contains("$v.requireAbi(1);"), "{y}");
    assert!(y.contains("export function rootAsT(bytes: Uint8Array"), "{y}");
    assert_eq!(files[0].contents.lines().last(), Some("export * as x from \"./x.js\";"));
    assert!(
        files[1]
            .contents
            .contains("export * as y from \"./x/y.js\";\nexport * as z from \"./x/z.js\";")
    );
}

#[test]
fn the_command_line_writes_modules_only_when_they_change() {
    let dir = tempfile::tempdir().expect("temporary directory");
    fs::write(dir.path().join("api.fbs"), "namespace api;\ntable Ping { n: int; }\n").unwrap();
    fs::write(
        dir.path().join("api.service"),
        "include \"api.fbs\";\nnamespace api;\nservice Api { ping: Ping -> Ping; }\n",
    )
    .unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_rpcgen"))
            .args(["ts", "api.service", "--out", "gen"])
            .current_dir(dir.path())
            .output()
            .expect("rpcgen runs")
    };
    let first = run();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(stderr.contains("wrote gen/api.ts"), "{stderr}");
    let module = fs::read_to_string(dir.path().join("gen/api.ts")).expect("gen/api.ts");
    assert!(module.contains("export class ApiClient {"), "{module}");
    assert!(module.contains("from \"@rpcgen/client\";"), "{module}");
    let second = run();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert_eq!(stderr, "2 unchanged in gen\n");
}
