//! `rpcgen`: compiles FlatBuffers schemas (`.fbs`) and service files (`.service`) into typed Rust
//! code, without Google's `flatc`.
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
//! - [`emit`]: model → code. Each backend only reads the model.
//! - [`ids`]: stable numeric ids for methods, topics and errors.
//!
//! # Use from `build.rs`
//!
//! ```no_run
//! // build.rs
//! fn main() {
//!     rpcgen::Builder::new()
//!         .compile(&["schemas/monster.fbs", "schemas/monster.service"])
//!         .unwrap();
//! }
//! ```
//!
//! and in the crate, `rpcgen::include_generated!("monster");` (see [`include_generated`]).

pub mod check;
pub mod diag;
pub mod emit;
pub mod ids;
pub mod load;
pub mod model;
pub mod source;
pub mod syntax;
