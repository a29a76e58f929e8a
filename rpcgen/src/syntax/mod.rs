//! Parsing: source text → syntax tree ([`ast`]), with pest grammars for both languages.
//!
//! - `fbs.pest` / [`fbs`]: the FlatBuffers schema language, as flatc 25.12.19 accepts it.
//! - `service.pest` / [`service`]: the service language of `docs/service-files.md`.
//! - `common.pest`: what both share (comments, names, literals, attributes, types), lowered to the
//!   tree by `lower` and `literal`.
//!
//! A file is parsed one top-level item at a time (`items`): after a syntax error the parser skips
//! to the end of the broken item and carries on, so one run reports every broken item. Syntax
//! errors are worded for people (`error`), and `///` doc comments are found by a small scan of
//! the trivia (`trivia`) rather than by the grammar, because flatc accepts them anywhere a comment
//! may stand but only keeps those right before a declaration, field, value or method.
//!
//! Parsing never stops at the first problem it can recover from: syntax errors are pushed to the
//! [`Diagnostics`](crate::diag::Diagnostics) sink and the tree holds what could be read.

pub mod ast;
mod error;
pub mod fbs;
mod grammar;
mod items;
mod literal;
mod lower;
pub mod service;
mod trivia;

pub use fbs::parse_fbs;
pub use service::parse_service;
