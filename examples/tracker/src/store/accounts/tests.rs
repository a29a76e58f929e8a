use super::*;
use crate::store::tests::temp_db;

fn store() -> (tempfile::TempDir, Store) {
    let (dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    for id in 1..=3 {
        store.add_device(id, &format!("d{id}"), &[id as u8; 32], 0).unwrap();
    }
    (dir, store)
}

#[test]
fn users_are_added_listed_and_named_once_whatever_the_case() {
    let (_dir, store) = store();
    let ana = store.add_user("Ana", "correct horse", Role::Admin, 5).unwrap();
    let bo = store.add_user("bo", "battery staple", Role::Viewer, 6).unwrap();
    assert!(matches!(
        store.add_user("ANA", "another one", Role::Viewer, 7),
        Err(StoreError::DuplicateUser(name)) if name == "ANA"
    ));
    for (name, password) in [("", "long enough"), (" pad", "long enough"), ("x", "short")] {
        let refused = store.add_user(name, password, Role::Viewer, 7);
        assert!(matches!(refused, Err(StoreError::BadAccount(_))), "{name:?}: {refused:?}");
    }
    let users = store.users().unwrap();
    assert_eq!(
        users.iter().map(|u| (u.id, u.name.as_str(), u.role)).collect::<Vec<_>>(),
        [(ana, "Ana", Role::Admin), (bo, "bo", Role::Viewer)]
    );
    store.set_role(bo, Role::Admin).unwrap();
    assert_eq!(store.user(bo).unwrap().unwrap().role, Role::Admin);
    assert!(matches!(store.set_role(99, Role::Admin), Err(StoreError::UnknownUser(99))));
}

#[test]
fn passwords_are_stored_as_argon2id_hashes_and_checked() {
    let (_dir, store) = store();
    let id = store.add_user("Ana", "correct horse", Role::Viewer, 5).unwrap();
    let stored: String = store
        .reader()
        .query_row("SELECT password FROM users WHERE id = ?1", [to_sql(id)], |r| r.get(0))
        .unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
    assert!(!stored.contains("correct horse"));
    assert_eq!(store.check_password("Ana", "correct horse").unwrap().map(|u| u.id), Some(id));
    assert_eq!(store.check_password("ana", "correct horse").unwrap().map(|u| u.id), Some(id));
    assert_eq!(store.check_password("Ana", "correct horsE").unwrap(), None);
    assert_eq!(store.check_password("Nobody", "correct horse").unwrap(), None);
    store.set_password(id, "new and long").unwrap();
    assert_eq!(store.check_password("Ana", "correct horse").unwrap(), None);
    assert!(store.check_password("Ana", "new and long").unwrap().is_some());
    // Two users with one password get different hashes (a salt each).
    store.add_user("Bo", "new and long", Role::Viewer, 5).unwrap();
    let hashes: Vec<String> = store
        .reader()
        .prepare("SELECT password FROM users")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_ne!(hashes[0], hashes[1]);
}

#[test]
fn a_viewer_sees_what_it_owns_and_what_is_shared_with_it_and_an_admin_everything() {
    let (_dir, store) = store();
    let admin = store.add_user("root", "long enough", Role::Admin, 0).unwrap();
    let ana = store.add_user("ana", "long enough", Role::Viewer, 0).unwrap();
    let bo = store.add_user("bo", "long enough", Role::Viewer, 0).unwrap();
    store.set_owner(1, Some(ana)).unwrap();
    store.set_owner(2, Some(bo)).unwrap();
    assert_eq!(store.owner(1).unwrap(), Some(ana));
    assert_eq!(store.owner(3).unwrap(), None);
    assert_eq!(store.visible_devices(ana).unwrap(), Visible::Devices(vec![1]));
    store.share(2, ana).unwrap();
    store.share(2, ana).unwrap();
    assert_eq!(store.shared_with(2).unwrap(), [ana]);
    assert_eq!(store.visible_devices(ana).unwrap(), Visible::Devices(vec![1, 2]));
    assert_eq!(store.visible_devices(bo).unwrap(), Visible::Devices(vec![2]));
    assert_eq!(store.visible_devices(admin).unwrap(), Visible::All);
    assert!(store.unshare(2, ana).unwrap());
    assert!(!store.unshare(2, ana).unwrap());
    assert_eq!(store.visible_devices(ana).unwrap(), Visible::Devices(vec![1]));
    assert!(matches!(store.share(9, ana), Err(StoreError::UnknownDevice(9))));
    assert!(matches!(store.share(1, 99), Err(StoreError::UnknownUser(99))));
    assert!(matches!(store.set_owner(1, Some(99)), Err(StoreError::UnknownUser(99))));
    // A deleted user's devices have no owner after, and its shares go.
    store.share(1, bo).unwrap();
    store.delete_user(ana).unwrap();
    assert_eq!(store.owner(1).unwrap(), None);
    assert_eq!(store.shared_with(1).unwrap(), [bo]);
    assert!(matches!(store.visible_devices(ana), Err(StoreError::UnknownUser(_))));
    assert!(matches!(store.delete_user(ana), Err(StoreError::UnknownUser(_))));
}

#[test]
fn trip_descriptions_are_set_replaced_listed_and_removed() {
    let (_dir, store) = store();
    store.set_trip_description(1, 1000, "to the market", 1).unwrap();
    store.set_trip_description(1, 5000, "home", 2).unwrap();
    store.set_trip_description(2, 1000, "another device", 3).unwrap();
    store.set_trip_description(1, 1000, "to the market, by the river", 4).unwrap();
    assert_eq!(
        store.trip_descriptions(1, 0, u64::MAX).unwrap(),
        [(1000, "to the market, by the river".to_owned()), (5000, "home".to_owned())]
    );
    assert_eq!(store.trip_descriptions(1, 2000, 9000).unwrap(), [(5000, "home".to_owned())]);
    store.set_trip_description(1, 5000, "", 5).unwrap();
    assert_eq!(store.trip_descriptions(1, 0, u64::MAX).unwrap().len(), 1);
    assert!(matches!(store.set_trip_description(9, 1, "x", 1), Err(StoreError::UnknownDevice(9))));
    let long = "é".repeat(1001);
    assert!(matches!(store.set_trip_description(1, 1, &long, 1), Err(StoreError::BadAccount(_))));
}

#[test]
fn a_version_1_database_gains_accounts_and_keeps_its_devices() {
    let (_dir, path) = temp_db();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(crate::store::MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "INSERT INTO devices (id, name, key, created_ms) VALUES (7, 'old', zeroblob(32), 1);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), crate::store::MIGRATIONS.len() as i64);
    assert_eq!(store.device(7).unwrap().unwrap().name, "old");
    assert_eq!(store.owner(7).unwrap(), None);
    assert!(store.users().unwrap().is_empty());
}
