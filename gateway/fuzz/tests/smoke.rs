//! The fuzz targets' smoke run, for the test command: each target over its committed corpus
//! (`corpus/<target>/`: the seeds and every input that once failed), then over mutations of it.
//! The mutations are the same every run (a fixed seed per target), so a failure reproduces; they
//! are blind (no coverage), which is what the recorded libFuzzer runs are for
//! (`docs/reliability.md`). `FUZZ_SMOKE_MUTATIONS` sets their number per target (default 3,000).
//!
//! A failing input is written to `target/fuzz-smoke/<target>/`, ready to be replayed by
//! `scripts/fuzz <target> <file>` and committed to the corpus as a regression once fixed.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use gateway_fuzz::{TARGETS, Target};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed inputs of `target`, sorted by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            (name, fs::read(&path).expect("a corpus file reads"))
        })
        .collect();
    inputs.sort();
    inputs
}

/// A small, fixed-seed generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four edits of `input`: bits flipped, bytes and little-endian words set to telling
/// values, bytes inserted, removed or repeated, the end cut, a piece of another input spliced in.
fn mutate(rng: &mut Rng, input: &[u8], others: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = bytes.len();
        let at = rng.below(len);
        match rng.below(8) {
            0 if len > 0 => bytes[at] ^= 1 << rng.below(8),
            1 if len > 0 => bytes[at] = [0, 1, 0x7f, 0x80, 0xff, b'\n', b'"', b'{'][rng.below(8)],
            2 if len >= 4 => {
                let at = rng.below(len - 3);
                let word = [0, 1, 4, u32::MAX, len as u32, 0x7fff_ffff, 64][rng.below(7)];
                bytes[at..at + 4].copy_from_slice(&word.to_le_bytes());
            }
            3 => {
                let byte = rng.next() as u8;
                bytes.splice(at..at, std::iter::repeat_n(byte, 1 + rng.below(8)));
            }
            4 if len > 0 => {
                let end = (at + 1 + rng.below(16)).min(len);
                bytes.drain(at..end);
            }
            5 if len > 0 => {
                let end = (at + 1 + rng.below(32)).min(len);
                let piece = bytes[at..end].to_vec();
                bytes.splice(at..at, piece);
            }
            6 => bytes.truncate(at),
            _ => {
                let other = &others[rng.below(others.len())].1;
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let end = (from + 1 + rng.below(64)).min(other.len());
                    bytes.splice(at..at, other[from..end].iter().copied());
                }
            }
        }
    }
    bytes
}

/// Runs `target` on `input`; a panic fails the test, naming the file the input is kept in.
fn run(target: Target, what: &str, input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| (target.run)(input))).is_err() {
        let dir = root().join("target/fuzz-smoke").join(target.name);
        fs::create_dir_all(&dir).expect("target/fuzz-smoke");
        let file = dir.join(what.replace('/', "-"));
        fs::write(&file, input).expect("the failing input is kept");
        panic!("{}: {what} failed; the input is in {}", target.name, file.display());
    }
}

fn smoke(name: &str) {
    let target = gateway_fuzz::target(name).expect("a target of that name");
    let inputs = corpus(name);
    assert!(!inputs.is_empty(), "{name} has no corpus");
    for (file, input) in &inputs {
        run(target, file, input);
    }
    let mutations = std::env::var("FUZZ_SMOKE_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000usize);
    let mut rng = Rng(name
        .bytes()
        .fold(0x9e37_79b9_7f4a_7c15, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)));
    for i in 0..mutations {
        let (file, input) = &inputs[rng.below(inputs.len())];
        let mutated = mutate(&mut rng, input, &inputs);
        run(target, &format!("mutation-{i}-of-{file}"), &mutated);
    }
}

/// A test per target, so that they run in parallel and fail by name.
macro_rules! smoke {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { smoke(stringify!($name)); })*

        #[test]
        fn every_target_is_smoked_and_has_a_libfuzzer_harness() {
            let smoked = [$(stringify!($name)),*];
            let targets: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
            assert_eq!(targets, smoked, "a target without a smoke test, or one left over");
            for target in TARGETS {
                let harness = root().join("fuzz/fuzz_targets").join(format!("{}.rs", target.name));
                let text = fs::read_to_string(&harness)
                    .unwrap_or_else(|e| panic!("{}: {e}", harness.display()));
                let call = format!("gateway_fuzz::{}(data)", target.path.replace(' ', ""));
                assert!(text.contains(&call), "{} does not call {call}", harness.display());
            }
        }
    };
}

smoke!(
    frame,
    frame_stream,
    ws_stream,
    ws_upgrade,
    admin_request,
    jwt,
    jwks,
    fbs,
    service,
    verifier,
    device_report,
    roughtime_request,
    oracle_request,
    mailbox_statement,
);
