//! Reading and verifying one JWT (compact serialization).
//!
//! The header is read here, before any cryptography, so that every refusal says precisely why:
//! `alg: none` and algorithms no key verifies are refused without trying a key, and a key is only
//! ever used with its own algorithm. The signature is then checked by `jsonwebtoken`, and the time
//! and audience claims here, against the caller's clock (so tests can move time).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::keys::{Key, algorithm};
use super::{AuthConfig, AuthError, AuthErrorKind};

type Claims = Map<String, Value>;

/// The latest time a token may name (`exp`, `nbf`): the last second of year 9999. Later values
/// (often milliseconds where seconds were meant) are refused: they would overflow the clock's
/// arithmetic, and a token that never expires is not one the gateway accepts.
const MAX_TIME: u64 = 253_402_300_799;

/// Verifies `token` and returns its claims.
pub(super) fn verify(
    token: &[u8],
    keys: &[Key],
    config: &AuthConfig,
    now: SystemTime,
) -> Result<Claims, AuthError> {
    let malformed =
        |what: &str| AuthError::new(AuthErrorKind::Malformed, format!("malformed token: {what}"));
    let token = std::str::from_utf8(token).map_err(|_| malformed("not UTF-8"))?;
    let header = token.split('.').next().unwrap_or_default();
    if token.split('.').count() != 3 {
        return Err(malformed("a JWT has three dot-separated parts"));
    }
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .ok_or_else(|| malformed("the header is not base64url JSON"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or_default();
    if alg.eq_ignore_ascii_case("none") {
        return Err(AuthError::new(
            AuthErrorKind::Algorithm,
            "unsigned tokens (`alg: none`) are refused",
        ));
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let candidates: Vec<&Key> = match kid {
        Some(kid) => {
            let named: Vec<&Key> = keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect();
            if named.is_empty() {
                return Err(AuthError::new(
                    AuthErrorKind::UnknownKey,
                    format!("no key `{}`", shown(kid)),
                ));
            }
            named
        }
        None => keys.iter().collect(),
    };
    let wanted = algorithm(alg);
    let candidates: Vec<&Key> =
        candidates.into_iter().filter(|k| Some(k.algorithm) == wanted).collect();
    if candidates.is_empty() {
        return Err(AuthError::new(
            AuthErrorKind::Algorithm,
            format!(
                "algorithm `{}` is not the algorithm of any key that may verify this token",
                shown(alg)
            ),
        ));
    }
    let mut last = None;
    for key in candidates {
        match jsonwebtoken::decode::<Claims>(token, &key.key, &signature_only(key.algorithm)) {
            Ok(data) => {
                check_claims(&data.claims, config, now)?;
                return Ok(data.claims);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last.as_ref().map(|e| e.kind()) {
        Some(ErrorKind::InvalidSignature) => {
            AuthError::new(AuthErrorKind::Signature, "the token's signature does not verify")
        }
        Some(ErrorKind::InvalidAlgorithm) => AuthError::new(
            AuthErrorKind::Algorithm,
            format!("algorithm `{}` does not fit the key", shown(alg)),
        ),
        Some(other) => malformed(&format!("{other:?}")),
        None => malformed("no key tried"),
    })
}

/// `jsonwebtoken` checks the signature with `algorithm` and nothing else: claims are checked by
/// [`check_claims`] against the caller's clock.
fn signature_only(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}

fn seconds(claims: &Claims, name: &str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => {
            // The cast cannot saturate: the value is checked to be at most `MAX_TIME`.
            let in_range = |s: &f64| (0.0..=MAX_TIME as f64).contains(s);
            value.as_f64().filter(in_range).map(|s| Some(s as u64)).ok_or_else(|| {
                AuthError::new(
                    AuthErrorKind::Malformed,
                    format!(
                        "malformed token: `{name}` is not a time in seconds since 1970 \
                         (up to the end of year 9999)"
                    ),
                )
            })
        }
    }
}

/// When the token expires (`exp` is required).
pub(super) fn expiry(claims: &Claims) -> Result<SystemTime, AuthError> {
    let exp = seconds(claims, "exp")?.ok_or_else(|| {
        AuthError::new(AuthErrorKind::Malformed, "the token has no `exp` claim: tokens must expire")
    })?;
    Ok(UNIX_EPOCH + Duration::from_secs(exp))
}

fn check_claims(claims: &Claims, config: &AuthConfig, now: SystemTime) -> Result<(), AuthError> {
    let leeway = config.leeway();
    let expires = expiry(claims)?;
    if now > expires + leeway {
        let ago = now.duration_since(expires).unwrap_or_default();
        return Err(AuthError::new(
            AuthErrorKind::Expired,
            format!("the token expired {} ago", humantime::format_duration(whole(ago))),
        ));
    }
    if let Some(nbf) = seconds(claims, "nbf")? {
        let from = UNIX_EPOCH + Duration::from_secs(nbf);
        if now + leeway < from {
            let wait = from.duration_since(now).unwrap_or_default();
            return Err(AuthError::new(
                AuthErrorKind::NotYetValid,
                format!(
                    "the token is not valid for another {}",
                    humantime::format_duration(whole(wait))
                ),
            ));
        }
    }
    if let Some(audience) = &config.audience {
        let ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !ok {
            return Err(AuthError::new(
                AuthErrorKind::Audience,
                format!("the token's audience (`aud`) does not include `{audience}`"),
            ));
        }
    }
    if let Some(issuer) = &config.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer)
    {
        return Err(AuthError::new(
            AuthErrorKind::Issuer,
            format!("the token's issuer (`iss`) is not `{issuer}`"),
        ));
    }
    Ok(())
}

/// The longest piece of an unverified header a message quotes.
const SHOWN_CHARS: usize = 64;

/// `value`, from a header no key has verified yet, as refusals quote it (they go to the client
/// and the logs): at most [`SHOWN_CHARS`] characters, control characters and quotes escaped, so
/// that a token can neither forge log lines nor swell the GOAWAY past what it can carry.
fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(SHOWN_CHARS).flat_map(char::escape_debug).collect();
    if value.chars().nth(SHOWN_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

fn whole(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}
