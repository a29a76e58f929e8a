//! A crate that uses rpcgen from its build.rs compiles the library only, not the command line's
//! dependencies (clap): those are optional, enabled by the `cli` feature alone, and every
//! workspace crate that depends on rpcgen leaves default features (which hold `cli`) off.
//!
//! Read from `cargo metadata`, which needs no network. What cargo then resolves is shown by
//! `cargo tree -e normal,build -p echo -i clap`: clap is reached through echo's own service
//! binary, never through rpcgen.

use std::process::Command;

use serde_json::Value;

fn workspace_packages() -> Vec<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--offline", "--format-version=1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    metadata["packages"].as_array().expect("packages").clone()
}

fn dependencies(package: &Value) -> &[Value] {
    package["dependencies"].as_array().map_or(&[], Vec::as_slice)
}

#[test]
fn build_rs_users_do_not_compile_the_command_line() {
    let packages = workspace_packages();
    let rpcgen = packages.iter().find(|p| p["name"] == "rpcgen").expect("the rpcgen package");
    let clap = dependencies(rpcgen).iter().find(|d| d["name"] == "clap").expect("clap");
    assert_eq!(clap["optional"], true, "clap is the command line's, optional");
    let enabling_clap: Vec<&String> = rpcgen["features"]
        .as_object()
        .expect("features")
        .iter()
        .filter(|(_, enables)| enables.as_array().is_some_and(|e| e.contains(&"dep:clap".into())))
        .map(|(feature, _)| feature)
        .collect();
    assert_eq!(enabling_clap, ["cli"]);

    let mut users = Vec::new();
    for package in &packages {
        for dependency in dependencies(package).iter().filter(|d| d["name"] == "rpcgen") {
            let name = package["name"].as_str().expect("a name");
            // `null` for a normal dependency.
            let kind = dependency["kind"].as_str().unwrap_or("normal");
            let what = format!("{name}'s {kind} dependency on rpcgen");
            assert_eq!(dependency["uses_default_features"], false, "{what} takes the CLI");
            let features = dependency["features"].as_array().expect("features");
            assert!(!features.contains(&"cli".into()), "{what} takes the CLI: {features:?}");
            if kind == "build" {
                users.push(name);
            }
        }
    }
    assert!(users.contains(&"some-api"), "build.rs users: {users:?}");
}
