//! Topic histories in JetStream (`docs/bus.md`, "Topic history"): the [`SharedHistory`] of
//! [`crate::NatsBus`], the same for every gateway on the NATS system, outliving any of them.
//!
//! - **One stream per topic** with a history, named `HISTORY_<topic>_<id>` (the topic's name
//!   with `_` for `.`, and its id in hex, so that two names cannot meet), capturing the topic's
//!   subjects (`topic.<name>.*`, or `topic.<name>` unkeyed). Publishers need not know: whatever
//!   is published on those subjects is kept. Its limits are the topic's: `history: N` is the
//!   stream's messages per subject (one subject per key), `history_ttl` its age limit, the
//!   gateway's `history_max_bytes` its size; the oldest go first. Gateways create it, or update
//!   it to these limits, when they start.
//! - **Positions** are the stream's: the offset is the stream sequence (one sequence for the
//!   topic, as the memory history numbers it), the epoch the stream's creation time in
//!   nanoseconds, so that a stream deleted and created again is another epoch.
//! - **Live events** come through the stream's republish: every message it keeps is published
//!   again on `history.<subject>` (see [`live_pattern`]) with `Nats-Sequence` and
//!   `Nats-Subject`, mostly in sequence order (events published at once through different
//!   connections can come one before the other, which the hub puts right). Gateways subscribe
//!   there rather than to the topic's subjects, so each live event carries its position.
//! - **Reading** a recovery takes an ephemeral pull consumer from the position on, filtered by
//!   the key's subject (or every key's), no acknowledgements; it is deleted after. Whether
//!   something after the position was evicted is told from the stream's state: the stream's
//!   first sequence past the position (an age or size eviction); for one key, its subject at the
//!   `history` limit with nothing kept at or before the position (conservative: the stream cannot
//!   tell exactly `history` newer events, all kept, from more); for every key, a hole in the
//!   sequence read.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use gateway_core::{BoxFuture, Selector, TopicDesc};

use crate::contract;
use crate::history::{Limits, NotRecovered, Position, Recovered, SharedHistory};
use crate::{BusError, BusMessage};

/// The histories of one NATS connection's account.
pub(crate) struct JetStreamHistory {
    js: jetstream::Context,
}

impl JetStreamHistory {
    pub(crate) fn new(client: async_nats::Client) -> JetStreamHistory {
        JetStreamHistory { js: jetstream::new(client) }
    }
}

/// The stream that keeps `topic`'s history.
pub fn stream_name(topic: &TopicDesc) -> String {
    format!("HISTORY_{}_{:08x}", topic.name.replace('.', "_"), topic.id)
}

/// Where `topic`'s kept events are published again: `history.` before each of its subjects.
pub fn live_pattern(topic: &TopicDesc) -> String {
    format!("history.{}", contract::topic_pattern(topic, &Selector::AllKeys))
}

/// The stream's epoch: its creation time in nanoseconds since the Unix epoch.
fn epoch_of(info: &stream::Info) -> u64 {
    u64::try_from(info.created.unix_timestamp_nanos()).unwrap_or(1).max(1)
}

fn failed(what: &str, topic: &TopicDesc, e: impl std::fmt::Display) -> BusError {
    BusError::Disconnected { reason: format!("{what} the history of {}: {e}", topic.name) }
}

impl SharedHistory for JetStreamHistory {
    fn live_pattern(&self, topic: &'static TopicDesc) -> String {
        live_pattern(topic)
    }

    fn open(
        &self,
        topic: &'static TopicDesc,
        limits: Limits,
    ) -> BoxFuture<'_, Result<Position, BusError>> {
        Box::pin(async move {
            let subjects = contract::topic_pattern(topic, &Selector::AllKeys);
            // `{{wildcard(1)}}` is the key's token: `history.topic.<name>.<key>`.
            let destination = match topic.key {
                Some(_) => format!("history.topic.{}.{{{{wildcard(1)}}}}", topic.name),
                None => live_pattern(topic),
            };
            let config = stream::Config {
                name: stream_name(topic),
                description: Some(format!("The history of topic {} (docs/bus.md)", topic.name)),
                subjects: vec![subjects.clone()],
                max_messages_per_subject: i64::try_from(limits.events).unwrap_or(i64::MAX),
                max_age: limits.ttl.unwrap_or(Duration::ZERO),
                max_bytes: i64::try_from(limits.bytes).unwrap_or(i64::MAX),
                discard: stream::DiscardPolicy::Old,
                storage: stream::StorageType::File,
                republish: Some(stream::Republish {
                    source: subjects,
                    destination,
                    headers_only: false,
                }),
                ..stream::Config::default()
            };
            let info = self
                .js
                .create_or_update_stream(config)
                .await
                .map_err(|e| failed("cannot create", topic, e))?;
            Ok(Position { epoch: epoch_of(&info), offset: info.state.last_sequence })
        })
    }

    fn publish_stored(
        &self,
        subject: &str,
        headers: crate::Headers,
        payload: bytes::Bytes,
    ) -> BoxFuture<'_, Result<(), BusError>> {
        let subject = subject.to_owned();
        Box::pin(async move {
            let stored = |e: &dyn std::fmt::Display| BusError::Disconnected {
                reason: format!("the event on {subject} was not stored: {e}"),
            };
            let published = match super::to_nats_headers(headers)? {
                Some(headers) => {
                    self.js.publish_with_headers(subject.clone(), headers, payload).await
                }
                None => self.js.publish(subject.clone(), payload).await,
            };
            // The first await sends; the second waits for the stream's acknowledgement.
            published.map_err(|e| stored(&e))?.await.map_err(|e| stored(&e))?;
            Ok(())
        })
    }

    fn live_event(&self, topic: &'static TopicDesc, message: &BusMessage) -> Option<(u64, String)> {
        let offset = message.headers.get("Nats-Sequence")?.parse().ok()?;
        let key = contract::key_from_subject(topic, message.headers.get("Nats-Subject")?)?;
        Some((offset, key))
    }

    fn read<'a>(
        &'a self,
        topic: &'static TopicDesc,
        key: Option<&'a str>,
        after: Position,
        through: u64,
        cap: usize,
    ) -> BoxFuture<'a, Result<Result<Vec<Recovered>, NotRecovered>, BusError>> {
        Box::pin(async move {
            let stream = self
                .js
                .get_stream_no_info(stream_name(topic))
                .await
                .map_err(|e| failed("cannot find", topic, e))?;
            let filter = match key {
                Some(key) => contract::topic_subject(topic, key),
                None => contract::topic_pattern(topic, &Selector::AllKeys),
            };
            // One key's count comes with the stream's state; every key's would be every
            // subject the stream holds, which is not needed.
            let (info, mut described) = match key {
                Some(_) => {
                    let described = stream
                        .info_with_subjects(&filter)
                        .await
                        .map_err(|e| failed("cannot read", topic, e))?;
                    (described.info.clone(), Some(described))
                }
                None => {
                    let info =
                        stream.get_info().await.map_err(|e| failed("cannot read", topic, e))?;
                    (info, None)
                }
            };
            if epoch_of(&info) != after.epoch {
                return Ok(Err(NotRecovered::EpochChanged));
            }
            // Past what the stream holds (not only past `through`: this gateway's live events may
            // lag behind another's, whose position a client brings).
            if after.offset > info.state.last_sequence {
                return Ok(Err(NotRecovered::Ahead));
            }
            if after.offset >= through {
                return Ok(Ok(Vec::new()));
            }
            // Evicted by age or size: everything before the first sequence.
            if info.state.first_sequence > after.offset + 1 {
                return Ok(Err(NotRecovered::TooOld));
            }
            match key {
                None if through - after.offset > cap as u64 => {
                    return Ok(Err(NotRecovered::TooMany));
                }
                None => {}
                Some(_) => {
                    // A key at its `history` limit lost its oldest: if nothing of it at or before
                    // the position is kept, what it lost may be after the position. (Exactly
                    // `history` events after it, all kept, are told apart from more only by this
                    // too: `too_old` then too, never a hole.)
                    let mut kept = 0;
                    if let Some(described) = described.as_mut() {
                        while let Some(Ok((_, count))) = described.next().await {
                            kept += count;
                        }
                    }
                    let limit = usize::try_from(info.config.max_messages_per_subject).unwrap_or(0);
                    if limit > 0 && kept >= limit {
                        let oldest = stream
                            .get_first_raw_message_by_subject(&filter, 1)
                            .await
                            .map_err(|e| failed("cannot read", topic, e))?
                            .sequence;
                        if oldest > after.offset {
                            return Ok(Err(NotRecovered::TooOld));
                        }
                    }
                }
            }
            let events = self.fetch(&stream, topic, &filter, after.offset, through, cap).await?;
            let Some(events) = events else { return Ok(Err(NotRecovered::TooMany)) };
            // Every key's: each sequence up to `through` is one of the topic's, so a hole is an
            // eviction (a key's own limit).
            if key.is_none() && events.len() as u64 != through - after.offset {
                return Ok(Err(NotRecovered::TooOld));
            }
            Ok(Ok(events))
        })
    }
}

impl JetStreamHistory {
    /// The messages of `filter` with sequences in `(after, through]`, oldest first; `None` when
    /// there are more than `cap`.
    async fn fetch(
        &self,
        stream: &stream::Stream<()>,
        topic: &'static TopicDesc,
        filter: &str,
        after: u64,
        through: u64,
        cap: usize,
    ) -> Result<Option<Vec<Recovered>>, BusError> {
        let config = consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: after + 1 },
            ack_policy: consumer::AckPolicy::None,
            filter_subject: filter.to_owned(),
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            ..consumer::pull::Config::default()
        };
        let reader =
            stream.create_consumer(config).await.map_err(|e| failed("cannot read", topic, e))?;
        let name = reader.cached_info().name.clone();
        let mut events = Vec::new();
        let read = async {
            loop {
                let mut batch = reader
                    .fetch()
                    .max_messages(1_000)
                    .messages()
                    .await
                    .map_err(|e| failed("cannot read", topic, e))?;
                let mut got = 0;
                while let Some(message) = batch.next().await {
                    let message = message.map_err(|e| failed("cannot read", topic, e))?;
                    got += 1;
                    let sequence = message.info().map_err(|e| failed("cannot read", topic, e))?;
                    let offset = sequence.stream_sequence;
                    if offset > through {
                        return Ok(Some(()));
                    }
                    if events.len() == cap {
                        return Ok(None);
                    }
                    let Some(key) = contract::key_from_subject(topic, &message.subject) else {
                        continue;
                    };
                    events.push(Recovered { offset, key, payload: message.payload.clone() });
                }
                if got == 0 {
                    return Ok::<_, BusError>(Some(()));
                }
            }
        };
        let outcome = read.await;
        // The consumer would go by itself once inactive; it is not left to wait for that.
        let _ = stream.delete_consumer(&name).await;
        Ok(outcome?.map(|()| events))
    }
}
