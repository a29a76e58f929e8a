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

mod enums;
mod literal;
pub(crate) mod names;
mod object;
mod root;
mod service;
mod structs;
mod table;
mod types;
mod unions;
mod verify;

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::quote;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{DeclId, DeclKind, Model};
use crate::source::Loc;

/// The contract version between generated code and `gateway-core` (`codegen::ABI` there).
pub const RUNTIME_ABI: u32 = 1;

#[derive(Clone, Debug)]
pub struct RustOptions {
    /// Path of the runtime crate generated code refers to.
    pub runtime: String,
    /// The input files, named in the header.
    pub sources: Vec<String>,
}

impl Default for RustOptions {
    fn default() -> Self {
        RustOptions { runtime: "::gateway_core".into(), sources: Vec::new() }
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

impl Ctx<'_> {
    /// The path from the module of `ns` to declaration `id`'s name plus `suffix`.
    pub(crate) fn path(&self, ns: &[String], id: DeclId, suffix: &str) -> TokenStream {
        names::decl_path(self.model, ns, id, suffix)
    }
}

/// Lints generated code may trigger. Generated files are `include!`d, where inner attributes
/// are not allowed, so this goes on every top-level module and item.
fn allow_attr() -> TokenStream {
    quote! {
        #[allow(
            unknown_lints, non_camel_case_types, non_snake_case, non_upper_case_globals,
            dead_code, unused, unused_imports, unused_mut, unused_variables, unused_qualifications,
            unused_results, unreachable_pub, missing_docs, missing_debug_implementations,
            deprecated, rustdoc::all, clippy::all, clippy::pedantic, clippy::nursery
        )]
    }
}

/// `#[doc = "..."]` for each line of schema documentation.
pub(crate) fn docs(lines: &[String]) -> TokenStream {
    let lines = lines.iter().map(|l| {
        let l = if l.starts_with(' ') { l.clone() } else { format!(" {l}") };
        quote!(#[doc = #l])
    });
    quote!(#(#lines)*)
}

/// One namespace's module: its items and its child modules, in declaration order.
#[derive(Default)]
struct Module {
    items: Vec<TokenStream>,
    children: Vec<(proc_macro2::Ident, Module)>,
}

impl Module {
    fn at(&mut self, namespace: &[String]) -> &mut Module {
        let Some((first, rest)) = namespace.split_first() else { return self };
        let name = names::module(first);
        let index = match self.children.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                self.children.push((name, Module::default()));
                self.children.len() - 1
            }
        };
        self.children[index].1.at(rest)
    }

    fn tokens(&self) -> TokenStream {
        let items = &self.items;
        let allow = allow_attr();
        let children = self.children.iter().map(|(name, module)| {
            let body = module.tokens();
            quote!(#allow pub mod #name { #body })
        });
        quote!(#(#items)* #(#children)*)
    }
}

/// Generates the Rust code for a whole model.
///
/// # Errors
///
/// Generated names that would clash (table `Monster` beside table `MonsterT`), one diagnostic
/// each, at the declaration that comes second.
pub fn generate(model: &Model, options: &RustOptions) -> Result<String, Diagnostics> {
    check_clashes(model)?;
    let ctx = Ctx { model, rt: names::runtime(options), fb: names::fb(options) };
    let mut root = Module::default();
    for id in model.ids() {
        let decl = model.decl(id);
        let code = match &decl.kind {
            DeclKind::Table(t) => {
                let reader = table::emit_table(&ctx, id, t);
                let owned = object::emit_object(&ctx, id, t);
                let verifier = verify::emit_verifier(&ctx, id, t);
                quote!(#reader #verifier #owned)
            }
            DeclKind::Struct(s) => structs::emit_struct(&ctx, decl, s),
            DeclKind::Enum(e) => enums::emit_enum(&ctx, decl, e),
            DeclKind::Union(u) => unions::emit_union(&ctx, id, u),
            // FlatBuffers' own `rpc_service` is served through `.service` files instead.
            DeclKind::RpcService(_) => continue,
        };
        root.at(&decl.name.namespace).items.push(code);
    }
    for (id, file) in root::root_types(model) {
        let code = root::emit_root(&ctx, id, file);
        root.at(&model.decl(id).name.namespace).items.push(code);
    }
    for svc in &model.services {
        let code = service::emit_service(model, svc, &ctx.rt);
        root.at(&svc.name.namespace).items.push(code);
    }
    let rt = &ctx.rt;
    let abi = proc_macro2::Literal::u32_unsuffixed(RUNTIME_ABI);
    let body = root.tokens();
    let tokens = quote! {
        const _: () = #rt::codegen::require_abi(#abi);
        #body
    };
    Ok(render(tokens, options))
}

/// Formats the tokens with prettyplease, after putting the lint allowances on every top-level
/// item, and prepends the `@generated` header.
fn render(tokens: TokenStream, options: &RustOptions) -> String {
    let mut file: syn::File = match syn::parse2(tokens) {
        Ok(file) => file,
        // Our own tokens always parse; if they ever do not, show them unformatted so the
        // compiler's error points at the culprit.
        Err(e) => return format!("{}\ncompile_error!({:?});\n", header(options), e.to_string()),
    };
    let allow = allow_attr();
    for item in &mut file.items {
        // Modules already carry it (see `Module::tokens`).
        if let Some(attrs) = item_attrs(item) {
            attrs.insert(0, syn::parse_quote!(#allow));
        }
    }
    format!("{}{}", header(options), prettyplease::unparse(&file))
}

fn item_attrs(item: &mut syn::Item) -> Option<&mut Vec<syn::Attribute>> {
    Some(match item {
        syn::Item::Const(i) => &mut i.attrs,
        syn::Item::Enum(i) => &mut i.attrs,
        syn::Item::Fn(i) => &mut i.attrs,
        syn::Item::Impl(i) => &mut i.attrs,
        syn::Item::Static(i) => &mut i.attrs,
        syn::Item::Struct(i) => &mut i.attrs,
        syn::Item::Trait(i) => &mut i.attrs,
        syn::Item::Type(i) => &mut i.attrs,
        syn::Item::Union(i) => &mut i.attrs,
        syn::Item::Use(i) => &mut i.attrs,
        _ => return None,
    })
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
