//! The Rust backend.
