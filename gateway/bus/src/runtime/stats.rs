//! What each method of a [`super::ServiceRuntime`] has served, for `$SRV.STATS` (see
//! [`super::discovery`]).
//!
//! The call path pays a few relaxed atomic additions per call on its method's slot (found by
//! index, no map, no lock); a failed call also takes a lock to replace the method's last error
//! text. Readers see each counter exactly, though not all of them at one instant: a call that
//! finishes while a snapshot is taken may show in one counter and not yet in another.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use gateway_core::{ServiceDesc, Status};

/// The counters of every method of one service, in the descriptor's order.
pub(super) struct ServiceStats {
    methods: Box<[MethodStats]>,
    desc: &'static ServiceDesc,
}

#[derive(Default)]
struct MethodStats {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Total processing time, in nanoseconds (enough for 584 years).
    processing_ns: AtomicU64,
    /// The last failure, as `<code number>:<status>`; empty before the first. A std mutex: held
    /// only to swap the text in or copy it out, never across an `.await`.
    last_error: Mutex<String>,
}

/// One method's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct MethodSnapshot {
    pub(super) requests: u64,
    pub(super) errors: u64,
    pub(super) processing: Duration,
    /// Empty if the method never failed.
    pub(super) last_error: String,
}

impl MethodSnapshot {
    /// Total processing time over the number of calls; zero before the first call.
    pub(super) fn average(&self) -> Duration {
        match self.requests {
            0 => Duration::ZERO,
            n => Duration::from_nanos(nanos(self.processing) / n),
        }
    }
}

impl ServiceStats {
    pub(super) fn new(desc: &'static ServiceDesc) -> ServiceStats {
        ServiceStats {
            methods: desc.methods.iter().map(|_| MethodStats::default()).collect(),
            desc,
        }
    }

    /// The slot of method `id`, or `None` if the service has no such method (such calls are not
    /// counted: there is no endpoint to count them on).
    pub(super) fn index(&self, method_id: u32) -> Option<usize> {
        self.desc.methods.iter().position(|m| m.id == method_id)
    }

    /// Counts one finished call of the method in slot `index`: `failure` is the status its caller
    /// was answered with (or would have been, for a fire-and-forget call); `None` for a success
    /// or a call its caller cancelled.
    pub(super) fn record(&self, index: usize, elapsed: Duration, failure: Option<&Status>) {
        let method = &self.methods[index];
        method.requests.fetch_add(1, Ordering::Relaxed);
        method.processing_ns.fetch_add(nanos(elapsed), Ordering::Relaxed);
        if let Some(status) = failure {
            method.errors.fetch_add(1, Ordering::Relaxed);
            let text = format!("{}:{status}", status.code() as u8);
            *method.last_error.lock().unwrap_or_else(PoisonError::into_inner) = text;
        }
    }

    /// The counters of the method in slot `index`.
    pub(super) fn snapshot(&self, index: usize) -> MethodSnapshot {
        let method = &self.methods[index];
        MethodSnapshot {
            requests: method.requests.load(Ordering::Relaxed),
            errors: method.errors.load(Ordering::Relaxed),
            processing: Duration::from_nanos(method.processing_ns.load(Ordering::Relaxed)),
            last_error: method.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use gateway_core::MethodDesc;

    use super::*;

    static DESC: ServiceDesc = ServiceDesc {
        name: "t.S",
        methods: &[
            MethodDesc {
                id: 7,
                name: "t.S.a",
                request: "t.R",
                response: None,
                idempotent: false,
                writes: false,
            },
            MethodDesc {
                id: 9,
                name: "t.S.b",
                request: "t.R",
                response: None,
                idempotent: false,
                writes: false,
            },
        ],
        topics: &[],
        errors: &[],
    };

    #[test]
    fn each_method_counts_its_own_calls_errors_and_time() {
        let stats = ServiceStats::new(&DESC);
        assert_eq!((stats.index(7), stats.index(9), stats.index(8)), (Some(0), Some(1), None));
        stats.record(1, Duration::from_micros(3), None);
        let failure = Status::not_found("no device 7").with_error_id(0x10);
        stats.record(1, Duration::from_micros(5), Some(&failure));
        assert_eq!(stats.snapshot(0), MethodSnapshot::default());
        let b = stats.snapshot(1);
        assert_eq!((b.requests, b.errors), (2, 1));
        assert_eq!(b.processing, Duration::from_micros(8));
        assert_eq!(b.average(), Duration::from_micros(4));
        assert_eq!(b.last_error, "5:not_found: no device 7 (error 0x00000010)");
        // A later success keeps the last error's text.
        stats.record(1, Duration::ZERO, None);
        assert_eq!(stats.snapshot(1).last_error, b.last_error);
    }
}
