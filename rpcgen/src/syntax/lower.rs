//! Lowering what both grammars share (`common.pest`) from pest pairs to the syntax tree: names,
//! paths, strings, literals, attributes and types, plus the doc comments of a token.
//!
//! The parser reads one top-level item at a time from a slice of the file, so pest positions are
//! relative to that slice; [`Lower`] adds the slice's offset back so that every span in the tree
//! is a byte offset into the whole file.

use pest::iterators::Pair;

use crate::diag::{Diagnostic, Diagnostics};
use crate::source::{FileId, Loc, Span};
use crate::syntax::ast::{
    Attribute, Docs, Ident, Literal, LiteralKind, Path, StrLit, TypeExpr, TypeExprKind,
};
use crate::syntax::grammar::Rule;
use crate::syntax::literal::unescape;
use crate::syntax::trivia::Trivia;

/// Everything lowering one item needs.
pub(crate) struct Lower<'a> {
    pub(crate) file: FileId,
    /// The whole file.
    pub(crate) text: &'a str,
    pub(crate) trivia: &'a Trivia,
    pub(crate) diags: &'a mut Diagnostics,
    /// Offset of the slice pest parsed within `text`.
    pub(crate) base: usize,
}

impl Lower<'_> {
    pub(crate) fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let span = pair.as_span();
        Span::new(self.base + span.start(), self.base + span.end())
    }

    /// The `///` docs before the token starting at file offset `start`, and where they begin.
    pub(crate) fn docs(&self, start: u32) -> (Docs, Option<u32>) {
        let (docs, first) = self.trivia.docs_before(self.text, start as usize);
        (docs, first.map(|f| f as u32))
    }

    pub(crate) fn ident(&self, pair: &Pair<'_, Rule>) -> Ident {
        Ident { text: pair.as_str().to_string(), span: self.span(pair) }
    }

    /// A `path` pair: `a.b.C`.
    pub(crate) fn path(&self, pair: &Pair<'_, Rule>) -> Path {
        let parts = children(pair, Rule::ident).map(|p| self.ident(&p)).collect();
        Path { parts, span: self.span(pair) }
    }

    /// A `string_lit` pair. A bad escape is reported, and the value is then empty.
    pub(crate) fn string(&mut self, pair: &Pair<'_, Rule>) -> StrLit {
        let span = self.span(pair);
        let value = unescape(pair.as_str()).unwrap_or_else(|err| {
            let start = span.start as usize;
            let at = Span::new(start + err.range.start, start + err.range.end);
            self.diags.push(Diagnostic::error(err.message).at(Loc::new(self.file, at), ""));
            String::new()
        });
        StrLit { value, span }
    }

    /// A `literal` pair, or one of its alternatives directly (`int_lit` after `=` in an enum).
    pub(crate) fn literal(&mut self, pair: &Pair<'_, Rule>) -> Literal {
        if pair.as_rule() == Rule::literal {
            return self.literal(&first(pair));
        }
        let text = pair.as_str().to_string();
        let kind = match pair.as_rule() {
            Rule::float_lit => LiteralKind::Float(text),
            Rule::int_lit => LiteralKind::Int(text),
            Rule::bool_lit => LiteralKind::Bool(text == "true"),
            Rule::null_lit => LiteralKind::Null,
            Rule::string_lit => LiteralKind::Str(self.string(pair).value),
            Rule::empty_vector => LiteralKind::EmptyVector,
            Rule::path => LiteralKind::Name(self.path(pair)),
            other => unreachable!("grammar: {other:?} is not a literal"),
        };
        Literal { kind, span: self.span(pair) }
    }

    /// The optional `attributes` child of `parent`: `(a, b: 1)`.
    pub(crate) fn attributes(&mut self, parent: &Pair<'_, Rule>) -> Vec<Attribute> {
        let Some(list) = child(parent, Rule::attributes) else {
            return Vec::new();
        };
        children(&list, Rule::attribute).map(|attr| self.attribute(&attr)).collect()
    }

    fn attribute(&mut self, pair: &Pair<'_, Rule>) -> Attribute {
        let name_pair = first(pair);
        let name = if name_pair.as_rule() == Rule::string_lit {
            let lit = self.string(&name_pair);
            Ident { text: lit.value, span: lit.span }
        } else {
            self.ident(&name_pair)
        };
        let value = child(pair, Rule::literal).map(|lit| self.literal(&lit));
        Attribute { name, value, span: self.span(pair) }
    }

    /// A `type_expr` pair: `T`, `[T]` or `[T:N]`.
    pub(crate) fn type_expr(&mut self, pair: &Pair<'_, Rule>) -> TypeExpr {
        let inner = first(pair);
        let kind = match inner.as_rule() {
            Rule::path => TypeExprKind::Named(self.path(&inner)),
            _ => {
                let element = Box::new(self.type_expr(&required(&inner, Rule::type_expr)));
                match child(&inner, Rule::int_lit) {
                    Some(len) => TypeExprKind::Array(element, self.literal(&len)),
                    None => TypeExprKind::Vector(element),
                }
            }
        };
        TypeExpr { kind, span: self.span(pair) }
    }
}

/// The direct children of `pair` produced by `rule`.
pub(crate) fn children<'i>(
    pair: &Pair<'i, Rule>,
    rule: Rule,
) -> impl Iterator<Item = Pair<'i, Rule>> {
    pair.clone().into_inner().filter(move |p| p.as_rule() == rule)
}

/// The first direct child of `pair` produced by `rule`, if any.
pub(crate) fn child<'i>(pair: &Pair<'i, Rule>, rule: Rule) -> Option<Pair<'i, Rule>> {
    children(pair, rule).next()
}

/// A child the grammar always produces.
///
/// # Panics
///
/// Only if the grammar and this code disagree.
pub(crate) fn required<'i>(pair: &Pair<'i, Rule>, rule: Rule) -> Pair<'i, Rule> {
    child(pair, rule)
        .unwrap_or_else(|| panic!("grammar: {:?} always holds a {rule:?}", pair.as_rule()))
}

/// The first child of a pair the grammar never leaves empty.
///
/// # Panics
///
/// Only if the grammar and this code disagree.
pub(crate) fn first<'i>(pair: &Pair<'i, Rule>) -> Pair<'i, Rule> {
    pair.clone()
        .into_inner()
        .next()
        .unwrap_or_else(|| panic!("grammar: {:?} is never empty", pair.as_rule()))
}
