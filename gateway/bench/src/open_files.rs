//! The open-files limit: 10,000 subscriber connections need more descriptors than the usual soft
//! limit of 1,024, so the load generator and the raw fan-out server raise it to the hard limit.

use std::io;

use rustix::process::{Resource, getrlimit, setrlimit};

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit and returns the new soft limit
/// (`None` when unlimited).
///
/// # Errors
///
/// The system refusing the change.
pub fn raise_to_hard_limit() -> io::Result<Option<u64>> {
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(limit.current)
}
