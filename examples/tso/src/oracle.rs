//! One oracle instance: follows the fencing state, takes the lead when the leader has been
//! silent for a lease, and while it leads hands out timestamps (docs/tso.md).
//!
//! While leading, an instance
//! - opens a new epoch every `epoch_every`: the wall clock in nanoseconds, or one more than the
//!   last epoch when the clock is behind it (it never goes back), never above the fenced upper
//!   bound;
//! - raises the upper bound to `ahead` past its clock, and so renews its lease, every
//!   `renew_every`, by compare-and-set;
//! - serves a value only if, after choosing it, its lease still holds by its monotonic clock:
//!   the lease runs from just before the compare-and-set that last succeeded, for `lease` less
//!   `margin`.
//!
//! A follower takes the lead only after it has seen the same revision of the state for a whole
//! `lease` by its own monotonic clock, so the old leader's lease has ended first, and its first
//! epoch is above the old term's upper bound.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Timestamp;
use crate::fence::{Fence, Held};

/// The timing of leadership, epochs and renewals.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a leader's silence makes it presumed dead.
    pub lease: Duration,
    /// Taken off the lease on the leader's side: covers the rates of two machines' monotonic
    /// clocks differing (2 × 1,000 ppm of a 3 s lease is 6 ms).
    pub margin: Duration,
    /// How often a leader renews (raises the upper bound).
    pub renew_every: Duration,
    /// How far past its clock a leader sets the upper bound.
    pub ahead: Duration,
    /// How often a leader opens a new epoch.
    pub epoch_every: Duration,
    /// How often a follower reads the state.
    pub poll_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease: Duration::from_secs(3),
            margin: Duration::from_millis(100),
            renew_every: Duration::from_secs(1),
            ahead: Duration::from_secs(3),
            epoch_every: Duration::from_millis(100),
            poll_every: Duration::from_millis(100),
        }
    }
}

/// The wall clock epochs are read from, in Unix nanoseconds: the system's, or one a test steps.
pub trait WallClock: Send + Sync + 'static {
    fn now_ns(&self) -> u64;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ns(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// The system's wall clock shifted by the signed nanoseconds written in a file (0 while the
/// file is missing or unreadable): how fault tests step an instance's clock.
#[derive(Clone, Debug)]
pub struct ShiftedByFile(pub std::path::PathBuf);

impl WallClock for ShiftedByFile {
    fn now_ns(&self) -> u64 {
        let shift = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .unwrap_or(0);
        SystemClock.now_ns().saturating_add_signed(shift)
    }
}

/// Why no timestamps were handed out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("this instance does not lead")]
    NotLeader,
    #[error("this instance's lease has run out")]
    LeaseExpired,
    #[error("asked for {0} timestamps: between 1 and {max}", max = MAX_BATCH)]
    BadCount(u64),
}

/// The most timestamps one call may take.
pub const MAX_BATCH: u64 = 1 << 20;

#[derive(Debug)]
enum Role {
    Follower,
    Leader(Leading),
}

#[derive(Debug)]
struct Leading {
    held: Held,
    /// Serve nothing from this instant on (monotonic).
    lease_until: Instant,
    epoch: u64,
    next_index: u64,
}

/// The buckets of [`Counters::batch_sizes`]: calls that took up to 1, 2, 4, … [`MAX_BATCH`]
/// timestamps.
pub const BATCH_BUCKETS: usize = MAX_BATCH.trailing_zeros() as usize + 1;

/// What an instance has done and seen, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Timestamps handed out.
    pub served: u64,
    /// Calls that got timestamps.
    pub calls: u64,
    /// Calls that got timestamps, by size: `batch_sizes[i]` counts the calls that took more
    /// than 2^(i-1) and at most 2^i.
    pub batch_sizes: [u64; BATCH_BUCKETS],
    /// Calls refused because this instance does not lead.
    pub refused_not_leader: u64,
    /// Calls refused because this instance's lease had run out.
    pub refused_lease_expired: u64,
    /// Terms this instance won.
    pub terms_won: u64,
    /// Times this instance found another had claimed over it.
    pub steps_down: u64,
    /// Changes of leader this instance saw (a new term in the fencing state, its own included).
    pub leader_changes: u64,
    /// The time this instance saw no live leader: its view of the state unchanged for a whole
    /// lease (the leader presumed dead) until a new term appeared or it claimed.
    pub leaderless: Duration,
}

/// Who leads, as far as one instance can tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// The leader of the last term seen (`None`: nobody has led, or nothing read yet).
    pub leader: Option<Arc<str>>,
    /// That term.
    pub term: u64,
    /// Whether that leader is live: this instance leads, or it saw the state change (a renewal
    /// or a claim) less than a lease ago.
    pub live: bool,
}

/// An oracle instance; cheap to clone, shared by the serving side and its [`Oracle::run`] loop.
#[derive(Clone, Debug)]
pub struct Oracle {
    id: Arc<str>,
    state: Arc<Mutex<(Role, Counters)>>,
    view: Arc<Mutex<View>>,
    /// Whether this instance leads, for those that serve only then.
    leading: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Oracle {
    pub fn new(id: &str) -> Oracle {
        Oracle {
            id: id.into(),
            state: Arc::new(Mutex::new((Role::Follower, Counters::default()))),
            view: Arc::new(Mutex::new(View::default())),
            leading: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Follows whether this instance leads.
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<bool> {
        self.leading.subscribe()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this instance leads (its lease may still have run out).
    pub fn leads(&self) -> bool {
        matches!(self.state.lock().expect("oracle lock").0, Role::Leader(_))
    }

    pub fn counters(&self) -> Counters {
        self.state.lock().expect("oracle lock").1
    }

    /// Who leads, as far as this instance can tell.
    pub fn view(&self) -> View {
        self.view.lock().expect("oracle view lock").clone()
    }

    /// `n` consecutive timestamps of one epoch: the first is returned, the others follow it in
    /// index. The value is chosen first and the lease checked after, so a value leaves only
    /// while the lease holds.
    ///
    /// # Errors
    ///
    /// When this instance does not lead or its lease has run out, or `n` is 0 or above
    /// [`MAX_BATCH`].
    pub fn timestamps(&self, n: u64) -> Result<Timestamp, Refused> {
        if n == 0 || n > MAX_BATCH {
            return Err(Refused::BadCount(n));
        }
        let mut state = self.state.lock().expect("oracle lock");
        let (role, counters) = &mut *state;
        let Role::Leader(leading) = role else {
            counters.refused_not_leader += 1;
            return Err(Refused::NotLeader);
        };
        if leading.next_index.checked_add(n).is_none() {
            // An epoch's indexes are used up (2^64 of them): the next epoch, if the fence
            // allows one.
            if leading.epoch >= leading.held.state.upper {
                counters.refused_lease_expired += 1;
                return Err(Refused::LeaseExpired);
            }
            leading.epoch += 1;
            leading.next_index = 0;
        }
        let first = Timestamp { epoch: leading.epoch, index: leading.next_index };
        leading.next_index += n;
        if Instant::now() >= leading.lease_until {
            counters.refused_lease_expired += 1;
            return Err(Refused::LeaseExpired);
        }
        counters.served += n;
        counters.calls += 1;
        // n ≤ MAX_BATCH = 2^20: the bucket is ⌈log2 n⌉.
        counters.batch_sizes[(64 - (n - 1).leading_zeros()) as usize] += 1;
        Ok(first)
    }

    /// Follows and, when it may, takes and keeps the lead on `fence`, until `stop` resolves.
    /// Errors talking to the bucket are retried: a leader keeps serving until its lease runs
    /// out, then stops until a renewal succeeds.
    pub async fn run(
        &self,
        fence: &Fence,
        timing: Timing,
        clock: &dyn WallClock,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut stop = std::pin::pin!(stop);
        // A follower's view: the revision it sees and since when.
        let mut seen: Option<(Option<Held>, Instant)> = None;
        let mut watch = Watch::new(Instant::now());
        let mut next_renewal = Instant::now();
        let mut next_epoch = Instant::now();
        loop {
            let wait = if self.leads() {
                next_renewal.min(next_epoch).saturating_duration_since(Instant::now())
            } else {
                timing.poll_every
            };
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(wait) => {}
            }
            if self.leads() {
                let now = Instant::now();
                if now >= next_epoch {
                    self.open_epoch(clock.now_ns());
                    next_epoch = now + timing.epoch_every;
                }
                if now >= next_renewal {
                    self.renew(fence, timing, clock).await;
                    next_renewal = Instant::now() + timing.renew_every;
                    seen = None;
                    watch.changed(Instant::now());
                }
                continue;
            }
            let read = fence.read().await;
            let now = Instant::now();
            if let Ok(current) = &read {
                self.observe(&mut watch, current.as_ref(), now, timing.lease);
            }
            self.account_leaderless(&mut watch, now, timing.lease);
            let Ok(current) = read else { continue };
            let revision = current.as_ref().map(|held| held.revision);
            match &seen {
                Some((held, since)) if held.as_ref().map(|h| h.revision) == revision => {
                    // Nobody has ever led: no lease to wait for.
                    if current.is_some() && now.duration_since(*since) < timing.lease {
                        continue;
                    }
                }
                _ => {
                    let first = current.is_none();
                    seen = Some((current.clone(), now));
                    if !first {
                        continue;
                    }
                }
            }
            if self.claim(fence, current.as_ref(), timing, clock).await {
                next_renewal = Instant::now() + timing.renew_every;
                next_epoch = Instant::now() + timing.epoch_every;
                watch.changed(Instant::now());
            }
            seen = None;
        }
    }

    /// Updates the view from a read of the state.
    fn observe(&self, watch: &mut Watch, current: Option<&Held>, now: Instant, lease: Duration) {
        let revision = current.map(|held| held.revision);
        let first = watch.revision.is_none();
        if watch.revision != Some(revision) {
            if !first {
                watch.changed(now);
            }
            watch.revision = Some(revision);
        }
        let term = current.map_or(0, |held| held.state.term);
        let new_term = {
            let mut view = self.view.lock().expect("oracle view lock");
            let new_term = term != view.term;
            *view = View {
                leader: current.map(|held| Arc::from(held.state.leader.as_str())),
                term,
                live: current.is_some() && watch.changed_at.is_some_and(|at| now - at < lease),
            };
            new_term
        };
        if new_term && !first {
            self.state.lock().expect("oracle lock").1.leader_changes += 1;
        }
    }

    /// Adds the time since the last call during which no leader was live: nobody has led, or
    /// the state has been unchanged for a lease.
    fn account_leaderless(&self, watch: &mut Watch, now: Instant, lease: Duration) {
        let nobody = watch.revision == Some(None);
        let dead_from =
            if nobody { watch.started } else { watch.changed_at.unwrap_or(watch.started) + lease };
        let from = dead_from.max(watch.accounted_to);
        if now > from {
            self.state.lock().expect("oracle lock").1.leaderless += now - from;
        }
        watch.accounted_to = now;
    }

    async fn claim(
        &self,
        fence: &Fence,
        over: Option<&Held>,
        timing: Timing,
        clock: &dyn WallClock,
    ) -> bool {
        let floor = over.map_or(0, |held| held.state.upper.saturating_add(1));
        let epoch = clock.now_ns().max(floor);
        let upper = epoch.saturating_add(nanos(timing.ahead));
        let sent = Instant::now();
        let Ok(Some(held)) = fence.claim(&self.id, over, upper).await else { return false };
        let term = held.state.term;
        let mut state = self.state.lock().expect("oracle lock");
        state.0 = Role::Leader(Leading {
            held,
            lease_until: sent + timing.lease.saturating_sub(timing.margin),
            epoch,
            next_index: 0,
        });
        state.1.terms_won += 1;
        state.1.leader_changes += 1;
        drop(state);
        *self.view.lock().expect("oracle view lock") =
            View { leader: Some(self.id.clone()), term, live: true };
        self.leading.send_replace(true);
        true
    }

    async fn renew(&self, fence: &Fence, timing: Timing, clock: &dyn WallClock) {
        let held = match &self.state.lock().expect("oracle lock").0 {
            Role::Leader(leading) => leading.held.clone(),
            Role::Follower => return,
        };
        let upper = clock.now_ns().saturating_add(nanos(timing.ahead));
        let sent = Instant::now();
        let result = fence.extend(&held, upper).await;
        let mut state = self.state.lock().expect("oracle lock");
        let (role, counters) = &mut *state;
        let Role::Leader(leading) = role else { return };
        match result {
            Ok(Some(held)) => {
                leading.held = held;
                leading.lease_until = sent + timing.lease.saturating_sub(timing.margin);
            }
            // Another instance claimed: this one no longer leads.
            Ok(None) => {
                *role = Role::Follower;
                counters.steps_down += 1;
                drop(state);
                self.view.lock().expect("oracle view lock").live = false;
                self.leading.send_replace(false);
            }
            // The bucket is unreachable: serve on until the lease runs out.
            Err(_) => {}
        }
    }

    /// A new epoch: the clock, or one more than the last when the clock is behind, never above
    /// the upper bound (then the current epoch goes on).
    fn open_epoch(&self, wall_ns: u64) {
        let mut state = self.state.lock().expect("oracle lock");
        if let Role::Leader(leading) = &mut state.0 {
            let epoch = wall_ns.max(leading.epoch + 1);
            if epoch <= leading.held.state.upper {
                leading.epoch = epoch;
                leading.next_index = 0;
            }
        }
    }
}

/// What a follower tracks of the state's changes, for its [`View`] and the leaderless time.
#[derive(Debug)]
struct Watch {
    /// When the instance started following.
    started: Instant,
    /// The revision last read (`Some(None)`: nobody has led); `None` before the first read.
    revision: Option<Option<u64>>,
    /// When the state was last seen to change (a revision other than the one first read, or
    /// this instance's own claim or renewal): `None` until then, so a state found on starting
    /// tells nothing of its leader's life.
    changed_at: Option<Instant>,
    /// Leaderless time is accounted up to here.
    accounted_to: Instant,
}

impl Watch {
    fn new(now: Instant) -> Watch {
        Watch { started: now, revision: None, changed_at: None, accounted_to: now }
    }

    fn changed(&mut self, now: Instant) {
        self.changed_at = Some(now);
        self.accounted_to = self.accounted_to.max(now);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
