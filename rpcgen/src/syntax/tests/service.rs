//! `.service` parsing: members told apart by what follows the name, docs, errors, recovery.

use crate::diag::{Diagnostic, Diagnostics};
use crate::source::{FileId, Span};
use crate::syntax::ast::{
    LiteralKind, Member, MemberKind, ServiceDecl, ServiceFile, ServiceItemKind, TypeExprKind,
};
use crate::syntax::parse_service;

fn parse(text: &str) -> (ServiceFile, Vec<Diagnostic>) {
    let mut diags = Diagnostics::new();
    let file = parse_service(FileId(0), text, &mut diags);
    (file, diags.into_vec())
}

fn services(text: &str) -> Vec<ServiceDecl> {
    let (file, diags) = parse(text);
    assert!(diags.is_empty(), "unexpected diagnostics: {diags:#?}");
    file.items
        .into_iter()
        .filter_map(|item| match item.kind {
            ServiceItemKind::Service(service) => Some(service),
            _ => None,
        })
        .collect()
}

fn members(text: &str) -> Vec<Member> {
    services(text).remove(0).members
}

const EXAMPLE: &str = r#"// api.service
include "some_api.fbs";          // message types come from .fbs files
namespace examples.some_api;    // optional; namespace of the services below

/// Doc comment on the service.
service SomeApi (attr) {
    /// Adds two numbers.
    sum: RequestSum -> ReplySum (idempotent);
    sub: RequestSub -> void;                    // fire-and-forget: no reply
    set_label: SetLabel -> Ack (writes, id: 1234);
    /// Positions, one stream per device.
    topic position[device_id: string]: Position (on_lag: keep_latest, retain);
    topic alerts: Alert (on_lag: drop_oldest, client_publish);
    error DeviceNotFound: not_found;
}
"#;

#[test]
fn the_example_parses_to_the_expected_tree() {
    let (file, diags) = parse(EXAMPLE);
    assert!(diags.is_empty(), "{diags:#?}");
    let [include, namespace, service] = file.items.as_slice() else {
        panic!("{file:#?}")
    };
    assert!(matches!(&include.kind, ServiceItemKind::Include(lit) if lit.value == "some_api.fbs"));
    assert!(
        matches!(&namespace.kind, ServiceItemKind::Namespace(p) if p.dotted() == "examples.some_api")
    );
    assert_eq!(
        service.span.start as usize,
        EXAMPLE.find("/// Doc comment").unwrap()
    );
    assert_eq!(service.span.end as usize, EXAMPLE.rfind('}').unwrap() + 1);
    let ServiceItemKind::Service(service) = &service.kind else {
        panic!()
    };
    assert_eq!(service.name.text, "SomeApi");
    assert_eq!(service.docs, ["Doc comment on the service."]);
    assert_eq!(service.attributes[0].name.text, "attr");

    let m = &service.members;
    assert_eq!(m.len(), 6);
    let MemberKind::Method {
        name,
        request,
        response,
        response_span,
    } = &m[0].kind
    else {
        panic!("{:?}", m[0])
    };
    assert_eq!(
        (name.text.as_str(), request.dotted()),
        ("sum", "RequestSum".to_string())
    );
    assert_eq!(
        response.as_ref().map(|r| r.dotted()),
        Some("ReplySum".to_string())
    );
    assert_eq!(&EXAMPLE[response_span.range()], "ReplySum");
    assert_eq!(m[0].docs, ["Adds two numbers."]);
    assert_eq!(
        &EXAMPLE[m[0].span.range()],
        "sum: RequestSum -> ReplySum (idempotent);"
    );
    assert_eq!(m[0].attributes[0].name.text, "idempotent");

    let MemberKind::Method {
        response: None,
        response_span,
        ..
    } = &m[1].kind
    else {
        panic!()
    };
    assert_eq!(&EXAMPLE[response_span.range()], "void");
    assert!(m[1].docs.is_empty());

    let ids: Vec<_> = m[2]
        .attributes
        .iter()
        .map(|a| (a.name.text.as_str(), a.value.clone()))
        .collect();
    assert_eq!(ids[0], ("writes", None));
    assert_eq!(ids[1].0, "id");
    assert_eq!(
        ids[1].1.as_ref().map(|v| &v.kind),
        Some(&LiteralKind::Int("1234".into()))
    );

    let MemberKind::Topic {
        name,
        key: Some(key),
        message,
    } = &m[3].kind
    else {
        panic!()
    };
    assert_eq!(
        (name.text.as_str(), message.dotted()),
        ("position", "Position".to_string())
    );
    assert_eq!(key.name.text, "device_id");
    assert!(matches!(&key.ty.kind, TypeExprKind::Named(p) if p.dotted() == "string"));
    assert_eq!(&EXAMPLE[key.span.range()], "[device_id: string]");
    assert_eq!(m[3].docs, ["Positions, one stream per device."]);
    let on_lag = m[3].attributes[0].value.as_ref().map(|v| &v.kind);
    assert!(matches!(on_lag, Some(LiteralKind::Name(p)) if p.dotted() == "keep_latest"));
    assert_eq!(m[3].attributes[1].name.text, "retain");

    let MemberKind::Topic { key: None, .. } = &m[4].kind else {
        panic!()
    };
    let MemberKind::Error { name, status } = &m[5].kind else {
        panic!()
    };
    assert_eq!(
        (name.text.as_str(), status.text.as_str()),
        ("DeviceNotFound", "not_found")
    );
    assert_eq!(&EXAMPLE[status.span.range()], "not_found");
}

#[test]
fn what_follows_the_first_name_decides_the_member_kind() {
    let m = members(
        "service service {
            topic: A -> B;
            error: a.A -> void;
            void: void -> void;
            topic topic: topic;
            topic error[service: uint64]: error;
            error error: internal;
            error topic: not_found (id: 7);
            service: include -> namespace;
        }",
    );
    let kinds: Vec<(&str, &str)> = m
        .iter()
        .map(|member| match &member.kind {
            MemberKind::Method { name, .. } => ("method", name.text.as_str()),
            MemberKind::Topic { name, .. } => ("topic", name.text.as_str()),
            MemberKind::Error { name, .. } => ("error", name.text.as_str()),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("method", "topic"),
            ("method", "error"),
            ("method", "void"),
            ("topic", "topic"),
            ("topic", "error"),
            ("error", "error"),
            ("error", "topic"),
            ("method", "service"),
        ]
    );
    let MemberKind::Method {
        request,
        response: None,
        ..
    } = &m[2].kind
    else {
        panic!()
    };
    assert_eq!(request.dotted(), "void");
    let MemberKind::Topic {
        key: Some(key),
        message,
        ..
    } = &m[4].kind
    else {
        panic!()
    };
    assert_eq!(
        (key.name.text.as_str(), message.dotted()),
        ("service", "error".to_string())
    );
}

#[test]
fn several_services_and_namespaces_per_file() {
    let text =
        "namespace a; service A {} namespace b.c; service B { x: X -> Y; } namespace; service C {}";
    let (file, diags) = parse(text);
    assert!(diags.is_empty());
    let namespaces: Vec<String> = file
        .items
        .iter()
        .filter_map(|item| match &item.kind {
            ServiceItemKind::Namespace(p) => Some(p.dotted()),
            _ => None,
        })
        .collect();
    assert_eq!(namespaces, ["a", "b.c", ""]);
    let names: Vec<String> = services(text).into_iter().map(|s| s.name.text).collect();
    assert_eq!(names, ["A", "B", "C"]);
}

#[test]
fn crlf_keeps_docs_clean_and_spans_in_the_original_text() {
    let text = EXAMPLE.replace('\n', "\r\n");
    let m = members(&text);
    assert_eq!(m[0].docs, ["Adds two numbers."]);
    assert_eq!(
        &text[m[0].span.range()],
        "sum: RequestSum -> ReplySum (idempotent);"
    );
}

#[test]
fn syntax_errors_name_what_was_expected() {
    let cases = [
        (
            "service S { sum: A -> ; }",
            "expected a name or `void`, found `;`",
            ";",
        ),
        ("service S { sum: A B; }", "expected `->`, found `B`", "B"),
        (
            "service S { topic t[k]: A; }",
            "expected `:`, found `]`",
            "]",
        ),
        (
            "service S { error E: ; }",
            "expected a name, found `;`",
            ";",
        ),
        (
            "service S { 12 }",
            "expected `}` or a method, topic or error, found `12`",
            "12",
        ),
        (
            "servic S {}",
            "expected a declaration, found `servic`",
            "servic",
        ),
        (
            "service S { a: A -> B }",
            "expected `;` or `(`, found `}`",
            "}",
        ),
    ];
    for (text, message, found) in cases {
        let (_, diags) = parse(text);
        let got: Vec<(String, &str)> = diags
            .iter()
            .map(|d| (d.message.clone(), &text[d.labels[0].loc.span.range()]))
            .collect();
        assert_eq!(got, [(message.to_string(), found)], "in {text:?}");
    }
}

#[test]
fn recovery_reports_each_broken_service() {
    let text = "service A { a: X -> ; }\nservice B { b: X -> Y; }\nservice C { topic c Y; }\n";
    let (file, diags) = parse(text);
    assert_eq!(diags.len(), 2, "{diags:#?}");
    let at = text.rfind("Y;").unwrap();
    assert_eq!(diags[0].labels[0].loc.span, Span::new(20, 21));
    assert_eq!(diags[1].message, "expected `:` or `[`, found `Y`");
    assert_eq!(diags[1].labels[0].loc.span, Span::new(at, at + 1));
    let [item] = file.items.as_slice() else {
        panic!("{file:#?}")
    };
    assert!(matches!(&item.kind, ServiceItemKind::Service(s) if s.name.text == "B"));
}
