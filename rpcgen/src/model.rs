//! The checked model: every name resolved, every rule checked, every layout computed.
//!
//! Emitters consume only this; they never see syntax. A [`Model`] exists only when checking
//! produced no error, so emitters may rely on every invariant documented here.

use crate::source::{FileId, Loc};

/// Index of a declaration in [`Model::decls`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeclId(pub u32);

/// A declaration's full name: `a.b.Monster` is `namespace: ["a", "b"], name: "Monster"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    pub namespace: Vec<String>,
    pub name: String,
}

impl QualifiedName {
    /// `a.b.Monster`
    pub fn dotted(&self) -> String {
        let mut s = self.namespace.join(".");
        if !s.is_empty() {
            s.push('.');
        }
        s.push_str(&self.name);
        s
    }
}

/// Everything the input files declare, checked.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Tables, structs, enums, unions and rpc_services, in the order the files declare them
    /// (included files first, each file once).
    pub decls: Vec<Decl>,
    /// Services from `.service` files, in declaration order.
    pub services: Vec<Service>,
    /// One entry per input file, in the order they were loaded.
    pub files: Vec<FileInfo>,
}

impl Model {
    pub fn decl(&self, id: DeclId) -> &Decl {
        &self.decls[id.0 as usize]
    }

    pub fn table(&self, id: DeclId) -> &Table {
        match &self.decl(id).kind {
            DeclKind::Table(t) => t,
            _ => panic!("{} is not a table", self.decl(id).name.dotted()),
        }
    }

    pub fn struct_(&self, id: DeclId) -> &Struct {
        match &self.decl(id).kind {
            DeclKind::Struct(s) => s,
            _ => panic!("{} is not a struct", self.decl(id).name.dotted()),
        }
    }

    pub fn enum_(&self, id: DeclId) -> &Enum {
        match &self.decl(id).kind {
            DeclKind::Enum(e) => e,
            _ => panic!("{} is not an enum", self.decl(id).name.dotted()),
        }
    }

    pub fn union(&self, id: DeclId) -> &Union {
        match &self.decl(id).kind {
            DeclKind::Union(u) => u,
            _ => panic!("{} is not a union", self.decl(id).name.dotted()),
        }
    }

    pub fn ids(&self) -> impl Iterator<Item = DeclId> + '_ {
        (0..self.decls.len() as u32).map(DeclId)
    }
}

/// What one input file declared at file level.
#[derive(Clone, Debug)]
pub struct FileInfo {
    pub file: FileId,
    /// The path as the user named it (or as an include resolved it).
    pub path: std::path::PathBuf,
    /// `root_type`, if the file declares one.
    pub root_type: Option<DeclId>,
    /// `file_identifier`: exactly 4 bytes.
    pub file_identifier: Option<[u8; 4]>,
    pub file_extension: Option<String>,
    /// Files this one includes directly, resolved.
    pub includes: Vec<FileId>,
}

#[derive(Clone, Debug)]
pub struct Decl {
    pub name: QualifiedName,
    pub docs: Vec<String>,
    /// Where the name is declared.
    pub loc: Loc,
    /// Attributes other than the ones the model interprets itself (user-declared attributes and
    /// flatc's language-specific ones), in source order.
    pub attributes: Vec<Attr>,
    pub kind: DeclKind,
}

#[derive(Clone, Debug)]
pub enum DeclKind {
    Table(Table),
    Struct(Struct),
    Enum(Enum),
    Union(Union),
    RpcService(RpcService),
}

/// An attribute kept for emitters, value already unquoted.
#[derive(Clone, Debug, PartialEq)]
pub struct Attr {
    pub name: String,
    pub value: Option<String>,
}

// ------------------------------------------------------------------------------------------------
// Types
// ------------------------------------------------------------------------------------------------

/// The scalar types. Aliases (`int32`, `uint8`, `float64`...) resolve to these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scalar {
    Bool,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl Scalar {
    /// Every scalar type, in declaration order (`ALL[s as usize] == s`).
    pub const ALL: [Scalar; 11] = [
        Scalar::Bool,
        Scalar::I8,
        Scalar::U8,
        Scalar::I16,
        Scalar::U16,
        Scalar::I32,
        Scalar::U32,
        Scalar::I64,
        Scalar::U64,
        Scalar::F32,
        Scalar::F64,
    ];

    /// Size in bytes, which is also the alignment.
    pub fn size(self) -> u32 {
        match self {
            Scalar::Bool | Scalar::I8 | Scalar::U8 => 1,
            Scalar::I16 | Scalar::U16 => 2,
            Scalar::I32 | Scalar::U32 | Scalar::F32 => 4,
            Scalar::I64 | Scalar::U64 | Scalar::F64 => 8,
        }
    }

    pub fn is_integer(self) -> bool {
        !matches!(self, Scalar::Bool | Scalar::F32 | Scalar::F64)
    }

    pub fn is_float(self) -> bool {
        matches!(self, Scalar::F32 | Scalar::F64)
    }

    /// Smallest and largest value of an integer type (bool counts as 0..=1).
    pub fn int_range(self) -> Option<(i128, i128)> {
        Some(match self {
            Scalar::Bool => (0, 1),
            Scalar::I8 => (i8::MIN as i128, i8::MAX as i128),
            Scalar::U8 => (0, u8::MAX as i128),
            Scalar::I16 => (i16::MIN as i128, i16::MAX as i128),
            Scalar::U16 => (0, u16::MAX as i128),
            Scalar::I32 => (i32::MIN as i128, i32::MAX as i128),
            Scalar::U32 => (0, u32::MAX as i128),
            Scalar::I64 => (i64::MIN as i128, i64::MAX as i128),
            Scalar::U64 => (0, u64::MAX as i128),
            Scalar::F32 | Scalar::F64 => return None,
        })
    }

    /// The schema keyword (`int`, `ubyte`...).
    pub fn keyword(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::I8 => "byte",
            Scalar::U8 => "ubyte",
            Scalar::I16 => "short",
            Scalar::U16 => "ushort",
            Scalar::I32 => "int",
            Scalar::U32 => "uint",
            Scalar::I64 => "long",
            Scalar::U64 => "ulong",
            Scalar::F32 => "float",
            Scalar::F64 => "double",
        }
    }
}

/// The type of a field, vector element, array element or union variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    Scalar(Scalar),
    /// An enum; its underlying scalar is in the [`Enum`].
    Enum(DeclId),
    String,
    Struct(DeclId),
    Table(DeclId),
    /// A union field; it occupies two vtable slots (see [`Field::id`]).
    Union(DeclId),
    /// `[T]`: T is never a vector.
    Vector(Box<Type>),
    /// `[T:N]`, only in structs: T is a scalar, enum or struct.
    Array(Box<Type>, u32),
}

impl Type {
    /// True for scalars and enums: stored inline in tables, with defaults.
    pub fn is_scalar_like(&self) -> bool {
        matches!(self, Type::Scalar(_) | Type::Enum(_))
    }
}

/// A scalar value: a default, an enum value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// Integers (and bools, as 0 or 1, and enum values) of any width: i128 holds every `u64`
    /// and every `i64`.
    Int(i128),
    /// Floats, including NaN and infinities.
    Float(f64),
}

// ------------------------------------------------------------------------------------------------
// Tables
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Table {
    /// In declaration order (which is not necessarily id order).
    pub fields: Vec<Field>,
    /// `(original_order)`: build fields in declaration order instead of largest first.
    pub original_order: bool,
    /// The field marked `(key)`, if any: an index into `fields`.
    pub key: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub docs: Vec<String>,
    pub loc: Loc,
    pub ty: Type,
    /// The vtable slot: from `(id: N)` or declaration order. For a union (or vector of unions)
    /// this is the slot of the value; the type tag (`<name>_type`, a `ubyte` or `[ubyte]`)
    /// takes slot `id - 1`. Slots of all fields of a table are exactly `0..n`.
    pub id: u16,
    pub presence: Presence,
    /// The default for scalars and enums with `Presence::Default`: always present for them, and
    /// already range-checked. For enums it is the numeric value.
    pub default: Option<Value>,
    /// A string default (`name: string = "x"`), or `[]` for vectors written with `= []`.
    pub default_nonscalar: Option<NonScalarDefault>,
    pub deprecated: bool,
    /// `(key)`: the vector of this table is sorted and searched by this field.
    pub key: bool,
    /// `(nested_flatbuffer: "T")`: this `[ubyte]` holds a buffer whose root is T.
    pub nested_flatbuffer: Option<DeclId>,
    /// `(hash: "fnv1a_32")` and friends: the algorithm name.
    pub hash: Option<String>,
    pub attributes: Vec<Attr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Scalars and enums without `= null`: always readable, absent means the default.
    Default,
    /// Scalars with `= null`, and non-scalar fields without `required`.
    Optional,
    /// `(required)` non-scalar fields: builders cannot omit them, readers return them unwrapped.
    Required,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NonScalarDefault {
    String(String),
    EmptyVector,
}

// ------------------------------------------------------------------------------------------------
// Structs
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Struct {
    pub fields: Vec<StructField>,
    /// Total size, a multiple of `align`.
    pub size: u32,
    /// Largest field alignment, or `(force_align: N)`.
    pub align: u32,
}

#[derive(Clone, Debug)]
pub struct StructField {
    pub name: String,
    pub docs: Vec<String>,
    pub loc: Loc,
    /// Scalar, enum, struct, or array of those.
    pub ty: Type,
    /// Byte offset within the struct.
    pub offset: u32,
    /// Padding bytes after this field (before the next one, or up to the struct's size).
    pub padding: u32,
    pub attributes: Vec<Attr>,
}

// ------------------------------------------------------------------------------------------------
// Enums and unions
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Enum {
    /// An integer scalar.
    pub underlying: Scalar,
    /// `(bit_flags)`: values are `1 << n`, already shifted here.
    pub bit_flags: bool,
    /// In declaration order; values strictly ascending (flatc requires it).
    pub values: Vec<EnumValue>,
}

#[derive(Clone, Debug)]
pub struct EnumValue {
    pub name: String,
    pub docs: Vec<String>,
    pub loc: Loc,
    pub value: i128,
    pub attributes: Vec<Attr>,
}

#[derive(Clone, Debug)]
pub struct Union {
    /// The integer type of the tag: `ubyte`, or the type declared as in `union U: int { ... }`.
    pub tag: Scalar,
    /// Variants in declaration order, without the implicit `NONE = 0`.
    pub variants: Vec<UnionVariant>,
}

#[derive(Clone, Debug)]
pub struct UnionVariant {
    /// The alias, or the type name as written with `.` replaced by `_` (`a.T` → `a_T`), as
    /// flatc names it.
    pub name: String,
    pub docs: Vec<String>,
    pub loc: Loc,
    /// The type tag; never 0 (that is NONE), unique within the union, a value of `Union::tag`.
    pub value: i128,
    pub ty: UnionVariantType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnionVariantType {
    Table(DeclId),
    Struct(DeclId),
    String,
}

// ------------------------------------------------------------------------------------------------
// rpc_service (FlatBuffers' own service syntax inside .fbs files)
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct RpcService {
    pub methods: Vec<RpcMethod>,
}

#[derive(Clone, Debug)]
pub struct RpcMethod {
    pub name: String,
    pub docs: Vec<String>,
    pub loc: Loc,
    /// Both are tables.
    pub request: DeclId,
    pub response: DeclId,
    pub attributes: Vec<Attr>,
}

// ------------------------------------------------------------------------------------------------
// Services (.service files)
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Service {
    pub name: QualifiedName,
    pub docs: Vec<String>,
    pub loc: Loc,
    pub methods: Vec<Method>,
    pub topics: Vec<Topic>,
    pub errors: Vec<ErrorDef>,
}

#[derive(Clone, Debug)]
pub struct Method {
    pub name: String,
    pub docs: Vec<String>,
    pub loc: Loc,
    /// Stable id: [`crate::ids::stable_id`] of `"<namespace>.<Service>.<method>"`, or the
    /// `(id: N)` attribute. Unique among all methods of the model.
    pub id: u32,
    /// A table.
    pub request: DeclId,
    /// A table, or `None` for `-> void` (fire-and-forget: no reply is sent).
    pub response: Option<DeclId>,
    /// `(idempotent)`: safe to retry; the client may retry it on retryable errors.
    pub idempotent: bool,
    /// `(writes)`: changes state; refused when an operator makes the service read-only.
    pub writes: bool,
}

#[derive(Clone, Debug)]
pub struct Topic {
    pub name: String,
    pub docs: Vec<String>,
    pub loc: Loc,
    /// Stable id, unique among all topics of the model.
    pub id: u32,
    /// A table.
    pub message: DeclId,
    /// `[name: type]`: the topic has one stream per key (e.g. per device).
    pub key: Option<TopicKey>,
    /// `(on_lag: ...)`: what happens to a subscriber that falls behind.
    pub on_lag: LagPolicy,
    /// `(retain)`: a new subscriber first receives the last event (per key).
    pub retain: bool,
    /// `(client_publish)`: clients (with permission) may publish, not only services.
    pub client_publish: bool,
    /// `(history: N, history_ttl: "10m")`: the last events kept for subscribers that come back.
    pub history: Option<History>,
}

/// A topic's history: at most `events` (per key), none older than `ttl_ms` (0: no age limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct History {
    pub events: u32,
    pub ttl_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicKey {
    pub name: String,
    pub ty: TopicKeyType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicKeyType {
    String,
    /// Any integer scalar, carried as its decimal text on the bus.
    Int(Scalar),
}

/// What the gateway does with a subscriber whose send queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LagPolicy {
    /// Close the connection with a "slow consumer" reason. The default: nothing is silently lost.
    #[default]
    Disconnect,
    /// Drop the oldest queued events of this topic and tell the subscriber how many it missed.
    DropOldest,
    /// Keep only the newest event per topic key (conflation).
    KeepLatest,
}

/// An application error a service's methods may return.
#[derive(Clone, Debug)]
pub struct ErrorDef {
    pub name: String,
    pub docs: Vec<String>,
    pub loc: Loc,
    /// Stable id, unique among all errors of the model.
    pub id: u32,
    /// The wire status the error travels under.
    pub status: StatusCode,
}

/// The wire status codes: gRPC's sixteen plus OK, numbered as gRPC numbers them. The same list
/// as `gateway_core::Code` (a test keeps them equal); rpcgen does not depend on the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl StatusCode {
    pub const ALL: [StatusCode; 17] = [
        StatusCode::Ok,
        StatusCode::Cancelled,
        StatusCode::Unknown,
        StatusCode::InvalidArgument,
        StatusCode::DeadlineExceeded,
        StatusCode::NotFound,
        StatusCode::AlreadyExists,
        StatusCode::PermissionDenied,
        StatusCode::ResourceExhausted,
        StatusCode::FailedPrecondition,
        StatusCode::Aborted,
        StatusCode::OutOfRange,
        StatusCode::Unimplemented,
        StatusCode::Internal,
        StatusCode::Unavailable,
        StatusCode::DataLoss,
        StatusCode::Unauthenticated,
    ];

    /// The snake_case name used in service files and docs (`not_found`).
    pub fn name(self) -> &'static str {
        match self {
            StatusCode::Ok => "ok",
            StatusCode::Cancelled => "cancelled",
            StatusCode::Unknown => "unknown",
            StatusCode::InvalidArgument => "invalid_argument",
            StatusCode::DeadlineExceeded => "deadline_exceeded",
            StatusCode::NotFound => "not_found",
            StatusCode::AlreadyExists => "already_exists",
            StatusCode::PermissionDenied => "permission_denied",
            StatusCode::ResourceExhausted => "resource_exhausted",
            StatusCode::FailedPrecondition => "failed_precondition",
            StatusCode::Aborted => "aborted",
            StatusCode::OutOfRange => "out_of_range",
            StatusCode::Unimplemented => "unimplemented",
            StatusCode::Internal => "internal",
            StatusCode::Unavailable => "unavailable",
            StatusCode::DataLoss => "data_loss",
            StatusCode::Unauthenticated => "unauthenticated",
        }
    }

    pub fn from_name(name: &str) -> Option<StatusCode> {
        StatusCode::ALL.into_iter().find(|c| c.name() == name)
    }
}
