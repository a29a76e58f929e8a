//! The `Tracker` service over the store, with per-caller filtering.
//!
//! Which devices a caller sees comes from its identity, as the gateway forwards it
//! (`CallContext::identity()`): the claim `devices` (forward it with the gateway's
//! `forward_claims = ["devices"]`) is a comma-separated list of device ids, or `*` for every
//! device. An authenticated caller without the claim sees none. An anonymous caller sees every
//! device if the tracker allows it ([`TrackerService::allow_anonymous`], for development), none
//! otherwise. A device the caller may not see is reported exactly like a device that does not
//! exist (`UnknownDevice`), so its existence does not leak.

use std::collections::BTreeSet;
use std::sync::Arc;

use gateway_core::{CallContext, Message, Status};

use crate::store::{Store, StoreError};
use crate::trips::{DEFAULT_GAP_S, trips};
use crate::{
    DeviceListT, DeviceT, HistoryT, LastPositionsT, ListDevicesT, PositionsT, Tracker,
    TrackerError, TripListT, TripsT,
};

/// History's default limit, and its cap.
pub const HISTORY_DEFAULT_LIMIT: u32 = 1000;
pub const HISTORY_MAX_LIMIT: u32 = 10_000;
/// At most this many positions are clustered into trips per call (the oldest of the range).
pub const TRIPS_MAX_POSITIONS: u32 = 100_000;

/// The forwarded claim listing the devices a caller may see.
pub const DEVICES_CLAIM: &str = "devices";

/// The service. See the module docs.
#[derive(Debug)]
pub struct TrackerService {
    store: Arc<Store>,
    allow_anonymous: bool,
}

/// The devices a caller may see.
#[derive(Debug, PartialEq, Eq)]
enum Visible {
    All,
    Only(BTreeSet<u64>),
}

impl Visible {
    fn contains(&self, id: u64) -> bool {
        match self {
            Visible::All => true,
            Visible::Only(ids) => ids.contains(&id),
        }
    }
}

impl TrackerService {
    /// A service answering from `store`; anonymous callers see nothing.
    pub fn new(store: Arc<Store>) -> TrackerService {
        TrackerService { store, allow_anonymous: false }
    }

    /// Lets anonymous callers see every device (development only).
    pub fn allow_anonymous(mut self, allow: bool) -> TrackerService {
        self.allow_anonymous = allow;
        self
    }

    fn visible(&self, ctx: &CallContext) -> Visible {
        let Some(identity) = ctx.identity() else {
            return if self.allow_anonymous {
                Visible::All
            } else {
                Visible::Only(BTreeSet::new())
            };
        };
        let Some(claim) = identity.claims.get(DEVICES_CLAIM) else {
            return Visible::Only(BTreeSet::new());
        };
        // A JSON string claim is forwarded as it is; be lenient with quotes around it.
        let claim = claim.trim().trim_matches('"');
        if claim.trim() == "*" {
            return Visible::All;
        }
        Visible::Only(claim.split(',').filter_map(|id| id.trim().parse().ok()).collect())
    }

    /// Runs a store query off the async threads.
    async fn blocking<R: Send + 'static>(
        &self,
        query: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, Status> {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || query(&store)).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => {
                tracing::error!(cause = %e, "tracker query failed");
                Err(Status::internal(format!("the tracker's database failed: {e}")))
            }
            Err(e) => Err(Status::internal(format!("the tracker's query failed: {e}"))),
        }
    }

    /// Fails with `UnknownDevice` unless the device exists and the caller may see it.
    async fn check_device(&self, ctx: &CallContext, id: u64) -> Result<(), Status> {
        let unknown = || TrackerError::UnknownDevice.status(format!("no device {id}"));
        if !self.visible(ctx).contains(id) {
            return Err(unknown());
        }
        match self.blocking(move |s| s.device(id)).await? {
            Some(_) => Ok(()),
            None => Err(unknown()),
        }
    }
}

/// The upper end of a range (0: none), checked against its lower end.
fn range(from_ms: u64, to_ms: u64) -> Result<u64, Status> {
    let to_ms = if to_ms == 0 { u64::MAX } else { to_ms };
    if from_ms > to_ms {
        return Err(TrackerError::BadRange
            .status(format!("the range is reversed: from_ms {from_ms} > to_ms {to_ms}")));
    }
    Ok(to_ms)
}

impl Tracker for TrackerService {
    async fn devices(
        &self,
        ctx: CallContext,
        _request: Message<ListDevicesT>,
    ) -> Result<Message<DeviceListT>, Status> {
        let visible = self.visible(&ctx);
        let devices = self
            .blocking(move |store| {
                let mut out = Vec::new();
                for d in store.devices()?.into_iter().filter(|d| visible.contains(d.id)) {
                    out.push(DeviceT {
                        id: d.id,
                        name: Some(d.name),
                        last_seen_ms: d.last_seen_ms,
                        last_position: store.last_position(d.id)?.map(Box::new),
                    });
                }
                Ok(out)
            })
            .await?;
        Ok(DeviceListT { devices: Some(devices) }.into())
    }

    async fn last_positions(
        &self,
        ctx: CallContext,
        request: Message<LastPositionsT>,
    ) -> Result<Message<PositionsT>, Status> {
        let visible = self.visible(&ctx);
        let wanted: Vec<u64> =
            request.get().device_ids().map(|ids| ids.iter().collect()).unwrap_or_default();
        let positions = self
            .blocking(move |store| {
                let ids: Vec<u64> = if wanted.is_empty() {
                    store.devices()?.into_iter().map(|d| d.id).collect()
                } else {
                    wanted
                };
                let mut out = Vec::new();
                for id in ids.into_iter().filter(|&id| visible.contains(id)) {
                    out.extend(store.last_position(id)?);
                }
                Ok(out)
            })
            .await?;
        Ok(PositionsT { positions: Some(positions) }.into())
    }

    async fn history(
        &self,
        ctx: CallContext,
        request: Message<HistoryT>,
    ) -> Result<Message<PositionsT>, Status> {
        let r = request.unpack();
        let to_ms = range(r.from_ms, r.to_ms)?;
        self.check_device(&ctx, r.device_id).await?;
        let limit = match r.limit {
            0 => HISTORY_DEFAULT_LIMIT,
            n => n.min(HISTORY_MAX_LIMIT),
        };
        let positions = self
            .blocking(move |s| s.history(r.device_id, r.from_ms, to_ms, limit, r.newest_first))
            .await?;
        Ok(PositionsT { positions: Some(positions) }.into())
    }

    async fn trips(
        &self,
        ctx: CallContext,
        request: Message<TripsT>,
    ) -> Result<Message<TripListT>, Status> {
        let r = request.unpack();
        let to_ms = range(r.from_ms, r.to_ms)?;
        self.check_device(&ctx, r.device_id).await?;
        let gap_s = if r.gap_s == 0 { DEFAULT_GAP_S } else { r.gap_s };
        let (positions, descriptions) = self
            .blocking(move |s| {
                let positions =
                    s.history(r.device_id, r.from_ms, to_ms, TRIPS_MAX_POSITIONS, false)?;
                let descriptions = s.trip_descriptions(r.device_id, r.from_ms, to_ms)?;
                Ok((positions, descriptions))
            })
            .await?;
        let mut trips = trips(&positions, u64::from(gap_s) * 1000);
        // A description names its trip by the trip's first fix time.
        let descriptions: std::collections::HashMap<u64, String> =
            descriptions.into_iter().collect();
        for trip in &mut trips {
            trip.description = descriptions.get(&trip.start_ms).cloned();
        }
        Ok(TripListT { trips: Some(trips) }.into())
    }
}

#[cfg(test)]
mod tests;
