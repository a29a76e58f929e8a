//! The TypeScript backend: the checked model → one ES module per namespace, over the
//! `flatbuffers` npm runtime.
//!
//! The output follows `flatc --ts --gen-object-api` (25.12.19) where that is sound: the same
//! reader classes (`Monster` with `getRootAsMonster`, accessors, `startMonster`/`addMana`/
//! `endMonster`...), owned `MonsterT` objects with `pack`/`unpack`/`unpackTo`, enums as
//! TypeScript enums. It differs where flatc's output is unsafe or loose: required fields are
//! typed as required, there is a verifier for untrusted buffers (`Monster.verify`,
//! `rootAsMonster`), unions are typed (no `any`), vector accessors check their index, and
//! `createMonster` takes its fields as an object. See `docs/generated-ts.md`.
//!
//! # Layout
//!
//! - this file: the entry point, modules (files, imports, re-exports of child namespaces) and
//!   the registry that reports generated names that would clash.
//! - [`names`]: escaping, case conversion, module paths; [`code`]: the text writer;
//!   [`types`]: scalars, their reads, writes and defaults.
//! - [`enums`], [`structs`], [`unions`]: those declarations.
//! - [`table`]: table readers and builders; [`object`]: owned `T` classes; [`verify`]: table
//!   verifiers and verified entry points.
//! - [`service`]: services from `.service` files, over `@rpcgen/client`.

mod code;
mod enums;
pub(crate) mod names;
mod object;
mod service;
mod structs;
mod table;
mod types;
mod unions;
mod verify;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use code::Code;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{DeclId, DeclKind, FileInfo, Model};
use crate::source::{FileId, Loc, Span};

/// The contract version between generated code and the runtime's verify module (`ABI` in
/// `@rpcgen/client/verify`). Generated modules call `requireAbi(N)`, which does not type-check
/// (and throws when loaded) against a runtime of another version.
pub const RUNTIME_ABI: u32 = 1;

#[derive(Clone, Debug)]
pub struct TsOptions {
    /// The module specifier of the client runtime: services import it, and the verifier runtime
    /// is imported from `<runtime>/verify`.
    pub runtime: String,
    /// The input files, named in each file's header.
    pub sources: Vec<String>,
}

impl Default for TsOptions {
    fn default() -> Self {
        TsOptions { runtime: "@rpcgen/client".into(), sources: Vec::new() }
    }
}

/// One generated file: its path relative to the output folder (`my/game.ts`) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: String,
    pub contents: String,
}

/// Generates the TypeScript modules for a whole model: one per namespace that declares
/// something, one per ancestor namespace (re-exporting its children), and `index.ts` for the
/// root namespace.
///
/// # Errors
///
/// Generated names that would clash (a table `Monster` beside a table `MonsterT`, a field whose
/// accessor meets another field's `...Length()`, a type named like a child namespace), one
/// diagnostic each, at the declaration that comes second.
pub fn generate(model: &Model, options: &TsOptions) -> Result<Vec<GeneratedFile>, Diagnostics> {
    tag_numbers_fit(model)?;
    let ctx = Ctx { model, options, claims: RefCell::default() };
    // Every namespace that declares something, and its ancestors.
    let mut namespaces: BTreeMap<Vec<String>, Vec<Item>> = BTreeMap::new();
    namespaces.insert(Vec::new(), Vec::new());
    let mut add = |ns: &[String], item: Item| {
        for depth in 0..ns.len() {
            namespaces.entry(ns[..depth].to_vec()).or_default();
        }
        namespaces.entry(ns.to_vec()).or_default().push(item);
    };
    for id in model.ids() {
        if !matches!(model.decl(id).kind, DeclKind::RpcService(_)) {
            add(&model.decl(id).name.namespace, Item::Decl(id));
        }
    }
    for (index, svc) in model.services.iter().enumerate() {
        add(&svc.name.namespace, Item::Service(index));
    }
    let roots = root_types(model);

    let mut files = Vec::new();
    for (ns, items) in &namespaces {
        let children: Vec<&String> = namespaces
            .keys()
            .filter(|other| other.len() == ns.len() + 1 && other.starts_with(ns))
            .map(|other| &other[ns.len()])
            .collect();
        let scope = Scope::new(&ctx, ns);
        let mut body = Code::new();
        for item in items {
            let mut code = Code::new();
            match *item {
                Item::Decl(id) => emit_decl(&scope, &mut code, id, &roots),
                Item::Service(index) => {
                    service::emit_service(&scope, &mut code, &model.services[index])
                }
            }
            body.line("");
            body.append(&code);
        }
        if items.iter().any(|item| matches!(item, Item::Service(_))) {
            let mut code = Code::new();
            service::emit_decoder(&scope, &mut code);
            body.append(&code);
        }
        let mut exports = Code::new();
        for child in &children {
            let mut path = ns.clone();
            path.push((*child).clone());
            let loc = first_loc(model, &path);
            ctx.claim(&module_space(ns), child, format!("namespace `{}`", path.join(".")), loc);
            exports.line(format!(
                "export * as {child} from {};",
                names::string_literal(&names::import_path(ns, &path))
            ));
        }
        let mut text = header(options);
        text.push_str(&scope.imports());
        if scope.uses_v.get() {
            text.push('\n');
            text.push_str(&format!("$v.requireAbi({RUNTIME_ABI});\n"));
        }
        text.push_str(&body.into_string());
        if !exports.is_empty() {
            text.push('\n');
            text.push_str(&exports.into_string());
        }
        files.push(GeneratedFile { path: names::module_file(ns), contents: text });
    }
    check_file_names(&ctx, &files);
    let claims = ctx.claims.into_inner();
    if claims.diagnostics.has_errors() { Err(claims.diagnostics) } else { Ok(files) }
}

/// What a namespace's module holds.
enum Item {
    Decl(DeclId),
    /// An index into `Model::services`.
    Service(usize),
}

fn emit_decl(scope: &Scope, code: &mut Code, id: DeclId, roots: &[(DeclId, &FileInfo)]) {
    let model = scope.model();
    let decl = model.decl(id);
    match &decl.kind {
        DeclKind::Table(t) => {
            let root = roots.iter().find(|(r, _)| *r == id).map(|(_, f)| *f);
            table::emit_table(scope, code, id, t, root);
            code.line("");
            object::emit_object(scope, code, id, t);
            if let Some(file) = root {
                code.line("");
                verify::emit_root_functions(scope, code, id, file);
            }
        }
        DeclKind::Struct(s) => structs::emit_struct(scope, code, id, s),
        DeclKind::Enum(e) => enums::emit_enum(scope, code, id, e),
        DeclKind::Union(u) => unions::emit_union(scope, code, id, u),
        DeclKind::RpcService(_) => {}
    }
}

/// Each root type once, with the first file that declares it (for its identifier).
fn root_types(model: &Model) -> Vec<(DeclId, &FileInfo)> {
    let mut out: Vec<(DeclId, &FileInfo)> = Vec::new();
    for file in &model.files {
        if let Some(id) = file.root_type
            && !out.iter().any(|(seen, _)| *seen == id)
        {
            out.push((id, file));
        }
    }
    out
}

/// The location of the first declaration in namespace `ns` or below, for diagnostics about the
/// namespace itself.
fn first_loc(model: &Model, ns: &[String]) -> Loc {
    model
        .ids()
        .map(|id| model.decl(id))
        .find(|d| d.name.namespace.starts_with(ns))
        .map(|d| d.loc)
        .or_else(|| model.services.iter().find(|s| s.name.namespace.starts_with(ns)).map(|s| s.loc))
        .unwrap_or_else(|| Loc::new(FileId(0), Span::default()))
}

fn header(options: &TsOptions) -> String {
    let sources = if options.sources.is_empty() {
        String::new()
    } else {
        format!(" from {}", options.sources.join(", "))
    };
    format!("// @generated by rpcgen{sources}. Do not edit.\n/* eslint-disable */\n")
}

/// Two namespaces whose files differ only in case (`a.Foo` and `a.foo`) would overwrite each
/// other on case-insensitive file systems (macOS, Windows).
fn check_file_names(ctx: &Ctx, files: &[GeneratedFile]) {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for file in files {
        let lower = file.path.to_lowercase();
        if let Some(first) = seen.get(&lower) {
            let ns = file.path.trim_end_matches(".ts").replace('/', ".");
            let parts: Vec<String> = ns.split('.').map(str::to_owned).collect();
            ctx.claims.borrow_mut().diagnostics.push(
                Diagnostic::error(format!(
                    "generated TypeScript files `{first}` and `{}` differ only in case",
                    file.path
                ))
                .at(first_loc(ctx.model, &parts), "a declaration in this namespace")
                .help(
                    "rename one of the namespaces: case-insensitive file systems cannot hold both",
                ),
            );
        } else {
            seen.insert(lower, &file.path);
        }
    }
}

/// Union tags are TypeScript numbers, 64-bit ones too: a tag beyond 2^53 would not be exact.
fn tag_numbers_fit(model: &Model) -> Result<(), Diagnostics> {
    const EXACT: i128 = 1 << 53;
    let mut diags = Diagnostics::new();
    for id in model.ids() {
        let DeclKind::Union(u) = &model.decl(id).kind else { continue };
        for v in u.variants.iter().filter(|v| v.value.abs() > EXACT) {
            diags.push(
                Diagnostic::error(format!(
                    "union tag `{}` = {} is beyond what a TypeScript number holds exactly",
                    v.name, v.value
                ))
                .at(v.loc, "above 2^53")
                .help("use a tag between -2^53 and 2^53 (the Rust backend takes any)"),
            );
        }
    }
    if diags.is_empty() { Ok(()) } else { Err(diags) }
}

/// The key space of a module's top-level names.
pub(crate) fn module_space(ns: &[String]) -> String {
    format!("module {}", ns.join("."))
}

/// What every emitter shares: the model, the options, and the names generated so far.
pub(crate) struct Ctx<'m> {
    model: &'m Model,
    options: &'m TsOptions,
    claims: RefCell<Claims>,
}

#[derive(Default)]
struct Claims {
    /// (key space, name) → (what claimed it, where).
    seen: HashMap<(String, String), (String, Loc)>,
    diagnostics: Diagnostics,
}

impl Ctx<'_> {
    /// Records that `what` generates `name` in key space `space` (a module's top level, a
    /// class's members...), reporting an error if something else already did.
    fn claim(&self, space: &str, name: &str, what: String, loc: Loc) {
        let mut claims = self.claims.borrow_mut();
        let key = (space.to_owned(), name.to_owned());
        match claims.seen.get(&key) {
            Some((first, _)) if *first == what => {}
            Some((first, first_loc)) => {
                let diagnostic = Diagnostic::error(format!(
                    "generated TypeScript name `{name}` of {what} clashes with {first}"
                ))
                .at(loc, "declared here")
                .with(*first_loc, "the other declaration")
                .help("rename one of them (a union variant can take an alias: `Alias: Type`)");
                claims.diagnostics.push(diagnostic);
            }
            None => {
                claims.seen.insert(key, (what, loc));
            }
        }
    }
}

/// One module being generated: the namespace it belongs to and what it imports.
pub(crate) struct Scope<'c, 'm> {
    ctx: &'c Ctx<'m>,
    pub(crate) ns: Vec<String>,
    /// Other namespaces' modules referred to.
    imports: RefCell<BTreeSet<Vec<String>>>,
    uses_fb: Cell<bool>,
    uses_v: Cell<bool>,
    /// Names imported from the client runtime: (name, type only).
    client: RefCell<BTreeSet<(&'static str, bool)>>,
}

impl<'c, 'm> Scope<'c, 'm> {
    fn new(ctx: &'c Ctx<'m>, ns: &[String]) -> Self {
        Scope {
            ctx,
            ns: ns.to_vec(),
            imports: RefCell::default(),
            uses_fb: Cell::new(false),
            uses_v: Cell::new(false),
            client: RefCell::default(),
        }
    }

    pub(crate) fn model(&self) -> &'m Model {
        self.ctx.model
    }

    /// `$fb`, the `flatbuffers` runtime.
    pub(crate) fn fb(&self) -> &'static str {
        self.uses_fb.set(true);
        "$fb"
    }

    /// `$v`, the verifier runtime (`<runtime>/verify`).
    pub(crate) fn v(&self) -> &'static str {
        self.uses_v.set(true);
        "$v"
    }

    /// `$<name>`, a value imported from the client runtime.
    pub(crate) fn client_value(&self, name: &'static str) -> String {
        self.client.borrow_mut().insert((name, false));
        format!("${name}")
    }

    /// `$<name>`, a type imported from the client runtime.
    pub(crate) fn client_type(&self, name: &'static str) -> String {
        self.client.borrow_mut().insert((name, true));
        format!("${name}")
    }

    /// The reference to declaration `id`'s name plus `suffix` (`"T"` for the object class) from
    /// this module: `Monster`, or `$ns$my$game$arms.Weapon` from another namespace.
    pub(crate) fn name(&self, id: DeclId, suffix: &str) -> String {
        let name = &self.model().decl(id).name;
        let local = names::type_ident(&format!("{}{suffix}", name.name));
        if name.namespace == self.ns {
            local
        } else {
            self.imports.borrow_mut().insert(name.namespace.clone());
            format!("{}.{local}", names::module_alias(&name.namespace))
        }
    }

    /// Claims a top-level name of this module.
    pub(crate) fn claim_top(&self, name: &str, what: impl Into<String>, loc: Loc) {
        self.ctx.claim(&module_space(&self.ns), name, what.into(), loc);
    }

    /// Claims a name in another key space (a class's members, an object's keys).
    pub(crate) fn claim(&self, space: &str, name: &str, what: impl Into<String>, loc: Loc) {
        self.ctx.claim(space, name, what.into(), loc);
    }

    /// The runtime module specifier.
    pub(crate) fn runtime(&self) -> &str {
        &self.ctx.options.runtime
    }

    /// The import statements this module needs.
    fn imports(&self) -> String {
        let mut out = Code::new();
        if self.uses_fb.get() {
            out.line("import * as $fb from \"flatbuffers\";");
        }
        if self.uses_v.get() {
            let path = format!("{}/verify", self.runtime());
            out.line(format!("import * as $v from {};", names::string_literal(&path)));
        }
        let client = self.client.borrow();
        if !client.is_empty() {
            let items = client.iter().map(|(name, type_only)| {
                if *type_only {
                    format!("type {name} as ${name}")
                } else {
                    format!("{name} as ${name}")
                }
            });
            out.line(format!(
                "import {{ {} }} from {};",
                code::join(items, ", "),
                names::string_literal(self.runtime())
            ));
        }
        for ns in self.imports.borrow().iter() {
            out.line(format!(
                "import * as {} from {};",
                names::module_alias(ns),
                names::string_literal(&names::import_path(&self.ns, ns))
            ));
        }
        out.into_string()
    }
}
