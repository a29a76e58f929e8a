//! The tracker simulator's command line.
//!
//! Run with:
//!
//! ```sh
//! cargo run -p tracker-sim -- city --seed 7 --out city.geojson
//! cargo run -p tracker-sim -- run --devices devices.txt --rate 2 --speedup 10 --ack --duration 60s
//! ```
//!
//! `tracker-sim --help` lists the commands and their settings.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracker_sim::city::{City, CityConfig, DEFAULT_CENTRE};
use tracker_sim::enrolment::Enrolment;
use tracker_sim::geo::LatLon;
use tracker_sim::sim::{self, RunConfig};

#[derive(Debug, Parser)]
#[command(about = "Simulated tracker devices in a synthetic city")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the city is and which one.
#[derive(Debug, clap::Args)]
struct CityArgs {
    /// The seed: the same seed gives the same city.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The centre's latitude, degrees.
    #[arg(long, default_value_t = DEFAULT_CENTRE.lat, allow_hyphen_values = true)]
    lat: f64,
    /// The centre's longitude, degrees.
    #[arg(long, default_value_t = DEFAULT_CENTRE.lon, allow_hyphen_values = true)]
    lon: f64,
}

impl CityArgs {
    fn config(&self) -> anyhow::Result<CityConfig> {
        anyhow::ensure!(
            self.lat.is_finite() && self.lat.abs() <= 80.0,
            "--lat {} is out of range (the projection needs -80 to 80)",
            self.lat
        );
        anyhow::ensure!(
            self.lon.is_finite() && self.lon.abs() <= 179.9,
            "--lon {} is out of range (-179.9 to 179.9)",
            self.lon
        );
        Ok(CityConfig { seed: self.seed, centre: LatLon { lat: self.lat, lon: self.lon } })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes the synthetic city as a GeoJSON FeatureCollection (the dashboard's basemap).
    City {
        #[command(flatten)]
        city: CityArgs,
        /// Where to write it; `-` for standard output.
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },
    /// Sends the devices' reports to their ingest addresses over UDP, printing statistics.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The devices: enrolment URIs, one a line (blank lines and `#` comments are skipped).
    #[arg(long, alias = "enrol-file")]
    devices: PathBuf,
    /// Reports per second per device.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Simulated seconds per second: vehicles move this much faster (and report times run ahead).
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    /// Ask for acknowledgements and count them (lost reports are not sent again).
    #[arg(long)]
    ack: bool,
    /// Stop after this long (e.g. `90s`, `10m`); without it, run until interrupted.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// How often to print statistics.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    stats_every: Duration,
    /// The counter file (never reuse a counter, across runs); default: the devices file's path
    /// with `.counters` appended.
    #[arg(long)]
    counters: Option<PathBuf>,
    #[command(flatten)]
    city: CityArgs,
}

impl RunArgs {
    fn config(self) -> anyhow::Result<RunConfig> {
        anyhow::ensure!(
            self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1000.0,
            "--rate {} is out of range (more than 0, at most 1000 reports per second)",
            self.rate
        );
        anyhow::ensure!(
            self.speedup.is_finite() && self.speedup > 0.0 && self.speedup <= 1000.0,
            "--speedup {} is out of range (more than 0, at most 1000)",
            self.speedup
        );
        anyhow::ensure!(!self.stats_every.is_zero(), "--stats-every must not be 0");
        let text = std::fs::read_to_string(&self.devices)
            .with_context(|| format!("cannot read --devices {}", self.devices.display()))?;
        let mut devices = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let enrolment: Enrolment = line
                .parse()
                .with_context(|| format!("{} line {}", self.devices.display(), i + 1))?;
            devices.push(enrolment);
        }
        anyhow::ensure!(!devices.is_empty(), "{} has no enrolment URIs", self.devices.display());
        let counters = self.counters.unwrap_or_else(|| {
            let mut path = self.devices.clone().into_os_string();
            path.push(".counters");
            path.into()
        });
        Ok(RunConfig {
            devices,
            rate: self.rate,
            speedup: self.speedup,
            ack: self.ack,
            duration: self.duration,
            stats_every: self.stats_every,
            city: self.city.config()?,
            counters,
        })
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::City { city, out } => {
            let city = City::generate(city.config()?);
            let text = city.to_geojson().to_string();
            if out.as_os_str() == "-" {
                println!("{text}");
            } else {
                std::fs::write(&out, text + "\n")
                    .with_context(|| format!("cannot write {}", out.display()))?;
            }
        }
        Command::Run(args) => {
            let config = args.config()?;
            println!(
                "tracker-sim: {} devices, {} reports/s each, speedup {}, counters in {}",
                config.devices.len(),
                config.rate,
                config.speedup,
                config.counters.display()
            );
            let started = Instant::now();
            // Interrupting is safe: counters are saved before they are used.
            let stop = AtomicBool::new(false);
            let stats = sim::run(config, &stop, |stats| {
                println!("{:>8.1}s {stats}", started.elapsed().as_secs_f64());
            })?;
            println!("done: {stats}");
        }
    }
    Ok(())
}
