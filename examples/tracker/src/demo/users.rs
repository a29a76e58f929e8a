//! The demo's users and their tokens (the contract with the dashboard,
//! `docs/tracker.md`, "The demo"): HS256 JWTs signed with a secret made at start, role
//! `viewer`, the `devices` claim the service filters by, and the topic keys each may subscribe
//! to in the `permissions` claim.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway::auth::config::{AuthConfig, KeySpec, RoleSpec};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

/// The role every demo user has: it may call the `Tracker` service.
pub const ROLE: &str = "viewer";
/// The claim holding a token's own topic permissions.
pub const PERMISSIONS_CLAIM: &str = "permissions";
/// The claim the gateway forwards to the service: the devices a token may see.
pub const DEVICES_CLAIM: &str = "devices";
/// How long the printed tokens stay valid (they die with the secret when the demo stops).
pub const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// A demo user and its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The token's `sub`.
    pub name: &'static str,
    /// What it sees, for the start-up banner.
    pub sees: String,
    /// The device ids it may see; `None`: every device.
    pub devices: Option<Vec<u64>>,
    pub token: String,
}

/// A new random HS256 secret (64 hex digits: 256 bits), for the gateway to verify with.
///
/// # Errors
/// The operating system's random generator fails.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The gateway's `[auth]`: tokens signed with `secret`, role [`ROLE`], the
/// [`PERMISSIONS_CLAIM`], the [`DEVICES_CLAIM`] forwarded; no anonymous access.
pub fn auth_config(secret: &str) -> AuthConfig {
    let viewer = RoleSpec { call: vec!["Tracker.*".into()], ..RoleSpec::default() };
    AuthConfig {
        keys: vec![KeySpec {
            kid: None,
            algorithm: "HS256".into(),
            secret: Some(secret.into()),
            secret_file: None,
            public_key_file: None,
        }],
        permissions_claim: Some(PERMISSIONS_CLAIM.into()),
        forward_claims: vec![DEVICES_CLAIM.into()],
        roles: BTreeMap::from([(ROLE.to_owned(), viewer)]),
        ..AuthConfig::default()
    }
}

/// The most devices a restricted demo user sees: each is one more topic key in its token.
pub const MAX_RESTRICTED_DEVICES: usize = 250;

/// The demo's users for the simulated `devices` (in enrolment order): `dispatcher` sees every
/// device, `fleet-north` the first half (rounded up), at most [`MAX_RESTRICTED_DEVICES`].
///
/// # Errors
/// Signing fails (it does not with an HMAC secret).
pub fn users(
    secret: &str,
    devices: &[u64],
    now: SystemTime,
) -> Result<Vec<User>, jsonwebtoken::errors::Error> {
    let north = devices[..devices.len().div_ceil(2).min(MAX_RESTRICTED_DEVICES)].to_vec();
    let sees = format!("{} of {} devices", north.len(), devices.len());
    Ok(vec![
        user(secret, "dispatcher", "every device".into(), None, now)?,
        user(secret, "fleet-north", sees, Some(north), now)?,
    ])
}

fn user(
    secret: &str,
    name: &'static str,
    sees: String,
    devices: Option<Vec<u64>>,
    now: SystemTime,
) -> Result<User, jsonwebtoken::errors::Error> {
    let (claim, keys) = match &devices {
        None => ("*".to_owned(), vec!["Tracker.position.*".to_owned()]),
        Some(ids) => (
            ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
            ids.iter().map(|id| format!("Tracker.position.{id}")).collect(),
        ),
    };
    let issued = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = json!({
        "sub": name,
        "iat": issued,
        "exp": issued + TOKEN_TTL.as_secs(),
        "roles": [ROLE],
        DEVICES_CLAIM: claim,
        PERMISSIONS_CLAIM: { "subscribe": keys },
    });
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?;
    Ok(User { name, sees, devices, token })
}

#[cfg(test)]
mod tests {
    use gateway::auth::Authenticator;

    use super::*;

    #[test]
    fn the_gateway_accepts_the_tokens_with_the_claims_of_the_contract() {
        let secret = new_secret().unwrap();
        assert_eq!(secret.len(), 64);
        let auth = Authenticator::new(&auth_config(&secret)).unwrap();
        assert!(!auth.allows_anonymous());
        let now = SystemTime::now();
        let users = users(&secret, &[11, 22, 33], now).unwrap();
        let names: Vec<_> = users.iter().map(|u| u.name).collect();
        assert_eq!(names, ["dispatcher", "fleet-north"]);
        assert_eq!(users[1].devices.as_deref(), Some(&[11, 22][..]));
        for user in &users {
            let grant = auth.authenticate(user.token.as_bytes(), now).unwrap();
            assert_eq!(grant.subject(), Some(user.name));
        }
        // Signed with another secret: refused.
        let other = users_with_other_secret(now);
        assert!(auth.authenticate(other.as_bytes(), now).is_err());
    }

    fn users_with_other_secret(now: SystemTime) -> String {
        users(&new_secret().unwrap(), &[1], now).unwrap().remove(0).token
    }
}
