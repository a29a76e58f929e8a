//! Trivia: the whitespace and comments between tokens, and the `///` doc comments among them.
//!
//! The grammars treat every comment as trivia. Doc comments are found here instead, by one scan of
//! the file, because flatc accepts them wherever a comment may stand but keeps only those directly
//! before a token that starts a declaration, field, enum value, union variant or method; the
//! lowering asks [`Trivia::docs_before`] for the docs of exactly those tokens.

use crate::source::Span;
use crate::syntax::ast::Docs;

/// Every comment of one file, in source order.
#[derive(Debug)]
pub(crate) struct Trivia {
    comments: Vec<Comment>,
    misplaced_docs: Vec<Span>,
}

#[derive(Debug)]
struct Comment {
    start: usize,
    end: usize,
    /// For a `///` comment, its text without the `///` and one following space.
    doc: Option<String>,
}

impl Trivia {
    /// Finds every comment in `text`, skipping string literals so that `"//"` is not taken for
    /// one.
    pub(crate) fn scan(text: &str) -> Trivia {
        let bytes = text.as_bytes();
        let mut trivia = Trivia { comments: Vec::new(), misplaced_docs: Vec::new() };
        // flatc wants a doc comment on a line of its own: a newline (or the start of the file)
        // must separate it from the token before.
        let mut seen_newline = true;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    seen_newline = true;
                    i += 1;
                }
                b' ' | b'\t' | b'\r' => i += 1,
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    let end = line_end(text, i);
                    let doc = (bytes.get(i + 2) == Some(&b'/')).then(|| {
                        let raw = &text[i + 3..end];
                        raw.strip_prefix(' ').unwrap_or(raw).to_string()
                    });
                    if doc.is_some() && !seen_newline {
                        trivia.misplaced_docs.push(Span::new(i, end));
                    }
                    trivia.comments.push(Comment { start: i, end, doc });
                    i = end;
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    let end = block_comment_end(text, i);
                    trivia.comments.push(Comment { start: i, end, doc: None });
                    i = end;
                }
                b'"' | b'\'' => {
                    i = string_end(text, i);
                    seen_newline = false;
                }
                _ => {
                    let c = text[i..].chars().next().unwrap_or_default();
                    if c != BOM {
                        seen_newline = false;
                    }
                    i += c.len_utf8();
                }
            }
        }
        trivia
    }

    /// `///` comments that share their line with a token before them; flatc rejects those.
    pub(crate) fn misplaced_docs(&self) -> &[Span] {
        &self.misplaced_docs
    }

    /// The doc comments directly before the token at byte `pos`: the run of comments separated
    /// from it and from each other by whitespace only, keeping the `///` ones. Also returns where
    /// the first of them starts, for the span of a documented item.
    pub(crate) fn docs_before(&self, text: &str, pos: usize) -> (Docs, Option<usize>) {
        let before = self.comments.partition_point(|c| c.end <= pos);
        let mut boundary = pos;
        let mut docs = Vec::new();
        let mut first = None;
        for comment in self.comments[..before].iter().rev() {
            if !text[comment.end..boundary].chars().all(is_blank) {
                break;
            }
            if let Some(doc) = &comment.doc {
                docs.push(doc.clone());
                first = Some(comment.start);
            }
            boundary = comment.start;
        }
        docs.reverse();
        (docs, first)
    }
}

const BOM: char = '\u{FEFF}';

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | BOM)
}

/// The offset of the first token at or after `pos`, skipping whitespace and comments. An
/// unterminated block comment runs to the end of the text.
pub(crate) fn skip_trivia(text: &str, pos: usize) -> usize {
    trivia(text, pos).0
}

/// Whether only trivia follows `pos`: blanks, line comments and complete block comments, as the
/// grammar's `WHITESPACE` and `COMMENT` rules define them. An unterminated block comment is not
/// trivia (the grammar reports it as a syntax error).
pub(crate) fn only_trivia_after(text: &str, pos: usize) -> bool {
    trivia(text, pos) == (text.len(), true)
}

/// Where the trivia at `pos` ends, and whether every block comment in it is closed (an
/// unterminated one runs to the end of the text).
fn trivia(text: &str, mut pos: usize) -> (usize, bool) {
    loop {
        let rest = &text[pos..];
        if let Some(c) = rest.chars().next().filter(|&c| is_blank(c)) {
            pos += c.len_utf8();
        } else if rest.starts_with("//") {
            pos = line_end(text, pos);
        } else if rest.starts_with("/*") {
            if !block_comment_closed(text, pos) {
                return (text.len(), false);
            }
            pos = block_comment_end(text, pos);
        } else {
            return (pos, true);
        }
    }
}

/// The end of the string literal whose opening quote is at `start`: after the closing quote, or
/// at the end of the line if there is none.
pub(crate) fn string_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if !matches!(bytes.get(i + 1), None | Some(b'\n' | b'\r')) => i += 2,
            b'\n' | b'\r' => return i,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Whether the block comment at `start` has its `*/`.
pub(crate) fn block_comment_closed(text: &str, start: usize) -> bool {
    text[start + 2..].contains("*/")
}

fn block_comment_end(text: &str, start: usize) -> usize {
    text[start + 2..].find("*/").map_or(text.len(), |i| start + 2 + i + 2)
}

fn line_end(text: &str, start: usize) -> usize {
    text[start..].find(['\r', '\n']).map_or(text.len(), |i| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_trivia_is_blanks_and_complete_comments() {
        for text in
            ["", " \t\r\n", "\u{FEFF}", "// x", "// x\r\n/* y */ ", "/**/", "/* a\n * b */\n"]
        {
            assert!(only_trivia_after(text, 0), "{text:?}");
        }
        for text in ["x", " ;", "/* open", "/* a */ /", "// ok\n}", "/ /", "/*/"] {
            assert!(!only_trivia_after(text, 0), "{text:?}");
        }
        assert!(only_trivia_after("table A {} // end", 10));
        assert!(!only_trivia_after("table A {} // end", 9));
    }

    #[test]
    fn docs_attach_across_plain_comments_and_blank_lines() {
        let text = "/// one\n// plain\n\n///two\n/* block */ table";
        let trivia = Trivia::scan(text);
        let pos = text.find("table").unwrap();
        assert_eq!(trivia.docs_before(text, pos), (vec!["one".into(), "two".into()], Some(0)));
    }

    #[test]
    fn docs_stop_at_a_token() {
        let text = "/// lost\nx;\n/// kept\ny";
        let trivia = Trivia::scan(text);
        let (docs, first) = trivia.docs_before(text, text.len() - 1);
        assert_eq!(docs, vec!["kept".to_string()]);
        assert_eq!(first, text.find("/// kept"));
    }

    #[test]
    fn slashes_inside_strings_are_not_comments() {
        let text = "a = \"/// no\"; b = '//'; /* c */";
        let trivia = Trivia::scan(text);
        assert_eq!(trivia.comments.len(), 1);
        assert_eq!(trivia.comments[0].start, text.find("/*").unwrap());
    }

    #[test]
    fn doc_after_a_token_on_the_same_line_is_misplaced() {
        let text = "a: int; /// trailing\n/// fine\nb: int;";
        let trivia = Trivia::scan(text);
        let start = text.find("///").unwrap();
        assert_eq!(trivia.misplaced_docs(), &[Span::new(start, start + 12)]);
    }

    #[test]
    fn doc_text_stops_before_crlf_and_loses_one_space() {
        let text = "///  indented\r\ntable";
        let (docs, _) = Trivia::scan(text).docs_before(text, text.len() - 5);
        assert_eq!(docs, vec![" indented".to_string()]);
    }

    #[test]
    fn skip_trivia_stops_at_tokens_and_unterminated_strings_end_at_the_line() {
        assert_eq!(skip_trivia(" // c\n /* d */ x", 0), 15);
        assert_eq!(skip_trivia("/* open", 0), 7);
        assert_eq!(string_end("'a\\'b' x", 0), 6);
        assert_eq!(string_end("\"ab\ncd\"", 0), 3);
    }
}
