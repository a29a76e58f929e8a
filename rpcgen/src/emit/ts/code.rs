//! A small writer of indented TypeScript text, and the pieces every emitter writes with it.

use std::fmt::Write as _;

/// Indented lines of TypeScript, two spaces per level.
#[derive(Debug, Default)]
pub(crate) struct Code {
    text: String,
    indent: usize,
}

impl Code {
    pub(crate) fn new() -> Code {
        Code::default()
    }

    /// One line at the current indentation (an empty line for `""`).
    pub(crate) fn line(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        if !line.is_empty() {
            for _ in 0..self.indent {
                self.text.push_str("  ");
            }
            self.text.push_str(line);
        }
        self.text.push('\n');
    }

    /// A line that opens a block (`... {`), indenting what follows.
    pub(crate) fn open(&mut self, line: impl AsRef<str>) {
        self.line(line);
        self.indent += 1;
    }

    /// A line that closes a block (`}`), back at the enclosing indentation.
    pub(crate) fn close(&mut self, line: impl AsRef<str>) {
        self.indent = self.indent.saturating_sub(1);
        self.line(line);
    }

    /// A line between two blocks (`} else {`): back one level for it, then in again.
    pub(crate) fn reopen(&mut self, line: impl AsRef<str>) {
        self.indent = self.indent.saturating_sub(1);
        self.line(line);
        self.indent += 1;
    }

    /// A JSDoc comment holding `lines` (schema `///` comments), nothing when there are none.
    pub(crate) fn doc(&mut self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        self.line("/**");
        for line in lines {
            // A `*/` in the text would end the comment.
            let line = line.trim_end().replace("*/", "*\\/");
            if line.trim().is_empty() {
                self.line(" *");
            } else if line.starts_with(' ') {
                self.line(format!(" *{line}"));
            } else {
                self.line(format!(" * {line}"));
            }
        }
        self.line(" */");
    }

    /// A one-line JSDoc comment.
    pub(crate) fn doc1(&mut self, text: impl AsRef<str>) {
        self.line(format!("/** {} */", text.as_ref().replace("*/", "*\\/")));
    }

    /// Appends another writer's text at this one's indentation.
    pub(crate) fn append(&mut self, other: &Code) {
        for line in other.text.lines() {
            self.line(line);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub(crate) fn into_string(self) -> String {
        self.text
    }
}

/// `a, b, c`.
pub(crate) fn join(items: impl IntoIterator<Item = impl AsRef<str>>, sep: &str) -> String {
    let mut out = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        let _ = write!(out, "{}", item.as_ref());
    }
    out
}
