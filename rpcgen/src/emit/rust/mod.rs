//! The Rust backend: the checked model → one Rust source file, to be `include!`d.
//!
//! The output follows `flatc --rust --gen-object-api` (same names, same bytes written) and fixes
//! what flatc gets wrong: required fields are enforced by the types, every keyword is escaped,
//! float literals are exact, unions may hold structs and strings and form vectors, and no schema
//! name can shadow what the generated code uses. See `docs/generated-rust.md` for what users get.
//!
//! # Layout
//!
//! - this file: the entry point, the module tree, the header and the lint allowances.
//! - [`names`]: identifiers, case conversion, paths between modules (shared with `service`).
//! - [`types`]: how each schema type is spelt in readers, builders and owned objects.
//! - [`literal`]: primitive types and default values.
//! - [`enums`], [`structs`], [`unions`]: those declarations.
//! - [`table`]: table readers, `Args` and builders; [`object`]: owned `T` types;
//!   [`verify`]: table verifiers; [`root`]: root-type helper functions.
//! - `service`: services from `.service` files.
//! - [`print`]: the tokens printed as source text.

mod enums;
mod literal;
pub(crate) mod names;
mod object;
mod print;
mod root;
mod service;
mod structs;
mod table;
mod types;
mod unions;
mod verify;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use proc_macro2::TokenStream;
use quote::quote;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{DeclId, DeclKind, FileInfo, Model};
use crate::source::Loc;

/// The contract version between generated code and `gateway-core` (`codegen::ABI` there).
pub const RUNTIME_ABI: u32 = 1;

#[derive(Clone, Debug)]
pub struct RustOptions {
    /// Path of the runtime crate generated code refers to.
    pub runtime: String,
    /// The input files, named in the header.
    pub sources: Vec<String>,
    /// How many threads generate a large model (`None`: one per core). Models of fewer than
    /// [`PIECES_PER_THREAD`] declarations, services and root types per thread use fewer. The
    /// output is the same for any number.
    pub threads: Option<NonZeroUsize>,
}

impl Default for RustOptions {
    fn default() -> Self {
        RustOptions { runtime: "::gateway_core".into(), sources: Vec::new(), threads: None }
    }
}

/// What every emitter needs: the model and the runtime paths.
pub(crate) struct Ctx<'m> {
    pub model: &'m Model,
    /// `<runtime>`, e.g. `::gateway_core`.
    pub rt: TokenStream,
    /// `<runtime>::flatbuffers`.
    pub fb: TokenStream,
}

impl<'m> Ctx<'m> {
    fn new(model: &'m Model, options: &RustOptions) -> Self {
        Ctx { model, rt: names::runtime(options), fb: names::fb(options) }
    }

    /// The path from the module of `ns` to declaration `id`'s name plus `suffix`.
    pub(crate) fn path(&self, ns: &[String], id: DeclId, suffix: &str) -> TokenStream {
        names::decl_path(self.model, ns, id, suffix)
    }
}

/// Lints generated code may trigger, allowed on every top-level item: generated files are
/// `include!`d, where inner attributes are not allowed, and what is inside an item (a namespace's
/// module and its children) inherits the allowance.
const ALLOW: &str = "\
#[allow(
    unknown_lints, non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code,
    unused, unused_imports, unused_mut, unused_variables, unused_qualifications, unused_results,
    unreachable_pub, missing_docs, missing_debug_implementations, deprecated, rustdoc::all,
    clippy::all, clippy::pedantic, clippy::nursery
)]
";

/// `#[doc = "..."]` for each line of schema documentation.
pub(crate) fn docs(lines: &[String]) -> TokenStream {
    let lines = lines.iter().map(|l| {
        let l = if l.starts_with(' ') { l.clone() } else { format!(" {l}") };
        quote!(#[doc = #l])
    });
    quote!(#(#lines)*)
}

/// One piece of output, generated and printed on its own (maybe on another thread).
#[derive(Clone, Copy)]
enum Piece<'m> {
    Decl(DeclId),
    Root(DeclId, &'m FileInfo),
    Service(&'m crate::model::Service),
}

/// One namespace's module: its pieces (indices into the printed texts) and its child modules,
/// in declaration order.
#[derive(Default)]
struct Module {
    items: Vec<usize>,
    children: Vec<(String, Module)>,
}

impl Module {
    fn at(&mut self, namespace: &[String]) -> &mut Module {
        let Some((first, rest)) = namespace.split_first() else { return self };
        let name = names::module(first).to_string();
        let index = match self.children.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                self.children.push((name, Module::default()));
                self.children.len() - 1
            }
        };
        self.children[index].1.at(rest)
    }

    /// Writes the module's pieces, then its children as `pub mod` blocks, `depth` levels deep.
    fn write(&self, texts: &mut [String], depth: usize, out: &mut String) {
        for &item in &self.items {
            out.push_str(&std::mem::take(&mut texts[item]));
        }
        let indent = "    ".repeat(depth);
        for (name, module) in &self.children {
            if depth == 0 {
                out.push_str(ALLOW);
            }
            let _ = writeln!(out, "{indent}pub mod {name} {{");
            module.write(texts, depth + 1, out);
            let _ = writeln!(out, "{indent}}}");
        }
    }
}

/// Generates the Rust code for a whole model.
///
/// Each declaration is generated and printed on its own; a large model's declarations are
/// shared among threads (one per core), the output the same as on one.
///
/// # Errors
///
/// Generated names that would clash (table `Monster` beside table `MonsterT`), one diagnostic
/// each, at the declaration that comes second.
pub fn generate(model: &Model, options: &RustOptions) -> Result<String, Diagnostics> {
    check_clashes(model)?;
    let pieces = pieces(model);
    let mut texts = print_pieces(model, options, &pieces);
    let mut root = Module::default();
    for (index, (namespace, _)) in pieces.iter().enumerate() {
        root.at(namespace).items.push(index);
    }
    let mut out = header(options);
    let rt = names::runtime(options);
    let abi = proc_macro2::Literal::u32_unsuffixed(RUNTIME_ABI);
    let abi_check = quote!(const _: () = #rt::codegen::require_abi(#abi););
    print::print_items(abi_check, 0, ALLOW, &mut out);
    root.write(&mut texts, 0, &mut out);
    Ok(out)
}

/// Every piece of a model's output, with its namespace, in output order.
fn pieces(model: &Model) -> Vec<(&[String], Piece<'_>)> {
    let mut pieces: Vec<(&[String], Piece<'_>)> = Vec::new();
    for id in model.ids() {
        let decl = model.decl(id);
        // FlatBuffers' own `rpc_service` is served through `.service` files instead.
        if !matches!(decl.kind, DeclKind::RpcService(_)) {
            pieces.push((&decl.name.namespace, Piece::Decl(id)));
        }
    }
    for (id, file) in root::root_types(model) {
        pieces.push((&model.decl(id).name.namespace, Piece::Root(id, file)));
    }
    for svc in &model.services {
        pieces.push((&svc.name.namespace, Piece::Service(svc)));
    }
    pieces
}

/// Fewer pieces than this per thread and threads cost more than they save.
pub const PIECES_PER_THREAD: usize = 64;

/// Generates and prints every piece; the texts come back in the pieces' order.
fn print_pieces(
    model: &Model,
    options: &RustOptions,
    pieces: &[(&[String], Piece<'_>)],
) -> Vec<String> {
    let threads = options
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
        .min(pieces.len() / PIECES_PER_THREAD)
        .max(1);
    print_pieces_on(model, options, pieces, threads)
}

fn print_pieces_on(
    model: &Model,
    options: &RustOptions,
    pieces: &[(&[String], Piece<'_>)],
    threads: usize,
) -> Vec<String> {
    if threads == 1 {
        let ctx = Ctx::new(model, options);
        return pieces.iter().map(|&(ns, piece)| print_piece(&ctx, ns, piece)).collect();
    }
    // Each thread takes the next piece when done with one, so a slow piece holds up no other.
    let next = AtomicUsize::new(0);
    let printed: Vec<Vec<(usize, String)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    // Token streams cannot cross threads: each thread builds its own.
                    let ctx = Ctx::new(model, options);
                    let mut printed = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(ns, piece)) = pieces.get(index) else { break };
                        printed.push((index, print_piece(&ctx, ns, piece)));
                    }
                    printed
                })
            })
            .collect();
        let joined = workers.into_iter().map(|worker| worker.join());
        joined
            .map(|result| result.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    let mut texts = vec![String::new(); pieces.len()];
    for (index, text) in printed.into_iter().flatten() {
        texts[index] = text;
    }
    texts
}

/// Generates one piece and prints it at its namespace's depth.
fn print_piece(ctx: &Ctx<'_>, namespace: &[String], piece: Piece<'_>) -> String {
    let mut out = String::new();
    let prefix = if namespace.is_empty() { ALLOW } else { "" };
    print::print_items(piece_tokens(ctx, piece), namespace.len(), prefix, &mut out);
    out
}

fn piece_tokens(ctx: &Ctx<'_>, piece: Piece<'_>) -> TokenStream {
    let model = ctx.model;
    match piece {
        Piece::Decl(id) => match &model.decl(id).kind {
            DeclKind::Table(t) => {
                let mut tokens = table::emit_table(ctx, id, t);
                tokens.extend(verify::emit_verifier(ctx, id, t));
                tokens.extend(object::emit_object(ctx, id, t));
                tokens
            }
            DeclKind::Struct(s) => structs::emit_struct(ctx, model.decl(id), s),
            DeclKind::Enum(e) => enums::emit_enum(ctx, model.decl(id), e),
            DeclKind::Union(u) => unions::emit_union(ctx, id, u),
            DeclKind::RpcService(_) => TokenStream::new(),
        },
        Piece::Root(id, file) => root::emit_root(ctx, id, file),
        Piece::Service(svc) => service::emit_service(model, svc, &ctx.rt),
    }
}

fn header(options: &RustOptions) -> String {
    let sources = if options.sources.is_empty() {
        String::new()
    } else {
        format!(" from {}", options.sources.join(", "))
    };
    format!("// @generated by rpcgen{sources}. Do not edit.\n\n")
}

/// Reports generated type names that would be declared twice in one module: `MonsterT` of table
/// `Monster` against a table `MonsterT`, a type against a namespace's module, or two names that
/// escape to the same identifier (`Self` becomes `Self_`).
fn check_clashes(model: &Model) -> Result<(), Diagnostics> {
    let mut seen: HashMap<(Vec<String>, String), (String, Loc)> = HashMap::new();
    let mut diags = Diagnostics::new();
    let mut claim = |ns: &[String], name: String, what: String, loc: Loc| {
        let key = (ns.to_vec(), name.clone());
        if let Some((first, first_loc)) = seen.get(&key) {
            if *first != what {
                diags.push(
                    Diagnostic::error(format!(
                        "generated Rust name `{}` of {what} clashes with {first}",
                        name.trim_start_matches("r#")
                    ))
                    .at(loc, "declared here")
                    .with(*first_loc, "the other declaration")
                    .help("rename one of them (a union variant can take an alias: `Alias: Type`)"),
                );
            }
        } else {
            seen.insert(key, (what, loc));
        }
    };
    for id in model.ids() {
        let decl = model.decl(id);
        let ns = &decl.name.namespace;
        let base = &decl.name.name;
        let (kind, suffixes): (&str, &[&str]) = match decl.kind {
            DeclKind::Table(_) => ("table", &["", "T", "Args", "Builder", "Offset"]),
            DeclKind::Struct(_) => ("struct", &["", "T"]),
            DeclKind::Enum(_) => ("enum", &[""]),
            DeclKind::Union(_) => ("union", &["", "T", "UnionTableOffset"]),
            DeclKind::RpcService(_) => continue,
        };
        for suffix in suffixes {
            let name = names::ident(&format!("{base}{suffix}")).to_string();
            claim(ns, name, format!("{kind} `{}`", decl.name.dotted()), decl.loc);
        }
        // Each namespace component is a module, declared in its parent namespace.
        for depth in 0..ns.len() {
            let name = names::module(&ns[depth]).to_string();
            claim(&ns[..depth], name, format!("namespace `{}`", ns[..=depth].join(".")), decl.loc);
        }
        // Members become snake_case accessors (`fooBar` and `foo_bar` are both `foo_bar()`;
        // union variants `Self` and `self` are both `as_self()`). Their key space is the
        // declaration's own, which no namespace path can spell (it ends with a space).
        let scope = [decl.name.dotted(), "members ".to_owned()];
        let members: Vec<(&str, &str, Loc)> = match &decl.kind {
            DeclKind::Table(t) => t.fields.iter().map(|f| ("field", &*f.name, f.loc)).collect(),
            DeclKind::Struct(s) => s.fields.iter().map(|f| ("field", &*f.name, f.loc)).collect(),
            DeclKind::Union(u) => u.variants.iter().map(|v| ("variant", &*v.name, v.loc)).collect(),
            DeclKind::Enum(_) | DeclKind::RpcService(_) => Vec::new(),
        };
        for (what, name, loc) in members {
            let accessor = names::snake(name);
            claim(&scope, accessor, format!("{what} `{name}` of `{}`", decl.name.dotted()), loc);
        }
        // A union's owned enum names its variants in UpperCamelCase.
        if let DeclKind::Union(u) = &decl.kind {
            let scope = [decl.name.dotted(), "owned variants ".to_owned()];
            for v in &u.variants {
                let variant = names::ident(&names::camel(&v.name)).to_string();
                let what = format!("variant `{}` of `{}`", v.name, decl.name.dotted());
                claim(&scope, variant, what, v.loc);
            }
        }
    }
    // A service is a module in its namespace's module, beside child namespaces' modules.
    for service in &model.services {
        let ns = &service.name.namespace;
        let name = names::module(&service.name.name).to_string();
        claim(ns, name, format!("service `{}`", service.name.dotted()), service.loc);
    }
    if diags.has_errors() { Err(diags) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proc_macro2::{Delimiter, TokenTree};

    use super::*;

    /// Rust's operators of more than one character (`>>` left out: the compiler splits it
    /// where generics close, and the printer may join two `>` there).
    const OPERATORS: &[&str] = &[
        "::", "->", "=>", "==", "!=", "<=", ">=", "&&", "||", "+=", "-=", "*=", "/=", "%=", "^=",
        "&=", "|=", "<<", "..", "...", "..=", "<<=", ">>=",
    ];

    /// The tokens a compiler would see, for comparing printed text with the tokens it was
    /// printed from: string literals by value (so `/// x` and `#[doc = " x"]` are equal),
    /// invisible groups spliced, no comma right before a closing delimiter (the printer adds
    /// those as rustfmt does), and joined punctuation read as the operator it forms, so that
    /// `x: ::y` printed as `x:::y` would not pass.
    fn lex(tokens: TokenStream, out: &mut Vec<String>) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut index = 0;
        while index < trees.len() {
            match &trees[index] {
                TokenTree::Group(group) => {
                    let (open, close) = match group.delimiter() {
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Bracket => ("[", "]"),
                        Delimiter::Brace => ("{", "}"),
                        Delimiter::None => ("", ""),
                    };
                    out.push(open.into());
                    lex(group.stream(), out);
                    if out.last().is_some_and(|t| t == ",") {
                        out.pop();
                    }
                    out.push(close.into());
                    out.retain(|t| !t.is_empty());
                }
                TokenTree::Literal(lit) => {
                    let text = lit.to_string();
                    out.push(print::unescape(&text).map_or(text, |value| format!("{value:?}")));
                }
                TokenTree::Ident(ident) => out.push(ident.to_string()),
                TokenTree::Punct(punct) => {
                    let mut op = punct.as_char().to_string();
                    let mut joint = punct.spacing() == proc_macro2::Spacing::Joint;
                    while joint {
                        let Some(TokenTree::Punct(next)) = trees.get(index + 1) else { break };
                        let longer = format!("{op}{}", next.as_char());
                        if !OPERATORS.contains(&longer.as_str()) {
                            break;
                        }
                        op = longer;
                        joint = next.spacing() == proc_macro2::Spacing::Joint;
                        index += 1;
                    }
                    out.push(op);
                }
            }
            index += 1;
        }
    }

    fn schemas() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["tests/golden", "../schemas/corpus", "../schemas/tracker", "../schemas/echo"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("the schema folder exists") {
                let path = entry.expect("a listable file").path();
                if path.extension().is_some_and(|e| e == "fbs" || e == "service") {
                    files.push(path);
                }
            }
        }
        files.sort();
        assert!(files.len() > 10, "schemas found: {files:?}");
        files
    }

    /// Every piece of every schema in the repository, printed and lexed again, gives back the
    /// tokens it was printed from: the printer's spacing and line breaks never merge, split or
    /// lose a token.
    #[test]
    fn printed_text_lexes_to_the_tokens_it_was_printed_from() {
        let options = RustOptions::default();
        let mut pieces_checked = 0;
        for file in schemas() {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let include_dirs =
                vec![root.join("../schemas/corpus"), root.join("../schemas/corpus/search")];
            let options_in = crate::LoadOptions { include_dirs };
            let checked = crate::check_files(std::slice::from_ref(&file), &options_in);
            let model = checked.model.as_ref().unwrap_or_else(|| panic!("{}", checked.render()));
            let ctx = Ctx::new(model, &options);
            for (namespace, piece) in pieces(model) {
                let tokens = piece_tokens(&ctx, piece);
                let mut expected = Vec::new();
                lex(tokens.clone(), &mut expected);
                let mut text = String::new();
                print::print_items(tokens, namespace.len(), "", &mut text);
                let reparsed: TokenStream = text.parse().unwrap_or_else(|e| {
                    panic!("{}: printed text does not lex ({e}):\n{text}", file.display())
                });
                let mut actual = Vec::new();
                lex(reparsed, &mut actual);
                if let Some(at) = expected.iter().zip(&actual).position(|(e, a)| e != a) {
                    let around =
                        |t: &[String]| t[at.saturating_sub(8)..(at + 8).min(t.len())].join(" ");
                    panic!(
                        "{}: token {at} differs\n expected: {}\n   actual: {}\n{text}",
                        file.display(),
                        around(&expected),
                        around(&actual)
                    );
                }
                assert_eq!(expected.len(), actual.len(), "{}:\n{text}", file.display());
                pieces_checked += 1;
            }
        }
        assert!(pieces_checked > 100, "only {pieces_checked} pieces");
    }

    /// The same output whether the pieces are printed on one thread or on several.
    #[test]
    fn threads_do_not_change_the_output() {
        let files = schemas();
        let files: Vec<PathBuf> = files
            .into_iter()
            .filter(|f| f.ends_with("monster.fbs") || f.ends_with("names.fbs"))
            .collect();
        let checked = crate::check_files(&files, &Default::default());
        let model = checked.model.as_ref().unwrap_or_else(|| panic!("{}", checked.render()));
        let options = RustOptions::default();
        let pieces = pieces(model);
        let ctx = Ctx::new(model, &options);
        let one: Vec<String> = pieces.iter().map(|&(ns, p)| print_piece(&ctx, ns, p)).collect();
        assert_eq!(print_pieces_on(model, &options, &pieces, 3), one);
    }
}
