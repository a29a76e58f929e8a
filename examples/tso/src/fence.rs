//! Leadership and fencing in one key of a JetStream key-value bucket, changed only by
//! compare-and-set on the key's revision.
//!
//! The value names the leader, its `term` (one more at every change of leader) and `upper`, the
//! highest epoch (Unix nanoseconds) the term may serve. A leader serves epochs up to `upper` and
//! raises it ahead of its clock with [`Fence::extend`]; an instance takes over with
//! [`Fence::claim`], whose `upper` must be above the previous one, so every epoch a new term
//! serves is above every epoch an earlier term could have served. Both are conditional on the
//! revision the caller last saw: a leader that was replaced finds out at its next extension, and
//! two instances claiming at once cannot both win. Reads may be stale (a replica behind the
//! others); a decision made on one fails its compare-and-set, nothing worse.

use async_nats::jetstream::{self, kv};
use bytes::Bytes;

/// The key holding the state.
const KEY: &str = "leader";

/// The prefix of the keys where instances announce their HTTP addresses: `member.<id>`.
const MEMBER: &str = "member.";

/// Whether `id` can name an instance: 1 to 64 ASCII letters, digits, `-` and `_` (it becomes
/// part of a key of the bucket).
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the bucket holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceState {
    /// The leading instance's id.
    pub leader: String,
    /// One more at every change of leader.
    pub term: u64,
    /// The highest epoch, in Unix nanoseconds, the term may serve.
    pub upper: u64,
}

impl FenceState {
    /// `term` and `upper` big-endian, then the leader's id in UTF-8.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.leader.len());
        out.extend_from_slice(&self.term.to_be_bytes());
        out.extend_from_slice(&self.upper.to_be_bytes());
        out.extend_from_slice(self.leader.as_bytes());
        out
    }

    /// # Errors
    ///
    /// A value shorter than 16 bytes, or an id that is not UTF-8.
    pub fn decode(bytes: &[u8]) -> Result<FenceState, FenceError> {
        if bytes.len() < 16 {
            return Err(FenceError::Corrupt(format!("{} bytes, fewer than 16", bytes.len())));
        }
        let (term, rest) = bytes.split_at(8);
        let (upper, leader) = rest.split_at(8);
        Ok(FenceState {
            term: u64::from_be_bytes(term.try_into().expect("8 bytes")),
            upper: u64::from_be_bytes(upper.try_into().expect("8 bytes")),
            leader: String::from_utf8(leader.to_vec())
                .map_err(|e| FenceError::Corrupt(format!("the leader's id: {e}")))?,
        })
    }
}

/// A state and the revision it was read or written at (what the next change must name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub state: FenceState,
    pub revision: u64,
}

/// What went wrong talking to the bucket (a lost compare-and-set is not an error: `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("the fencing bucket: {0}")]
    Bucket(String),
    #[error("the fencing state is corrupt: {0}")]
    Corrupt(String),
    #[error("a claim must raise the upper bound ({new} is not above {old})")]
    NotAbove { new: u64, old: u64 },
}

fn bucket_error(e: impl std::fmt::Display) -> FenceError {
    FenceError::Bucket(e.to_string())
}

/// The fencing key of one oracle.
#[derive(Debug, Clone)]
pub struct Fence {
    store: kv::Store,
}

impl Fence {
    /// Opens the bucket `bucket`, creating it with `replicas` replicas if it does not exist.
    /// A JetStream cluster that is still forming refuses to place a new stream ("no suitable
    /// peers for placement"): the open is tried again, every 250 ms for up to 10 s.
    ///
    /// # Errors
    ///
    /// When JetStream cannot create or find the bucket within that time.
    pub async fn open(
        js: &jetstream::Context,
        bucket: &str,
        replicas: usize,
    ) -> Result<Fence, FenceError> {
        let started = std::time::Instant::now();
        loop {
            match Fence::open_once(js, bucket, replicas).await {
                Ok(fence) => return Ok(fence),
                Err(_) if started.elapsed() < std::time::Duration::from_secs(10) => {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn open_once(
        js: &jetstream::Context,
        bucket: &str,
        replicas: usize,
    ) -> Result<Fence, FenceError> {
        if let Ok(store) = js.get_key_value(bucket).await {
            return Ok(Fence { store });
        }
        // The bucket's stream, as `Context::create_key_value` would make it: that method first
        // asks for the account's JetStream info, which async-nats 0.51 cannot parse from
        // nats-server 2.9 (Debian's), so the stream is made directly. Two instances may race to
        // make it: the loser opens the winner's.
        let created = js
            .create_stream(jetstream::stream::Config {
                name: format!("KV_{bucket}"),
                description: Some("tso: leader, term, upper bound".to_owned()),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                storage: jetstream::stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                num_replicas: replicas,
                discard: jetstream::stream::DiscardPolicy::New,
                ..jetstream::stream::Config::default()
            })
            .await;
        match js.get_key_value(bucket).await {
            Ok(store) => Ok(Fence { store }),
            Err(open) => Err(FenceError::Bucket(match created {
                Err(create) => format!("cannot create `{bucket}`: {create}"),
                Ok(_) => format!("cannot open `{bucket}`: {open}"),
            })),
        }
    }

    /// The state now (`None`: nobody has led yet), as far as the replica asked knows.
    ///
    /// # Errors
    ///
    /// When the bucket cannot be read, or holds something that is not a state.
    pub async fn read(&self) -> Result<Option<Held>, FenceError> {
        let Some(entry) = self.store.entry(KEY).await.map_err(bucket_error)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        Ok(Some(Held { state: FenceState::decode(&entry.value)?, revision: entry.revision }))
    }

    /// Takes the lead as `me`, over `seen` (what the caller read; `None` if nobody led), for
    /// epochs up to `upper`, above `seen`'s. `Ok(None)`: another change came first.
    ///
    /// # Errors
    ///
    /// An `upper` not above the previous one, or the bucket failing.
    pub async fn claim(
        &self,
        me: &str,
        seen: Option<&Held>,
        upper: u64,
    ) -> Result<Option<Held>, FenceError> {
        let old = seen.map_or(0, |held| held.state.upper);
        if upper <= old {
            return Err(FenceError::NotAbove { new: upper, old });
        }
        let state = FenceState {
            leader: me.to_owned(),
            term: seen.map_or(1, |held| held.state.term + 1),
            upper,
        };
        let value = Bytes::from(state.encode());
        let written = match seen {
            None => match self.store.create(KEY, value).await {
                Ok(revision) => Some(revision),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => None,
                Err(e) => return Err(bucket_error(e)),
            },
            Some(held) => self.update(value, held.revision).await?,
        };
        Ok(written.map(|revision| Held { state, revision }))
    }

    /// Raises the upper bound of the term `held` to `upper` (never lowers it). `Ok(None)`: the
    /// state changed since `held` (another instance claimed): the caller no longer leads.
    ///
    /// # Errors
    ///
    /// When the bucket fails.
    pub async fn extend(&self, held: &Held, upper: u64) -> Result<Option<Held>, FenceError> {
        let state = FenceState { upper: upper.max(held.state.upper), ..held.state.clone() };
        let written = self.update(Bytes::from(state.encode()), held.revision).await?;
        Ok(written.map(|revision| Held { state, revision }))
    }

    /// Records that instance `id` answers HTTP at `addr` (`host:port`), for `/members`.
    ///
    /// # Errors
    ///
    /// When the bucket fails.
    pub async fn announce(&self, id: &str, addr: &str) -> Result<(), FenceError> {
        self.store
            .put(format!("{MEMBER}{id}"), Bytes::copy_from_slice(addr.as_bytes()))
            .await
            .map_err(bucket_error)?;
        Ok(())
    }

    /// The instances that announced an HTTP address, `(id, addr)` sorted by id. Instances stay
    /// members when they stop, as in a Raft group's configuration.
    ///
    /// # Errors
    ///
    /// When the bucket fails.
    pub async fn members(&self) -> Result<Vec<(String, String)>, FenceError> {
        use futures::TryStreamExt;
        let keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(bucket_error)?
            .try_collect()
            .await
            .map_err(bucket_error)?;
        let mut members = Vec::new();
        for key in keys {
            let Some(id) = key.strip_prefix(MEMBER) else { continue };
            if let Some(addr) = self.store.get(&key).await.map_err(bucket_error)? {
                members.push((id.to_owned(), String::from_utf8_lossy(&addr).into_owned()));
            }
        }
        members.sort();
        Ok(members)
    }

    async fn update(&self, value: Bytes, revision: u64) -> Result<Option<u64>, FenceError> {
        match self.store.update(KEY, value, revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(bucket_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_vector() {
        // docs/tso.md, "The fencing state".
        let state =
            FenceState { leader: "tso-2".into(), term: 2, upper: 1_796_515_200_000_000_000 };
        let bytes = [
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x18, 0xee, 0x81, 0x0e, 0x59, 0x97,
            0x00, 0x00, 0x74, 0x73, 0x6f, 0x2d, 0x32,
        ];
        assert_eq!(state.encode(), bytes);
        assert_eq!(FenceState::decode(&bytes).expect("decodes"), state);
    }

    #[test]
    fn states_round_trip_and_short_values_are_corrupt() {
        let state =
            FenceState { leader: "tso-2".into(), term: 7, upper: 1_800_000_000_000_000_000 };
        assert_eq!(FenceState::decode(&state.encode()).expect("decodes"), state);
        assert!(matches!(FenceState::decode(&[0; 15]), Err(FenceError::Corrupt(_))));
        let mut bad = state.encode();
        bad.push(0xff);
        assert!(matches!(FenceState::decode(&bad), Err(FenceError::Corrupt(_))));
    }
}
