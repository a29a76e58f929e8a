//! Tables: field types, ids, defaults and the field attributes flatc interprets (`required`,
//! `deprecated`, `key`, `nested_flatbuffer`, `hash`).

use std::collections::HashMap;

use crate::diag::Diagnostic;
use crate::model::{DeclId, DeclKind, Field, Scalar, Table, Type};
use crate::source::{FileId, Loc, Span};
use crate::syntax::ast::{self, Attribute, Compound, LiteralKind, Path};

use super::attrs::{self, Place};
use super::layout::duplicate_field;
use super::slots::SlotInput;
use super::{Checker, DeclAst};

/// flatc's hash algorithms, by the bit width of the field they fill.
const HASHES: [(u32, &[&str]); 3] = [
    (16, &["fnv1_16", "fnv1a_16"]),
    (32, &["fnv1_32", "fnv1a_32"]),
    (64, &["fnv1_64", "fnv1a_64"]),
];

impl Checker<'_, '_> {
    pub(super) fn check_tables(&mut self) {
        for id in self.ids_where(|ast| matches!(ast, DeclAst::Table(_))) {
            let DeclAst::Table(decl) = self.source(id).ast else {
                continue;
            };
            let table = self.check_table(id, decl);
            self.kinds[id.0 as usize] = Some(DeclKind::Table(table));
        }
    }

    fn check_table(&mut self, id: DeclId, decl: &Compound) -> Table {
        let file = self.source(id).file;
        let namespace = self.namespace(id);
        self.check_attributes(file, &decl.attributes, Place::Table);
        let original_order = attrs::find(&decl.attributes, "original_order").is_some();

        let mut names: HashMap<&str, Span> = HashMap::new();
        let mut unique = Vec::new();
        for field in &decl.fields {
            self.check_attributes(file, &field.attributes, Place::TableField);
            match names.insert(&field.name.text, field.name.span) {
                Some(first) => self.report(duplicate_field(
                    &field.name.text,
                    Loc::new(file, field.name.span),
                    Loc::new(file, first),
                )),
                None => unique.push(field),
            }
        }
        let types: Vec<Option<Type>> =
            unique.iter().map(|f| self.table_field_type(file, &namespace, &f.ty)).collect();
        for (field, ty) in unique.iter().zip(&types) {
            if let Some(ty) = ty {
                self.check_declared_before(id, ty, Loc::new(file, field.ty.span), false);
            }
        }
        for (field, ty) in unique.iter().zip(&types) {
            let type_field = format!("{}_type", field.name.text);
            let is_union = ty.as_ref().is_some_and(takes_two_slots);
            if let (true, Some(&clash)) = (is_union, names.get(type_field.as_str())) {
                self.report(
                    Diagnostic::error(format!(
                        "field `{type_field}` clashes with the type field of union `{}`",
                        field.name.text
                    ))
                    .at(Loc::new(file, clash), "declared here")
                    .with(
                        Loc::new(file, field.name.span),
                        format!("this union field implies a field `{type_field}`"),
                    )
                    .help("rename one of the two fields"),
                );
            }
        }

        let slot_inputs: Vec<SlotInput<'_>> = unique
            .iter()
            .zip(&types)
            .map(|(field, ty)| SlotInput {
                field,
                is_union: ty.as_ref().is_some_and(takes_two_slots),
            })
            .collect();
        let ids = self.assign_slots(file, self.decl_loc(id), &slot_inputs);

        let mut fields = Vec::with_capacity(unique.len());
        let mut key: Option<(usize, Span)> = None;
        for ((field, ty), slot) in unique.iter().zip(types).zip(ids) {
            let Some(ty) = ty else { continue };
            let loc = Loc::new(file, field.name.span);
            let flag = |name: &str| attrs::find(&field.attributes, name);
            let required = flag("required");
            let deprecated = flag("deprecated");
            if let Some(required) = required {
                if ty.is_scalar_like() {
                    self.report(
                        Diagnostic::error(format!(
                            "scalar field `{}` cannot be `required`",
                            field.name.text
                        ))
                        .at(Loc::new(file, required.span), "not allowed on a scalar")
                        .note("a scalar field always has a value: its default"),
                    );
                } else if let Some(deprecated) = deprecated {
                    self.report(
                        Diagnostic::error(format!(
                            "field `{}` cannot be both `required` and `deprecated`",
                            field.name.text
                        ))
                        .at(Loc::new(file, required.span), "required")
                        .with(Loc::new(file, deprecated.span), "deprecated")
                        .help("a deprecated field is no longer written, so it cannot be required"),
                    );
                }
            }
            let is_key = flag("key").is_some();
            if let Some(key_attr) = flag("key") {
                self.check_key(file, key_attr, field, &ty, &mut key, fields.len());
            }
            let nested_flatbuffer = flag("nested_flatbuffer")
                .and_then(|a| self.nested_flatbuffer(file, &namespace, a, &ty));
            let hash = flag("hash").and_then(|a| self.hash(file, a, &ty));
            let required = required.is_some() && !ty.is_scalar_like();
            let Some(default) = self.field_default(file, field, &ty, required) else {
                continue;
            };
            fields.push(Field {
                name: field.name.text.clone(),
                docs: field.docs.clone(),
                loc,
                ty,
                id: slot,
                presence: default.presence,
                default: default.default,
                default_nonscalar: default.nonscalar,
                deprecated: deprecated.is_some(),
                key: is_key,
                nested_flatbuffer,
                hash,
                attributes: attrs::kept(&field.attributes, Place::TableField),
            });
        }
        Table { fields, original_order, key: key.map(|(index, _)| index) }
    }

    /// A table has at most one key: a scalar that is not optional, a string or a struct.
    fn check_key(
        &mut self,
        file: FileId,
        attribute: &Attribute,
        field: &ast::Field,
        ty: &Type,
        key: &mut Option<(usize, Span)>,
        index: usize,
    ) {
        let loc = Loc::new(file, attribute.span);
        if let Some((_, first)) = key {
            self.report(
                Diagnostic::error("only one field of a table may be the `key`")
                    .at(loc, "second key")
                    .with(Loc::new(file, *first), "first key"),
            );
            return;
        }
        if !ty.is_scalar_like() && !matches!(ty, Type::String | Type::Struct(_)) {
            let found = self.describe_type(ty);
            self.report(
                Diagnostic::error(format!(
                    "a `key` field must be a scalar, a string or a struct, found {found}"
                ))
                .at(loc, "invalid key"),
            );
            return;
        }
        if field.default.as_ref().is_some_and(|d| d.kind == LiteralKind::Null) {
            self.report(
                Diagnostic::error(format!(
                    "optional field `{}` cannot be the `key`",
                    field.name.text
                ))
                .at(loc, "invalid key")
                .note("vectors of tables are sorted by their key, so every element needs one"),
            );
            return;
        }
        *key = Some((index, attribute.span));
    }

    /// `(nested_flatbuffer: "T")`: only on `[ubyte]`, and T must be a table.
    fn nested_flatbuffer(
        &mut self,
        file: FileId,
        namespace: &[String],
        attribute: &Attribute,
        ty: &Type,
    ) -> Option<DeclId> {
        let value = attribute.value.as_ref()?;
        if *ty != Type::Vector(Box::new(Type::Scalar(Scalar::U8))) {
            let found = self.describe_type(ty);
            self.report(
                Diagnostic::error(format!(
                    "`nested_flatbuffer` only applies to `[ubyte]` fields, found {found}"
                ))
                .at(Loc::new(file, attribute.span), "not a `[ubyte]`"),
            );
            return None;
        }
        let LiteralKind::Str(name) = &value.kind else {
            self.report(
                Diagnostic::error("`nested_flatbuffer` takes a table name in quotes")
                    .at(Loc::new(file, value.span), "expected a string"),
            );
            return None;
        };
        // The name is resolved like a type written at the attribute, so it gets the same spans.
        let parts = name
            .split('.')
            .map(|part| crate::syntax::ast::Ident { text: part.to_string(), span: value.span })
            .collect();
        let path = Path { parts, span: value.span };
        self.resolve_table(file, namespace, &path, "the root of a nested flatbuffer")
    }

    /// `(hash: "fnv1a_32")`: only on 16-, 32- and 64-bit integer fields (or vectors of them),
    /// with an algorithm of that width.
    fn hash(&mut self, file: FileId, attribute: &Attribute, ty: &Type) -> Option<String> {
        let value = attribute.value.as_ref()?;
        let scalar = match ty {
            Type::Scalar(s) => Some(*s),
            Type::Vector(element) => match **element {
                Type::Scalar(s) => Some(s),
                _ => None,
            },
            _ => None,
        };
        let Some(scalar) = scalar.filter(|s| s.is_integer() && s.size() >= 2) else {
            let found = self.describe_type(ty);
            self.report(
                Diagnostic::error(format!(
                    "`hash` only applies to 16-, 32- and 64-bit integer fields, found {found}"
                ))
                .at(Loc::new(file, attribute.span), "cannot hold a hash"),
            );
            return None;
        };
        let bits = scalar.size() * 8;
        let algorithms =
            HASHES.iter().find(|(b, _)| *b == bits).map_or(&[][..], |(_, names)| *names);
        let name = attrs::literal_text(&value.kind);
        if !algorithms.contains(&name.as_str()) {
            self.report(
                Diagnostic::error(format!(
                    "unknown hash algorithm `{name}` for a {bits}-bit field"
                ))
                .at(Loc::new(file, value.span), "unknown algorithm")
                .help(format!("use one of: {}", algorithms.join(", "))),
            );
            return None;
        }
        Some(name)
    }
}

/// Union fields (and vectors of unions) take two slots: the type tag and the value.
fn takes_two_slots(ty: &Type) -> bool {
    match ty {
        Type::Union(_) => true,
        Type::Vector(element) => matches!(**element, Type::Union(_)),
        _ => false,
    }
}
