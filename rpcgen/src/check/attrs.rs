//! Attributes: which names exist, where each may appear, and which ones the model keeps.
//!
//! flatc knows a fixed set of attribute names (`known_attributes_` in its `idl.h`); any other
//! name must be declared with `attribute "x";` somewhere in the compilation. A few attributes
//! mean something to the model (`id`, `required`, `force_align`...) and are turned into model
//! fields; all others are kept verbatim in `attributes` for emitters and plugins.

use crate::diag::Diagnostic;
use crate::model::Attr;
use crate::source::{FileId, Loc};
use crate::syntax::ast::{Attribute, LiteralKind};

use super::Checker;
use super::scope::edit_distance;

/// flatc 25.12.19's built-in attribute names.
const FLATC_ATTRIBUTES: [&str; 27] = [
    "deprecated",
    "required",
    "key",
    "shared",
    "hash",
    "id",
    "force_align",
    "bit_flags",
    "original_order",
    "nested_flatbuffer",
    "csharp_partial",
    "streaming",
    "idempotent",
    "cpp_type",
    "cpp_ptr_type",
    "cpp_ptr_type_get",
    "cpp_str_type",
    "cpp_str_flex_ctor",
    "native_inline",
    "native_custom_alloc",
    "native_type",
    "native_type_pack_name",
    "native_default",
    "flexbuffer",
    "private",
    "offset64",
    "vector64",
];

/// Where an attribute is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    Table,
    Struct,
    Enum,
    Union,
    RpcService,
    TableField,
    StructField,
    EnumValue,
    UnionVariant,
    RpcMethod,
}

impl Place {
    fn describe(self) -> &'static str {
        match self {
            Place::Table => "a table",
            Place::Struct => "a struct",
            Place::Enum => "an enum",
            Place::Union => "a union",
            Place::RpcService => "an rpc_service",
            Place::TableField => "a table field",
            Place::StructField => "a struct field",
            Place::EnumValue => "an enum value",
            Place::UnionVariant => "a union variant",
            Place::RpcMethod => "an rpc method",
        }
    }
}

/// Where each attribute flatc interprets may be written, and whether it takes a value.
fn rule(name: &str) -> Option<(&'static [Place], bool)> {
    Some(match name {
        "id" | "hash" | "nested_flatbuffer" => (&[Place::TableField], true),
        "required" => (&[Place::TableField], false),
        // flatc accepts both; they are kept as plain attributes there, for emitters.
        "deprecated" => (&[Place::TableField, Place::EnumValue], false),
        "key" => (&[Place::TableField, Place::StructField], false),
        "force_align" => (&[Place::Struct], true),
        "original_order" => (&[Place::Table], false),
        "bit_flags" => (&[Place::Enum], false),
        _ => return None,
    })
}

/// Why an attribute flatc accepts at `place` does nothing there (for flatc's Rust and TypeScript
/// as for us); `None` where it does something or is an error. flatc's own schemas use both.
fn no_effect(name: &str, place: Place) -> Option<&'static str> {
    match (name, place) {
        ("id", Place::UnionVariant) => {
            Some("union variants are numbered in declaration order; flatc ignores `id` here too")
        }
        ("force_align", Place::TableField) => Some(
            "it aligns structs; flatc's Rust and TypeScript output ignore it on a table field too",
        ),
        _ => None,
    }
}

/// Whether the model turns `name` into a field of its own at `place` (so it is not kept in
/// `attributes`).
fn interpreted(name: &str, place: Place) -> bool {
    match place {
        Place::TableField => {
            matches!(name, "id" | "deprecated" | "required" | "key" | "nested_flatbuffer" | "hash")
        }
        Place::Struct => name == "force_align",
        Place::Table => name == "original_order",
        Place::Enum => name == "bit_flags",
        _ => false,
    }
}

impl Checker<'_, '_> {
    /// Reports attributes that are neither built in nor declared, attributes with no meaning
    /// where they are written, and interpreted attributes missing their value.
    pub(super) fn check_attributes(
        &mut self,
        file: FileId,
        attributes: &[Attribute],
        place: Place,
    ) {
        for (index, attribute) in attributes.iter().enumerate() {
            let name = attribute.name.text.as_str();
            let loc = Loc::new(file, attribute.name.span);
            if let Some(first) = attributes[..index].iter().find(|a| a.name.text == name) {
                // flatc warns and uses the first one; so do we.
                self.report(
                    Diagnostic::warning(format!("attribute `{name}` is given twice"))
                        .at(loc, "ignored")
                        .with(Loc::new(file, first.name.span), "this one is used"),
                );
                continue;
            }
            if !FLATC_ATTRIBUTES.contains(&name) && !self.declared_attributes.contains(name) {
                let mut diagnostic =
                    Diagnostic::error(format!("attribute `{name}` is not declared"))
                        .at(loc, "unknown attribute");
                if let Some(close) = FLATC_ATTRIBUTES
                    .iter()
                    .find(|known| edit_distance(name, known) <= (name.len() / 3).max(1))
                {
                    diagnostic = diagnostic.help(format!("did you mean `{close}`?"));
                }
                self.report(diagnostic.help(format!("declare it with `attribute \"{name}\";`")));
                continue;
            }
            if matches!(name, "offset64" | "vector64") {
                // Generated as 32-bit offsets, a field flatc wrote with 64-bit ones would be read
                // wrong without any error: refused, as flatc 25.12.19 refuses them for Rust and
                // TypeScript.
                self.report(
                    Diagnostic::error(format!("64-bit offsets (`{name}`) are not supported yet"))
                        .at(loc, "rpcgen reads every offset as 32 bits")
                        .note("buffers written with this field would be misread, so it is refused")
                        .note("flatc refuses them for Rust and TypeScript too")
                        .help("remove the attribute to use 32-bit offsets (buffers up to 2 GiB)"),
                );
                continue;
            }
            if let Some(why) = no_effect(name, place) {
                self.report(
                    Diagnostic::warning(format!(
                        "attribute `{name}` has no effect on {}",
                        place.describe()
                    ))
                    .at(loc, "ignored")
                    .note(why),
                );
                continue;
            }
            let Some((places, takes_value)) = rule(name) else {
                continue;
            };
            if !places.contains(&place) {
                self.report(misplaced(name, place, loc));
            } else if takes_value && attribute.value.is_none() {
                self.report(
                    Diagnostic::error(format!("attribute `{name}` needs a value"))
                        .at(Loc::new(file, attribute.span), "no value given")
                        .help(format!("write `({name}: ...)`")),
                );
            }
        }
    }
}

fn misplaced(name: &str, place: Place, loc: Loc) -> Diagnostic {
    let message = match (name, place) {
        ("required", Place::StructField) => "struct fields are always required".to_string(),
        ("deprecated", Place::StructField) => "struct fields cannot be deprecated".to_string(),
        ("id", Place::StructField) => "struct fields cannot have an `id`".to_string(),
        _ => format!("attribute `{name}` is not allowed on {}", place.describe()),
    };
    let places: Vec<&str> = rule(name)
        .map(|(places, _)| places.iter().map(|p| p.describe()).collect())
        .unwrap_or_default();
    let only = format!("`{name}` only applies to {}", places.join(" or "));
    Diagnostic::error(message).at(loc, "not allowed here").note(only)
}

/// The attribute called `name`, if written.
pub(super) fn find<'x>(attributes: &'x [Attribute], name: &str) -> Option<&'x Attribute> {
    attributes.iter().find(|a| a.name.text == name)
}

/// The attributes the model does not interpret at `place`, values unquoted, in source order.
pub(super) fn kept(attributes: &[Attribute], place: Place) -> Vec<Attr> {
    attributes
        .iter()
        .filter(|a| !interpreted(&a.name.text, place))
        .map(|a| Attr {
            name: a.name.text.clone(),
            value: a.value.as_ref().map(|v| literal_text(&v.kind)),
        })
        .collect()
}

/// A literal as text: strings unquoted, numbers as written.
pub(super) fn literal_text(literal: &LiteralKind) -> String {
    match literal {
        LiteralKind::Int(text) | LiteralKind::Float(text) | LiteralKind::Str(text) => text.clone(),
        LiteralKind::Bool(b) => b.to_string(),
        LiteralKind::Name(path) => path.dotted(),
        LiteralKind::Null => "null".to_string(),
        LiteralKind::EmptyVector => "[]".to_string(),
    }
}
