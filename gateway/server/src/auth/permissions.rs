//! What a connection may call, subscribe to and publish: sets of name patterns.
//!
//! A pattern is dot-separated tokens, as bus subjects are: `*` matches exactly one token, `>`
//! (only last) one or more. A member matches by its fully qualified name
//! (`examples.tracker.Tracker.list`) or by its name without the namespace (`Tracker.list`), so
//! `Tracker.*` allows every method of `Tracker` whatever its namespace. A topic's name gets its
//! key as one more token, in the bus's escaped form (`Tracker.position.dev-7`), so patterns can
//! grant one key, some keys or all of them. `{sub}` in a pattern stands for the caller's subject
//! (escaped the same way), so a device may be allowed `Tracker.position.{sub}` and nothing else.

use gateway_bus::contract::key_token;
use gateway_core::{MethodDesc, Selector, TopicDesc};

/// One compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern(Vec<Token>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(String),
    /// `*`
    One,
    /// `>`
    Rest,
}

impl Pattern {
    /// Compiles `text`, with `{sub}` standing for `subject`.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong: an empty token, `>` before the end.
    pub fn parse(text: &str, subject: Option<&str>) -> Result<Pattern, String> {
        let tokens: Vec<&str> = text.split('.').collect();
        let mut out = Vec::with_capacity(tokens.len());
        for (i, token) in tokens.iter().enumerate() {
            out.push(match *token {
                "" => return Err(format!("pattern `{text}` has an empty token")),
                "*" => Token::One,
                ">" if i + 1 == tokens.len() => Token::Rest,
                ">" => return Err(format!("pattern `{text}`: `>` may only be the last token")),
                "{sub}" => match subject {
                    Some(subject) => Token::Literal(key_token(subject).into_owned()),
                    // Anonymous connections have no subject: the pattern matches nothing.
                    None => return Ok(Pattern(vec![Token::Literal(String::new())])),
                },
                literal => Token::Literal(literal.to_owned()),
            });
        }
        Ok(Pattern(out))
    }

    /// Whether every name `name` matches also matches this pattern. `name` is a list of tokens in
    /// which `*` is a wildcard (for a subscription to all keys); other tokens are literal.
    fn covers(&self, name: &[&str]) -> bool {
        let mut pattern = self.0.iter();
        let mut name = name.iter();
        loop {
            match (pattern.next(), name.next()) {
                (None, None) => return true,
                (Some(Token::Rest), Some(_)) => return true,
                (Some(Token::One), Some(_)) => {}
                (Some(Token::Literal(want)), Some(&got)) if got != "*" && want == got => {}
                _ => return false,
            }
        }
    }
}

/// A set of patterns; allows a name if any pattern covers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatternSet(Vec<Pattern>);

impl PatternSet {
    pub fn new(patterns: Vec<Pattern>) -> PatternSet {
        PatternSet(patterns)
    }

    /// Adds the patterns of `other`.
    pub fn extend(&mut self, other: &PatternSet) {
        self.0.extend(other.0.iter().cloned());
    }

    /// Whether `qualified` (`ns.Service.member`, with `extra` as one more token if given) is
    /// allowed by its full name or its name without the namespace.
    pub fn allows(&self, qualified: &str, extra: Option<&str>) -> bool {
        let mut full: Vec<&str> = qualified.split('.').collect();
        full.extend(extra);
        let members = 2 + usize::from(extra.is_some());
        let short = &full[full.len().saturating_sub(members)..];
        self.0.iter().any(|p| p.covers(&full) || p.covers(short))
    }
}

/// What one connection may do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    pub call: PatternSet,
    pub subscribe: PatternSet,
    pub publish: PatternSet,
}

impl Permissions {
    /// Everything: the built-in role `all`.
    pub fn all() -> Permissions {
        let everything = PatternSet(vec![Pattern(vec![Token::Rest])]);
        Permissions { call: everything.clone(), subscribe: everything.clone(), publish: everything }
    }

    /// Adds what `other` allows.
    pub fn extend(&mut self, other: &Permissions) {
        self.call.extend(&other.call);
        self.subscribe.extend(&other.subscribe);
        self.publish.extend(&other.publish);
    }

    pub fn may_call(&self, method: &MethodDesc) -> bool {
        self.call.allows(method.name, None)
    }

    /// A subscription to all keys of a keyed topic needs a pattern that covers every key.
    pub fn may_subscribe(&self, topic: &TopicDesc, selector: &Selector) -> bool {
        match (topic.key, selector) {
            (None, _) => self.subscribe.allows(topic.name, None),
            (Some(_), Selector::AllKeys) => self.subscribe.allows(topic.name, Some("*")),
            (Some(_), Selector::Key(key)) => {
                self.subscribe.allows(topic.name, Some(&key_token(key)))
            }
        }
    }

    pub fn may_publish(&self, topic: &TopicDesc, key: &str) -> bool {
        match topic.key {
            None => self.publish.allows(topic.name, None),
            Some(_) => self.publish.allows(topic.name, Some(&key_token(key))),
        }
    }
}

#[cfg(test)]
mod tests {
    use gateway_core::LagPolicy;

    use super::*;

    fn set(patterns: &[&str], subject: Option<&str>) -> PatternSet {
        PatternSet(patterns.iter().map(|p| Pattern::parse(p, subject).unwrap()).collect())
    }

    fn method(name: &'static str) -> MethodDesc {
        MethodDesc { id: 1, name, request: "R", response: None, idempotent: false, writes: false }
    }

    static POSITION: TopicDesc = TopicDesc {
        id: 1,
        name: "ex.tracker.Tracker.position",
        message: "ex.tracker.Position",
        key: Some("device_id"),
        on_lag: LagPolicy::KeepLatest,
        retain: false,
        client_publish: true,
        history: None,
    };
    static ALERTS: TopicDesc =
        TopicDesc { key: None, name: "ex.tracker.Tracker.alerts", ..POSITION };

    fn may_call(patterns: &[&str], name: &'static str) -> bool {
        let permissions = Permissions { call: set(patterns, None), ..Permissions::default() };
        permissions.may_call(&method(name))
    }

    #[test]
    fn methods_match_by_full_or_short_name() {
        assert!(may_call(&["Tracker.*"], "ex.tracker.Tracker.list"));
        assert!(may_call(&["ex.tracker.Tracker.list"], "ex.tracker.Tracker.list"));
        assert!(may_call(&["ex.>"], "ex.tracker.Tracker.list"));
        assert!(may_call(&[">"], "Tracker.list"));
        assert!(!may_call(&["Tracker.*"], "ex.tracker.Other.list"));
        assert!(!may_call(&["Tracker.lis"], "ex.tracker.Tracker.list"));
        assert!(!may_call(&["tracker.Tracker.*"], "ex.tracker.Tracker.list"), "no partial prefix");
        assert!(!may_call(&["Tracker.list.*"], "ex.tracker.Tracker.list"));
        assert!(!may_call(&[], "ex.tracker.Tracker.list"));
    }

    #[test]
    fn all_keys_needs_a_pattern_covering_every_key() {
        let can = |patterns: &[&str], selector: Selector| {
            let permissions =
                Permissions { subscribe: set(patterns, Some("dev.7")), ..Permissions::default() };
            permissions.may_subscribe(&POSITION, &selector)
        };
        let one = || Selector::Key("dev-1".into());
        for broad in ["Tracker.position.*", "Tracker.>", "Tracker.position.>", "*.position.*", ">"]
        {
            assert!(can(&[broad], Selector::AllKeys), "{broad}");
            assert!(can(&[broad], one()), "{broad}");
        }
        for narrow in ["Tracker.position.dev-1", "Tracker.position", "Tracker.*"] {
            assert!(!can(&[narrow], Selector::AllKeys), "{narrow}");
        }
        assert!(can(&["Tracker.position.dev-1"], one()));
        assert!(!can(&["Tracker.position.dev-2"], one()));
        // `{sub}` is the caller's subject, escaped like a key.
        assert!(can(&["Tracker.position.{sub}"], Selector::Key("dev.7".into())));
        assert!(!can(&["Tracker.position.{sub}"], one()));
    }

    #[test]
    fn unkeyed_topics_and_publishing() {
        let permissions = Permissions {
            subscribe: set(&["Tracker.alerts"], None),
            publish: set(&["Tracker.position.{sub}"], Some("dev-9")),
            ..Permissions::default()
        };
        assert!(permissions.may_subscribe(&ALERTS, &Selector::AllKeys));
        assert!(permissions.may_publish(&POSITION, "dev-9"));
        assert!(!permissions.may_publish(&POSITION, "dev-8"));
        assert!(!permissions.may_publish(&ALERTS, ""));
        // Without a subject, `{sub}` allows nothing.
        let anonymous = set(&["Tracker.position.{sub}"], None);
        assert!(!anonymous.allows(POSITION.name, Some("")));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert!(Pattern::parse("a..b", None).unwrap_err().contains("empty token"));
        assert!(Pattern::parse("a.>.b", None).unwrap_err().contains("last token"));
        assert!(Pattern::parse("", None).is_err());
    }
}
