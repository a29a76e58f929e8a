//! rpcgen's Rust output for the schemas in `schemas/corpus`, checked against Google's `flatc`.
//!
//! The crate's only items are generated code. `build.rs` compiles every corpus schema with
//! `rpcgen::Builder` into one file, included here, so the `corpus` module holds one module per
//! schema namespace (`corpus::scalars`, `corpus::ns::alpha`, ...). Being part of the workspace,
//! the generated code is built under the workspace's lints and `clippy -D warnings`.
//!
//! The checks are in `tests/`:
//!
//! - `tests/flatc/main.rs`: for each schema and each JSON file under `schemas/corpus/data/<schema>/`,
//!   flatc's binary is read, unpacked and packed again by our code, and flatc must print the same
//!   JSON for both buffers; the bytes are compared too; corrupted buffers must be rejected without
//!   a panic.
//! - `tests/flatc/objects.rs`: objects built in Rust are written by our code and printed by flatc.
//! - `tests/roundtrip.rs`: property tests: arbitrary objects survive `pack` → verify → `unpack`,
//!   and the verifier rejects arbitrary bytes without a panic.
//! - `tests/typescript/`: rpcgen's TypeScript output, in Node, against this crate's Rust code (byte
//!   for byte), flatc's TypeScript output and flatc's JSON decoder, on the same cases; its verifier
//!   against corrupted buffers; its service stubs; the drivers are in `ts/`. It also needs `node`
//!   and the repository's `node_modules` (`npm ci`): `cargo test -p rpcgen-crosscheck --test
//!   typescript`.
//!
//! The tests run the binary named by the `FLATC` environment variable, by default
//! `.tools/flatc/flatc/bin/flatc` in the repository, which `scripts/install-flatc` installs.

gateway_core::include_generated!("corpus");
