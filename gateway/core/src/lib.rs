//! What the gateway, its clients and rpcgen-generated code share.
//!
//! Generated code reaches the FlatBuffers runtime only through this crate ([`flatbuffers`] is
//! re-exported), so an application depends on one crate whose version pins both, and generated
//! code checks at compile time that it was generated for this version ([`codegen::require_abi`]).
//! This crate holds no server: a program that only calls services compiles this and a client.
//!
//! # Layout
//!
//! - [`status`]: [`Status`] and [`Code`], the one way failures travel.
//! - [`context`]: [`CallContext`], what a service knows about a call (caller, deadline,
//!   cancellation).
//! - [`table`]: the [`Table`] trait every generated table implements.
//! - [`message`]: [`Message<T>`], a verified buffer that owns its bytes.
//! - [`service`]: descriptors and [`Dispatch`], the server side of generated services.
//! - [`transport`]: [`Transport`], the client side, and the in-memory [`LocalTransport`].
//! - [`topic`]: [`Topics`], the pub/sub side, and typed [`Event`]s and [`Subscription`]s.
//! - [`codegen`]: items only generated code uses.
//! - [`hash`]: [`FastHasher`](hash::FastHasher), for the gateway's hot maps.

pub mod codegen;
pub mod context;
pub mod hash;
pub mod message;
pub mod service;
pub mod status;
pub mod table;
pub mod topic;
pub mod transport;

pub use bytes;
pub use flatbuffers;

pub use context::{CallContext, Canceller, Identity};
pub use message::Message;
pub use service::{
    BoxFuture, Dispatch, ErrorDesc, HistoryDesc, LagPolicy, MethodDesc, ServiceDesc, TopicDesc,
};
pub use status::{Code, Status};
pub use table::Table;
pub use topic::{Event, RawEvent, Selector, Subscription, Topics};
pub use transport::{CallOptions, LocalTransport, Transport};
