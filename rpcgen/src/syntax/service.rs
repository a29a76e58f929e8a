//! The `.service` parser (grammar in `service.pest` and `common.pest`, specified in
//! `docs/service-files.md`).

use pest::iterators::Pair;

use crate::diag::Diagnostics;
use crate::source::{FileId, Span};
use crate::syntax::ast::{
    Member, MemberKind, Path, ServiceDecl, ServiceFile, ServiceItem, ServiceItemKind, TopicKey,
};
use crate::syntax::grammar::Rule;
use crate::syntax::items::parse_items;
use crate::syntax::lower::{Lower, child, children, first, required};

/// Parses one `.service` file. Syntax errors go to `diags`, located in `file`.
pub fn parse_service(file: FileId, text: &str, diags: &mut Diagnostics) -> ServiceFile {
    ServiceFile { items: parse_items(file, text, diags, Rule::service_entry, lower_item) }
}

fn lower_item(cx: &mut Lower<'_>, item: Pair<'_, Rule>) -> ServiceItem {
    let decl = first(&item);
    let mut span = cx.span(&decl);
    let kind = match decl.as_rule() {
        Rule::include_decl => {
            ServiceItemKind::Include(cx.string(&required(&decl, Rule::string_lit)))
        }
        Rule::namespace_decl => ServiceItemKind::Namespace(match child(&decl, Rule::path) {
            Some(path) => cx.path(&path),
            // `namespace;`: an empty path, placed just before the `;`.
            None => {
                let at = cx.span(&required(&decl, Rule::semi)).start as usize;
                Path { parts: Vec::new(), span: Span::new(at, at) }
            }
        }),
        Rule::service_decl => {
            let (docs, doc_start) = cx.docs(span.start);
            span.start = doc_start.unwrap_or(span.start);
            ServiceItemKind::Service(ServiceDecl {
                name: cx.ident(&required(&decl, Rule::ident)),
                docs,
                attributes: cx.attributes(&decl),
                members: children(&decl, Rule::member).map(|m| member(cx, &first(&m))).collect(),
            })
        }
        other => unreachable!("grammar: {other:?} is not a service item"),
    };
    ServiceItem { kind, span }
}

fn member(cx: &mut Lower<'_>, pair: &Pair<'_, Rule>) -> Member {
    let span = cx.span(pair);
    let mut idents = children(pair, Rule::ident).map(|name| cx.ident(&name));
    let name = idents.next().unwrap_or_else(|| unreachable!("grammar: a member has a name"));
    let kind = match pair.as_rule() {
        Rule::method_member => {
            let mut paths = children(pair, Rule::path);
            let request = paths.next().map(|p| cx.path(&p));
            let request =
                request.unwrap_or_else(|| unreachable!("grammar: a method has a request"));
            let (response, response_span) = match paths.next() {
                Some(response) => {
                    let response = cx.path(&response);
                    let span = response.span;
                    (Some(response), span)
                }
                None => (None, cx.span(&required(pair, Rule::kw_void))),
            };
            MemberKind::Method { name, request, response, response_span }
        }
        Rule::topic_member => MemberKind::Topic {
            name,
            key: child(pair, Rule::topic_key).map(|key| TopicKey {
                name: cx.ident(&required(&key, Rule::ident)),
                ty: cx.type_expr(&required(&key, Rule::type_expr)),
                span: cx.span(&key),
            }),
            message: cx.path(&required(pair, Rule::path)),
        },
        Rule::error_member => {
            let status = idents.next();
            let status = status.unwrap_or_else(|| unreachable!("grammar: an error has a status"));
            MemberKind::Error { name, status }
        }
        other => unreachable!("grammar: {other:?} is not a member"),
    };
    Member { kind, docs: cx.docs(span.start).0, attributes: cx.attributes(pair), span }
}
