//! Rust source text straight from the backend's token streams.
//!
//! The emitters build their output with `quote!`; this prints those tokens as source a person can
//! read, in one pass over them, without parsing them into a syntax tree first (parsing the
//! 1.3 million lines of the benchmark schema's output with syn and printing them with
//! prettyplease took three quarters of the backend's time).
//!
//! The layout follows rustfmt's habits where tokens alone tell enough:
//! - inside braces, a new line after each `;` and `,`, after each attribute and after each
//!   nested block (unless `else`, `,`, `;`, `.` or `?` follows it), indented four spaces a level;
//! - `#[doc = "..."]` becomes a `///` comment;
//! - a parenthesised or bracketed list that would pass [`WIDTH`] columns is broken one element
//!   per line, with a trailing comma, outermost first;
//! - spaces as rustfmt puts them: none around `::`, `.`, `..`, inside generics (`Vec<u8>`,
//!   told from comparisons by what follows the `<`), after unary operators and before call
//!   parentheses; one around binary operators and after `,`, `:` and `;`.
//!
//! Spacing never changes what the text means: two tokens that would lex as one (`:` `:`, `>`
//! `=`, two identifiers) are always separated. A test parses the printed text back and checks
//! it yields the same tokens.

use std::fmt::Write as _;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// Lists longer than this many columns are broken one element per line.
pub(crate) const WIDTH: usize = 100;

/// Prints `tokens` as a sequence of items, `indent` levels deep. `item_prefix`, when not empty,
/// is written (as is) before every item: the generated file is `include!`d, where inner
/// attributes are not allowed, so lint allowances go on each top-level item.
pub(crate) fn print_items(tokens: TokenStream, indent: usize, item_prefix: &str, out: &mut String) {
    let mut flat = Flat::default();
    flat.push(tokens);
    let mut printer = Printer {
        atoms: &flat.atoms,
        text: &flat.text,
        out,
        indent,
        line_start: 0,
        fresh: true,
        unbreakable: 0,
        flat: 0,
        item_prefix,
    };
    printer.line_start = printer.out.len();
    let _ = printer.seq(0, flat.atoms.len(), Mode::Items);
    printer.newline();
}

/// One token, or one side of a delimited group, with its text in [`Flat::text`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Literal,
    Punct {
        ch: char,
        joint: bool,
    },
    /// An opening delimiter; `Atom::pair` is the index of its closing one.
    Open(Delimiter),
    Close(Delimiter),
}

#[derive(Clone, Copy, Debug)]
struct Atom {
    kind: Kind,
    start: u32,
    end: u32,
    pair: u32,
}

/// The token tree flattened into one array, groups as open/close pairs, so the printer can look
/// ahead and print a list twice (inline, then broken) without cloning tokens.
#[derive(Default)]
struct Flat {
    atoms: Vec<Atom>,
    text: String,
}

impl Flat {
    fn push(&mut self, tokens: TokenStream) {
        for tree in tokens {
            match tree {
                TokenTree::Ident(ident) => self.word(Kind::Ident, format_args!("{ident}")),
                TokenTree::Literal(lit) => self.word(Kind::Literal, format_args!("{lit}")),
                TokenTree::Punct(p) => {
                    let joint = p.spacing() == Spacing::Joint;
                    self.atoms.push(Atom {
                        kind: Kind::Punct { ch: p.as_char(), joint },
                        start: 0,
                        end: 0,
                        pair: 0,
                    });
                }
                TokenTree::Group(group) => {
                    let delimiter = group.delimiter();
                    let inner = group.stream();
                    // The stream is shared with the group until the group is gone; dropping it
                    // first lets the iteration take the tokens instead of copying them.
                    drop(group);
                    if delimiter == Delimiter::None {
                        self.push(inner);
                        continue;
                    }
                    let open = self.atoms.len();
                    self.atoms.push(Atom {
                        kind: Kind::Open(delimiter),
                        start: 0,
                        end: 0,
                        pair: 0,
                    });
                    self.push(inner);
                    let close = self.atoms.len();
                    self.atoms.push(Atom {
                        kind: Kind::Close(delimiter),
                        start: 0,
                        end: 0,
                        pair: open as u32,
                    });
                    self.atoms[open].pair = close as u32;
                }
            }
        }
    }

    fn word(&mut self, kind: Kind, text: std::fmt::Arguments<'_>) {
        let start = self.text.len() as u32;
        let _ = self.text.write_fmt(text);
        self.atoms.push(Atom { kind, start, end: self.text.len() as u32, pair: 0 });
    }
}

/// How a sequence of tokens is laid out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// The top level of the file: as `Block`, and each item gets the item prefix.
    Items,
    /// Inside braces: one statement, field or arm per line.
    Block,
    /// Inside parentheses or brackets, on the current line.
    Inline,
    /// Inside parentheses or brackets, one element per line.
    Broken,
}

/// What the last printed token asks of the space before the next one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Prev {
    /// Start of a line, or just after an opening delimiter.
    Start,
    /// Never a space after: `::`, `.`, `..`, `#`, a unary operator, the `<` of generics, the
    /// `!` of a macro, the opening `|` of closure parameters.
    Glue,
    /// Always a space after: `,`, `;`, `:`, binary operators, `=>`, a closure's closing `|`.
    Space,
    /// An identifier that is not a keyword, or a literal.
    Word,
    /// A lifetime: like a word, but `&'a [u8]` keeps its space before the bracket.
    Lifetime,
    /// A keyword: `if (`, `in [`, `impl<`.
    Keyword,
    /// `pub`, so that `pub(crate)` stays together.
    Pub,
    /// A closing `)` or `]`, the `>` of generics, a postfix `?`.
    Close,
    /// A closing `}`.
    Brace,
}

/// An operator: up to four joined punctuation characters.
#[derive(Clone, Copy)]
struct Op {
    bytes: [u8; 4],
    len: u8,
}

impl Op {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

/// Identifiers that are keywords for spacing purposes (`self`, `Self`, `super` and `crate` are
/// path segments and space as words).
fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "as" | "async"
            | "await"
            | "break"
            | "const"
            | "continue"
            | "dyn"
            | "else"
            | "enum"
            | "extern"
            | "fn"
            | "for"
            | "if"
            | "impl"
            | "in"
            | "let"
            | "loop"
            | "match"
            | "mod"
            | "move"
            | "mut"
            | "ref"
            | "return"
            | "static"
            | "struct"
            | "trait"
            | "type"
            | "union"
            | "unsafe"
            | "use"
            | "where"
            | "while"
    )
}

struct Printer<'a> {
    atoms: &'a [Atom],
    text: &'a str,
    out: &'a mut String,
    indent: usize,
    /// Where the current line starts in `out`.
    line_start: usize,
    /// Nothing is written on the current line yet, not even its indentation.
    fresh: bool,
    /// Inside an attribute, where braces stay on the line.
    unbreakable: usize,
    /// Lists are being measured on one line: none of them breaks (reset inside blocks, whose
    /// lines are measured on their own).
    flat: usize,
    item_prefix: &'a str,
}

/// The state of one sequence (the inside of one group).
struct Seq {
    prev: Prev,
    /// Open `<` of generics.
    generics: u32,
    /// One bit per open `<`, innermost lowest: set when it followed a keyword (`impl<T>`,
    /// `for<'a>`), which is followed by a space once closed.
    keyword_generics: u64,
    /// Between the `|`s of closure parameters.
    closure_params: bool,
    /// The next token starts an item (top level only).
    item_start: bool,
    /// A comma separated elements of this sequence (not one inside generics or closure
    /// parameters).
    commas: bool,
    /// A semicolon ended a statement of this sequence.
    semicolons: bool,
}

impl<'a> Printer<'a> {
    fn word_at(&self, i: usize) -> &'a str {
        let atom = self.atoms[i];
        &self.text[atom.start as usize..atom.end as usize]
    }

    fn punct_at(&self, i: usize) -> Option<(char, bool)> {
        match self.atoms.get(i)?.kind {
            Kind::Punct { ch, joint } => Some((ch, joint)),
            _ => None,
        }
    }

    fn is_punct(&self, i: usize, want: char) -> bool {
        self.punct_at(i).is_some_and(|(ch, _)| ch == want)
    }

    fn is_ident(&self, i: usize, want: &str) -> bool {
        self.atoms.get(i).is_some_and(|a| a.kind == Kind::Ident) && self.word_at(i) == want
    }

    /// The operator starting at `i` (a run of joined punctuation) and its length in atoms.
    fn operator(&self, i: usize, end: usize) -> (Op, usize) {
        let mut op = Op { bytes: [0; 4], len: 0 };
        let mut j = i;
        while j < end && usize::from(op.len) < op.bytes.len() {
            let Some((ch, joint)) = self.punct_at(j) else { break };
            // Punctuation is ASCII.
            op.bytes[usize::from(op.len)] = ch as u8;
            op.len += 1;
            j += 1;
            // A lifetime's quote is joined to its name, not to the operator before it.
            if !joint || !matches!(self.punct_at(j), Some((c, _)) if c != '\'') {
                break;
            }
        }
        (op, j - i)
    }

    fn newline(&mut self) {
        if !self.fresh {
            self.out.push('\n');
            self.line_start = self.out.len();
            self.fresh = true;
        }
    }

    /// Starts the next token: indentation on a fresh line, else a space if asked.
    fn gap(&mut self, space: bool) {
        if self.fresh {
            for _ in 0..self.indent {
                self.out.push_str("    ");
            }
            self.fresh = false;
        } else if space {
            self.out.push(' ');
        }
    }

    /// Whether `<` at `i` opens generics rather than comparing: it does unless it follows a
    /// value and no matching `>` comes before something generics cannot hold.
    fn opens_generics(&self, i: usize, end: usize, prev: Prev) -> bool {
        if !matches!(prev, Prev::Word | Prev::Close) {
            return true;
        }
        let mut depth = 1u32;
        let mut j = i + 1;
        while j < end {
            match self.atoms[j].kind {
                Kind::Open(Delimiter::Brace) => return false,
                Kind::Open(_) => j = self.atoms[j].pair as usize,
                Kind::Ident => {
                    if matches!(self.word_at(j), "as" | "if" | "else" | "match" | "return" | "let")
                    {
                        return false;
                    }
                }
                Kind::Punct { .. } => {
                    let (op, len) = self.operator(j, end);
                    match op.as_str() {
                        "<" => depth += 1,
                        ">" | ">>" => {
                            let closes = u32::from(op.len);
                            if closes >= depth {
                                return true;
                            }
                            depth -= closes;
                        }
                        ";" | "==" | "!=" | "<=" | ">=" | "&&" | "||" | "=>" | "." | "<<" => {
                            return false;
                        }
                        _ => {}
                    }
                    j += len - 1;
                }
                _ => {}
            }
            j += 1;
        }
        false
    }

    /// Prints the atoms in `[start, end)`; returns whether commas separate elements there.
    fn seq(&mut self, start: usize, end: usize, mode: Mode) -> bool {
        let mut i = start;
        let lines = matches!(mode, Mode::Items | Mode::Block);
        let mut s = Seq {
            prev: Prev::Start,
            generics: 0,
            keyword_generics: 0,
            closure_params: false,
            item_start: mode == Mode::Items,
            commas: false,
            semicolons: false,
        };
        while i < end {
            if s.item_start && !self.item_prefix.is_empty() {
                self.newline();
                self.out.push_str(self.item_prefix);
                self.line_start = self.out.len();
            }
            s.item_start = false;
            let atom = self.atoms[i];
            match atom.kind {
                Kind::Ident => {
                    let word = self.word_at(i);
                    let keyword = is_keyword(word);
                    self.gap(!matches!(s.prev, Prev::Start | Prev::Glue));
                    self.out.push_str(word);
                    s.prev = if word == "pub" {
                        Prev::Pub
                    } else if keyword {
                        Prev::Keyword
                    } else {
                        Prev::Word
                    };
                    i += 1;
                }
                Kind::Literal => {
                    self.gap(!matches!(s.prev, Prev::Start | Prev::Glue));
                    self.out.push_str(self.word_at(i));
                    s.prev = Prev::Word;
                    i += 1;
                }
                Kind::Open(delimiter) => {
                    let close = atom.pair as usize;
                    self.group(i, close, delimiter, &mut s);
                    i = close + 1;
                    if lines && delimiter == Delimiter::Brace && !self.continues_after_block(i, end)
                    {
                        self.newline();
                        s.prev = Prev::Start;
                        s.item_start = mode == Mode::Items;
                    }
                }
                Kind::Close(_) => unreachable!("groups are printed whole"),
                Kind::Punct { ch, .. } => {
                    i = self.punct(i, end, ch, &mut s, mode);
                }
            }
        }
        if !matches!(self.punct_at(end - 1), Some((',', _)))
            && self.wants_trailing_comma(mode, end, &s)
        {
            self.out.push(',');
        }
        s.commas
    }

    /// Whether a sequence that does not end with a comma gets one, as rustfmt gives one to a
    /// broken list and to a block of fields, variants or arms (one with a comma and no `;` at
    /// its top level that does not end with a block).
    fn wants_trailing_comma(&self, mode: Mode, end: usize, s: &Seq) -> bool {
        match mode {
            Mode::Broken => true,
            Mode::Block => {
                s.commas
                    && !s.semicolons
                    && self.atoms[end - 1].kind != Kind::Close(Delimiter::Brace)
            }
            Mode::Items | Mode::Inline => false,
        }
    }

    /// Whether the token at `i` continues the line of the block that just closed (`} else`,
    /// `},`, `};`, `}.method()`, `}?`).
    fn continues_after_block(&self, i: usize, end: usize) -> bool {
        if i >= end {
            return false;
        }
        self.is_ident(i, "else")
            || self.is_ident(i, "as")
            || matches!(self.punct_at(i), Some((',' | ';' | '.' | '?', _)))
    }

    /// Prints the punctuation at `i`; returns the index after it.
    fn punct(&mut self, i: usize, end: usize, ch: char, s: &mut Seq, mode: Mode) -> usize {
        let lines = matches!(mode, Mode::Items | Mode::Block);
        let breaks = lines || mode == Mode::Broken;
        // A lifetime: the quote joined to its name.
        if ch == '\'' && self.atoms.get(i + 1).is_some_and(|a| a.kind == Kind::Ident) {
            self.gap(!matches!(s.prev, Prev::Start | Prev::Glue));
            self.out.push('\'');
            self.out.push_str(self.word_at(i + 1));
            s.prev = Prev::Lifetime;
            return i + 2;
        }
        // An attribute: `#[...]` or `#![...]`.
        if ch == '#' {
            let bang = usize::from(self.is_punct(i + 1, '!'));
            let open = i + 1 + bang;
            if let Some(Kind::Open(Delimiter::Bracket)) = self.atoms.get(open).map(|a| a.kind) {
                let close = self.atoms[open].pair as usize;
                if lines && bang == 0 && self.doc_comment(open, close) {
                    s.prev = Prev::Start;
                    return close + 1;
                }
                self.gap(!matches!(s.prev, Prev::Start | Prev::Glue));
                self.out.push('#');
                if bang == 1 {
                    self.out.push('!');
                }
                self.out.push('[');
                self.unbreakable += 1;
                let _ = self.seq(open + 1, close, Mode::Inline);
                self.unbreakable -= 1;
                self.out.push(']');
                if lines {
                    self.newline();
                    s.prev = Prev::Start;
                } else {
                    s.prev = Prev::Space;
                }
                return close + 1;
            }
        }
        let (op, len) = self.operator(i, end);
        let op = op.as_str();
        let mut len = len;
        let value_before =
            matches!(s.prev, Prev::Word | Prev::Lifetime | Prev::Close | Prev::Brace);
        let space_before_unary = matches!(s.prev, Prev::Space | Prev::Keyword);
        match op {
            "," => {
                self.gap(false);
                self.out.push(',');
                let separates = s.generics == 0 && !s.closure_params;
                s.commas |= separates;
                if breaks && separates {
                    self.newline();
                    s.prev = Prev::Start;
                } else {
                    s.prev = Prev::Space;
                }
            }
            ";" => {
                self.gap(false);
                self.out.push(';');
                s.semicolons = true;
                if lines {
                    self.newline();
                    s.prev = Prev::Start;
                    s.item_start = mode == Mode::Items;
                } else {
                    s.prev = Prev::Space;
                }
            }
            ":" => {
                self.gap(false);
                self.out.push(':');
                s.prev = Prev::Space;
            }
            "." | "?" => {
                self.gap(false);
                self.out.push_str(op);
                s.prev = if op == "?" { Prev::Close } else { Prev::Glue };
            }
            "::" => {
                self.gap(matches!(
                    s.prev,
                    Prev::Space | Prev::Keyword | Prev::Pub | Prev::Lifetime
                ));
                self.out.push_str("::");
                s.prev = Prev::Glue;
            }
            ".." | "..=" => {
                self.gap(matches!(s.prev, Prev::Space | Prev::Keyword));
                self.out.push_str(op);
                s.prev = Prev::Glue;
            }
            "!" if s.prev == Prev::Word
                && matches!(self.atoms.get(i + 1).map(|a| a.kind), Some(Kind::Open(_))) =>
            {
                // A macro call.
                self.gap(false);
                self.out.push('!');
                s.prev = Prev::Glue;
            }
            "|" if s.closure_params => {
                self.gap(false);
                self.out.push('|');
                s.closure_params = false;
                s.prev = Prev::Space;
            }
            "|" | "||" if !value_before => {
                // Closure parameters (`||` when there are none).
                self.gap(space_before_unary);
                self.out.push_str(op);
                if op == "|" {
                    s.closure_params = true;
                    s.prev = Prev::Glue;
                } else {
                    s.prev = Prev::Space;
                }
            }
            "&" | "&&" | "*" | "-" | "!" if !value_before => {
                self.gap(space_before_unary);
                self.out.push_str(op);
                s.prev = Prev::Glue;
            }
            _ if op.starts_with('>') && s.generics > 0 => {
                // The `>` closing generics; a `>>` closes two, one at a time.
                self.gap(false);
                self.out.push('>');
                s.generics -= 1;
                s.prev = if s.keyword_generics & 1 == 1 { Prev::Keyword } else { Prev::Close };
                s.keyword_generics >>= 1;
                len = 1;
            }
            "<" if self.opens_generics(i, end, s.prev) => {
                self.gap(matches!(s.prev, Prev::Space));
                self.out.push('<');
                s.keyword_generics = s.keyword_generics << 1 | u64::from(s.prev == Prev::Keyword);
                s.generics += 1;
                s.prev = Prev::Glue;
            }
            _ => {
                // A binary operator.
                self.gap(s.prev != Prev::Start);
                self.out.push_str(op);
                s.prev = Prev::Space;
            }
        }
        i + len
    }

    /// Prints `#[doc = "..."]` (the bracket group `[open, close]`) as a `///` comment, if it is
    /// one whose text fits on a line.
    fn doc_comment(&mut self, open: usize, close: usize) -> bool {
        if close != open + 4
            || !self.is_ident(open + 1, "doc")
            || !self.is_punct(open + 2, '=')
            || self.atoms[open + 3].kind != Kind::Literal
        {
            return false;
        }
        let Some(text) = unescape(self.word_at(open + 3)) else { return false };
        if text.contains(['\n', '\r']) {
            return false;
        }
        self.newline();
        self.gap(false);
        self.out.push_str("///");
        self.out.push_str(&text);
        self.newline();
        true
    }

    /// Prints the group `[open, close]`, with the space its opening asks for.
    fn group(&mut self, open: usize, close: usize, delimiter: Delimiter, s: &mut Seq) {
        match delimiter {
            Delimiter::Brace => {
                let after_path = s.prev == Prev::Glue && self.is_punct(open.wrapping_sub(1), ':');
                self.gap(!matches!(s.prev, Prev::Start | Prev::Glue));
                if close == open + 1 {
                    self.out.push_str("{}");
                } else if after_path || self.unbreakable > 0 {
                    // A use tree, `a::{b, c}`, or a brace inside an attribute.
                    self.out.push('{');
                    let _ = self.seq(open + 1, close, Mode::Inline);
                    self.out.push('}');
                } else {
                    self.out.push('{');
                    self.newline();
                    self.indent += 1;
                    let flat = std::mem::take(&mut self.flat);
                    let _ = self.seq(open + 1, close, Mode::Block);
                    self.flat = flat;
                    self.indent -= 1;
                    self.newline();
                    self.gap(false);
                    self.out.push('}');
                }
                s.prev = Prev::Brace;
            }
            Delimiter::Parenthesis | Delimiter::Bracket => {
                let space = match s.prev {
                    Prev::Space | Prev::Keyword | Prev::Brace => true,
                    // `&'a [u8]`, `pub [u8; 4]`, but `pub(crate)`.
                    Prev::Lifetime | Prev::Pub => delimiter == Delimiter::Bracket,
                    _ => false,
                };
                self.gap(space);
                let (left, right) =
                    if delimiter == Delimiter::Parenthesis { ('(', ')') } else { ('[', ']') };
                self.out.push(left);
                self.list(open, close);
                self.out.push(right);
                s.prev = Prev::Close;
            }
            Delimiter::None => unreachable!("invisible groups are spliced when flattened"),
        }
    }

    /// Prints the inside of a parenthesised or bracketed group: on the line if it fits, else
    /// one element per line (the elements' own lists then get the same choice).
    fn list(&mut self, open: usize, close: usize) {
        if close == open + 1 {
            return;
        }
        let mark = self.out.len();
        let (line_start, fresh) = (self.line_start, self.fresh);
        self.flat += 1;
        let commas = self.seq(open + 1, close, Mode::Inline);
        self.flat -= 1;
        if self.flat > 0 || !commas {
            return;
        }
        let first_line_end = self.out[mark..].find('\n').map_or(self.out.len() + 1, |n| mark + n);
        if first_line_end - line_start <= WIDTH {
            return;
        }
        self.out.truncate(mark);
        self.line_start = line_start;
        self.fresh = fresh;
        self.newline();
        self.indent += 1;
        let _ = self.seq(open + 1, close, Mode::Broken);
        self.indent -= 1;
        self.newline();
        self.gap(false);
    }
}

/// The value of a string literal as printed by `proc_macro2` (`"..."` with escapes, or a raw
/// string), or `None` if it is neither.
pub(crate) fn unescape(literal: &str) -> Option<String> {
    if let Some(raw) = literal.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let body = raw.get(hashes..raw.len().checked_sub(hashes)?)?;
        return Some(body.strip_prefix('"')?.strip_suffix('"')?.to_owned());
    }
    let body = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut value = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        match chars.next()? {
            'n' => value.push('\n'),
            'r' => value.push('\r'),
            't' => value.push('\t'),
            '0' => value.push('\0'),
            '\\' => value.push('\\'),
            '"' => value.push('"'),
            '\'' => value.push('\''),
            'u' => {
                let rest = chars.as_str().strip_prefix('{')?;
                let (hex, after) = rest.split_once('}')?;
                value.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
                chars = after.chars();
            }
            'x' => {
                let rest = chars.as_str();
                let byte = u8::from_str_radix(rest.get(..2)?, 16).ok()?;
                value.push(char::from(byte));
                chars = rest[2..].chars();
            }
            _ => return None,
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn print(tokens: TokenStream) -> String {
        let mut out = String::new();
        print_items(tokens, 0, "", &mut out);
        out
    }

    #[test]
    fn generics_are_tight_and_comparisons_spaced() {
        let text = print(quote! {
            impl<'a> ::x::Follow<'a> for Vec<Option<&'a [u8]>> {
                fn f(a: u8, b: u8) -> bool { a < b && Foo::<u8>::new(a) > b }
            }
        });
        assert_eq!(
            text,
            "impl<'a> ::x::Follow<'a> for Vec<Option<&'a [u8]>> {\n    \
             fn f(a: u8, b: u8) -> bool {\n        \
             a < b && Foo::<u8>::new(a) > b\n    }\n}\n"
        );
    }

    #[test]
    fn blocks_fields_and_arms_take_a_line_each() {
        let text = print(quote! {
            /// Doc.
            pub(crate) struct S { pub a: u8, b: &'static str }
            fn g(x: u8) -> S {
                let y = match x { 0 => 1, _ => { 2 } };
                if !ready { return S { a: y, b: "" } } else { unreachable!() }
            }
        });
        assert_eq!(
            text,
            "/// Doc.\npub(crate) struct S {\n    pub a: u8,\n    b: &'static str,\n}\n\
             fn g(x: u8) -> S {\n    let y = match x {\n        0 => 1,\n        _ => {\n            2\n        }\n    };\n    \
             if !ready {\n        return S {\n            a: y,\n            b: \"\",\n        }\n    } else {\n        \
             unreachable!()\n    }\n}\n"
        );
    }

    #[test]
    fn long_lists_break_outermost_first_with_a_trailing_comma() {
        let text = print(quote! {
            const FLAGS: &[(&str, u32)] = &[("first_flag", 1), ("second_flag", 2), ("third_flag", 4), ("fourth", 8)];
        });
        assert_eq!(
            text,
            "const FLAGS: &[(&str, u32)] = &[\n    (\"first_flag\", 1),\n    (\"second_flag\", 2),\n    \
             (\"third_flag\", 4),\n    (\"fourth\", 8),\n];\n"
        );
    }

    #[test]
    fn closures_unary_operators_and_prefixes() {
        let text = print(quote! {
            fn h(v: &mut Vec<u8>) { v.retain(|x| *x != 0); let n = -1 & !v.len() as i64; let f = || n; }
        });
        assert_eq!(
            text,
            "fn h(v: &mut Vec<u8>) {\n    v.retain(|x| *x != 0);\n    let n = -1 & !v.len() as i64;\n    \
             let f = || n;\n}\n"
        );
        let mut out = String::new();
        print_items(
            quote!(
                const A: u8 = 1;
                struct B;
            ),
            0,
            "#[allow(x)]\n",
            &mut out,
        );
        assert_eq!(out, "#[allow(x)]\nconst A: u8 = 1;\n#[allow(x)]\nstruct B;\n");
    }

    #[test]
    fn string_literals_unescape() {
        assert_eq!(unescape(r#"" a \"b\" \\ \u{e9}""#).as_deref(), Some(" a \"b\" \\ é"));
        assert_eq!(unescape(r##"r#" x"#"##).as_deref(), Some(" x"));
        assert_eq!(unescape("'c'"), None);
    }
}
