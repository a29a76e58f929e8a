//! TypeScript names for schema names: escaping, flatc's case conversion, module files and the
//! aliases modules import each other under.
//!
//! Every name generated code needs for itself is out of the schema's reach: the runtime is
//! imported as `$fb` and `$v`, other namespaces' modules as `$ns$a$b`, and schema identifiers
//! cannot contain `$`. Globals the generated code uses (`BigInt`, `Uint8Array`...) are escaped
//! when a schema declares them, as are reserved words.

use crate::case::snake;

/// Words that cannot name a class, enum, type, function, variable or parameter in a strict-mode
/// ES module, plus the TypeScript type keywords a class may not be named after, plus the globals
/// generated code refers to (which a declaration of that name would shadow).
const RESERVED: &[&str] = &[
    // ECMAScript reserved words, strict mode and module code included.
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "implements",
    "interface",
    "let",
    "package",
    "private",
    "protected",
    "public",
    "static",
    "yield",
    "await",
    "arguments",
    "eval",
    // TypeScript's predefined type names.
    "any",
    "unknown",
    "never",
    "number",
    "bigint",
    "boolean",
    "string",
    "symbol",
    "object",
    "undefined",
    // Globals generated code uses.
    "globalThis",
    "BigInt",
    "NaN",
    "Infinity",
    "Promise",
    "Uint8Array",
    "Int8Array",
    "Uint16Array",
    "Int16Array",
    "Uint32Array",
    "Int32Array",
    "Float32Array",
    "Float64Array",
    "BigInt64Array",
    "BigUint64Array",
];

/// Member names that mean something special to JavaScript classes and object literals.
const SPECIAL_MEMBERS: &[&str] = &["constructor", "__proto__", "prototype"];

/// The identifier for a schema name used as a binding (class, enum, type, function, parameter):
/// unchanged, or with a `_` suffix when it is reserved (`super` becomes `super_`, as flatc
/// writes it).
pub(crate) fn ident(name: &str) -> String {
    if RESERVED.contains(&name) { format!("{name}_") } else { name.to_owned() }
}

/// Names generated functions bind (`builder`, `index`, `obj`, `offset`, `args`, `init`,
/// lambda parameters...) in bodies that refer to schema types: a type of one of these names would
/// be shadowed there.
const BOUND_NAMES: &[&str] = &[
    "builder",
    "bb",
    "i",
    "index",
    "obj",
    "optionalEncoding",
    "offset",
    "bytes",
    "options",
    "args",
    "data",
    "key",
    "init",
    "o",
    "x",
    "payload",
    "reply",
    "request",
    "message",
    "client",
    "defaults",
];

/// The identifier a schema type (or a service's descriptor) is declared and referred to by:
/// [`ident`], and also escaped when it is one of the names generated functions bind.
pub(crate) fn type_ident(name: &str) -> String {
    if BOUND_NAMES.contains(&name) { format!("{name}_") } else { ident(name) }
}

/// The parameter a field is passed as (`addMana(builder, mana)`, `createVec3(builder, x, y, z)`):
/// its lowerCamelCase name, escaped as a binding, and never `builder`, the parameter beside it.
pub(crate) fn param(name: &str) -> String {
    let p = ident(&camel(name));
    if p == "builder" { "builder_".to_owned() } else { p }
}

/// A member name (method, property, object key): unchanged unless JavaScript gives it a special
/// meaning or the class already has a member of that name (`taken`), then with a `_` suffix.
pub(crate) fn member(name: &str, taken: &[&str]) -> String {
    if SPECIAL_MEMBERS.contains(&name) || taken.contains(&name) {
        format!("{name}_")
    } else {
        name.to_owned()
    }
}

/// lowerCamelCase as flatc's TypeScript generator writes field and method names: the name in
/// snake_case (flatc's conversion), then each `_` dropped and the letter after it upper-cased
/// (`a_ubyte` → `aUbyte`, `an_int8` → `anInt8`, `HTTPServer` → `httpserver`). A leading
/// underscore is kept.
pub(crate) fn camel(name: &str) -> String {
    let snake = snake(name);
    let (lead, rest) = match snake.strip_prefix('_') {
        Some(rest) => ("_", rest),
        None => ("", snake.as_str()),
    };
    let mut out = String::from(lead);
    let mut upper = false;
    for c in rest.chars() {
        if c == '_' {
            upper = !out.is_empty() && out != "_";
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// UpperCamelCase: [`camel`] with its first letter upper-cased, for names built from a prefix
/// (`addAUbyte`, `equippedAsWeapon`).
pub(crate) fn upper_camel(name: &str) -> String {
    let camel = camel(name);
    let mut chars = camel.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => camel,
    }
}

/// The file holding namespace `ns`, relative to the output folder: `my/game.ts`, and `index.ts`
/// for the root namespace.
pub(crate) fn module_file(ns: &[String]) -> String {
    if ns.is_empty() { "index.ts".to_owned() } else { format!("{}.ts", ns.join("/")) }
}

/// The specifier that imports namespace `to`'s module from namespace `from`'s: `./game/arms.js`,
/// `../index.js`.
pub(crate) fn import_path(from: &[String], to: &[String]) -> String {
    // The folder of `from`'s file, and `to`'s file as folder + stem.
    let from_dir: &[String] = if from.is_empty() { &[] } else { &from[..from.len() - 1] };
    let (to_dir, to_stem): (&[String], &str) = match to.split_last() {
        Some((last, dir)) => (dir, last),
        None => (&[], "index"),
    };
    let common = from_dir.iter().zip(to_dir).take_while(|(a, b)| a == b).count();
    let mut path = String::new();
    if common == from_dir.len() {
        path.push_str("./");
    } else {
        for _ in common..from_dir.len() {
            path.push_str("../");
        }
    }
    for part in &to_dir[common..] {
        path.push_str(part);
        path.push('/');
    }
    path.push_str(to_stem);
    path.push_str(".js");
    path
}

/// The alias a module imports namespace `ns`'s module under: `$ns$my$game`, `$ns` for the root.
pub(crate) fn module_alias(ns: &[String]) -> String {
    let mut alias = "$ns".to_owned();
    for part in ns {
        alias.push('$');
        alias.push_str(part);
    }
    alias
}

/// A JavaScript string literal for `text`, double-quoted, with every character that needs it
/// escaped (quotes, backslashes, control characters, the line separators U+2028 and U+2029).
pub(crate) fn string_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn camel_matches_flatc_for_snake_case_names() {
        // The names flatc 25.12.19's TypeScript output uses for these fields.
        assert_eq!(camel("a_ubyte"), "aUbyte");
        assert_eq!(camel("an_int8"), "anInt8");
        assert_eq!(camel("root_type"), "rootType");
        assert_eq!(camel("x_1y"), "x1y");
        assert_eq!(camel("aB_cD"), "aBCD");
        assert_eq!(camel("HTTPServer2"), "httpserver2");
        assert_eq!(camel("Self"), "self");
        assert_eq!(camel("_lead"), "_lead");
        assert_eq!(upper_camel("a_ulong"), "AUlong");
        assert_eq!(upper_camel("corpus_common_Tag"), "CorpusCommonTag");
    }

    #[test]
    fn reserved_words_and_used_globals_are_escaped() {
        assert_eq!(ident("super"), "super_");
        assert_eq!(ident("enum"), "enum_");
        assert_eq!(ident("string"), "string_");
        assert_eq!(ident("BigInt"), "BigInt_");
        assert_eq!(ident("type"), "type");
        assert_eq!(ident("Self"), "Self");
        assert_eq!(type_ident("builder"), "builder_");
        assert_eq!(type_ident("type"), "type");
        assert_eq!(param("builder"), "builder_");
        assert_eq!(member("constructor", &[]), "constructor_");
        assert_eq!(member("bb", &["bb", "bb_pos"]), "bb_");
        assert_eq!(member("enum", &[]), "enum");
    }

    #[test]
    fn modules_import_each_other_by_relative_paths() {
        assert_eq!(module_file(&[]), "index.ts");
        assert_eq!(module_file(&ns(&["my", "game"])), "my/game.ts");
        assert_eq!(
            import_path(&ns(&["my", "game"]), &ns(&["my", "game", "arms"])),
            "./game/arms.js"
        );
        assert_eq!(import_path(&ns(&["my", "game", "arms"]), &ns(&["my", "game"])), "../game.js");
        assert_eq!(import_path(&ns(&["my", "game"]), &[]), "../index.js");
        assert_eq!(import_path(&[], &ns(&["my"])), "./my.js");
        assert_eq!(import_path(&ns(&["a", "b", "c"]), &ns(&["a", "x"])), "../x.js");
        assert_eq!(import_path(&ns(&["a"]), &ns(&["b"])), "./b.js");
        assert_eq!(module_alias(&ns(&["my", "game"])), "$ns$my$game");
        assert_eq!(module_alias(&[]), "$ns");
    }

    #[test]
    fn string_literals_escape_what_javascript_needs() {
        assert_eq!(string_literal("\"café\"\n\u{2028}\0"), r#""\"café\"\n\u2028\u0000""#);
    }
}
