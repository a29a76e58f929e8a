//! Enums: a TypeScript `enum` (numeric, so values a newer schema adds still fit the type, and
//! `Color[2]` names a value), or for 64-bit underlying types, whose values are `bigint`s that a
//! TypeScript enum cannot hold, a constant object of `bigint`s beside a `bigint` type alias.
//! `bit_flags` enums hold each flag's value (`1 << n`), as flatc writes them.

use super::Scope;
use super::code::Code;
use super::names::{member, type_ident};
use super::types::{enum_is_64, int};
use crate::model::{DeclId, Enum, Scalar};

/// One value of an enum or a union tag.
pub(crate) struct EnumValue<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: i128,
    pub(crate) docs: &'a [String],
}

pub(crate) fn emit_enum(scope: &Scope, code: &mut Code, id: DeclId, e: &Enum) {
    let decl = scope.model().decl(id);
    let name = type_ident(&decl.name.name);
    scope.claim_top(&name, format!("enum `{}`", decl.name.dotted()), decl.loc);
    let values: Vec<EnumValue> = e
        .values
        .iter()
        .map(|v| EnumValue { name: &v.name, value: v.value, docs: &v.docs })
        .collect();
    code.doc(&decl.docs);
    if enum_is_64(e) {
        emit_bigint_enum(code, &name, e.underlying, &values);
    } else {
        emit_ts_enum(code, &name, &values);
    }
}

/// `export enum Name { A = 0, ... }`.
pub(crate) fn emit_ts_enum(code: &mut Code, name: &str, values: &[EnumValue]) {
    code.open(format!("export enum {name} {{"));
    for v in values {
        code.doc(v.docs);
        code.line(format!("{} = {},", enum_member(v.name), v.value));
    }
    code.close("}");
}

/// `export const Name = { A: BigInt("1"), ... } as const; export type Name = bigint;`
fn emit_bigint_enum(code: &mut Code, name: &str, underlying: Scalar, values: &[EnumValue]) {
    code.open(format!("export const {name} = {{"));
    for v in values {
        code.doc(v.docs);
        code.line(format!("{}: {},", enum_member(v.name), int(underlying, v.value)));
    }
    code.close("} as const;");
    code.doc1("The values of a 64-bit enum are `bigint`s; the named ones are the constants above.");
    code.line(format!("export type {name} = bigint;"));
}

/// An enum member's (or union variant's) name: any identifier is allowed in a TypeScript enum,
/// but `__proto__` would set the enum object's prototype instead of defining a member, so the
/// names [`member`] escapes are escaped here too (`__proto___`).
pub(crate) fn enum_member(name: &str) -> String {
    member(name, &[])
}

/// The expression for enum value `value` of enum `id` as seen from `scope`: `Color.Blue` when
/// the value is named, else the number cast to the enum (`3 as Perm`), or a `bigint`.
pub(crate) fn value_expr(scope: &Scope, id: DeclId, value: i128) -> String {
    let e = scope.model().enum_(id);
    let name = scope.name(id, "");
    match e.values.iter().find(|v| v.value == value) {
        Some(v) => format!("{name}.{}", enum_member(&v.name)),
        None if enum_is_64(e) => int(e.underlying, value),
        None => format!("({value} as {name})"),
    }
}
