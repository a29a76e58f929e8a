//! The demo's users (the contract with the dashboard, `docs/tracker.md`, "The demo"): accounts
//! in the tracker's database, made on the first start. `dispatcher` is an admin (every device,
//! manages users); `fleet-north` a viewer owning the first half of the simulated devices (at
//! most [`MAX_RESTRICTED_DEVICES`]). Each has a random password, written next to the database
//! (`<db>.users`, mode 0600) so that every start prints the same ones, and a token for the
//! printed dashboard links.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::accounts::tokens::{TokenError, Tokens};
use crate::ingest::now_ms;
use crate::store::accounts::Role;
use crate::store::{Store, StoreError};

/// The demo's admin and its viewer.
const ADMIN: &str = "dispatcher";
const VIEWER: &str = "fleet-north";

/// The most devices the restricted demo user owns: each is one more topic key in its token.
pub const MAX_RESTRICTED_DEVICES: usize = 250;

/// A demo user, its password and a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// What it sees, for the start-up banner.
    pub sees: String,
    pub password: String,
    pub token: String,
}

/// Why the demo's users could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the demo's passwords `{path}`: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error(
        "the demo's passwords `{0}` are missing but its users exist in the database; set new \
         ones with `tracker user passwd`, or start with a fresh --db"
    )]
    Lost(PathBuf),
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Where the demo keeps its users' passwords for a database.
pub fn passwords_path(db: &Path) -> PathBuf {
    crate::store::beside(db, ".users")
}

/// The demo's users for the simulated `devices` (in enrolment order), made in `store` on the
/// first start (with `fleet-north` owning its devices), read back after; each with a fresh
/// token from `tokens`.
///
/// # Errors
/// The store or the passwords' file fails, or the passwords' file is gone while the users are
/// not.
pub fn ensure(
    store: &Store,
    db: &Path,
    devices: &[u64],
    tokens: &Tokens,
) -> Result<Vec<User>, UsersError> {
    let path = passwords_path(db);
    let file_error = |source| UsersError::File { path: path.clone(), source };
    let passwords = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(name, password)| (name.to_owned(), password.to_owned()))
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if store.user_named(ADMIN)?.is_some() {
                return Err(UsersError::Lost(path));
            }
            let made =
                vec![(ADMIN.to_owned(), new_password()?), (VIEWER.to_owned(), new_password()?)];
            write_private(&path, &made).map_err(file_error)?;
            made
        }
        Err(e) => return Err(file_error(e)),
    };
    // Made in the database on the first start, and again in a fresh database next to the same
    // files (as the simulated devices are).
    for (name, password) in &passwords {
        if store.user_named(name)?.is_some() {
            continue;
        }
        let role = if name == ADMIN { Role::Admin } else { Role::Viewer };
        let id = store.add_user(name, password, role, now_ms())?;
        if name == VIEWER {
            for &device in &devices[..devices.len().div_ceil(2).min(MAX_RESTRICTED_DEVICES)] {
                store.set_owner(device, Some(id))?;
            }
        }
    }
    let now = SystemTime::now();
    let mut users = Vec::new();
    for (name, password) in passwords {
        let Some(record) = store.user_named(&name)? else { continue };
        let visible = store.visible_devices(record.id)?;
        let sees = match &visible {
            crate::store::accounts::Visible::All => "every device".to_owned(),
            crate::store::accounts::Visible::Devices(ids) => {
                format!("{} of {} devices", ids.len(), devices.len())
            }
        };
        let (token, _) = tokens.issue(&record, &visible, now)?;
        users.push(User { name: record.name, role: record.role, sees, password, token });
    }
    Ok(users)
}

/// 16 random characters from an alphabet without look-alikes (about 90 bits).
fn new_password() -> Result<String, UsersError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY346789";
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(UsersError::Random)?;
    Ok(bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect())
}

fn write_private(path: &Path, users: &[(String, String)]) -> std::io::Result<()> {
    let mut file = crate::store::create_private(path)?;
    for (name, password) in users {
        writeln!(file, "{name} {password}")?;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gateway::auth::Authenticator;

    use super::*;
    use crate::accounts::tokens::gateway_auth;

    #[test]
    fn users_are_made_once_with_passwords_that_sign_in_and_tokens_the_gateway_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let store = Store::open(&db).unwrap();
        for id in [11, 22, 33] {
            store.add_device(id, &format!("d{id}"), &[1; 32], 0).unwrap();
        }
        let secret = [7u8; 32];
        let tokens = Tokens::new(&secret, Duration::from_secs(60));
        let users = ensure(&store, &db, &[11, 22, 33], &tokens).unwrap();
        let names: Vec<_> =
            users.iter().map(|u| (u.name.as_str(), u.role, u.sees.as_str())).collect();
        assert_eq!(
            names,
            [
                ("dispatcher", Role::Admin, "every device"),
                ("fleet-north", Role::Viewer, "2 of 3 devices")
            ]
        );
        let auth = Authenticator::new(&gateway_auth(&secret)).unwrap();
        for user in &users {
            assert!(store.check_password(&user.name, &user.password).unwrap().is_some());
            let grant = auth.authenticate(user.token.as_bytes(), SystemTime::now()).unwrap();
            assert_eq!(grant.subject(), Some(user.name.as_str()));
        }
        // A second start reads the same passwords.
        let again = ensure(&store, &db, &[11, 22, 33], &tokens).unwrap();
        assert_eq!(again[1].password, users[1].password);
        // A fresh database next to the same files gets the same users, passwords and owners.
        drop(store);
        std::fs::remove_file(&db).unwrap();
        let store = Store::open(&db).unwrap();
        for id in [11, 22, 33] {
            store.add_device(id, &format!("d{id}"), &[1; 32], 0).unwrap();
        }
        let fresh = ensure(&store, &db, &[11, 22, 33], &tokens).unwrap();
        assert_eq!(fresh[0].password, users[0].password);
        assert!(store.check_password("fleet-north", &users[1].password).unwrap().is_some());
        assert_eq!(fresh[1].sees, "2 of 3 devices");
        // Losing the file while the users exist is said, not papered over.
        std::fs::remove_file(passwords_path(&db)).unwrap();
        let err = ensure(&store, &db, &[11, 22, 33], &tokens).unwrap_err();
        assert!(err.to_string().contains("tracker user passwd"), "{err}");
    }
}
