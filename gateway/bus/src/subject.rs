//! Subject syntax and wildcard matching, as NATS defines them.
//!
//! A subject is one or more tokens separated by `.`; a token is a non-empty run of printable,
//! non-space characters. A *pattern* (what a subscription names) may also use two wildcard
//! tokens: `*` matches exactly one token, `>` matches one or more trailing tokens and may only be
//! the last token. A token is a wildcard only when it is exactly `*` or `>`: `a*` is an ordinary
//! token, as in NATS. Messages are published to subjects, never to patterns.

use std::fmt;
use std::sync::Arc;

use crate::BusError;

/// A checked subject to publish to, cheap to clone: its text is shared, so handing a subject
/// along costs a reference count, not an allocation. Made once where it is known (a gateway
/// makes one per method at start-up) and used for every message after.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Subject(Arc<str>);

impl Subject {
    /// Checks `subject` ([`validate_subject`]) and keeps it.
    ///
    /// # Errors
    ///
    /// [`BusError::InvalidSubject`] if it is malformed or contains a wildcard token.
    pub fn new(subject: impl Into<String>) -> Result<Subject, BusError> {
        let subject = subject.into();
        validate_subject(&subject)?;
        Ok(Subject(subject.into()))
    }

    /// A subject known to be valid at compile time.
    ///
    /// # Panics
    ///
    /// If it is not a valid subject: a bug in the program, caught where the constant is used.
    pub fn from_static(subject: &'static str) -> Subject {
        if let Err(e) = validate_subject(subject) {
            panic!("{e}");
        }
        Subject(subject.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Subject {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Subject {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The wildcard that matches one token.
pub const ONE: &str = "*";
/// The wildcard that matches every remaining token (at least one).
pub const REST: &str = ">";

/// Checks that `subject` is a valid subject to publish to.
///
/// # Errors
///
/// [`BusError::InvalidSubject`] if it is malformed or contains a wildcard token.
pub fn validate_subject(subject: &str) -> Result<(), BusError> {
    validate(subject, false)
}

/// Checks that `pattern` is a valid subscription pattern.
///
/// # Errors
///
/// [`BusError::InvalidSubject`] if it is malformed or `>` is not its last token.
pub fn validate_pattern(pattern: &str) -> Result<(), BusError> {
    validate(pattern, true)
}

/// Checks a queue group name: non-empty, no spaces or control characters (dots are allowed, as
/// group names are service names).
///
/// # Errors
///
/// [`BusError::InvalidSubject`] naming the group.
pub fn validate_queue_group(group: &str) -> Result<(), BusError> {
    if group.is_empty() || group.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(BusError::InvalidSubject {
            subject: group.to_owned(),
            reason: "a queue group is a non-empty name without spaces or control characters",
        });
    }
    Ok(())
}

/// True if `pattern` contains a wildcard token (and so cannot be looked up by equality).
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.split('.').any(|token| token == ONE || token == REST)
}

/// True if the valid `pattern` matches the valid `subject`.
///
/// This runs for every wildcard subscription on every message, so it walks the subject once,
/// comparing each literal token of the pattern as a prefix, instead of splitting both strings.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut rest = subject;
    let mut tokens = pattern.split('.').peekable();
    while let Some(token) = tokens.next() {
        if token == REST {
            // `>` needs at least one token to stand for.
            return !rest.is_empty();
        }
        let after = if token == ONE {
            // A valid subject has no empty token, so one token is everything up to the next dot.
            if rest.is_empty() {
                return false;
            }
            rest.find('.').map_or("", |dot| &rest[dot..])
        } else {
            match rest.strip_prefix(token) {
                Some(after) => after,
                None => return false,
            }
        };
        rest = match (after.strip_prefix('.'), tokens.peek()) {
            (Some(next), Some(_)) => next,
            (None, None) if after.is_empty() => return true,
            _ => return false,
        };
    }
    false
}

/// One pass over the bytes: subjects are checked on every publish and request, so this avoids
/// per-token iterators and decodes characters only for the rare non-ASCII token.
fn validate(text: &str, allow_wildcards: bool) -> Result<(), BusError> {
    let invalid = |reason| Err(BusError::InvalidSubject { subject: text.to_owned(), reason });
    if text.is_empty() {
        return invalid("the subject is empty");
    }
    let bytes = text.as_bytes();
    let mut start = 0;
    for end in (0..=bytes.len()).filter(|&i| i == bytes.len() || bytes[i] == b'.') {
        let token = &text[start..end];
        let is_last = end == bytes.len();
        start = end + 1;
        if token.is_empty() {
            return invalid("a token is empty");
        }
        // ASCII whitespace and control characters are exactly the bytes up to space, and DEL.
        let ascii_bad = token.bytes().any(|b| b <= b' ' || b == 0x7f);
        let bad = |c: char| c.is_whitespace() || c.is_control();
        if ascii_bad || (!token.is_ascii() && token.chars().any(bad)) {
            return invalid("a token contains a space or a control character");
        }
        if token == ONE || token == REST {
            if !allow_wildcards {
                return invalid("wildcards are only allowed in subscriptions");
            }
            if token == REST && !is_last {
                return invalid("`>` must be the last token");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: Result<(), BusError>) -> &'static str {
        match result {
            Err(BusError::InvalidSubject { reason, .. }) => reason,
            other => panic!("expected an invalid subject, got {other:?}"),
        }
    }

    #[test]
    fn valid_subjects_and_patterns() {
        for subject in ["a", "rpc.examples.some_api.SomeApi.sum", "_INBOX.17", "a-b.c_d.é", "a*.b>"]
        {
            assert_eq!(validate_subject(subject), Ok(()), "{subject}");
            assert_eq!(validate_pattern(subject), Ok(()), "{subject}");
        }
        for pattern in ["*", ">", "a.*", "a.>", "*.b.*", "a.*.>"] {
            assert_eq!(validate_pattern(pattern), Ok(()), "{pattern}");
        }
    }

    #[test]
    fn malformed_subjects_are_refused_with_a_reason() {
        assert_eq!(reason(validate_subject("")), "the subject is empty");
        for subject in [".", "a.", ".a", "a..b"] {
            assert_eq!(reason(validate_subject(subject)), "a token is empty", "{subject}");
            assert_eq!(reason(validate_pattern(subject)), "a token is empty", "{subject}");
        }
        for subject in ["a b", "a.\tb", "a.b\n", "a\u{7f}", "a\u{a0}b"] {
            assert_eq!(
                reason(validate_subject(subject)),
                "a token contains a space or a control character",
                "{subject:?}"
            );
        }
    }

    #[test]
    fn wildcards_are_for_subscriptions_only() {
        for subject in ["*", "a.*", "a.>", ">"] {
            assert_eq!(
                reason(validate_subject(subject)),
                "wildcards are only allowed in subscriptions",
                "{subject}"
            );
        }
        for pattern in [">.a", "a.>.b", ">.>"] {
            assert_eq!(
                reason(validate_pattern(pattern)),
                "`>` must be the last token",
                "{pattern}"
            );
        }
    }

    #[test]
    fn subjects_are_checked_once_and_shared() {
        let subject = Subject::new("rpc.a.b").unwrap();
        assert_eq!(subject.as_str(), "rpc.a.b");
        assert_eq!(subject.clone().as_str().as_ptr(), subject.as_str().as_ptr());
        assert!(matches!(Subject::new("rpc.*"), Err(BusError::InvalidSubject { .. })));
        assert_eq!(&*Subject::from_static("cancel.a"), "cancel.a");
    }

    #[test]
    fn the_error_names_the_subject() {
        let err = validate_subject("a..b").unwrap_err();
        assert_eq!(err.to_string(), "invalid subject `a..b`: a token is empty");
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.bc"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(!matches("a*", "ab"), "`a*` is a literal token");
    }

    #[test]
    fn star_matches_exactly_one_token() {
        assert!(matches("a.*", "a.b"));
        assert!(matches("*.b", "a.b"));
        assert!(matches("a.*.c", "a.x.c"));
        assert!(matches("*", "a"));
        assert!(!matches("a.*", "a"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(!matches("a.*.c", "a.x.d"));
        assert!(!matches("*", "a.b"));
        assert!(!matches("a.*.c", "a.b"));
        assert!(!matches("ab.*", "a.b"), "a literal token is matched whole");
    }

    #[test]
    fn rest_matches_one_or_more_trailing_tokens() {
        assert!(matches("a.>", "a.b"));
        assert!(matches("a.>", "a.b.c.d"));
        assert!(matches(">", "a"));
        assert!(matches(">", "a.b"));
        assert!(matches("a.*.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(!matches("a.*.>", "a.b"));
        assert!(!matches("a.>", "b.c"));
        assert!(!matches("a.b.>", "a.bc.d"), "a literal token is matched whole");
    }

    #[test]
    fn the_contract_patterns_match_their_methods() {
        let pattern = "rpc.examples.some_api.SomeApi.*";
        assert!(matches(pattern, "rpc.examples.some_api.SomeApi.sum"));
        assert!(!matches(pattern, "rpc.examples.some_api.Other.sum"));
        assert!(!matches(pattern, "rpc.examples.some_api.SomeApi"));
    }

    #[test]
    fn queue_groups_are_names_without_spaces() {
        assert_eq!(validate_queue_group("examples.some_api.SomeApi"), Ok(()));
        assert!(validate_queue_group("").is_err());
        assert!(validate_queue_group("a b").is_err());
    }

    #[test]
    fn wildcards_are_recognised_only_as_whole_tokens() {
        assert!(has_wildcard("a.*"));
        assert!(has_wildcard(">"));
        assert!(!has_wildcard("a*.b>"));
        assert!(!has_wildcard("a.b"));
    }
}
