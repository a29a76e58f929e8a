//! The same work done with each side's generated code: [`ours`] (rpcgen) and [`flatc`].
//!
//! Both modules offer the same functions, written the same way against the two APIs, so that a
//! benchmark or test can call `codec::ours::f` and `codec::flatc::f` side by side:
//!
//! - `encode`: a [`Sample`](crate::sample::Sample) → bytes, with the builder API.
//! - `verify_and_read`, `read_unchecked`, `read`: bytes → the checksum of every field.
//! - `object`, `pack`, `unpack`: the object API, sample → owned `ReportT` → bytes → `ReportT`.

pub mod flatc;
pub mod ours;
