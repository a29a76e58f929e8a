//! The requests of one connection that await their replies, by request id.
//!
//! Ids are allocated sequentially from 1, wrapping from `u32::MAX` to 1 and skipping ids still
//! in flight, as `docs/protocol.md` ("Requests") advises, so an id is reused as late as
//! possible. Since the connection task allocates an id at the moment it queues the REQUEST, id
//! order is send order, which is what a GOAWAY's `last_request_id` refers to.

use std::collections::HashMap;

use gateway_core::Status;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::command::{Answer, Outcome};

/// One request awaiting its reply.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Where the reply goes; `None` once the caller cancelled: the id stays in flight until the
    /// server answers, and the answer is discarded.
    pub(crate) reply: Option<oneshot::Sender<Outcome>>,
    /// The method is safe to run twice, so a call lost with its connection may be retried.
    pub(crate) idempotent: bool,
    /// When the caller stops waiting.
    pub(crate) deadline: Instant,
}

impl Entry {
    /// Delivers the call's outcome, unless the caller cancelled or went away.
    pub(crate) fn finish(self, result: Result<Answer, Status>) {
        if let Some(reply) = self.reply {
            // The caller may have given up meanwhile; then nobody wants the outcome.
            let _ = reply.send(Outcome::Done(result));
        }
    }
}

/// The in-flight requests of one connection.
#[derive(Debug)]
pub(crate) struct InFlight {
    entries: HashMap<u32, Entry>,
    /// The next id to try.
    next_id: u32,
}

impl InFlight {
    pub(crate) fn new() -> InFlight {
        InFlight { entries: HashMap::new(), next_id: 1 }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A fresh id: never 0, never one in flight. Fire-and-forget requests take one too (without
    /// an entry), which keeps ids in send order.
    pub(crate) fn allocate(&mut self) -> u32 {
        // The table holds fewer than `u32::MAX` entries (each was allowed by the server's
        // `max_in_flight`, a `u32`), so the loop ends.
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.entries.contains_key(&id) {
                return id;
            }
        }
    }

    pub(crate) fn insert(&mut self, id: u32, entry: Entry) {
        self.entries.insert(id, entry);
    }

    /// Removes the entry of an answered request.
    pub(crate) fn remove(&mut self, id: u32) -> Option<Entry> {
        self.entries.remove(&id)
    }

    /// Marks a request cancelled; true when it was in flight and not cancelled before, that
    /// is when a CANCEL frame should go out.
    pub(crate) fn cancel(&mut self, id: u32) -> bool {
        self.entries.get_mut(&id).is_some_and(|entry| entry.reply.take().is_some())
    }

    /// Removes the requests sent after `last_request_id` (all of them when it is 0): those a
    /// GOAWAY says the server did not process.
    pub(crate) fn remove_sent_after(&mut self, last_request_id: u32) -> Vec<Entry> {
        // How many allocations ago an id was made; smaller means sent later. The ids in flight
        // and `last_request_id` all lie within the last `u32::MAX` allocations.
        let age = |id: u32| self.next_id.wrapping_sub(id);
        let last_age = if last_request_id == 0 { u32::MAX } else { age(last_request_id) };
        let later: Vec<u32> =
            self.entries.keys().copied().filter(|&id| age(id) < last_age).collect();
        later.into_iter().filter_map(|id| self.entries.remove(&id)).collect()
    }

    /// Removes every entry (the connection is gone).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Entry> + '_ {
        self.entries.drain().map(|(_, entry)| entry)
    }

    /// The latest deadline among the requests still in flight.
    pub(crate) fn latest_deadline(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.deadline).max()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry() -> (Entry, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        (Entry { reply: Some(tx), idempotent: false, deadline: Instant::now() }, rx)
    }

    #[test]
    fn ids_start_at_one_wrap_past_zero_and_skip_ids_in_flight() {
        let mut table = InFlight::new();
        assert_eq!(table.allocate(), 1);
        table.insert(2, entry().0);
        assert_eq!(table.allocate(), 3, "2 is in flight");
        table.next_id = u32::MAX;
        assert_eq!(table.allocate(), u32::MAX);
        assert_eq!(table.allocate(), 1, "0 is never an id");
        assert_eq!(table.allocate(), 3);
    }

    #[test]
    fn goaway_splits_by_send_order_across_the_wrap() {
        let mut table = InFlight::new();
        table.next_id = u32::MAX - 1;
        let ids: Vec<u32> = (0..4).map(|_| table.allocate()).collect();
        assert_eq!(ids, [u32::MAX - 1, u32::MAX, 1, 2]);
        for &id in &ids {
            table.insert(id, entry().0);
        }
        // The server will answer up to `u32::MAX`: 1 and 2 were sent after it.
        assert_eq!(table.remove_sent_after(u32::MAX).len(), 2);
        let mut left: Vec<u32> = table.entries.keys().copied().collect();
        left.sort();
        assert_eq!(left, [u32::MAX - 1, u32::MAX]);
        assert_eq!(table.remove_sent_after(0).len(), 2, "0: nothing will be answered");
        assert!(table.is_empty());
    }

    #[test]
    fn a_cancelled_request_stays_in_flight_and_its_answer_is_dropped() {
        let mut table = InFlight::new();
        let (e, mut rx) = entry();
        table.insert(7, e);
        assert!(table.cancel(7));
        assert!(!table.cancel(7), "one CANCEL per request");
        assert!(!table.cancel(8), "not in flight");
        assert_eq!(table.len(), 1);
        table.remove(7).unwrap().finish(Ok(Answer::Payload(Bytes::new())));
        assert!(rx.try_recv().is_err(), "the caller hears nothing");
    }
}
