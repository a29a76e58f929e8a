//! Syntax errors in human words: pest reports the grammar rules it tried at the position where
//! parsing got furthest; this module names them ("expected `;` or `(`") and describes the token
//! actually found there ("found `}`").

use pest::error::{Error, ErrorVariant, InputLocation};

use crate::diag::Diagnostic;
use crate::source::{FileId, Loc, Span};
use crate::syntax::grammar::Rule;
use crate::syntax::trivia::{block_comment_closed, string_end};

/// Turns a pest error from parsing `text[base..]` into a diagnostic at the offending token.
pub(crate) fn syntax_error(
    file: FileId,
    text: &str,
    base: usize,
    error: &Error<Rule>,
) -> Diagnostic {
    let pos = base
        + match error.location {
            InputLocation::Pos(pos) => pos,
            InputLocation::Span((start, _)) => start,
        };
    let (found, span) = found_at(text, pos);
    let loc = Loc::new(file, span);
    let expected = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => expected_words(positives),
        ErrorVariant::CustomError { message } => {
            return Diagnostic::error(message.clone()).at(loc, "");
        }
    };
    match expected {
        Some(expected) => Diagnostic::error(format!("expected {expected}, found {found}"))
            .at(loc, format!("expected {expected}")),
        None => Diagnostic::error(format!("unexpected {found}")).at(loc, "unexpected here"),
    }
}

/// "`;`", "a name or `}`", "`=`, `(` or `;`"; `None` when pest named nothing.
fn expected_words(rules: &[Rule]) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    for &rule in rules {
        let word = describe(rule);
        if !words.contains(&word) {
            words.push(word);
        }
    }
    let last = words.pop()?;
    Some(if words.is_empty() { last } else { format!("{} or {last}", words.join(", ")) })
}

/// How a rule reads in "expected ...".
fn describe(rule: Rule) -> String {
    let word = match rule {
        Rule::semi => "`;`",
        Rule::colon => "`:`",
        Rule::comma => "`,`",
        Rule::eq => "`=`",
        Rule::lparen | Rule::attributes => "`(`",
        Rule::rparen => "`)`",
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lbracket | Rule::topic_key => "`[`",
        Rule::rbracket => "`]`",
        Rule::arrow => "`->`",
        Rule::ident | Rule::path => "a name",
        Rule::string_lit => "a string",
        Rule::int_lit => "an integer",
        Rule::float_lit => "a number",
        Rule::literal => "a value",
        Rule::type_expr | Rule::vector_type => "a type",
        Rule::attribute => "an attribute",
        Rule::fbs_item | Rule::service_item => "a declaration",
        Rule::field => "a field",
        Rule::enum_value => "an enum value",
        Rule::union_variant => "a union variant",
        Rule::rpc_method => "an rpc method",
        Rule::member => "a method, topic or error",
        other => {
            let name = format!("{other:?}");
            return match name.strip_prefix("kw_") {
                Some(keyword) => format!("`{keyword}`"),
                None => name.replace('_', " "),
            };
        }
    };
    word.to_string()
}

/// Describes the token at `pos` and returns its span: "`}`", "`tabel`", "a string", "end of file".
fn found_at(text: &str, pos: usize) -> (String, Span) {
    let rest = &text[pos.min(text.len())..];
    let Some(c) = rest.chars().next() else {
        return ("end of file".to_string(), Span::new(text.len(), text.len()));
    };
    let word_len =
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    if word_len > 0 {
        return (format!("`{}`", &rest[..word_len]), Span::new(pos, pos + word_len));
    }
    match c {
        '"' | '\'' => {
            let end = string_end(text, pos);
            let closed = end > pos + 1 && text.as_bytes()[end - 1] == c as u8;
            let what = if closed { "a string" } else { "an unterminated string" };
            (what.to_string(), Span::new(pos, end))
        }
        '/' if rest.starts_with("/*") && !block_comment_closed(text, pos) => {
            ("an unterminated comment".to_string(), Span::new(pos, pos + 2))
        }
        '-' if rest.starts_with("->") => ("`->`".to_string(), Span::new(pos, pos + 2)),
        _ => (format!("`{c}`"), Span::new(pos, pos + c.len_utf8())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_lists_read_like_prose() {
        assert_eq!(expected_words(&[Rule::semi]).as_deref(), Some("`;`"));
        assert_eq!(expected_words(&[Rule::ident, Rule::rbrace]).as_deref(), Some("a name or `}`"));
        assert_eq!(
            expected_words(&[Rule::eq, Rule::lparen, Rule::attributes, Rule::semi]).as_deref(),
            Some("`=`, `(` or `;`")
        );
        assert_eq!(expected_words(&[Rule::kw_table]).as_deref(), Some("`table`"));
        assert_eq!(expected_words(&[]), None);
    }

    #[test]
    fn found_names_the_token() {
        assert_eq!(found_at("a }", 2), ("`}`".to_string(), Span::new(2, 3)));
        assert_eq!(found_at("tabel T", 0), ("`tabel`".to_string(), Span::new(0, 5)));
        assert_eq!(found_at("x", 1), ("end of file".to_string(), Span::new(1, 1)));
        assert_eq!(found_at("'ab", 0), ("an unterminated string".to_string(), Span::new(0, 3)));
        assert_eq!(found_at("\"ab\"", 0), ("a string".to_string(), Span::new(0, 4)));
        assert_eq!(found_at("/* x", 0), ("an unterminated comment".to_string(), Span::new(0, 2)));
        assert_eq!(found_at("-> x", 0), ("`->`".to_string(), Span::new(0, 2)));
    }
}
