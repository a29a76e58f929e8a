//! Retention: positions whose fix is older than a configured age are deleted, at start and then
//! once an hour ([`Store::delete_positions_before`]: device by device, in small transactions, so
//! the ingest keeps committing meanwhile). `tracker serve --retain 90d` and `tracker demo
//! --retain 90d` run it; without the flag every position is kept.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ingest::now_ms;
use crate::store::Store;

/// How often retention runs after the first time.
pub const EVERY: Duration = Duration::from_secs(3600);

/// Deletes positions older than `keep` (by fix time) now and every `every`, until `stop`.
pub async fn run(store: Arc<Store>, keep: Duration, every: Duration, stop: CancellationToken) {
    loop {
        let cut = now_ms().saturating_sub(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX));
        let store = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || store.delete_positions_before(cut)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(deleted)) => tracing::info!(deleted, before_ms = cut, "retention"),
            Ok(Err(e)) => tracing::warn!(cause = %e, "retention failed; tried again later"),
            Err(e) => tracing::warn!(cause = %e, "retention panicked; tried again later"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
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
        let running =
            tokio::spawn(run(Arc::clone(&store), Duration::from_secs(86_400), EVERY, stop.clone()));
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
}
