//! `.fbs` parsing: every construct, keywords as names, literals, docs, CRLF, errors, recovery.

use crate::diag::Diagnostic;
use crate::diag::Diagnostics;
use crate::source::{FileId, Span};
use crate::syntax::ast::{Attribute, Literal, LiteralKind, TypeExpr, TypeExprKind};
use crate::syntax::ast::{Compound, FbsFile, Field, Ident, Item, ItemKind, Path};
use crate::syntax::parse_fbs;

fn parse(text: &str) -> (FbsFile, Vec<Diagnostic>) {
    let mut diags = Diagnostics::new();
    let file = parse_fbs(FileId(0), text, &mut diags);
    (file, diags.into_vec())
}

/// The items of a file that must parse without any diagnostic.
fn items(text: &str) -> Vec<Item> {
    let (file, diags) = parse(text);
    assert!(diags.is_empty(), "unexpected diagnostics: {diags:#?}");
    file.items
}

fn table(text: &str) -> Compound {
    match items(text).remove(0).kind {
        ItemKind::Table(table) => table,
        other => panic!("not a table: {other:?}"),
    }
}

/// Each error as (message, text under its primary label).
fn errors(text: &str) -> Vec<(String, String)> {
    let (_, diags) = parse(text);
    diags
        .iter()
        .map(|d| {
            let label = d
                .labels
                .iter()
                .find(|l| l.primary)
                .expect("a primary label");
            (d.message.clone(), text[label.loc.span.range()].to_string())
        })
        .collect()
}

/// An identifier found at its first occurrence in `text`.
fn ident(text: &str, name: &str) -> Ident {
    ident_at(text, name, 0)
}

fn ident_at(text: &str, name: &str, from: usize) -> Ident {
    let start = from + text[from..].find(name).expect("name in text");
    Ident {
        text: name.to_string(),
        span: Span::new(start, start + name.len()),
    }
}

fn named(text: &str, name: &str, from: usize) -> TypeExpr {
    let id = ident_at(text, name, from);
    let path = Path {
        span: id.span,
        parts: vec![id.clone()],
    };
    TypeExpr {
        kind: TypeExprKind::Named(path),
        span: id.span,
    }
}

fn names(values: impl IntoIterator<Item = Ident>) -> Vec<String> {
    values.into_iter().map(|i| i.text).collect()
}

/// The literal kinds of each default in a table.
fn defaults(text: &str) -> Vec<LiteralKind> {
    table(text)
        .fields
        .into_iter()
        .map(|f| f.default.expect("a default").kind)
        .collect()
}

/// `Debug` output with every span removed, to compare trees parsed from different layouts.
fn without_spans(file: &FbsFile) -> String {
    let debug = format!("{file:?}");
    let mut out = String::new();
    let mut rest = debug.as_str();
    while let Some(at) = rest.find("Span { start: ") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        rest = &rest[rest.find('}').expect("span closes") + 1..];
    }
    out + rest
}

#[test]
fn table_parses_to_the_exact_tree() {
    let text = "table T (a) { x: int = 1 (id: 0); }";
    let expected = Compound {
        name: ident(text, "T"),
        docs: vec![],
        attributes: vec![Attribute {
            name: ident_at(text, "a", 8),
            value: None,
            span: Span::new(9, 10),
        }],
        fields: vec![Field {
            name: ident(text, "x"),
            ty: named(text, "int", 0),
            default: Some(Literal {
                kind: LiteralKind::Int("1".into()),
                span: Span::new(23, 24),
            }),
            docs: vec![],
            attributes: vec![Attribute {
                name: ident(text, "id"),
                value: Some(Literal {
                    kind: LiteralKind::Int("0".into()),
                    span: Span::new(30, 31),
                }),
                span: Span::new(26, 31),
            }],
            span: Span::new(14, 33),
        }],
    };
    let parsed = items(text);
    assert_eq!(
        parsed,
        vec![Item {
            kind: ItemKind::Table(expected),
            span: Span::new(0, 35)
        }]
    );
}

#[test]
fn every_declaration_kind() {
    let text = r#"include "a.fbs";
include 'b.fbs';
native_include "c.h";
namespace a.b;
attribute "priority";
attribute bare;
struct Vec3 { x: float; y: float; }
enum Color : byte (bit_flags) { Red = 0, Green, Blue = 0x4, }
union Any : ubyte { Vec3, Alias: a.b.Other = 5, }
rpc_service S (x) { Get(Req):a.Resp (streaming: "server"); Put(R):R; }
root_type a.b.Vec3;
file_identifier "MONS";
file_extension 'mon';
namespace;
"#;
    let kinds: Vec<ItemKind> = items(text).into_iter().map(|i| i.kind).collect();
    let [
        ItemKind::Include(a),
        ItemKind::Include(b),
        ItemKind::NativeInclude(c),
        ItemKind::Namespace(ns),
        ItemKind::AttributeDecl(quoted),
        ItemKind::AttributeDecl(bare),
        ItemKind::Struct(vec3),
        ItemKind::Enum(color),
        ItemKind::Union(any),
        ItemKind::RpcService(service),
        ItemKind::RootType(root),
        ItemKind::FileIdentifier(ident_lit),
        ItemKind::FileExtension(ext),
        ItemKind::Namespace(root_ns),
    ] = kinds.as_slice()
    else {
        panic!("unexpected items: {kinds:#?}")
    };
    assert_eq!(
        (a.value.as_str(), &text[a.span.range()]),
        ("a.fbs", "\"a.fbs\"")
    );
    assert_eq!(
        (b.value.as_str(), &text[b.span.range()]),
        ("b.fbs", "'b.fbs'")
    );
    assert_eq!(c.value, "c.h");
    assert_eq!(ns.dotted(), "a.b");
    assert_eq!(
        (quoted.value.as_str(), bare.value.as_str()),
        ("priority", "bare")
    );
    assert_eq!(&text[bare.span.range()], "bare");
    assert_eq!(
        names(vec3.fields.iter().map(|f| f.name.clone())),
        ["x", "y"]
    );
    assert_eq!(color.underlying, Some(named(text, "byte", 0)));
    assert_eq!(color.attributes[0].name.text, "bit_flags");
    assert_eq!(
        names(color.values.iter().map(|v| v.name.clone())),
        ["Red", "Green", "Blue"]
    );
    let values: Vec<_> = color
        .values
        .iter()
        .map(|v| v.value.as_ref().map(|l| &l.kind))
        .collect();
    let (zero, four) = (LiteralKind::Int("0".into()), LiteralKind::Int("0x4".into()));
    assert_eq!(values, [Some(&zero), None, Some(&four)]);
    assert_eq!(any.underlying, Some(named(text, "ubyte", 0)));
    assert_eq!(any.variants[0].alias, None);
    assert_eq!(
        any.variants[0].ty,
        named(text, "Vec3", text.find("union").unwrap())
    );
    assert_eq!(
        any.variants[1].alias.as_ref().map(|a| a.text.as_str()),
        Some("Alias")
    );
    assert_eq!(&text[any.variants[1].ty.span.range()], "a.b.Other");
    assert_eq!(
        any.variants[1].value.as_ref().map(|v| &v.kind),
        Some(&LiteralKind::Int("5".into()))
    );
    assert_eq!(&text[any.variants[1].span.range()], "Alias: a.b.Other = 5");
    assert_eq!(service.name.text, "S");
    assert_eq!(service.attributes[0].name.text, "x");
    let get = &service.methods[0];
    assert_eq!(
        (get.request.dotted(), get.response.dotted()),
        ("Req".into(), "a.Resp".into())
    );
    assert_eq!(
        get.attributes[0].value.as_ref().map(|v| &v.kind),
        Some(&LiteralKind::Str("server".into()))
    );
    assert_eq!(
        &text[get.span.range()],
        "Get(Req):a.Resp (streaming: \"server\");"
    );
    assert_eq!(service.methods[1].name.text, "Put");
    assert_eq!(root.dotted(), "a.b.Vec3");
    assert_eq!(
        (ident_lit.value.as_str(), ext.value.as_str()),
        ("MONS", "mon")
    );
    let semi = text.rfind(';').unwrap();
    assert_eq!(
        root_ns,
        &Path {
            parts: vec![],
            span: Span::new(semi, semi)
        }
    );
}

#[test]
fn keywords_are_names_where_a_name_is_expected() {
    let text = "table table { table: int; namespace: string; struct: [include]; union: union;
                 int: int; enum: attribute = root_type; include: table.struct (table); }
        table Type { Type: Type; }
        struct struct { rpc_service: float; }
        enum enum : int { table, union = 2, namespace, }
        union union { table, namespace: struct.union }
        rpc_service rpc_service { table(include):namespace (union); }
        attribute table;
        root_type table;";
    let parsed = items(text);
    let ItemKind::Table(first) = &parsed[0].kind else {
        panic!("{parsed:#?}")
    };
    assert_eq!(first.name.text, "table");
    assert_eq!(
        names(first.fields.iter().map(|f| f.name.clone())),
        [
            "table",
            "namespace",
            "struct",
            "union",
            "int",
            "enum",
            "include"
        ]
    );
    let types: Vec<&str> = first
        .fields
        .iter()
        .map(|f| &text[f.ty.span.range()])
        .collect();
    assert_eq!(
        types,
        [
            "int",
            "string",
            "[include]",
            "union",
            "int",
            "attribute",
            "table.struct"
        ]
    );
    let enum_default = first.fields[5].default.as_ref().map(|d| &d.kind);
    assert!(matches!(enum_default, Some(LiteralKind::Name(p)) if p.dotted() == "root_type"));
    assert_eq!(first.fields[6].attributes[0].name.text, "table");
    let ItemKind::Table(ty) = &parsed[1].kind else {
        panic!()
    };
    assert_eq!(
        (ty.name.text.as_str(), ty.fields[0].name.text.as_str()),
        ("Type", "Type")
    );
    let ItemKind::Struct(st) = &parsed[2].kind else {
        panic!()
    };
    assert_eq!(st.name.text, "struct");
    let ItemKind::Enum(en) = &parsed[3].kind else {
        panic!()
    };
    assert_eq!(
        names(en.values.iter().map(|v| v.name.clone())),
        ["table", "union", "namespace"]
    );
    let ItemKind::Union(un) = &parsed[4].kind else {
        panic!()
    };
    assert_eq!(un.name.text, "union");
    assert_eq!(
        un.variants[1].alias.as_ref().map(|a| a.text.as_str()),
        Some("namespace")
    );
    let ItemKind::RpcService(rpc) = &parsed[5].kind else {
        panic!()
    };
    assert_eq!(rpc.name.text, "rpc_service");
    assert_eq!(rpc.methods[0].name.text, "table");
    assert_eq!(rpc.methods[0].request.dotted(), "include");
    assert!(matches!(&parsed[6].kind, ItemKind::AttributeDecl(a) if a.value == "table"));
    assert!(matches!(&parsed[7].kind, ItemKind::RootType(p) if p.dotted() == "table"));
}

#[test]
fn keyword_prefixes_are_plain_names() {
    // `tables`, `structure` and `include_me` start like keywords but are names.
    let t = table("table tables { structure: includes; include_me: int = nan_value; }");
    assert_eq!(t.name.text, "tables");
    assert!(
        matches!(&t.fields[1].default, Some(Literal { kind: LiteralKind::Name(p), .. }) if p.dotted() == "nan_value")
    );
    let (_, diags) = parse("tables T {}");
    assert_eq!(diags.len(), 1);
}

#[test]
fn every_literal_form_is_kept_as_written() {
    let text = r#"table T {
        a: int = 12; b: int = -12; c: int = +3; d: int = 0x1F; e: int = -0X1f;
        f: float = 1.5; g: float = .5; h: float = 5.; i: float = 1e-3; j: float = -2.5E+10;
        k: float = 0x1.8p1; l: float = -0x.8P-2; m: float = nan; n: float = -inf;
        o: float = +infinity; p: float = NaN;
        q: bool = true; r: bool = false; s: string = "x"; t: int = '1';
        u: Color = Red; v: Color = Color.Red; w: int = null; x: [int] = [ ];
    }"#;
    use LiteralKind::*;
    let is_name =
        |kind: &LiteralKind, dotted: &str| matches!(kind, Name(p) if p.dotted() == dotted);
    let kinds = defaults(text);
    assert_eq!(
        kinds[..20],
        [
            Int("12".into()),
            Int("-12".into()),
            Int("+3".into()),
            Int("0x1F".into()),
            Int("-0X1f".into()),
            Float("1.5".into()),
            Float(".5".into()),
            Float("5.".into()),
            Float("1e-3".into()),
            Float("-2.5E+10".into()),
            Float("0x1.8p1".into()),
            Float("-0x.8P-2".into()),
            Float("nan".into()),
            Float("-inf".into()),
            Float("+infinity".into()),
            Float("NaN".into()),
            Bool(true),
            Bool(false),
            Str("x".into()),
            Str("1".into()),
        ]
    );
    assert!(is_name(&kinds[20], "Red"));
    assert!(is_name(&kinds[21], "Color.Red"));
    assert_eq!(kinds[22..], [Null, EmptyVector]);
}

#[test]
fn malformed_numbers_are_syntax_errors_like_in_flatc() {
    // flatc rejects each of these; see the comments in common.pest.
    for bad in ["0x1.8", "1.5f", "1_000", "- 5", "0b101"] {
        let text = format!("table T {{ a: double = {bad}; }}");
        assert_eq!(parse(&text).1.len(), 1, "`{bad}` should be rejected");
    }
}

#[test]
fn strings_are_unescaped_and_bad_escapes_reported_inside_them() {
    let kinds =
        defaults(r#"table T { a: string = "tab\t\"q\" \u00e9\x41"; b: string = 'it\'s'; }"#);
    assert_eq!(
        kinds,
        [
            LiteralKind::Str("tab\t\"q\" éA".into()),
            LiteralKind::Str("it's".into())
        ]
    );
    let text = r#"table T { a: string = "ok\q"; } table U { b: string = "\xff"; }"#;
    assert_eq!(
        errors(text),
        [
            ("unknown escape `\\q`".to_string(), "\\q".to_string()),
            (
                "the escapes in this string make invalid utf-8".to_string(),
                "\"\\xff\"".to_string()
            ),
        ]
    );
}

#[test]
fn types_vectors_and_fixed_arrays() {
    let text = "struct S { a: a.b.T; b: [ubyte]; c: [int:3]; d: [ Vec3 : 0x2 ]; }";
    let ItemKind::Struct(s) = items(text).remove(0).kind else {
        panic!()
    };
    assert!(matches!(&s.fields[0].ty.kind, TypeExprKind::Named(p) if p.dotted() == "a.b.T"));
    let TypeExprKind::Vector(elem) = &s.fields[1].ty.kind else {
        panic!()
    };
    assert_eq!(**elem, named(text, "ubyte", 0));
    let TypeExprKind::Array(elem, len) = &s.fields[2].ty.kind else {
        panic!()
    };
    assert_eq!((**elem).clone(), named(text, "int", 0));
    assert_eq!(len.kind, LiteralKind::Int("3".into()));
    let TypeExprKind::Array(_, len) = &s.fields[3].ty.kind else {
        panic!()
    };
    assert_eq!(len.kind, LiteralKind::Int("0x2".into()));
    assert_eq!(&text[s.fields[3].ty.span.range()], "[ Vec3 : 0x2 ]");
}

#[test]
fn docs_attach_to_the_next_declaration_field_value_variant_or_method() {
    let text = "/// lost: namespaces keep no docs
namespace a;
/// Table docs.
///   indented
// plain comments do not break a doc block
table T {
  /// Field docs.
  a: int;
  b: int;
  /// dropped: nothing follows in the table
}
/// Enum.
enum E : int {
  /// Value.
  A,
  B,
}
union U {
  /// Variant.
  Alias: T,
}
rpc_service S {
  /// Method.
  Get(T):T;
}
";
    let parsed = items(text);
    let ItemKind::Table(t) = &parsed[1].kind else {
        panic!()
    };
    assert_eq!(t.docs, ["Table docs.", "  indented"]);
    assert_eq!(t.fields[0].docs, ["Field docs."]);
    assert!(t.fields[1].docs.is_empty());
    assert_eq!(
        parsed[1].span.start as usize,
        text.find("/// Table").unwrap()
    );
    assert_eq!(
        t.fields[0].span.start as usize,
        text.find("a: int").unwrap()
    );
    let ItemKind::Enum(e) = &parsed[2].kind else {
        panic!()
    };
    assert_eq!(
        (e.docs.as_slice(), e.values[0].docs.as_slice()),
        (&["Enum.".to_string()][..], &["Value.".to_string()][..])
    );
    assert!(e.values[1].docs.is_empty());
    let ItemKind::Union(u) = &parsed[3].kind else {
        panic!()
    };
    assert_eq!(u.variants[0].docs, ["Variant."]);
    let ItemKind::RpcService(s) = &parsed[4].kind else {
        panic!()
    };
    assert_eq!(s.methods[0].docs, ["Method."]);
    assert_eq!(
        parsed[0].span.start as usize,
        text.find("\nnamespace").unwrap() + 1
    );
}

#[test]
fn a_doc_comment_must_be_on_its_own_line() {
    let text = "table T {\n  a: int; /// trailing\n}";
    assert_eq!(
        errors(text),
        [(
            "a documentation comment should be on a line on its own".to_string(),
            "/// trailing".to_string()
        )]
    );
}

#[test]
fn crlf_parses_like_lf_with_spans_into_the_original_text() {
    let lf = "/// Doc.\ntable T {\n  /// A.\n  a: int = 1;\n  b: [string];\n}\nroot_type T;\n";
    let crlf = lf.replace('\n', "\r\n");
    let (lf_file, crlf_file) = (items(lf), items(&crlf));
    assert_eq!(
        without_spans(&FbsFile { items: lf_file }),
        without_spans(&FbsFile {
            items: crlf_file.clone()
        })
    );
    let ItemKind::Table(t) = &crlf_file[0].kind else {
        panic!()
    };
    assert_eq!(t.docs, ["Doc."]);
    assert_eq!(&crlf[t.fields[1].span.range()], "b: [string];");
    assert_eq!(
        &crlf[crlf_file[0].span.range()],
        crlf.split("\r\nroot_type").next().unwrap()
    );
}

#[test]
fn syntax_errors_say_what_was_expected_and_point_at_what_was_found() {
    let cases = [
        (
            "table T { a: int }",
            "expected `;`, `=` or `(`, found `}`",
            "}",
        ),
        ("table T { a: }", "expected a type, found `}`", "}"),
        (
            "tabel T {}",
            "expected a declaration, found `tabel`",
            "tabel",
        ),
        ("table T { a: int = ; }", "expected a value, found `;`", ";"),
        (
            "enum E : int { A = x }",
            "expected an integer, found `x`",
            "x",
        ),
        ("namespace a.;", "expected a name, found `;`", ";"),
        ("include \"a.fbs\"", "expected `;`, found end of file", ""),
        (
            "table T { a: string = \"abc\n; }",
            "expected a value, found an unterminated string",
            "\"abc",
        ),
        (
            "/* open",
            "expected a declaration, found an unterminated comment",
            "/*",
        ),
        (
            "table T { a: int; ",
            "expected a name or `}`, found end of file",
            "",
        ),
        ("table T (a: ) {}", "expected a value, found `)`", ")"),
        (";", "expected a declaration, found `;`", ";"),
    ];
    for (text, message, found) in cases {
        assert_eq!(
            errors(text),
            [(message.to_string(), found.to_string())],
            "in {text:?}"
        );
    }
    // The label sits at the offending token, on its line.
    let (_, diags) = parse("table T {\n  a: int\n}\n");
    assert_eq!(diags[0].labels[0].loc.span, Span::new(19, 20));
}

#[test]
fn recovery_reports_every_broken_item_and_keeps_the_others() {
    let text = "table A { a: }
table B { b: int; }
struct C { c int; }
root_type ;
enum D : int { X }
";
    let (file, diags) = parse(text);
    let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "expected a type, found `}`",
            "expected `:`, found `int`",
            "expected a name, found `;`"
        ]
    );
    let kept: Vec<&str> = file
        .items
        .iter()
        .map(|item| match &item.kind {
            ItemKind::Table(t) => t.name.text.as_str(),
            ItemKind::Enum(e) => e.name.text.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kept, ["B", "D"]);
}

#[test]
fn includes_must_come_before_declarations() {
    let text = "include \"a.fbs\";\nnamespace a;\ninclude \"b.fbs\";\n";
    assert_eq!(
        errors(text),
        [(
            "includes must come before declarations".to_string(),
            "include \"b.fbs\";".to_string()
        )]
    );
    let (file, _) = parse(text);
    assert_eq!(file.items.len(), 3);
}

#[test]
fn empty_and_comment_only_files_have_no_items() {
    assert!(items("").is_empty());
    assert!(items("// nothing\n/* here */\n").is_empty());
    assert!(items("\u{FEFF}table T {}").len() == 1);
}
