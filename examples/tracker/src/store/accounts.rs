//! Accounts in the tracker's database (schema version 2): users with a password and a role,
//! each device's owner, devices shared with other users, and the descriptions owners give their
//! trips.
//!
//! - **Passwords** are hashed with Argon2id (RFC 9106) at the `argon2` crate's defaults (19 MiB,
//!   two passes, one lane: OWASP's recommendation), a random 16-byte salt each, and stored as
//!   PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$…`), so the parameters can be raised later
//!   without invalidating stored hashes. Hashing and checking run outside the store's locks.
//! - [`Store::check_password`] takes as long for an unknown name as for a wrong password (it
//!   checks a dummy hash), so a caller cannot tell which names exist by timing.
//! - **Roles**: an `admin` sees every device and manages users; a `viewer` sees the devices it
//!   owns and those shared with it ([`Store::visible_devices`]).
//! - Names are 1 to 64 characters, unique without regard to ASCII case; passwords 8 to 1,024
//!   bytes.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, from_sql, time_to_sql, to_sql};

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sees every device, manages users.
    Admin,
    /// Sees the devices it owns and those shared with it.
    Viewer,
}

impl Role {
    /// The role's name, as stored and as in tokens: `admin`, `viewer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    fn parse(name: &str) -> Option<Role> {
        match name {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user, as stored (without the password hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: u64,
    pub name: String,
    pub role: Role,
    pub created_ms: u64,
}

/// Which devices a user sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visible {
    /// Every device (an admin).
    All,
    /// These, by id: owned or shared.
    Devices(Vec<u64>),
}

/// The longest user name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// The shortest and longest password, in bytes.
pub const MIN_PASSWORD_BYTES: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

fn check_name(name: &str) -> Result<(), StoreError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.trim() != name {
        return Err(StoreError::BadAccount(format!(
            "a user name has 1 to {MAX_NAME_CHARS} characters and no blank at either end: {name:?}"
        )));
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, StoreError> {
    if !(MIN_PASSWORD_BYTES..=MAX_PASSWORD_BYTES).contains(&password.len()) {
        return Err(StoreError::BadAccount(format!(
            "a password has {MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} bytes (this one has {})",
            password.len()
        )));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| StoreError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::Hash(e.to_string()))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| StoreError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A hash no password matches in practice, checked for unknown names.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no user has this password").unwrap_or_default())
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    let role: String = row.get(2)?;
    Ok(UserRecord {
        id: from_sql(row.get(0)?),
        name: row.get(1)?,
        // The CHECK constraint allows only the two.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created_ms: from_sql(row.get::<_, i64>(3)?.max(0)),
    })
}

impl Store {
    /// Adds a user; returns its id.
    ///
    /// # Errors
    /// [`StoreError::BadAccount`] for a name or password out of bounds,
    /// [`StoreError::DuplicateUser`] if the name is taken (in any ASCII case).
    pub fn add_user(
        &self,
        name: &str,
        password: &str,
        role: Role,
        created_ms: u64,
    ) -> Result<u64, StoreError> {
        check_name(name)?;
        let hash = hash_password(password)?;
        let conn = self.writer();
        let result = conn.execute(
            "INSERT INTO users (name, password, role, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![name, hash, role.as_str(), time_to_sql(created_ms)],
        );
        match result {
            Ok(_) => Ok(from_sql(conn.last_insert_rowid())),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::DuplicateUser(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every user, by id.
    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT id, name, role, created_ms FROM users ORDER BY id")?;
        Ok(stmt.query_map([], user_from_row)?.collect::<Result<_, _>>()?)
    }

    /// One user.
    pub fn user(&self, id: u64) -> Result<Option<UserRecord>, StoreError> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT id, name, role, created_ms FROM users WHERE id = ?1")?;
        Ok(stmt.query_row([to_sql(id)], user_from_row).optional()?)
    }

    /// The user named `name` (in any ASCII case).
    pub fn user_named(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT id, name, role, created_ms FROM users WHERE name = ?1")?;
        Ok(stmt.query_row([name], user_from_row).optional()?)
    }

    /// The user named `name` (in any ASCII case) if `password` is theirs; `None` for an unknown
    /// name or a wrong password, which take the same time.
    pub fn check_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let found = {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, role, created_ms, password FROM users WHERE name = ?1",
            )?;
            stmt.query_row([name], |row| Ok((user_from_row(row)?, row.get::<_, String>(4)?)))
                .optional()?
        };
        Ok(match found {
            Some((user, hash)) => verify_password(password, &hash).then_some(user),
            None => {
                verify_password(password, dummy_hash());
                None
            }
        })
    }

    /// Replaces a user's password.
    ///
    /// # Errors
    /// [`StoreError::BadAccount`] for a password out of bounds, [`StoreError::UnknownUser`].
    pub fn set_password(&self, id: u64, password: &str) -> Result<(), StoreError> {
        let hash = hash_password(password)?;
        let changed = self
            .writer()
            .execute("UPDATE users SET password = ?2 WHERE id = ?1", params![to_sql(id), hash])?;
        if changed == 0 { Err(StoreError::UnknownUser(id)) } else { Ok(()) }
    }

    /// Changes a user's role.
    ///
    /// # Errors
    /// [`StoreError::UnknownUser`].
    pub fn set_role(&self, id: u64, role: Role) -> Result<(), StoreError> {
        let changed = self.writer().execute(
            "UPDATE users SET role = ?2 WHERE id = ?1",
            params![to_sql(id), role.as_str()],
        )?;
        if changed == 0 { Err(StoreError::UnknownUser(id)) } else { Ok(()) }
    }

    /// Deletes a user: the devices it owned have no owner after, its shares go.
    ///
    /// # Errors
    /// [`StoreError::UnknownUser`].
    pub fn delete_user(&self, id: u64) -> Result<(), StoreError> {
        let changed = self.writer().execute("DELETE FROM users WHERE id = ?1", [to_sql(id)])?;
        if changed == 0 { Err(StoreError::UnknownUser(id)) } else { Ok(()) }
    }

    /// Sets (or with `None` clears) a device's owner.
    ///
    /// # Errors
    /// [`StoreError::UnknownDevice`], or [`StoreError::UnknownUser`] for an owner that does not
    /// exist.
    pub fn set_owner(&self, device_id: u64, owner: Option<u64>) -> Result<(), StoreError> {
        let conn = self.writer();
        if let Some(user) = owner
            && !user_exists(&conn, user)?
        {
            return Err(StoreError::UnknownUser(user));
        }
        let changed = conn.execute(
            "UPDATE devices SET owner = ?2 WHERE id = ?1",
            params![to_sql(device_id), owner.map(to_sql)],
        )?;
        if changed == 0 { Err(StoreError::UnknownDevice(device_id)) } else { Ok(()) }
    }

    /// A device's owner, if it has one.
    ///
    /// # Errors
    /// [`StoreError::UnknownDevice`].
    pub fn owner(&self, device_id: u64) -> Result<Option<u64>, StoreError> {
        let conn = self.reader();
        let owner: Option<Option<i64>> = conn
            .query_row("SELECT owner FROM devices WHERE id = ?1", [to_sql(device_id)], |r| r.get(0))
            .optional()?;
        owner.map(|o| o.map(from_sql)).ok_or(StoreError::UnknownDevice(device_id))
    }

    /// Shares a device with a user (sharing twice changes nothing).
    ///
    /// # Errors
    /// [`StoreError::UnknownDevice`] or [`StoreError::UnknownUser`].
    pub fn share(&self, device_id: u64, user_id: u64) -> Result<(), StoreError> {
        let conn = self.writer();
        if !user_exists(&conn, user_id)? {
            return Err(StoreError::UnknownUser(user_id));
        }
        let device: Option<i64> = conn
            .query_row("SELECT id FROM devices WHERE id = ?1", [to_sql(device_id)], |r| r.get(0))
            .optional()?;
        if device.is_none() {
            return Err(StoreError::UnknownDevice(device_id));
        }
        conn.execute(
            "INSERT OR IGNORE INTO shares (device_id, user_id) VALUES (?1, ?2)",
            params![to_sql(device_id), to_sql(user_id)],
        )?;
        Ok(())
    }

    /// Stops sharing a device with a user; returns whether it was shared.
    pub fn unshare(&self, device_id: u64, user_id: u64) -> Result<bool, StoreError> {
        let removed = self.writer().execute(
            "DELETE FROM shares WHERE device_id = ?1 AND user_id = ?2",
            params![to_sql(device_id), to_sql(user_id)],
        )?;
        Ok(removed > 0)
    }

    /// The users a device is shared with, by id.
    pub fn shared_with(&self, device_id: u64) -> Result<Vec<u64>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached("SELECT user_id FROM shares WHERE device_id = ?1 ORDER BY user_id")?;
        let ids = stmt.query_map([to_sql(device_id)], |r| r.get::<_, i64>(0))?;
        Ok(ids.map(|id| id.map(from_sql)).collect::<Result<_, _>>()?)
    }

    /// The devices a user sees: every device for an admin; for a viewer those it owns and those
    /// shared with it, by id.
    ///
    /// # Errors
    /// [`StoreError::UnknownUser`].
    pub fn visible_devices(&self, user_id: u64) -> Result<Visible, StoreError> {
        let user = self.user(user_id)?.ok_or(StoreError::UnknownUser(user_id))?;
        if user.role == Role::Admin {
            return Ok(Visible::All);
        }
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM devices WHERE owner = ?1
             UNION SELECT device_id FROM shares WHERE user_id = ?1",
        )?;
        let ids = stmt.query_map([to_sql(user_id)], |r| r.get::<_, i64>(0))?;
        let mut ids: Vec<u64> = ids.map(|id| id.map(from_sql)).collect::<Result<_, _>>()?;
        ids.sort_unstable();
        Ok(Visible::Devices(ids))
    }

    /// Sets the description of the trip of `device_id` that starts at `start_ms` (a trip is
    /// named by its device and its first fix's time); an empty text removes it.
    ///
    /// # Errors
    /// [`StoreError::BadAccount`] for a text over 1,000 characters,
    /// [`StoreError::UnknownDevice`].
    pub fn set_trip_description(
        &self,
        device_id: u64,
        start_ms: u64,
        text: &str,
        updated_ms: u64,
    ) -> Result<(), StoreError> {
        if text.chars().count() > 1000 {
            return Err(StoreError::BadAccount(
                "a trip description has at most 1,000 characters".into(),
            ));
        }
        let conn = self.writer();
        let device: Option<i64> = conn
            .query_row("SELECT id FROM devices WHERE id = ?1", [to_sql(device_id)], |r| r.get(0))
            .optional()?;
        if device.is_none() {
            return Err(StoreError::UnknownDevice(device_id));
        }
        if text.is_empty() {
            conn.execute(
                "DELETE FROM trip_descriptions WHERE device_id = ?1 AND start_ms = ?2",
                params![to_sql(device_id), time_to_sql(start_ms)],
            )?;
        } else {
            conn.execute(
                "INSERT INTO trip_descriptions (device_id, start_ms, description, updated_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (device_id, start_ms)
                 DO UPDATE SET description = excluded.description, updated_ms = excluded.updated_ms",
                params![to_sql(device_id), time_to_sql(start_ms), text, time_to_sql(updated_ms)],
            )?;
        }
        Ok(())
    }

    /// The descriptions of `device_id`'s trips starting in `from_ms ..= to_ms`, as
    /// (start time, text), oldest first.
    pub fn trip_descriptions(
        &self,
        device_id: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT start_ms, description FROM trip_descriptions
             WHERE device_id = ?1 AND start_ms BETWEEN ?2 AND ?3 ORDER BY start_ms",
        )?;
        let rows = stmt.query_map(
            params![to_sql(device_id), time_to_sql(from_ms), time_to_sql(to_ms)],
            |r| Ok((from_sql(r.get::<_, i64>(0)?.max(0)), r.get::<_, String>(1)?)),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn user_exists(conn: &rusqlite::Connection, id: u64) -> Result<bool, StoreError> {
    let found: Option<i64> = conn
        .query_row("SELECT id FROM users WHERE id = ?1", [to_sql(id)], |r| r.get(0))
        .optional()?;
    Ok(found.is_some())
}

#[cfg(test)]
mod tests;
