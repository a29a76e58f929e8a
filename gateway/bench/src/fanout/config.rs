//! What one fan-out run does: how many subscribers, how the publisher paces its events, for how
//! long.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Target;

/// The smallest event: the payload carries a sequence number and a send time, 8 bytes each.
pub const MIN_EVENT_PAYLOAD: usize = 16;

/// How the publisher sends its events.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Open loop: `events_per_s` events a second on a fixed schedule, whatever the server does,
    /// each PUBLISH without an answer (request id 0). A server that cannot keep up shows as the
    /// publisher falling behind the schedule (its socket stops taking bytes) or as latency.
    Rate {
        /// The target rate.
        events_per_s: f64,
    },
    /// Closed loop, the ceiling: acknowledged PUBLISHes (non-zero request ids), `window` of them
    /// in flight, the next leaving as soon as an answer comes back.
    Max {
        /// Acknowledged publishes in flight.
        window: u32,
    },
}

/// One fan-out run, checked by [`FanoutConfig::validate`] before it starts.
#[derive(Clone, Debug)]
pub struct FanoutConfig {
    /// The server's address.
    pub addr: SocketAddr,
    /// What the server is; both speak HELLO, SUBSCRIBE and PUBLISH.
    pub target: Target,
    /// Subscriber connections, one subscription each, to the same topic.
    pub subscribers: usize,
    /// The Echo service's topic to publish to: [`super::TOPIC_NAME`] (`broadcast`) by default,
    /// or `examples.echo.Echo.journal`, the same with a history the gateway keeps.
    pub topic: &'static str,
    /// Bytes of each event's payload, at least [`MIN_EVENT_PAYLOAD`].
    pub payload: usize,
    /// How the publisher paces its events.
    pub pace: Pace,
    /// How long to publish before measuring.
    pub warmup: Duration,
    /// How long to measure: events published in this period are the ones counted.
    pub duration: Duration,
    /// How long subscribers wait, after the publisher stops, for the events still on their way.
    pub drain: Duration,
    /// Tasks the subscriber connections are spread over (each task reads many sockets and keeps
    /// one histogram).
    pub reader_tasks: usize,
    /// Connections opened (and subscribed) at once while setting up.
    pub connect_batch: usize,
}

impl FanoutConfig {
    /// The configuration with the defaults the command line documents: 1 subscriber, 64-byte
    /// events, 1,000 events/s, 1 s warm-up, 5 s measured, 2 s drain, 16 reader tasks, connections
    /// opened 200 at a time.
    pub fn new(addr: SocketAddr, target: Target) -> FanoutConfig {
        FanoutConfig {
            addr,
            target,
            subscribers: 1,
            topic: super::TOPIC_NAME,
            payload: 64,
            pace: Pace::Rate { events_per_s: 1_000.0 },
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            drain: Duration::from_secs(2),
            reader_tasks: 16,
            connect_batch: 200,
        }
    }

    /// Checks the values a run cannot start with.
    ///
    /// # Errors
    ///
    /// A message naming the setting and its value.
    pub fn validate(&self) -> Result<(), String> {
        if self.target == Target::Nats {
            return Err("`target` `nats` is for RPC runs only; fan-out runs against a gateway or \
                        raw-fanout"
                .into());
        }
        if self.subscribers == 0 {
            return Err("`subscribers` must be at least 1, not `0`".into());
        }
        if self.payload < MIN_EVENT_PAYLOAD {
            return Err(format!(
                "`payload` must be at least {MIN_EVENT_PAYLOAD} bytes (sequence number and send \
                 time), not `{}`",
                self.payload
            ));
        }
        match self.pace {
            Pace::Rate { events_per_s } if !(events_per_s > 0.0 && events_per_s.is_finite()) => {
                return Err(format!(
                    "`rate` must be a positive number of events/s, not `{events_per_s}`"
                ));
            }
            Pace::Max { window: 0 } => return Err("`window` must be at least 1, not `0`".into()),
            _ => {}
        }
        if self.duration.is_zero() {
            return Err("`duration` must be longer than 0".into());
        }
        if self.reader_tasks == 0 {
            return Err("`reader_tasks` must be at least 1, not `0`".into());
        }
        if self.connect_batch == 0 {
            return Err("`connect_batch` must be at least 1, not `0`".into());
        }
        Ok(())
    }
}
