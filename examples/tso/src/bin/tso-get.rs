//! `tso-get`: asks the timestamp oracle for timestamps through a gateway and prints them, one
//! line each: the 16 bytes in hex, then the epoch as a UTC time and the index.
//!
//! ```text
//! cargo run --release -p tso --bin tso-get -- --gateway 127.0.0.1:7000 --n 3
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gateway_client::{Client, ClientConfig};
use tso::Timestamp;
use tso::service::{TimestampsRequestT, TsoClient};

/// Prints timestamps from the oracle behind a gateway.
#[derive(Debug, Parser)]
#[command(name = "tso-get", version, about)]
struct Cli {
    /// The gateway's TCP address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    gateway: String,
    /// Consecutive timestamps to ask for in one call.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    n: u32,
    /// Ask again every this long, until interrupted (once without it).
    #[arg(long, value_parser = humantime::parse_duration)]
    every: Option<Duration>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = match Client::connect(ClientConfig::new([cli.gateway.clone()])).await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("tso-get: cannot connect to the gateway at {}: {e}", cli.gateway);
            return ExitCode::FAILURE;
        }
    };
    let oracle = TsoClient::new(client).with_timeout(Duration::from_secs(10));
    loop {
        match oracle.timestamps(TimestampsRequestT { n: cli.n }).await {
            Ok(reply) => {
                let Ok(bytes) = <[u8; 16]>::try_from(reply.get().first().bytes()) else {
                    eprintln!("tso-get: the reply holds no 16-byte timestamp");
                    return ExitCode::FAILURE;
                };
                let first = Timestamp::from_bytes(&bytes);
                for i in 0..u64::from(cli.n) {
                    let t = Timestamp { index: first.index + i, ..first };
                    println!("{}  {}  index {}", hex(&t.to_bytes()), utc(t.epoch), t.index);
                }
            }
            Err(status) if status.retryable() && cli.every.is_some() => {
                println!("(no timestamp: {status}; the oracle may be changing leader)");
            }
            Err(status) => {
                eprintln!("tso-get: {status}");
                return ExitCode::FAILURE;
            }
        }
        let Some(every) = cli.every else { return ExitCode::SUCCESS };
        tokio::time::sleep(every).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` of Unix nanoseconds.
fn utc(nanos: u64) -> String {
    let (secs, frac) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_times() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(super::utc(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(super::utc(1_796_515_200_123_456_789), "2026-12-06T00:00:00.123456789Z");
    }
}
