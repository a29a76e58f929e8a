//! The `build.rs` API: compile schemas into `OUT_DIR`, like `tonic-build`; and into a folder of
//! TypeScript modules ([`Builder::compile_ts`]).

use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use crate::emit::rust::{self, RustOptions};
use crate::emit::ts::{self, TsOptions};
use crate::{LoadOptions, check_files};

/// Compiles `.fbs` and `.service` files into one Rust file.
///
/// ```no_run
/// // in build.rs's `main`
/// rpcgen::Builder::new()
///     .include_dir("schemas")
///     .compile(&["schemas/tracker.fbs", "schemas/tracker.service"])
///     .unwrap();
/// ```
///
/// writes `$OUT_DIR/tracker.rs`, which the crate includes with
/// `gateway_core::include_generated!("tracker");`. Cargo is told to rerun the build script when
/// any input or included file changes.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    include_dirs: Vec<PathBuf>,
    out_dir: Option<PathBuf>,
    out_name: Option<String>,
    runtime: Option<String>,
    ts_runtime: Option<String>,
    threads: Option<NonZeroUsize>,
    quiet_cargo: bool,
}

/// What [`Builder::compile_ts`] wrote: one module per namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedTs {
    /// Every module generated, in the output folder, sorted.
    pub paths: Vec<PathBuf>,
    /// The modules whose content changed and were written; the others were left untouched.
    pub changed: Vec<PathBuf>,
    /// Every file read: the inputs and everything they include.
    pub files_read: Vec<PathBuf>,
}

/// What [`Builder::compile`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    pub path: PathBuf,
    /// False when the file already held exactly this content and was left untouched.
    pub changed: bool,
    /// Every file read: the inputs and everything they include. Under cargo, each gets a
    /// `cargo:rerun-if-changed` line.
    pub files_read: Vec<PathBuf>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Adds a folder to search for included files (after the including file's own folder).
    pub fn include_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.include_dirs.push(dir.into());
        self
    }

    /// Where to write the generated file. Defaults to `$OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.out_dir = Some(dir.into());
        self
    }

    /// The generated file's name without `.rs`. Defaults to the first input's file stem.
    pub fn out_name(mut self, name: impl Into<String>) -> Builder {
        self.out_name = Some(name.into());
        self
    }

    /// The path generated code uses for the runtime crate. Defaults to `::gateway_core`.
    pub fn runtime_crate(mut self, path: impl Into<String>) -> Builder {
        self.runtime = Some(path.into());
        self
    }

    /// The module specifier TypeScript output imports the client runtime by (services import
    /// it, verifiers `<runtime>/verify`). Defaults to `@rpcgen/client`.
    pub fn ts_runtime(mut self, specifier: impl Into<String>) -> Builder {
        self.ts_runtime = Some(specifier.into());
        self
    }

    /// How many threads generate Rust for a large schema (default: one per core; schemas of
    /// fewer than 64 declarations a thread use one). The output is the same for any number.
    pub fn threads(mut self, threads: NonZeroUsize) -> Builder {
        self.threads = Some(threads);
        self
    }

    /// Don't print `cargo:rerun-if-changed` lines (for use outside build scripts).
    pub fn no_cargo_directives(mut self) -> Builder {
        self.quiet_cargo = true;
        self
    }

    /// Compiles `inputs` and writes the generated file. The file is rewritten only when its
    /// content changes.
    ///
    /// # Errors
    ///
    /// The rendered diagnostics if the inputs have errors (also printed to stderr, which cargo
    /// shows when a build script fails), or the I/O error that prevented writing.
    /// Warnings are printed too, but do not fail the build.
    pub fn compile<P: AsRef<Path>>(self, inputs: &[P]) -> Result<Generated, Error> {
        let inputs: Vec<PathBuf> = inputs.iter().map(|p| p.as_ref().to_path_buf()).collect();
        let out_dir = match self.out_dir {
            Some(dir) => dir,
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or(Error::NoOutDir)?,
        };
        let name = match (self.out_name, inputs.first()) {
            (Some(name), _) => name,
            (None, Some(first)) => file_stem(first),
            (None, None) => return Err(Error::NoInputs),
        };
        let options = LoadOptions { include_dirs: self.include_dirs };
        let rust_options = RustOptions {
            runtime: self.runtime.unwrap_or_else(|| RustOptions::default().runtime),
            sources: inputs.iter().map(|p| p.display().to_string()).collect(),
            threads: self.threads,
        };
        let (code, files_read) =
            generate_rust(&inputs, &options, &rust_options, !self.quiet_cargo)?;
        let path = out_dir.join(format!("{name}.rs"));
        let changed = write_if_changed(&path, &code)
            .map_err(|source| Error::Io { path: path.clone(), source })?;
        Ok(Generated { path, changed, files_read })
    }
}

impl Builder {
    /// Compiles `inputs` into TypeScript: one ES module per namespace under the output folder
    /// (`out_dir`, else `$OUT_DIR`), `index.ts` for the root namespace, each re-exporting its
    /// child namespaces (see `docs/generated-ts.md`). Each module is rewritten only when its
    /// content changes. The output folder belongs to one compilation: two compilations sharing
    /// a namespace would each write its module.
    ///
    /// # Errors
    ///
    /// As [`Builder::compile`]: the rendered diagnostics (including generated names that would
    /// clash), or the I/O error that prevented writing.
    pub fn compile_ts<P: AsRef<Path>>(self, inputs: &[P]) -> Result<GeneratedTs, Error> {
        let inputs: Vec<PathBuf> = inputs.iter().map(|p| p.as_ref().to_path_buf()).collect();
        if inputs.is_empty() {
            return Err(Error::NoInputs);
        }
        let out_dir = match self.out_dir {
            Some(dir) => dir,
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or(Error::NoOutDir)?,
        };
        let options = LoadOptions { include_dirs: self.include_dirs };
        let runtime = self.ts_runtime.unwrap_or_else(|| TsOptions::default().runtime);
        let checked = check_files(&inputs, &options);
        let files_read: Vec<PathBuf> =
            checked.sources.iter().map(|(_, f)| f.path.clone()).collect();
        if !self.quiet_cargo {
            for path in &files_read {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        let model = checked_model(&checked)?;
        let sources = inputs.iter().map(|p| p.display().to_string()).collect();
        let files =
            ts::generate(model, &TsOptions { runtime, sources }).map_err(|diagnostics| {
                let _ = crate::diag::eprint(&diagnostics, &checked.sources);
                let rendered = diagnostics.render(&checked.sources, false);
                Error::Diagnostics { rendered, errors: diagnostics.error_count() }
            })?;
        let mut paths = Vec::new();
        let mut changed = Vec::new();
        for file in files {
            let path = out_dir.join(&file.path);
            if write_if_changed(&path, &file.contents)
                .map_err(|source| Error::Io { path: path.clone(), source })?
            {
                changed.push(path.clone());
            }
            paths.push(path);
        }
        Ok(GeneratedTs { paths, changed, files_read })
    }
}

/// The model of a front-end run, with warnings printed; the diagnostics as an error if it has
/// errors.
fn checked_model(checked: &crate::Checked) -> Result<&crate::model::Model, Error> {
    match &checked.model {
        Some(model) => {
            if !checked.diagnostics.is_empty() {
                // Warnings only. Printing is best effort.
                let _ = crate::diag::eprint(&checked.diagnostics, &checked.sources);
            }
            Ok(model)
        }
        None => {
            let _ = crate::diag::eprint(&checked.diagnostics, &checked.sources);
            let rendered = checked.diagnostics.render(&checked.sources, false);
            Err(Error::Diagnostics { rendered, errors: checked.diagnostics.error_count() })
        }
    }
}

/// Runs the front end and the Rust backend; returns the code and the files read. With
/// `cargo_rerun`, tells cargo to rerun the build script when any file read changes.
fn generate_rust(
    inputs: &[PathBuf],
    options: &LoadOptions,
    rust_options: &RustOptions,
    cargo_rerun: bool,
) -> Result<(String, Vec<PathBuf>), Error> {
    let checked = check_files(inputs, options);
    let files_read: Vec<PathBuf> = checked.sources.iter().map(|(_, f)| f.path.clone()).collect();
    if cargo_rerun {
        for path in &files_read {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let failed = |diagnostics: &crate::diag::Diagnostics| {
        // Printing is best effort: the error returned carries the same text.
        let _ = crate::diag::eprint(diagnostics, &checked.sources);
        let rendered = diagnostics.render(&checked.sources, false);
        Error::Diagnostics { rendered, errors: diagnostics.error_count() }
    };
    let Some(model) = &checked.model else {
        return Err(failed(&checked.diagnostics));
    };
    if !checked.diagnostics.is_empty() {
        // Warnings only. Best effort, as above.
        let _ = crate::diag::eprint(&checked.diagnostics, &checked.sources);
        if cargo_rerun {
            for warning in checked.diagnostics.iter() {
                println!("cargo:warning=rpcgen: {}", warning.message);
            }
        }
    }
    let code = rust::generate(model, rust_options).map_err(|diagnostics| failed(&diagnostics))?;
    Ok((code, files_read))
}

/// Writes `contents` to `path` unless the file already holds exactly that, so that unchanged
/// output keeps its timestamp (no needless rebuilds, no IDE churn).
///
/// # Errors
///
/// The I/O error from creating the folder or writing the file.
pub fn write_if_changed(path: &Path, contents: &str) -> std::io::Result<bool> {
    if std::fs::read(path).is_ok_and(|old| old == contents.as_bytes()) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents)?;
    Ok(true)
}

pub(crate) fn file_stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| "generated".to_owned(), |s| s.to_string_lossy().into_owned())
}

/// Why [`Builder::compile`] failed.
pub enum Error {
    /// The inputs have errors; `rendered` shows them like rustc does.
    Diagnostics { rendered: String, errors: usize },
    /// Writing the output failed.
    Io { path: PathBuf, source: std::io::Error },
    /// No `out_dir` was set and `OUT_DIR` is not in the environment (not running under cargo).
    NoOutDir,
    /// `compile` was given no input files.
    NoInputs,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Diagnostics { rendered, errors } => {
                let plural = if *errors == 1 { "" } else { "s" };
                write!(f, "rpcgen found {errors} error{plural}:\n{rendered}")
            }
            Error::Io { path, source } => write!(f, "cannot write `{}`: {source}", path.display()),
            Error::NoOutDir => {
                f.write_str("OUT_DIR is not set: call Builder::out_dir or run from a build script")
            }
            Error::NoInputs => f.write_str("no input files given"),
        }
    }
}

/// Shows the rendered diagnostics as they are (not escaped), since `build.rs` scripts usually
/// `unwrap()` the result and cargo prints the panic message.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
