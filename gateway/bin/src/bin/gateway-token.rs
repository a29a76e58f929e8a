//! The `gateway-token` command: mints a JWT the gateway accepts, so that authentication can be
//! tried without an identity provider. For development and tests only: whoever holds the key can
//! mint any identity with it.
//!
//! Run with: `cargo run -p gateway --bin gateway-token -- --help`
//!
//! It signs with the same key material the gateway verifies with (`docs/auth.md`, "Minting
//! tokens for development"): the bytes of an HMAC secret file exactly as `[[auth.keys]]`'s
//! `secret_file` reads them (HS256), or the PEM private key matching a `public_key_file` (RS256,
//! ES256, EdDSA). The token goes to stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

/// The shortest HMAC secret the gateway accepts (`[[auth.keys]]`), checked here too so that a
/// token is never minted for a key the gateway would refuse to load.
const MIN_SECRET: usize = 32;

/// Mint a JWT for the gateway (development only: the key holder can mint any identity)
#[derive(Debug, Parser)]
#[command(name = "gateway-token", version)]
struct Args {
    /// The token's subject (`sub`): the user or device, as services will see it
    #[arg(long, value_name = "NAME")]
    sub: String,
    /// Roles, comma-separated, in the `roles` claim (see `--roles-claim`)
    #[arg(long, value_name = "ROLES", value_delimiter = ',')]
    roles: Vec<String>,
    /// How long the token is valid, e.g. `10m`, `1h`, `7days`
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// Audience (`aud`); must match the gateway's `auth.audience` if it sets one
    #[arg(long, value_name = "AUDIENCE")]
    aud: Option<String>,
    /// Issuer (`iss`); must match the gateway's `auth.issuer` if it sets one
    #[arg(long, value_name = "ISSUER")]
    iss: Option<String>,
    /// Key id (`kid` in the header); names the key among the gateway's `[[auth.keys]]`
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
    /// HS256, RS256, ES256 or EdDSA; must be the algorithm of the gateway's key
    #[arg(long, value_name = "ALG", default_value = "HS256")]
    algorithm: String,
    /// HS256: file holding the HMAC secret, every byte of it (a trailing newline counts)
    #[arg(long, value_name = "FILE", conflicts_with = "key_file")]
    secret_file: Option<PathBuf>,
    /// RS256, ES256, EdDSA: the PEM private key
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Name of the claim holding the roles; must match the gateway's `auth.roles_claim`
    #[arg(long, value_name = "CLAIM", default_value = "roles")]
    roles_claim: String,
    /// One more claim with a string value, e.g. `tenant=acme` (repeatable)
    #[arg(long, value_name = "NAME=VALUE")]
    claim: Vec<String>,
    /// One more claim with a JSON value, e.g. `perms={"call":["Echo.*"]}` (repeatable)
    #[arg(long, value_name = "NAME=JSON")]
    json_claim: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match mint(&args, SystemTime::now()) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gateway-token: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The signed token `args` describe, issued at `now`.
fn mint(args: &Args, now: SystemTime) -> anyhow::Result<String> {
    let (algorithm, key) = signing_key(args)?;
    let issued = now.duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_secs();
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(args.sub));
    claims.insert("iat".into(), json!(issued));
    claims.insert("exp".into(), json!(issued.saturating_add(args.ttl.as_secs())));
    if let Some(aud) = &args.aud {
        claims.insert("aud".into(), json!(aud));
    }
    if let Some(iss) = &args.iss {
        claims.insert("iss".into(), json!(iss));
    }
    if !args.roles.is_empty() {
        claims.insert(args.roles_claim.clone(), json!(args.roles));
    }
    let mut extra = BTreeMap::new();
    for text in &args.claim {
        let (name, value) = split(text, "--claim")?;
        extra.insert(name, Value::String(value.to_owned()));
    }
    for text in &args.json_claim {
        let (name, value) = split(text, "--json-claim")?;
        let value = serde_json::from_str(value)
            .with_context(|| format!("--json-claim `{name}`: not JSON: `{value}`"))?;
        extra.insert(name, value);
    }
    for (name, value) in extra {
        if claims.contains_key(&name) {
            bail!("claim `{name}` is set by its own flag; give it there");
        }
        claims.insert(name, value);
    }
    let header = Header { kid: args.kid.clone(), ..Header::new(algorithm) };
    jsonwebtoken::encode(&header, &claims, &key).context("cannot sign the token")
}

/// `NAME=VALUE` split at the first `=`.
fn split<'a>(text: &'a str, flag: &str) -> anyhow::Result<(String, &'a str)> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value)),
        _ => bail!("{flag} `{text}` is not NAME=VALUE"),
    }
}

/// The algorithm and key `args` name, read from their files.
fn signing_key(args: &Args) -> anyhow::Result<(Algorithm, EncodingKey)> {
    let algorithm = match args.algorithm.as_str() {
        "HS256" => Algorithm::HS256,
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        other => bail!("--algorithm `{other}` is not one of HS256, RS256, ES256, EdDSA"),
    };
    let read = |path: &PathBuf| {
        std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
    };
    if algorithm == Algorithm::HS256 {
        let Some(path) = &args.secret_file else {
            bail!("HS256 needs --secret-file (the file the gateway's `secret_file` names)");
        };
        let secret = read(path)?;
        if secret.len() < MIN_SECRET {
            bail!(
                "the secret in `{}` is {} bytes; the gateway needs at least {MIN_SECRET}",
                path.display(),
                secret.len()
            );
        }
        return Ok((algorithm, EncodingKey::from_secret(&secret)));
    }
    let Some(path) = &args.key_file else {
        bail!("{} needs --key-file (a PEM private key)", args.algorithm);
    };
    let pem = read(path)?;
    let key = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_ed_pem(&pem),
    };
    let key = key.with_context(|| {
        format!("`{}` is not a PEM {} private key", path.display(), args.algorithm)
    })?;
    Ok((algorithm, key))
}
