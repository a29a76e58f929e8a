//! Scalar types and literal values as Rust tokens.
//!
//! Primitive types are written as `::core::primitive::i32` so that a schema type named `i32` or
//! `bool` cannot shadow them. Floats are emitted so that every model value (an `f64`) becomes
//! valid Rust denoting exactly the value the field stores: `0.5`, `3.0`, `1e30`, NaN and the
//! infinities as associated constants.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use crate::model::{Scalar, Value};

/// The Rust primitive type of a scalar, as an absolute path (one token: see
/// [`names::shared`](super::names::shared)).
pub(crate) fn prim(scalar: Scalar) -> TokenStream {
    thread_local! {
        static PRIMS: Vec<TokenStream> =
            Scalar::ALL.iter().map(|&s| super::names::shared(prim_path(s))).collect();
    }
    PRIMS.with(|prims| prims[scalar as usize].clone())
}

fn prim_path(scalar: Scalar) -> TokenStream {
    match scalar {
        Scalar::Bool => quote!(::core::primitive::bool),
        Scalar::I8 => quote!(::core::primitive::i8),
        Scalar::U8 => quote!(::core::primitive::u8),
        Scalar::I16 => quote!(::core::primitive::i16),
        Scalar::U16 => quote!(::core::primitive::u16),
        Scalar::I32 => quote!(::core::primitive::i32),
        Scalar::U32 => quote!(::core::primitive::u32),
        Scalar::I64 => quote!(::core::primitive::i64),
        Scalar::U64 => quote!(::core::primitive::u64),
        Scalar::F32 => quote!(::core::primitive::f32),
        Scalar::F64 => quote!(::core::primitive::f64),
    }
}

/// A literal of type `scalar` for `value`. Integers used as floats and floats used as integers
/// (which the checker does not produce) are converted rather than rejected.
pub(crate) fn scalar(scalar: Scalar, value: Value) -> TokenStream {
    match scalar {
        Scalar::Bool => {
            let truth = match value {
                Value::Int(i) => i != 0,
                Value::Float(f) => f != 0.0,
            };
            quote!(#truth)
        }
        Scalar::F32 | Scalar::F64 => {
            let f = match value {
                Value::Int(i) => i as f64,
                Value::Float(f) => f,
            };
            float(scalar, f)
        }
        _ => {
            let i = match value {
                Value::Int(i) => i,
                Value::Float(f) => f as i128,
            };
            int(i)
        }
    }
}

/// An unsuffixed integer literal, negated with a `-` token when negative (Rust accepts
/// `-9223372036854775808` for `i64::MIN`).
pub(crate) fn int(value: i128) -> TokenStream {
    let lit = Literal::u128_unsuffixed(value.unsigned_abs());
    if value < 0 { quote!(-#lit) } else { quote!(#lit) }
}

/// A float literal of type `scalar` (f32 or f64) for `value`.
fn float(scalar: Scalar, value: f64) -> TokenStream {
    let ty = prim(scalar);
    // The value the field stores: out-of-range `f32` values round to infinity, as in C++.
    let value = if scalar == Scalar::F32 { f64::from(value as f32) } else { value };
    if value.is_nan() {
        return quote!(#ty::NAN);
    }
    if value.is_infinite() {
        return if value > 0.0 { quote!(#ty::INFINITY) } else { quote!(#ty::NEG_INFINITY) };
    }
    // `{:?}` prints the shortest text that reads back as the same value of that width, always
    // with a `.` or an exponent, so it is a valid float literal.
    let text = if scalar == Scalar::F32 {
        format!("{:?}", (value as f32).abs())
    } else {
        format!("{:?}", value.abs())
    };
    let lit: Literal = text.parse().unwrap_or_else(|_| Literal::f64_unsuffixed(value.abs()));
    if value.is_sign_negative() { quote!(-#lit) } else { quote!(#lit) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: Scalar, v: Value) -> String {
        scalar(s, v).to_string().replace(' ', "")
    }

    #[test]
    fn floats_are_valid_rust() {
        assert_eq!(text(Scalar::F32, Value::Float(0.5)), "0.5");
        assert_eq!(text(Scalar::F32, Value::Float(3.0)), "3.0");
        assert_eq!(text(Scalar::F32, Value::Int(3)), "3.0");
        assert_eq!(text(Scalar::F32, Value::Float(0.1)), "0.1");
        assert_eq!(text(Scalar::F32, Value::Float(16777217.0)), "16777216.0");
        assert_eq!(text(Scalar::F32, Value::Float(1e39)), "::core::primitive::f32::INFINITY");
        assert_eq!(text(Scalar::F64, Value::Float(1e39)), "1e39");
        assert_eq!(text(Scalar::F64, Value::Float(1e30)), "1e30");
        assert_eq!(text(Scalar::F64, Value::Float(-2.5)), "-2.5");
        assert_eq!(text(Scalar::F64, Value::Float(-0.0)), "-0.0");
        assert_eq!(text(Scalar::F32, Value::Float(f64::NAN)), "::core::primitive::f32::NAN");
        assert_eq!(
            text(Scalar::F64, Value::Float(f64::NEG_INFINITY)),
            "::core::primitive::f64::NEG_INFINITY"
        );
        assert_eq!(
            text(Scalar::F32, Value::Float(f64::INFINITY)),
            "::core::primitive::f32::INFINITY"
        );
    }

    #[test]
    fn integers_and_bools() {
        assert_eq!(text(Scalar::I64, Value::Int(i64::MIN as i128)), "-9223372036854775808");
        assert_eq!(text(Scalar::U64, Value::Int(u64::MAX as i128)), "18446744073709551615");
        assert_eq!(text(Scalar::Bool, Value::Int(1)), "true");
        assert_eq!(text(Scalar::Bool, Value::Int(0)), "false");
    }
}
