//! Unions: the tag enum (`Equipment`, with `NONE = 0`), the owned value type `EquipmentT` (a
//! discriminated union of `{ type, value }`, with no `any`), and a companion object of the same
//! name that generated code uses to read, unpack, pack and verify values by their tag.
//!
//! As in the Rust backend and flatc's C++ output, variants may be tables, structs and strings;
//! structs and strings are stored out of line behind the union's offset.

use super::Scope;
use super::code::{Code, join};
use super::enums::{EnumValue, emit_ts_enum, enum_member};
use super::names::type_ident;
use crate::model::{DeclId, Union, UnionVariantType};

pub(crate) fn emit_union(scope: &Scope, code: &mut Code, id: DeclId, u: &Union) {
    let model = scope.model();
    let decl = model.decl(id);
    let dotted = decl.name.dotted();
    let tag = type_ident(&decl.name.name);
    let owned = type_ident(&format!("{}T", decl.name.name));
    let fb = scope.fb();
    let v = scope.v();
    scope.claim_top(&tag, format!("union `{dotted}`"), decl.loc);
    scope.claim_top(&owned, format!("the object type of union `{dotted}`"), decl.loc);

    let none_doc = vec!["No value.".to_owned()];
    let mut values = vec![EnumValue { name: "NONE", value: 0, docs: &none_doc }];
    values.extend(u.variants.iter().map(|v| EnumValue {
        name: &v.name,
        value: v.value,
        docs: &v.docs,
    }));
    code.doc(&decl.docs);
    emit_ts_enum(code, &tag, &values);

    // The owned value type.
    code.line("");
    code.doc1(format!(
        "A `{}` value: the variant's tag and its owned value (`null` where a field holds none).",
        decl.name.name
    ));
    if u.variants.is_empty() {
        code.line(format!("export type {owned} = never;"));
    } else {
        code.line(format!("export type {owned} ="));
        for v in &u.variants {
            let value = match v.ty {
                UnionVariantType::Table(t) | UnionVariantType::Struct(t) => scope.name(t, "T"),
                UnionVariantType::String => "string".to_owned(),
            };
            let end = if std::ptr::eq(v, u.variants.last().expect("not empty")) { ";" } else { "" };
            code.line(format!(
                "  | {{ type: {tag}.{}; value: {value} }}{end}",
                enum_member(&v.name)
            ));
        }
    }

    let readers = reader_types(scope, id);
    code.line("");
    code.doc1(format!(
        "Reads, unpacks, writes and verifies `{}` values by their tag.",
        decl.name.name
    ));
    code.open(format!("export const {owned} = {{"));

    // Without variants there is no value to write or read: the parameters those functions do
    // not use are `_`-named, which strict TypeScript accepts unused.
    let empty = u.variants.is_empty();
    let p = |name: &str| if empty { format!("_{name}") } else { format!("${name}") };
    code.doc1(
        "Writes a value out of line and returns its offset, which a table stores beside the tag.",
    );
    code.open(format!("pack({}: {fb}.Builder, $value: {owned}): {fb}.Offset {{", p("builder")));
    if empty {
        code.line(format!(
            "return {v}.notAVariant({}, $value);",
            super::names::string_literal(&dotted)
        ));
        code.close("},");
    } else {
        emit_pack_switch(code, &tag, u, v, &dotted);
    }

    let reads = u.variants.iter().map(|var| {
        let read = match var.ty {
            UnionVariantType::Table(t) | UnionVariantType::Struct(t) => {
                format!("new {}().__init($bb.__indirect($pos), $bb)", scope.name(t, ""))
            }
            UnionVariantType::String => format!("{v}.string($bb, $pos)"),
        };
        format!("case {tag}.{}: return {read};", enum_member(&var.name))
    });
    code.line("");
    code.doc1("The reader of the value whose offset is at `pos` (0: none); `null` for `NONE` or a tag this schema does not know.");
    emit_by_tag(
        code,
        &format!(
            "read({}: {fb}.ByteBuffer, {}: number, {}: number): {readers} | null",
            p("bb"),
            p("type"),
            p("pos")
        ),
        reads,
    );

    let unpacks = u.variants.iter().map(|var| {
        let value = match var.ty {
            UnionVariantType::Table(t) | UnionVariantType::Struct(t) => {
                format!("new {}().__init($bb.__indirect($pos), $bb).unpack()", scope.name(t, ""))
            }
            UnionVariantType::String => format!("{v}.string($bb, $pos)"),
        };
        let name = enum_member(&var.name);
        format!("case {tag}.{name}: return {{ type: {tag}.{name}, value: {value} }};")
    });
    code.line("");
    code.doc1("The owned value whose offset is at `pos` (0: none); `null` for `NONE` or a tag this schema does not know.");
    emit_by_tag(
        code,
        &format!(
            "unpack({}: {fb}.ByteBuffer, {}: number, {}: number): {owned} | null",
            p("bb"),
            p("type"),
            p("pos")
        ),
        unpacks,
    );
    emit_verify(scope, code, &tag, u, v);
}

/// `pack`'s body: a case per variant.
fn emit_pack_switch(code: &mut Code, tag: &str, u: &Union, v: &str, dotted: &str) {
    code.open("switch ($value.type) {");
    for var in &u.variants {
        let write = match var.ty {
            UnionVariantType::String => "$builder.createString($value.value)",
            _ => "$value.value.pack($builder)",
        };
        code.line(format!("case {tag}.{}: return {write};", enum_member(&var.name)));
    }
    code.line(format!(
        "default: return {v}.notAVariant({}, $value);",
        super::names::string_literal(dotted)
    ));
    code.close("}");
    code.close("},");
}

/// A function of `($bb, $type, $pos)` with `signature`: `null` at offset 0 and for a tag this
/// schema does not know, else what the tag's case returns (`read` and `unpack`). Without
/// variants it returns `null` outright.
fn emit_by_tag(code: &mut Code, signature: &str, cases: impl Iterator<Item = String>) {
    code.open(format!("{signature} {{"));
    let mut cases = cases.peekable();
    if cases.peek().is_none() {
        code.line("return null;");
    } else {
        code.line("if ($pos === 0) return null;");
        code.open("switch ($type) {");
        for case in cases {
            code.line(case);
        }
        code.line("default: return null;");
        code.close("}");
    }
    code.close("},");
}

/// `__verify` (a case per variant; unknown tags as the verifier's options say), and the end of
/// the companion object.
fn emit_verify(scope: &Scope, code: &mut Code, tag: &str, u: &Union, v: &str) {
    let model = scope.model();
    code.line("");
    code.doc1(
        "Verifies the value whose offset is at `pos` as its tag says (generated code calls this).",
    );
    code.open(format!(
        "__verify($verifier: {v}.Verifier, $type: number, $pos: number, $required: boolean): void {{"
    ));
    code.open("switch ($type) {");
    for var in &u.variants {
        let name = super::names::string_literal(&var.name);
        let check = match var.ty {
            UnionVariantType::Table(t) => {
                format!("$verifier.variantTable($pos, {name}, {}.__verify)", scope.name(t, ""))
            }
            UnionVariantType::Struct(s) => {
                format!("$verifier.variantStruct($pos, {name}, {})", model.struct_(s).size)
            }
            UnionVariantType::String => format!("$verifier.variantString($pos, {name})"),
        };
        code.line(format!("case {tag}.{}: {check}; return;", enum_member(&var.name)));
    }
    code.line("default: $verifier.variantUnknown($pos, $type, $required); return;");
    code.close("}");
    code.close("},");
    code.close("};");
}

/// The reader types a union's values read as: `Weapon | Vec3 | string`, each once.
pub(crate) fn reader_types(scope: &Scope, id: DeclId) -> String {
    let mut types: Vec<String> = Vec::new();
    for v in &scope.model().union(id).variants {
        let t = match v.ty {
            UnionVariantType::Table(t) | UnionVariantType::Struct(t) => scope.name(t, ""),
            UnionVariantType::String => "string".to_owned(),
        };
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if types.is_empty() { "never".to_owned() } else { join(types, " | ") }
}
