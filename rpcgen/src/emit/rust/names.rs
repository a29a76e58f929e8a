//! Rust names for schema names: escaping, flatc's case conversion, and paths between modules.
//!
//! Generated code names every user type by a module-relative path (`self::Monster`,
//! `super::other::Thing`) and every runtime item by an absolute one, so no schema name can shadow
//! anything the generated code relies on. These helpers are shared with `service.rs`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

use super::RustOptions;
use crate::model::{DeclId, Model};

/// Every Rust keyword, strict and reserved, in all editions (2015's `dyn`, 2018's `async`,
/// `await`, `try`, 2024's `gen`).
const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Keywords that cannot be raw identifiers; they get a `_` suffix instead, as flatc does.
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate"];

/// The identifier for a schema name: unchanged, raw (`r#type`) for a keyword, or with a `_`
/// suffix for the four keywords that cannot be raw (`self_`).
pub(crate) fn ident(name: &str) -> Ident {
    if NOT_RAW.contains(&name) || name == "_" {
        format_ident!("{name}_")
    } else if KEYWORDS.contains(&name) {
        Ident::new_raw(name, Span::call_site())
    } else {
        Ident::new(name, Span::call_site())
    }
}

pub(crate) use crate::case::{screaming, snake};

/// UpperCamelCase as flatc converts names for Rust enum variants: split at `_`, capitalise the
/// first letter of each part, keep the rest (`corpus_common_Tag` becomes `CorpusCommonTag`).
pub(crate) fn camel(name: &str) -> String {
    name.split('_')
        .flat_map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars)
        })
        .collect()
}

/// The module name of a namespace component: snake_case, escaped.
pub(crate) fn module(component: &str) -> Ident {
    ident(&snake(component))
}

/// The path, relative to the module of `from_namespace`, of declaration `id`'s name followed by
/// `suffix` (`""` for the reader, `"T"` for the owned type, `"Args"`...): `self::Monster`,
/// `super::super::a::MonsterT`.
pub(crate) fn decl_path(
    model: &Model,
    from_namespace: &[String],
    id: DeclId,
    suffix: &str,
) -> TokenStream {
    let name = &model.decl(id).name;
    let item = ident(&format!("{}{suffix}", name.name));
    let common = from_namespace.iter().zip(&name.namespace).take_while(|(a, b)| a == b).count();
    let ups: Vec<TokenStream> = (common..from_namespace.len()).map(|_| quote!(super::)).collect();
    let start = if ups.is_empty() { quote!(self::) } else { quote!(#(#ups)*) };
    let downs = name.namespace[common..].iter().map(|c| {
        let m = module(c);
        quote!(#m::)
    });
    shared(quote!(#start #(#downs)* #item))
}

/// The runtime crate's path (`::gateway_core` by default) as tokens.
pub(crate) fn runtime(options: &RustOptions) -> TokenStream {
    // The option is a path the user wrote; an invalid one is reported by rustc on the output.
    let path = options.runtime.parse().unwrap_or_else(|_| quote!(::gateway_core));
    shared(path)
}

/// `<runtime>::flatbuffers`, the FlatBuffers crate as re-exported by the runtime.
pub(crate) fn fb(options: &RustOptions) -> TokenStream {
    let rt = runtime(options);
    shared(quote!(#rt::flatbuffers))
}

/// `tokens` as one token (a group without delimiters), for paths interpolated thousands of
/// times: `quote!` copies an interpolated stream token by token, each identifier a new
/// allocation, but a group once. The printer prints the group's tokens in place.
pub(crate) fn shared(tokens: TokenStream) -> TokenStream {
    proc_macro2::TokenTree::Group(proc_macro2::Group::new(proc_macro2::Delimiter::None, tokens))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Decl, DeclKind, QualifiedName, Union};
    use crate::source::{FileId, Loc, Span};

    #[test]
    fn snake_matches_flatc() {
        assert_eq!(snake("Monster"), "monster");
        assert_eq!(snake("HTTPServer2"), "httpserver_2");
        assert_eq!(snake("GameXY"), "game_xy");
        assert_eq!(snake("My2"), "my_2");
        assert_eq!(snake("already_snake"), "already_snake");
        assert_eq!(screaming("MyMonster"), "MY_MONSTER");
    }

    #[test]
    fn keywords_are_escaped() {
        assert_eq!(ident("type").to_string(), "r#type");
        assert_eq!(ident("async").to_string(), "r#async");
        assert_eq!(ident("self").to_string(), "self_");
        assert_eq!(ident("Self").to_string(), "Self_");
        assert_eq!(ident("crate").to_string(), "crate_");
        assert_eq!(ident("hp").to_string(), "hp");
    }

    fn decl(namespace: &[&str], name: &str) -> Decl {
        Decl {
            name: QualifiedName {
                namespace: namespace.iter().map(|s| s.to_string()).collect(),
                name: name.into(),
            },
            docs: vec![],
            loc: Loc::new(FileId(0), Span::default()),
            attributes: vec![],
            kind: DeclKind::Union(Union { tag: crate::model::Scalar::U8, variants: vec![] }),
        }
    }

    #[test]
    fn paths_climb_and_descend_namespaces() {
        let model = Model {
            decls: vec![decl(&["a", "b"], "M"), decl(&[], "Top"), decl(&["a", "c"], "N")],
            ..Model::default()
        };
        let ns = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let path = |from: &[&str], id, suffix| {
            decl_path(&model, &ns(from), DeclId(id), suffix).to_string().replace(' ', "")
        };
        assert_eq!(path(&["a", "b"], 0, "T"), "self::MT");
        assert_eq!(path(&["a", "b"], 1, ""), "super::super::Top");
        assert_eq!(path(&["a", "b"], 2, "Args"), "super::c::NArgs");
        assert_eq!(path(&[], 0, ""), "self::a::b::M");
    }
}
