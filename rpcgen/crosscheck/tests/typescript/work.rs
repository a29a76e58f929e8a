//! The folder the TypeScript checks run in, set up once per test run: rpcgen's TypeScript for
//! the corpus and the example APIs, flatc's TypeScript for the corpus, the verifier runtime and
//! the drivers of `rpcgen/crosscheck/ts/`, all compiled by `tsc`.
//!
//! Layout of `$CARGO_TARGET_TMPDIR/typescript/`:
//!
//! - `gen/<name>/`: rpcgen's output (`corpus`, `some_api`, `echo`, `monster`, `shop`, and
//!   `names`, the awkward names of `ts/names.service`), compiled
//!   with every strictness flag TypeScript has (`tsconfig.json`);
//! - `flatc-src/`, `flatc/<schema>/`: the corpus as flatc's TypeScript generator accepts it (see
//!   [`flatc_compatible`]) and flatc's output for it, compiled leniently (`flatc/tsconfig.json`);
//! - `client/`: the `@rpcgen/client` package the generated code imports, `clients-js/src` compiled;
//!   `node_modules/@rpcgen/client` links to it;
//! - `tests/`: the drivers of `rpcgen/crosscheck/ts/` and `clients-js/test/verify.test.ts`;
//! - `out/`: the compiled JavaScript that `node` runs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::runner::{Flatc, corpus_dir, include_dirs, repo_root};

/// The corpus schemas with a root type, compiled together as the Rust cross-checks compile
/// them (`build.rs`).
pub(crate) const CORPUS: &[&str] = &[
    "scalars",
    "enums",
    "structs",
    "vectors",
    "attributes",
    "unions",
    "union_variants",
    "keywords",
    "namespaces",
    "rpc",
    "crlf",
    "keys",
    "deep",
];

/// Corpus schemas without data files, because flatc's `-b` and `--json` do not support them
/// (unions with a declared tag type): ours and flatc's TypeScript are generated, and
/// `ts/objects.test.ts` reads each side's buffers with the other.
pub(crate) const WITHOUT_DATA: &[&str] = &["union_tags"];

/// Corpus schemas whose flatc TypeScript output does not compile, and why: for these, the
/// checks that run flatc's TypeScript are left out (ours is still checked against our Rust and
/// against flatc's binary and JSON decoder).
pub(crate) const FLATC_TS_BROKEN: &[(&str, &str)] = &[
    (
        "keys",
        "flatc's `corpus/keys/key.ts` imports `../corpus/keys/grade.js`, which does not exist \
         (an enum of a struct nested in a struct array)",
    ),
    (
        "deep",
        "flatc's `corpus/deep/a/b.ts` imports `./from/home.js`, which does not exist (a \
         namespace from another file, several levels deep)",
    ),
];

/// The prepared folder.
pub(crate) struct Work {
    pub(crate) dir: PathBuf,
}

/// The folder, set up on first use.
///
/// # Panics
///
/// When something the checks need is missing (`node`, `node_modules`, flatc) or does not
/// compile: with a message saying what, and how to get it.
pub(crate) fn work() -> &'static Work {
    static WORK: OnceLock<Result<Work, String>> = OnceLock::new();
    match WORK.get_or_init(setup) {
        Ok(work) => work,
        Err(e) => panic!("{e}"),
    }
}

impl Work {
    /// Runs `node` with `args` in the folder; `Err` holds what it printed when it fails.
    pub(crate) fn node(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new("node").args(args).current_dir(&self.dir), "node")
    }
}

fn setup() -> Result<Work, String> {
    let repo = repo_root().canonicalize().map_err(|e| format!("finding the repository: {e}"))?;
    let modules = repo.join("node_modules");
    for needed in ["typescript/bin/tsc", "flatbuffers/package.json", "@types/node/package.json"] {
        if !modules.join(needed).exists() {
            return Err(format!(
                "node_modules is missing (no `{}`): run `npm ci` in the repository root ({})",
                modules.join(needed).display(),
                repo.display()
            ));
        }
    }
    run(Command::new("node").arg("--version"), "node")
        .map_err(|e| format!("`node` (version 20 or later) must be on the PATH: {e}"))?;
    let flatc = Flatc::locate();

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("typescript");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("cleaning `{}`: {e}", dir.display()))?;
    }
    write(&dir.join("package.json"), "{ \"type\": \"module\", \"private\": true }\n")?;
    // Packages resolve from the folder's own node_modules, wherever the target folder is.
    for package in ["flatbuffers", "@types"] {
        link(&modules.join(package), &dir.join("node_modules").join(package))?;
    }
    client_package(&repo, &dir)?;
    link(&dir.join("client"), &dir.join("node_modules/@rpcgen/client"))?;

    // rpcgen's output.
    let corpus: Vec<PathBuf> =
        CORPUS.iter().chain(WITHOUT_DATA).map(|s| corpus_dir().join(format!("{s}.fbs"))).collect();
    generate(&dir.join("gen/corpus"), &corpus, &include_dirs())?;
    let schemas = repo.join("schemas");
    generate(&dir.join("gen/some_api"), &[schemas.join("some_api/some_api.service")], &[])?;
    generate(&dir.join("gen/echo"), &[schemas.join("echo/echo.service")], &[])?;
    let golden = repo.join("rpcgen/tests/golden");
    generate(&dir.join("gen/monster"), &[golden.join("monster.fbs")], &[])?;
    generate(&dir.join("gen/shop"), &[golden.join("service.service")], &[])?;
    let names = repo.join("rpcgen/crosscheck/ts/names.service");
    generate(&dir.join("gen/names"), &[names], &[])?;

    // flatc's output.
    let flatc_src = dir.join("flatc-src");
    copy_tree(&corpus_dir(), &flatc_src, &|path, text| flatc_compatible(path, text))?;
    let flatc_compiles =
        CORPUS.iter().chain(WITHOUT_DATA).filter(|s| !FLATC_TS_BROKEN.iter().any(|(b, _)| b == *s));
    for schema in flatc_compiles {
        let out = dir.join("flatc").join(schema);
        std::fs::create_dir_all(&out).map_err(|e| format!("creating `{}`: {e}", out.display()))?;
        flatc
            .run_in(&[
                "--ts",
                "--gen-object-api",
                "--gen-all",
                "-I",
                &flatc_src.display().to_string(),
                "-I",
                &flatc_src.join("search").display().to_string(),
                "-o",
                &out.display().to_string(),
                &flatc_src.join(format!("{schema}.fbs")).display().to_string(),
            ])
            .map_err(|e| e.to_string())?;
    }

    // The drivers.
    let sources = repo.join("rpcgen/crosscheck/ts");
    copy_tree(&sources, &dir.join("tests"), &|path, text| {
        path.extension().is_some_and(|e| e == "ts").then(|| text.to_owned())
    })?;
    let verify_test = repo.join("clients-js/test/verify.test.ts");
    let text = read(&verify_test)?;
    write(&dir.join("tests/verify.test.ts"), &text)?;

    write(&dir.join("client/tsconfig.json"), CLIENT_TSCONFIG)?;
    write(&dir.join("flatc/tsconfig.json"), FLATC_TSCONFIG)?;
    write(&dir.join("tsconfig.json"), STRICT_TSCONFIG)?;
    let tsc = modules.join("typescript/bin/tsc").display().to_string();
    for project in ["client", "flatc", "."] {
        run(Command::new("node").args([tsc.as_str(), "-p", project]).current_dir(&dir), "tsc")
            .map_err(|e| {
                format!(
                    "TypeScript does not compile (`tsc -p {project}` in {}):\n{e}",
                    dir.display()
                )
            })?;
    }
    Ok(Work { dir })
}

/// Every strictness option TypeScript has, so that generated code compiles in any project.
const STRICT_TSCONFIG: &str = r#"{
  "compilerOptions": {
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "target": "ES2022",
    "lib": ["ES2022", "DOM"],
    "types": ["node"],
    "strict": true,
    "noUnusedLocals": true,
    "noUnusedParameters": true,
    "noImplicitReturns": true,
    "noImplicitOverride": true,
    "noFallthroughCasesInSwitch": true,
    "noUncheckedIndexedAccess": true,
    "noPropertyAccessFromIndexSignature": true,
    "exactOptionalPropertyTypes": true,
    "allowUnreachableCode": false,
    "allowUnusedLabels": false,
    "verbatimModuleSyntax": true,
    "isolatedModules": true,
    "forceConsistentCasingInFileNames": true,
    "rootDir": ".",
    "outDir": "out"
  },
  "include": ["gen/**/*.ts", "tests/**/*.ts"]
}
"#;

/// flatc's output is not written for strict TypeScript; it only has to run.
const FLATC_TSCONFIG: &str = r#"{
  "compilerOptions": {
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "target": "ES2022",
    "types": [],
    "strict": false,
    "skipLibCheck": true,
    "rootDir": ".",
    "outDir": "../out/flatc"
  },
  "include": ["**/*.ts"]
}
"#;

const CLIENT_TSCONFIG: &str = r#"{
  "compilerOptions": {
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "target": "ES2022",
    "lib": ["ES2022", "DOM"],
    "types": ["node"],
    "strict": true,
    "noUncheckedIndexedAccess": true,
    "declaration": true,
    "skipLibCheck": true,
    "rootDir": "src",
    "outDir": "dist"
  },
  "include": ["src"]
}
"#;

/// The `@rpcgen/client` package: `clients-js/src`, compiled here (so the checks need no build of
/// `clients-js` first) with the entries the package exports.
fn client_package(repo: &Path, dir: &Path) -> Result<(), String> {
    let client = dir.join("client");
    copy_tree(&repo.join("clients-js/src"), &client.join("src"), &|_, text| Some(text.to_owned()))?;
    let mut exports = String::new();
    for (entry, file) in [(".", "index"), ("./verify", "verify")] {
        let _ = write!(
            exports,
            "{}\"{entry}\": {{ \"types\": \"./dist/{file}.d.ts\", \"import\": \"./dist/{file}.js\" }}",
            if exports.is_empty() { "" } else { ", " }
        );
    }
    write(
        &client.join("package.json"),
        &format!(
            "{{ \"name\": \"@rpcgen/client\", \"type\": \"module\", \"exports\": {{ {exports} }} }}\n"
        ),
    )
}

/// rpcgen's TypeScript for `inputs` into `out`.
fn generate(out: &Path, inputs: &[PathBuf], include_dirs: &[PathBuf]) -> Result<(), String> {
    let mut builder = rpcgen::Builder::new().out_dir(out).no_cargo_directives();
    for dir in include_dirs {
        builder = builder.include_dir(dir);
    }
    builder.compile_ts(inputs).map(|_| ()).map_err(|e| format!("rpcgen ts: {e}"))
}

/// A corpus schema as flatc's TypeScript generator accepts it and its output compiles, with the
/// same wire format: flatc refuses string and vector defaults ("not supported in one of the
/// specified programming languages", so they are left out), copies the float default `0x1.8p1`
/// into TypeScript as it is (which does not parse: written `3.0` here), writes tables `Self`
/// and `self` to the same file `self.ts` (so `self` is called `lower_self` here), names a
/// parameter `await`, which an ES module cannot have (so the field is `await_` here), and writes
/// an empty union's `pack` against `never` (so `Nothing` gets a variant here: a field of it is
/// always absent either way), and reads a `ulong` union tag as a `bigint` into a string enum
/// (so `union_tags.fbs` loses its last field, of that union). None of these changes the bytes
/// of a buffer flatc's TypeScript reads.
pub(crate) fn flatc_compatible(path: &Path, text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut line = line.replace("0x1.8p1", "3.0");
        let code = line.split("//").next().unwrap_or("").to_owned();
        if (code.contains(": string = ") || code.contains("] = []"))
            && let (Some(eq), Some(semi)) = (line.find(" = "), line.rfind(';'))
        {
            line = format!("{}{}", &line[..eq], &line[semi..]);
        }
        out.push_str(&line);
    }
    if path.file_name().is_some_and(|n| n == "unions.fbs") {
        out = out.replace("union Nothing {}", "union Nothing { Circle }");
    }
    if path.file_name().is_some_and(|n| n == "union_tags.fbs") {
        // flatc's TypeScript for a `ulong` tag does not compile (a string enum read as a
        // `bigint`): the copy drops the union, and the field, which is the table's last.
        out = out
            .lines()
            .filter(|line| !line.contains("Huge") && !line.contains("`ulong`"))
            .map(|line| format!("{line}\n"))
            .collect();
    }
    if path.file_name().is_some_and(|n| n == "keywords.fbs") {
        out = replace_word(&out, "self", "lower_self");
        out = replace_word(&out, "await", "await_");
    }
    Some(out)
}

/// `text` with every whole word `word` replaced.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + word.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(is_ident) || after.is_some_and(is_ident) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// Copies the files under `from` to `to`, each through `map` (`None` leaves it out).
fn copy_tree(
    from: &Path,
    to: &Path,
    map: &dyn Fn(&Path, &str) -> Option<String>,
) -> Result<(), String> {
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("listing `{}`: {e}", from.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("listing `{}`: {e}", from.display()))?.path();
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_tree(&path, &target, map)?;
        } else if let Some(text) = map(&path, &read(&path)?) {
            write(&target, &text)?;
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading `{}`: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating `{}`: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("writing `{}`: {e}", path.display()))
}

fn link(target: &Path, link: &Path) -> Result<(), String> {
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating `{}`: {e}", parent.display()))?;
    }
    std::os::unix::fs::symlink(target, link)
        .map_err(|e| format!("linking `{}` to `{}`: {e}", link.display(), target.display()))
}

/// Runs `command`; its standard output when it succeeds, everything it printed when it fails.
pub(crate) fn run(command: &mut Command, what: &str) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("running {what}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    Err(format!(
        "{what} failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    ))
}
