//! The syntax tree: what the source says, with a span on every part, before any name is resolved
//! or any rule is checked.
//!
//! One tree per file. `.fbs` files become an [`FbsFile`], `.service` files a [`ServiceFile`].
//! Literals keep their source text; the checker interprets them (it needs the type to do so, e.g.
//! `300` is fine for a `short` but out of range for a `byte`).

use crate::source::Span;

/// An identifier as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub text: String,
    pub span: Span,
}

/// A dotted name, `a.b.C`. Never empty, except in `namespace;` (which selects the root
/// namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub parts: Vec<Ident>,
    pub span: Span,
}

impl Path {
    /// The path as written, joined with dots.
    pub fn dotted(&self) -> String {
        self.parts.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(".")
    }
}

/// A string literal: `value` is unescaped, `span` covers the quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

/// `///` lines directly above a declaration, field or value, with the `///` and one following
/// space removed, one entry per line. Plain `//` and `/* */` comments are dropped.
pub type Docs = Vec<String>;

/// A literal value: a default, an attribute value, an enum value.
#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    pub kind: LiteralKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LiteralKind {
    /// An integer as written, sign included: `-12`, `0x1F`, `+3`.
    Int(String),
    /// A float as written, sign included: `.5`, `1e9`, `-0x1.8p1`, `nan`, `-inf`, `+infinity`.
    Float(String),
    /// `true` or `false`.
    Bool(bool),
    /// A string literal (unescaped); also used for quoted scalars such as `"1"`, which flatc
    /// accepts as defaults.
    Str(String),
    /// A bare or dotted name: an enum value (`Red`, `Color.Red`) or, for bit flags, several
    /// space-separated names inside a string (that case arrives as `Str`).
    Name(Path),
    /// `null`, making a scalar field optional.
    Null,
    /// `[]`, the empty-vector default.
    EmptyVector,
}

/// `(name)` or `(name: value)` after a field, declaration, enum value or method.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub name: Ident,
    pub value: Option<Literal>,
    pub span: Span,
}

/// A type as written in a field or union variant.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    pub kind: TypeExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TypeExprKind {
    /// A scalar keyword (`int`, `uint32`, `float64`, `bool`...), `string`, or a user type.
    /// Scalar and `string` names arrive here too; the checker tells them apart.
    Named(Path),
    /// `[T]`
    Vector(Box<TypeExpr>),
    /// `[T:N]`, only valid in structs.
    Array(Box<TypeExpr>, Literal),
}

// ------------------------------------------------------------------------------------------------
// .fbs files
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FbsFile {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub kind: ItemKind,
    /// The whole item, from its first doc comment or keyword to its closing `;` or `}`.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ItemKind {
    /// `include "x.fbs";` or `include 'x.fbs';`
    Include(StrLit),
    /// `native_include "x.h";` (accepted, ignored by the Rust output).
    NativeInclude(StrLit),
    /// `namespace a.b;` — applies to the declarations after it, until the next one.
    Namespace(Path),
    /// `attribute "name";` or `attribute name;`
    AttributeDecl(StrLit),
    /// `root_type T;`
    RootType(Path),
    /// `file_identifier "ABCD";`
    FileIdentifier(StrLit),
    /// `file_extension "ext";`
    FileExtension(StrLit),
    Table(Compound),
    Struct(Compound),
    Enum(EnumDecl),
    Union(UnionDecl),
    RpcService(RpcServiceDecl),
}

/// A `table` or `struct`.
#[derive(Clone, Debug, PartialEq)]
pub struct Compound {
    pub name: Ident,
    pub docs: Docs,
    pub attributes: Vec<Attribute>,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Literal>,
    pub docs: Docs,
    pub attributes: Vec<Attribute>,
    /// From the field name to the `;`.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EnumDecl {
    pub name: Ident,
    /// `: ubyte`. Missing is an error the checker reports (flatc requires it).
    pub underlying: Option<TypeExpr>,
    pub docs: Docs,
    pub attributes: Vec<Attribute>,
    pub values: Vec<EnumValueDecl>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EnumValueDecl {
    pub name: Ident,
    /// `= 3`, an integer literal.
    pub value: Option<Literal>,
    pub docs: Docs,
    pub attributes: Vec<Attribute>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UnionDecl {
    pub name: Ident,
    /// `union U : ubyte` is accepted by flatc; usually absent.
    pub underlying: Option<TypeExpr>,
    pub docs: Docs,
    pub attributes: Vec<Attribute>,
    pub variants: Vec<UnionVariantDecl>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UnionVariantDecl {
    /// `Alias: Type`; without an alias the variant is named after its type's last path part.
    pub alias: Option<Ident>,
    pub ty: TypeExpr,
    /// `= 3`
    pub value: Option<Literal>,
    pub docs: Docs,
    pub attributes: Vec<Attribute>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RpcServiceDecl {
    pub name: Ident,
    pub docs: Docs,
    pub attributes: Vec<Attribute>,
    pub methods: Vec<RpcMethodDecl>,
}

/// `Name(Request):Response (attrs);`
#[derive(Clone, Debug, PartialEq)]
pub struct RpcMethodDecl {
    pub name: Ident,
    pub request: Path,
    pub response: Path,
    pub docs: Docs,
    pub attributes: Vec<Attribute>,
    pub span: Span,
}

// ------------------------------------------------------------------------------------------------
// .service files (grammar in docs/service-files.md)
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceFile {
    pub items: Vec<ServiceItem>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceItem {
    pub kind: ServiceItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ServiceItemKind {
    /// `include "x.fbs";` — brings message types into scope.
    Include(StrLit),
    /// `namespace a.b;` — the namespace of the services after it; also the first place message
    /// names are looked up.
    Namespace(Path),
    Service(ServiceDecl),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceDecl {
    pub name: Ident,
    pub docs: Docs,
    pub attributes: Vec<Attribute>,
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub kind: MemberKind,
    pub docs: Docs,
    pub attributes: Vec<Attribute>,
    /// From the first keyword or name to the `;`, docs excluded.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MemberKind {
    /// `name: Request -> Response;` or `name: Request -> void;`
    Method {
        name: Ident,
        request: Path,
        /// `None` for `-> void` (fire-and-forget).
        response: Option<Path>,
        /// The span of `void` or of the response path.
        response_span: Span,
    },
    /// `topic name: Message;` or `topic name[key: string]: Message;`
    Topic { name: Ident, key: Option<TopicKey>, message: Path },
    /// `error Name: status_code;`
    Error { name: Ident, status: Ident },
}

/// `[device_id: string]` on a topic.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicKey {
    pub name: Ident,
    pub ty: TypeExpr,
    pub span: Span,
}
