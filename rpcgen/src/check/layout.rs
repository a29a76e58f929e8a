//! Structs: field rules, cycles, and the byte layout flatc gives them.
//!
//! Layout is flatc's (and the C ABI's): each field at the next offset aligned to its own
//! alignment, the struct aligned to its largest field (or `force_align`), its size rounded up to
//! that alignment. Padding is recorded after the field it follows. A struct containing itself,
//! directly or through other structs, would have no finite size, so cycles are errors.

use std::collections::HashMap;

use crate::diag::Diagnostic;
use crate::model::{DeclId, DeclKind, Struct, StructField, Type};
use crate::source::{Loc, Span};
use crate::syntax::ast::Compound;

use super::attrs::{self, Place};
use super::{Checker, DeclAst};

/// flatc's `FLATBUFFERS_MAX_ALIGNMENT`: the largest `force_align` it accepts.
const MAX_ALIGN: u32 = 32;

/// The progress of laying out one struct, for cycle detection.
#[derive(Clone, Copy, Debug)]
enum Visit {
    InProgress,
    /// `(size, align)`, or `None` if the struct has errors.
    Done(Option<(u32, u32)>),
}

/// The structs being laid out, outermost first, each with the field that leads to the next.
type Path = Vec<(DeclId, Loc)>;

impl Checker<'_, '_> {
    /// Checks and lays out every struct, nested structs first.
    pub(super) fn check_structs(&mut self) {
        let mut visits = HashMap::new();
        for id in self.ids_where(|ast| matches!(ast, DeclAst::Struct(_))) {
            self.layout_struct(id, &mut visits, &mut Vec::new());
        }
    }

    /// Size and alignment of struct `id`, laying it out first if needed.
    fn layout_struct(
        &mut self,
        id: DeclId,
        visits: &mut HashMap<DeclId, Visit>,
        path: &mut Path,
    ) -> Option<(u32, u32)> {
        match visits.get(&id) {
            Some(Visit::Done(result)) => return *result,
            Some(Visit::InProgress) => {
                self.report_cycle(id, path);
                return None;
            }
            None => {}
        }
        let DeclAst::Struct(decl) = self.source(id).ast else {
            return None;
        };
        visits.insert(id, Visit::InProgress);
        let result = self.check_struct(id, decl, visits, path);
        let layout = result.as_ref().map(|s| (s.size, s.align));
        visits.insert(id, Visit::Done(layout));
        if let Some(checked) = result {
            self.kinds[id.0 as usize] = Some(DeclKind::Struct(checked));
        }
        layout
    }

    fn check_struct(
        &mut self,
        id: DeclId,
        decl: &Compound,
        visits: &mut HashMap<DeclId, Visit>,
        path: &mut Path,
    ) -> Option<Struct> {
        let file = self.source(id).file;
        let namespace = self.namespace(id);
        self.check_attributes(file, &decl.attributes, Place::Struct);
        let mut ok = true;
        let mut names: HashMap<&str, Span> = HashMap::new();
        // (field, its size, its alignment), in declaration order.
        let mut laid: Vec<(StructField, u32, u32)> = Vec::new();
        for field in &decl.fields {
            let loc = Loc::new(file, field.name.span);
            self.check_attributes(file, &field.attributes, Place::StructField);
            if let Some(first) = names.insert(&field.name.text, field.name.span) {
                self.report(duplicate_field(&field.name.text, loc, Loc::new(file, first)));
                ok = false;
                continue;
            }
            if let Some(default) = &field.default {
                self.report(
                    Diagnostic::error("struct fields cannot have default values")
                        .at(Loc::new(file, default.span), "default not allowed")
                        .note("every struct field is always stored; use a table for defaults and optional fields"),
                );
                ok = false;
            }
            let Some(ty) = self.struct_field_type(file, &namespace, &field.ty) else {
                ok = false;
                continue;
            };
            self.check_declared_before(id, &ty, Loc::new(file, field.ty.span), true);
            path.push((id, loc));
            let size_align = self.size_align(&ty, visits, path);
            path.pop();
            let Some((size, align)) = size_align else {
                ok = false;
                continue;
            };
            let model_field = StructField {
                name: field.name.text.clone(),
                docs: field.docs.clone(),
                loc,
                ty,
                offset: 0,
                padding: 0,
                attributes: attrs::kept(&field.attributes, Place::StructField),
            };
            laid.push((model_field, size, align));
        }
        if decl.fields.is_empty() {
            let name = self.source(id).name.dotted();
            self.report(
                Diagnostic::error(format!("struct `{name}` has no fields"))
                    .at(self.decl_loc(id), "empty struct")
                    .note("flatc does not allow structs of size 0")
                    .help("add a field, or use an empty table"),
            );
            ok = false;
        }
        let natural = laid.iter().map(|&(_, _, align)| align).max().unwrap_or(1);
        let align = match self.force_align(id, decl, natural) {
            Some(align) => align,
            None => {
                ok = false;
                natural
            }
        };
        ok.then(|| place_fields(laid, align))
    }

    /// `(force_align: N)` if written and valid, else the natural alignment; `None` on error.
    fn force_align(&mut self, id: DeclId, decl: &Compound, natural: u32) -> Option<u32> {
        let Some(attribute) = attrs::find(&decl.attributes, "force_align") else {
            return Some(natural);
        };
        let value = attribute.value.as_ref()?;
        let file = self.source(id).file;
        let forced = self.integer_literal(file, value)?;
        let valid = u32::try_from(forced)
            .ok()
            .filter(|&n| n.is_power_of_two() && (natural..=MAX_ALIGN).contains(&n));
        if valid.is_none() {
            self.report(
                Diagnostic::error(format!("invalid force_align {forced}"))
                    .at(Loc::new(file, value.span), format!("must be a power of two from {natural} to {MAX_ALIGN}"))
                    .note(format!("{natural} is the struct's natural alignment, {MAX_ALIGN} the largest flatc supports")),
            );
        }
        valid
    }

    /// Size and alignment of a struct field's type.
    fn size_align(
        &mut self,
        ty: &Type,
        visits: &mut HashMap<DeclId, Visit>,
        path: &mut Path,
    ) -> Option<(u32, u32)> {
        match ty {
            Type::Scalar(scalar) => Some((scalar.size(), scalar.size())),
            Type::Enum(id) => match &self.kinds[id.0 as usize] {
                Some(DeclKind::Enum(e)) => Some((e.underlying.size(), e.underlying.size())),
                _ => None,
            },
            Type::Struct(id) => self.layout_struct(*id, visits, path),
            Type::Array(element, length) => {
                let (size, align) = self.size_align(element, visits, path)?;
                Some((size * length, align))
            }
            Type::String | Type::Table(_) | Type::Union(_) | Type::Vector(_) => None,
        }
    }

    /// Reports the cycle that leads from `path`'s entry for `id` back to `id`. Every struct on
    /// it then fails to lay out, so the cycle is reported once, not once per member.
    fn report_cycle(&mut self, id: DeclId, path: &Path) {
        let start = path.iter().position(|&(decl, _)| decl == id).unwrap_or(0);
        let cycle = &path[start..];
        let name = |checker: &Self, decl: DeclId| checker.source(decl).name.dotted();
        let mut names: Vec<String> = cycle.iter().map(|&(decl, _)| name(self, decl)).collect();
        names.push(name(self, id));
        let mut diagnostic = Diagnostic::error(format!("circular struct `{}`", names[0]));
        for (i, &(_, loc)) in cycle.iter().enumerate() {
            let message = format!("`{}` contains `{}` here", names[i], names[i + 1]);
            diagnostic =
                if i == 0 { diagnostic.at(loc, message) } else { diagnostic.with(loc, message) };
        }
        self.report(
            diagnostic
                .note(format!("cycle: {}", names.join(" -> ")))
                .help("a struct is stored inline, so it cannot contain itself; use a table"),
        );
    }
}

/// Assigns offsets and padding in declaration order.
fn place_fields(laid: Vec<(StructField, u32, u32)>, align: u32) -> Struct {
    let mut fields: Vec<StructField> = Vec::with_capacity(laid.len());
    let mut end = 0u32;
    for (mut field, size, field_align) in laid {
        let offset = end.next_multiple_of(field_align);
        if let Some(previous) = fields.last_mut() {
            previous.padding = offset - end;
        }
        field.offset = offset;
        end = offset + size;
        fields.push(field);
    }
    let size = end.next_multiple_of(align);
    if let Some(last) = fields.last_mut() {
        last.padding = size - end;
    }
    Struct { fields, size, align }
}

pub(super) fn duplicate_field(name: &str, loc: Loc, first: Loc) -> Diagnostic {
    Diagnostic::error(format!("field `{name}` is defined twice"))
        .at(loc, "redefined here")
        .with(first, "first defined here")
}
