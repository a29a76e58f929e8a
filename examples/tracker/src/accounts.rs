//! The `TrackerAccounts` service: signing in for a gateway token, users, devices' owners and
//! shares, trips' descriptions (`docs/tracker.md`, "Accounts"), over the accounts in the store
//! (`crate::store::accounts`).
//!
//! Who calls comes from the token's forwarded [`tokens::UID_CLAIM`]; what the caller may do,
//! from its role as the database holds it at the time of the call, so a demoted or deleted user
//! loses its rights at once, not when its token expires. A device the caller does not see is
//! reported like one that does not exist.
//!
//! Password checks are costly on purpose (Argon2id, tens of milliseconds): at most
//! [`AccountsService::MAX_CONCURRENT_CHECKS`] run at once, so a flood of logins queues instead of
//! taking every core. After [`FREE_FAILURES`] failed sign-ins in a row for a name (known or not),
//! that name waits a second before the next try, then twice as long after each further failure,
//! up to [`MAX_WAIT`]; a successful sign-in clears it. Guessing a password then costs days.

pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gateway_core::{CallContext, Message, Status};
use tokio::sync::Semaphore;

use crate::enrol::enrol_sharded;
use crate::ingest::now_ms;
use crate::store::accounts::{Role, UserRecord, Visible};
use crate::store::{Store, StoreError};
use crate::{
    AddDeviceT, AddUserT, DeleteUserT, DescribeTripT, DoneT, EnrolmentT, ListSharesT, ListUsersT,
    LoginT, RefreshT, SessionT, ShareT, SharesT, TrackerAccounts, TrackerAccountsError, UnshareT,
    UpdateUserT, UserListT, UserT,
};
use tokens::Tokens;

/// The longest device name, in characters.
pub const MAX_DEVICE_NAME_CHARS: usize = 64;
/// Failed sign-ins in a row for one name before it has to wait.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between two sign-ins for one name.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Names whose failures are remembered at most (past it, those not waiting are forgotten).
const MAX_TRACKED_NAMES: usize = 100_000;

/// Failed sign-ins by name (lowercased), for the wait before the next try.
#[derive(Debug, Default)]
struct Failures {
    by_name: Mutex<HashMap<String, Failed>>,
}

#[derive(Clone, Copy, Debug)]
struct Failed {
    count: u32,
    /// No try before this.
    until: Instant,
}

impl Failures {
    /// How long `name` must still wait at `now`, if it must.
    fn wait(&self, name: &str, now: Instant) -> Option<Duration> {
        let by_name = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        let left = by_name.get(name)?.until.checked_duration_since(now)?;
        (!left.is_zero()).then_some(left)
    }

    /// Counts a failure of `name` at `now`.
    fn failed(&self, name: &str, now: Instant) {
        let mut by_name = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        if by_name.len() >= MAX_TRACKED_NAMES && !by_name.contains_key(name) {
            by_name.retain(|_, f| f.until > now);
        }
        let failed = by_name.entry(name.to_owned()).or_insert(Failed { count: 0, until: now });
        failed.count += 1;
        if failed.count >= FREE_FAILURES {
            let doublings = (failed.count - FREE_FAILURES).min(16);
            failed.until = now + Duration::from_secs(1 << doublings).min(MAX_WAIT);
        }
    }

    fn succeeded(&self, name: &str) {
        self.by_name.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
    }
}

/// The service. See the module docs.
#[derive(Debug)]
pub struct AccountsService {
    store: Arc<Store>,
    tokens: Tokens,
    /// The ingest's `host:port` of each shard, in shard order, for new devices' enrolments.
    ingests: Arc<[String]>,
    checks: Semaphore,
    failures: Failures,
}

impl AccountsService {
    /// At most this many password checks at once.
    pub const MAX_CONCURRENT_CHECKS: usize = 2;

    /// A service over `store`, issuing tokens with `tokens`, enrolling new devices to report to
    /// `ingests` (`host:port`; with ingest shards, one per shard in shard order: a device goes to
    /// `ingests[id % len]`).
    ///
    /// # Panics
    /// If `ingests` is empty.
    pub fn new(store: Arc<Store>, tokens: Tokens, ingests: Vec<String>) -> AccountsService {
        assert!(!ingests.is_empty(), "new devices need an ingest address");
        AccountsService {
            store,
            tokens,
            ingests: ingests.into(),
            checks: Semaphore::new(Self::MAX_CONCURRENT_CHECKS),
            failures: Failures::default(),
        }
    }

    /// Runs store work off the async threads, mapping the store's errors to statuses.
    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, Status> {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || work(&store)).await {
            Ok(result) => result.map_err(store_status),
            Err(e) => Err(Status::internal(format!("the accounts' query failed: {e}"))),
        }
    }

    /// The calling user, as the database holds it now.
    async fn caller(&self, ctx: &CallContext) -> Result<UserRecord, Status> {
        let not_signed_in = || {
            TrackerAccountsError::BadCredentials
                .status("sign in first: this call needs a token from `login`")
        };
        let identity = ctx.identity().ok_or_else(not_signed_in)?;
        let uid = identity.claims.get(tokens::UID_CLAIM).ok_or_else(not_signed_in)?;
        let uid: u64 = uid.trim().trim_matches('"').parse().map_err(|_| {
            TrackerAccountsError::BadCredentials
                .status(format!("the token's uid {uid:?} is no user id"))
        })?;
        match self.blocking(move |s| s.user(uid)).await? {
            Some(user) => Ok(user),
            None => Err(TrackerAccountsError::BadCredentials
                .status(format!("the user {} no longer exists", identity.subject))),
        }
    }

    /// The calling user, if an admin.
    async fn admin(&self, ctx: &CallContext) -> Result<UserRecord, Status> {
        let caller = self.caller(ctx).await?;
        if caller.role != Role::Admin {
            return Err(
                TrackerAccountsError::NotAllowed.status(format!("{} is not an admin", caller.name))
            );
        }
        Ok(caller)
    }

    /// A session for `user`: a token with what it sees now.
    async fn session(&self, user: UserRecord) -> Result<SessionT, Status> {
        let id = user.id;
        let visible = self.blocking(move |s| s.visible_devices(id)).await?;
        let (token, expires_ms) = self
            .tokens
            .issue(&user, &visible, SystemTime::now())
            .map_err(|e| TrackerAccountsError::NotAllowed.status(e.to_string()))?;
        Ok(SessionT { token: Some(token), expires_ms, user: Some(Box::new(user_t(user))) })
    }

    /// Checks that `caller` may manage `device_id` (its owner, or an admin): a device it does not
    /// see is unknown, one it sees without owning it is not allowed.
    async fn manage_device(&self, caller: &UserRecord, device_id: u64) -> Result<(), Status> {
        let (uid, admin) = (caller.id, caller.role == Role::Admin);
        let (visible, owner) = self
            .blocking(move |s| {
                let visible = match s.visible_devices(uid)? {
                    Visible::All => s.device(device_id)?.is_some(),
                    Visible::Devices(ids) => ids.binary_search(&device_id).is_ok(),
                };
                let owner = if visible { s.owner(device_id)? } else { None };
                Ok((visible, owner))
            })
            .await?;
        if !visible {
            return Err(unknown_device(device_id));
        }
        if !admin && owner != Some(uid) {
            return Err(TrackerAccountsError::NotAllowed
                .status(format!("device {device_id} is not {}'s", caller.name)));
        }
        Ok(())
    }

    /// Shares `device` with the user named `user_name`, or stops sharing it, if the caller
    /// manages the device.
    async fn change_share(
        &self,
        ctx: &CallContext,
        device: u64,
        user_name: String,
        share: bool,
    ) -> Result<(), Status> {
        let caller = self.caller(ctx).await?;
        self.manage_device(&caller, device).await?;
        let user = self.user_named(user_name).await?;
        let uid = user.id;
        if share {
            self.room_for_one_more(&user).await?;
            self.blocking(move |s| s.share(device, uid)).await?;
            tracing::info!(by = %caller.name, device, with = %user.name, "device shared");
        } else {
            self.blocking(move |s| s.unshare(device, uid).map(drop)).await?;
            tracing::info!(by = %caller.name, device, with = %user.name, "device unshared");
        }
        Ok(())
    }

    /// Fails unless `user` may see one more device: a viewer's token lists each device it
    /// sees, at most [`tokens::MAX_LISTED_DEVICES`]; one more would keep it from signing in.
    async fn room_for_one_more(&self, user: &UserRecord) -> Result<(), Status> {
        if user.role == Role::Admin {
            return Ok(());
        }
        let uid = user.id;
        let seen = match self.blocking(move |s| s.visible_devices(uid)).await? {
            Visible::All => return Ok(()),
            Visible::Devices(ids) => ids.len(),
        };
        if seen >= tokens::MAX_LISTED_DEVICES {
            return Err(TrackerAccountsError::NotAllowed.status(format!(
                "{} sees {seen} devices, the most a viewer's token lists ({}); an admin sees \
                 every device without listing them",
                user.name,
                tokens::MAX_LISTED_DEVICES
            )));
        }
        Ok(())
    }

    /// The user named `name` (any letter case).
    async fn user_named(&self, name: String) -> Result<UserRecord, Status> {
        let wanted = name.clone();
        self.blocking(move |s| s.user_named(&wanted)).await?.ok_or_else(|| {
            TrackerAccountsError::UnknownUser.status(format!("no user named {name:?}"))
        })
    }
}

fn unknown_device(id: u64) -> Status {
    TrackerAccountsError::UnknownDevice.status(format!("no device {id}"))
}

/// The store's errors as the service's.
fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::DuplicateUser(name) => {
            TrackerAccountsError::NameTaken.status(format!("a user named {name:?} exists already"))
        }
        StoreError::UnknownUser(id) => {
            TrackerAccountsError::UnknownUser.status(format!("no user {id}"))
        }
        StoreError::UnknownDevice(id) => unknown_device(id),
        StoreError::BadAccount(why) => TrackerAccountsError::BadArgument.status(why),
        e => {
            tracing::error!(cause = %e, "accounts query failed");
            Status::internal(format!("the tracker's database failed: {e}"))
        }
    }
}

fn user_t(user: UserRecord) -> UserT {
    UserT {
        id: user.id,
        name: Some(user.name),
        role: role_t(user.role),
        created_ms: user.created_ms,
    }
}

fn role_t(role: Role) -> crate::RoleT {
    match role {
        Role::Admin => crate::RoleT::Admin,
        Role::Viewer => crate::RoleT::Viewer,
    }
}

fn role_of(role: crate::RoleT) -> Result<Role, Status> {
    match role {
        crate::RoleT::Admin => Ok(Role::Admin),
        crate::RoleT::Viewer => Ok(Role::Viewer),
        other => Err(TrackerAccountsError::BadArgument.status(format!("no role {other:?}"))),
    }
}

impl TrackerAccounts for AccountsService {
    async fn login(
        &self,
        _ctx: CallContext,
        request: Message<LoginT>,
    ) -> Result<Message<SessionT>, Status> {
        let r = request.unpack();
        let (name, password) = (r.name.unwrap_or_default(), r.password.unwrap_or_default());
        let key = name.to_ascii_lowercase();
        if let Some(left) = self.failures.wait(&key, Instant::now()) {
            return Err(TrackerAccountsError::TooManyAttempts.status(format!(
                "too many failed sign-ins for this name: try again in {} s",
                left.as_secs() + 1
            )));
        }
        let checked = {
            let _permit =
                self.checks.acquire().await.map_err(|_| Status::unavailable("stopping"))?;
            let who = name.clone();
            self.blocking(move |s| s.check_password(&who, &password)).await?
        };
        let Some(user) = checked else {
            self.failures.failed(&key, Instant::now());
            tracing::info!(name = %name.escape_debug(), "a login failed");
            return Err(
                TrackerAccountsError::BadCredentials.status("no user with this name and password")
            );
        };
        self.failures.succeeded(&key);
        tracing::info!(user = %user.name, role = %user.role, "signed in");
        Ok(self.session(user).await?.into())
    }

    async fn refresh(
        &self,
        ctx: CallContext,
        _request: Message<RefreshT>,
    ) -> Result<Message<SessionT>, Status> {
        let caller = self.caller(&ctx).await?;
        Ok(self.session(caller).await?.into())
    }

    async fn users(
        &self,
        ctx: CallContext,
        _request: Message<ListUsersT>,
    ) -> Result<Message<UserListT>, Status> {
        self.admin(&ctx).await?;
        let users = self.blocking(Store::users).await?;
        Ok(UserListT { users: Some(users.into_iter().map(user_t).collect()) }.into())
    }

    async fn add_user(
        &self,
        ctx: CallContext,
        request: Message<AddUserT>,
    ) -> Result<Message<UserT>, Status> {
        let admin = self.admin(&ctx).await?;
        let r = request.unpack();
        let role = role_of(r.role)?;
        let (name, password) = (r.name.unwrap_or_default(), r.password.unwrap_or_default());
        let user = self
            .blocking(move |s| {
                let id = s.add_user(&name, &password, role, now_ms())?;
                s.user(id)?.ok_or(StoreError::UnknownUser(id))
            })
            .await?;
        tracing::info!(by = %admin.name, user = %user.name, role = %user.role, "user added");
        Ok(user_t(user).into())
    }

    async fn update_user(
        &self,
        ctx: CallContext,
        request: Message<UpdateUserT>,
    ) -> Result<Message<UserT>, Status> {
        let caller = self.caller(&ctx).await?;
        let r = request.unpack();
        let is_admin = caller.role == Role::Admin;
        if r.id != caller.id && !is_admin {
            return Err(TrackerAccountsError::NotAllowed
                .status(format!("{} may change only its own password", caller.name)));
        }
        let role = if r.set_role {
            if !is_admin {
                return Err(TrackerAccountsError::NotAllowed
                    .status(format!("{} is not an admin: it cannot change roles", caller.name)));
            }
            let role = role_of(r.role)?;
            if r.id == caller.id && role != Role::Admin {
                return Err(TrackerAccountsError::NotAllowed
                    .status("an admin cannot demote itself: ask another admin"));
            }
            Some(role)
        } else {
            None
        };
        let password = r.password.filter(|p| !p.is_empty());
        let id = r.id;
        let user = self
            .blocking(move |s| {
                if let Some(password) = &password {
                    s.set_password(id, password)?;
                }
                if let Some(role) = role {
                    s.set_role(id, role)?;
                }
                s.user(id)?.ok_or(StoreError::UnknownUser(id))
            })
            .await?;
        tracing::info!(by = %caller.name, user = %user.name, role = %user.role, "user changed");
        Ok(user_t(user).into())
    }

    async fn delete_user(
        &self,
        ctx: CallContext,
        request: Message<DeleteUserT>,
    ) -> Result<Message<DoneT>, Status> {
        let admin = self.admin(&ctx).await?;
        let id = request.get().id();
        if id == admin.id {
            return Err(TrackerAccountsError::NotAllowed
                .status("an admin cannot delete itself: ask another admin"));
        }
        self.blocking(move |s| s.delete_user(id)).await?;
        tracing::info!(by = %admin.name, user = id, "user deleted");
        Ok(DoneT {}.into())
    }

    async fn add_device(
        &self,
        ctx: CallContext,
        request: Message<AddDeviceT>,
    ) -> Result<Message<EnrolmentT>, Status> {
        let caller = self.caller(&ctx).await?;
        self.room_for_one_more(&caller).await?;
        let name = request.unpack().name.unwrap_or_default();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_DEVICE_NAME_CHARS || name.trim() != name {
            return Err(TrackerAccountsError::BadArgument.status(format!(
                "a device name has 1 to {MAX_DEVICE_NAME_CHARS} characters and no blank at \
                 either end: {name:?}"
            )));
        }
        let (ingests, owner) = (Arc::clone(&self.ingests), caller.id);
        let enrolment = self
            .blocking(move |s| {
                let enrolment = enrol_sharded(s, &name, &ingests).map_err(|e| match e {
                    crate::enrol::EnrolError::Store(e) => e,
                    other => StoreError::BadAccount(other.to_string()),
                })?;
                s.set_owner(enrolment.id, Some(owner))?;
                Ok(enrolment)
            })
            .await?;
        let qr_svg = enrolment.qr_svg().map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(by = %caller.name, device = enrolment.id, "device added");
        Ok(EnrolmentT {
            device_id: enrolment.id,
            uri: Some(enrolment.uri()),
            name: Some(enrolment.name),
            qr_svg: Some(qr_svg),
        }
        .into())
    }

    async fn share(
        &self,
        ctx: CallContext,
        request: Message<ShareT>,
    ) -> Result<Message<DoneT>, Status> {
        let r = request.unpack();
        self.change_share(&ctx, r.device_id, r.user_name.unwrap_or_default(), true).await?;
        Ok(DoneT {}.into())
    }

    async fn unshare(
        &self,
        ctx: CallContext,
        request: Message<UnshareT>,
    ) -> Result<Message<DoneT>, Status> {
        let r = request.unpack();
        self.change_share(&ctx, r.device_id, r.user_name.unwrap_or_default(), false).await?;
        Ok(DoneT {}.into())
    }

    async fn shares(
        &self,
        ctx: CallContext,
        request: Message<ListSharesT>,
    ) -> Result<Message<SharesT>, Status> {
        let caller = self.caller(&ctx).await?;
        let device = request.get().device_id();
        self.manage_device(&caller, device).await?;
        let (owner, users) = self
            .blocking(move |s| {
                let name = |id| Ok::<_, StoreError>(s.user(id)?.map(|u| u.name));
                let owner = match s.owner(device)? {
                    Some(id) => name(id)?,
                    None => None,
                };
                let mut users = Vec::new();
                for id in s.shared_with(device)? {
                    users.extend(name(id)?);
                }
                users.sort();
                Ok((owner, users))
            })
            .await?;
        Ok(SharesT { device_id: device, owner, users: Some(users) }.into())
    }

    async fn describe_trip(
        &self,
        ctx: CallContext,
        request: Message<DescribeTripT>,
    ) -> Result<Message<DoneT>, Status> {
        let caller = self.caller(&ctx).await?;
        let r = request.unpack();
        self.manage_device(&caller, r.device_id).await?;
        let text = r.description.unwrap_or_default();
        let (device, start) = (r.device_id, r.start_ms);
        self.blocking(move |s| s.set_trip_description(device, start, text.trim(), now_ms()))
            .await?;
        Ok(DoneT {}.into())
    }
}

#[cfg(test)]
mod tests;
