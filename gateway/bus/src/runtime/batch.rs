//! Serving a method in batches, for work whose cost is mostly per batch rather than per call:
//! one signature over a Merkle root of many requests, one consensus read for every pending
//! timestamp request.
//!
//! Each batched method has a collector task. A call hands its request to the collector and waits
//! for its own result; the collector gathers calls until the batch holds `max_batch` of them or
//! `max_delay` has passed since its first call, then runs the handler on the batch in a task of
//! its own, so the next batch gathers while this one is served. The collector's queue cannot
//! overflow: it holds no more calls than the runtime's concurrency limit admits.

use std::time::Duration;

use bytes::Bytes;
use gateway_core::{BoxFuture, CallContext, Status};
use tokio::sync::{mpsc, oneshot};

use super::BatchHandler;

/// When a batch is cut.
#[derive(Clone, Copy, Debug)]
pub struct BatchOptions {
    /// The most calls in one batch; 0 is taken as 1.
    pub max_batch: usize,
    /// The longest a call waits for its batch to fill.
    pub max_delay: Duration,
}

/// A call waiting for its batch.
struct Pending {
    ctx: CallContext,
    request: Bytes,
    result: oneshot::Sender<Result<Bytes, Status>>,
}

/// The calls' side of a batched method's collector.
pub(super) struct Batcher {
    calls: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Spawns the collector; it ends once the batcher is dropped. `capacity` is the runtime's
    /// concurrency limit.
    pub(super) fn start(options: BatchOptions, handler: BatchHandler, capacity: usize) -> Batcher {
        let (calls, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(collect(rx, options, handler));
        Batcher { calls }
    }

    /// Queues a call for the next batch; the future resolves to its result.
    pub(super) fn submit(
        &self,
        ctx: CallContext,
        request: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, Status>> {
        let (result, answer) = oneshot::channel();
        // Full only if the runtime admitted more calls than its limit, which it does not.
        if self.calls.try_send(Pending { ctx, request, result }).is_err() {
            let status = Status::resource_exhausted("the batch queue is full; retry later");
            return Box::pin(std::future::ready(Err(status)));
        }
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| Err(Status::internal("the batch handler failed")))
        })
    }
}

/// The collector task.
async fn collect(mut calls: mpsc::Receiver<Pending>, options: BatchOptions, handler: BatchHandler) {
    let max_batch = options.max_batch.max(1);
    while let Some(first) = calls.recv().await {
        let mut batch = Vec::with_capacity(max_batch);
        batch.push(first);
        let cut = tokio::time::sleep(options.max_delay);
        tokio::pin!(cut);
        while batch.len() < max_batch {
            tokio::select! {
                biased;
                call = calls.recv() => match call {
                    Some(call) => batch.push(call),
                    None => break,
                },
                () = &mut cut => break,
            }
        }
        // Calls whose caller stopped waiting (cancelled, past their deadline) are left out.
        batch.retain(|call| !call.result.is_closed() && !call.ctx.is_cancelled());
        if !batch.is_empty() {
            tokio::spawn(run(batch, handler.clone()));
        }
    }
}

/// Runs the handler on one batch and hands each call its result.
async fn run(batch: Vec<Pending>, handler: BatchHandler) {
    let size = batch.len();
    let (calls, results): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| ((p.ctx, p.request), p.result)).unzip();
    let answers = handler(calls).await;
    if answers.len() != size {
        tracing::error!(calls = size, results = answers.len(), "a batch handler miscounted");
    }
    let mut answers = answers.into_iter();
    for result in results {
        let answer = answers.next().unwrap_or_else(|| {
            Err(Status::internal("the batch handler returned no result for this call"))
        });
        // The caller may have stopped waiting meanwhile; its result is then dropped.
        let _ = result.send(answer);
    }
}
