//! The `build.rs` API.

use std::fs;

use rpcgen::Builder;
use rpcgen::builder::Error;

#[test]
fn compile_writes_out_dir_name_and_reports_every_file_read() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let defs = dir.path().join("defs");
    fs::create_dir(&defs).unwrap();
    fs::write(defs.join("common.fbs"), "namespace c;\ntable Id { v: ulong; }\n").unwrap();
    fs::write(
        defs.join("api.fbs"),
        "include \"common.fbs\";\nnamespace a;\ntable Q { id: c.Id; }\n",
    )
    .unwrap();
    let service = dir.path().join("api.service");
    fs::write(&service, "include \"api.fbs\";\nnamespace a;\nservice S { q: Q -> Q; }\n").unwrap();

    let out = dir.path().join("out");
    let generated = Builder::new()
        .include_dir(&defs)
        .out_dir(&out)
        .no_cargo_directives()
        .compile(&[&service])
        .expect("compiles");
    assert_eq!(generated.path, out.join("api.rs"));
    assert!(generated.changed);
    // Cargo must rerun the build script when an included file changes, not only the inputs.
    for file in ["api.service", "api.fbs", "common.fbs"] {
        assert!(
            generated.files_read.iter().any(|p| p.ends_with(file)),
            "{file} missing from {:?}",
            generated.files_read
        );
    }

    let again =
        Builder::new().include_dir(&defs).out_dir(&out).no_cargo_directives().compile(&[&service]);
    assert!(!again.expect("compiles").changed);
}

#[test]
fn compile_errors_carry_the_rendered_diagnostics() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let input = dir.path().join("bad.fbs");
    fs::write(&input, "table T { a: Missing; }\n").unwrap();
    let err =
        Builder::new().out_dir(dir.path()).no_cargo_directives().compile(&[&input]).unwrap_err();
    let Error::Diagnostics { rendered, errors } = &err else { panic!("{err}") };
    assert_eq!(*errors, 1);
    assert!(rendered.contains("unknown type `Missing`"), "{rendered}");
    // build.rs scripts unwrap the result: the panic message must read like the rendered text.
    assert!(
        format!("{err:?}").starts_with("rpcgen found 1 error:\nerror: unknown type"),
        "{err:?}"
    );
    assert!(!dir.path().join("bad.rs").exists());
}

#[test]
fn compile_outside_cargo_needs_an_out_dir() {
    // Cargo sets OUT_DIR only for build scripts; a test binary runs without it, as a program
    // calling the builder outside cargo would. Guard anyway, should a runner export it.
    if std::env::var_os("OUT_DIR").is_some() {
        return;
    }
    let err = Builder::new().compile(&["x.fbs"]).unwrap_err();
    assert!(matches!(err, Error::NoOutDir), "{err}");
    let err = Builder::new().out_dir(".").compile::<&str>(&[]).unwrap_err();
    assert!(matches!(err, Error::NoInputs), "{err}");
}
