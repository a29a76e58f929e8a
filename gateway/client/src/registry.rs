//! The client's live subscriptions, which outlive connections: each new connection takes them
//! over and subscribes them again.
//!
//! A subscription joins the registry when the gateway first confirms it (SUBSCRIBED), and leaves
//! it when its stream is dropped or it ends. The registry also knows the connection that holds
//! the subscriptions now, and both facts change under one lock: a stream dropped while a new
//! connection takes over is either not taken over, or unsubscribed on that connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gateway_core::Status;
use tokio::sync::mpsc;

use crate::command::Control;
use crate::feed::Feed;

/// Every live subscription of one client.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// A std mutex: held only to look up or change the map, never across an `.await`.
    state: Mutex<RegistryState>,
}

#[derive(Debug, Default)]
struct RegistryState {
    feeds: HashMap<u64, Arc<Feed>>,
    next_key: u64,
    /// The control channel of the connection that holds the subscriptions.
    current: Option<mpsc::UnboundedSender<Control>>,
}

impl Registry {
    fn state(&self) -> MutexGuard<'_, RegistryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A key for a new subscription, never reused by this client.
    pub(crate) fn next_key(&self) -> u64 {
        let mut state = self.state();
        state.next_key += 1;
        state.next_key
    }

    /// A new connection takes over: the subscriptions it must restore.
    pub(crate) fn attach(&self, control: mpsc::UnboundedSender<Control>) -> Vec<Arc<Feed>> {
        let mut state = self.state();
        state.current = Some(control);
        state.feeds.values().cloned().collect()
    }

    /// The gateway confirmed a new subscription: later connections restore it.
    pub(crate) fn insert(&self, feed: Arc<Feed>) {
        self.state().feeds.insert(feed.key, feed);
    }

    /// The subscription ended or its stream was dropped; the connection to unsubscribe it on,
    /// if it was live.
    pub(crate) fn remove(&self, key: u64) -> Option<mpsc::UnboundedSender<Control>> {
        let mut state = self.state();
        state.feeds.remove(&key)?;
        state.current.clone()
    }

    /// The client stopped: every subscription ends with `status`.
    pub(crate) fn end_all(&self, status: &Status) {
        let feeds: Vec<Arc<Feed>> = {
            let mut state = self.state();
            state.current = None;
            state.feeds.drain().map(|(_, feed)| feed).collect()
        };
        for feed in feeds {
            feed.end(status.clone());
        }
    }
}
