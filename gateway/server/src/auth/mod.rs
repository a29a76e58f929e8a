//! Who a connection is and what it may do: JWTs checked locally, and permissions from the
//! config's roles (`docs/auth.md`).
//!
//! A connection presents a token in HELLO (and fresh ones later, in AUTH). [`Authenticator`]
//! verifies it against the configured keys — the key decides the algorithm, never the token —
//! checks `exp`, `nbf`, `aud` and `iss`, and turns it into a [`Grant`]: the caller's identity (its
//! `sub` and the claims forwarded to services), its [`Permissions`], and when it expires. A
//! connection without a token is anonymous, which only the config can allow.
//!
//! - [`config`]: the `[auth]` table.
//! - `keys`: loading keys from the config and JWKS files.
//! - `token`: reading and verifying one token.
//! - [`permissions`]: patterns and what they allow.

pub mod config;
pub(crate) mod keys;
pub mod permissions;
mod token;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway_core::{Identity, Status};
use serde_json::Value;

pub use config::{AuthConfig, KeySpec, RoleSpec};
pub use permissions::{Pattern, PatternSet, Permissions};

use keys::Key;

/// What an authenticated (or anonymous) connection is.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The caller; `None` for an anonymous connection.
    pub identity: Option<Arc<Identity>>,
    pub permissions: Arc<Permissions>,
    /// When the credentials stop being accepted (the token's `exp` plus the configured leeway);
    /// `None` for anonymous connections.
    pub expires_at: Option<SystemTime>,
}

impl Grant {
    /// The caller's subject, if authenticated.
    pub fn subject(&self) -> Option<&str> {
        self.identity.as_deref().map(|i| i.subject.as_str())
    }

    /// Time left until expiry as WELCOME and AUTH_OK state it: milliseconds, 0 for never,
    /// at least 1 while not yet expired, saturating at `u32::MAX`.
    pub fn expires_in_ms(&self, now: SystemTime) -> u32 {
        let Some(at) = self.expires_at else { return 0 };
        let left = at.duration_since(now).unwrap_or(Duration::ZERO);
        u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1)
    }
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthErrorKind {
    /// No token, and anonymous connections are not allowed.
    Missing,
    /// Not a JWT (three base64url parts, JSON header and claims), or a required claim is
    /// missing or of the wrong type.
    Malformed,
    /// The header's `kid` names no configured key.
    UnknownKey,
    /// `alg: none`, or an algorithm no configured key (or not the named key) verifies.
    Algorithm,
    /// The signature does not verify.
    Signature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is still to come.
    NotYetValid,
    /// `aud` does not name this gateway's audience.
    Audience,
    /// `iss` is not the configured issuer.
    Issuer,
    /// A refresh for another subject than the connection's.
    SubjectChanged,
}

impl AuthErrorKind {
    /// The name metrics and logs use (`bad_signature`).
    pub const fn name(self) -> &'static str {
        match self {
            AuthErrorKind::Missing => "missing",
            AuthErrorKind::Malformed => "malformed",
            AuthErrorKind::UnknownKey => "unknown_key",
            AuthErrorKind::Algorithm => "algorithm",
            AuthErrorKind::Signature => "bad_signature",
            AuthErrorKind::Expired => "expired",
            AuthErrorKind::NotYetValid => "not_yet_valid",
            AuthErrorKind::Audience => "wrong_audience",
            AuthErrorKind::Issuer => "wrong_issuer",
            AuthErrorKind::SubjectChanged => "subject_changed",
        }
    }

    pub const ALL: [AuthErrorKind; 10] = [
        AuthErrorKind::Missing,
        AuthErrorKind::Malformed,
        AuthErrorKind::UnknownKey,
        AuthErrorKind::Algorithm,
        AuthErrorKind::Signature,
        AuthErrorKind::Expired,
        AuthErrorKind::NotYetValid,
        AuthErrorKind::Audience,
        AuthErrorKind::Issuer,
        AuthErrorKind::SubjectChanged,
    ];
}

/// A refused token: its kind and a message for the client and the logs (never the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthError {
    pub kind: AuthErrorKind,
    pub message: String,
}

impl AuthError {
    fn new(kind: AuthErrorKind, message: impl Into<String>) -> AuthError {
        AuthError { kind, message: message.into() }
    }

    /// The status a refused AUTH is answered with.
    pub fn to_status(&self) -> Status {
        Status::unauthenticated(self.message.clone())
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AuthError {}

/// The config cannot be turned into an authenticator.
#[derive(Debug, thiserror::Error)]
#[error("auth: {0}")]
pub struct AuthConfigError(pub String);

/// Checks tokens and grants permissions. Built once from the config
/// ([`Config::load`](crate::Config::load) keeps the one it builds to check the settings); shared
/// by every session. Clones share the loaded keys.
#[derive(Clone)]
pub struct Authenticator {
    keys: Arc<[Key]>,
    config: AuthConfig,
    /// Each role's patterns, as text (compiled per connection: `{sub}` differs).
    roles: BTreeMap<String, RoleSpec>,
    /// What anonymous connections may do, compiled once and shared by all of them.
    anonymous: Arc<Permissions>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys.len())
            .field("roles", &self.roles.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Authenticators built from equal settings are equal (key files are not read again to compare).
impl PartialEq for Authenticator {
    fn eq(&self, other: &Authenticator) -> bool {
        self.config == other.config
    }
}

impl Eq for Authenticator {}

/// The built-in role that allows everything.
pub const ROLE_ALL: &str = "all";

impl Authenticator {
    /// Loads the keys and checks the roles of `config`.
    ///
    /// # Errors
    ///
    /// An unreadable or unusable key, a leeway over an hour, a malformed pattern, a role used but not defined, `all`
    /// redefined, or no way to authenticate anyone (neither keys nor anonymous roles).
    pub fn new(config: &AuthConfig) -> Result<Authenticator, AuthConfigError> {
        let keys = keys::load(config)?;
        if config.leeway() > AuthConfig::MAX_LEEWAY {
            return Err(AuthConfigError(format!(
                "auth.leeway `{}` is longer than the most allowed, {}",
                humantime::format_duration(config.leeway()),
                humantime::format_duration(AuthConfig::MAX_LEEWAY),
            )));
        }
        if config.roles.contains_key(ROLE_ALL) {
            return Err(AuthConfigError(format!(
                "role `{ROLE_ALL}` is built in (it allows everything) and cannot be redefined"
            )));
        }
        for (name, role) in &config.roles {
            for pattern in role.call.iter().chain(&role.subscribe).chain(&role.publish) {
                Pattern::parse(pattern, Some("subject"))
                    .map_err(|e| AuthConfigError(format!("role `{name}`: {e}")))?;
            }
        }
        let used = config.anonymous_roles.iter().map(|r| ("anonymous_roles", r));
        let used = used.chain(config.default_roles.iter().map(|r| ("auth.default_roles", r)));
        for (setting, role) in used {
            if role != ROLE_ALL && !config.roles.contains_key(role) {
                return Err(AuthConfigError(format!(
                    "{setting} names role `{role}`, which no [auth.roles.{role}] table defines"
                )));
            }
        }
        if keys.is_empty() && config.anonymous_roles.is_empty() {
            return Err(AuthConfigError(
                "no way to authenticate anyone: configure token keys ([[auth.keys]] or \
                 auth.jwks_file) or allow anonymous connections (anonymous_roles, e.g. \
                 `--anonymous-roles all` for development)"
                    .into(),
            ));
        }
        let mut built = Authenticator {
            keys: keys.into(),
            config: config.clone(),
            roles: config.roles.clone(),
            anonymous: Arc::default(),
        };
        built.anonymous = Arc::new(built.permissions(&config.anonymous_roles, None, None));
        Ok(built)
    }

    /// The settings it was built from.
    pub(crate) fn settings(&self) -> &AuthConfig {
        &self.config
    }

    /// Whether anonymous connections are allowed.
    pub fn allows_anonymous(&self) -> bool {
        !self.config.anonymous_roles.is_empty()
    }

    /// Checks `token` (HELLO's or AUTH's bytes) at time `now`. An empty token is anonymous.
    ///
    /// # Errors
    ///
    /// Why the token is refused.
    pub fn authenticate(&self, token: &[u8], now: SystemTime) -> Result<Grant, AuthError> {
        if token.is_empty() {
            if !self.allows_anonymous() {
                return Err(AuthError::new(
                    AuthErrorKind::Missing,
                    "a token is required: this gateway does not accept anonymous connections",
                ));
            }
            return Ok(Grant {
                identity: None,
                permissions: self.anonymous.clone(),
                expires_at: None,
            });
        }
        let claims = token::verify(token, &self.keys, &self.config, now)?;
        // Identity travels in bus headers, whose values cannot hold control characters (NATS
        // ends a header at CR LF): a subject or forwarded claim with them could forge headers.
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if sub.chars().any(char::is_control) => {
                return Err(AuthError::new(
                    AuthErrorKind::Malformed,
                    "the token's `sub` contains control characters",
                ));
            }
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => {
                return Err(AuthError::new(
                    AuthErrorKind::Malformed,
                    "the token has no `sub` claim",
                ));
            }
        };
        // The connection lasts as long as the gateway would accept the token: its `exp` plus the
        // leeway.
        let expires_at = token::expiry(&claims)? + self.config.leeway();
        let mut roles = self.config.default_roles.clone();
        let named: Vec<&str> = match claims.get(self.config.roles_claim()) {
            Some(Value::String(role)) => vec![role],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        // The built-in `all` is only the config's to give (`anonymous_roles`, `default_roles`):
        // no `[auth.roles]` table defines it, so an identity provider with a group of that name
        // would otherwise grant everything to its members.
        for role in named {
            if role == ROLE_ALL {
                tracing::debug!(%subject, "a token names the built-in role `all`; ignored");
            } else {
                roles.push(role.to_owned());
            }
        }
        let inline = self.config.permissions_claim.as_deref().and_then(|name| claims.get(name));
        let permissions = self.permissions(&roles, inline, Some(&subject));
        let forwarded = self
            .config
            .forward_claims
            .iter()
            .filter_map(|name| {
                let value = claims.get(name)?;
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if text.chars().any(char::is_control) {
                    tracing::debug!(%subject, claim = %name, "not forwarded: control characters");
                    return None;
                }
                Some((name.clone(), text))
            })
            .collect();
        Ok(Grant {
            identity: Some(Arc::new(Identity { subject, claims: forwarded })),
            permissions: Arc::new(permissions),
            expires_at: Some(expires_at),
        })
    }

    /// The permissions of `roles` (unknown names ignored) plus `inline` patterns from a token.
    fn permissions(
        &self,
        roles: &[String],
        inline: Option<&Value>,
        subject: Option<&str>,
    ) -> Permissions {
        let mut permissions = Permissions::default();
        for role in roles {
            if role == ROLE_ALL {
                permissions.extend(&Permissions::all());
            } else if let Some(spec) = self.roles.get(role) {
                permissions.extend(&compile(spec, subject));
            } else {
                tracing::debug!(%role, "a token names a role the config does not define; ignored");
            }
        }
        if let Some(inline) = inline {
            let list = |field: &str| -> Vec<String> {
                inline
                    .get(field)
                    .and_then(Value::as_array)
                    .map(|l| l.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default()
            };
            let spec = RoleSpec {
                call: list("call"),
                subscribe: list("subscribe"),
                publish: list("publish"),
            };
            permissions.extend(&compile(&spec, subject));
        }
        permissions
    }
}

/// A role's patterns with `{sub}` bound; malformed patterns (only possible in a token's inline
/// permissions: the config's are checked at start) are skipped.
fn compile(spec: &RoleSpec, subject: Option<&str>) -> Permissions {
    let set = |patterns: &[String]| {
        PatternSet::new(patterns.iter().filter_map(|p| Pattern::parse(p, subject).ok()).collect())
    };
    Permissions {
        call: set(&spec.call),
        subscribe: set(&spec.subscribe),
        publish: set(&spec.publish),
    }
}
