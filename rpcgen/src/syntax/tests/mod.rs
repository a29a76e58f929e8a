//! Parser tests that go through the public entry points, one file per language.

mod fbs;
mod service;
