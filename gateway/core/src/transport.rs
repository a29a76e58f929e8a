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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::sync::oneshot;

    use super::*;
    use crate::service::{BoxFuture, ServiceDesc};
    use crate::status::Code;

    static METHODS: [MethodDesc; 2] = [
        MethodDesc {
            id: 1,
            name: "test.Slow.echo",
            request: "test.Any",
            response: Some("test.Any"),
            idempotent: true,
            writes: false,
        },
        MethodDesc {
            id: 2,
            name: "test.Slow.hang",
            request: "test.Any",
            response: Some("test.Any"),
            idempotent: false,
            writes: false,
        },
    ];
    static DESC: ServiceDesc =
        ServiceDesc { name: "test.Slow", methods: &METHODS, topics: &[], errors: &[] };

    /// Method 1 echoes at once; method 2 waits for cancellation and reports it through a channel
    /// from a task of its own, as a service handing work to a spawned task would.
    struct Slow {
        cancelled: std::sync::Mutex<Option<oneshot::Sender<()>>>,
        saw_identity: AtomicBool,
    }

    impl Dispatch for Slow {
        fn descriptor(&self) -> &'static ServiceDesc {
            &DESC
        }

        fn dispatch(
            &self,
            ctx: CallContext,
            request: Bytes,
        ) -> BoxFuture<'static, Result<Bytes, Status>> {
            if ctx.identity().is_some_and(|who| who.subject == "alice") {
                self.saw_identity.store(true, Ordering::SeqCst);
            }
            let report = self.cancelled.lock().unwrap().take();
            Box::pin(async move {
                if ctx.method_id() == 1 {
                    return Ok(request);
                }
                let token = ctx.cancellation().clone();
                tokio::spawn(async move {
                    token.cancelled().await;
                    if let Some(report) = report {
                        let _ = report.send(());
                    }
                });
                std::future::pending().await
            })
        }
    }

    fn slow() -> (Arc<Slow>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let slow = Arc::new(Slow {
            cancelled: std::sync::Mutex::new(Some(tx)),
            saw_identity: AtomicBool::new(false),
        });
        (slow, rx)
    }

    #[tokio::test]
    async fn unary_returns_the_reply_and_carries_the_identity() {
        let (service, _) = slow();
        let identity = Identity { subject: "alice".into(), ..Identity::default() };
        let transport = LocalTransport::new(service.clone()).with_identity(identity);
        let reply = transport.unary(&METHODS[0], Bytes::from_static(b"hi"), CallOptions::default());
        assert_eq!(reply.await.unwrap(), Bytes::from_static(b"hi"));
        assert!(service.saw_identity.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_fails_and_cancels_the_service() {
        let (service, cancelled) = slow();
        let transport = LocalTransport::new(service);
        let options = CallOptions::timeout(Duration::from_millis(50));
        let err = transport.unary(&METHODS[1], Bytes::new(), options).await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        assert!(err.message().contains("test.Slow.hang"), "{err}");
        tokio::time::timeout(Duration::from_secs(1), cancelled)
            .await
            .expect("the service saw the cancellation")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_a_call_cancels_the_service() {
        let (service, cancelled) = slow();
        let transport = LocalTransport::new(service);
        let call = transport.unary(&METHODS[1], Bytes::new(), CallOptions::default());
        // Run the call until the service is waiting, then give up on it.
        tokio::select! {
            _ = call => panic!("the call cannot finish"),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        tokio::time::timeout(Duration::from_secs(1), cancelled)
            .await
            .expect("the service saw the cancellation")
            .unwrap();
    }
}
