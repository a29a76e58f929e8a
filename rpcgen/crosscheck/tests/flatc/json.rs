//! Reading the JSON flatc prints, which is not quite JSON: with `--strict-json` it still writes
//! non-finite floats as bare `nan`, `-nan`, `inf` and `-inf`.

use serde_json::Value;

/// Parses flatc's output, replacing each bare non-finite float with a string (`"nan"`, `"inf"`,
/// `"-inf"`), so that two outputs compare equal exactly when flatc printed the same values, NaN
/// included (the sign of a NaN is not kept: no reader can rely on it).
///
/// # Panics
///
/// When the text is not JSON after that replacement: flatc printed something unexpected.
pub(crate) fn parse(text: &str) -> Value {
    let mut json = String::with_capacity(text.len());
    let mut rest = text;
    let mut in_string = false;
    while let Some(c) = rest.chars().next() {
        if in_string {
            // Copy escapes whole, so an escaped quote does not end the string.
            let len = if c == '\\' {
                1 + rest[1..].chars().next().map_or(0, char::len_utf8)
            } else {
                c.len_utf8()
            };
            in_string = c != '"';
            json.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if let Some((token, replacement)) =
            NON_FINITE.iter().find(|(token, _)| starts_word(rest, token))
        {
            json.push_str(replacement);
            rest = &rest[token.len()..];
            continue;
        }
        in_string = c == '"';
        json.push(c);
        rest = &rest[c.len_utf8()..];
    }
    serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("flatc printed invalid JSON ({e}):\n{text}"))
}

/// `ours` (flatc's JSON for a buffer our code wrote) made comparable with `flatc` (its JSON for
/// its own buffer) where the two differ only by a root field listed in [`WRITTEN_DEFAULTS`] that
/// one side holds with its default value and the other leaves out: the field is taken as `flatc`
/// has it. Reading gives the same value either way.
pub(crate) fn without_written_defaults(schema: &str, mut ours: Value, flatc: &Value) -> Value {
    for (name, field, default) in WRITTEN_DEFAULTS {
        let default = parse(default);
        let Some(fields) = ours.as_object_mut() else { continue };
        if *name != schema {
            continue;
        }
        match (flatc.get(*field), fields.get(*field)) {
            (None, Some(value)) if *value == default => {
                fields.remove(*field);
            }
            (Some(value), None) if *value == default => {
                fields.insert((*field).to_owned(), value.clone());
            }
            _ => {}
        }
    }
    ours
}

/// Root fields (schema, field, default as flatc prints it) that one side writes with their
/// default value where the other leaves them out. The object API holds strings and vectors that
/// have a default as plain values (not `Option`s), so `unpack()` fills the default in and
/// `pack()` writes it. A float whose default is NaN is the other way round: `pack()` leaves out
/// the default NaN (compared bit for bit: NaN equals nothing, so comparing with `==` would write
/// it every time), while flatc's `-b` writes a NaN the JSON gives.
pub(crate) const WRITTEN_DEFAULTS: &[(&str, &str, &str)] = &[
    ("scalars", "a_nan", "nan"),
    ("vectors", "greeting", "\"hello\""),
    ("vectors", "motto", r#""\"caf\u00E9\"""#),
    ("vectors", "none_ints", "[]"),
    ("vectors", "none_strings", "[]"),
    ("crlf", "text", "\"crlf\""),
];

/// The bare words flatc prints for non-finite floats, longest first, and the strings they become.
const NON_FINITE: &[(&str, &str)] = &[
    ("-nan", "\"nan\""),
    ("+nan", "\"nan\""),
    ("nan", "\"nan\""),
    ("-inf", "\"-inf\""),
    ("+inf", "\"inf\""),
    ("inf", "\"inf\""),
];

/// Whether `text` starts with `word` followed by something that cannot continue a word.
fn starts_word(text: &str, word: &str) -> bool {
    text.starts_with(word) && !text[word.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn non_finite_floats_become_strings() {
        let value = parse("{\"a\": nan, \"b\": -nan, \"c\": inf, \"d\": -inf, \"e\": [1.5, -inf]}");
        assert_eq!(
            value,
            json!({"a": "nan", "b": "nan", "c": "inf", "d": "-inf", "e": [1.5, "-inf"]})
        );
    }

    #[test]
    fn words_inside_strings_are_kept() {
        let value = parse(r#"{"nan": "inf \"nan\" -inf", "x": "\\", "info": "nancy"}"#);
        assert_eq!(value, json!({"nan": "inf \"nan\" -inf", "x": "\\", "info": "nancy"}));
    }

    #[test]
    fn equal_nans_compare_equal_and_differ_from_numbers() {
        assert_eq!(parse("[nan]"), parse("[-nan]"));
        assert_ne!(parse("[nan]"), parse("[0.0]"));
        assert_ne!(parse("[inf]"), parse("[-inf]"));
    }
}
