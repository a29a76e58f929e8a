//! Field ids: the vtable slots of a table's fields.
//!
//! Either every field has `(id: N)` or none does. Without ids, fields take slots in declaration
//! order. A union field takes two slots: its hidden type field `<name>_type` at `id - 1` and the
//! value at `id`. The slots of a table must cover `0..n` exactly, so a reader can size the
//! vtable from the field count.

use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::source::{FileId, Loc};
use crate::syntax::ast::Field;

use super::Checker;
use super::attrs;

/// What the slot pass needs to know of one field.
pub(super) struct SlotInput<'f> {
    pub(super) field: &'f Field,
    /// Union (or vector of unions) fields take two slots.
    pub(super) is_union: bool,
}

impl Checker<'_, '_> {
    /// The id of each field (the value slot for unions), in declaration order. On error the
    /// result is a best guess and an error has been reported.
    pub(super) fn assign_slots(
        &mut self,
        file: FileId,
        table_loc: Loc,
        fields: &[SlotInput<'_>],
    ) -> Vec<u16> {
        let with_id: Vec<&SlotInput<'_>> =
            fields.iter().filter(|f| attrs::find(&f.field.attributes, "id").is_some()).collect();
        if with_id.is_empty() || with_id.len() < fields.len() {
            if let (Some(has), Some(lacks)) = (
                with_id.first(),
                fields.iter().find(|f| attrs::find(&f.field.attributes, "id").is_none()),
            ) {
                self.report(
                    Diagnostic::error("either all fields or no fields must have an `id`")
                        .at(Loc::new(file, lacks.field.name.span), "this field has no `id`")
                        .with(Loc::new(file, has.field.name.span), "this field has one")
                        .help("give every field of the table an `id`, or remove them all"),
                );
            }
            return sequential(fields);
        }
        // slot -> (field name as shown, where its id is written)
        let mut slots: BTreeMap<u32, (String, Loc)> = BTreeMap::new();
        let mut ids = Vec::with_capacity(fields.len());
        for input in fields {
            let field = input.field;
            let Some(value) = attrs::find(&field.attributes, "id").and_then(|a| a.value.as_ref())
            else {
                ids.push(0);
                continue;
            };
            let loc = Loc::new(file, value.span);
            let id = match self.integer_literal(file, value) {
                Some(id) if (0..=i128::from(u16::MAX)).contains(&id) => id as u32,
                Some(id) => {
                    self.report(
                        Diagnostic::error(format!("field id {id} is out of range"))
                            .at(loc, "ids are 0 to 65535"),
                    );
                    ids.push(0);
                    continue;
                }
                None => {
                    ids.push(0);
                    continue;
                }
            };
            ids.push(id as u16);
            let name = &field.name.text;
            let mut taken = vec![(id, format!("`{name}`"))];
            if input.is_union {
                if id == 0 {
                    self.report(
                        Diagnostic::error(format!("union field `{name}` cannot have id 0"))
                            .at(loc, "its type field would need id -1")
                            .note(format!(
                                "a union takes two ids: `{name}_type` uses id - 1, `{name}` uses id"
                            ))
                            .help("give the union id 1 or more, one past a free id"),
                    );
                    continue;
                }
                taken.insert(0, (id - 1, format!("`{name}_type` (the type field of `{name}`)")));
            }
            for (slot, who) in taken {
                if let Some((other, other_loc)) = slots.get(&slot) {
                    let message = format!("{other} uses id {slot} too");
                    self.report(
                        Diagnostic::error(format!("field id {slot} is used twice"))
                            .at(loc, format!("{who} uses id {slot}"))
                            .with(*other_loc, message),
                    );
                } else {
                    slots.insert(slot, (who, loc));
                }
            }
        }
        let count = slots.keys().next_back().map_or(0, |&max| max + 1);
        let missing: Vec<String> =
            (0..count).filter(|s| !slots.contains_key(s)).map(|s| s.to_string()).collect();
        if !missing.is_empty() {
            let plural = if missing.len() == 1 { "" } else { "s" };
            self.report(
                Diagnostic::error(format!(
                    "ids are not contiguous: missing id{plural} {}",
                    missing.join(", ")
                ))
                .at(table_loc, format!("ids of this table must cover 0 to {}", count - 1))
                .help("renumber the fields so that every id from 0 up is used once"),
            );
        }
        ids
    }
}

/// Declaration-order slots; a union takes the next two.
fn sequential(fields: &[SlotInput<'_>]) -> Vec<u16> {
    let mut next = 0u16;
    fields
        .iter()
        .map(|f| {
            next += u16::from(f.is_union);
            let id = next;
            next = next.wrapping_add(1);
            id
        })
        .collect()
}
