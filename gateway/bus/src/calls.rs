//! [`BusCalls`]: calls straight on the bus, without a gateway in between.
//!
//! This is how one program on the bus calls a service of another (a tracker ingest storing its
//! batches through the tracker's storage service, say): give a generated client a `BusCalls` for
//! the service and call its methods. The calls are the contract's (`docs/bus.md`): the method's
//! subject, its `rpc-*` headers, one instance of the service's queue group answering, the
//! deadline told to the service, cancellation when the caller stops waiting.
//!
//! Calls carry no identity unless [`BusCalls::with_identity`] gives one: whoever holds the bus
//! calls as itself, as with [`BusTopics`](crate::BusTopics). A service reachable this way is
//! reachable by every program on the bus; one that clients must not call is simply not
//! registered with the gateways.
//!
//! ```
//! use std::sync::Arc;
//!
//! use gateway_bus::{BusCalls, LocalBus, ServiceRuntime};
//! use some_api::{Calculator, DESCRIPTOR, RequestSumT, SomeApiClient, SomeApiServer};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = Arc::new(LocalBus::new());
//! let stop = CancellationToken::new();
//! let server = Arc::new(SomeApiServer::new(Calculator::default()));
//! let _serving = ServiceRuntime::new(bus.clone(), server).start(stop.clone()).await?;
//!
//! let api = SomeApiClient::new(BusCalls::new(bus, &DESCRIPTOR)?);
//! let reply = api.sum(RequestSumT { a: 2, b: 3 }).await?;
//! assert_eq!(reply.get().sum(), 5);
//! # stop.cancel();
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::{CallOptions, Identity, MethodDesc, ServiceDesc, Status, Transport};

use crate::{Bus, BusError, CallId, CallMeta, MethodRoute};

/// How long a call waits when its options name no timeout, as for a gateway's clients.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls one service's methods on a bus. Cloning gives another handle sharing the routes and the
/// call ids.
#[derive(Clone)]
pub struct BusCalls {
    bus: Arc<dyn Bus>,
    service: &'static ServiceDesc,
    /// Each method's route, by method id: checked once, not per call.
    routes: Arc<HashMap<u32, MethodRoute>>,
    ids: Arc<Ids>,
    identity: Option<Arc<Identity>>,
    default_timeout: Duration,
}

/// Call ids as a gateway makes them: a random instance number and a counter.
struct Ids {
    instance: u64,
    next: AtomicU64,
}

impl BusCalls {
    /// Calls `service` on `bus`.
    ///
    /// # Errors
    ///
    /// [`BusError::InvalidSubject`] if a method's name does not make a valid subject (rpcgen's
    /// names always do).
    pub fn new(bus: Arc<dyn Bus>, service: &'static ServiceDesc) -> Result<BusCalls, BusError> {
        let routes = service
            .methods
            .iter()
            .map(|method| Ok((method.id, MethodRoute::new(service, method)?)))
            .collect::<Result<_, BusError>>()?;
        // The std hasher's per-process random keys: randomness without a dependency.
        let instance = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        Ok(BusCalls {
            bus,
            service,
            routes: Arc::new(routes),
            ids: Arc::new(Ids { instance, next: AtomicU64::new(1) }),
            identity: None,
            default_timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Calls made through this handle carry `identity` (the `rpc-identity` and `rpc-claim-*`
    /// headers), as if a gateway had authenticated it.
    pub fn with_identity(mut self, identity: Identity) -> BusCalls {
        self.identity = Some(Arc::new(identity));
        self
    }

    /// How long calls wait when their options name no timeout ([`DEFAULT_TIMEOUT`] unless set).
    pub fn with_default_timeout(mut self, timeout: Duration) -> BusCalls {
        self.default_timeout = timeout;
        self
    }

    /// The route of `method`, or the status a caller gets for a method of another service.
    fn route(&self, method: &MethodDesc) -> Result<&MethodRoute, Status> {
        self.routes.get(&method.id).ok_or_else(|| {
            Status::internal(format!(
                "`{}` is not a method of `{}`, which this handle calls",
                method.name, self.service.name
            ))
        })
    }

    fn meta(&self, method: &MethodDesc, timeout: Duration) -> CallMeta {
        let serial = self.ids.next.fetch_add(1, Ordering::Relaxed);
        CallMeta {
            method_id: method.id,
            deadline: Instant::now().checked_add(timeout),
            call_id: Some(CallId { instance: self.ids.instance, serial }),
            identity: self.identity.clone(),
            received: None,
        }
    }
}

impl std::fmt::Debug for BusCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusCalls")
            .field("service", &self.service.name)
            .field("default_timeout", &self.default_timeout)
            .finish_non_exhaustive()
    }
}

impl Transport for BusCalls {
    /// # Errors
    ///
    /// The service's status; `deadline_exceeded` when no answer comes within the timeout (the
    /// service is told to stop); what the bus refuses, as [`BusError::to_status`] says
    /// (`unavailable` when nothing serves the method).
    async fn unary(
        &self,
        method: &'static MethodDesc,
        request: Bytes,
        options: CallOptions,
    ) -> Result<Bytes, Status> {
        let route = self.route(method)?;
        let timeout = options.timeout.unwrap_or(self.default_timeout);
        let call = self.bus.call(route, self.meta(method, timeout), request);
        // Dropping the call at the deadline cancels it at the service.
        match tokio::time::timeout(timeout, call).await {
            Ok(answer) => answer.map_err(|failure| failure.status),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "`{}` did not answer within {timeout:?}",
                method.name
            ))),
        }
    }

    /// # Errors
    ///
    /// What the bus refuses (a payload too large, a lost connection); not what the service does.
    async fn fire_and_forget(
        &self,
        method: &'static MethodDesc,
        request: Bytes,
        options: CallOptions,
    ) -> Result<(), Status> {
        let route = self.route(method)?;
        let timeout = options.timeout.unwrap_or(self.default_timeout);
        self.bus.send(route, self.meta(method, timeout), request).await.map_err(|e| e.to_status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalBus, ServiceRuntime};
    use gateway_core::Code;
    use some_api::{Calculator, DESCRIPTOR, RequestSumT, SomeApiClient, SomeApiServer};
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn calls_reach_the_service_and_fail_as_the_contract_says() {
        let bus = Arc::new(LocalBus::new());
        let api = SomeApiClient::new(BusCalls::new(bus.clone(), &DESCRIPTOR).unwrap());
        // Nothing serves it yet.
        let status = api.sum(RequestSumT { a: 1, b: 2 }).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status}");

        let stop = CancellationToken::new();
        let server = Arc::new(SomeApiServer::new(Calculator::default()));
        let serving = ServiceRuntime::new(bus.clone(), server).start(stop.clone()).await.unwrap();
        let reply = api.sum(RequestSumT { a: 40, b: 2 }).await.unwrap();
        assert_eq!(reply.get().sum(), 42);
        stop.cancel();
        serving.stopped().await;
    }

    #[test]
    fn each_call_has_its_own_id_and_the_deadline_it_was_given() {
        let calls = BusCalls::new(Arc::new(LocalBus::new()), &DESCRIPTOR).unwrap();
        let method = &DESCRIPTOR.methods[0];
        let before = Instant::now();
        let (a, b) = (
            calls.meta(method, Duration::from_secs(3)),
            calls.clone().meta(method, DEFAULT_TIMEOUT),
        );
        assert_eq!(a.method_id, method.id);
        let (a_id, b_id) = (a.call_id.unwrap(), b.call_id.unwrap());
        assert_eq!(a_id.instance, b_id.instance);
        assert_eq!(b_id.serial, a_id.serial + 1, "clones share the counter");
        let left = a.deadline.unwrap() - before;
        assert!(left >= Duration::from_secs(3) && left < Duration::from_secs(4), "{left:?}");
    }
}
