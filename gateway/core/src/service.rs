//! Describing and dispatching a service: the server side of generated code.
//!
//! rpcgen emits, for each `service` of a `.service` file, a descriptor ([`ServiceDesc`]) and a
//! server type implementing [`Dispatch`]: given a method id and the request's bytes, it verifies
//! and decodes the request, calls the user's implementation, and encodes the reply. The gateway
//! and the bus route by method id and consult the descriptors for policies (fire-and-forget,
//! idempotent, writes).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::context::CallContext;
use crate::status::Status;

/// A boxed future that can move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A `.service` file's `service`, as generated code describes it.
#[derive(Debug)]
pub struct ServiceDesc {
    /// The fully qualified name, `examples.some_api.SomeApi`.
    pub name: &'static str,
    pub methods: &'static [MethodDesc],
    pub topics: &'static [TopicDesc],
    pub errors: &'static [ErrorDesc],
}

impl ServiceDesc {
    pub fn method(&self, id: u32) -> Option<&'static MethodDesc> {
        self.methods.iter().find(|m| m.id == id)
    }
}

#[derive(Debug)]
pub struct MethodDesc {
    /// Stable id (see `docs/service-files.md`).
    pub id: u32,
    /// Fully qualified: `examples.some_api.SomeApi.sum`.
    pub name: &'static str,
    /// The request table's fully qualified name.
    pub request: &'static str,
    /// The response table's fully qualified name, `None` for fire-and-forget methods.
    pub response: Option<&'static str>,
    /// Safe to retry.
    pub idempotent: bool,
    /// Changes state; refused while the service is read-only.
    pub writes: bool,
}

impl MethodDesc {
    /// True for `-> void` methods: the caller gets no reply.
    pub fn is_fire_and_forget(&self) -> bool {
        self.response.is_none()
    }
}

#[derive(Debug)]
pub struct TopicDesc {
    pub id: u32,
    /// Fully qualified: `examples.tracker.Tracker.position`.
    pub name: &'static str,
    /// The message table's fully qualified name.
    pub message: &'static str,
    /// The key's name, for keyed topics (`device_id`).
    pub key: Option<&'static str>,
    pub on_lag: LagPolicy,
    /// New subscribers first receive the last event per key.
    pub retain: bool,
    /// Clients with permission may publish, not only services.
    pub client_publish: bool,
    /// `(history: N, history_ttl: "…")`: the last events the topic keeps (per key) for
    /// subscribers that come back; `None`: no history.
    pub history: Option<HistoryDesc>,
}

/// How much history a topic keeps: at most `events` (per key, for a keyed topic), none older
/// than `ttl_ms` (0: no age limit of the topic's own; the gateway's bounds still apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryDesc {
    pub events: u32,
    pub ttl_ms: u64,
}

/// What the gateway does with a subscriber that cannot keep up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LagPolicy {
    /// Close its connection with a "slow consumer" reason.
    Disconnect,
    /// Drop its oldest queued events and tell it how many it missed.
    DropOldest,
    /// Keep only the newest event per topic key.
    KeepLatest,
}

#[derive(Debug)]
pub struct ErrorDesc {
    pub id: u32,
    /// Fully qualified: `examples.tracker.Tracker.DeviceNotFound`.
    pub name: &'static str,
    pub code: crate::status::Code,
}

/// The server side of a generated service: routes a method id and request bytes to the
/// implementation.
pub trait Dispatch: Send + Sync + 'static {
    /// What this service offers.
    fn descriptor(&self) -> &'static ServiceDesc;

    /// Serves one call. The request bytes are verified before the implementation sees them
    /// (`invalid_argument` if they don't verify); an unknown method id gives `unimplemented`.
    /// Fire-and-forget methods resolve to empty bytes, which the caller never sees.
    fn dispatch(
        &self,
        ctx: CallContext,
        request: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, Status>>;
}
