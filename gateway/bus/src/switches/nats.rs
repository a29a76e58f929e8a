//! [`NatsSwitches`]: the switches in a JetStream key-value bucket, shared by every gateway on a
//! NATS deployment.
//!
//! The bucket is [`BUCKET`] (created if missing, history 5, file storage): one key per service,
//! its fully qualified name (`examples.some_api.SomeApi`), the value the switches' JSON
//! ([`ServiceSwitches`]); deleting the key puts the service back to normal. Operators may also
//! write it directly (`nats kv put gateway_switches examples.some_api.SomeApi '{"read_only":true}'`).
//!
//! Each store watches the whole bucket (last value per key, then every change) in a task of its
//! own and keeps its [`Snapshot`] current, so a change made through any gateway applies on every
//! gateway within the time NATS takes to deliver it. The watch is an ordered JetStream consumer:
//! when the connection comes back after a NATS restart it is recreated from the last revision
//! seen, and if it ever ends the task watches again from scratch (keeping the old snapshot until
//! the new watch has caught up). While NATS is unreachable the last snapshot stays in force, and
//! changes are refused rather than buffered by the client (a change reported as failed must not
//! apply later).
//!
//! A value that does not parse or validate is logged and ignored: the key keeps its last valid
//! value in the bucket's history (every gateway agrees, including those started after the bad
//! value), so a typo in a `nats kv put` never applies garbage or crashes a gateway.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Entry, Operation};
use async_nats::jetstream::stream;
use futures_core::Stream;
use gateway_core::BoxFuture;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

use super::{ServiceSwitches, Snapshot, SwitchError, SwitchStore, apply};

/// The key-value bucket holding the switches.
pub const BUCKET: &str = "gateway_switches";

/// Values kept per key: the current one and a few before it, for `nats kv history`.
const HISTORY: i64 = 5;

/// The largest value the bucket takes: switches are a few hundred bytes at most.
const MAX_VALUE: i32 = 8 * 1024;

/// How long [`NatsSwitches::new`] waits for the bucket's current switches.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `set` and `clear` wait for their change to come back through this store's own watch.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause before watching again after the watch failed or ended.
const RETRY: Duration = Duration::from_secs(1);

/// The switches in the JetStream key-value bucket [`BUCKET`]. Dropping it stops its watch.
pub struct NatsSwitches {
    client: async_nats::Client,
    kv: kv::Store,
    snapshot: watch::Receiver<Snapshot>,
    _stop: DropGuard,
}

impl NatsSwitches {
    /// Opens the bucket (creating it if missing) and loads its switches, then keeps them current
    /// in a background task.
    ///
    /// # Errors
    ///
    /// [`SwitchError::Unavailable`] when JetStream is not enabled on the server, the bucket can
    /// be neither opened nor created, or its switches cannot be read within 10 s.
    pub async fn new(client: async_nats::Client) -> Result<NatsSwitches, SwitchError> {
        let jetstream = async_nats::jetstream::new(client.clone());
        let kv = open_bucket(&jetstream).await?;
        let first = start_watch(&kv).await.map_err(|reason| SwitchError::Unavailable {
            reason: format!("cannot watch bucket `{BUCKET}`: {reason}"),
        })?;
        let (sender, snapshot) = watch::channel(Snapshot::default());
        let (loaded, is_loaded) = oneshot::channel();
        let stop = CancellationToken::new();
        tokio::spawn(follow(kv.clone(), first, sender, loaded, stop.clone()));
        match tokio::time::timeout(LOAD_TIMEOUT, is_loaded).await {
            Ok(Ok(())) => {}
            _ => {
                stop.cancel();
                return Err(SwitchError::Unavailable {
                    reason: format!(
                        "the switches in bucket `{BUCKET}` could not be read within {LOAD_TIMEOUT:?}"
                    ),
                });
            }
        }
        Ok(NatsSwitches { client, kv, snapshot, _stop: stop.drop_guard() })
    }

    /// Refuses a change while the client is not connected. A message published then would wait
    /// in the client's buffer and be stored once the connection is back, long after the change
    /// was reported as failed: an operator told "nothing changed" must be able to rely on it.
    fn connected(&self, service: &str) -> Result<(), SwitchError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(SwitchError::Unavailable {
                reason: format!(
                    "not connected to NATS ({state:?}); nothing was changed for `{service}`"
                ),
            }),
        }
    }

    /// Waits (bounded) until this store's snapshot shows `expected` for `service`: the change
    /// made through it came back through the watch.
    async fn settle(&self, service: &str, expected: Option<&ServiceSwitches>) {
        let mut snapshot = self.snapshot.clone();
        let seen = snapshot.wait_for(|s| s.get(service) == expected);
        if tokio::time::timeout(SETTLE_TIMEOUT, seen).await.is_err() {
            // Another change to the same service crossed this one, or the watch is slow: the
            // change is stored all the same, and applies once the watch delivers it.
            debug!(service, "a switch change was not seen back within {SETTLE_TIMEOUT:?}");
        }
    }
}

impl fmt::Debug for NatsSwitches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSwitches").field("bucket", &BUCKET).finish_non_exhaustive()
    }
}

impl SwitchStore for NatsSwitches {
    fn set<'a>(
        &'a self,
        service: &'a str,
        switches: ServiceSwitches,
    ) -> BoxFuture<'a, Result<(), SwitchError>> {
        Box::pin(async move {
            switches.validate().map_err(|reason| SwitchError::Invalid { reason })?;
            if switches.is_normal() {
                return self.clear(service).await;
            }
            check_key(service)?;
            self.connected(service)?;
            let put = self.kv.put(service, switches.to_json().into()).await;
            put.map_err(|e| unconfirmed(service, &e))?;
            self.settle(service, Some(&switches)).await;
            Ok(())
        })
    }

    fn clear<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<(), SwitchError>> {
        Box::pin(async move {
            check_key(service)?;
            self.connected(service)?;
            self.kv.delete(service).await.map_err(|e| unconfirmed(service, &e))?;
            self.settle(service, None).await;
            Ok(())
        })
    }

    fn follow(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }
}

/// A change sent but not confirmed (the connection dropped meanwhile, or JetStream did not
/// answer): it may or may not have been stored, and may still be once NATS answers.
fn unconfirmed(service: &str, e: &dyn fmt::Display) -> SwitchError {
    SwitchError::Unavailable {
        reason: format!(
            "the change to `{service}` was not confirmed ({e}); it may still apply once NATS \
             answers: check the switches in force before retrying"
        ),
    }
}

/// A service name as a key: what NATS allows in key-value keys (`[-/_=.A-Za-z0-9]`, no leading
/// or trailing dot). Fully qualified service names always are.
fn check_key(service: &str) -> Result<(), SwitchError> {
    let invalid = |reason| Err(SwitchError::InvalidService { service: service.to_owned(), reason });
    if service.is_empty() {
        return invalid("it is empty");
    }
    if service.starts_with('.') || service.ends_with('.') || service.contains("..") {
        return invalid("it has an empty name segment");
    }
    if !service.bytes().all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b)) {
        return invalid("key-value keys take only letters, digits and `-/_=.`");
    }
    Ok(())
}

/// Opens [`BUCKET`], or creates it. Two gateways may race to create it: the loser opens the
/// winner's. An existing bucket is used as it is (an operator may have given it replicas).
async fn open_bucket(jetstream: &async_nats::jetstream::Context) -> Result<kv::Store, SwitchError> {
    if let Ok(kv) = jetstream.get_key_value(BUCKET).await {
        return Ok(kv);
    }
    // The bucket's stream, as `Context::create_key_value` would make it. That method first asks
    // for the account's JetStream info, which async-nats 0.51 cannot parse from nats-server
    // 2.9 (it expects fields 2.10 added), so the stream is created directly.
    let stream = stream::Config {
        name: format!("KV_{BUCKET}"),
        description: Some(
            "gateway operator switches: service name -> {disabled, read_only}".to_owned(),
        ),
        subjects: vec![format!("$KV.{BUCKET}.>")],
        max_messages_per_subject: HISTORY,
        max_message_size: MAX_VALUE,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        num_replicas: 1,
        discard: stream::DiscardPolicy::New,
        ..stream::Config::default()
    };
    let created = jetstream.create_stream(stream).await;
    if created.is_ok() {
        info!(bucket = BUCKET, "created the switch bucket");
    }
    jetstream.get_key_value(BUCKET).await.map_err(|open| {
        let cause = match created {
            Err(create) => create.to_string(),
            Ok(_) => open.to_string(),
        };
        SwitchError::Unavailable {
            reason: format!(
                "cannot open or create key-value bucket `{BUCKET}` (is JetStream enabled?): \
                 {cause}"
            ),
        }
    })
}

/// A watch of the whole bucket, and whether the bucket was empty when it started (then no
/// entry comes to say the watch has caught up).
struct Watcher {
    watch: kv::Watch,
    empty: bool,
}

async fn start_watch(kv: &kv::Store) -> Result<Watcher, String> {
    let status = kv.status().await.map_err(|e| e.to_string())?;
    let watch = kv.watch_with_history(">").await.map_err(|e| e.to_string())?;
    Ok(Watcher { watch, empty: status.values() == 0 })
}

/// Keeps `sender`'s snapshot current until `stop`: follows `first`, and when a watch ends,
/// watches again. Says on `loaded` when the first snapshot is complete.
async fn follow(
    kv: kv::Store,
    first: Watcher,
    sender: watch::Sender<Snapshot>,
    loaded: oneshot::Sender<()>,
    stop: CancellationToken,
) {
    let mut loaded = Some(loaded);
    let mut next = Some(first);
    loop {
        let watcher = match next.take() {
            Some(watcher) => Ok(watcher),
            None => tokio::select! {
                _ = stop.cancelled() => return,
                watcher = start_watch(&kv) => watcher,
            },
        };
        let ended = match watcher {
            Ok(watcher) => tokio::select! {
                _ = stop.cancelled() => return,
                ended = follow_watch(&kv, watcher, &sender, &mut loaded) => ended,
            },
            Err(e) => format!("cannot watch: {e}"),
        };
        warn!(bucket = BUCKET, cause = %ended, "the switch watch stopped; watching again");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Applies the entries of one watch to `sender`'s snapshot. Until the watch has delivered every
/// key's current value the entries are gathered apart and the old snapshot stays; from then on
/// each change is published as it comes. Returns why the watch ended.
async fn follow_watch(
    kv: &kv::Store,
    watcher: Watcher,
    sender: &watch::Sender<Snapshot>,
    loaded: &mut Option<oneshot::Sender<()>>,
) -> String {
    let Watcher { mut watch, empty } = watcher;
    let mut switches = Snapshot::new(HashMap::new());
    let mut current = empty;
    if current {
        publish(sender, &switches, loaded);
    }
    loop {
        let entry = std::future::poll_fn(|cx| std::pin::Pin::new(&mut watch).poll_next(cx)).await;
        let entry = match entry {
            None => return "the watch ended".to_owned(),
            Some(Err(e)) => return e.to_string(),
            Some(Ok(entry)) => entry,
        };
        let value = entry_switches(kv, &entry, switches.get(&entry.key)).await;
        apply(&mut switches, &entry.key, value);
        // `delta` counts the entries still to come: 0 once the watch has caught up.
        current |= entry.delta == 0;
        if current {
            publish(sender, &switches, loaded);
        }
    }
}

fn publish(
    sender: &watch::Sender<Snapshot>,
    switches: &Snapshot,
    loaded: &mut Option<oneshot::Sender<()>>,
) {
    sender.send_if_modified(|snapshot| {
        if **snapshot == **switches {
            return false;
        }
        *snapshot = switches.clone();
        true
    });
    if let Some(loaded) = loaded.take() {
        let _ = loaded.send(());
    }
}

/// What `entry` sets its key to: `None` for back to normal. A value that is not valid switches
/// is logged and ignored: the key keeps its last valid value in the bucket's history (so a
/// gateway that starts after the bad value agrees with those that saw the good one), or the
/// switches it has in `current` when the history has none.
async fn entry_switches(
    kv: &kv::Store,
    entry: &Entry,
    current: Option<&ServiceSwitches>,
) -> Option<ServiceSwitches> {
    let cause = match entry.operation {
        Operation::Delete | Operation::Purge => return None,
        Operation::Put => match ServiceSwitches::from_json(&entry.value) {
            Ok(switches) => return Some(switches),
            Err(cause) => cause,
        },
    };
    let value = String::from_utf8_lossy(&entry.value[..entry.value.len().min(200)]);
    warn!(
        bucket = BUCKET,
        key = %entry.key,
        revision = entry.revision,
        %value,
        %cause,
        "ignoring a malformed switch value; the service keeps its last valid switches"
    );
    match tokio::time::timeout(LOAD_TIMEOUT, last_valid(kv, &entry.key, entry.revision)).await {
        Ok(Ok(Some(valid))) => valid,
        Ok(Ok(None)) => current.cloned(),
        Ok(Err(e)) => {
            warn!(bucket = BUCKET, key = %entry.key, cause = %e, "cannot read the key's history");
            current.cloned()
        }
        Err(_) => {
            warn!(bucket = BUCKET, key = %entry.key, "the key's history did not come in time");
            current.cloned()
        }
    }
}

/// The last valid value `key` had before `revision` (`Some(None)`: deleted, normal), or `None`
/// when its history holds none.
async fn last_valid(
    kv: &kv::Store,
    key: &str,
    revision: u64,
) -> Result<Option<Option<ServiceSwitches>>, String> {
    let mut history = kv.history(key).await.map_err(|e| e.to_string())?;
    let mut valid = None;
    while let Some(entry) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut history).poll_next(cx)).await
    {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.revision >= revision {
            break;
        }
        match entry.operation {
            Operation::Delete | Operation::Purge => valid = Some(None),
            Operation::Put => {
                if let Ok(switches) = ServiceSwitches::from_json(&entry.value) {
                    valid = Some(Some(switches));
                }
            }
        }
    }
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_checked_as_keys() {
        assert_eq!(check_key("examples.some_api.SomeApi"), Ok(()));
        for (bad, words) in [
            ("", "empty"),
            (".a", "empty name segment"),
            ("a..b", "empty name segment"),
            ("a.b.", "empty name segment"),
            ("a b", "only letters"),
            ("a.*", "only letters"),
            ("a.>", "only letters"),
        ] {
            let err = check_key(bad).unwrap_err().to_string();
            assert!(err.contains(words), "{bad:?}: {err}");
        }
    }
}
