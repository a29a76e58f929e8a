//! Serving a generated service on a bus.
//!
//! A [`ServiceRuntime`] takes the calls of one service ([`Dispatch`]) from a [`Bus`], as
//! `docs/bus.md` specifies: it subscribes to the service's method pattern in the service's queue
//! group (so several runtimes of one service, in one process or many, share the calls) and to the
//! service's cancel subject, and runs each call in its own task with the caller's identity,
//! deadline and a cancellation signal.
//!
//! - **Concurrency** is capped ([`ServeOptions::concurrency`]); a call beyond the cap is answered
//!   at once with a retryable `resource_exhausted`, never queued.
//! - **Deadlines**: `rpc-timeout-ms` counts from the moment the call is received. When it passes,
//!   the handler is dropped, its signal fires and the caller gets `deadline_exceeded`.
//! - **Cancellation**: a cancel message for the call's `rpc-call-id` drops the handler and fires
//!   its signal; the caller gets no answer (it asked to stop waiting).
//! - **Batching**: [`ServiceRuntime::batch`] serves a method in batches (see
//!   [`BatchOptions`]).
//! - **Shutdown**: when the `shutdown` token fires, the runtime unsubscribes from calls, serves
//!   the calls it already received, waits for in-flight calls up to
//!   [`ServeOptions::drain_timeout`], then cancels the rest (their callers get a retryable
//!   `unavailable`) and returns.

mod batch;
mod call;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::{CallContext, Dispatch, Status};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::batch::Batcher;
use self::call::Calls;
use crate::{Bus, BusError, Subscription, contract};

pub use self::batch::BatchOptions;

/// Limits of a [`ServiceRuntime`].
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Calls served at once, batched calls included; further calls are shed. Default 1024; 0 is
    /// taken as 1.
    pub concurrency: usize,
    /// How long shutdown waits for in-flight calls before cancelling them. Default 10 s.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions { concurrency: 1024, drain_timeout: Duration::from_secs(10) }
    }
}

/// A batch handler: the calls of one batch in, one result per call out, in the same order.
pub(crate) type BatchHandler =
    Arc<dyn Fn(Vec<(CallContext, Bytes)>) -> BatchFuture + Send + Sync + 'static>;
type BatchFuture = gateway_core::BoxFuture<'static, Vec<Result<Bytes, Status>>>;

/// Serves one service on a bus. Configure it, then [`ServiceRuntime::start`] (or
/// [`ServiceRuntime::serve`]) it.
pub struct ServiceRuntime {
    bus: Arc<dyn Bus>,
    service: Arc<dyn Dispatch>,
    options: ServeOptions,
    batches: HashMap<u32, (BatchOptions, BatchHandler)>,
}

impl ServiceRuntime {
    pub fn new(bus: Arc<dyn Bus>, service: Arc<dyn Dispatch>) -> ServiceRuntime {
        ServiceRuntime { bus, service, options: ServeOptions::default(), batches: HashMap::new() }
    }

    pub fn with_options(mut self, options: ServeOptions) -> ServiceRuntime {
        self.options = options;
        self
    }

    /// Serves the calls of method `method_id` in batches with `handler` instead of the
    /// service's `dispatch`: one handler call per batch, which is cut at `max_batch` calls or
    /// `max_delay` after its first call, whichever comes first. The handler returns one result
    /// per call, in order (a missing result answers its call with `internal`). Calls keep their
    /// deadlines and cancellation while they wait for a batch; calls already cancelled when a
    /// batch is cut are left out of it.
    pub fn batch<F, Fut>(mut self, method_id: u32, options: BatchOptions, handler: F) -> Self
    where
        F: Fn(Vec<(CallContext, Bytes)>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<Bytes, Status>>> + Send + 'static,
    {
        let handler: BatchHandler = Arc::new(move |calls| Box::pin(handler(calls)));
        self.batches.insert(method_id, (options, handler));
        self
    }

    /// Subscribes, then serves in a background task until `shutdown` fires. Once this returns,
    /// calls reach the service.
    ///
    /// # Errors
    ///
    /// The bus's error if it refuses a subscription.
    pub async fn start(self, shutdown: CancellationToken) -> Result<Serving, BusError> {
        let desc = self.service.descriptor();
        let group = contract::queue_group(desc);
        let calls = self.bus.subscribe(&contract::service_pattern(desc), Some(group)).await?;
        let cancels = self.bus.subscribe(&contract::cancel_subject(desc.name), None).await?;
        let concurrency = self.options.concurrency.max(1);
        let batchers = self
            .batches
            .into_iter()
            .map(|(id, (options, handler))| (id, Batcher::start(options, handler, concurrency)))
            .collect();
        let calls_state = Arc::new(Calls::new(
            self.bus,
            self.service,
            batchers,
            Arc::new(Semaphore::new(concurrency)),
        ));
        tracing::info!(service = desc.name, concurrency, "serving");
        let drain_timeout = self.options.drain_timeout;
        let task = tokio::spawn(run(calls_state, calls, cancels, shutdown, drain_timeout));
        Ok(Serving { task })
    }

    /// [`ServiceRuntime::start`], then waits until the runtime has stopped.
    ///
    /// # Errors
    ///
    /// The bus's error if it refuses a subscription.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), BusError> {
        self.start(shutdown).await?.stopped().await;
        Ok(())
    }
}

impl fmt::Debug for ServiceRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceRuntime")
            .field("service", &self.service.descriptor().name)
            .field("options", &self.options)
            .field("batched_methods", &self.batches.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A running [`ServiceRuntime`]. Dropping it does not stop the runtime; its `shutdown` token
/// does.
#[derive(Debug)]
pub struct Serving {
    task: JoinHandle<()>,
}

impl Serving {
    /// Waits until the runtime has stopped: unsubscribed, and every call answered or cancelled.
    ///
    /// # Panics
    ///
    /// If the runtime's task panicked (a bug), the panic is resumed here.
    pub async fn stopped(self) {
        if let Err(err) = self.task.await {
            if err.is_panic() {
                std::panic::resume_unwind(err.into_panic());
            }
        }
    }
}

/// The runtime's task: takes calls and cancels until shutdown, then drains.
async fn run(
    state: Arc<Calls>,
    mut calls: Subscription,
    mut cancels: Subscription,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) {
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(message) = cancels.next() => state.cancel(&message),
            message = calls.next() => match message {
                Some(message) => state.accept(message, &tracker).await,
                None => break,
            },
        }
    }
    let service = state.service_name();
    tracing::info!(service, in_flight = tracker.len(), "stopping: no new calls");
    // New calls now go to the other instances; the ones already queued here are still served.
    calls.unsubscribe();
    while let Some(message) = calls.next().await {
        state.accept(message, &tracker).await;
    }
    tracker.close();
    let drained = tokio::time::sleep(drain_timeout);
    tokio::pin!(drained);
    loop {
        tokio::select! {
            biased;
            () = tracker.wait() => break,
            Some(message) = cancels.next() => state.cancel(&message),
            () = &mut drained, if !state.is_aborted() => {
                tracing::warn!(service, left = tracker.len(), "drain timed out: cancelling calls");
                state.abort();
            }
        }
    }
    tracing::info!(service, "stopped");
}

#[cfg(test)]
mod tests;
