//! The tracker's storage benchmark (docs/benchmarks.md, "Tracker storage"): fills a database
//! the way the ingest does, then measures the queries the `Tracker` service runs.
//!
//! 1. **Fill**: `--devices` devices report in turn, every `--interval-s` seconds of simulated
//!    time, until the positions table holds `--rows`; each batch of `--batch` positions is one
//!    [`Store::insert_positions`] (one transaction, as the ingest's writer commits). Progress
//!    every tenth of the rows: rows, rate over the last tenth, file size.
//! 2. **Queries**: for `--queries` random devices, `history` of one day of simulated time (the
//!    service's `history` with the largest limit) and `trips` over the same day (history, then
//!    the service's clustering), each timed; p50, p99 and max, on a warm page cache (the OS's:
//!    the file was just written) after a first pass.
//! 3. **Downsampling**: [`Store::downsample_before`] the older half of the simulated time to one
//!    position a minute per device; its duration, and the queries over that half again.
//! 4. **Retention**: [`Store::delete_positions_before`] the older quarter of the simulated time;
//!    its duration, the file size before and after `VACUUM`-free reuse, and the queries again.
//!
//! Run: `cargo run --release -p tracker --example storage_bench -- [--rows 100000000]
//! [--devices 100000] [--interval-s 10] [--batch 8192] [--queries 1000] [--db FILE]`
//! (`--db` keeps the file; without it the file is in a temporary directory and removed).
//!
//! `--existing --db FILE` (with the `--rows`, `--devices` and `--interval-s` it was filled
//! with) only queries a database an earlier run kept, once, without warming anything: after
//! `sync; echo 3 > /proc/sys/vm/drop_caches` (as root) that is a cold page cache.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tracker::PositionT;
use tracker::store::Store;
use tracker::trips::trips;

struct Settings {
    rows: u64,
    devices: u64,
    interval_ms: u64,
    batch: usize,
    queries: usize,
    db: Option<PathBuf>,
    existing: bool,
}

fn settings() -> anyhow::Result<Settings> {
    let mut s = Settings {
        rows: 100_000_000,
        devices: 100_000,
        interval_ms: 10_000,
        batch: 8192,
        queries: 1000,
        db: None,
        existing: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--existing" {
            s.existing = true;
            continue;
        }
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        let count = || value.parse::<u64>().with_context(|| format!("{flag} takes a count"));
        match flag.as_str() {
            "--rows" => s.rows = count()?,
            "--devices" => s.devices = count()?,
            "--interval-s" => s.interval_ms = count()? * 1000,
            "--batch" => s.batch = count()? as usize,
            "--queries" => s.queries = count()? as usize,
            "--db" => s.db = Some(PathBuf::from(value)),
            other => bail!(
                "unknown flag {other} (--rows, --devices, --interval-s, --batch, --queries, --db, \
                 --existing)"
            ),
        }
    }
    if s.rows == 0 || s.devices == 0 || s.interval_ms == 0 || s.batch == 0 || s.queries == 0 {
        bail!("every count must be at least 1");
    }
    if s.existing && s.db.is_none() {
        bail!("--existing queries the database --db names");
    }
    Ok(s)
}

/// Simulated time starts here (2026-01-01T00:00Z).
const EPOCH_MS: u64 = 1_767_225_600_000;
const DAY_MS: u64 = 86_400_000;

/// Device `d`'s `n`-th report (from 0): a fix every interval, staggered across the interval by
/// device, drifting north-east.
fn position(d: u64, n: u64, interval_ms: u64, devices: u64) -> PositionT {
    let time_ms = EPOCH_MS + n * interval_ms + d * interval_ms / devices;
    PositionT {
        device_id: d + 1,
        counter: n + 1,
        time_ms,
        received_ms: time_ms + 150,
        lat: 52.0 + (d % 1000) as f64 * 1e-3 + n as f64 * 1e-5,
        lon: 4.5 + (d / 1000) as f64 * 1e-3 + n as f64 * 1e-5,
        speed_mps: 8.0 + (n % 7) as f32,
        heading_deg: 45.0,
        accuracy_m: 5.0,
        battery: Some((100 - n % 100) as u8),
    }
}

fn file_mib(path: &std::path::Path) -> f64 {
    let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    (size(path.to_owned()) + size(wal)) as f64 / (1 << 20) as f64
}

/// A small, fixed-seed generator (xorshift64*), so that every run asks the same queries.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn percentiles(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", ms(at(0.5)), ms(at(0.99)), ms(at(1.0)))
}

/// Times `history` and `trips` for one day of simulated time, for `queries` random devices
/// whose reports fall within `from_ms..end_ms`; returns (history rows, history, trips).
fn query(
    store: &Store,
    s: &Settings,
    from_ms: u64,
    end_ms: u64,
    seed: u64,
) -> anyhow::Result<(u64, String, String)> {
    let mut rng = Rng(seed);
    let (mut history_times, mut trips_times, mut rows) = (Vec::new(), Vec::new(), 0u64);
    let days = ((end_ms - from_ms) / DAY_MS).max(1);
    for _ in 0..s.queries {
        let device = 1 + rng.below(s.devices);
        let day = from_ms + rng.below(days) * DAY_MS;
        let started = Instant::now();
        let found = store.history(device, day, day + DAY_MS - 1, 10_000, false)?;
        history_times.push(started.elapsed());
        rows += found.len() as u64;
        let started = Instant::now();
        let positions = store.history(device, day, day + DAY_MS - 1, 100_000, false)?;
        let _ = trips(&positions, 300_000);
        trips_times.push(started.elapsed());
    }
    Ok((rows / s.queries as u64, percentiles(history_times), percentiles(trips_times)))
}

fn main() -> anyhow::Result<()> {
    let s = settings()?;
    let dir = tempfile::tempdir()?;
    let path = s.db.clone().unwrap_or_else(|| dir.path().join("tracker.db"));
    if s.existing {
        let store = Store::open(&path)?;
        let end_ms = EPOCH_MS + s.rows.div_ceil(s.devices) * s.interval_ms;
        let (rows, history, trips) = query(&store, &s, EPOCH_MS, end_ms, 5)?;
        println!("queries of {} ({rows} positions on average), unwarmed:", path.display());
        println!("  history: {history}");
        println!("  trips:   {trips}");
        return Ok(());
    }
    if path.exists() {
        bail!("{} exists: the benchmark fills a new database", path.display());
    }
    let store = Store::open(&path)?;
    let keys: Vec<(u64, [u8; 32])> = (1..=s.devices).map(|id| (id, [7; 32])).collect();
    store.add_devices(keys.iter().map(|(id, key)| (*id, "bench", key)), EPOCH_MS)?;

    println!(
        "fill: {} rows, {} devices, a report every {} s each, {} per transaction",
        s.rows,
        s.devices,
        s.interval_ms / 1000,
        s.batch
    );
    let started = Instant::now();
    let mut tenth_started = Instant::now();
    let tenth = (s.rows / 10).max(1);
    let mut batch = Vec::with_capacity(s.batch);
    let mut written = 0u64;
    'fill: for n in 0.. {
        for d in 0..s.devices {
            batch.push(position(d, n, s.interval_ms, s.devices));
            written += 1;
            if batch.len() == s.batch || written == s.rows {
                store.insert_positions(&batch)?;
                batch.clear();
            }
            if written % tenth == 0 {
                println!(
                    "  {written} rows: {:.0} rows/s over the last {tenth}, file {:.0} MiB",
                    tenth as f64 / tenth_started.elapsed().as_secs_f64(),
                    file_mib(&path)
                );
                tenth_started = Instant::now();
            }
            if written == s.rows {
                break 'fill;
            }
        }
    }
    let fill = started.elapsed();
    let reports_per_device = s.rows.div_ceil(s.devices);
    let end_ms = EPOCH_MS + reports_per_device * s.interval_ms;
    println!(
        "filled: {} rows in {:.0} s ({:.0} rows/s), file {:.0} MiB ({:.1} bytes a row)",
        s.rows,
        fill.as_secs_f64(),
        s.rows as f64 / fill.as_secs_f64(),
        file_mib(&path),
        file_mib(&path) * (1 << 20) as f64 / s.rows as f64
    );

    // A first pass warms the caches; the second is the figure.
    query(&store, &s, EPOCH_MS, end_ms, 1)?;
    let (rows, history, trips) = query(&store, &s, EPOCH_MS, end_ms, 2)?;
    println!("queries ({} devices, one day each, {rows} positions on average):", s.queries);
    println!("  history: {history}");
    println!("  trips:   {trips}");

    let middle = EPOCH_MS + (end_ms - EPOCH_MS) / 2;
    let started = Instant::now();
    let thinned = store.downsample_before(middle, 60_000)?;
    println!(
        "downsampling: the older half to one position a minute: {thinned} rows deleted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (rows, history, trips) = query(&store, &s, EPOCH_MS, middle, 3)?;
    println!("queries of the downsampled half ({rows} positions on average):");
    println!("  history: {history}");
    println!("  trips:   {trips}");

    let cut = EPOCH_MS + (end_ms - EPOCH_MS) / 4;
    let before = file_mib(&path);
    let started = Instant::now();
    let deleted = store.delete_positions_before(cut)?;
    println!(
        "retention: {deleted} rows older than the first quarter deleted in {:.1} s; file {before:.0} MiB -> {:.0} MiB (freed pages are reused, not returned)",
        started.elapsed().as_secs_f64(),
        file_mib(&path)
    );
    let (rows, history, trips) = query(&store, &s, cut, end_ms, 4)?;
    println!("queries after retention ({rows} positions on average):");
    println!("  history: {history}");
    println!("  trips:   {trips}");
    Ok(())
}
