//! Checking: syntax trees → [`Model`], enforcing flatc's rules and ours.
//!
//! # Layout
//!
//! One [`Checker`] walks the files in passes, because later rules need earlier results:
//!
//! 1. [`declare`]: every declaration gets its qualified name and a [`DeclId`]; duplicates and
//!    `attribute "x";` declarations are collected.
//! 2. [`enums`]: enums and unions (table defaults need enum values).
//! 3. [`layout`]: structs, their layout and cycles (tables embed struct sizes).
//! 4. [`table`]: tables, their field ids, defaults and attributes.
//! 5. [`rpc`]: `rpc_service`, and the file-level `root_type` / `file_identifier`.
//! 6. [`services`]: `.service` files and their stable ids.
//!
//! Name resolution lives in [`scope`], attribute rules in [`attrs`], type expressions in
//! [`types`], literal parsing in [`value`]. Every pass reports what it finds and carries on with
//! a best guess, so one run shows every independent error; the model is only used when no error
//! was reported.

mod attrs;
mod declare;
mod defaults;
mod enums;
mod layout;
mod rpc;
mod scope;
mod services;
mod slots;
mod table;
mod types;
mod value;

use crate::diag::{Diagnostic, Diagnostics};
use crate::load::ParsedFile;
use crate::model::{Decl, DeclId, DeclKind, Model, QualifiedName};
use crate::source::{FileId, Loc, SourceMap, Span};
use crate::syntax::ast::{Compound, EnumDecl, RpcServiceDecl, UnionDecl};

use self::scope::Scope;

/// Resolves and checks every parsed file. The returned model is meaningful only if `diags` holds
/// no error afterwards.
pub fn check(sources: &SourceMap, files: &[ParsedFile], diags: &mut Diagnostics) -> Model {
    let mut checker = Checker {
        diags,
        scope: Scope::default(),
        declared_attributes: Default::default(),
        decls: Vec::new(),
        kinds: Vec::new(),
    };
    checker.declare(files);
    checker.check_enums_and_unions();
    checker.check_structs();
    checker.check_tables();
    checker.check_rpc_services();
    let file_infos = checker.check_files(sources, files);
    let services = checker.check_services(files);
    checker.into_model(file_infos, services)
}

/// A declaration's syntax, as found by the declare pass.
#[derive(Clone, Copy, Debug)]
enum DeclAst<'a> {
    Table(&'a Compound),
    Struct(&'a Compound),
    Enum(&'a EnumDecl),
    Union(&'a UnionDecl),
    RpcService(&'a RpcServiceDecl),
}

/// A declaration awaiting its checks: where it is and what it says.
#[derive(Debug)]
struct DeclSource<'a> {
    ast: DeclAst<'a>,
    file: FileId,
    name: QualifiedName,
    /// Where the name is written.
    name_span: Span,
}

/// The state shared by the passes.
struct Checker<'a, 'd> {
    diags: &'d mut Diagnostics,
    scope: Scope,
    /// Names from `attribute "x";` anywhere in the compilation.
    declared_attributes: std::collections::HashSet<String>,
    /// Indexed by [`DeclId`].
    decls: Vec<DeclSource<'a>>,
    /// The checked form of each declaration, filled in by the passes (indexed by [`DeclId`]).
    kinds: Vec<Option<DeclKind>>,
}

impl<'a> Checker<'a, '_> {
    fn report(&mut self, diagnostic: Diagnostic) {
        self.diags.push(diagnostic);
    }

    fn source(&self, id: DeclId) -> &DeclSource<'a> {
        &self.decls[id.0 as usize]
    }

    fn namespace(&self, id: DeclId) -> Vec<String> {
        self.source(id).name.namespace.clone()
    }

    fn decl_loc(&self, id: DeclId) -> Loc {
        let source = self.source(id);
        Loc::new(source.file, source.name_span)
    }

    /// The ids of all declarations of one kind, in declaration order.
    fn ids_where(&self, keep: impl Fn(&DeclAst<'a>) -> bool) -> Vec<DeclId> {
        (0..self.decls.len() as u32).map(DeclId).filter(|&id| keep(&self.source(id).ast)).collect()
    }

    /// Puts the passes' results together. Declarations a pass could not check are left out;
    /// that only happens when an error was reported, and then the model is not used.
    fn into_model(
        self,
        files: Vec<crate::model::FileInfo>,
        services: Vec<crate::model::Service>,
    ) -> Model {
        let decls = self
            .decls
            .into_iter()
            .zip(self.kinds)
            .filter_map(|(source, kind)| {
                let (docs, attributes) = self::declare::docs_and_attributes(source.ast);
                Some(Decl {
                    name: source.name,
                    docs: docs.clone(),
                    loc: Loc::new(source.file, source.name_span),
                    attributes: attrs::kept(attributes),
                    kind: kind?,
                })
            })
            .collect();
        Model { decls, services, files }
    }
}

/// `a.b.Name` for messages: the qualified name of a declaration.
fn qualified(namespace: &[String], name: &str) -> QualifiedName {
    QualifiedName { namespace: namespace.to_vec(), name: name.to_string() }
}
