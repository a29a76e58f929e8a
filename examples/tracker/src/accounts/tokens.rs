//! The gateway tokens the tracker issues on `login` and `refresh`, and the gateway's `[auth]`
//! that accepts them (`docs/tracker.md`, "Accounts").
//!
//! A token is an HS256 JWT: `sub` the user's name, [`UID_CLAIM`] its id, `roles` its role,
//! [`DEVICES_CLAIM`] the devices it sees (`*`, or their ids separated by commas) and
//! [`PERMISSIONS_CLAIM`] the topic keys it may subscribe to: every device's positions and every
//! map tile for an admin, each of its own devices' positions for a viewer. The gateway forwards
//! [`UID_CLAIM`] and [`DEVICES_CLAIM`] to the services.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway::auth::config::{AuthConfig, KeySpec, RoleSpec};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::store::accounts::{Role, UserRecord, Visible};

/// The claim holding a token's own topic permissions.
pub const PERMISSIONS_CLAIM: &str = "permissions";
/// The claim the gateway forwards: the devices a token may see (`crate::service`).
pub const DEVICES_CLAIM: &str = crate::service::DEVICES_CLAIM;
/// The claim the gateway forwards: the user's id.
pub const UID_CLAIM: &str = "uid";
/// The role of connections without a token: they may only sign in.
pub const GUEST_ROLE: &str = "guest";
/// The topic keys an admin may subscribe to.
pub const ADMIN_TOPICS: &[&str] = &["Tracker.position.*", "Tracker.tile.*"];
/// How long a token lasts unless configured otherwise; clients refresh it before.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// The most devices a viewer's token lists. Each is a topic key and an id in the token, about
/// 60 bytes, and a token is at most 65,535 bytes; a viewer who sees more cannot sign in (an
/// admin sees every device without listing them).
pub const MAX_LISTED_DEVICES: usize = 500;

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "{name} sees {count} devices, more than a token can list ({MAX_LISTED_DEVICES}); an \
         admin sees every device without listing them"
    )]
    TooManyDevices { name: String, count: usize },
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Issues tokens signed with one HS256 secret.
#[derive(Clone)]
pub struct Tokens {
    secret: Vec<u8>,
    ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    /// Leaves the secret out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens signed with `secret` (at least 32 bytes), lasting `ttl`.
    ///
    /// # Panics
    /// If the secret is shorter than 32 bytes (the gateway refuses such keys).
    pub fn new(secret: &[u8], ttl: Duration) -> Tokens {
        assert!(secret.len() >= 32, "an HS256 secret has at least 32 bytes");
        Tokens { secret: secret.to_vec(), ttl }
    }

    /// How long a token lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `user`, who sees `visible`, issued at `now`; with its expiry in ms since the
    /// Unix epoch.
    ///
    /// # Errors
    /// [`TokenError::TooManyDevices`] for a viewer seeing more than [`MAX_LISTED_DEVICES`].
    pub fn issue(
        &self,
        user: &UserRecord,
        visible: &Visible,
        now: SystemTime,
    ) -> Result<(String, u64), TokenError> {
        let (devices, keys) = match visible {
            Visible::All => {
                ("*".to_owned(), ADMIN_TOPICS.iter().map(|&k| k.to_owned()).collect::<Vec<_>>())
            }
            Visible::Devices(ids) if ids.len() > MAX_LISTED_DEVICES => {
                return Err(TokenError::TooManyDevices {
                    name: user.name.clone(),
                    count: ids.len(),
                });
            }
            Visible::Devices(ids) => (
                ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
                ids.iter().map(|id| format!("Tracker.position.{id}")).collect(),
            ),
        };
        let issued = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let expires = issued + self.ttl;
        let claims = json!({
            "sub": user.name,
            "iat": issued.as_secs(),
            "exp": expires.as_secs(),
            "roles": [user.role.as_str()],
            UID_CLAIM: user.id,
            DEVICES_CLAIM: devices,
            PERMISSIONS_CLAIM: { "subscribe": keys },
        });
        let token = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(&self.secret),
        )?;
        let expires_ms = expires.as_secs().saturating_mul(1000);
        Ok((token, expires_ms))
    }
}

/// The gateway's `[auth]` for tracker tokens signed with `secret`: roles `admin` and `viewer`
/// may call both services (each method checks what the caller may do), connections without a
/// token have the role [`GUEST_ROLE`] and may only call `TrackerAccounts.login`; the
/// [`PERMISSIONS_CLAIM`] is read, [`UID_CLAIM`] and [`DEVICES_CLAIM`] forwarded.
pub fn gateway_auth(secret: &[u8]) -> AuthConfig {
    let user = RoleSpec {
        call: vec!["Tracker.*".into(), "TrackerAccounts.*".into()],
        ..RoleSpec::default()
    };
    let guest = RoleSpec { call: vec!["TrackerAccounts.login".into()], ..RoleSpec::default() };
    AuthConfig {
        keys: vec![KeySpec {
            kid: None,
            algorithm: "HS256".into(),
            secret: Some(String::from_utf8_lossy(secret).into_owned()),
            secret_file: None,
            public_key_file: None,
        }],
        permissions_claim: Some(PERMISSIONS_CLAIM.into()),
        forward_claims: vec![UID_CLAIM.into(), DEVICES_CLAIM.into()],
        roles: BTreeMap::from([
            (Role::Admin.as_str().to_owned(), user.clone()),
            (Role::Viewer.as_str().to_owned(), user),
            (GUEST_ROLE.to_owned(), guest),
        ]),
        anonymous_roles: vec![GUEST_ROLE.into()],
        ..AuthConfig::default()
    }
}

/// Where the token secret is kept for a database unless configured otherwise:
/// `<db>.token-secret`.
pub fn secret_path(db: &Path) -> std::path::PathBuf {
    crate::store::beside(db, ".token-secret")
}

/// The secret in `path`, made (64 random hex digits: 256 bits) and written with mode 0600 if the
/// file does not exist. Kept next to the database, so that tokens outlive a restart and
/// `tracker serve` and the gateway in front of it share it.
///
/// # Errors
/// The file cannot be read or written, holds fewer than 32 bytes, or the operating system's
/// random generator fails.
pub fn load_or_create_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(secret) if secret.len() >= 32 => return Ok(secret),
        Ok(secret) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the token secret `{}` has {} bytes; an HS256 secret has at least 32",
                    path.display(),
                    secret.len()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match crate::store::create_private(path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            Ok(secret.into_bytes())
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path),
        Err(e) => Err(e),
    }
}
