use super::*;

fn key(n: u8) -> DeviceKey {
    [n; 32]
}

fn position(device_id: u64, counter: u64, time_ms: u64) -> PositionT {
    PositionT {
        device_id,
        counter,
        time_ms,
        received_ms: time_ms + 50,
        lat: 48.0 + counter as f64 / 1000.0,
        lon: 2.0,
        speed_mps: 1.25,
        heading_deg: 90.0,
        accuracy_m: 3.5,
        battery: if counter % 2 == 0 { Some(50) } else { None },
    }
}

pub(super) fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.db");
    (dir, path)
}

#[test]
fn migrates_from_empty_and_reopens_idempotently() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    store.add_device(1, "one", &key(1), 1000).unwrap();
    drop(store);
    for _ in 0..2 {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(store.devices().unwrap().len(), 1);
    }
    let journal: String = Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    let (_dir, path) = temp_db();
    drop(Store::open(&path).unwrap());
    Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let error = Store::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::NewerSchema { found: 99, .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("schema version 99") && text.contains("newer"), "{text}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let (_dir, path) = temp_db();
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let error = Store::open(&path).unwrap_err();
    assert!(error.to_string().contains("tracker.db"), "{error}");
}

#[test]
fn devices_round_trip_and_duplicates_are_refused() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let big = u64::MAX - 3; // above i64::MAX: stored bit for bit
    store.add_device(big, "big", &key(9), 5).unwrap();
    store.add_device(2, "two", &key(2), 6).unwrap();
    assert!(matches!(
        store.add_device(2, "again", &key(3), 7),
        Err(StoreError::DuplicateDevice(2))
    ));
    let devices = store.devices().unwrap();
    assert_eq!(devices.iter().map(|d| d.id).collect::<Vec<_>>(), [2, big]);
    let device = store.device(big).unwrap().unwrap();
    assert_eq!((device.name.as_str(), device.key, device.enabled), ("big", key(9), true));
    store.set_enabled(big, false).unwrap();
    assert!(!store.device(big).unwrap().unwrap().enabled);
    assert!(matches!(store.set_enabled(77, true), Err(StoreError::UnknownDevice(77))));
    assert_eq!(store.device(77).unwrap(), None);
}

#[test]
fn devices_added_together_are_added_all_or_none() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store.add_device(5, "five", &key(5), 1).unwrap();
    let (k1, k2) = (key(1), key(2));
    store.add_devices([(1, "one", &k1), (2, "two", &k2)], 9).unwrap();
    // A duplicate anywhere in the batch (here, of an enrolled device) adds none of it.
    let refused = store.add_devices([(3, "three", &k1), (5, "again", &k2)], 9);
    assert!(matches!(refused, Err(StoreError::DuplicateDevice(5))), "{refused:?}");
    // And a duplicate within the batch itself.
    let refused = store.add_devices([(4, "four", &k1), (4, "four again", &k2)], 9);
    assert!(matches!(refused, Err(StoreError::DuplicateDevice(4))), "{refused:?}");
    let ids: Vec<u64> = store.devices().unwrap().iter().map(|d| d.id).collect();
    assert_eq!(ids, [1, 2, 5]);
    assert_eq!(store.device(2).unwrap().unwrap().created_ms, 9);
}

#[test]
fn committed_positions_and_highest_counters_survive_a_reopen() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store.add_device(1, "one", &key(1), 0).unwrap();
    store.add_device(2, "two", &key(2), 0).unwrap();
    let batch: Vec<_> = (1..=50).map(|c| position(1, c, 10_000 + c * 1000)).collect();
    store.insert_positions(&batch).unwrap();
    // Out of order within a batch: the highest counter is the maximum, not the last.
    store
        .insert_positions(&[position(2, u64::MAX - 1, 5), position(2, 3, 4), position(1, 51, 9)])
        .unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    let one = store.device(1).unwrap().unwrap();
    assert_eq!(one.highest_counter, 51);
    assert_eq!(one.last_seen_ms, 10_000 + 50 * 1000 + 50);
    assert_eq!(store.device(2).unwrap().unwrap().highest_counter, u64::MAX - 1);
    let all = store.history(1, 0, u64::MAX, 1000, false).unwrap();
    assert_eq!(all.len(), 51);
    assert_eq!(all[1..], batch[..], "values kept exactly, ordered by time");
    assert_eq!(all[0], position(1, 51, 9));
    assert_eq!(store.last_position(1).unwrap(), Some(batch[49].clone()));
    assert_eq!(store.last_position(2).unwrap().unwrap().counter, u64::MAX - 1);
}

#[test]
fn positions_stored_under_schema_3_are_kept_by_the_move_to_time_order() {
    let (_dir, path) = temp_db();
    {
        let mut conn = Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        for migration in &MIGRATIONS[..3] {
            tx.execute_batch(migration).unwrap();
        }
        tx.pragma_update(None, "user_version", 3).unwrap();
        tx.commit().unwrap();
        conn.execute(
            "INSERT INTO devices (id, name, key, created_ms) VALUES (1, 'one', ?1, 0)",
            [&key(1)[..]],
        )
        .unwrap();
        // Counters out of fix-time order (a device that sent its backlog late), and the
        // largest counter SQLite's signed integers hold, stored bit for bit.
        for (counter, time_ms, battery) in
            [(1i64, 5_000i64, Some(7i64)), (2, 3_000, None), (-2, 4_000, Some(9))]
        {
            conn.execute(
                "INSERT INTO positions VALUES (1, ?1, ?2, ?3, 48.5, 2.25, 1.5, 90, 3.5, ?4)",
                params![counter, time_ms, time_ms + 50, battery],
            )
            .unwrap();
        }
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let all = store.history(1, 0, u64::MAX, 100, false).unwrap();
    let found: Vec<_> = all.iter().map(|p| (p.counter, p.time_ms, p.battery)).collect();
    assert_eq!(found, [(2, 3_000, None), (u64::MAX - 1, 4_000, Some(9)), (1, 5_000, Some(7))]);
    assert_eq!(all[0].received_ms, 3_050);
    assert_eq!((all[0].lat, all[0].lon, all[0].speed_mps), (48.5, 2.25, 1.5));
    let indexes: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'positions'
               AND name NOT LIKE 'sqlite_autoindex%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 0, "the time index is gone: the primary key is in time order");
}

#[test]
fn a_failing_batch_stores_nothing() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store.add_device(1, "one", &key(1), 0).unwrap();
    let batch = [position(1, 1, 100), position(404, 1, 100)];
    assert!(store.insert_positions(&batch).is_err());
    assert!(store.history(1, 0, u64::MAX, 10, false).unwrap().is_empty());
    assert_eq!(store.device(1).unwrap().unwrap().highest_counter, 0);
}

#[test]
fn history_ranges_are_inclusive_limited_and_ordered() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    store.add_device(1, "one", &key(1), 0).unwrap();
    store.add_device(2, "two", &key(2), 0).unwrap();
    let positions: Vec<_> = (1..=10).map(|c| position(1, c, c * 100)).collect();
    store.insert_positions(&positions).unwrap();
    store.insert_positions(&[position(2, 1, 300)]).unwrap();

    let counters = |v: Vec<PositionT>| v.iter().map(|p| p.counter).collect::<Vec<_>>();
    assert_eq!(counters(store.history(1, 300, 600, 100, false).unwrap()), [3, 4, 5, 6]);
    assert_eq!(counters(store.history(1, 301, 599, 100, false).unwrap()), [4, 5]);
    assert_eq!(counters(store.history(1, 300, 600, 2, false).unwrap()), [3, 4]);
    assert_eq!(counters(store.history(1, 300, 600, 2, true).unwrap()), [6, 5]);
    assert_eq!(counters(store.history(1, 0, u64::MAX, 3, true).unwrap()), [10, 9, 8]);
    assert!(store.history(1, 1001, 2000, 100, false).unwrap().is_empty());
    assert!(store.history(1, 600, 300, 100, false).unwrap().is_empty());
    assert_eq!(counters(store.history(2, 0, u64::MAX, 100, false).unwrap()), [1]);
    assert!(store.history(3, 0, u64::MAX, 100, false).unwrap().is_empty());
}

#[test]
fn the_history_query_reads_one_range_of_the_primary_key() {
    let (_dir, path) = temp_db();
    drop(Store::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT * FROM positions
             WHERE device_id = 1 AND time_ms BETWEEN 0 AND 10 ORDER BY time_ms, counter",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(plan.iter().any(|p| p.contains("USING PRIMARY KEY")), "{plan:?}");
    assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "no sort step: {plan:?}");
}

#[test]
fn retention_deletes_what_is_older_than_the_cut_for_every_device() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    for id in 1..=3 {
        store.add_device(id, "d", &key(id as u8), 0).unwrap();
        let batch: Vec<_> = (1..=10).map(|c| position(id, c, c * 100)).collect();
        store.insert_positions(&batch).unwrap();
    }
    // Fix times 100..=1000 per device: below 450 are 100..=400, four each.
    assert_eq!(store.delete_positions_before(450).unwrap(), 12);
    for id in 1..=3 {
        let kept: Vec<u64> =
            store.history(id, 0, u64::MAX, 100, false).unwrap().iter().map(|p| p.time_ms).collect();
        assert_eq!(kept, [500, 600, 700, 800, 900, 1000]);
        // The counters stay: a deleted report's counter is still refused.
        assert_eq!(store.device(id).unwrap().unwrap().highest_counter, 10);
    }
    assert_eq!(store.delete_positions_before(450).unwrap(), 0);
}

#[test]
fn downsampling_keeps_the_first_of_each_interval_once_and_remembers_how_far_it_went() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    for id in 1..=2 {
        store.add_device(id, "d", &key(id as u8), 0).unwrap();
        // One every 250 ms for 3 s: fix times 0, 250, …, 2750.
        let batch: Vec<_> = (1..=12).map(|c| position(id, c, (c - 1) * 250)).collect();
        store.insert_positions(&batch).unwrap();
    }
    // One a second before 2,500 ms (rounded down to whole seconds: before 2,000 ms).
    assert_eq!(store.downsample_before(2_500, 1_000).unwrap(), 2 * 6);
    for id in 1..=2 {
        let kept: Vec<u64> =
            store.history(id, 0, u64::MAX, 100, false).unwrap().iter().map(|p| p.time_ms).collect();
        assert_eq!(kept, [0, 1000, 2000, 2250, 2500, 2750]);
    }
    // Done up to 2,000 ms: a second call changes nothing, and a late position in a done
    // interval is left alone (the interval is not read again).
    assert_eq!(store.downsample_before(2_500, 1_000).unwrap(), 0);
    store.insert_positions(&[position(1, 13, 1500)]).unwrap();
    assert_eq!(store.downsample_before(2_999, 1_000).unwrap(), 0);
    // The next interval: 2,000..3,000 keeps 2,000 only.
    assert_eq!(store.downsample_before(3_000, 1_000).unwrap(), 2 * 3);
    let kept: Vec<u64> =
        store.history(1, 0, u64::MAX, 100, false).unwrap().iter().map(|p| p.time_ms).collect();
    assert_eq!(kept, [0, 1000, 1500, 2000]);
    // Reopened: it remembers.
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.downsample_before(3_000, 1_000).unwrap(), 0);
}

#[test]
fn processes_opening_a_fresh_database_at_once_migrate_it_once() {
    let (_dir, path) = temp_db();
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let (path, start) = (path.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                Store::open(&path).map(|store| store.schema_version().unwrap())
            })
        })
        .collect();
    for thread in opened {
        let version = thread.join().unwrap().expect("every opener succeeds");
        assert_eq!(version, MIGRATIONS.len() as i64);
    }
}
