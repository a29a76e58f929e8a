//! Reading a file one top-level item at a time, so that a syntax error costs one item, not the
//! rest of the file.
//!
//! Each step parses the remaining text with the language's `*_entry` rule (one item) and lowers
//! the result. On a syntax error it reports it, skips to the end of the broken item (the next `;`
//! outside braces, or the `}` that closes the item's first `{`) and carries on from there. It
//! stops when only trivia is left ([`only_trivia_after`], not a pest rule: a failed pest parse
//! builds an error whose location costs a scan of the whole rest of the text, and a file has a
//! failed end check before every item).

use pest::Parser;
use pest::iterators::Pair;

use crate::diag::{Diagnostic, Diagnostics};
use crate::source::{FileId, Loc};
use crate::syntax::error::syntax_error;
use crate::syntax::grammar::{Grammar, Rule};
use crate::syntax::lower::{Lower, first};
use crate::syntax::trivia::{Trivia, only_trivia_after, skip_trivia, string_end};

/// Parses every top-level item of `text` with the language's `entry` rule (which matches one
/// top-level item and yields a pair whose only child is that item), lowering each with
/// `lower_item`.
pub(crate) fn parse_items<T>(
    file: FileId,
    text: &str,
    diags: &mut Diagnostics,
    entry: Rule,
    mut lower_item: impl FnMut(&mut Lower<'_>, Pair<'_, Rule>) -> T,
) -> Vec<T> {
    let trivia = Trivia::scan(text);
    for &span in trivia.misplaced_docs() {
        diags.push(
            Diagnostic::error("a documentation comment should be on a line on its own")
                .at(Loc::new(file, span), "after other code on this line")
                .help("use `//` for a trailing comment"),
        );
    }
    let mut items = Vec::new();
    let mut pos = 0;
    while !only_trivia_after(text, pos) {
        match Grammar::parse(entry, &text[pos..]) {
            Ok(mut pairs) => {
                let item = pairs.next().map(|entry| first(&entry));
                let Some(item) = item else { break };
                let end = pos + item.as_span().end();
                let mut lower = Lower { file, text, trivia: &trivia, diags, base: pos };
                items.push(lower_item(&mut lower, item));
                pos = end;
            }
            Err(error) => {
                diags.push(syntax_error(file, text, pos, &error));
                pos = skip_item(text, skip_trivia(text, pos));
            }
        }
    }
    items
}

/// The end of the (broken) item starting at `start`: just after the first `;` outside braces, or
/// after the `}` closing the first `{`, or the end of the text. Always past `start` when there is
/// text left, so the parser makes progress.
fn skip_item(text: &str, start: usize) -> usize {
    let mut depth = 0usize;
    let mut pos = start;
    loop {
        pos = skip_trivia(text, pos);
        let Some(c) = text[pos..].chars().next() else {
            return text.len();
        };
        match c {
            '"' | '\'' => pos = string_end(text, pos),
            '{' => {
                depth += 1;
                pos += 1;
            }
            '}' if depth <= 1 => return pos + 1,
            '}' => {
                depth -= 1;
                pos += 1;
            }
            ';' if depth == 0 => return pos + 1,
            _ => pos += c.len_utf8(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_to_the_end_of_a_broken_item() {
        let text = "table A { a: ; b: \"}\"; } table B {}";
        assert_eq!(skip_item(text, 0), text.find(" table B").unwrap());
        assert_eq!(skip_item("root_type ; x", 0), 11);
        assert_eq!(skip_item("} x", 0), 1);
        assert_eq!(skip_item("table A { a: int;", 0), 17);
        assert_eq!(skip_item("x // ; \n y; z", 0), 11);
    }
}
