//! Literal values: parsing numbers as flatc reads them, and checking they fit their type.
//!
//! The syntax tree keeps literals as written; only here, knowing the type, do they become
//! [`Value`]s. Integers may be decimal or `0x` hex with a sign; floats may also be hex floats
//! (`0x1.8p1`), `nan`, `inf` or `infinity`, signed. flatc accepts a scalar default in quotes
//! (`"12"`), so quoted text is parsed the same way.

use crate::model::{Scalar, Value};
use crate::syntax::ast::LiteralKind;

/// An integer literal: optional sign, then decimal digits or `0x` and hex digits.
pub(super) fn parse_int(text: &str) -> Option<i128> {
    let (negative, digits) = split_sign(text.trim());
    let magnitude = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => u128::from_str_radix(hex, 16).ok()?,
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse::<u128>().ok()?
        }
        None => return None,
    };
    let magnitude = i128::try_from(magnitude).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// A float literal: decimal (`1.5`, `.5`, `5.`, `1e9`), hex float (`0x1.8p1`), `nan`, `inf`,
/// `infinity`, each optionally signed; integers are floats too.
pub(super) fn parse_float(text: &str) -> Option<f64> {
    let text = text.trim();
    let (negative, body) = split_sign(text);
    let magnitude = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) => parse_hex_float(hex)?,
        // Rust's parser knows decimal, exponent, `inf`, `infinity` and `nan`, and nothing else.
        None if !body.starts_with(['+', '-']) => body.parse::<f64>().ok()?,
        None => return None,
    };
    Some(if negative { -magnitude } else { magnitude })
}

fn split_sign(text: &str) -> (bool, &str) {
    if let Some(rest) = text.strip_prefix('-') {
        (true, rest)
    } else {
        (false, text.strip_prefix('+').unwrap_or(text))
    }
}

/// The part of a hex float after `0x`: hex digits with an optional point, then an optional
/// binary exponent `p±N`.
fn parse_hex_float(hex: &str) -> Option<f64> {
    let (mantissa, exponent) = match hex.split_once(['p', 'P']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (hex, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in whole.chars().chain(fraction.chars()) {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let scale = exponent - 4 * fraction.len() as i32;
    Some(value * 2f64.powi(scale))
}

/// Why a literal cannot be a value of a scalar type; the caller turns it into a diagnostic.
#[derive(Debug, PartialEq)]
pub(super) enum ValueError {
    /// Not a number (or not a bool) at all.
    NotA { expected: &'static str },
    /// A float where an integer is needed.
    FloatForInteger,
    /// A number outside the type's range.
    OutOfRange { min: i128, max: i128 },
}

/// The value of a numeric, bool or quoted literal for a scalar field. Names (enum values),
/// `null` and `[]` are the caller's business.
pub(super) fn scalar_value(literal: &LiteralKind, scalar: Scalar) -> Result<Value, ValueError> {
    match literal {
        LiteralKind::Bool(b) if scalar == Scalar::Bool => Ok(Value::Int(i128::from(*b))),
        LiteralKind::Str(text)
            if scalar == Scalar::Bool && matches!(text.trim(), "true" | "false") =>
        {
            Ok(Value::Int(i128::from(text.trim() == "true")))
        }
        LiteralKind::Int(text) | LiteralKind::Str(text) if scalar.is_float() => {
            parse_float(text).map(Value::Float).ok_or(ValueError::NotA { expected: "a number" })
        }
        LiteralKind::Float(text) if scalar.is_float() => {
            parse_float(text).map(Value::Float).ok_or(ValueError::NotA { expected: "a number" })
        }
        LiteralKind::Float(_) => Err(ValueError::FloatForInteger),
        LiteralKind::Int(text) | LiteralKind::Str(text) => {
            let Some(value) = parse_int(text) else {
                return Err(if parse_float(text).is_some() {
                    ValueError::FloatForInteger
                } else {
                    ValueError::NotA { expected: expected_kind(scalar) }
                });
            };
            check_range(value, scalar).map(|()| Value::Int(value))
        }
        _ => Err(ValueError::NotA { expected: expected_kind(scalar) }),
    }
}

fn expected_kind(scalar: Scalar) -> &'static str {
    match scalar {
        Scalar::Bool => "`true` or `false`",
        _ if scalar.is_float() => "a number",
        _ => "an integer",
    }
}

/// Checks an integer against the range of an integer (or bool) scalar.
pub(super) fn check_range(value: i128, scalar: Scalar) -> Result<(), ValueError> {
    match scalar.int_range() {
        Some((min, max)) if value < min || value > max => Err(ValueError::OutOfRange { min, max }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_in_decimal_and_hex_with_signs() {
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("-0x10"), Some(-16));
        assert_eq!(parse_int("+7"), Some(7));
        assert_eq!(parse_int("18446744073709551615"), Some(u64::MAX as i128));
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(parse_int("--1"), None);
        assert_eq!(parse_int(""), None);
    }

    #[test]
    fn floats_in_every_spelling_flatc_accepts() {
        assert_eq!(parse_float("0x1.8p1"), Some(3.0));
        assert_eq!(parse_float("-0x10"), Some(-16.0));
        assert_eq!(parse_float("0x.8"), Some(0.5));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("5."), Some(5.0));
        assert_eq!(parse_float("+1e3"), Some(1000.0));
        assert_eq!(parse_float("-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float("infinity"), Some(f64::INFINITY));
        assert!(parse_float("nan").is_some_and(f64::is_nan));
        assert_eq!(parse_float("+-1"), None);
        assert_eq!(parse_float("abc"), None);
    }

    #[test]
    fn scalar_values_are_range_checked() {
        let int = |s: &str| LiteralKind::Int(s.to_string());
        assert_eq!(scalar_value(&int("127"), Scalar::I8), Ok(Value::Int(127)));
        assert_eq!(
            scalar_value(&int("300"), Scalar::I8),
            Err(ValueError::OutOfRange { min: -128, max: 127 })
        );
        assert_eq!(
            scalar_value(&int("-1"), Scalar::U64),
            Err(ValueError::OutOfRange { min: 0, max: u64::MAX as i128 })
        );
        assert_eq!(
            scalar_value(&int("2"), Scalar::Bool),
            Err(ValueError::OutOfRange { min: 0, max: 1 })
        );
        assert_eq!(scalar_value(&LiteralKind::Bool(true), Scalar::Bool), Ok(Value::Int(1)));
        assert_eq!(
            scalar_value(&LiteralKind::Float("1.5".into()), Scalar::I32),
            Err(ValueError::FloatForInteger)
        );
        assert_eq!(scalar_value(&LiteralKind::Str("12".into()), Scalar::I32), Ok(Value::Int(12)));
        assert_eq!(scalar_value(&int("3"), Scalar::F32), Ok(Value::Float(3.0)));
        assert!(scalar_value(&LiteralKind::Bool(true), Scalar::I32).is_err());
    }
}
