//! The `.fbs` parser: FlatBuffers schemas, as flatc 25.12.19 accepts them (grammar in `fbs.pest`
//! and `common.pest`).

use pest::iterators::Pair;

use crate::diag::{Diagnostic, Diagnostics};
use crate::source::{FileId, Loc, Span};
use crate::syntax::ast::{
    Compound, EnumDecl, EnumValueDecl, FbsFile, Field, Ident, Item, ItemKind, Path, RpcMethodDecl,
    RpcServiceDecl, StrLit, UnionDecl, UnionVariantDecl,
};
use crate::syntax::grammar::Rule;
use crate::syntax::items::parse_items;
use crate::syntax::lower::{Lower, child, children, first, required};

/// Parses one `.fbs` file. Syntax errors go to `diags`, located in `file`.
pub fn parse_fbs(file: FileId, text: &str, diags: &mut Diagnostics) -> FbsFile {
    let items = parse_items(file, text, diags, Rule::fbs_entry, lower_item);
    check_includes_come_first(file, &items, diags);
    FbsFile { items }
}

/// flatc reads includes before anything else and rejects one that follows a declaration.
fn check_includes_come_first(file: FileId, items: &[Item], diags: &mut Diagnostics) {
    let mut first_decl: Option<Span> = None;
    for item in items {
        match (&item.kind, first_decl) {
            (ItemKind::Include(_) | ItemKind::NativeInclude(_), Some(decl)) => diags.push(
                Diagnostic::error("includes must come before declarations")
                    .at(Loc::new(file, item.span), "include after a declaration")
                    .with(Loc::new(file, decl), "first declaration here"),
            ),
            (ItemKind::Include(_) | ItemKind::NativeInclude(_), None) => {}
            (_, None) => first_decl = Some(item.span),
            (_, Some(_)) => {}
        }
    }
}

fn lower_item(cx: &mut Lower<'_>, item: Pair<'_, Rule>) -> Item {
    let decl = first(&item);
    let keyword = cx.span(&first(&decl));
    let (docs, doc_start) = cx.docs(keyword.start);
    let mut span = cx.span(&decl);
    let string = |cx: &mut Lower<'_>| -> StrLit { cx.string(&required(&decl, Rule::string_lit)) };
    let kind = match decl.as_rule() {
        Rule::include_decl => ItemKind::Include(string(cx)),
        Rule::native_include_decl => ItemKind::NativeInclude(string(cx)),
        Rule::file_identifier_decl => ItemKind::FileIdentifier(string(cx)),
        Rule::file_extension_decl => ItemKind::FileExtension(string(cx)),
        Rule::namespace_decl => ItemKind::Namespace(match child(&decl, Rule::path) {
            Some(path) => cx.path(&path),
            // `namespace;`: an empty path, placed just before the `;`.
            None => {
                let at = cx.span(&required(&decl, Rule::semi)).start as usize;
                Path { parts: Vec::new(), span: Span::new(at, at) }
            }
        }),
        Rule::attribute_decl => ItemKind::AttributeDecl(match child(&decl, Rule::ident) {
            Some(name) => StrLit { value: name.as_str().to_string(), span: cx.span(&name) },
            None => string(cx),
        }),
        Rule::root_type_decl => ItemKind::RootType(cx.path(&required(&decl, Rule::path))),
        documented => {
            span.start = doc_start.unwrap_or(span.start);
            match documented {
                Rule::table_decl => ItemKind::Table(compound(cx, &decl, docs)),
                Rule::struct_decl => ItemKind::Struct(compound(cx, &decl, docs)),
                Rule::enum_decl => ItemKind::Enum(enum_decl(cx, &decl, docs)),
                Rule::union_decl => ItemKind::Union(union_decl(cx, &decl, docs)),
                Rule::rpc_service_decl => ItemKind::RpcService(rpc_service(cx, &decl, docs)),
                other => unreachable!("grammar: {other:?} is not an fbs item"),
            }
        }
    };
    Item { kind, span }
}

fn name(cx: &Lower<'_>, decl: &Pair<'_, Rule>) -> Ident {
    cx.ident(&required(decl, Rule::ident))
}

fn compound(cx: &mut Lower<'_>, decl: &Pair<'_, Rule>, docs: Vec<String>) -> Compound {
    Compound {
        name: name(cx, decl),
        docs,
        attributes: cx.attributes(decl),
        fields: children(decl, Rule::field).map(|f| field(cx, &f)).collect(),
    }
}

fn field(cx: &mut Lower<'_>, pair: &Pair<'_, Rule>) -> Field {
    let name = name(cx, pair);
    Field {
        docs: cx.docs(name.span.start).0,
        name,
        ty: cx.type_expr(&required(pair, Rule::type_expr)),
        default: child(pair, Rule::literal).map(|lit| cx.literal(&lit)),
        attributes: cx.attributes(pair),
        span: cx.span(pair),
    }
}

fn enum_decl(cx: &mut Lower<'_>, decl: &Pair<'_, Rule>, docs: Vec<String>) -> EnumDecl {
    EnumDecl {
        name: name(cx, decl),
        underlying: child(decl, Rule::type_expr).map(|ty| cx.type_expr(&ty)),
        docs,
        attributes: cx.attributes(decl),
        values: children(decl, Rule::enum_value).map(|v| enum_value(cx, &v)).collect(),
    }
}

fn enum_value(cx: &mut Lower<'_>, pair: &Pair<'_, Rule>) -> EnumValueDecl {
    let name = name(cx, pair);
    EnumValueDecl {
        docs: cx.docs(name.span.start).0,
        name,
        value: child(pair, Rule::int_lit).map(|lit| cx.literal(&lit)),
        attributes: cx.attributes(pair),
        span: cx.span(pair),
    }
}

fn union_decl(cx: &mut Lower<'_>, decl: &Pair<'_, Rule>, docs: Vec<String>) -> UnionDecl {
    UnionDecl {
        name: name(cx, decl),
        underlying: child(decl, Rule::type_expr).map(|ty| cx.type_expr(&ty)),
        docs,
        attributes: cx.attributes(decl),
        variants: children(decl, Rule::union_variant).map(|v| union_variant(cx, &v)).collect(),
    }
}

fn union_variant(cx: &mut Lower<'_>, pair: &Pair<'_, Rule>) -> UnionVariantDecl {
    let span = cx.span(pair);
    UnionVariantDecl {
        alias: child(pair, Rule::union_alias).map(|alias| name(cx, &alias)),
        ty: cx.type_expr(&required(pair, Rule::type_expr)),
        value: child(pair, Rule::int_lit).map(|lit| cx.literal(&lit)),
        docs: cx.docs(span.start).0,
        attributes: cx.attributes(pair),
        span,
    }
}

fn rpc_service(cx: &mut Lower<'_>, decl: &Pair<'_, Rule>, docs: Vec<String>) -> RpcServiceDecl {
    RpcServiceDecl {
        name: name(cx, decl),
        docs,
        attributes: cx.attributes(decl),
        methods: children(decl, Rule::rpc_method).map(|m| rpc_method(cx, &m)).collect(),
    }
}

fn rpc_method(cx: &mut Lower<'_>, pair: &Pair<'_, Rule>) -> RpcMethodDecl {
    let name = name(cx, pair);
    let mut paths = children(pair, Rule::path).map(|p| cx.path(&p));
    let (request, response) = match (paths.next(), paths.next()) {
        (Some(request), Some(response)) => (request, response),
        _ => unreachable!("grammar: an rpc method has a request and a response"),
    };
    RpcMethodDecl {
        docs: cx.docs(name.span.start).0,
        name,
        request,
        response,
        attributes: cx.attributes(pair),
        span: cx.span(pair),
    }
}
