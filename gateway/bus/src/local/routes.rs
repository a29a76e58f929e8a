//! The routing table of the in-process bus: which subscriptions a subject reaches, and handing a
//! message to them without ever waiting.
//!
//! Literal subjects are indexed in a hash map, so the common case (one exact subject, or one
//! service pattern) costs one lookup plus a scan of the few wildcard patterns. Subscriptions in
//! the same queue group share messages across every pattern that matches, as in NATS: a message
//! goes to one member of each group, chosen round-robin among the members whose queue has room.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gateway_core::hash::FastMap;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::BusMessage;
use crate::call::Endpoint;
use crate::subject;

/// One subscription's queue.
pub(super) struct Member {
    pub(super) sid: u64,
    pub(super) tx: mpsc::Sender<BusMessage>,
    /// A service instance's direct road (`Bus::subscribe_service`): calls from this process go
    /// to it without a message.
    pub(super) endpoint: Option<Arc<dyn Endpoint>>,
}

/// Where a call on one subject goes ([`Routes::call_targets`]).
pub(super) enum CallTargets {
    /// Nobody subscribes.
    Nobody,
    /// One queue group of `members` service instances, all taking calls directly: `first` is
    /// this call's turn (round-robin); asking again gives the next member.
    Direct { first: Arc<dyn Endpoint>, members: usize },
    /// Anything else (plain subscribers, several groups, members without a direct road): the
    /// call travels as a message, as a request would.
    Messages,
}

/// The members of one queue group subscribed with the same pattern.
struct Group {
    name: Box<str>,
    members: Vec<Member>,
    /// Where the next round-robin turn starts.
    next: AtomicUsize,
}

/// Everything subscribed with one pattern (or literal subject).
#[derive(Default)]
struct Interest {
    plain: Vec<Member>,
    groups: Vec<Group>,
}

impl Interest {
    fn targets(&self) -> usize {
        self.plain.len() + self.groups.len()
    }

    fn add(&mut self, member: Member, group: Option<&str>) {
        let Some(name) = group else {
            self.plain.push(member);
            return;
        };
        match self.groups.iter_mut().find(|g| &*g.name == name) {
            Some(group) => group.members.push(member),
            None => self.groups.push(Group {
                name: name.into(),
                members: vec![member],
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// Removes subscription `sid`; true if it was here.
    fn remove(&mut self, sid: u64) -> bool {
        if let Some(i) = self.plain.iter().position(|m| m.sid == sid) {
            self.plain.swap_remove(i);
            return true;
        }
        for (gi, group) in self.groups.iter_mut().enumerate() {
            if let Some(i) = group.members.iter().position(|m| m.sid == sid) {
                group.members.remove(i);
                if group.members.is_empty() {
                    self.groups.swap_remove(gi);
                }
                return true;
            }
        }
        false
    }

    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }
}

/// What became of one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Outcome {
    /// Subscriptions (one per queue group) the message was for.
    pub(super) targets: u64,
    /// Of those, how many took it; the others' queues were full.
    pub(super) delivered: u64,
}

/// All subscriptions, by pattern.
#[derive(Default)]
pub(super) struct Routes {
    exact: FastMap<Box<str>, Interest>,
    wildcard: Vec<(Wildcard, Interest)>,
}

/// A wildcard pattern, with what makes matching it cheap: its literal prefix (up to its first
/// wildcard token) is compared first, and the common tails (`*` or `>` after the prefix, as in
/// `rpc.<service>.*`) are checked without walking the pattern again.
struct Wildcard {
    pattern: Box<str>,
    /// Bytes of the literal prefix, its last dot included.
    prefix: usize,
    tail: Tail,
}

enum Tail {
    /// `<prefix>*`: exactly one more token.
    One,
    /// `<prefix>>`: one or more.
    Rest,
    /// Anything else: matched token by token.
    Other,
}

impl Wildcard {
    fn new(pattern: &str) -> Wildcard {
        let mut prefix = 0;
        for token in pattern.split('.') {
            if token == subject::ONE || token == subject::REST {
                break;
            }
            prefix += token.len() + 1;
        }
        let tail = match &pattern[prefix.min(pattern.len())..] {
            "*" => Tail::One,
            ">" => Tail::Rest,
            _ => Tail::Other,
        };
        Wildcard { pattern: pattern.into(), prefix, tail }
    }

    fn matches(&self, subject: &str) -> bool {
        let Some(rest) = subject.strip_prefix(&self.pattern[..self.prefix]) else { return false };
        match self.tail {
            Tail::One => !rest.is_empty() && rest.bytes().all(|b| b != b'.'),
            Tail::Rest => !rest.is_empty(),
            Tail::Other => subject::matches(&self.pattern, subject),
        }
    }
}

impl Routes {
    /// Adds a subscription; `pattern` and `group` are valid.
    pub(super) fn add(&mut self, pattern: &str, group: Option<&str>, member: Member) {
        let interest = if subject::has_wildcard(pattern) {
            match self.wildcard.iter().position(|(w, _)| &*w.pattern == pattern) {
                Some(i) => &mut self.wildcard[i].1,
                None => {
                    self.wildcard.push((Wildcard::new(pattern), Interest::default()));
                    let last = self.wildcard.len() - 1;
                    &mut self.wildcard[last].1
                }
            }
        } else {
            self.exact.entry(pattern.into()).or_default()
        };
        interest.add(member, group);
    }

    /// Removes subscription `sid` made with `pattern`, and the pattern once nothing is left.
    pub(super) fn remove(&mut self, pattern: &str, sid: u64) {
        if subject::has_wildcard(pattern) {
            if let Some(i) = self.wildcard.iter().position(|(w, _)| &*w.pattern == pattern) {
                let interest = &mut self.wildcard[i].1;
                if interest.remove(sid) && interest.is_empty() {
                    self.wildcard.swap_remove(i);
                }
            }
        } else if let Some(interest) = self.exact.get_mut(pattern) {
            if interest.remove(sid) && interest.is_empty() {
                self.exact.remove(pattern);
            }
        }
    }

    /// How many subscriptions were made with exactly `pattern`, queue group members included.
    pub(super) fn count(&self, pattern: &str) -> usize {
        let interest = if subject::has_wildcard(pattern) {
            self.wildcard.iter().find(|(w, _)| &*w.pattern == pattern).map(|(_, i)| i)
        } else {
            self.exact.get(pattern)
        };
        interest
            .map_or(0, |i| i.plain.len() + i.groups.iter().map(|g| g.members.len()).sum::<usize>())
    }

    /// Where a call on `subject` goes: directly to a service instance when the subject reaches
    /// exactly one queue group and nothing else, and every member of the group takes calls
    /// directly; the members come in round-robin order, so instances share the calls.
    pub(super) fn call_targets(&self, subject: &str) -> CallTargets {
        let exact = self.exact.get(subject);
        let wild = self
            .wildcard
            .iter()
            .filter(|(wildcard, _)| wildcard.matches(subject))
            .map(|(_, interest)| interest);
        let mut interests = exact.into_iter().chain(wild);
        let only = match (interests.next(), interests.next()) {
            (None, _) => return CallTargets::Nobody,
            (Some(only), None) => only,
            (Some(_), Some(_)) => return CallTargets::Messages,
        };
        let [group] = &only.groups[..] else { return CallTargets::Messages };
        if !only.plain.is_empty() || group.members.iter().any(|m| m.endpoint.is_none()) {
            return CallTargets::Messages;
        }
        let n = group.members.len();
        let start = if n == 1 { 0 } else { group.next.fetch_add(1, Ordering::Relaxed) };
        let Some(first) = group.members[start % n].endpoint.clone() else {
            return CallTargets::Messages;
        };
        CallTargets::Direct { first, members: n }
    }

    /// Offers `message` to every subscription of its subject, one member per queue group,
    /// without waiting: a full queue loses its copy.
    pub(super) fn route(&self, message: BusMessage) -> Outcome {
        let exact = self.exact.get(message.subject.as_str());
        let wild = self
            .wildcard
            .iter()
            .filter(|(wildcard, _)| wildcard.matches(&message.subject))
            .map(|(_, interest)| interest);
        let mut interests = exact.into_iter().chain(wild);
        match (interests.next(), interests.next()) {
            (None, _) => Outcome::default(),
            // The fast path: no allocation beyond the copies of the message.
            (Some(only), None) => {
                let plain = only.plain.iter().map(Target::One);
                let groups =
                    only.groups.iter().map(|g| Target::Group(Members::Slice(&g.members), &g.next));
                deliver(only.targets(), plain.chain(groups), message)
            }
            (Some(first), Some(second)) => {
                let all: Vec<&Interest> = [first, second].into_iter().chain(interests).collect();
                let targets = merge(&all);
                deliver(targets.len(), targets.into_iter(), message)
            }
        }
    }
}

/// The members of one queue group, possibly gathered from several patterns.
enum Members<'a> {
    Slice(&'a [Member]),
    Gathered(Vec<&'a Member>),
}

impl Members<'_> {
    fn len(&self) -> usize {
        match self {
            Members::Slice(members) => members.len(),
            Members::Gathered(members) => members.len(),
        }
    }

    fn get(&self, i: usize) -> &Member {
        match self {
            Members::Slice(members) => &members[i],
            Members::Gathered(members) => members[i],
        }
    }
}

/// Who gets one copy of a message.
enum Target<'a> {
    One(&'a Member),
    Group(Members<'a>, &'a AtomicUsize),
}

impl Target<'_> {
    /// Hands `message` over, or gives it back if there is no room.
    fn offer(&self, message: BusMessage) -> Result<(), BusMessage> {
        match self {
            Target::One(member) => try_send(member, message),
            Target::Group(members, next) => {
                let n = members.len();
                let start = next.fetch_add(1, Ordering::Relaxed);
                let mut message = message;
                for k in 0..n {
                    match try_send(members.get(start.wrapping_add(k) % n), message) {
                        Ok(()) => return Ok(()),
                        Err(back) => message = back,
                    }
                }
                Err(message)
            }
        }
    }
}

fn try_send(member: &Member, message: BusMessage) -> Result<(), BusMessage> {
    member.tx.try_send(message).map_err(|err| match err {
        TrySendError::Full(message) | TrySendError::Closed(message) => message,
    })
}

/// Offers a copy of `message` to each of `count` targets; the last one gets the original, so a
/// message for one subscriber is never copied.
fn deliver<'a>(
    count: usize,
    targets: impl Iterator<Item = Target<'a>>,
    message: BusMessage,
) -> Outcome {
    let mut outcome = Outcome { targets: count as u64, delivered: 0 };
    let mut original = Some(message);
    // A copy a full queue refused serves the next target instead of a new clone.
    let mut spare = None;
    for (i, target) in targets.enumerate() {
        let copy = if i + 1 == count {
            original.take()
        } else {
            spare.take().or_else(|| original.clone())
        };
        let Some(copy) = copy else { break };
        match target.offer(copy) {
            Ok(()) => outcome.delivered += 1,
            Err(back) => spare = Some(back),
        }
    }
    outcome
}

/// The targets of several matching patterns: every plain subscription, and one target per queue
/// group name whatever the patterns its members used.
fn merge<'a>(interests: &[&'a Interest]) -> Vec<Target<'a>> {
    let mut targets = Vec::new();
    let mut groups: Vec<(&str, Vec<&Member>, &AtomicUsize)> = Vec::new();
    for interest in interests {
        targets.extend(interest.plain.iter().map(Target::One));
        for group in &interest.groups {
            match groups.iter_mut().find(|(name, _, _)| *name == &*group.name) {
                Some((_, members, _)) => members.extend(group.members.iter()),
                None => groups.push((&group.name, group.members.iter().collect(), &group.next)),
            }
        }
    }
    let groups = groups.into_iter();
    targets
        .extend(groups.map(|(_, members, next)| Target::Group(Members::Gathered(members), next)));
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcuts agree with the token-by-token matcher on every pair.
    #[test]
    fn wildcards_match_exactly_what_the_subject_rules_say() {
        let patterns = [
            "rpc.a.Svc.*",
            "rpc.a.Svc.>",
            "rpc.*",
            "*",
            ">",
            "a.*.c",
            "a.>",
            "*.b.*",
            "a.*.>",
            "rpc.a.Svc.*.x",
            "topic.t.p.*",
        ];
        let subjects = [
            "rpc.a.Svc.m",
            "rpc.a.Svc.m.n",
            "rpc.a.Svc",
            "rpc.a.Svcx.m",
            "rpc.a.SvcX",
            "rpc.b",
            "a",
            "a.b",
            "a.b.c",
            "a.x.c.d",
            "x.b.y",
            "rpc.a.Svc.m.x",
            "topic.t.p.k%2E1",
            "topic.t.p",
        ];
        for pattern in patterns {
            let wildcard = Wildcard::new(pattern);
            for subject in subjects {
                assert_eq!(
                    wildcard.matches(subject),
                    subject::matches(pattern, subject),
                    "{pattern} vs {subject}"
                );
            }
        }
    }
}
