//! Serving a generated service on a bus.
//!
//! A [`ServiceRuntime`] takes the calls of one service ([`Dispatch`]) from a [`Bus`], as
//! `docs/bus.md` specifies: it subscribes to the service's method pattern in the service's queue
//! group (so several runtimes of one service, in one process or many, share the calls) and to the
//! service's cancel subject, and serves each call with the caller's identity, deadline and a
//! cancellation signal.
//!
//! - **No task per call.** A caller in the same process (a gateway on the in-process bus) polls
//!   the handler's future itself: the bus hands it the call directly ([`crate::call::Endpoint`]).
//!   Calls that come as messages (over NATS) are polled by the runtime's own task: a handler that
//!   finishes on its first poll is answered at once, one that waits joins the runtime's calls in
//!   flight. So handlers must not block: CPU-heavy or blocking work belongs in
//!   `tokio::task::spawn_blocking` (the tracker's SQLite queries do this) or in a batch handler.
//! - **Concurrency** is capped ([`ServeOptions::concurrency`]); a call beyond the cap is answered
//!   at once with a retryable `resource_exhausted`, never queued.
//! - **Deadlines**: `rpc-timeout-ms` counts from the moment the call is received. When it passes,
//!   the handler is dropped, its signal fires and the caller gets `deadline_exceeded`.
//! - **Cancellation**: a cancel message for the call's `rpc-call-id` drops the handler and fires
//!   its signal; the caller gets no answer (it asked to stop waiting).
//! - **Batching**: [`ServiceRuntime::batch`] serves a method in batches (see
//!   [`BatchOptions`]).
//! - **Discovery**: each runtime answers the NATS Services API (`$SRV.PING`, `$SRV.INFO`,
//!   `$SRV.STATS`) as one instance of the service, with one endpoint per method and each method's
//!   counters (calls, errors, the last error, processing time); see [`discovery`] and
//!   `docs/bus.md`. On by default ([`ServeOptions::discovery`]).
//! - **Running notices**: a call that asks (`rpc-notify-ms`) and is still running that long after
//!   it arrived gets a notice naming the instance's liveness subject
//!   (`instance.<service>.<id>`), which the runtime answers until it has stopped; a caller pinging
//!   it learns at once when the instance is gone (`docs/bus.md`, "Running notices").
//! - **Shutdown**: when the `shutdown` token fires, the runtime unsubscribes from calls and from
//!   discovery, serves the calls it already received, waits for in-flight calls up to
//!   [`ServeOptions::drain_timeout`], then cancels the rest (their callers get a retryable
//!   `unavailable`) and returns.

mod batch;
mod call;
pub mod discovery;
mod stats;

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use gateway_core::{CallContext, Dispatch, Status};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::batch::Batcher;
use self::call::{Calls, Direct, Pending, Registry};
use self::discovery::Discovery;
use self::stats::ServiceStats;
use crate::{Bus, BusError, BusMessage, Headers, Subscription, contract};

pub use self::batch::BatchOptions;

/// Limits and discovery settings of a [`ServiceRuntime`].
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Calls served at once, batched calls included; further calls are shed. Default 1024; 0 is
    /// taken as 1.
    pub concurrency: usize,
    /// How long shutdown waits for in-flight calls before cancelling them. Default 10 s.
    pub drain_timeout: Duration,
    /// Whether the runtime answers discovery requests (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`).
    /// Default true.
    pub discovery: bool,
    /// The version discovery reports, a semantic version (`1.4.0`, `2.0.0-rc.1`). Default
    /// `0.0.0`; a service binary typically passes its crate's `CARGO_PKG_VERSION`.
    pub version: String,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            concurrency: 1024,
            drain_timeout: Duration::from_secs(10),
            discovery: true,
            version: "0.0.0".to_owned(),
        }
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

    /// # Panics
    ///
    /// If `options.version` is not a semantic version (the Services API requires one): a bug in
    /// the program, caught when it configures the runtime.
    pub fn with_options(mut self, options: ServeOptions) -> ServiceRuntime {
        assert!(
            discovery::is_semver(&options.version),
            "ServeOptions::version `{}` is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.0)",
            options.version
        );
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
    /// calls reach the service and discovery requests are answered.
    ///
    /// # Errors
    ///
    /// The bus's error if it refuses a subscription.
    pub async fn start(self, shutdown: CancellationToken) -> Result<Serving, BusError> {
        let desc = self.service.descriptor();
        let stats = Arc::new(ServiceStats::new(desc));
        let id = contract::instance_id();
        let liveness_subject = contract::liveness_subject(desc.name, &id);
        let concurrency = self.options.concurrency.max(1);
        let batchers = self
            .batches
            .into_iter()
            .map(|(id, (options, handler))| (id, Batcher::start(options, handler, concurrency)))
            .collect();
        let state = Arc::new(Calls::new(
            self.bus.clone(),
            self.service,
            batchers,
            concurrency,
            stats.clone(),
            liveness_subject.as_str().into(),
        ));
        // On the in-process bus, callers take the direct road to `state` (no message, no task).
        let direct = Arc::new(Direct(state.clone()));
        let group = contract::queue_group(desc);
        let pattern = contract::service_pattern(desc);
        let calls = self.bus.subscribe_service(&pattern, group, direct).await?;
        let cancels = self.bus.subscribe(&contract::cancel_subject(desc.name), None).await?;
        let liveness = self.bus.subscribe(&liveness_subject, None).await?;
        let discovery = if self.options.discovery {
            let (bus, version) = (self.bus.clone(), &self.options.version);
            Some(Discovery::subscribe(bus, desc, stats, version, id.clone()).await?)
        } else {
            None
        };
        tracing::info!(service = desc.name, instance = id, concurrency, "serving");
        let subscriptions = Subscriptions { calls, cancels, liveness };
        let drain_timeout = self.options.drain_timeout;
        let task = tokio::spawn(run(state, subscriptions, discovery, shutdown, drain_timeout));
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
        join(self.task).await;
    }
}

/// Waits for `task` to end; resumes its panic if it panicked.
async fn join(task: JoinHandle<()>) {
    if let Err(err) = task.await {
        if err.is_panic() {
            std::panic::resume_unwind(err.into_panic());
        }
    }
}

/// What a running instance listens to.
struct Subscriptions {
    /// Its calls (the service's queue group).
    calls: Subscription,
    /// Cancellations of the service's calls.
    cancels: Subscription,
    /// Its liveness subject: pings from callers holding running notices of its calls, answered
    /// until the last call is over (`docs/bus.md`, "Running notices").
    liveness: Subscription,
}

/// Answers a liveness ping: an empty message, which says "still here".
async fn pong(state: &Calls, ping: BusMessage) {
    if let Some(reply) = ping.reply {
        let _ = state.bus().publish(&reply, Headers::new(), Bytes::new()).await;
    }
}

/// The runtime's task: takes calls and cancels until shutdown, then drains. Calls that came as
/// messages are polled here, in `pending`, not in tasks of their own. Discovery requests are
/// answered by a task of their own until shutdown; liveness pings until the runtime stops.
async fn run(
    state: Arc<Calls>,
    subscriptions: Subscriptions,
    discovery: Option<Discovery>,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) {
    let Subscriptions { mut calls, mut cancels, mut liveness } = subscriptions;
    // Stops discovery however this function ends, a panic included.
    let stop = CancellationToken::new();
    let discovery = discovery.map(|d| tokio::spawn(d.serve(stop.clone())));
    let stop_discovery = stop.drop_guard();
    let mut pending = FuturesUnordered::new();
    let mut registry = Registry::default();
    let service = state.service_name();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(message) = cancels.next() => registry.cancel(service, &message),
            Some(ping) = liveness.next() => pong(&state, ping).await,
            Some((registered, answered)) = pending.next(), if !pending.is_empty() => {
                registry.forget(registered);
                state.answer(answered).await;
            }
            message = calls.next() => match message {
                Some(message) => accept(&state, message, &mut pending, &mut registry).await,
                None => break,
            },
        }
    }
    tracing::info!(service, in_flight = state.admission.in_flight(), "stopping: no new calls");
    // New calls now go to the other instances; the ones already queued here are still served.
    calls.unsubscribe().await;
    // An instance on its way out is no longer one to discover.
    drop(stop_discovery);
    if let Some(task) = discovery {
        join(task).await;
    }
    let mut queued = true;
    let drained = tokio::time::sleep(drain_timeout);
    tokio::pin!(drained);
    loop {
        tokio::select! {
            biased;
            Some((registered, answered)) = pending.next(), if !pending.is_empty() => {
                registry.forget(registered);
                state.answer(answered).await;
            }
            message = calls.next(), if queued => match message {
                Some(message) => accept(&state, message, &mut pending, &mut registry).await,
                None => queued = false,
            },
            Some(message) = cancels.next() => registry.cancel(service, &message),
            Some(ping) = liveness.next() => pong(&state, ping).await,
            // Direct calls (callers in this process) count in the admission too.
            () = state.admission.idle(), if !queued && pending.is_empty() => break,
            () = &mut drained, if !state.is_aborted() => {
                let left = state.admission.in_flight();
                tracing::warn!(service, left, "drain timed out: cancelling calls");
                state.abort();
            }
        }
    }
    tracing::info!(service, "stopped");
}

/// Takes a call that came as a message: answered at once if it is refused or its handler
/// finishes on the first poll, else kept in `pending` (and in `registry`, to be cancelled).
async fn accept(
    state: &Arc<Calls>,
    message: BusMessage,
    pending: &mut FuturesUnordered<Pending>,
    registry: &mut Registry,
) {
    let received = std::time::Instant::now();
    let mut message = Some(message);
    let accepted = poll_fn(|cx| {
        let message = message.take().expect("polled once: it is ready at once");
        Poll::Ready(state.accept(message, received, cx))
    })
    .await;
    match accepted {
        Ok(mut call) => {
            registry.register(&mut call);
            pending.push(call);
        }
        Err(answered) => state.answer(answered).await,
    }
}

#[cfg(test)]
mod tests;
