//! The fuzz targets: every place where bytes from outside enter the gateway, rpcgen or an example
//! service, each as a function of any bytes that panics only when an invariant breaks.
//!
//! Two runners call them:
//!
//! - libFuzzer, coverage-guided, through the harness in `fuzz/` (one `fuzz_target!` per entry of
//!   [`TARGETS`]): `scripts/fuzz <target>` for a recorded run (`docs/reliability.md`).
//! - `tests/smoke.rs`, in the test command: each target over its committed corpus
//!   (`corpus/<target>/`, seeds and every input that once failed) and a few thousand mutations
//!   of it, deterministic, on the stable toolchain.
//!
//! # Layout
//!
//! - [`protocol`]: frames, as one message and as a stream split anywhere.
//! - [`schema`]: `.fbs` and `.service` files through rpcgen's parser, checker and both backends.
//! - [`verifier`]: the generated verifiers of the corpus schemas.
//! - [`devices`]: the tracker's report datagrams.
//! - [`services`]: the Roughtime, timestamp-oracle and mailbox request parsers.
//! - [`server`]: the WebSocket reader and upgrade, tokens, key sets and the admin port: the
//!   gateway's own private parsers, reached through `gateway::fuzz`.

pub mod devices;
pub mod protocol;
pub mod schema;
pub mod services;
pub mod verifier;

/// The gateway's private parsers, through `gateway::fuzz`.
pub mod server {
    pub use gateway::fuzz::{admin_request, jwks, jwt, ws_stream, ws_upgrade};
}

/// One fuzz target: its name (a folder of `corpus/`, a binary of the libFuzzer harness), the
/// path of its function in this crate, and the function.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub name: &'static str,
    /// What the harness calls: `gateway_fuzz::<path>(data)`. The harness names the function
    /// rather than looking it up in [`TARGETS`], so that its binary holds only that target's
    /// code, and libFuzzer tracks only its coverage (several times faster).
    pub path: &'static str,
    pub run: fn(&[u8]),
}

macro_rules! targets {
    ($($name:ident: $($path:ident)::+),* $(,)?) => {
        /// Every target.
        pub const TARGETS: &[Target] = &[
            $(Target { name: stringify!($name), path: stringify!($($path)::+), run: $($path)::+ },)*
        ];
    };
}

targets!(
    frame: protocol::frame,
    frame_stream: protocol::frame_stream,
    ws_stream: server::ws_stream,
    ws_upgrade: server::ws_upgrade,
    admin_request: server::admin_request,
    jwt: server::jwt,
    jwks: server::jwks,
    fbs: schema::fbs,
    service: schema::service,
    verifier: verifier::verify,
    device_report: devices::report,
    roughtime_request: services::roughtime_request,
    oracle_request: services::oracle_request,
    mailbox_statement: services::mailbox_statement,
);

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}
