//! The `gateway-token` binary: tokens it mints are accepted by the gateway's own
//! [`Authenticator`], for every algorithm, with the claims asked for; bad input is refused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use gateway::auth::{AuthConfig, AuthErrorKind, Authenticator, KeySpec, RoleSpec};
use gateway_core::MethodDesc;

const SECRET: &[u8] = b"a development secret, 32 bytes or more\n";

fn key_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/tests/keys").join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway-token")).args(args).output().unwrap()
}

/// Mints a token with `args`, expecting success.
fn mint(args: &[&str]) -> Vec<u8> {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    let mut token = out.stdout;
    assert_eq!(token.pop(), Some(b'\n'));
    token
}

/// A gateway's authenticator with one key of `algorithm`, audience and issuer set, a `reader`
/// role and the claim `tenant` forwarded.
fn authenticator(algorithm: &str, key: KeySpec) -> Authenticator {
    let roles = BTreeMap::from([(
        "reader".to_owned(),
        RoleSpec { call: vec!["Echo.*".into()], ..RoleSpec::default() },
    )]);
    let config = AuthConfig {
        keys: vec![KeySpec { kid: Some("dev".into()), algorithm: algorithm.into(), ..key }],
        audience: Some("gw".into()),
        issuer: Some("me".into()),
        forward_claims: vec!["tenant".into()],
        roles,
        ..AuthConfig::default()
    };
    Authenticator::new(&config).unwrap()
}

fn no_key() -> KeySpec {
    KeySpec {
        kid: None,
        algorithm: String::new(),
        secret: None,
        secret_file: None,
        public_key_file: None,
    }
}

fn method(name: &'static str) -> MethodDesc {
    MethodDesc { id: 1, name, request: "R", response: None, idempotent: false, writes: false }
}

#[test]
fn minted_tokens_are_accepted_for_every_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("dev.secret");
    std::fs::write(&secret, SECRET).unwrap();
    let secret = secret.to_str().unwrap().to_owned();
    let cases = [
        (
            "HS256",
            "--secret-file",
            secret.clone(),
            KeySpec { secret_file: Some(secret.clone().into()), ..no_key() },
        ),
        ("RS256", "--key-file", path("rsa.key.pem"), public("rsa.pub.pem")),
        ("ES256", "--key-file", path("ec.key.pem"), public("ec.pub.pem")),
        ("EdDSA", "--key-file", path("ed.key.pem"), public("ed.pub.pem")),
    ];
    for (algorithm, flag, file, key) in cases {
        let token = mint(&[
            "--sub",
            "alice",
            "--roles",
            "reader,unknown",
            "--ttl",
            "10m",
            "--aud",
            "gw",
            "--iss",
            "me",
            "--kid",
            "dev",
            "--algorithm",
            algorithm,
            flag,
            &file,
            "--claim",
            "tenant=acme",
        ]);
        let now = SystemTime::now();
        let grant = authenticator(algorithm, key).authenticate(&token, now).unwrap();
        assert_eq!(grant.subject(), Some("alice"), "{algorithm}");
        let identity = grant.identity.as_deref().unwrap();
        assert_eq!(identity.claims.get("tenant").map(String::as_str), Some("acme"));
        assert!(grant.permissions.may_call(&method("ex.Echo.echo")), "{algorithm}");
        assert!(!grant.permissions.may_call(&method("ex.Other.echo")), "{algorithm}");
        // 10 minutes, plus the gateway's 5 s leeway, minus at most the time the test took.
        let left = grant.expires_at.unwrap().duration_since(now).unwrap();
        assert!(left > Duration::from_secs(595) && left <= Duration::from_secs(605), "{left:?}");
    }
}

fn path(name: &str) -> String {
    key_file(name).to_str().unwrap().to_owned()
}

fn public(name: &str) -> KeySpec {
    KeySpec { public_key_file: Some(key_file(name)), ..no_key() }
}

#[test]
fn a_token_for_another_key_or_audience_is_refused() {
    let gateway = authenticator("ES256", public("ec.pub.pem"));
    let token = |aud: &str, algorithm: &str, key: &str| {
        mint(&[
            "--sub",
            "bob",
            "--aud",
            aud,
            "--iss",
            "me",
            "--kid",
            "dev",
            "--algorithm",
            algorithm,
            "--key-file",
            &path(key),
        ])
    };
    let refused = |token: Vec<u8>| gateway.authenticate(&token, SystemTime::now()).unwrap_err();
    assert_eq!(refused(token("gw", "EdDSA", "ed.key.pem")).kind, AuthErrorKind::Algorithm);
    assert_eq!(refused(token("elsewhere", "ES256", "ec.key.pem")).kind, AuthErrorKind::Audience);
    assert!(gateway.authenticate(&token("gw", "ES256", "ec.key.pem"), SystemTime::now()).is_ok());
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.secret");
    std::fs::write(&short, b"too short").unwrap();
    let short = short.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--sub", "a", "--secret-file", short], "at least 32"),
        (&["--sub", "a"], "HS256 needs --secret-file"),
        (&["--sub", "a", "--algorithm", "RS256"], "RS256 needs --key-file"),
        (&["--sub", "a", "--algorithm", "none", "--secret-file", short], "not one of"),
        (
            &["--sub", "a", "--algorithm", "ES256", "--key-file", &path("rsa.pub.pem")],
            "not a PEM ES256 private key",
        ),
    ];
    for (args, words) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(words), "{args:?}: {stderr}");
    }
}

#[test]
fn help_lists_every_flag() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--sub",
        "--roles",
        "--ttl",
        "--aud",
        "--iss",
        "--kid",
        "--secret-file",
        "--key-file",
        "--claim",
    ] {
        assert!(help.contains(flag), "no {flag} in\n{help}");
    }
}
