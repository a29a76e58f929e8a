//! Calls `SomeApi` through a running gateway.
//!
//! Run with (a gateway must be listening; `cargo run -p gateway` starts one):
//!
//! ```text
//! cargo run -p some-api --bin some-api-client -- sum 40 2
//! cargo run -p some-api --bin some-api-client -- sub 5
//! cargo run -p some-api --bin some-api-client -- --gateway 127.0.0.1:7400 sum 1 2
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gateway_client::{Client, ClientConfig};
use some_api::{RequestSubT, RequestSumT, SomeApiClient, SomeApiError};

/// Calls the example SomeApi service through a gateway.
#[derive(Debug, Parser)]
#[command(name = "some-api-client", version, about)]
struct Cli {
    /// Gateway address; repeat to give fallbacks, tried in order.
    #[arg(long = "gateway", value_name = "HOST:PORT", default_value = "127.0.0.1:7400")]
    gateways: Vec<String>,
    /// How long to wait for an answer.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    timeout_ms: u64,
    #[command(subcommand)]
    call: Call,
}

#[derive(Debug, Subcommand)]
enum Call {
    /// Adds two numbers.
    Sum { a: i64, b: i64 },
    /// Subtracts from the service's running total (fire-and-forget: no answer).
    Sub { amount: i64 },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = ClientConfig::new(cli.gateways.iter().cloned());
    config.default_timeout = Duration::from_millis(cli.timeout_ms);
    let client = match Client::connect(config).await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("error: cannot reach a gateway: {err}");
            return ExitCode::FAILURE;
        }
    };
    let api = SomeApiClient::new(client);
    let outcome = match cli.call {
        Call::Sum { a, b } => api.sum(RequestSumT { a, b }).await.map(|reply| {
            println!("{a} + {b} = {}", reply.get().sum());
        }),
        Call::Sub { amount } => api.sub(RequestSubT { amount }).await.map(|()| {
            println!("sent: subtract {amount}");
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(status) => {
            match SomeApiError::of(&status) {
                Some(SomeApiError::Overflow) => eprintln!("error: the sum overflows: {status}"),
                None => eprintln!("error: {status}"),
            }
            ExitCode::FAILURE
        }
    }
}
