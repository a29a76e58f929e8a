//! What the gateway, its clients and rpcgen-generated code share.
//!
//! Generated code reaches the FlatBuffers runtime only through this crate ([`flatbuffers`] is
//! re-exported), so an application depends on one crate whose version pins both, and generated
//! code checks at compile time that it was generated for this version ([`codegen::require_abi`]).
//!
//! # Layout
//!
//! - [`table`]: the [`Table`] trait every generated table implements.
//! - [`codegen`]: items only generated code uses.

pub mod codegen;
pub mod table;

pub use flatbuffers;
pub use table::Table;
