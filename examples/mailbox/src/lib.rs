//! Epoch-sequenced mailboxes with signed attestations and hash chains (issue 17;
//! `docs/mailbox.md`): an untrusted relay for end-to-end encrypted multi-device apps that
//! cannot drop, reorder or alter a message unnoticed.
//!
//! What it holds:
//! - [`SeqId`]: a message's 16-byte sequence id (epoch, shard, index).
//! - [`hash`]: the hashes statements carry (recipient lists, common ciphertexts, parts,
//!   statements).
//! - [`statement`]: what a shard signs — an attestation of one device's messages over a range
//!   of epochs, chained to the device's previous one, and a receipt for a bundle it took in —
//!   and their byte format.
//! - [`verify`]: a device's check of each delivered batch against its attestation and its chain.
//! - [`proof`]: proofs of misbehaviour (signed statements that cannot all be true), how to find
//!   them among statements gathered from several devices, and how to check them.
//! - [`shard`]: a shard: takes bundles in and numbers them per epoch, routes each to the shards
//!   holding its recipients' mailboxes, attests and signs each epoch of its own mailboxes as
//!   one batch, commits it to its [`store`] (SQLite, one transaction per epoch), then answers
//!   the senders and delivers.
//! - [`peers`]: the requests between shards and from the sequencer, over the bus.
//! - [`sequencer`]: ends the epochs of several shards.
//! - [`service`]: `examples.mailbox.Mailbox` behind the gateway, over a shard (forwarding reads
//!   of other shards' devices).
//! - [`model`]: a relay in memory, honest or lying, and the scenarios of its lies (the tests'
//!   and the `mailbox-vectors` program's).

pub mod hash;
mod ids;
pub mod model;
pub mod peers;
pub mod proof;
pub mod sequencer;
pub mod service;
pub mod shard;
pub mod statement;
pub mod store;
pub mod verify;

pub use ids::SeqId;
pub use proof::{NotAProof, Proof};
pub use statement::{Attestation, Entry, KeyRing, Receipt, Signed, Statement};
pub use verify::{Delivered, DeviceVerifier, Rejected};
