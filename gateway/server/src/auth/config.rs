//! The `[auth]` table of the gateway's TOML file: keys, roles, and what to check in tokens.
//!
//! It is nested (lists of keys, a table of roles), so it does not fit the flat flag/env scheme of
//! the other settings and is read from the file only; `anonymous_roles` is a flat setting
//! ([`crate::config`]). Parsing checks shapes and names; loading the keys
//! ([`super::Authenticator::new`]) checks that they are usable.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// How the gateway authenticates connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Keys that verify token signatures.
    #[serde(default)]
    pub keys: Vec<KeySpec>,
    /// A JSON Web Key Set file; its keys join `keys`.
    pub jwks_file: Option<PathBuf>,
    /// When set, a token's `aud` must contain it.
    pub audience: Option<String>,
    /// When set, a token's `iss` must equal it.
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, e.g. `"5s"` (the default); at most an hour.
    #[serde(default, with = "humane")]
    pub leeway: Option<Duration>,
    /// The claim naming a token's roles (a list of role names, or one); default `roles`.
    pub roles_claim: Option<String>,
    /// When set, the claim holding extra patterns granted by the token itself, an object
    /// `{ call = [...], subscribe = [...], publish = [...] }`. Only for issuers trusted with it.
    pub permissions_claim: Option<String>,
    /// Claims forwarded to services with each call (`rpc-claim-<name>`).
    #[serde(default)]
    pub forward_claims: Vec<String>,
    /// Roles every authenticated connection has, whatever its token says.
    #[serde(default)]
    pub default_roles: Vec<String>,
    /// Roles by name. `all` is built in (everything allowed) and cannot be redefined; only
    /// `anonymous_roles` and `default_roles` can give it, never a token.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleSpec>,
    /// Roles of anonymous connections (a connection presenting no token); empty refuses them.
    /// Set with the flat setting `anonymous_roles`, not in this table.
    #[serde(skip)]
    pub anonymous_roles: Vec<String>,
}

impl AuthConfig {
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);
    /// The longest leeway accepted: clocks further apart are broken, and a longer leeway would
    /// extend every token by as much.
    pub const MAX_LEEWAY: Duration = Duration::from_secs(3600);

    pub fn leeway(&self) -> Duration {
        self.leeway.unwrap_or(AuthConfig::DEFAULT_LEEWAY)
    }

    pub fn roles_claim(&self) -> &str {
        self.roles_claim.as_deref().unwrap_or("roles")
    }
}

/// One verification key. Exactly one of `secret`, `secret_file` and `public_key_file`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Selects this key when a token's header names it (`kid`).
    pub kid: Option<String>,
    /// `HS256`, `RS256`, `ES256` or `EdDSA`: the only algorithm this key verifies.
    pub algorithm: String,
    /// An HMAC secret, inline (HS256).
    pub secret: Option<String>,
    /// A file holding the HMAC secret's bytes (HS256).
    pub secret_file: Option<PathBuf>,
    /// A PEM public key (RS256, ES256, EdDSA).
    pub public_key_file: Option<PathBuf>,
}

/// What a role allows: patterns of methods, and of topics to subscribe to and publish on
/// (`docs/auth.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    #[serde(default)]
    pub call: Vec<String>,
    #[serde(default)]
    pub subscribe: Vec<String>,
    #[serde(default)]
    pub publish: Vec<String>,
}

/// Durations as humane strings (`"5s"`).
mod humane {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
        humantime::parse_duration(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration ({e})")))
    }
}
