//! The tracker simulator's command line.
//!
//! Run with:
//!
//! ```sh
//! cargo run -p tracker-sim -- city --seed 7 --out city.geojson
//! ```
//!
//! `tracker-sim --help` lists the commands and their settings.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracker_sim::city::{City, CityConfig, DEFAULT_CENTRE};
use tracker_sim::geo::LatLon;

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
    }
    Ok(())
}
