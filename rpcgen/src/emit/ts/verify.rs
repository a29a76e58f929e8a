//! Verification: each table's `__verify(v, pos)` (the checks of the Rust backend's verifier, run
//! by the runtime in `@rpcgen/client/verify`), the verified entry points `X.verify(bytes)` and
//! `X.fromBytes(bytes)`, and for root types `rootAsX(bytes)` and `sizePrefixedRootAsX(bytes)`.

use super::Scope;
use super::code::Code;
use super::names::{string_literal, type_ident};
use super::structs::scalar_of;
use super::table::{live_fields, vt};
use super::types::is_required;
use crate::model::{DeclId, Field, FileInfo, Scalar, Table, Type};

/// `verify`, `fromBytes` and `__verify` on a table's reader.
pub(crate) fn emit_table_verifier(scope: &Scope, code: &mut Code, id: DeclId, t: &Table) {
    let decl = scope.model().decl(id);
    let raw = &decl.name.name;
    let name = type_ident(raw);
    let fb = scope.fb();
    let v = scope.v();
    let label = string_literal(raw);
    code.line("");
    code.doc1(format!(
        "Verifies that `bytes` is a buffer whose root is a `{raw}`; throws a `VerifyError` naming what is wrong."
    ));
    code.open(format!("static verify(bytes: Uint8Array, options?: {v}.VerifyOptions): void {{"));
    code.line(format!("{v}.verifyRoot(bytes, {label}, {name}.__verify, options, false);"));
    code.close("}");
    code.line("");
    code.doc1(format!("Verifies `bytes` (see `verify`) and reads its root `{raw}`."));
    code.open(format!(
        "static fromBytes(bytes: Uint8Array, options?: {v}.VerifyOptions): {name} {{"
    ));
    code.line(format!("{v}.verifyRoot(bytes, {label}, {name}.__verify, options, false);"));
    code.line(format!("return {name}.getRootAs{raw}(new {fb}.ByteBuffer(bytes));"));
    code.close("}");
    code.line("");
    code.doc1("Verifies the table at `pos` (generated code calls this).");
    code.open(format!("static __verify($verifier: {v}.Verifier, $pos: number): void {{"));
    code.line("const $t = $verifier.table($pos);");
    for field in live_fields(t) {
        code.line(visit(scope, field));
        if let Some(root) = field.nested_flatbuffer {
            code.line(format!(
                "$t.nested({}, {}, {}.__verify, {});",
                vt(field.id),
                string_literal(&field.name),
                scope.name(root, ""),
                string_literal(&scope.model().decl(root).name.name)
            ));
        }
    }
    code.line("$t.end();");
    code.close("}");
}

/// The statement verifying one field.
fn visit(scope: &Scope, field: &Field) -> String {
    let slot = vt(field.id);
    let name = string_literal(&field.name);
    let required = is_required(field);
    match &field.ty {
        Type::Scalar(_) | Type::Enum(_) => {
            let size = scalar_of(scope, &field.ty).size();
            format!("$t.scalar({slot}, {size}, {name});")
        }
        Type::Struct(id) => {
            let size = scope.model().struct_(*id).size;
            format!("$t.struct({slot}, {size}, {name}, {required});")
        }
        Type::String => format!("$t.string({slot}, {name}, {required});"),
        Type::Table(id) => {
            format!("$t.table({slot}, {name}, {required}, {}.__verify);", scope.name(*id, ""))
        }
        Type::Union(id) => format!(
            "$t.union({}, {slot}, {name}, {required}, {}.__verify{});",
            vt(field.id - 1),
            scope.name(*id, "T"),
            tag_arg(scope, *id)
        ),
        Type::Vector(elem) => match &**elem {
            Type::Scalar(_) | Type::Enum(_) => {
                let size = scalar_of(scope, elem).size();
                format!("$t.vector({slot}, {size}, {size}, {name}, {required});")
            }
            // Structs are aligned to 1 in a vector, as flatbuffers-rs verifies them.
            Type::Struct(id) => {
                let size = scope.model().struct_(*id).size;
                format!("$t.vector({slot}, {size}, 1, {name}, {required});")
            }
            Type::String => format!("$t.strings({slot}, {name}, {required});"),
            Type::Table(id) => {
                format!("$t.tables({slot}, {name}, {required}, {}.__verify);", scope.name(*id, ""))
            }
            Type::Union(id) => format!(
                "$t.unions({}, {slot}, {name}, {required}, {}.__verify{});",
                vt(field.id - 1),
                scope.name(*id, "T"),
                tag_arg(scope, *id)
            ),
            other => unreachable!("vector of {other:?}"),
        },
        Type::Array(..) => unreachable!("arrays only occur in structs"),
    }
}

/// `rootAsMonster(bytes)` and `sizePrefixedRootAsMonster(bytes)` for a root type.
pub(crate) fn emit_root_functions(scope: &Scope, code: &mut Code, id: DeclId, _file: &FileInfo) {
    let decl = scope.model().decl(id);
    let raw = &decl.name.name;
    let name = type_ident(raw);
    let fb = scope.fb();
    let v = scope.v();
    let label = string_literal(raw);
    let root_as = format!("rootAs{raw}");
    let sp_root_as = format!("sizePrefixedRootAs{raw}");
    let dotted = decl.name.dotted();
    scope.claim_top(&root_as, format!("the root function of `{dotted}`"), decl.loc);
    scope.claim_top(&sp_root_as, format!("the root function of `{dotted}`"), decl.loc);
    code.doc1(format!(
        "Verifies `bytes` as a `{raw}` buffer and reads its root; throws a `VerifyError` naming what is wrong."
    ));
    code.open(format!(
        "export function {root_as}(bytes: Uint8Array, options?: {v}.VerifyOptions): {name} {{"
    ));
    code.line(format!("return {name}.fromBytes(bytes, options);"));
    code.close("}");
    code.line("");
    code.doc1(format!("Verifies `bytes` as a size-prefixed `{raw}` buffer and reads its root."));
    code.open(format!(
        "export function {sp_root_as}(bytes: Uint8Array, options?: {v}.VerifyOptions): {name} {{"
    ));
    code.line(format!("{v}.verifyRoot(bytes, {label}, {name}.__verify, options, true);"));
    code.line(format!("return {name}.getSizePrefixedRootAs{raw}(new {fb}.ByteBuffer(bytes));"));
    code.close("}");
}

/// The tag type argument of `$t.union` and `$t.unions` (`, "i32"`), or nothing for `ubyte`,
/// the runtime's default.
fn tag_arg(scope: &Scope, id: DeclId) -> String {
    let tag = scope.model().union(id).tag;
    if tag == Scalar::U8 {
        return String::new();
    }
    let (signed, bits) = match tag {
        Scalar::I8 => ("i", 8),
        Scalar::I16 => ("i", 16),
        Scalar::U16 => ("u", 16),
        Scalar::I32 => ("i", 32),
        Scalar::U32 => ("u", 32),
        Scalar::I64 => ("i", 64),
        Scalar::U64 => ("u", 64),
        other => unreachable!("{other:?} is not a union tag type"),
    };
    format!(", \"{signed}{bits}\"")
}
