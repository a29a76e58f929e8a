//! The client side of generated code: a typed client sends its calls through a [`Transport`].
//!
//! The gateway's network client implements it; [`LocalTransport`] implements it in memory, by
//! calling a [`Dispatch`] directly, which is how generated code is tested without a network and
//! how a program can call a service living in the same process.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::context::{CallContext, Identity};
use crate::service::{Dispatch, MethodDesc};
use crate::status::Status;

/// Per-call options.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// How long the caller waits. `None` uses the transport's default.
    pub timeout: Option<Duration>,
}

impl CallOptions {
    pub fn timeout(timeout: Duration) -> CallOptions {
        CallOptions { timeout: Some(timeout) }
    }
}

/// Carries encoded requests to a service and brings back encoded replies.
///
/// Dropping a returned future cancels the call: the transport tells the service (a cancel frame
/// on the wire, the cancellation signal in memory).
pub trait Transport: Send + Sync {
    /// Sends a request and waits for its reply.
    fn unary(
        &self,
        method: &'static MethodDesc,
        request: Bytes,
        options: CallOptions,
    ) -> impl Future<Output = Result<Bytes, Status>> + Send;

    /// Sends a request to a `-> void` method. Resolves once the request is handed over; nothing
    /// tells the caller what became of it.
    fn fire_and_forget(
        &self,
        method: &'static MethodDesc,
        request: Bytes,
        options: CallOptions,
    ) -> impl Future<Output = Result<(), Status>> + Send;
}

/// A transport that calls a service in the same process, with deadlines and cancellation as the
/// network would apply them.
#[derive(Clone)]
pub struct LocalTransport {
    service: Arc<dyn Dispatch>,
    identity: Option<Arc<Identity>>,
    default_timeout: Duration,
}

impl LocalTransport {
    /// The default timeout, as for network calls, is 10 seconds.
    pub fn new(service: Arc<dyn Dispatch>) -> LocalTransport {
        LocalTransport { service, identity: None, default_timeout: Duration::from_secs(10) }
    }

    /// Calls made through this transport carry `identity`, as if a gateway had authenticated it.
    pub fn with_identity(mut self, identity: Identity) -> LocalTransport {
        self.identity = Some(Arc::new(identity));
        self
    }

    pub fn with_default_timeout(mut self, timeout: Duration) -> LocalTransport {
        self.default_timeout = timeout;
        self
    }

    fn context(
        &self,
        method: &MethodDesc,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> CallContext {
        CallContext::new(method.id)
            .with_identity(self.identity.clone())
            .with_deadline(Instant::now().checked_add(timeout))
            .with_cancellation(cancel)
    }
}

impl std::fmt::Debug for LocalTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTransport")
            .field("service", &self.service.descriptor().name)
            .field("default_timeout", &self.default_timeout)
            .finish()
    }
}

impl Transport for LocalTransport {
    async fn unary(
        &self,
        method: &'static MethodDesc,
        request: Bytes,
        options: CallOptions,
    ) -> Result<Bytes, Status> {
        let timeout = options.timeout.unwrap_or(self.default_timeout);
        let cancel = CancellationToken::new();
        // Cancels the service's signal when this future completes or is dropped early.
        let _guard = cancel.clone().drop_guard();
        let call = self.service.dispatch(self.context(method, timeout, cancel), request);
        match tokio::time::timeout(timeout, call).await {
            Ok(reply) => reply,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "{} did not answer within {timeout:?}",
                method.name
            ))),
        }
    }

    async fn fire_and_forget(
        &self,
        method: &'static MethodDesc,
        request: Bytes,
        options: CallOptions,
    ) -> Result<(), Status> {
        let timeout = options.timeout.unwrap_or(self.default_timeout);
        let cancel = CancellationToken::new();
        let call = self.service.dispatch(self.context(method, timeout, cancel.clone()), request);
        tokio::spawn(async move {
            let _guard = cancel.drop_guard();
            // Nobody waits for the outcome of a fire-and-forget call.
            let _ = tokio::time::timeout(timeout, call).await;
        });
        Ok(())
    }
}
