//! The first pass: give every declaration its qualified name and id, before anything refers to
//! it (flatc allows using a type before its declaration).

use crate::diag::Diagnostic;
use crate::load::{Ast, ParsedFile};
use crate::source::Loc;
use crate::syntax::ast::{Attribute, Docs, Ident, ItemKind};

use super::{Checker, DeclAst, DeclSource, qualified};

impl<'a> Checker<'a, '_> {
    /// Registers the declarations of every `.fbs` file, in load order, and the names of
    /// `attribute "x";` declarations. A second declaration of a name is reported and dropped.
    pub(super) fn declare(&mut self, files: &'a [ParsedFile]) {
        for parsed in files {
            let Ast::Fbs(fbs) = &parsed.ast else { continue };
            let mut namespace: Vec<String> = Vec::new();
            for item in &fbs.items {
                let (ast, name) = match &item.kind {
                    ItemKind::Namespace(path) => {
                        namespace = path.parts.iter().map(|p| p.text.clone()).collect();
                        continue;
                    }
                    ItemKind::AttributeDecl(name) => {
                        self.declared_attributes.insert(name.value.clone());
                        continue;
                    }
                    ItemKind::Table(c) => (DeclAst::Table(c), &c.name),
                    ItemKind::Struct(c) => (DeclAst::Struct(c), &c.name),
                    ItemKind::Enum(e) => (DeclAst::Enum(e), &e.name),
                    ItemKind::Union(u) => (DeclAst::Union(u), &u.name),
                    ItemKind::RpcService(r) => (DeclAst::RpcService(r), &r.name),
                    ItemKind::Include(_)
                    | ItemKind::NativeInclude(_)
                    | ItemKind::RootType(_)
                    | ItemKind::FileIdentifier(_)
                    | ItemKind::FileExtension(_) => continue,
                };
                self.declare_one(ast, parsed.file, &namespace, name);
            }
        }
    }

    fn declare_one(
        &mut self,
        ast: DeclAst<'a>,
        file: crate::source::FileId,
        namespace: &[String],
        name: &Ident,
    ) {
        let qualified_name = qualified(namespace, &name.text);
        match self.scope.insert(qualified_name.clone()) {
            Ok(_) => {
                self.decls.push(DeclSource {
                    ast,
                    file,
                    name: qualified_name,
                    name_span: name.span,
                });
                self.kinds.push(None);
            }
            Err(first) => {
                let dotted = qualified_name.dotted();
                let first_loc = self.decl_loc(first);
                self.report(
                    Diagnostic::error(format!("the name `{dotted}` is defined multiple times"))
                        .at(Loc::new(file, name.span), format!("`{dotted}` redefined here"))
                        .with(first_loc, "first defined here"),
                );
            }
        }
    }
}

/// The doc comments and attributes of a declaration, whatever its kind.
pub(super) fn docs_and_attributes<'a>(ast: DeclAst<'a>) -> (&'a Docs, &'a [Attribute]) {
    match ast {
        DeclAst::Table(c) | DeclAst::Struct(c) => (&c.docs, &c.attributes),
        DeclAst::Enum(e) => (&e.docs, &e.attributes),
        DeclAst::Union(u) => (&u.docs, &u.attributes),
        DeclAst::RpcService(r) => (&r.docs, &r.attributes),
    }
}
