//! Parsing: source text → syntax tree ([`ast`]), with pest grammars for both languages.
//!
//! - `fbs.pest` / [`fbs`]: the FlatBuffers schema language, as flatc 25.12.19 accepts it.
//! - `service.pest` / [`service`]: the service language of `docs/service-files.md`.
//!
//! Parsing never stops at the first problem it can recover from: syntax errors are pushed to the
//! [`Diagnostics`](crate::diag::Diagnostics) sink and the tree holds what could be read.

pub mod ast;
pub mod fbs;
pub mod service;

pub use fbs::parse_fbs;
pub use service::parse_service;
