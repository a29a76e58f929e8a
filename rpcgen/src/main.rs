//! The `rpcgen` command line: check schemas, or generate Rust or TypeScript from them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Compiles FlatBuffers schemas (.fbs) and service files (.service) into typed code.
#[derive(Debug, Parser)]
#[command(name = "rpcgen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse and check the files (and everything they include); report every error.
    Check {
        /// Input .fbs and .service files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A folder to search for included files (repeatable).
        #[arg(short = 'I', long = "include", value_name = "DIR")]
        include_dirs: Vec<PathBuf>,
    },
    /// Generate Rust code for the files into DIR/NAME.rs (written only if it changed).
    Rust {
        /// Input .fbs and .service files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Output file name without .rs [default: the first input's file stem]
        #[arg(long)]
        name: Option<String>,
        /// A folder to search for included files (repeatable).
        #[arg(short = 'I', long = "include", value_name = "DIR")]
        include_dirs: Vec<PathBuf>,
        /// Path of the runtime crate in generated code.
        #[arg(long, value_name = "PATH", default_value = "::gateway_core")]
        runtime: String,
        /// Threads generating code for a large schema [default: one per core]
        #[arg(short = 'j', long, value_name = "N")]
        threads: Option<std::num::NonZeroUsize>,
    },
    /// Generate TypeScript for the files: one module per namespace under DIR (DIR/index.ts for
    /// the root namespace), each written only if it changed.
    Ts {
        /// Input .fbs and .service files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output folder, owned by this compilation.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A folder to search for included files (repeatable).
        #[arg(short = 'I', long = "include", value_name = "DIR")]
        include_dirs: Vec<PathBuf>,
        /// Module specifier of the client runtime (the verifier is `<runtime>/verify`).
        #[arg(long, value_name = "SPECIFIER", default_value = "@rpcgen/client")]
        runtime: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ok = match cli.command {
        Command::Check { files, include_dirs } => check(&files, include_dirs),
        Command::Rust { files, out, name, include_dirs, runtime, threads } => {
            rust(&files, include_dirs, &out, name, &runtime, threads)
        }
        Command::Ts { files, out, include_dirs, runtime } => {
            ts(&files, include_dirs, &out, &runtime)
        }
    };
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn check(files: &[PathBuf], include_dirs: Vec<PathBuf>) -> bool {
    let checked = rpcgen::check_files(files, &rpcgen::LoadOptions { include_dirs });
    // A failure to write to stderr leaves nothing better to do than the exit status.
    let _ = rpcgen::diag::eprint(&checked.diagnostics, &checked.sources);
    checked.model.is_some()
}

fn rust(
    files: &[PathBuf],
    include_dirs: Vec<PathBuf>,
    out: &std::path::Path,
    name: Option<String>,
    runtime: &str,
    threads: Option<std::num::NonZeroUsize>,
) -> bool {
    let mut builder =
        rpcgen::Builder::new().out_dir(out).runtime_crate(runtime).no_cargo_directives();
    if let Some(threads) = threads {
        builder = builder.threads(threads);
    }
    for dir in include_dirs {
        builder = builder.include_dir(dir);
    }
    if let Some(name) = name {
        builder = builder.out_name(name);
    }
    match builder.compile(files) {
        Ok(generated) => {
            let what = if generated.changed { "wrote" } else { "unchanged" };
            eprintln!("{what} {}", generated.path.display());
            true
        }
        // Diagnostics were already printed by the builder.
        Err(rpcgen::builder::Error::Diagnostics { .. }) => false,
        Err(err) => {
            eprintln!("error: {err}");
            false
        }
    }
}

fn ts(files: &[PathBuf], include_dirs: Vec<PathBuf>, out: &std::path::Path, runtime: &str) -> bool {
    let mut builder = rpcgen::Builder::new().out_dir(out).ts_runtime(runtime).no_cargo_directives();
    for dir in include_dirs {
        builder = builder.include_dir(dir);
    }
    match builder.compile_ts(files) {
        Ok(generated) => {
            let unchanged = generated.paths.len() - generated.changed.len();
            for path in &generated.changed {
                eprintln!("wrote {}", path.display());
            }
            if unchanged > 0 {
                eprintln!("{unchanged} unchanged in {}", out.display());
            }
            true
        }
        // Diagnostics were already printed by the builder.
        Err(rpcgen::builder::Error::Diagnostics { .. }) => false,
        Err(err) => {
            eprintln!("error: {err}");
            false
        }
    }
}
