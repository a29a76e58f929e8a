use std::collections::BTreeMap;

use gateway_core::Identity;

use super::*;
use crate::PositionT;

fn service() -> (tempfile::TempDir, TrackerService) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("t.db")).unwrap());
    for id in 1..=3 {
        store.add_device(id, &format!("d{id}"), &[id as u8; 32], 0).unwrap();
    }
    // Device 1: two trips (a gap of an hour); device 2: one position; device 3: none.
    let at = |device_id, counter, time_s: u64| PositionT {
        device_id,
        counter,
        time_ms: time_s * 1000,
        received_ms: time_s * 1000 + 10,
        lat: 10.0 + counter as f64 * 0.001,
        ..PositionT::default()
    };
    store
        .insert_positions(&[
            at(1, 1, 100),
            at(1, 2, 160),
            at(1, 3, 3900),
            at(1, 4, 3960),
            at(2, 1, 500),
        ])
        .unwrap();
    (dir, TrackerService::new(store))
}

fn caller(devices: Option<&str>) -> CallContext {
    let mut claims = BTreeMap::new();
    if let Some(devices) = devices {
        claims.insert(DEVICES_CLAIM.to_owned(), devices.to_owned());
    }
    let identity = Identity { subject: "alice".into(), claims };
    CallContext::new(0).with_identity(Some(Arc::new(identity)))
}

fn anonymous() -> CallContext {
    CallContext::new(0)
}

async fn device_ids(service: &TrackerService, ctx: CallContext) -> Vec<u64> {
    let list = service.devices(ctx, ListDevicesT::default().into()).await.unwrap().unpack();
    list.devices.unwrap_or_default().iter().map(|d| d.id).collect()
}

fn history(device_id: u64) -> HistoryT {
    HistoryT { device_id, ..HistoryT::default() }
}

#[tokio::test]
async fn callers_see_the_devices_their_claim_lists() {
    let (_dir, s) = service();
    assert_eq!(device_ids(&s, caller(Some("1, 3"))).await, [1, 3]);
    assert_eq!(device_ids(&s, caller(Some("*"))).await, [1, 2, 3]);
    assert_eq!(device_ids(&s, caller(Some("\"2\""))).await, [2]);
    assert!(device_ids(&s, caller(None)).await.is_empty(), "no claim, no devices");
    assert!(device_ids(&s, caller(Some("x,,"))).await.is_empty());
    assert!(device_ids(&s, anonymous()).await.is_empty(), "anonymous sees nothing by default");
    let s = s.allow_anonymous(true);
    assert_eq!(device_ids(&s, anonymous()).await, [1, 2, 3]);
}

#[tokio::test]
async fn the_device_list_carries_the_last_position() {
    let (_dir, s) = service();
    let list = s.devices(caller(Some("*")), ListDevicesT::default().into()).await.unwrap().unpack();
    let devices = list.devices.unwrap();
    assert_eq!(devices[0].name.as_deref(), Some("d1"));
    assert_eq!(devices[0].last_position.as_ref().unwrap().counter, 4);
    assert_eq!(devices[0].last_seen_ms, 3_960_010);
    assert!(devices[2].last_position.is_none());
    assert_eq!(devices[2].last_seen_ms, 0);
}

#[tokio::test]
async fn a_hidden_device_looks_unknown() {
    let (_dir, s) = service();
    for (ctx, id) in [(caller(Some("1")), 2), (caller(Some("*")), 99), (anonymous(), 1)] {
        let status = s.history(ctx, history(id).into()).await.unwrap_err();
        assert_eq!(TrackerError::of(&status), Some(TrackerError::UnknownDevice), "{status}");
    }
    let positions = s.history(caller(Some("1")), history(1).into()).await.unwrap().unpack();
    assert_eq!(positions.positions.unwrap().len(), 4);
    let last = s
        .last_positions(caller(Some("1,2")), LastPositionsT { device_ids: Some(vec![2, 3]) }.into())
        .await
        .unwrap()
        .unpack();
    assert_eq!(last.positions.unwrap().iter().map(|p| p.device_id).collect::<Vec<_>>(), [2]);
    let all = s.last_positions(caller(Some("*")), LastPositionsT::default().into()).await.unwrap();
    assert_eq!(all.unpack().positions.unwrap().len(), 2);
}

#[tokio::test]
async fn history_limits_orders_and_checks_its_range() {
    let (_dir, s) = service();
    let ctx = || caller(Some("*"));
    let request = HistoryT { device_id: 1, limit: 2, newest_first: true, ..HistoryT::default() };
    let newest = s.history(ctx(), request.into()).await.unwrap().unpack().positions.unwrap();
    assert_eq!(newest.iter().map(|p| p.counter).collect::<Vec<_>>(), [4, 3]);
    let request =
        HistoryT { device_id: 1, from_ms: 150_000, to_ms: 3_900_000, ..HistoryT::default() };
    let range = s.history(ctx(), request.into()).await.unwrap().unpack().positions.unwrap();
    assert_eq!(range.iter().map(|p| p.counter).collect::<Vec<_>>(), [2, 3]);
    let reversed = HistoryT { device_id: 1, from_ms: 10, to_ms: 5, ..HistoryT::default() };
    let status = s.history(ctx(), reversed.into()).await.unwrap_err();
    assert_eq!(TrackerError::of(&status), Some(TrackerError::BadRange), "{status}");
}

#[tokio::test]
async fn trips_cluster_the_stored_positions() {
    let (_dir, s) = service();
    let request = TripsT { device_id: 1, ..TripsT::default() };
    let trips = s.trips(caller(Some("1")), request.into()).await.unwrap().unpack().trips.unwrap();
    assert_eq!(
        trips.iter().map(|t| (t.start_ms, t.end_ms, t.points)).collect::<Vec<_>>(),
        [(100_000, 160_000, 2), (3_900_000, 3_960_000, 2)]
    );
    let one = TripsT { device_id: 1, gap_s: 7200, ..TripsT::default() };
    let trips = s.trips(caller(Some("1")), one.into()).await.unwrap().unpack().trips.unwrap();
    assert_eq!(trips.len(), 1);
    let hidden = TripsT { device_id: 2, ..TripsT::default() };
    assert!(s.trips(caller(Some("1")), hidden.into()).await.is_err());
}
