//! A whole load run: open every connection, warm up, measure, merge the connections' tallies.
//! The TCP targets (gateway, raw echo) are driven here; the NATS target by `nats`.

use echo::BlobT;
use gateway_core::Message;
use gateway_protocol::{Frame, LENGTH_PREFIX_SIZE, Request};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{LoadConfig, Target};
use crate::connection::{Call, Connection, Window};
use crate::error::LoadError;
use crate::nats;
use crate::summary::{Summary, Tally};

/// Runs the load `config` describes and summarises what was measured.
///
/// Every connection is opened (and handshaken) before the warm-up starts, so the measured period
/// sees only calls. Each connection runs in its own task; they share nothing but the clock.
///
/// # Errors
///
/// An invalid configuration, or the first failure of any connection (see [`LoadError`]).
pub async fn run(config: &LoadConfig) -> Result<Summary, LoadError> {
    config.validate().map_err(LoadError::Config)?;
    let call = echo_call(config);
    if config.target == Target::Nats {
        let (tally, request_bytes) = nats::run(config, &call).await?;
        return Ok(Summary::new(config, request_bytes, &tally));
    }
    let request_frame_bytes = request_frame_bytes(&call)?;
    let epoch = Instant::now();
    let mut connections = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        connections.push(Connection::open(config).await?);
    }
    let start = Instant::now() + config.warmup;
    let window = Window { epoch, start, end: start + config.duration };
    let mut tasks = JoinSet::new();
    for connection in connections {
        tasks.spawn(connection.drive(call.clone(), config.depth, config.target, window));
    }
    let mut tally = Tally::new();
    while let Some(joined) = tasks.join_next().await {
        let connection = joined.map_err(|e| LoadError::Task(e.to_string()))?;
        tally.merge(&connection?);
    }
    Ok(Summary::new(config, request_frame_bytes, &tally))
}

/// The call every request makes: `examples.echo.Echo.echo` with a `Blob` of `config.payload`
/// bytes, encoded once.
fn echo_call(config: &LoadConfig) -> Call {
    // A fixed, non-zero pattern: a reply of zeroes would not look like an echo.
    let data = (0..config.payload).map(|i| (i % 251) as u8 + 1).collect();
    let blob = Message::pack(&BlobT { data: Some(data) });
    Call {
        method_id: echo::examples::echo::echo::method::ECHO,
        payload: blob.into_bytes(),
        timeout_ms: config.timeout_ms,
    }
}

/// The size of one REQUEST on the wire, length prefix included.
fn request_frame_bytes(call: &Call) -> Result<usize, LoadError> {
    let request = Frame::Request(Request {
        request_id: 1,
        method_id: call.method_id,
        timeout_ms: call.timeout_ms,
        fire_and_forget: false,
        payload: call.payload.clone(),
    });
    let len = request.encoded_len().map_err(LoadError::encode)?;
    Ok(LENGTH_PREFIX_SIZE + len)
}
