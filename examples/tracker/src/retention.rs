//! Retention and downsampling of old positions, at start and then once an hour, device by
//! device in small transactions, so the ingest keeps committing meanwhile:
//!
//! - **retention** deletes the positions whose fix is older than an age
//!   ([`Store::delete_positions_before`]);
//! - **downsampling** keeps, of the positions older than another age, the first of each interval
//!   (one a minute, say) and deletes the others ([`Store::downsample_before`]): history and trips
//!   stay, coarser, for much less room.
//!
//! `tracker serve` and `tracker demo` run them with `--retain 90d` and `--downsample-after 7d
//! --downsample-to 1m`; without the flags every position is kept.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ingest::now_ms;
use crate::store::{Store, StoreError};

/// How often retention runs after the first time.
pub const EVERY: Duration = Duration::from_secs(3600);

/// What to do with old positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Delete positions older than this.
    pub retain: Option<Duration>,
    /// Keep one position per `interval` of those older than `after`.
    pub downsample: Option<Downsample>,
}

/// Downsampling: positions older than `after` thinned to one per `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Downsample {
    pub after: Duration,
    pub interval: Duration,
}

impl Policy {
    /// Whether the policy does anything.
    pub fn is_active(&self) -> bool {
        self.retain.is_some() || self.downsample.is_some()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Applies `policy` (by fix time) now and every `every`, until `stop`.
pub async fn run(store: Arc<Store>, policy: Policy, every: Duration, stop: CancellationToken) {
    loop {
        let now = now_ms();
        if let Some(keep) = policy.retain {
            let cut = now.saturating_sub(ms(keep));
            step(&store, "retention", cut, move |s| s.delete_positions_before(cut)).await;
        }
        if let Some(Downsample { after, interval }) = policy.downsample {
            let (cut, bucket) = (now.saturating_sub(ms(after)), ms(interval).max(1));
            step(&store, "downsampling", cut, move |s| s.downsample_before(cut, bucket)).await;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Runs one deleting step off the async threads, logging what it deleted or why it failed (it
/// is tried again at the next round).
async fn step(
    store: &Arc<Store>,
    what: &'static str,
    before_ms: u64,
    job: impl FnOnce(&Store) -> Result<u64, StoreError> + Send + 'static,
) {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || job(&store)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(deleted)) => tracing::info!(deleted, before_ms, "{what}"),
        Ok(Err(e)) => tracing::warn!(cause = %e, "{what} failed; tried again later"),
        Err(e) => tracing::warn!(cause = %e, "{what} panicked; tried again later"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PositionT;

    fn position(counter: u64, time_ms: u64) -> PositionT {
        PositionT { device_id: 1, counter, time_ms, received_ms: time_ms, ..PositionT::default() }
    }

    #[tokio::test]
    async fn positions_older_than_the_age_kept_are_deleted_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("t.db")).unwrap());
        store.add_device(1, "one", &[1; 32], 0).unwrap();
        let now = now_ms();
        let day = 86_400_000;
        store
            .insert_positions(&[
                position(1, now - 3 * day),
                position(2, now - day / 2),
                position(3, now),
            ])
            .unwrap();
        let stop = CancellationToken::new();
        let policy = Policy { retain: Some(Duration::from_secs(86_400)), downsample: None };
        let running = tokio::spawn(run(Arc::clone(&store), policy, EVERY, stop.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.history(1, 0, u64::MAX, 10, false).unwrap().len() == 3 {
            assert!(std::time::Instant::now() < deadline, "nothing deleted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        running.await.unwrap();
        let kept: Vec<u64> =
            store.history(1, 0, u64::MAX, 10, false).unwrap().iter().map(|p| p.counter).collect();
        assert_eq!(kept, [2, 3]);
    }

    #[tokio::test]
    async fn old_positions_are_thinned_to_one_per_interval_and_recent_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("t.db")).unwrap());
        store.add_device(1, "one", &[1; 32], 0).unwrap();
        let now = now_ms();
        let day = 86_400_000;
        let old = (now - 3 * day) / 60_000 * 60_000;
        // Old: one every 10 s for 3 minutes; recent: one every 10 s for a minute.
        let mut positions: Vec<PositionT> =
            (0..18).map(|i| position(i + 1, old + i * 10_000)).collect();
        positions.extend((0..6).map(|i| position(100 + i, now - 60_000 + i * 10_000)));
        store.insert_positions(&positions).unwrap();
        let policy = Policy {
            retain: None,
            downsample: Some(Downsample {
                after: Duration::from_secs(86_400),
                interval: Duration::from_secs(60),
            }),
        };
        let stop = CancellationToken::new();
        let running = tokio::spawn(run(Arc::clone(&store), policy, EVERY, stop.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.history(1, 0, u64::MAX, 100, false).unwrap().len() == 24 {
            assert!(std::time::Instant::now() < deadline, "nothing downsampled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        running.await.unwrap();
        let kept: Vec<u64> =
            store.history(1, 0, u64::MAX, 100, false).unwrap().iter().map(|p| p.counter).collect();
        // The first of each old minute, and every recent one.
        assert_eq!(kept, [1, 7, 13, 100, 101, 102, 103, 104, 105]);
    }
}
