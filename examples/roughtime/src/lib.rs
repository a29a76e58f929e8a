//! Roughtime (RFC 10049): authenticated rough time, answered in batches.
//!
//! A client sends a nonce; the server answers with the time, signed. Signing costs far more than
//! the rest, so a server answers requests in batches: their packets are the leaves of a Merkle
//! tree, one signature covers its root, and each response carries the path from its request to
//! the root. This crate holds the protocol:
//!
//! - [`wire`]: packets (`ROUGHTIM`, a length, a message) and tagged messages.
//! - [`protocol`]: the versions spoken (version 1 and the last draft's `0x8000000c`) and which
//!   requests a server answers (it never answers with an error: it ignores).
//! - [`merkle`]: the tree over a batch.
//! - [`keys`]: the long-term key, and the online key it delegates to.
//! - [`respond`]: answering a batch with one signature per version.
//! - [`verify`]: a client's checks of a response.
//! - [`measure`]: chained queries to several servers, causal order, malfeasance reports.
//! - [`udp`] and [`server`]: the batching UDP server.
//!
//! The cryptography comes from crates, none of it is written here: Ed25519 from `ed25519-dalek`
//! (the long-term key, verification) and `aws-lc-rs` (the online key, which signs every batch);
//! SHA-512 from `ring`, `sha2` and, for a batch's leaves eight at a time,
//! `commonware-cryptography`.

pub mod keys;
pub mod measure;
pub mod merkle;
pub mod protocol;
pub mod respond;
pub mod server;
pub mod service;
pub use udp_batch as udp;
pub mod verify;
pub mod wire;
