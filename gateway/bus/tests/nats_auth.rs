//! `NatsBus` against nats-servers that require each kind of credentials, and one that requires
//! TLS: a service and a caller authenticated the same way serve typed calls over the call lane
//! (which authenticates on its own) and the main connection, and wrong credentials or a wrong
//! CA are refused with a message naming what failed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_bus::nats::{NatsAuth, NatsAuthSettings, NatsCredentials, NatsTls};
use gateway_bus::{NatsBus, NatsOptions, ServiceRuntime};
use gateway_core::Message;
use gateway_testkit::NatsServer;
use gateway_testkit::nats_jwt::Operator;
use gateway_testkit::pki::TestCa;
use some_api::{Calculator, DESCRIPTOR, ReplySumT, RequestSumT, SomeApiServer};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

async fn connect(url: &str, auth: &NatsAuth) -> Result<Arc<NatsBus>, String> {
    let options =
        NatsOptions { name: "auth-test".into(), auth: auth.clone(), ..NatsOptions::default() };
    NatsBus::connect(url, options).await.map(Arc::new).map_err(|e| e.to_string())
}

/// A typed `sum(a, b)` on `bus`.
async fn sum(bus: &NatsBus, a: i64, b: i64) -> Result<i64, gateway_bus::Failure> {
    use gateway_bus::Bus as _;
    let method = DESCRIPTOR.methods.iter().find(|m| m.name.ends_with(".sum")).unwrap();
    let route = gateway_bus::MethodRoute::new(&DESCRIPTOR, method).unwrap();
    let meta = gateway_bus::CallMeta {
        method_id: method.id,
        deadline: Some(Instant::now() + WAIT),
        call_id: None,
        identity: None,
        received: None,
    };
    let payload = Message::pack(&RequestSumT { a, b }).into_bytes();
    let answer = tokio::time::timeout(WAIT, bus.call(&route, meta, payload)).await.unwrap()?;
    Ok(Message::<ReplySumT>::from_bytes(answer).unwrap().get().sum())
}

/// A service and a caller both connected with `auth`: calls are answered, and `lane` says
/// whether they must have moved to the call lane (which authenticates by itself).
async fn serves_with(url: &str, auth: &NatsAuth, lane: bool) {
    let service_bus = connect(url, auth).await.expect("the service connects");
    let stop = CancellationToken::new();
    let service = Arc::new(SomeApiServer::new(Calculator::default()));
    let serving =
        ServiceRuntime::new(service_bus.clone(), service).start(stop.clone()).await.unwrap();
    let bus = connect(url, auth).await.expect("the caller connects");
    // Until the service's subscription is in, a call may find nobody: the first is retried.
    let started = Instant::now();
    while sum(&bus, 1, 1).await.is_err() {
        assert!(started.elapsed() < WAIT, "the service never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if lane {
        bus.open_call_lane();
        let started = Instant::now();
        while !bus.call_lane_connected() {
            assert!(started.elapsed() < WAIT, "the call lane did not authenticate");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for i in 0..20 {
        assert_eq!(sum(&bus, 40, i).await.unwrap(), 40 + i);
    }
    assert_eq!(bus.call_lane_connected(), lane);
    stop.cancel();
    serving.stopped().await;
}

fn settings(f: impl FnOnce(&mut NatsAuthSettings)) -> NatsAuth {
    let mut settings = NatsAuthSettings::default();
    f(&mut settings);
    settings.load(|kind| format!("--nats-{kind}")).unwrap()
}

#[tokio::test]
async fn user_and_password() {
    let nats = NatsServer::start_with(&["--user", "svc", "--pass", "s3cret pass"]);
    let auth = settings(|s| {
        s.user = Some("svc".into());
        s.password = Some("s3cret pass".into());
    });
    serves_with(&nats.url(), &auth, true).await;

    let wrong = settings(|s| {
        s.user = Some("svc".into());
        s.password = Some("guess".into());
    });
    let err = connect(&nats.url(), &wrong).await.err().unwrap();
    assert!(
        err.contains("the server refused user `svc` and its password (authorization violation)"),
        "{err}"
    );
    assert!(!err.contains("guess"), "the password is not in the message: {err}");
    let err = connect(&nats.url(), &NatsAuth::default()).await.err().unwrap();
    assert!(err.contains("the server requires credentials and none were given"), "{err}");
}

#[tokio::test]
async fn token() {
    let nats = NatsServer::start_with(&["--auth", "t0ken"]);
    serves_with(&nats.url(), &settings(|s| s.token = Some("t0ken".into())), true).await;
    let err =
        connect(&nats.url(), &settings(|s| s.token = Some("other".into()))).await.err().unwrap();
    assert!(err.contains("the server refused a token (authorization violation)"), "{err}");
    // Credentials both in the URL and in the settings: which would win is not guessed.
    let url = nats.url().replace("nats://", "nats://t0ken@");
    let err = connect(&url, &settings(|s| s.token = Some("t0ken".into()))).await.err().unwrap();
    assert!(err.contains("credentials given twice"), "{err}");
}

#[tokio::test]
async fn nkey_seed_file() {
    let dir = tempfile::tempdir().unwrap();
    let user = nkeys::KeyPair::new_user();
    let config = dir.path().join("nkey.conf");
    std::fs::write(
        &config,
        format!("authorization {{ users = [ {{ nkey: {} }} ] }}\n", user.public_key()),
    )
    .unwrap();
    let nats = NatsServer::start_with(&["-c", config.to_str().unwrap()]);
    let seed = dir.path().join("user.nk");
    std::fs::write(&seed, user.seed().unwrap()).unwrap();
    serves_with(&nats.url(), &settings(|s| s.nkey = Some(seed.clone())), true).await;

    let stranger = dir.path().join("stranger.nk");
    std::fs::write(&stranger, nkeys::KeyPair::new_user().seed().unwrap()).unwrap();
    let err =
        connect(&nats.url(), &settings(|s| s.nkey = Some(stranger.clone()))).await.err().unwrap();
    assert!(err.contains("the server refused NKey U") && err.contains("stranger.nk"), "{err}");
}

#[tokio::test]
async fn creds_file() {
    let dir = tempfile::tempdir().unwrap();
    let operator = Operator::new();
    let config = operator.write_server_config(dir.path());
    let nats = NatsServer::start_with(&["-c", config.to_str().unwrap()]);
    let creds = operator.write_user_creds(dir.path(), "service");
    serves_with(&nats.url(), &settings(|s| s.creds = Some(creds.clone())), true).await;

    let stranger = operator.write_stranger_creds(dir.path(), "stranger");
    let err =
        connect(&nats.url(), &settings(|s| s.creds = Some(stranger.clone()))).await.err().unwrap();
    assert!(
        err.contains("the server refused the user JWT in") && err.contains("stranger.creds"),
        "{err}"
    );
}

/// A nats-server that requires TLS with a certificate from `ca`, and verifies clients'.
fn tls_server(dir: &Path, ca: &TestCa, verify_clients: bool) -> NatsServer {
    let ca_file = ca.write(dir, "server-ca");
    let (cert, key) = ca.issue(&["localhost", "127.0.0.1"]).write(dir, "server");
    let mut args =
        vec!["--tls", "--tlscert", cert.to_str().unwrap(), "--tlskey", key.to_str().unwrap()];
    if verify_clients {
        args.extend(["--tlsverify", "--tlscacert", ca_file.to_str().unwrap()]);
    }
    NatsServer::start_with(&args)
}

#[tokio::test]
async fn tls_with_a_ca_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("nats test CA");
    let nats = tls_server(dir.path(), &ca, true);
    let ca_file = ca.write(dir.path(), "ca");
    let (cert, key) = ca.issue_client("gateway").write(dir.path(), "client");
    let auth = settings(|s| {
        s.ca = Some(ca_file.clone());
        s.cert = Some(cert.clone());
        s.key = Some(key.clone());
    });
    // The call lane speaks TLS too, with the same CA and client certificate.
    serves_with(&nats.url(), &auth, true).await;

    // Without a client certificate the server refuses the handshake.
    let no_cert = NatsAuth {
        credentials: NatsCredentials::None,
        tls: NatsTls { ca: Some(ca_file.clone()), ..NatsTls::default() },
    };
    assert!(connect(&nats.url(), &no_cert).await.is_err());

    // A CA that did not sign the server's certificate: refused, naming the CA.
    let other = TestCa::new("another CA").write(dir.path(), "other-ca");
    let wrong = settings(|s| {
        s.ca = Some(other.clone());
        s.cert = Some(cert.clone());
        s.key = Some(key.clone());
    });
    let err = connect(&nats.url(), &wrong).await.err().unwrap();
    assert!(err.contains("TLS failed") && err.contains("other-ca.pem"), "{err}");
}
