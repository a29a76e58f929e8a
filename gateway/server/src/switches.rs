//! The gateway's side of the operator switches (`gateway_bus::switches`): the check before each
//! call goes on the bus, and the log of every change this gateway applies.
//!
//! Each session keeps a [`SwitchView`]: the snapshot it last saw and a receiver that says when
//! the store has a newer one. Checking a call reads one atomic (has it changed?) and, when any
//! switch is set, looks the service up in a map: no lock, no allocation. A change applies to
//! the next call of every session; calls already sent are not affected.

use std::collections::BTreeSet;

use gateway_bus::switches::{Refusal, ServiceSwitches, Snapshot};
use gateway_core::Status;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::router::Route;

/// One session's view of the switches.
#[derive(Debug)]
pub(crate) struct SwitchView {
    follow: watch::Receiver<Snapshot>,
    current: Snapshot,
}

impl SwitchView {
    pub(crate) fn new(mut follow: watch::Receiver<Snapshot>) -> SwitchView {
        let current = follow.borrow_and_update().clone();
        SwitchView { follow, current }
    }

    /// Whether a call of `route` may go to its service: the refusal and the status to answer
    /// with when a switch stops it.
    pub(crate) fn check(&mut self, route: &Route) -> Result<(), (Refusal, Status)> {
        // `has_changed` is an atomic load; only a change takes the channel's lock. A store that
        // is gone (an error here) leaves the last switches in force.
        if self.follow.has_changed().unwrap_or(false) {
            self.current = self.follow.borrow_and_update().clone();
        }
        if self.current.is_empty() {
            return Ok(());
        }
        let Some(switches) = self.current.get(route.service.name) else { return Ok(()) };
        switches.check(route.method).map_err(|refusal| {
            (refusal, switches.refusal_status(refusal, route.service.name, route.method))
        })
    }
}

/// Logs, at info, every switch this gateway applies (whoever changed it, through which gateway
/// or straight in the store), naming the gateway, until `stop`. The switches already in force
/// are logged first.
pub(crate) async fn log_changes(
    mut follow: watch::Receiver<Snapshot>,
    gateway: String,
    stop: CancellationToken,
) {
    let mut seen = follow.borrow_and_update().clone();
    let mut services: Vec<_> = seen.iter().collect();
    services.sort_by_key(|(service, _)| *service);
    for (service, switches) in services {
        info!(service = service.as_str(), %switches, %gateway, "switch in force");
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = follow.changed() => if changed.is_err() { return },
        }
        let now = follow.borrow_and_update().clone();
        let services: BTreeSet<&String> = seen.keys().chain(now.keys()).collect();
        for service in services {
            let (before, after) = (seen.get(service), now.get(service));
            if before != after {
                let normal = ServiceSwitches::default();
                let switches = after.unwrap_or(&normal);
                info!(service = service.as_str(), %switches, %gateway, "switch applied");
            }
        }
        seen = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Registry;
    use gateway_bus::switches::{MemorySwitches, SwitchStore};
    use gateway_core::{Code, MethodDesc, ServiceDesc};

    static S: ServiceDesc = ServiceDesc {
        name: "t.S",
        methods: &[
            MethodDesc {
                id: 1,
                name: "t.S.get",
                request: "t.Q",
                response: Some("t.R"),
                idempotent: true,
                writes: false,
            },
            MethodDesc {
                id: 2,
                name: "t.S.put",
                request: "t.Q",
                response: None,
                idempotent: false,
                writes: true,
            },
        ],
        topics: &[],
        errors: &[],
    };

    #[tokio::test]
    async fn a_view_follows_the_store_between_calls() {
        let mut registry = Registry::new();
        registry.register(&S).unwrap();
        let (get, put) = (registry.route(1).unwrap(), registry.route(2).unwrap());
        let store = MemorySwitches::new();
        store.set("t.S", ServiceSwitches::read_only(None)).await.unwrap();
        let mut view = SwitchView::new(store.follow());
        assert!(view.check(get).is_ok());
        let (refusal, status) = view.check(put).unwrap_err();
        assert_eq!((refusal, status.code()), (Refusal::ReadOnly, Code::FailedPrecondition));

        store.set("t.S", ServiceSwitches::disabled("gone")).await.unwrap();
        let (refusal, status) = view.check(get).unwrap_err();
        assert_eq!((refusal, status.code()), (Refusal::Disabled, Code::Unavailable));
        assert!(status.message().contains("gone"), "{}", status.message());

        store.set("other.Service", ServiceSwitches::disabled("x")).await.unwrap();
        store.clear("t.S").await.unwrap();
        assert!(view.check(get).is_ok() && view.check(put).is_ok());
    }
}
