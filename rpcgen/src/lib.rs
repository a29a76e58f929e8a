//! `rpcgen`: compiles FlatBuffers schemas (`.fbs`) and service files (`.service`) into typed Rust
//! and TypeScript code, without Google's `flatc`.
//!
//! # Layout
//!
//! The crate is laid out as its pipeline:
//!
//! - [`source`]: the files read, and spans into them.
//! - [`syntax`]: pest grammars and parsers, text → syntax tree with spans.
//! - [`load`]: reading the inputs and following their includes.
//! - [`check`]: syntax trees → the checked [`model`] (names resolved, flatc's rules enforced,
//!   struct layouts and stable ids computed). Errors are collected in [`diag`] and rendered like
//!   rustc's.
//! - [`emit`]: model → code. Each backend only reads the model: [`emit::rust`] (one file per
//!   compilation, `docs/generated-rust.md`) and [`emit::ts`] (one ES module per namespace,
//!   `docs/generated-ts.md`).
//! - [`ids`]: stable numeric ids for methods, topics and errors.
//! - `case`: snake_case conversion of schema names, shared by the checker and the backends.
//!
//! # Use from `build.rs`
//!
//! As a build dependency without default features: the default `cli` feature brings the command
//! line's dependencies, which a build script does not need.
//!
//! ```toml
//! [build-dependencies]
//! rpcgen = { path = "../rpcgen", default-features = false }
//! ```
//!
//! ```no_run
//! // in build.rs's `main`
//! rpcgen::Builder::new()
//!     .compile(&["schemas/monster.fbs", "schemas/monster.service"])
//!     .unwrap();
//! ```
//!
//! and in the crate, `gateway_core::include_generated!("monster");`. For TypeScript,
//! `Builder::new().out_dir("web/src/generated").compile_ts(&[...])` (or `rpcgen ts`).
//!
//! # Features
//!
//! - `cli` (default): the `rpcgen` command (`src/main.rs`) and its dependencies.

pub mod builder;
pub(crate) mod case;
pub mod check;
pub mod diag;
pub mod emit;
pub mod ids;
pub mod load;
pub mod model;
pub mod source;
pub mod syntax;

use std::path::PathBuf;

pub use builder::Builder;
pub use load::LoadOptions;

/// The result of reading and checking a set of input files.
#[derive(Debug)]
pub struct Checked {
    pub sources: source::SourceMap,
    pub diagnostics: diag::Diagnostics,
    /// `Some` exactly when `diagnostics` holds no error.
    pub model: Option<model::Model>,
}

impl Checked {
    /// The diagnostics rendered as plain text (no colours), as golden files hold them.
    pub fn render(&self) -> String {
        self.diagnostics.render(&self.sources, false)
    }
}

/// Loads, parses and checks `inputs` and everything they include: the whole front end.
pub fn check_files(inputs: &[PathBuf], options: &LoadOptions) -> Checked {
    let mut sources = source::SourceMap::new();
    let mut diagnostics = diag::Diagnostics::new();
    let parsed = load::load(inputs, options, &mut sources, &mut diagnostics);
    let model = if diagnostics.has_errors() {
        None
    } else {
        let model = check::check(&sources, &parsed, &mut diagnostics);
        (!diagnostics.has_errors()).then_some(model)
    };
    Checked { sources, diagnostics, model }
}
