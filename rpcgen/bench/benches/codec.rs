//! rpcgen's generated code against flatc's, on the same representative report, in one run.
//!
//! Run with: `cargo bench -p rpcgen-bench --bench codec`
//!
//! Each group times the same operation with both sides' code (`ours`, `flatc`), so their ratio
//! holds even on a busy machine. Throughput is the size of the report's buffer, which is the
//! same for both (the tests check the bytes are identical).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use flatbuffers::FlatBufferBuilder;
use rpcgen_bench::codec::{flatc, ours};
use rpcgen_bench::sample::Sample;

/// Builds the report with the builder API, reusing one builder as a hot path would.
fn encode(c: &mut Criterion, sample: &Sample, size: u64) {
    let mut group = group(c, "encode", size);
    let mut fbb = FlatBufferBuilder::with_capacity(1024);
    group.bench_function("ours", |b| b.iter(|| ours::encode(&mut fbb, black_box(sample)).len()));
    group.bench_function("flatc", |b| b.iter(|| flatc::encode(&mut fbb, black_box(sample)).len()));
    group.finish();
}

/// Verifies the buffer, then reads every field.
fn verify_and_read(c: &mut Criterion, buf: &[u8]) {
    let mut group = group(c, "verify_and_read", buf.len() as u64);
    group.bench_function("ours", |b| b.iter(|| ours::verify_and_read(black_box(buf))));
    group.bench_function("flatc", |b| b.iter(|| flatc::verify_and_read(black_box(buf))));
    group.finish();
}

/// Reads every field of a buffer trusted without verification.
fn read_unchecked(c: &mut Criterion, buf: &[u8]) {
    let mut group = group(c, "read_unchecked", buf.len() as u64);
    // SAFETY: `buf` is a report our builder wrote; the tests verify such buffers.
    group.bench_function("ours", |b| b.iter(|| unsafe { ours::read_unchecked(black_box(buf)) }));
    group.bench_function("flatc", |b| b.iter(|| unsafe { flatc::read_unchecked(black_box(buf)) }));
    group.finish();
}

/// Owned object → bytes, reusing one builder.
fn pack(c: &mut Criterion, sample: &Sample, size: u64) {
    let mut group = group(c, "pack", size);
    let mut fbb = FlatBufferBuilder::with_capacity(1024);
    let object = ours::object(sample);
    group.bench_function("ours", |b| b.iter(|| ours::pack(&mut fbb, black_box(&object)).len()));
    let object = flatc::object(sample);
    group.bench_function("flatc", |b| b.iter(|| flatc::pack(&mut fbb, black_box(&object)).len()));
    group.finish();
}

/// Bytes → verified → owned object.
fn unpack(c: &mut Criterion, buf: &[u8]) {
    let mut group = group(c, "unpack", buf.len() as u64);
    group.bench_function("ours", |b| b.iter(|| ours::unpack(black_box(buf))));
    group.bench_function("flatc", |b| b.iter(|| flatc::unpack(black_box(buf))));
    group.finish();
}

fn group<'c>(
    c: &'c mut Criterion,
    name: &str,
    size: u64,
) -> BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(size));
    group
}

fn codec(c: &mut Criterion) {
    let sample = Sample::representative();
    let mut fbb = FlatBufferBuilder::new();
    let buf = ours::encode(&mut fbb, &sample).to_vec();
    println!("representative report: {} bytes", buf.len());
    let size = buf.len() as u64;
    encode(c, &sample, size);
    verify_and_read(c, &buf);
    read_unchecked(c, &buf);
    pack(c, &sample, size);
    unpack(c, &buf);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = codec
}
criterion_main!(benches);
