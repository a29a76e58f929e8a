//! String literals: unescaping `"..."` and `'...'` the way flatc does.
//!
//! Escapes: `\n \t \r \b \f \" \' \\ \/`, `\xHH` (one byte) and `\uXXXX` (a UTF-16 code unit;
//! a surrogate pair makes one character). Raw control characters are not allowed, and the bytes
//! must form valid UTF-8 once unescaped (`"\xC3\xA9"` is `é`, `"\xFF"` is an error), as in flatc.

use std::ops::Range;

/// A problem inside a string literal, at `range` (byte offsets from the opening quote).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EscapeError {
    pub(crate) range: Range<usize>,
    pub(crate) message: String,
}

/// The value of a string literal written as `literal`, both quotes included (the grammar
/// guarantees them, and that no escape swallows the closing one).
pub(crate) fn unescape(literal: &str) -> Result<String, EscapeError> {
    let end = literal.len().saturating_sub(1);
    let mut bytes = Vec::with_capacity(end);
    let mut i = 1;
    while i < end {
        let c = literal[i..].chars().next().unwrap_or_default();
        if c != '\\' {
            if c.is_control() && c != '\u{7f}' {
                let message = format!("control character `{}` in a string", c.escape_default());
                return Err(error(i..i + c.len_utf8(), message));
            }
            push_char(&mut bytes, c);
            i += c.len_utf8();
            continue;
        }
        let kind = literal[i + 1..].chars().next().unwrap_or_default();
        match kind {
            'n' | 't' | 'r' | 'b' | 'f' | '"' | '\'' | '\\' | '/' => {
                bytes.push(match kind {
                    'n' => b'\n',
                    't' => b'\t',
                    'r' => b'\r',
                    'b' => 0x08,
                    'f' => 0x0c,
                    _ => kind as u8,
                });
                i += 2;
            }
            'x' => {
                bytes.push(hex(literal, i, 2, end)? as u8);
                i += 4;
            }
            'u' => {
                let unit = hex(literal, i, 4, end)?;
                let mut code = unit;
                let mut next = i + 6;
                if (0xD800..0xDC00).contains(&unit) {
                    let low = literal[next..end]
                        .starts_with("\\u")
                        .then(|| hex(literal, next, 4, end).ok())
                        .flatten()
                        .filter(|low| (0xDC00..0xE000).contains(low));
                    if let Some(low) = low {
                        code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        next += 6;
                    }
                }
                let c = char::from_u32(code).ok_or_else(|| {
                    error(i..i + 6, "unpaired surrogate in a `\\u` escape".to_string())
                })?;
                push_char(&mut bytes, c);
                i = next;
            }
            other => {
                let message = format!("unknown escape `\\{}`", other.escape_default());
                return Err(error(i..i + 1 + other.len_utf8(), message));
            }
        }
    }
    String::from_utf8(bytes).map_err(|_| {
        error(0..literal.len(), "the escapes in this string make invalid utf-8".to_string())
    })
}

/// The `count` hex digits after the escape `\x` or `\u` that starts at `escape`.
fn hex(literal: &str, escape: usize, count: usize, end: usize) -> Result<u32, EscapeError> {
    let start = escape + 2;
    literal
        .get(start..(start + count).min(end))
        .filter(|digits| digits.len() == count && digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|digits| u32::from_str_radix(digits, 16).ok())
        .ok_or_else(|| {
            let message =
                format!("expected {count} hex digits after `{}`", &literal[escape..start]);
            error(escape..start, message)
        })
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

fn error(range: Range<usize>, message: String) -> EscapeError {
    EscapeError { range, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_escape_unescapes() {
        let lit = r#""\n\t\r\b\f\"\'\\\/\x41\u00e9\uD83D\uDE00z""#;
        assert_eq!(unescape(lit).unwrap(), "\n\t\r\u{8}\u{c}\"'\\/Aé😀z");
        assert_eq!(unescape(r"'it\'s'").unwrap(), "it's");
        assert_eq!(unescape("\"\"").unwrap(), "");
    }

    #[test]
    fn hex_bytes_may_spell_utf8_but_not_garbage() {
        assert_eq!(unescape(r#""\xC3\xA9""#).unwrap(), "é");
        let err = unescape(r#""\xff""#).unwrap_err();
        assert_eq!(err.range, 0..6);
        assert!(err.message.contains("invalid utf-8"));
    }

    #[test]
    fn bad_escapes_point_at_themselves() {
        assert_eq!(
            unescape(r#""ab\q""#).unwrap_err(),
            error(3..5, "unknown escape `\\q`".to_string())
        );
        assert_eq!(
            unescape(r#""\x4""#).unwrap_err(),
            error(1..3, "expected 2 hex digits after `\\x`".to_string())
        );
        assert_eq!(
            unescape(r#""\uD83Dx""#).unwrap_err(),
            error(1..7, "unpaired surrogate in a `\\u` escape".to_string())
        );
        assert_eq!(
            unescape("\"a\tb\"").unwrap_err(),
            error(2..3, "control character `\\t` in a string".to_string())
        );
    }
}
