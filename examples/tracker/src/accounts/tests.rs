use std::collections::BTreeMap;
use std::time::Duration;

use gateway::auth::{Authenticator, Grant};
use gateway_core::{Code, Identity};

use super::*;
use crate::enrol::Enrolment;
use crate::service::TrackerService;
use crate::{PositionT, Tracker, TripsT};

const SECRET: &[u8] = b"accounts-tests-secret-of-at-least-32-bytes";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    service: AccountsService,
    admin: UserRecord,
    viewer: UserRecord,
}

/// An admin `root`, a viewer `vera` owning device 1; device 2 owned by nobody.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("t.db")).unwrap());
    store.add_device(1, "van", &[1; 32], 0).unwrap();
    store.add_device(2, "bike", &[2; 32], 0).unwrap();
    let admin_id = store.add_user("root", "root-password", Role::Admin, 5).unwrap();
    let viewer_id = store.add_user("vera", "vera-password", Role::Viewer, 6).unwrap();
    store.set_owner(1, Some(viewer_id)).unwrap();
    let tokens = Tokens::new(SECRET, Duration::from_secs(600));
    let service = AccountsService::new(Arc::clone(&store), tokens, vec!["127.0.0.1:7401".into()]);
    let admin = store.user(admin_id).unwrap().unwrap();
    let viewer = store.user(viewer_id).unwrap().unwrap();
    Fixture { _dir: dir, store, service, admin, viewer }
}

/// A call as the gateway forwards it for `user`'s token.
fn as_user(user: &UserRecord) -> CallContext {
    let claims = BTreeMap::from([(tokens::UID_CLAIM.to_owned(), user.id.to_string())]);
    let identity = Identity { subject: user.name.clone(), claims };
    CallContext::new(0).with_identity(Some(Arc::new(identity)))
}

fn may_call(grant: &Grant, method: &str) -> bool {
    grant.permissions.call.allows(method, None)
}

fn may_subscribe(grant: &Grant, device: &str) -> bool {
    grant.permissions.subscribe.allows("Tracker.position", Some(device))
}

fn login(name: &str, password: &str) -> Message<LoginT> {
    LoginT { name: Some(name.into()), password: Some(password.into()) }.into()
}

fn code(result: Result<impl Sized, Status>) -> (Code, String) {
    match result {
        Ok(_) => panic!("the call succeeded"),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

#[tokio::test]
async fn login_issues_a_token_the_gateway_accepts_with_the_users_claims() {
    let f = fixture();
    let session = f.service.login(CallContext::new(0), login("VERA", "vera-password")).await;
    let session = session.unwrap().unpack();
    let user = session.user.unwrap();
    assert_eq!(
        (user.id, user.name.as_deref(), user.role),
        (f.viewer.id, Some("vera"), crate::RoleT::Viewer)
    );
    let now = SystemTime::now();
    let now_ms = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(session.expires_ms > now_ms + 590_000 && session.expires_ms <= now_ms + 601_000);

    let auth = Authenticator::new(&tokens::gateway_auth(SECRET)).unwrap();
    assert!(auth.allows_anonymous(), "guests may sign in");
    let grant = auth.authenticate(session.token.unwrap().as_bytes(), now).unwrap();
    assert_eq!(grant.subject(), Some("vera"));
    let forwarded = &grant.identity.as_ref().unwrap().claims;
    assert_eq!(forwarded.get("uid"), Some(&f.viewer.id.to_string()));
    assert_eq!(forwarded.get("devices").map(String::as_str), Some("1"));
    assert!(may_subscribe(&grant, "1") && !may_subscribe(&grant, "2"));
    // A tile shows every device in it: a viewer may not subscribe to tiles.
    assert!(!grant.permissions.subscribe.allows("Tracker.tile", Some("134225245")));
    assert!(may_call(&grant, "Tracker.history") && may_call(&grant, "TrackerAccounts.share"));

    // An admin's token sees every device.
    let session = f.service.login(CallContext::new(0), login("root", "root-password")).await;
    let grant =
        auth.authenticate(session.unwrap().unpack().token.unwrap().as_bytes(), now).unwrap();
    let forwarded = &grant.identity.as_ref().unwrap().claims;
    assert_eq!(forwarded.get("devices").map(String::as_str), Some("*"));
    assert!(may_subscribe(&grant, "2"));
    assert!(grant.permissions.subscribe.allows("Tracker.tile", Some("134225245")));

    // A guest (no token) may only sign in.
    let guest = auth.authenticate(b"", now).unwrap();
    assert!(may_call(&guest, "TrackerAccounts.login"));
    assert!(!may_call(&guest, "TrackerAccounts.refresh") && !may_call(&guest, "Tracker.devices"));
    assert!(!may_subscribe(&guest, "1"));
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_name_get_the_same_answer() {
    let f = fixture();
    let wrong = code(f.service.login(CallContext::new(0), login("vera", "not-her-password")).await);
    let unknown =
        code(f.service.login(CallContext::new(0), login("nobody", "vera-password")).await);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.0, Code::Unauthenticated);
}

#[tokio::test]
async fn refresh_reflects_the_database_now_and_needs_a_live_user() {
    let f = fixture();
    let refreshed = |ctx| f.service.refresh(ctx, RefreshT::default().into());
    assert_eq!(code(refreshed(CallContext::new(0)).await).0, Code::Unauthenticated);
    f.store.share(2, f.viewer.id).unwrap();
    let token = refreshed(as_user(&f.viewer)).await.unwrap().unpack().token.unwrap();
    let auth = Authenticator::new(&tokens::gateway_auth(SECRET)).unwrap();
    let grant = auth.authenticate(token.as_bytes(), SystemTime::now()).unwrap();
    assert!(may_subscribe(&grant, "2"), "the shared device is in the new token");
    f.store.delete_user(f.viewer.id).unwrap();
    let (status, message) = code(refreshed(as_user(&f.viewer)).await);
    assert_eq!(status, Code::Unauthenticated);
    assert!(message.contains("no longer exists"), "{message}");
}

#[tokio::test]
async fn only_admins_manage_users_and_no_admin_removes_itself() {
    let f = fixture();
    let list = |ctx| f.service.users(ctx, ListUsersT::default().into());
    assert_eq!(code(list(as_user(&f.viewer)).await).0, Code::PermissionDenied);
    let names: Vec<_> = list(as_user(&f.admin))
        .await
        .unwrap()
        .unpack()
        .users
        .unwrap()
        .into_iter()
        .map(|u| u.name.unwrap())
        .collect();
    assert_eq!(names, ["root", "vera"]);

    let add = |ctx, name: &str, password: &str| {
        let request = AddUserT {
            name: Some(name.into()),
            password: Some(password.into()),
            role: crate::RoleT::Viewer,
        };
        f.service.add_user(ctx, request.into())
    };
    assert_eq!(code(add(as_user(&f.viewer), "x", "long-enough").await).0, Code::PermissionDenied);
    let walt = add(as_user(&f.admin), "walt", "walt-password").await.unwrap().unpack();
    assert_eq!(walt.name.as_deref(), Some("walt"));
    assert_eq!(code(add(as_user(&f.admin), "WALT", "walt-password").await).0, Code::AlreadyExists);
    let (status, message) = code(add(as_user(&f.admin), "short", "short").await);
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.contains("8 to 1024 bytes"), "{message}");

    let update = |ctx, id, password: Option<&str>, role: Option<crate::RoleT>| {
        let request = UpdateUserT {
            id,
            password: password.map(Into::into),
            role: role.unwrap_or_default(),
            set_role: role.is_some(),
        };
        f.service.update_user(ctx, request.into())
    };
    // A viewer changes its own password, nobody else's, and no role.
    update(as_user(&f.viewer), f.viewer.id, Some("vera-new-password"), None).await.unwrap();
    assert!(f.store.check_password("vera", "vera-new-password").unwrap().is_some());
    assert_eq!(
        code(update(as_user(&f.viewer), walt.id, Some("hijacked!"), None).await).0,
        Code::PermissionDenied
    );
    assert_eq!(
        code(update(as_user(&f.viewer), f.viewer.id, None, Some(crate::RoleT::Admin)).await).0,
        Code::PermissionDenied
    );
    // An admin promotes another, but does not demote or delete itself.
    let promoted =
        update(as_user(&f.admin), walt.id, None, Some(crate::RoleT::Admin)).await.unwrap();
    assert_eq!(promoted.unpack().role, crate::RoleT::Admin);
    assert_eq!(
        code(update(as_user(&f.admin), f.admin.id, None, Some(crate::RoleT::Viewer)).await).0,
        Code::PermissionDenied
    );
    let delete = |ctx, id| f.service.delete_user(ctx, DeleteUserT { id }.into());
    assert_eq!(code(delete(as_user(&f.admin), f.admin.id).await).0, Code::PermissionDenied);
    delete(as_user(&f.admin), walt.id).await.unwrap();
    assert_eq!(code(delete(as_user(&f.admin), walt.id).await).0, Code::NotFound);
}

#[tokio::test]
async fn a_new_device_is_the_callers_with_an_enrolment_uri_and_its_qr_code() {
    let f = fixture();
    let add =
        |ctx, name: &str| f.service.add_device(ctx, AddDeviceT { name: Some(name.into()) }.into());
    let enrolment = add(as_user(&f.viewer), "scooter").await.unwrap().unpack();
    let parsed = Enrolment::parse_uri(enrolment.uri.as_deref().unwrap()).unwrap();
    assert_eq!(
        (parsed.id, parsed.name.as_str(), parsed.ingest.as_str()),
        (enrolment.device_id, "scooter", "127.0.0.1:7401")
    );
    assert_eq!(f.store.device(parsed.id).unwrap().unwrap().key, parsed.key);
    assert!(enrolment.qr_svg.unwrap().starts_with("<?xml"));
    assert_eq!(f.store.owner(parsed.id).unwrap(), Some(f.viewer.id));
    assert_eq!(code(add(as_user(&f.viewer), " padded").await).0, Code::InvalidArgument);
    assert_eq!(code(add(CallContext::new(0), "anon").await).0, Code::Unauthenticated);
}

#[tokio::test]
async fn owners_and_admins_share_devices_others_do_not_and_unseen_devices_are_unknown() {
    let f = fixture();
    let walt = f.store.add_user("walt", "walt-password", Role::Viewer, 7).unwrap();
    let walt = f.store.user(walt).unwrap().unwrap();
    let share = |ctx, device_id, user: &str| {
        f.service.share(ctx, ShareT { device_id, user_name: Some(user.into()) }.into())
    };
    let shares = |ctx, device_id| f.service.shares(ctx, ListSharesT { device_id }.into());

    share(as_user(&f.viewer), 1, "Walt").await.unwrap();
    let listed = shares(as_user(&f.viewer), 1).await.unwrap().unpack();
    assert_eq!(
        (listed.owner.as_deref(), listed.users.unwrap()),
        (Some("vera"), vec!["walt".to_owned()])
    );
    assert_eq!(f.store.visible_devices(walt.id).unwrap(), Visible::Devices(vec![1]));
    // Walt sees device 1 but does not own it; device 2 it does not see at all.
    assert_eq!(code(share(as_user(&walt), 1, "root").await).0, Code::PermissionDenied);
    assert_eq!(code(share(as_user(&walt), 2, "root").await).0, Code::NotFound);
    assert_eq!(code(share(as_user(&f.viewer), 1, "nobody").await).0, Code::NotFound);
    // An admin manages any device.
    share(as_user(&f.admin), 2, "walt").await.unwrap();
    assert_eq!(shares(as_user(&f.admin), 2).await.unwrap().unpack().owner, None);

    let unshare = |ctx, device_id, user: &str| {
        f.service.unshare(ctx, UnshareT { device_id, user_name: Some(user.into()) }.into())
    };
    unshare(as_user(&f.viewer), 1, "walt").await.unwrap();
    assert_eq!(f.store.visible_devices(walt.id).unwrap(), Visible::Devices(vec![2]));
}

#[tokio::test]
async fn an_owner_describes_a_trip_and_trips_return_the_description() {
    let f = fixture();
    let at = |counter, time_s: u64| PositionT {
        device_id: 1,
        counter,
        time_ms: time_s * 1000,
        ..PositionT::default()
    };
    f.store.insert_positions(&[at(1, 100), at(2, 160), at(3, 3900), at(4, 3960)]).unwrap();
    let describe = |ctx, start_ms, text: &str| {
        let request = DescribeTripT { device_id: 1, start_ms, description: Some(text.into()) };
        f.service.describe_trip(ctx, request.into())
    };
    describe(as_user(&f.viewer), 3_900_000, "  to the depot ").await.unwrap();
    let walt = f.store.add_user("walt", "walt-password", Role::Viewer, 7).unwrap();
    f.store.share(1, walt).unwrap();
    let walt = f.store.user(walt).unwrap().unwrap();
    assert_eq!(code(describe(as_user(&walt), 100_000, "mine now").await).0, Code::PermissionDenied);
    let long = "x".repeat(1001);
    assert_eq!(code(describe(as_user(&f.viewer), 100_000, &long).await).0, Code::InvalidArgument);

    let tracker = TrackerService::new(Arc::clone(&f.store));
    let ctx = {
        let claims = BTreeMap::from([(crate::service::DEVICES_CLAIM.to_owned(), "1".to_owned())]);
        CallContext::new(0)
            .with_identity(Some(Arc::new(Identity { subject: "vera".into(), claims })))
    };
    let trips = tracker.trips(ctx, TripsT { device_id: 1, ..TripsT::default() }.into()).await;
    let trips = trips.unwrap().unpack().trips.unwrap();
    let described: Vec<_> = trips.iter().map(|t| (t.start_ms, t.description.as_deref())).collect();
    assert_eq!(described, [(100_000, None), (3_900_000, Some("to the depot"))]);
}

#[test]
fn a_viewer_seeing_too_many_devices_gets_no_token_naming_why() {
    let tokens = Tokens::new(SECRET, Duration::from_secs(60));
    let user = UserRecord { id: 3, name: "many".into(), role: Role::Viewer, created_ms: 0 };
    let ids = (1..=tokens::MAX_LISTED_DEVICES as u64 + 1).collect();
    let err = tokens.issue(&user, &Visible::Devices(ids), SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("many sees 501 devices"), "{err}");
    // The most a token lists fits the protocol's 65,535 bytes, with the largest ids.
    let ids = (0..tokens::MAX_LISTED_DEVICES as u64).map(|i| u64::MAX - i).collect();
    let (token, _) = tokens.issue(&user, &Visible::Devices(ids), SystemTime::now()).unwrap();
    assert!(token.len() < 65_535, "{}", token.len());
}

#[test]
fn the_secret_is_made_once_private_and_a_short_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    let made = tokens::load_or_create_secret(&path).unwrap();
    assert_eq!(made.len(), 64);
    assert_eq!(tokens::load_or_create_secret(&path).unwrap(), made);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    std::fs::write(&path, "short").unwrap();
    let err = tokens::load_or_create_secret(&path).unwrap_err();
    assert!(err.to_string().contains("has 5 bytes"), "{err}");
}

#[tokio::test]
async fn after_five_failed_sign_ins_a_name_waits_whatever_the_password_and_the_case() {
    let f = fixture();
    for _ in 0..FREE_FAILURES {
        let (status, _) =
            code(f.service.login(CallContext::new(0), login("vera", "wrong-password")).await);
        assert_eq!(status, Code::Unauthenticated);
    }
    // Now even the right password waits, and the name in another case is the same name.
    let (status, message) =
        code(f.service.login(CallContext::new(0), login("VERA", "vera-password")).await);
    assert_eq!(status, Code::ResourceExhausted);
    assert!(message.contains("try again in 1 s"), "{message}");
    // Another name is not held up.
    assert!(f.service.login(CallContext::new(0), login("root", "root-password")).await.is_ok());
}

#[test]
fn the_wait_doubles_with_each_failure_up_to_a_minute_and_a_success_clears_it() {
    let failures = Failures::default();
    let now = Instant::now();
    for _ in 0..FREE_FAILURES - 1 {
        failures.failed("ana", now);
    }
    assert_eq!(failures.wait("ana", now), None, "the first failures are free");
    let waits: Vec<u64> = (0..9)
        .map(|_| {
            failures.failed("ana", now);
            failures.wait("ana", now).unwrap().as_secs()
        })
        .collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(failures.wait("ana", now + MAX_WAIT), None, "the wait ends");
    failures.succeeded("ana");
    failures.failed("ana", now);
    assert_eq!(failures.wait("ana", now), None, "a success starts the count again");
}

#[tokio::test]
async fn a_viewer_gets_no_device_past_what_its_token_can_list() {
    let f = fixture();
    // Vera owns device 1; give her devices up to the limit.
    let keys: Vec<(u64, String)> = (100..100 + tokens::MAX_LISTED_DEVICES as u64 - 1)
        .map(|id| (id, format!("d{id}")))
        .collect();
    f.store.add_devices(keys.iter().map(|(id, name)| (*id, name.as_str(), &[9u8; 32])), 0).unwrap();
    for (id, _) in &keys {
        f.store.set_owner(*id, Some(f.viewer.id)).unwrap();
    }
    let add = f
        .service
        .add_device(as_user(&f.viewer), AddDeviceT { name: Some("one more".into()) }.into());
    let (status, message) = code(add.await);
    assert_eq!(status, Code::PermissionDenied);
    assert!(message.contains("vera sees 500 devices"), "{message}");
    let share = ShareT { device_id: 2, user_name: Some("vera".into()) };
    assert_eq!(
        code(f.service.share(as_user(&f.admin), share.into()).await).0,
        Code::PermissionDenied
    );
    // She can still sign in; an admin is not limited.
    assert!(f.service.login(CallContext::new(0), login("vera", "vera-password")).await.is_ok());
    let added = f
        .service
        .add_device(as_user(&f.admin), AddDeviceT { name: Some("fleet car".into()) }.into());
    assert!(added.await.is_ok());
}
