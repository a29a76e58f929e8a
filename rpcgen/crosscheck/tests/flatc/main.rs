//! Cross-checks between rpcgen's Rust output and Google's flatc, on every schema of
//! `schemas/corpus` and every JSON file under `schemas/corpus/data/<schema>/`:
//!
//! - flatc → us → flatc: flatc writes the JSON as a binary (`flatc -b`); our `root_as_*` verifies
//!   and reads it, `unpack()` copies it into owned objects, `pack()` writes them again; flatc must
//!   print the same JSON for our bytes as for its own.
//! - bytes: our bytes are compared with flatc's. They are identical when both builders write in the
//!   same order (`flatc -b` writes sub-objects in the JSON's order, then the scalars largest first;
//!   `pack()` writes sub-objects in field order, then the same), which the data files keep by
//!   listing fields in declaration order. The cases where they differ for a known reason are listed
//!   in [`BYTE_DIFFERENCES`], and `schemas/corpus/README.md` explains them.
//! - corruption: truncated buffers and buffers with offsets out of range are rejected by our
//!   verifier, and no corruption makes our code panic.
//!
//! Objects built in Rust and printed by flatc are checked in `objects.rs`.

mod acceptance;
mod json;
mod objects;
mod runner;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use gateway_core::flatbuffers::{FlatBufferBuilder, InvalidFlatbuffer};
use runner::{Flatc, corpus_dir};
use serde_json::Value;

/// Our code for one root type: verify and read `bytes`, unpack, pack again, return the new bytes.
type Roundtrip = fn(&[u8]) -> Result<Vec<u8>, InvalidFlatbuffer>;

/// The [`Roundtrip`] through the generated `root_as_*` and `finish_*_buffer` functions.
macro_rules! roundtrip {
    ($root_as:path, $finish:path) => {{
        fn roundtrip(bytes: &[u8]) -> Result<Vec<u8>, InvalidFlatbuffer> {
            let object = $root_as(bytes)?.unpack();
            let mut fbb = FlatBufferBuilder::new();
            let root = object.pack(&mut fbb);
            $finish(&mut fbb, root);
            Ok(fbb.finished_data().to_vec())
        }
        roundtrip as Roundtrip
    }};
}

/// One module of tests per corpus schema `<name>.fbs`, whose data is in `data/<name>/`.
macro_rules! cross_check {
    ($($name:ident => $root_as:path, $finish:path;)*) => {
        /// The schemas tested, to check that no data folder is left without tests.
        const TESTED: &[&str] = &[$(stringify!($name)),*];

        $(
            mod $name {
                use super::*;

                fn schema() -> Schema {
                    Schema { name: stringify!($name), roundtrip: roundtrip!($root_as, $finish) }
                }

                #[test]
                fn flatc_to_us_and_back() {
                    schema().check_round_trips();
                }

                #[test]
                fn bytes_match_flatc() {
                    schema().check_bytes();
                }

                #[test]
                fn corrupt_buffers_are_rejected() {
                    schema().check_corruption();
                }
            }
        )*
    };
}

cross_check! {
    scalars => rpcgen_crosscheck::corpus::scalars::root_as_scalars,
        rpcgen_crosscheck::corpus::scalars::finish_scalars_buffer;
    enums => rpcgen_crosscheck::corpus::enums::root_as_enums,
        rpcgen_crosscheck::corpus::enums::finish_enums_buffer;
    structs => rpcgen_crosscheck::corpus::structs::root_as_structs,
        rpcgen_crosscheck::corpus::structs::finish_structs_buffer;
    vectors => rpcgen_crosscheck::corpus::vectors::root_as_vectors,
        rpcgen_crosscheck::corpus::vectors::finish_vectors_buffer;
    attributes => rpcgen_crosscheck::corpus::attrs::root_as_attrs,
        rpcgen_crosscheck::corpus::attrs::finish_attrs_buffer;
    unions => rpcgen_crosscheck::corpus::unions::root_as_drawing,
        rpcgen_crosscheck::corpus::unions::finish_drawing_buffer;
    union_variants => rpcgen_crosscheck::corpus::variants::root_as_board,
        rpcgen_crosscheck::corpus::variants::finish_board_buffer;
    keywords => rpcgen_crosscheck::corpus::keywords::root_as_root,
        rpcgen_crosscheck::corpus::keywords::finish_root_buffer;
    namespaces => rpcgen_crosscheck::corpus::ns::root_as_world,
        rpcgen_crosscheck::corpus::ns::finish_world_buffer;
    rpc => rpcgen_crosscheck::corpus::rpc::root_as_request,
        rpcgen_crosscheck::corpus::rpc::finish_request_buffer;
    crlf => rpcgen_crosscheck::corpus::crlf::root_as_line,
        rpcgen_crosscheck::corpus::crlf::finish_line_buffer;
    keys => rpcgen_crosscheck::corpus::keys::root_as_keys,
        rpcgen_crosscheck::corpus::keys::finish_keys_buffer;
    deep => rpcgen_crosscheck::corpus::deep::root_as_tree,
        rpcgen_crosscheck::corpus::deep::finish_tree_buffer;
}

/// Cases (schema, data file stem) where our bytes differ from flatc's, and why. The bytes test
/// fails when a case differs without being listed here, and when a listed case is identical.
///
/// Established with flatc's own Rust object API in place of ours (same `pack()` order); see
/// `schemas/corpus/README.md`.
const BYTE_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "scalars",
        "defaults_written",
        "flatc's -b writes the NaN given for `a_nan` (default NaN), pack() leaves it out",
    ),
    ("vectors", "empty", "pack() writes string and `[]` defaults"),
    ("vectors", "empty_vectors", "pack() writes the string defaults"),
    ("vectors", "large", "pack() writes string and `[]` defaults"),
    ("vectors", "unicode", "pack() writes the `[]` defaults"),
    ("crlf", "empty", "pack() writes the string default"),
    ("structs", "zeroes", "padding around empty vectors of aligned structs"),
    ("attributes", "full", "flatc aligns the nested flatbuffer's bytes to 8, pack() to 4"),
    ("attributes", "unsorted", "flatc writes keyed tables in JSON order, then sorts the offsets"),
    (
        "keys",
        "full",
        "same bytes; the padding before an 8-aligned struct counts in the table's size in pack()'s vtable, not in -b's",
    ),
    (
        "deep",
        "full",
        "same bytes; the padding before a struct counts in the table's size in pack()'s vtable, not in -b's",
    ),
];

/// A corpus schema with a root type, and our code for that root type.
struct Schema {
    name: &'static str,
    roundtrip: Roundtrip,
}

/// A JSON data file and the binary flatc writes for it.
struct Case {
    name: String,
    flatc_bytes: Vec<u8>,
}

impl Schema {
    fn file(&self) -> PathBuf {
        corpus_dir().join(format!("{}.fbs", self.name))
    }

    /// Every JSON file of the schema's data folder, sorted, written as binaries by flatc.
    fn cases(&self, flatc: &Flatc) -> Vec<Case> {
        let dir = corpus_dir().join("data").join(self.name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("listing `{}`: {e}", dir.display()))
            .map(|entry| entry.expect("listing the data folder").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no JSON data in `{}`", dir.display());
        files
            .into_iter()
            .map(|path| {
                let flatc_bytes =
                    flatc.binary_from_json(&self.file(), &path).unwrap_or_else(|e| panic!("{e}"));
                let stem = path.file_stem().expect("a JSON file has a name");
                Case { name: stem.to_string_lossy().into_owned(), flatc_bytes }
            })
            .collect()
    }

    /// flatc's JSON for a binary of this schema, parsed.
    fn flatc_json(&self, flatc: &Flatc, bytes: &[u8]) -> Result<Value, String> {
        flatc
            .json_from_binary(&self.file(), bytes)
            .map(|text| json::parse(&text))
            .map_err(|e| e.to_string())
    }

    fn check_round_trips(&self) {
        let flatc = Flatc::locate();
        let mut failures = Vec::new();
        for case in self.cases(&flatc) {
            let ours = match (self.roundtrip)(&case.flatc_bytes) {
                Ok(ours) => ours,
                Err(e) => {
                    failures
                        .push(format!("{}: our verifier rejects flatc's buffer: {e}", case.name));
                    continue;
                }
            };
            let expected =
                self.flatc_json(&flatc, &case.flatc_bytes).unwrap_or_else(|e| panic!("{e}"));
            match self.flatc_json(&flatc, &ours) {
                Ok(actual)
                    if json::without_written_defaults(self.name, actual.clone(), &expected)
                        == expected => {}
                Ok(actual) => failures.push(format!(
                    "{}: flatc reads our bytes as\n{actual:#}\nbut its own as\n{expected:#}",
                    case.name
                )),
                Err(e) => failures.push(format!("{}: flatc cannot read our bytes: {e}", case.name)),
            }
        }
        assert!(failures.is_empty(), "{}:\n{}", self.name, failures.join("\n"));
    }

    fn check_bytes(&self) {
        let flatc = Flatc::locate();
        let mut failures = Vec::new();
        for case in self.cases(&flatc) {
            let ours = (self.roundtrip)(&case.flatc_bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let known =
                BYTE_DIFFERENCES.iter().find(|(s, c, _)| *s == self.name && *c == case.name);
            match (first_difference(&ours, &case.flatc_bytes), known) {
                (None, None) => println!("{}/{}: identical", self.name, case.name),
                (Some(offset), Some((_, _, why))) => {
                    println!("{}/{}: differ at offset {offset} ({why})", self.name, case.name)
                }
                (Some(offset), None) => {
                    println!("{}/{}: differ at offset {offset}", self.name, case.name);
                    failures.push(format!(
                        "{}: differs from flatc at offset {offset}\nours:  {ours:02x?}\nflatc: {:02x?}",
                        case.name, case.flatc_bytes
                    ));
                }
                (None, Some(_)) => failures.push(format!(
                    "{}: identical, but listed in BYTE_DIFFERENCES: remove it from there",
                    case.name
                )),
            }
        }
        assert!(failures.is_empty(), "{}:\n{}", self.name, failures.join("\n"));
    }

    fn check_corruption(&self) {
        let flatc = Flatc::locate();
        for case in self.cases(&flatc) {
            let bytes = &case.flatc_bytes;
            let len = bytes.len();
            // A cut through the root table must be rejected; a shorter cut may leave everything
            // the buffer refers to (the last bytes can be padding), but must not panic.
            let root_table = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            for cut in truncations(len) {
                let result = self.roundtrip_without_panic(&bytes[..cut], || {
                    format!("{} cut to {cut} bytes", case.name)
                });
                assert!(
                    cut >= root_table + 4 || result.is_err(),
                    "{}: accepted when cut to {cut} of {len} bytes, through the root table at {root_table}",
                    case.name
                );
            }
            for root in [len as u32, len as u32 + 4, u32::MAX - 3] {
                let mut corrupt = bytes.clone();
                corrupt[..4].copy_from_slice(&root.to_le_bytes());
                let result = self.roundtrip_without_panic(&corrupt, || {
                    format!("{} with root offset {root}", case.name)
                });
                assert!(
                    result.is_err(),
                    "{}: accepted a root offset of {root} in {len} bytes",
                    case.name
                );
            }
            // Every aligned word overwritten in turn, in large buffers only some of them: whatever
            // the verifier decides, reading must not panic.
            let step = (len / 4 / 256).max(1) * 4;
            for at in (0..len.saturating_sub(3)).step_by(step) {
                for word in [u32::MAX, 0x7FFF_FFFF, 0x0001_0000, 3] {
                    let mut corrupt = bytes.clone();
                    corrupt[at..at + 4].copy_from_slice(&word.to_le_bytes());
                    let _ = self.roundtrip_without_panic(&corrupt, || {
                        format!("{} with {word:#x} at {at}", case.name)
                    });
                }
            }
        }
    }

    /// Runs the round trip, failing the test with `what` if it panics.
    fn roundtrip_without_panic(
        &self,
        bytes: &[u8],
        what: impl Fn() -> String,
    ) -> Result<Vec<u8>, InvalidFlatbuffer> {
        catch_unwind(AssertUnwindSafe(|| (self.roundtrip)(bytes)))
            .unwrap_or_else(|_| panic!("{}: our code panicked on {}", self.name, what()))
    }
}

/// The lengths to cut a buffer of `len` bytes to: every length up to 64, then 64 more spread over
/// the rest, and one byte short of whole.
fn truncations(len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..len.min(64)).collect();
    cuts.extend((64..len).step_by((len / 64).max(1)));
    cuts.push(len.saturating_sub(1));
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// The first offset where `a` and `b` differ (their common length when one is a prefix of the
/// other), or `None` when they are equal.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(offset) => Some(offset),
        None => (a.len() != b.len()).then_some(a.len().min(b.len())),
    }
}

/// Every data folder belongs to a schema with tests, so a new folder cannot go untested.
#[test]
fn every_data_folder_is_tested() {
    let dir = corpus_dir().join("data");
    let mut folders: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing `{}`: {e}", dir.display()))
        .map(|entry| {
            entry.expect("listing the data folder").file_name().to_string_lossy().into_owned()
        })
        .collect();
    folders.sort();
    let mut tested: Vec<String> = TESTED.iter().map(|name| name.to_string()).collect();
    tested.sort();
    assert_eq!(folders, tested);
}

#[test]
fn first_difference_finds_the_offset() {
    assert_eq!(first_difference(b"abc", b"abc"), None);
    assert_eq!(first_difference(b"abc", b"abd"), Some(2));
    assert_eq!(first_difference(b"ab", b"abc"), Some(2));
}
