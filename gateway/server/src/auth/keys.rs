//! Verification keys: from `[[auth.keys]]` entries and from a JWKS file. Each key carries the
//! one algorithm it verifies; a token is checked with that algorithm or not at all.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::{AuthConfig, AuthConfigError, KeySpec};

/// The shortest HMAC secret accepted: 256 bits, as RFC 7518 requires for HS256.
const MIN_SECRET: usize = 32;

/// One key and the algorithm it is pinned to.
pub(crate) struct Key {
    pub(super) kid: Option<String>,
    pub(super) algorithm: Algorithm,
    pub(super) key: DecodingKey,
}

/// The algorithms the gateway verifies, by their JOSE names.
pub(super) fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Every key of `config`, configured ones first.
pub(super) fn load(config: &AuthConfig) -> Result<Vec<Key>, AuthConfigError> {
    let mut keys = Vec::new();
    for (i, spec) in config.keys.iter().enumerate() {
        let key = from_spec(spec).map_err(|e| AuthConfigError(format!("auth.keys[{i}]: {e}")))?;
        keys.push(key);
    }
    if let Some(path) = &config.jwks_file {
        let what = |e: String| AuthConfigError(format!("auth.jwks_file `{}`: {e}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| what(e.to_string()))?;
        keys.extend(from_jwks(&text).map_err(what)?);
    }
    Ok(keys)
}

/// The keys of a JSON Web Key Set.
pub(crate) fn from_jwks(text: &str) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWK set: {e}"))?;
    let keys = set
        .keys
        .iter()
        .enumerate()
        .map(|(i, jwk)| from_jwk(jwk).map_err(|e| format!("key {i}: {e}")));
    keys.collect()
}

fn from_spec(spec: &KeySpec) -> Result<Key, String> {
    let algorithm = algorithm(&spec.algorithm).ok_or_else(|| {
        format!("algorithm `{}` is not one of HS256, RS256, ES256, EdDSA", spec.algorithm)
    })?;
    let sources =
        [spec.secret.is_some(), spec.secret_file.is_some(), spec.public_key_file.is_some()];
    if sources.iter().filter(|&&s| s).count() != 1 {
        return Err("give exactly one of `secret`, `secret_file`, `public_key_file`".into());
    }
    let key = if algorithm == Algorithm::HS256 {
        let secret = match (&spec.secret, &spec.secret_file) {
            (Some(secret), _) => secret.as_bytes().to_vec(),
            (None, Some(path)) => {
                std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?
            }
            (None, None) => return Err("HS256 needs `secret` or `secret_file`".into()),
        };
        if secret.len() < MIN_SECRET {
            return Err(format!(
                "the HS256 secret is {} bytes; at least {MIN_SECRET} are needed",
                secret.len()
            ));
        }
        DecodingKey::from_secret(&secret)
    } else {
        let Some(path) = &spec.public_key_file else {
            return Err(format!("{} needs `public_key_file` (a PEM public key)", spec.algorithm));
        };
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let parsed = match algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => DecodingKey::from_ec_pem(&pem),
            _ => DecodingKey::from_ed_pem(&pem),
        };
        parsed.map_err(|e| {
            format!("`{}` is not a PEM {} public key: {e}", path.display(), spec.algorithm)
        })?
    };
    Ok(Key { kid: spec.kid.clone(), algorithm, key })
}

fn from_jwk(jwk: &Jwk) -> Result<Key, String> {
    // The algorithm: the JWK's `alg` if it has one, else what its key type allows.
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
        _ => return Err("unsupported key type or curve (RSA, EC P-256, OKP Ed25519, oct)".into()),
    };
    let algorithm = match jwk.common.key_algorithm {
        None => by_type,
        Some(KeyAlgorithm::RS256) if by_type == Algorithm::RS256 => Algorithm::RS256,
        Some(KeyAlgorithm::ES256) if by_type == Algorithm::ES256 => Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) if by_type == Algorithm::EdDSA => Algorithm::EdDSA,
        Some(KeyAlgorithm::HS256) if by_type == Algorithm::HS256 => Algorithm::HS256,
        Some(other) => return Err(format!("`alg` {other:?} is not supported for this key type")),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    // The same floor as `[[auth.keys]]` secrets: a short `oct` key is as guessable there.
    if let Ok(secret) = key.try_get_hmac_secret()
        && secret.len() < MIN_SECRET
    {
        return Err(format!(
            "the HS256 (`oct`) key is {} bytes; at least {MIN_SECRET} are needed",
            secret.len()
        ));
    }
    Ok(Key { kid: jwk.common.key_id.clone(), algorithm, key })
}
