//! How scalars are spelt, read and written in TypeScript, and their default values.
//!
//! 64-bit integers are `bigint`, everything else numeric is `number`, `bool` is `boolean`.
//! Defaults denote exactly the value a field stores: a `float` default is the `f32` value as a
//! JavaScript number (`0.1` becomes `0.10000000149011612`, what reading the stored `0.1` gives),
//! so comparing a value read from a buffer with its default works.

use crate::model::{Enum, Field, Presence, Scalar, Value};

use super::names::string_literal;

/// The TypeScript type of a scalar's values.
pub(crate) fn ts_type(s: Scalar) -> &'static str {
    match s {
        Scalar::Bool => "boolean",
        Scalar::I64 | Scalar::U64 => "bigint",
        _ => "number",
    }
}

/// True for the 64-bit integers, which are `bigint`s.
pub(crate) fn is_64(s: Scalar) -> bool {
    matches!(s, Scalar::I64 | Scalar::U64)
}

/// The `ByteBuffer` method reading a scalar (`readInt16`...); bools read as `readInt8`.
pub(crate) fn read_method(s: Scalar) -> &'static str {
    match s {
        Scalar::Bool | Scalar::I8 => "readInt8",
        Scalar::U8 => "readUint8",
        Scalar::I16 => "readInt16",
        Scalar::U16 => "readUint16",
        Scalar::I32 => "readInt32",
        Scalar::U32 => "readUint32",
        Scalar::I64 => "readInt64",
        Scalar::U64 => "readUint64",
        Scalar::F32 => "readFloat32",
        Scalar::F64 => "readFloat64",
    }
}

/// The expression reading a scalar at `pos` from ByteBuffer `bb`.
pub(crate) fn read(s: Scalar, bb: &str, pos: &str) -> String {
    let method = read_method(s);
    if s == Scalar::Bool {
        format!("!!{bb}.{method}({pos})")
    } else {
        format!("{bb}.{method}({pos})")
    }
}

/// The width part of the builder's method names: `Int8`, `Int16`, `Int32`, `Int64`, `Float32`,
/// `Float64` (the builder writes signed and unsigned alike).
pub(crate) fn builder_width(s: Scalar) -> &'static str {
    match s {
        Scalar::Bool | Scalar::I8 | Scalar::U8 => "Int8",
        Scalar::I16 | Scalar::U16 => "Int16",
        Scalar::I32 | Scalar::U32 => "Int32",
        Scalar::I64 | Scalar::U64 => "Int64",
        Scalar::F32 => "Float32",
        Scalar::F64 => "Float64",
    }
}

/// `value` as the builder takes it: bools become 0 or 1.
pub(crate) fn to_builder(s: Scalar, value: &str) -> String {
    if s == Scalar::Bool { format!("+{value}") } else { value.to_owned() }
}

/// The typed array class viewing a vector of this scalar, if JavaScript has one (not for bools).
pub(crate) fn typed_array(s: Scalar) -> Option<&'static str> {
    Some(match s {
        Scalar::Bool => return None,
        Scalar::I8 => "Int8Array",
        Scalar::U8 => "Uint8Array",
        Scalar::I16 => "Int16Array",
        Scalar::U16 => "Uint16Array",
        Scalar::I32 => "Int32Array",
        Scalar::U32 => "Uint32Array",
        Scalar::I64 => "BigInt64Array",
        Scalar::U64 => "BigUint64Array",
        Scalar::F32 => "Float32Array",
        Scalar::F64 => "Float64Array",
    })
}

/// A literal of type `s` for `value`: `true`, `-128`, `BigInt("18446744073709551615")`,
/// `0.10000000149011612`, `NaN`, `-Infinity`.
pub(crate) fn literal(s: Scalar, value: Value) -> String {
    match s {
        Scalar::Bool => {
            let truth = match value {
                Value::Int(i) => i != 0,
                Value::Float(f) => f != 0.0,
            };
            truth.to_string()
        }
        Scalar::F32 | Scalar::F64 => {
            let f = match value {
                Value::Int(i) => i as f64,
                Value::Float(f) => f,
            };
            float(s, f)
        }
        _ => {
            let i = match value {
                Value::Int(i) => i,
                Value::Float(f) => f as i128,
            };
            int(s, i)
        }
    }
}

/// An integer literal of type `s`: a number, or a `bigint` for the 64-bit types.
pub(crate) fn int(s: Scalar, value: i128) -> String {
    if is_64(s) {
        format!("BigInt({})", string_literal(&value.to_string()))
    } else {
        value.to_string()
    }
}

/// A float literal for the value a field of type `s` stores.
fn float(s: Scalar, value: f64) -> String {
    // Out-of-range `float` values round to infinity when stored, as in C++.
    let value = if s == Scalar::F32 { f64::from(value as f32) } else { value };
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // `{:?}` prints the shortest text that reads back as the same `f64`, which JavaScript reads
    // the same way (`0.5`, `1e39`, `-0.0`).
    format!("{value:?}")
}

/// The default of a scalar field (`Presence::Default`), as a literal of its type.
pub(crate) fn scalar_default(s: Scalar, field: &Field) -> String {
    literal(s, field.default.unwrap_or(Value::Int(0)))
}

/// True when a field's reader, object and builders treat it as always having a value: scalars
/// with a default, required fields, strings and vectors with a default. (As in the Rust backend.)
pub(crate) fn always_present(field: &Field) -> bool {
    field.presence == Presence::Default || is_required(field) || field.default_nonscalar.is_some()
}

/// Required non-scalar fields (a `key` string is implicitly required, as flatc has it).
pub(crate) fn is_required(field: &Field) -> bool {
    field.presence == Presence::Required || (field.key && !field.ty.is_scalar_like())
}

/// True for an enum whose values are `bigint`s (a 64-bit underlying type).
pub(crate) fn enum_is_64(e: &Enum) -> bool {
    is_64(e.underlying)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_denote_the_stored_value() {
        assert_eq!(literal(Scalar::F32, Value::Float(0.1)), "0.10000000149011612");
        assert_eq!(literal(Scalar::F64, Value::Float(0.1)), "0.1");
        assert_eq!(literal(Scalar::F32, Value::Float(1e39)), "Infinity");
        assert_eq!(literal(Scalar::F64, Value::Float(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(literal(Scalar::F32, Value::Float(f64::NAN)), "NaN");
        assert_eq!(literal(Scalar::F64, Value::Float(5.0)), "5.0");
        assert_eq!(
            literal(Scalar::U64, Value::Int(u64::MAX as i128)),
            "BigInt(\"18446744073709551615\")"
        );
        assert_eq!(literal(Scalar::I8, Value::Int(-128)), "-128");
        assert_eq!(literal(Scalar::Bool, Value::Int(1)), "true");
    }
}
