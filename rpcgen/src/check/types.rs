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
            } else if !namespace.is_empty() {
                let tried: Vec<String> = (0..=namespace.len())
                    .rev()
                    .map(|depth| {
                        let prefix: Vec<&str> =
                            namespace[..depth].iter().map(String::as_str).collect();
                        format!(
                            "`{}`",
                            prefix
                                .into_iter()
                                .chain([written.as_str()])
                                .collect::<Vec<_>>()
                                .join(".")
                        )
                    })
                    .collect();
                diagnostic = diagnostic.note(format!("looked for {}", tried.join(", ")));
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

    /// flatc resolves some types as it reads, so they must be declared before a field uses them
    /// (declaration ids follow reading order: included files first, then each file top to
    /// bottom): enums and unions everywhere, and structs inside structs.
    pub(super) fn check_declared_before(
        &mut self,
        user: DeclId,
        ty: &Type,
        loc: Loc,
        in_struct: bool,
    ) {
        let used = match ty {
            Type::Vector(element) | Type::Array(element, _) => {
                return self.check_declared_before(user, element, loc, in_struct);
            }
            Type::Enum(id) | Type::Union(id) => *id,
            Type::Struct(id) if in_struct => *id,
            _ => return,
        };
        if used < user {
            return;
        }
        let what = self.describe_type(ty);
        let declared = self.decl_loc(used);
        self.report(
            Diagnostic::error(format!("{what} is used before it is declared"))
                .at(loc, "used here")
                .with(declared, "declared here, later")
                .help(
                    "move the declaration above its first use (flatc reads schemas top to bottom)",
                ),
        );
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

    /// "table `a.T`", "`string`", "`[ubyte]`": a type for messages.
    pub(super) fn describe_type(&self, ty: &Type) -> String {
        let name = |id: DeclId| self.source(id).name.dotted();
        match ty {
            Type::Enum(id) => format!("enum `{}`", name(*id)),
            Type::Struct(id) => format!("struct `{}`", name(*id)),
            Type::Table(id) => format!("table `{}`", name(*id)),
            Type::Union(id) => format!("union `{}`", name(*id)),
            _ => format!("`{}`", self.spell_type(ty)),
        }
    }

    /// A type as it would be written in a schema: `int`, `a.T`, `[string]`, `[float:3]`.
    fn spell_type(&self, ty: &Type) -> String {
        match ty {
            Type::Scalar(s) => s.keyword().to_string(),
            Type::String => "string".to_string(),
            Type::Enum(id) | Type::Struct(id) | Type::Table(id) | Type::Union(id) => {
                self.source(*id).name.dotted()
            }
            Type::Vector(element) => format!("[{}]", self.spell_type(element)),
            Type::Array(element, length) => format!("[{}:{length}]", self.spell_type(element)),
        }
    }
}

/// A type expression as written: `a.T`, `[int]`, `[float:3]`.
pub(super) fn written_type(ty: &TypeExpr) -> String {
    match &ty.kind {
        TypeExprKind::Named(path) => path.dotted(),
        TypeExprKind::Vector(element) => format!("[{}]", written_type(element)),
        TypeExprKind::Array(element, length) => {
            format!("[{}:{}]", written_type(element), super::attrs::literal_text(&length.kind))
        }
    }
}
