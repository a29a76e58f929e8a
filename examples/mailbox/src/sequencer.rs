//! The sequencer (docs/mailbox.md, "Epochs"): ends the epochs of a relay of several shards.
//! Every `every` it asks each shard to close the next epoch, and starts the one after only
//! when every shard has closed it (and so every owner has committed it), so epoch `e + 1`
//! collects while `e` is numbered, routed and committed. It keeps no state: on starting it asks
//! the shards which epoch they last closed and closes that one again (harmless when done).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_bus::Bus;
use tokio_util::sync::CancellationToken;

use crate::peers;

/// Ends epochs every `every` until `stop`, for shards `0..shards` on `bus`.
pub async fn run(bus: Arc<dyn Bus>, shards: u32, every: Duration, stop: CancellationToken) {
    let statuses = futures::future::join_all((0..shards).map(|shard| {
        let (bus, stop) = (bus.clone(), stop.clone());
        async move { persist(&stop, shard, "status", || peers::status(&*bus, shard)).await }
    }))
    .await;
    let Some(statuses) = statuses.into_iter().collect::<Option<Vec<_>>>() else { return };
    if let Some(wrong) = statuses.iter().position(|s| s.shards != shards) {
        tracing::error!(
            shard = wrong,
            counts = statuses[wrong].shards,
            shards,
            "a shard counts another number of shards; the sequencer stops"
        );
        return;
    }
    let mut epoch = statuses.iter().map(|s| s.closed).max().unwrap_or(0).max(1);
    tracing::info!(shards, epoch, every = ?every, "the sequencer starts");
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let closed =
            futures::future::join_all(
                (0..shards).map(|shard| {
                    let (bus, stop) = (bus.clone(), stop.clone());
                    async move {
                        persist(&stop, shard, "close", || peers::close(&*bus, shard, epoch)).await
                    }
                }),
            )
            .await;
        if closed.iter().any(Option::is_none) {
            return;
        }
        epoch += 1;
    }
}

/// Asks `ask` of `shard` until it answers (every 100 ms, doubling to a second) or `stop`.
async fn persist<T, F: Future<Output = Result<T, peers::PeerError>>>(
    stop: &CancellationToken,
    shard: u32,
    what: &str,
    ask: impl Fn() -> F,
) -> Option<T> {
    let started = Instant::now();
    let mut wait = Duration::from_millis(100);
    let mut warned = Duration::ZERO;
    loop {
        let answer = tokio::select! {
            answer = ask() => answer,
            () = stop.cancelled() => return None,
        };
        match answer {
            Ok(answer) => return Some(answer),
            Err(e) => {
                let waited = started.elapsed();
                if waited >= warned {
                    tracing::warn!(shard, what, waited = ?waited, error = %e, "a shard does not answer; epochs wait for it");
                    warned = waited + Duration::from_secs(5);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return None,
        }
        wait = (wait * 2).min(Duration::from_secs(1));
    }
}
