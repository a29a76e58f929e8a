//! Enums and unions: underlying types, values (bit flags shifted), variants.

use std::collections::HashMap;

use crate::diag::Diagnostic;
use crate::model::{
    DeclId, DeclKind, Enum, EnumValue, Scalar, Type, Union, UnionVariant, UnionVariantType,
};
use crate::source::{FileId, Loc, Span};
use crate::syntax::ast::{EnumDecl, Literal, LiteralKind, TypeExpr, TypeExprKind, UnionDecl};

use super::attrs::{self, Place};
use super::value::parse_int;
use super::{Checker, DeclAst};

impl Checker<'_, '_> {
    /// Checks every enum and union and records its model form.
    pub(super) fn check_enums_and_unions(&mut self) {
        for id in self.ids_where(|ast| matches!(ast, DeclAst::Enum(_) | DeclAst::Union(_))) {
            let kind = match self.source(id).ast {
                DeclAst::Enum(decl) => DeclKind::Enum(self.check_enum(id, decl)),
                DeclAst::Union(decl) => DeclKind::Union(self.check_union(id, decl)),
                _ => continue,
            };
            self.kinds[id.0 as usize] = Some(kind);
        }
    }

    fn check_enum(&mut self, id: DeclId, decl: &EnumDecl) -> Enum {
        let file = self.source(id).file;
        let name = self.source(id).name.dotted();
        self.check_attributes(file, &decl.attributes, Place::Enum);
        let bit_flags = attrs::find(&decl.attributes, "bit_flags").is_some();
        let underlying = self.enum_underlying(id, decl);
        if bit_flags && underlying.int_range().is_some_and(|(min, _)| min < 0) {
            let loc =
                decl.underlying.as_ref().map_or(self.decl_loc(id), |t| Loc::new(file, t.span));
            // flatc only warns, so this is a warning too: the model is still produced.
            self.report(
                Diagnostic::warning(format!(
                    "the underlying type of bit_flags enum `{name}` should be unsigned"
                ))
                .at(loc, "signed type")
                .help(format!("use `{}`", unsigned(underlying).keyword())),
            );
        }
        let mut values: Vec<EnumValue> = Vec::with_capacity(decl.values.len());
        let mut names: HashMap<&str, Span> = HashMap::new();
        let mut previous: Option<(i128, Span)> = None;
        for value_decl in &decl.values {
            self.check_attributes(file, &value_decl.attributes, Place::EnumValue);
            let loc = Loc::new(file, value_decl.name.span);
            if let Some(first) = names.insert(&value_decl.name.text, value_decl.name.span) {
                self.report(
                    Diagnostic::error(format!(
                        "enum value `{}` is defined twice in `{name}`",
                        value_decl.name.text
                    ))
                    .at(loc, "redefined here")
                    .with(Loc::new(file, first), "first defined here"),
                );
                continue;
            }
            let raw = match &value_decl.value {
                Some(literal) => match self.integer_literal(file, literal) {
                    Some(n) => n,
                    None => continue,
                },
                None => previous.map_or(0, |(p, _)| p + 1),
            };
            let value_loc = value_decl.value.as_ref().map_or(loc, |v| Loc::new(file, v.span));
            if !self.enum_value_fits(raw, underlying, bit_flags, value_loc, &value_decl.name.text) {
                continue;
            }
            if let Some((prev, prev_span)) = previous {
                let prev_name = values.last().map_or(String::new(), |v| v.name.clone());
                if raw == prev {
                    self.report(
                        Diagnostic::error(format!(
                            "enum values `{prev_name}` and `{}` are both {raw}",
                            value_decl.name.text
                        ))
                        .at(value_loc, format!("{raw} again"))
                        .with(Loc::new(file, prev_span), format!("`{prev_name}` is {raw}")),
                    );
                } else if raw < prev {
                    self.report(
                        Diagnostic::error(format!("enum values must be ascending: `{}` is {raw}, after `{prev_name}` = {prev}", value_decl.name.text))
                            .at(value_loc, format!("{raw} is not greater than {prev}"))
                            .with(Loc::new(file, prev_span), format!("`{prev_name}` is {prev}"))
                            .help("declare the values in ascending order"),
                    );
                }
            }
            previous = Some((raw, value_decl.name.span));
            values.push(EnumValue {
                name: value_decl.name.text.clone(),
                docs: value_decl.docs.clone(),
                loc,
                value: if bit_flags { 1i128 << raw } else { raw },
                attributes: attrs::kept(&value_decl.attributes, Place::EnumValue),
            });
        }
        Enum { underlying, bit_flags, values }
    }

    /// The enum's integer type; a missing or invalid one is reported and `int` assumed.
    fn enum_underlying(&mut self, id: DeclId, decl: &EnumDecl) -> Scalar {
        let file = self.source(id).file;
        let Some(ty) = &decl.underlying else {
            let name = &decl.name.text;
            self.report(
                Diagnostic::error(format!("enum `{name}` has no underlying type"))
                    .at(self.decl_loc(id), "needs an integer type")
                    .help(format!("write the type after the name, e.g. `enum {name} : ubyte`")),
            );
            return Scalar::I32;
        };
        let namespace = self.namespace(id);
        match self.named_type(file, &namespace, ty) {
            Some(Type::Scalar(scalar)) if scalar.is_integer() => scalar,
            Some(other) => {
                let found = self.describe_type(&other);
                self.report(
                    Diagnostic::error(format!(
                        "the underlying type of an enum must be an integer type, found {found}"
                    ))
                    .at(Loc::new(file, ty.span), "not an integer type"),
                );
                Scalar::I32
            }
            None => Scalar::I32,
        }
    }

    /// Resolves a type that must be a plain name (no vector, no array).
    fn named_type(&mut self, file: FileId, namespace: &[String], ty: &TypeExpr) -> Option<Type> {
        match &ty.kind {
            TypeExprKind::Named(path) => self.resolve_type_name(file, namespace, path),
            TypeExprKind::Vector(_) | TypeExprKind::Array(..) => {
                self.report(
                    Diagnostic::error("expected a type name, found a vector or array type")
                        .at(Loc::new(file, ty.span), "not allowed here"),
                );
                None
            }
        }
    }

    /// An integer literal, or an error saying one was expected.
    pub(super) fn integer_literal(&mut self, file: FileId, literal: &Literal) -> Option<i128> {
        let parsed = match &literal.kind {
            LiteralKind::Int(text) => parse_int(text),
            _ => None,
        };
        if parsed.is_none() {
            self.report(
                Diagnostic::error(format!(
                    "expected an integer, found `{}`",
                    attrs::literal_text(&literal.kind)
                ))
                .at(Loc::new(file, literal.span), "not an integer"),
            );
        }
        parsed
    }

    fn enum_value_fits(
        &mut self,
        raw: i128,
        underlying: Scalar,
        bit_flags: bool,
        loc: Loc,
        name: &str,
    ) -> bool {
        let ty = underlying.keyword();
        if bit_flags {
            let bits = i128::from(underlying.size() * 8);
            if (0..bits).contains(&raw) {
                return true;
            }
            self.report(
                Diagnostic::error(format!("bit flag `{name}` = {raw} does not fit in `{ty}`"))
                    .at(loc, format!("`{ty}` has bit positions 0 to {}", bits - 1))
                    .note("values of a bit_flags enum are bit positions, stored as `1 << n`"),
            );
            return false;
        }
        let Some((min, max)) = underlying.int_range() else {
            return true;
        };
        if (min..=max).contains(&raw) {
            return true;
        }
        self.report(
            Diagnostic::error(format!("enum value `{name}` = {raw} does not fit in `{ty}`"))
                .at(loc, format!("`{ty}` holds {min} to {max}")),
        );
        false
    }

    fn check_union(&mut self, id: DeclId, decl: &UnionDecl) -> Union {
        let file = self.source(id).file;
        let namespace = self.namespace(id);
        let union_name = self.source(id).name.dotted();
        self.check_attributes(file, &decl.attributes, Place::Union);
        let mut tag = Scalar::U8;
        if let Some(ty) = &decl.underlying {
            match self.named_type(file, &namespace, ty) {
                Some(Type::Scalar(s)) if s.is_integer() => tag = s,
                Some(other) => {
                    let found = self.describe_type(&other);
                    self.report(
                        Diagnostic::error(format!(
                            "the type tag of union `{union_name}` must be an integer type, found {found}"
                        ))
                        .at(Loc::new(file, ty.span), "not an integer type")
                        .help("use `ubyte` (the default when no type is given) or a wider integer"),
                    );
                }
                None => {}
            }
        }
        let (min, max) = tag.int_range().expect("integer tags");
        let mut variants: Vec<UnionVariant> = Vec::new();
        let mut names: HashMap<String, Span> = HashMap::new();
        let mut values: HashMap<i128, (String, Span)> = HashMap::new();
        let mut previous = 0i128;
        for variant in &decl.variants {
            self.check_attributes(file, &variant.attributes, Place::UnionVariant);
            let ty = self.union_variant_type(file, &namespace, &variant.ty);
            let (name, name_span) = match (&variant.alias, &variant.ty.kind) {
                (Some(alias), _) => (alias.text.clone(), alias.span),
                // Like flatc: `a.b.T` without an alias becomes the variant `a_b_T`.
                (None, TypeExprKind::Named(path)) => (
                    path.parts.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("_"),
                    path.span,
                ),
                (None, _) => (String::new(), variant.ty.span),
            };
            let loc = Loc::new(file, name_span);
            if let Some(first) = names.insert(name.clone(), name_span) {
                self.report(
                    Diagnostic::error(format!(
                        "union variant `{name}` is defined twice in `{union_name}`"
                    ))
                    .at(loc, "redefined here")
                    .with(Loc::new(file, first), "first defined here")
                    .help(format!("give one of them another name: `Other{name}: ...`")),
                );
                continue;
            }
            let value = match &variant.value {
                Some(literal) => match self.integer_literal(file, literal) {
                    Some(n) => n,
                    None => continue,
                },
                None => previous + 1,
            };
            previous = value;
            let value_loc = variant.value.as_ref().map_or(loc, |v| Loc::new(file, v.span));
            if value == 0 || !(min..=max).contains(&value) {
                let reason = if value == 0 {
                    "0 is reserved for `NONE`".to_owned()
                } else {
                    format!("the tag type `{}` holds {min} to {max}", tag.keyword())
                };
                let mut diagnostic = Diagnostic::error(format!(
                    "union variant `{name}` = {value} is not a valid tag"
                ))
                .at(value_loc, reason);
                if value != 0 && decl.underlying.is_none() {
                    diagnostic = diagnostic.help(format!(
                        "declare a wider tag type: `union {}: int {{ ... }}`",
                        self.source(id).name.name
                    ));
                }
                self.report(diagnostic);
                continue;
            }
            if let Some((other, other_span)) = values.insert(value, (name.clone(), name_span)) {
                self.report(
                    Diagnostic::error(format!(
                        "union variants `{other}` and `{name}` both have tag {value}"
                    ))
                    .at(value_loc, format!("{value} again"))
                    .with(Loc::new(file, other_span), format!("`{other}` is {value}")),
                );
                continue;
            }
            let Some(ty) = ty else { continue };
            variants.push(UnionVariant { name, docs: variant.docs.clone(), loc, value, ty });
        }
        Union { tag, variants }
    }

    fn union_variant_type(
        &mut self,
        file: FileId,
        namespace: &[String],
        ty: &TypeExpr,
    ) -> Option<UnionVariantType> {
        match self.named_type(file, namespace, ty)? {
            Type::Table(id) => Some(UnionVariantType::Table(id)),
            Type::Struct(id) => Some(UnionVariantType::Struct(id)),
            Type::String => Some(UnionVariantType::String),
            other => {
                let found = self.describe_type(&other);
                self.report(
                    Diagnostic::error(format!(
                        "union variants must be tables, structs or `string`, found {found}"
                    ))
                    .at(Loc::new(file, ty.span), "not allowed in a union"),
                );
                None
            }
        }
    }
}

/// The unsigned integer type of the same width.
fn unsigned(scalar: Scalar) -> Scalar {
    match scalar {
        Scalar::I8 => Scalar::U8,
        Scalar::I16 => Scalar::U16,
        Scalar::I32 => Scalar::U32,
        Scalar::I64 => Scalar::U64,
        other => other,
    }
}
