//! Diagnostics: errors and warnings with labelled spans, collected rather than thrown, and rendered
//! like rustc's.
//!
//! Every stage pushes into a [`Diagnostics`] sink and carries on where it sensibly can, so one run
//! reports every problem it can find. A stage's output is only used when the sink holds no error.

use std::io;

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::{Error as FilesError, Files};
use codespan_reporting::term;

use crate::source::{FileId, Loc, SourceMap};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// A span with a message, shown underlined in the source.
#[derive(Clone, Debug)]
pub struct Label {
    pub loc: Loc,
    pub message: String,
    /// The primary label marks where the problem is; secondary labels give context ("first
    /// defined here").
    pub primary: bool,
}

#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Lower-case sentence without a final period; offending values quoted with backticks.
    pub message: String,
    pub labels: Vec<Label>,
    /// Free-standing `= note: ...` / `= help: ...` lines.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            labels: vec![],
            notes: vec![],
        }
    }

    pub fn warning(message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(message) }
    }

    /// Adds the primary label.
    pub fn at(mut self, loc: Loc, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { loc, message: message.into(), primary: true });
        self
    }

    /// Adds a secondary label.
    pub fn with(mut self, loc: Loc, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { loc, message: message.into(), primary: false });
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(format!("note: {}", note.into()));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.notes.push(format!("help: {}", help.into()));
        self
    }
}

/// The sink every stage writes its diagnostics to.
#[derive(Debug, Default)]
pub struct Diagnostics {
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new() -> Diagnostics {
        Diagnostics::default()
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.list.push(diagnostic);
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn error_count(&self) -> usize {
        self.list.iter().filter(|d| d.severity == Severity::Error).count()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter()
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.list
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.list.extend(other.list);
    }

    /// Renders every diagnostic, in source order within each file, then a summary line.
    ///
    /// `color` selects ANSI colours (for a terminal); golden files use plain text.
    pub fn render(&self, sources: &SourceMap, color: bool) -> String {
        let mut sorted: Vec<&Diagnostic> = self.list.iter().collect();
        sorted.sort_by_key(|d| {
            d.labels.iter().find(|l| l.primary).map(|l| (l.loc.file, l.loc.span.start))
        });
        let mut out = Vec::new();
        let config = term::Config::default();
        let styles = term::Styles::default();
        let files = FileSet(sources);
        for d in sorted {
            // Writing to a Vec cannot fail, and our spans always lie within their files.
            let _ = if color {
                let mut writer =
                    term::StylesWriter::new(term::termcolor::Ansi::new(&mut out), &styles);
                term::emit_to_write_style(&mut writer, &config, &files, &to_codespan(d))
            } else {
                term::emit_to_io_write(&mut out, &config, &files, &to_codespan(d))
            };
        }
        let mut text = String::from_utf8(out).expect("diagnostics are utf-8");
        let errors = self.error_count();
        if errors > 0 {
            let plural = if errors == 1 { "" } else { "s" };
            text.push_str(&format!("error: aborting due to {errors} previous error{plural}\n"));
        }
        text
    }
}

fn to_codespan(d: &Diagnostic) -> cs::Diagnostic<FileId> {
    let severity = match d.severity {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
    };
    let labels = d
        .labels
        .iter()
        .map(|l| {
            let style = if l.primary { cs::LabelStyle::Primary } else { cs::LabelStyle::Secondary };
            cs::Label::new(style, l.loc.file, l.loc.span.range()).with_message(l.message.clone())
        })
        .collect();
    cs::Diagnostic::new(severity)
        .with_message(d.message.clone())
        .with_labels(labels)
        .with_notes(d.notes.clone())
}

/// Adapts our [`SourceMap`] to codespan's [`Files`] trait.
struct FileSet<'a>(&'a SourceMap);

impl<'a> Files<'a> for FileSet<'a> {
    type FileId = FileId;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, id: FileId) -> Result<&'a str, FilesError> {
        Ok(&self.0.get(id).name)
    }

    fn source(&'a self, id: FileId) -> Result<&'a str, FilesError> {
        Ok(&self.0.get(id).text)
    }

    fn line_index(&'a self, id: FileId, byte_index: usize) -> Result<usize, FilesError> {
        Ok(self.0.get(id).line_col(byte_index as u32).0 - 1)
    }

    fn line_range(
        &'a self,
        id: FileId,
        line_index: usize,
    ) -> Result<std::ops::Range<usize>, FilesError> {
        let file = self.0.get(id);
        let text = &file.text;
        let start =
            text.match_indices('\n').nth(line_index.wrapping_sub(1)).map_or(0, |(i, _)| i + 1);
        if line_index > 0 && start == 0 {
            return Err(FilesError::LineTooLarge {
                given: line_index,
                max: file.line_col(text.len() as u32).0 - 1,
            });
        }
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i + 1);
        Ok(start..end)
    }
}

/// Writes rendered diagnostics to stderr, coloured when stderr is a terminal.
pub fn eprint(diagnostics: &Diagnostics, sources: &SourceMap) -> io::Result<()> {
    use std::io::{IsTerminal, Write};
    let color = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    io::stderr().write_all(diagnostics.render(sources, color).as_bytes())
}
