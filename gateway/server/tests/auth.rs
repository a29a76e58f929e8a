//! Authentication and permissions over real TCP: tokens of every supported algorithm accepted,
//! every kind of bad token refused with its reason, methods and topics denied without
//! permission, identity that clients cannot forge, refresh and expiry, and connection limits.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gateway::auth::{AuthConfig, KeySpec, RoleSpec};
use gateway_bus::Bus;
use gateway_core::Code;
use gateway_protocol::{Auth, Frame, GoawayReason, MIN_MAX_FRAME_SIZE, Publish, Subscribe};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use support::{ECHO, FEED_DROP, FEED_LATEST, RawClient, SLOW, TestGateway, WHOAMI, config};

const SECRET: &str = "a test secret of at least thirty-two bytes";

fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

fn key_file(name: &str) -> PathBuf {
    keys_dir().join(name)
}

fn roles() -> BTreeMap<String, RoleSpec> {
    let role = |call: &[&str], subscribe: &[&str], publish: &[&str]| {
        let list = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        RoleSpec { call: list(call), subscribe: list(subscribe), publish: list(publish) }
    };
    BTreeMap::from([
        ("reader".into(), role(&["Timing.echo", "Timing.whoami"], &["Feed.latest.*"], &[])),
        ("device".into(), role(&[], &["Feed.latest.{sub}"], &["Feed.latest.{sub}"])),
    ])
}

fn auth_config() -> gateway::Config {
    let mut config = config();
    let key = |kid: &str, algorithm: &str, file: &str| KeySpec {
        kid: Some(kid.into()),
        algorithm: algorithm.into(),
        secret: None,
        secret_file: None,
        public_key_file: Some(key_file(file)),
    };
    config.auth = AuthConfig {
        keys: vec![
            KeySpec {
                kid: Some("hs".into()),
                algorithm: "HS256".into(),
                secret: Some(SECRET.into()),
                secret_file: None,
                public_key_file: None,
            },
            key("rs", "RS256", "rsa.pub.pem"),
            key("es", "ES256", "ec.pub.pem"),
        ],
        jwks_file: Some(key_file("jwks.json")),
        audience: Some("gw-test".into()),
        issuer: Some("issuer-test".into()),
        forward_claims: vec!["tenant".into()],
        roles: roles(),
        ..AuthConfig::default()
    };
    config
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Claims that pass every check, for subject `sub` with `roles`.
fn claims(sub: &str, roles: &[&str]) -> Value {
    json!({
        "sub": sub,
        "aud": "gw-test",
        "iss": "issuer-test",
        "exp": now() + 600,
        "roles": roles,
        "tenant": "acme",
    })
}

/// Signs `claims` with the test key `kid` (`hs`, `rs`, `es`, `ed`).
fn sign(kid: &str, claims: &Value) -> Bytes {
    let (algorithm, key) = match kid {
        "hs" => (Algorithm::HS256, EncodingKey::from_secret(SECRET.as_bytes())),
        "rs" => (Algorithm::RS256, pem(EncodingKey::from_rsa_pem, "rsa.key.pem")),
        "es" => (Algorithm::ES256, pem(EncodingKey::from_ec_pem, "ec.key.pem")),
        "ed" => (Algorithm::EdDSA, pem(EncodingKey::from_ed_pem, "ed.key.pem")),
        other => panic!("no test key {other}"),
    };
    let header = Header { kid: Some(kid.into()), ..Header::new(algorithm) };
    encode(&header, claims, &key).unwrap().into()
}

fn pem(parse: fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>, file: &str) -> EncodingKey {
    parse(&std::fs::read(key_file(file)).unwrap()).unwrap()
}

/// A token assembled by hand: `header` and `claims` as JSON, signed with HMAC-SHA256 over
/// `secret`, or unsigned if `secret` is empty (for attacks the library would not produce).
fn forge(header: &Value, claims: &Value, secret: &[u8]) -> Bytes {
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let input =
        format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = if secret.is_empty() {
        String::new()
    } else {
        let key = EncodingKey::from_secret(secret);
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap()
    };
    format!("{input}.{signature}").into()
}

/// Connects with `token` and expects to be refused: returns the GOAWAY's message.
async fn refused(gateway: &TestGateway, token: Bytes) -> String {
    let mut client = RawClient::connect(gateway.addr).await;
    client.send_hello(token).await;
    let goaway = client.expect_goaway().await;
    assert_eq!(goaway.reason, GoawayReason::UNAUTHENTICATED, "{goaway:?}");
    assert!(!goaway.reconnect);
    goaway.message
}

async fn connected(gateway: &TestGateway, token: Bytes) -> RawClient {
    let mut client = RawClient::connect(gateway.addr).await;
    let welcome = client.hello_with(token).await;
    // `exp` is 600 s away; the leeway (5 s) is added.
    assert!((590_000..=605_000).contains(&welcome.auth_expires_in_ms), "{welcome:?}");
    client
}

/// Calls `method` and returns the reply payload, or the error's code.
async fn call(client: &mut RawClient, id: u32, method: u32) -> Result<Bytes, Code> {
    client.call(id, method, 5_000, b"\x00\x00\x00\x00").await;
    match client.recv().await {
        Frame::Response(r) => Ok(r.payload),
        Frame::Error(e) => Err(e.status.code()),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_of_every_algorithm_are_accepted() {
    let gateway = TestGateway::start(auth_config()).await;
    for kid in ["hs", "rs", "es", "ed"] {
        let mut client = connected(&gateway, sign(kid, &claims("alice", &["reader"]))).await;
        assert_eq!(call(&mut client, 1, ECHO).await.unwrap().len(), 4, "{kid}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_reason() {
    let gateway = TestGateway::start(auth_config()).await;
    let good = claims("alice", &["reader"]);
    let with = |changes: Value| {
        let mut c = good.clone();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let rsa_public = std::fs::read(key_file("rsa.pub.pem")).unwrap();
    let cases: Vec<(&str, Bytes, &str)> = vec![
        ("no token", Bytes::new(), "a token is required"),
        ("garbage", Bytes::from_static(b"not a token"), "malformed token"),
        ("two parts", Bytes::from_static(b"abc.def"), "three dot-separated parts"),
        (
            "forged signature",
            forge(
                &json!({"alg": "HS256", "kid": "hs"}),
                &good,
                b"another secret, also 32 bytes long",
            ),
            "signature does not verify",
        ),
        ("expired", sign("es", &with(json!({"exp": now() - 60}))), "expired"),
        ("not yet valid", sign("rs", &with(json!({"nbf": now() + 600}))), "not valid for another"),
        ("wrong audience", sign("hs", &with(json!({"aud": "elsewhere"}))), "audience"),
        ("wrong issuer", sign("ed", &with(json!({"iss": "mallory"}))), "issuer"),
        ("no exp", sign("hs", &with(json!({"exp": null}))), "`exp`"),
        ("no sub", sign("hs", &with(json!({"sub": null}))), "`sub`"),
        (
            // The classic confusion: an HS256 token keyed with the RSA public key's bytes.
            "HS256 with the RSA public key as secret",
            forge(&json!({"alg": "HS256", "kid": "rs"}), &good, &rsa_public),
            "algorithm `HS256`",
        ),
        (
            "ES256 token presented as RS256's key",
            forge(&json!({"alg": "ES256", "kid": "rs"}), &good, b""),
            "algorithm `ES256`",
        ),
        ("alg none", forge(&json!({"alg": "none"}), &good, b""), "alg: none"),
        ("alg NONE", forge(&json!({"alg": "NONE", "kid": "hs"}), &good, b""), "alg: none"),
        (
            "unknown kid",
            forge(&json!({"alg": "HS256", "kid": "zz"}), &good, SECRET.as_bytes()),
            "no key `zz`",
        ),
    ];
    for (what, token, words) in cases {
        let message = refused(&gateway, token).await;
        assert!(message.contains(words), "{what}: {message}");
    }
    // A correctly forged-by-us token is accepted: the forging helper itself is right.
    let ok = forge(&json!({"alg": "HS256", "kid": "hs", "typ": "JWT"}), &good, SECRET.as_bytes());
    connected(&gateway, ok).await;
    let failures = gateway.metric("gateway_auth_failures_total{reason=\"expired\"}").await;
    assert_eq!(failures, 1.0);
    gateway.stop().await;
}

#[tokio::test]
async fn anonymous_clients_get_exactly_the_anonymous_roles() {
    let mut config = auth_config();
    config.auth.anonymous_roles = vec!["reader".into()];
    let gateway = TestGateway::start(config).await;
    let mut client = gateway.client().await;
    assert_eq!(call(&mut client, 1, ECHO).await.unwrap().len(), 4);
    assert_eq!(call(&mut client, 2, SLOW).await, Err(Code::PermissionDenied));
    assert_eq!(&call(&mut client, 3, WHOAMI).await.unwrap()[..], b"anonymous");
    gateway.stop().await;
}

#[tokio::test]
async fn methods_and_topics_are_denied_without_permission() {
    let gateway = TestGateway::start(auth_config()).await;
    // No role at all: nothing is allowed.
    let mut nobody = connected(&gateway, sign("hs", &claims("nobody", &[]))).await;
    for (id, method) in [(1, ECHO), (2, SLOW), (3, WHOAMI), (4, some_api::DESCRIPTOR.methods[0].id)]
    {
        assert_eq!(call(&mut nobody, id, method).await, Err(Code::PermissionDenied));
    }
    nobody.send(subscribe(1, FEED_LATEST, "k")).await;
    assert_eq!(denied(&mut nobody).await, Code::PermissionDenied);
    nobody.send(publish(9, FEED_LATEST, "k")).await;
    assert_eq!(nobody.expect_error().await.status.code(), Code::PermissionDenied);

    // A reader: its methods, and every key of Feed.latest, nothing else.
    let mut reader = connected(&gateway, sign("rs", &claims("rita", &["reader"]))).await;
    assert!(call(&mut reader, 1, ECHO).await.is_ok());
    assert_eq!(call(&mut reader, 2, SLOW).await, Err(Code::PermissionDenied));
    subscribe_ok(&mut reader, 1, FEED_LATEST, "*").await;
    subscribe_ok(&mut reader, 2, FEED_LATEST, "any").await;
    reader.send(subscribe(3, FEED_DROP, "any")).await;
    assert_eq!(denied(&mut reader).await, Code::PermissionDenied);
    reader.send(publish(10, FEED_LATEST, "any")).await;
    assert_eq!(reader.expect_error().await.status.code(), Code::PermissionDenied);

    // A device: its own key only, by `{sub}`.
    let mut device = connected(&gateway, sign("es", &claims("dev.1", &["device"]))).await;
    subscribe_ok(&mut device, 1, FEED_LATEST, "dev.1").await;
    device.send(subscribe(2, FEED_LATEST, "*")).await;
    assert_eq!(denied(&mut device).await, Code::PermissionDenied, "a wildcard beyond its rights");
    device.send(subscribe(3, FEED_LATEST, "dev.2")).await;
    assert_eq!(denied(&mut device).await, Code::PermissionDenied);
    device.send(publish(11, FEED_LATEST, "dev.2")).await;
    assert_eq!(device.expect_error().await.status.code(), Code::PermissionDenied);
    // What it publishes reaches the bus with its identity, set by the gateway.
    let mut on_bus = gateway.bus.subscribe("topic.test.Feed.latest.*", None).await.unwrap();
    device.send(publish(12, FEED_LATEST, "dev.1")).await;
    assert!(matches!(device.recv().await, Frame::Response(r) if r.request_id == 12));
    let event = tokio::time::timeout(support::WAIT, on_bus.next()).await.unwrap().unwrap();
    assert_eq!(event.subject, "topic.test.Feed.latest.dev%2E1");
    assert_eq!(event.headers.get("rpc-identity"), Some("dev.1"));
    assert_eq!(event.headers.get("rpc-claim-tenant"), Some("acme"));
    gateway.stop().await;
}

async fn denied(client: &mut RawClient) -> Code {
    match client.recv().await {
        Frame::SubscriptionEnded(e) => e.status.code(),
        other => panic!("expected SUBSCRIPTION_ENDED, got {other:?}"),
    }
}

fn subscribe(subscription_id: u32, topic_id: u32, key: &str) -> Frame {
    let all_keys = key == "*";
    let key = if all_keys { String::new() } else { key.into() };
    Frame::Subscribe(Subscribe { subscription_id, topic_id, all_keys, key })
}

fn publish(request_id: u32, topic_id: u32, key: &str) -> Frame {
    Frame::Publish(Publish {
        request_id,
        topic_id,
        key: key.into(),
        payload: Bytes::from_static(b"p"),
    })
}

async fn subscribe_ok(client: &mut RawClient, id: u32, topic: u32, key: &str) {
    client.send(subscribe(id, topic, key)).await;
    assert_eq!(client.recv().await, Frame::Subscribed { subscription_id: id });
}

#[tokio::test]
async fn services_see_the_tokens_identity_and_nothing_a_client_made_up() {
    let gateway = TestGateway::start(auth_config()).await;
    let mut spoofing = claims("alice", &["reader"]);
    // Claims named like the bus headers, and an unforwarded claim, change nothing.
    spoofing["rpc-identity"] = json!("root");
    spoofing["rpc-claim-tenant"] = json!("evil");
    spoofing["admin"] = json!(true);
    let mut client = connected(&gateway, sign("hs", &spoofing)).await;
    assert_eq!(&call(&mut client, 1, WHOAMI).await.unwrap()[..], b"alice;tenant=acme");
    gateway.stop().await;
}

#[tokio::test]
async fn a_refreshed_token_keeps_the_connection_past_the_first_expiry() {
    let gateway = TestGateway::start(auth_config()).await;
    // Tokens expire on whole seconds; with a 5 s leeway, exp = now - 3 leaves about 2 s.
    let short = |sub: &str| {
        let mut c = claims(sub, &["reader"]);
        c["exp"] = json!(now() - 3);
        sign("hs", &c)
    };
    let mut client = RawClient::connect(gateway.addr).await;
    let welcome = client.hello_with(short("alice")).await;
    assert!(welcome.auth_expires_in_ms >= 1, "{welcome:?}");

    // A refresh for another subject is refused, and the connection stays.
    client
        .send(Frame::Auth(Auth { request_id: 1, token: sign("hs", &claims("bob", &["reader"])) }))
        .await;
    let error = client.expect_error().await;
    assert_eq!(error.status.code(), Code::Unauthenticated);
    assert!(error.status.message().contains("subject `alice`"), "{error:?}");

    client
        .send(Frame::Auth(Auth { request_id: 2, token: sign("rs", &claims("alice", &["reader"])) }))
        .await;
    match client.recv().await {
        Frame::AuthOk { request_id, expires_in_ms } => {
            assert_eq!(request_id, 2);
            assert!(expires_in_ms > 500_000, "{expires_in_ms}");
        }
        other => panic!("expected AUTH_OK, got {other:?}"),
    }
    // Past the first token's expiry, the connection still serves.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(call(&mut client, 3, ECHO).await.is_ok());

    // Without a refresh, the connection ends at expiry with `token_expired`.
    let mut lapsing = RawClient::connect(gateway.addr).await;
    lapsing.hello_with(short("carol")).await;
    let goaway = lapsing.expect_goaway().await;
    assert_eq!(goaway.reason, GoawayReason::TOKEN_EXPIRED);
    assert!(goaway.reconnect);
    gateway.stop().await;
}

#[tokio::test]
async fn a_refresh_with_fewer_rights_ends_the_subscriptions_it_no_longer_allows() {
    let gateway = TestGateway::start(auth_config()).await;
    let mut client = connected(&gateway, sign("hs", &claims("dev-1", &["reader", "device"]))).await;
    subscribe_ok(&mut client, 1, FEED_LATEST, "*").await;
    subscribe_ok(&mut client, 2, FEED_LATEST, "dev-1").await;
    client
        .send(Frame::Auth(Auth { request_id: 1, token: sign("hs", &claims("dev-1", &["device"])) }))
        .await;
    let mut frames = [client.recv().await, client.recv().await];
    frames.sort_by_key(|f| matches!(f, Frame::AuthOk { .. }));
    match &frames[0] {
        Frame::SubscriptionEnded(e) => {
            assert_eq!((e.subscription_id, e.status.code()), (1, Code::PermissionDenied));
        }
        other => panic!("expected SUBSCRIPTION_ENDED, got {other:?}"),
    }
    assert!(matches!(frames[1], Frame::AuthOk { request_id: 1, .. }));
    // The subscription it still allows keeps working.
    gateway
        .bus
        .publish("topic.test.Feed.latest.dev-1", Default::default(), Bytes::from_static(b"x"))
        .await
        .unwrap();
    match client.recv().await {
        Frame::Event(e) => assert_eq!(e.subscription_id, 2),
        other => panic!("expected EVENT, got {other:?}"),
    }
    gateway.stop().await;
}

#[tokio::test]
async fn per_user_and_per_address_connection_limits() {
    let mut config = auth_config();
    config.max_connections_per_user = 2;
    let gateway = TestGateway::start(config).await;
    let token = || sign("hs", &claims("alice", &["reader"]));
    let first = connected(&gateway, token()).await;
    let _second = connected(&gateway, token()).await;
    let mut third = RawClient::connect(gateway.addr).await;
    third.send_hello(token()).await;
    let goaway = third.expect_goaway().await;
    assert_eq!(goaway.reason, GoawayReason::TOO_MANY_CONNECTIONS);
    assert!(goaway.message.contains("user `alice`"), "{goaway:?}");
    // Other users are not affected, and a closed connection frees its place.
    connected(&gateway, sign("hs", &claims("bob", &["reader"]))).await;
    drop(first);
    let again = async {
        loop {
            let mut client = RawClient::connect(gateway.addr).await;
            client.send_hello(token()).await;
            if let Frame::Welcome(_) = client.recv().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(support::WAIT, again).await.expect("the place is freed");
    gateway.stop().await;

    let mut config = auth_config();
    config.connection_rate = 1;
    config.connection_burst = 3;
    let gateway = TestGateway::start(config).await;
    for _ in 0..3 {
        connected(&gateway, token()).await;
    }
    let mut over = RawClient::connect(gateway.addr).await;
    let goaway = over.expect_goaway().await;
    assert_eq!(goaway.reason, GoawayReason::TOO_MANY_CONNECTIONS);
    assert!(goaway.message.contains("too many new connections"), "{goaway:?}");
    gateway.stop().await;
}

/// Found in the security review: `exp` (or `nbf`) beyond what `SystemTime` can represent
/// (`1e30`, `u64::MAX`) overflowed the expiry arithmetic and panicked the session's task, leaving
/// its writer task behind; a huge leeway did the same for every token.
#[tokio::test]
async fn times_beyond_year_9999_are_refused_without_a_panic() {
    let gateway = TestGateway::start(auth_config()).await;
    let far = [json!(1e30), json!(u64::MAX), json!(253_402_300_800_u64), json!(now() * 1000)];
    for value in far {
        for claim in ["exp", "nbf"] {
            let mut c = claims("alice", &["reader"]);
            c[claim] = value.clone();
            let message = refused(&gateway, sign("hs", &c)).await;
            assert!(message.contains(&format!("`{claim}` is not a time")), "{value}: {message}");
        }
    }
    // The last second of year 9999 is still a time.
    let mut c = claims("alice", &["reader"]);
    c["exp"] = json!(253_402_300_799_u64);
    let mut client = RawClient::connect(gateway.addr).await;
    let welcome = client.hello_with(sign("hs", &c)).await;
    assert_eq!(welcome.auth_expires_in_ms, u32::MAX);
    gateway.stop().await;

    let mut config = auth_config().auth;
    config.leeway = Some(Duration::from_secs(u64::MAX));
    let err = gateway::auth::Authenticator::new(&config).unwrap_err().to_string();
    assert!(err.contains("auth.leeway"), "{err}");
}

/// Found in the security review: HELLO was read under `max_frame_size` (16 MiB by default), so a
/// client without a token could make the gateway reserve and buffer that much per connection.
/// The protocol bounds every frame before WELCOME to 65,536 bytes; the gateway now holds HELLO
/// to that, and raises the limit only for an authenticated connection.
#[tokio::test]
async fn before_authentication_frames_are_held_to_64_kib() {
    let gateway = TestGateway::start(auth_config()).await;
    assert!(gateway::Config::default().max_frame_size > MIN_MAX_FRAME_SIZE);
    let mut client = RawClient::connect(gateway.addr).await;
    client.send_raw(&(MIN_MAX_FRAME_SIZE + 1).to_le_bytes()).await;
    let goaway = client.expect_goaway().await;
    assert_eq!(goaway.reason, GoawayReason::FRAME_TOO_LARGE, "{goaway:?}");

    // Once authenticated, frames up to `max_frame_size` are read.
    let mut client = connected(&gateway, sign("hs", &claims("alice", &["reader"]))).await;
    let big = vec![0u8; 2 * MIN_MAX_FRAME_SIZE as usize];
    client.call(1, ECHO, 5_000, &big).await;
    match client.recv().await {
        Frame::Response(r) => assert_eq!(r.payload.len(), big.len()),
        other => panic!("expected the echo, got {other:?}"),
    }
    gateway.stop().await;
}

/// Found in the security review: the header's `kid` and `alg`, before any key had verified
/// them, were quoted whole into the GOAWAY and the log line: a newline forged log lines, and a
/// long value made a message too large for its frame. They are now cut short and escaped.
#[tokio::test]
async fn refusals_quote_unverified_header_values_short_and_escaped() {
    let gateway = TestGateway::start(auth_config()).await;
    let evil = format!(
        "x\n2030-01-01T00:00:00Z  INFO gateway: session open who=root{}",
        "y".repeat(40_000)
    );
    for header in [json!({"alg": "HS256", "kid": evil}), json!({"alg": evil, "kid": "hs"})] {
        let token = forge(&header, &claims("alice", &["reader"]), SECRET.as_bytes());
        let mut client = RawClient::connect(gateway.addr).await;
        // As AUTH after a good HELLO: a frame of any size up to `max_frame_size`.
        client.hello_with(sign("hs", &claims("alice", &["reader"]))).await;
        client.send(Frame::Auth(Auth { request_id: 1, token })).await;
        let error = client.expect_error().await;
        let message = error.status.message();
        assert_eq!(error.status.code(), Code::Unauthenticated);
        assert!(!message.contains('\n') && message.contains("x\\n2030"), "{message}");
        assert!(message.len() < 200, "{} bytes", message.len());
    }
    gateway.stop().await;
}

/// Found in the security review: a token whose roles claim named the built-in role `all` got
/// every permission, though no `[auth.roles]` table defines it and the config cannot redefine
/// it; an identity provider with a group called `all` would have made everyone an
/// administrator. Only the config (`anonymous_roles`, `default_roles`) can give `all` now.
#[tokio::test]
async fn a_token_cannot_claim_the_built_in_role_all() {
    let gateway = TestGateway::start(auth_config()).await;
    let mut client = connected(&gateway, sign("hs", &claims("mallory", &["all", "reader"]))).await;
    assert!(call(&mut client, 1, ECHO).await.is_ok(), "its other roles still count");
    assert_eq!(call(&mut client, 2, SLOW).await, Err(Code::PermissionDenied));
    let mut single = claims("mallory", &[]);
    single["roles"] = json!("all");
    let mut client = connected(&gateway, sign("hs", &single)).await;
    assert_eq!(call(&mut client, 1, ECHO).await, Err(Code::PermissionDenied));
    gateway.stop().await;

    let mut config = auth_config();
    config.auth.default_roles = vec!["all".into()];
    let gateway = TestGateway::start(config).await;
    let mut client = connected(&gateway, sign("hs", &claims("root", &[]))).await;
    assert!(call(&mut client, 1, SLOW).await.is_ok(), "the config may give `all`");
    gateway.stop().await;
}

/// Found in the security review: the subject and forwarded claims went into bus headers as they
/// were. A claim a user chooses (a display name) holding CR LF would, on a bus that frames
/// headers as lines (NATS), have added a header of the user's choice, such as `rpc-identity`.
/// A subject with control characters is refused; such a claim is not forwarded.
#[tokio::test]
async fn identity_with_control_characters_never_reaches_the_bus() {
    let gateway = TestGateway::start(auth_config()).await;
    let mut c = claims("alice", &["reader"]);
    c["tenant"] = json!("acme\r\nrpc-identity: root");
    let mut client = connected(&gateway, sign("hs", &c)).await;
    assert_eq!(&call(&mut client, 1, WHOAMI).await.unwrap()[..], b"alice");
    let message = refused(&gateway, sign("hs", &claims("root\r\nx: y", &["reader"]))).await;
    assert!(message.contains("control characters"), "{message}");
    gateway.stop().await;
}

/// Found in the security review: HMAC secrets under 32 bytes were refused in `[[auth.keys]]` but
/// accepted from a JWKS file's `oct` keys, which a short secret makes as guessable.
#[test]
fn short_hmac_keys_are_refused_from_a_jwks_file_too() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let jwks = |secret: &[u8]| {
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        json!({"keys": [{"kty": "oct", "kid": "h", "alg": "HS256", "k": k}]}).to_string()
    };
    let config = AuthConfig { jwks_file: Some(path.clone()), ..AuthConfig::default() };
    std::fs::write(&path, jwks(b"short")).unwrap();
    let err = gateway::auth::Authenticator::new(&config).unwrap_err().to_string();
    assert!(err.contains("at least 32"), "{err}");
    std::fs::write(&path, jwks(SECRET.as_bytes())).unwrap();
    gateway::auth::Authenticator::new(&config).unwrap();
}

#[tokio::test]
async fn refused_refreshes_in_a_row_past_the_bound_close_the_connection() {
    let gateway = TestGateway::start(auth_config()).await;
    let mut client = connected(&gateway, sign("hs", &claims("alice", &["reader"]))).await;
    let mut request_id = 0;
    let mut refresh = |sub: &str| {
        request_id += 1;
        Frame::Auth(Auth { request_id, token: sign("hs", &claims(sub, &["reader"])) })
    };
    // Three refused, one accepted (which starts the count again), three refused: still open.
    for sub in ["mallory", "mallory", "mallory", "alice", "mallory", "mallory", "mallory"] {
        client.send(refresh(sub)).await;
        match client.recv().await {
            Frame::Error(e) => {
                assert_eq!((sub, e.status.code()), ("mallory", Code::Unauthenticated))
            }
            Frame::AuthOk { .. } => assert_eq!(sub, "alice"),
            other => panic!("expected an answer to AUTH, got {other:?}"),
        }
    }
    assert!(call(&mut client, 100, ECHO).await.is_ok(), "still serving");
    // The fourth refusal in a row: its ERROR, then GOAWAY `unauthenticated` without reconnect.
    client.send(refresh("mallory")).await;
    assert_eq!(client.expect_error().await.status.code(), Code::Unauthenticated);
    let goaway = client.expect_goaway().await;
    assert_eq!(goaway.reason, GoawayReason::UNAUTHENTICATED);
    assert!(!goaway.reconnect);
    assert!(goaway.message.contains("4 token refreshes in a row were refused"), "{goaway:?}");
    gateway.stop().await;
}

/// Past `auth_failure_burst` failed authentications, an address's new connections are refused
/// at accept (GOAWAY `too_many_connections`), even with a good token, until a second has given
/// it one more try: forged tokens then cost the gateway a refusal, not a handshake each.
#[tokio::test]
async fn an_address_past_its_failed_authentications_is_refused_at_accept_for_a_while() {
    let mut config = auth_config();
    config.auth_failure_burst = 3;
    let gateway = TestGateway::start(config).await;
    let forged = || sign("hs", &json!({"sub": "x", "aud": "other", "exp": now() + 60}));
    for _ in 0..3 {
        refused(&gateway, forged()).await;
    }
    let mut client = RawClient::connect(gateway.addr).await;
    let goaway = client.expect_goaway().await;
    assert_eq!(goaway.reason, GoawayReason::TOO_MANY_CONNECTIONS, "{goaway:?}");
    assert!(goaway.message.contains("failed authentications"), "{goaway:?}");
    // A second refills one try: a good token connects again (tried until it does, bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut client = RawClient::connect(gateway.addr).await;
        client.send_hello(sign("hs", &claims("alice", &["reader"]))).await;
        match client.recv().await {
            Frame::Welcome(_) => break,
            Frame::Goaway(goaway) => assert_eq!(goaway.reason, GoawayReason::TOO_MANY_CONNECTIONS),
            other => panic!("expected WELCOME or GOAWAY, got {other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "the address was never let in again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateway.stop().await;
}
