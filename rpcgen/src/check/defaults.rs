//! Table field defaults and presence: `= 3`, `= Red`, `= "x"`, `= []`, `= null`.
//!
//! Scalars and enums always have a default (0 unless written); `= null` makes them optional
//! instead. Strings may default to a string literal and vectors to `[]`; tables, structs and
//! unions take no default.

use crate::diag::Diagnostic;
use crate::model::{Enum, NonScalarDefault, Presence, Scalar, Type, Value};
use crate::source::{FileId, Loc};
use crate::syntax::ast::{Literal, LiteralKind};

use super::Checker;
use super::attrs::literal_text;
use super::value::{ValueError, parse_int, scalar_value};

/// A field's presence and default, as the model records them.
pub(super) struct FieldDefault {
    pub(super) presence: Presence,
    pub(super) default: Option<Value>,
    pub(super) nonscalar: Option<NonScalarDefault>,
}

impl FieldDefault {
    fn scalar(presence: Presence, default: Option<Value>) -> FieldDefault {
        FieldDefault { presence, default, nonscalar: None }
    }
}

impl Checker<'_, '_> {
    /// Interprets `default` for a table field of type `ty`; `required` has been checked to be
    /// on a non-scalar. `None` after reporting an error.
    pub(super) fn field_default(
        &mut self,
        file: FileId,
        field_name: &str,
        ty: &Type,
        default: Option<&Literal>,
        required: bool,
    ) -> Option<FieldDefault> {
        let non_scalar_presence = if required { Presence::Required } else { Presence::Optional };
        let Some(literal) = default else {
            return match ty {
                Type::Scalar(scalar) => {
                    Some(FieldDefault::scalar(Presence::Default, Some(zero(*scalar))))
                }
                Type::Enum(id) => {
                    let loc = Loc::new(file, self.source(*id).name_span);
                    self.enum_default(*id, field_name, None, loc)
                        .map(|value| FieldDefault::scalar(Presence::Default, Some(value)))
                }
                _ => Some(FieldDefault::scalar(non_scalar_presence, None)),
            };
        };
        let loc = Loc::new(file, literal.span);
        if literal.kind == LiteralKind::Null && ty.is_scalar_like() {
            return Some(FieldDefault::scalar(Presence::Optional, None));
        }
        match ty {
            Type::Scalar(scalar) => match scalar_value(&literal.kind, *scalar) {
                Ok(value) => Some(FieldDefault::scalar(Presence::Default, Some(value))),
                Err(error) => {
                    self.report(value_error(&literal.kind, *scalar, error, loc));
                    None
                }
            },
            Type::Enum(id) => self
                .enum_default(*id, field_name, Some(literal), loc)
                .map(|value| FieldDefault::scalar(Presence::Default, Some(value))),
            Type::String => match &literal.kind {
                LiteralKind::Str(text) => Some(FieldDefault {
                    presence: non_scalar_presence,
                    default: None,
                    nonscalar: Some(NonScalarDefault::String(text.clone())),
                }),
                other => self.bad_default(
                    loc,
                    other,
                    "a `string` field can only default to a string literal",
                ),
            },
            Type::Vector(_) => match &literal.kind {
                LiteralKind::EmptyVector => Some(FieldDefault {
                    presence: non_scalar_presence,
                    default: None,
                    nonscalar: Some(NonScalarDefault::EmptyVector),
                }),
                other => self.bad_default(loc, other, "a vector field can only default to `[]`"),
            },
            Type::Table(_) | Type::Struct(_) | Type::Union(_) | Type::Array(..) => {
                let what = self.describe_type(ty);
                self.bad_default(
                    loc,
                    &literal.kind,
                    &format!("fields of type {what} cannot have a default"),
                )
            }
        }
    }

    fn bad_default(&mut self, loc: Loc, literal: &LiteralKind, why: &str) -> Option<FieldDefault> {
        self.report(
            Diagnostic::error(format!("invalid default `{}`", literal_text(literal)))
                .at(loc, why.to_string()),
        );
        None
    }

    /// The numeric default of an enum field: a value name, names of bit flags in a string, or a
    /// number. Without a written default the value is 0, which must then be a value of the enum
    /// (unless it is a bit_flags enum, where 0 means no flag set).
    fn enum_default(
        &mut self,
        id: crate::model::DeclId,
        field_name: &str,
        literal: Option<&Literal>,
        loc: Loc,
    ) -> Option<Value> {
        let Some(crate::model::DeclKind::Enum(checked)) = &self.kinds[id.0 as usize] else {
            // The enum itself has errors, already reported.
            return None;
        };
        let checked: Enum = checked.clone();
        let enum_name = self.source(id).name.dotted();
        let ty = checked.underlying.keyword();
        let by_name = |name: &str| checked.values.iter().find(|v| v.name == name).map(|v| v.value);
        let (value, written) = match literal.map(|l| &l.kind) {
            None => (0, None),
            Some(LiteralKind::Int(text)) => (parse_int(text)?, Some(text.clone())),
            Some(LiteralKind::Str(text)) if parse_int(text).is_some() => {
                (parse_int(text)?, Some(text.clone()))
            }
            Some(LiteralKind::Name(path)) if path.parts.len() == 1 => {
                let name = &path.parts[0].text;
                match by_name(name) {
                    Some(value) => return Some(Value::Int(value)),
                    None => return self.unknown_enum_value(loc, &enum_name, name, &checked),
                }
            }
            Some(LiteralKind::Str(names)) => {
                let names: Vec<&str> = names.split_whitespace().collect();
                if names.len() != 1 && !checked.bit_flags {
                    self.report(
                        Diagnostic::error(format!(
                            "enum `{enum_name}` is not bit_flags: its default must be one value"
                        ))
                        .at(loc, format!("{} values given", names.len())),
                    );
                    return None;
                }
                let mut combined = 0;
                for name in names {
                    match by_name(name) {
                        Some(value) => combined |= value,
                        None => return self.unknown_enum_value(loc, &enum_name, name, &checked),
                    }
                }
                return Some(Value::Int(combined));
            }
            Some(other) => {
                let help = match other {
                    LiteralKind::Name(path) => path
                        .parts
                        .last()
                        .map(|last| format!("write the value's name alone: `{}`", last.text)),
                    _ => None,
                };
                let mut diagnostic = Diagnostic::error(format!(
                    "invalid default `{}` for enum `{enum_name}`",
                    literal_text(other)
                ))
                .at(loc, "expected a value of the enum");
                if let Some(help) = help {
                    diagnostic = diagnostic.help(help);
                }
                self.report(diagnostic);
                return None;
            }
        };
        if let Some((min, max)) =
            checked.underlying.int_range().filter(|(min, max)| value < *min || value > *max)
        {
            self.report(
                Diagnostic::error(format!("default value `{value}` does not fit in `{ty}`"))
                    .at(loc, format!("enum `{enum_name}` is a `{ty}`, which holds {min} to {max}")),
            );
            return None;
        }
        if !checked.bit_flags && !checked.values.iter().any(|v| v.value == value) {
            let first = checked.values.first().map(|v| v.name.clone());
            let mut diagnostic = match written {
                Some(text) => Diagnostic::error(format!(
                    "default value `{text}` is not a value of enum `{enum_name}`"
                ))
                .at(loc, "no value of the enum has this number"),
                None => Diagnostic::error(format!(
                    "enum `{enum_name}` has no value 0, so field `{field_name}` needs a default"
                ))
                .at(loc, "no value is 0")
                .note("a field without a default is 0"),
            };
            if let Some(first) = first {
                diagnostic = diagnostic.help(format!("give the field a default of the enum, e.g. `{field_name}: {enum_name} = {first}`"));
            }
            self.report(diagnostic);
            return None;
        }
        Some(Value::Int(value))
    }

    fn unknown_enum_value(
        &mut self,
        loc: Loc,
        enum_name: &str,
        name: &str,
        checked: &Enum,
    ) -> Option<Value> {
        let names: Vec<&str> = checked.values.iter().map(|v| v.name.as_str()).collect();
        self.report(
            Diagnostic::error(format!("enum `{enum_name}` has no value `{name}`"))
                .at(loc, "unknown enum value")
                .note(format!("its values are: {}", names.join(", "))),
        );
        None
    }
}

fn zero(scalar: Scalar) -> Value {
    if scalar.is_float() { Value::Float(0.0) } else { Value::Int(0) }
}

fn value_error(literal: &LiteralKind, scalar: Scalar, error: ValueError, loc: Loc) -> Diagnostic {
    let written = literal_text(literal);
    let ty = scalar.keyword();
    match error {
        ValueError::OutOfRange { min, max } => {
            Diagnostic::error(format!("default value `{written}` does not fit in `{ty}`"))
                .at(loc, format!("`{ty}` holds {min} to {max}"))
        }
        ValueError::FloatForInteger => {
            Diagnostic::error(format!("default value `{written}` is not an integer"))
                .at(loc, format!("a `{ty}` field needs an integer default"))
        }
        ValueError::NotA { expected } => {
            let diagnostic =
                Diagnostic::error(format!("invalid default `{written}` for a `{ty}` field"))
                    .at(loc, format!("expected {expected}"));
            if matches!(literal, LiteralKind::Name(_)) {
                diagnostic.note("value names are only defaults of enum fields")
            } else {
                diagnostic
            }
        }
    }
}
