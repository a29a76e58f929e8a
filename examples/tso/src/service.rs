//! The oracle behind the gateway (`schemas/tso/tso.service`): `timestamps(n)`, served by the
//! leading instance only. [`serve_while_leading`] subscribes an instance's service to the bus
//! while it leads and unsubscribes it when it steps down, so calls reach the leader; a call
//! that reaches an instance whose lease ran out meanwhile gets a retryable `unavailable`.

use std::sync::Arc;

use gateway_bus::{Bus, ServeOptions, ServiceRuntime};
use gateway_core::{CallContext, Message, Status};
use tokio_util::sync::CancellationToken;

use crate::oracle::{Oracle, Refused};

gateway_core::include_generated!("tso");

pub use examples::tso::tso::{DESCRIPTOR, Tso, TsoClient, TsoServer};
pub use examples::tso::{TimestampsRequestT, TimestampsT};

impl Tso for Oracle {
    async fn timestamps(
        &self,
        _ctx: CallContext,
        request: Message<TimestampsRequestT>,
    ) -> Result<Message<TimestampsT>, Status> {
        let n = request.get().n();
        let first = self.timestamps(u64::from(n)).map_err(|refused| match refused {
            Refused::BadCount(_) => Status::invalid_argument(refused.to_string()),
            Refused::NotLeader | Refused::LeaseExpired => {
                Status::unavailable(format!("{refused}: the oracle is changing leader, try again"))
            }
        })?;
        Ok(Message::pack(&TimestampsT { first: first.to_bytes().to_vec(), n }))
    }
}

/// Serves `oracle` on `bus` whenever it leads, until `stop` is cancelled.
///
/// # Errors
///
/// When the bus refuses the service's subscription.
pub async fn serve_while_leading(
    oracle: Oracle,
    bus: Arc<dyn Bus>,
    options: ServeOptions,
    stop: CancellationToken,
) -> Result<(), gateway_bus::BusError> {
    let mut leading = oracle.leadership();
    let server: Arc<dyn gateway_core::Dispatch> = Arc::new(TsoServer::new(oracle));
    loop {
        // Wait to lead.
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            changed = leading.wait_for(|&leads| leads) => if changed.is_err() { return Ok(()) },
        }
        let term = stop.child_token();
        let serving = ServiceRuntime::new(bus.clone(), server.clone())
            .with_options(options.clone())
            .start(term.clone())
            .await?;
        tokio::select! {
            () = stop.cancelled() => {}
            _ = leading.wait_for(|&leads| !leads) => {}
        }
        term.cancel();
        serving.stopped().await;
        if stop.is_cancelled() {
            return Ok(());
        }
    }
}
