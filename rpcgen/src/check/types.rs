//! Type expressions: resolving the names in `[T]`, `[T:N]` and `T` and checking which shapes
//! each context allows (tables: no fixed arrays; structs: only fixed-size data).

use crate::diag::Diagnostic;
use crate::model::{DeclId, Type};
use crate::source::{FileId, Loc};
use crate::syntax::ast::{LiteralKind, Path, TypeExpr, TypeExprKind};

use super::scope::{scalar_keyword, type_keywords};
use super::value::parse_int;
use super::{Checker, DeclAst};

/// flatc stores a fixed array's length in a `uint16_t`.
const MAX_ARRAY_LENGTH: i128 = u16::MAX as i128;

impl Checker<'_, '_> {
    /// Resolves a type name written in `namespace`: a scalar keyword, `string`, or a declared
    /// table, struct, enum or union. Reports unknown names (with a close match if any).
    pub(super) fn resolve_type_name(
        &mut self,
        file: FileId,
        namespace: &[String],
        path: &Path,
    ) -> Option<Type> {
        if let [single] = path.parts.as_slice() {
            if let Some(scalar) = scalar_keyword(&single.text) {
                return Some(Type::Scalar(scalar));
            }
            if single.text == "string" {
                return Some(Type::String);
            }
        }
        let loc = Loc::new(file, path.span);
        let Some(id) = self.scope.lookup(namespace, path) else {
            let written = path.dotted();
            let mut diagnostic = Diagnostic::error(format!("unknown type `{written}`"))
                .at(loc, "not declared in scope");
            if let Some(close) = self.scope.suggest(namespace, &written, &type_keywords()) {
                diagnostic = diagnostic.help(format!("did you mean `{close}`?"));
            }
            self.report(diagnostic);
            return None;
        };
        match self.source(id).ast {
            DeclAst::Table(_) => Some(Type::Table(id)),
            DeclAst::Struct(_) => Some(Type::Struct(id)),
            DeclAst::Enum(_) => Some(Type::Enum(id)),
            DeclAst::Union(_) => Some(Type::Union(id)),
            DeclAst::RpcService(_) => {
                let declared = self.decl_loc(id);
                self.report(
                    Diagnostic::error(format!("`{}` is an rpc_service, not a type", path.dotted()))
                        .at(loc, "expected a type")
                        .with(declared, "declared here"),
                );
                None
            }
        }
    }

    /// Resolves the name `path` to a table, reporting anything else: `what` says what the
    /// table is for ("root type", "rpc request").
    pub(super) fn resolve_table(
        &mut self,
        file: FileId,
        namespace: &[String],
        path: &Path,
        what: &str,
    ) -> Option<DeclId> {
        match self.resolve_type_name(file, namespace, path)? {
            Type::Table(id) => Some(id),
            other => {
                let found = self.describe_type(&other);
                self.report(
                    Diagnostic::error(format!("{what} must be a table, found {found}"))
                        .at(Loc::new(file, path.span), "not a table"),
                );
                None
            }
        }
    }

    /// The type of a table field: anything but fixed arrays and vectors of vectors.
    pub(super) fn table_field_type(
        &mut self,
        file: FileId,
        namespace: &[String],
        ty: &TypeExpr,
    ) -> Option<Type> {
        let loc = Loc::new(file, ty.span);
        match &ty.kind {
            TypeExprKind::Named(path) => self.resolve_type_name(file, namespace, path),
            TypeExprKind::Vector(element) => match &element.kind {
                TypeExprKind::Named(path) => {
                    let element = self.resolve_type_name(file, namespace, path)?;
                    Some(Type::Vector(Box::new(element)))
                }
                TypeExprKind::Vector(_) | TypeExprKind::Array(..) => {
                    self.report(
                        Diagnostic::error("nested vector types are not supported")
                            .at(loc, "vector of vectors")
                            .help("wrap the inner vector in a table"),
                    );
                    None
                }
            },
            TypeExprKind::Array(..) => {
                self.report(
                    Diagnostic::error("fixed-length arrays are only allowed in structs")
                        .at(loc, "array in a table")
                        .help("wrap the array in a struct, or use a vector `[T]`"),
                );
                None
            }
        }
    }

    /// The type of a struct field: scalars, enums, structs and fixed arrays of those.
    pub(super) fn struct_field_type(
        &mut self,
        file: FileId,
        namespace: &[String],
        ty: &TypeExpr,
    ) -> Option<Type> {
        let loc = Loc::new(file, ty.span);
        let resolved = match &ty.kind {
            TypeExprKind::Named(path) => self.resolve_type_name(file, namespace, path)?,
            TypeExprKind::Vector(_) => {
                self.report_not_in_struct(loc, "a vector");
                return None;
            }
            TypeExprKind::Array(element, length) => {
                let length = self.array_length(file, length);
                let element = match &element.kind {
                    TypeExprKind::Named(path) => self.resolve_type_name(file, namespace, path),
                    TypeExprKind::Vector(_) | TypeExprKind::Array(..) => {
                        self.report(
                            Diagnostic::error("arrays of arrays or vectors are not supported")
                                .at(loc, "nested array")
                                .help("wrap the inner array in a struct"),
                        );
                        None
                    }
                };
                let element = element?;
                if !matches!(element, Type::Scalar(_) | Type::Enum(_) | Type::Struct(_)) {
                    let found = format!("an array of {}", self.describe_type(&element));
                    self.report_not_in_struct(loc, &found);
                    return None;
                }
                return Some(Type::Array(Box::new(element), length?));
            }
        };
        if !matches!(resolved, Type::Scalar(_) | Type::Enum(_) | Type::Struct(_)) {
            let found = self.describe_type(&resolved);
            self.report_not_in_struct(loc, &found);
            return None;
        }
        Some(resolved)
    }

    fn report_not_in_struct(&mut self, loc: Loc, found: &str) {
        self.report(
            Diagnostic::error(format!("structs may contain only scalars, enums, structs and fixed arrays of those, found {found}"))
                .at(loc, "not allowed in a struct")
                .help("use a table for variable-size data"),
        );
    }

    fn array_length(&mut self, file: FileId, length: &crate::syntax::ast::Literal) -> Option<u32> {
        let value = match &length.kind {
            LiteralKind::Int(text) => parse_int(text),
            _ => None,
        };
        match value {
            Some(n) if (1..=MAX_ARRAY_LENGTH).contains(&n) => Some(n as u32),
            _ => {
                self.report(
                    Diagnostic::error(
                        "the length of a fixed-length array must be between 1 and 65535",
                    )
                    .at(Loc::new(file, length.span), "invalid length"),
                );
                None
            }
        }
    }

    /// "a table `T`", "`string`", "a vector": for messages.
    pub(super) fn describe_type(&self, ty: &Type) -> String {
        let name = |id: DeclId| self.source(id).name.dotted();
        match ty {
            Type::Scalar(s) => format!("`{}`", s.keyword()),
            Type::String => "`string`".to_string(),
            Type::Enum(id) => format!("enum `{}`", name(*id)),
            Type::Struct(id) => format!("struct `{}`", name(*id)),
            Type::Table(id) => format!("table `{}`", name(*id)),
            Type::Union(id) => format!("union `{}`", name(*id)),
            Type::Vector(_) => "a vector".to_string(),
            Type::Array(..) => "an array".to_string(),
        }
    }
}
