//! Owned table objects (`MonsterT`): plain data built from an object of fields, with `pack`,
//! `toBytes` and `MonsterT.fromBytes`; and the reader's `unpack()`/`unpackTo()`.
//!
//! Required fields are required by the constructor and never `null`, so every object packs
//! into a valid buffer. Absent vectors are `null`, not `[]` (flatc's object API cannot tell them
//! apart), `[ubyte]` vectors are `Uint8Array`s, union values are `{ type, value }` objects, and
//! `pack` sorts vectors of keyed tables by key so that lookups work on what it writes.

use super::Scope;
use super::code::{Code, join};
use super::enums::value_expr;
use super::names::{camel, member, string_literal, type_ident};
use super::structs::value_type;
use super::table::{READER_MEMBERS, live_fields, vt};
use super::types::{always_present, is_required, scalar_default};
use crate::model::{DeclId, Field, NonScalarDefault, Scalar, Table, Type, Value};

/// Members every owned object has.
pub(crate) const OBJECT_MEMBERS: &[&str] = &["pack", "toBytes"];

/// The property of a field in the owned class.
fn prop(field: &Field) -> String {
    member(&camel(&field.name), OBJECT_MEMBERS)
}

/// The reader's accessor of a field.
fn acc(field: &Field) -> String {
    member(&camel(&field.name), READER_MEMBERS)
}

/// True for `[ubyte]`, held as a `Uint8Array`.
fn is_bytes(ty: &Type) -> bool {
    matches!(ty, Type::Vector(e) if **e == Type::Scalar(Scalar::U8))
}

/// The owned type of a vector element.
fn elem_type(scope: &Scope, ty: &Type) -> String {
    match ty {
        Type::Scalar(_) | Type::Enum(_) => value_type(scope, ty),
        Type::String => "string".to_owned(),
        Type::Struct(id) | Type::Table(id) => scope.name(*id, "T"),
        Type::Union(id) => format!("{} | null", scope.name(*id, "T")),
        other => unreachable!("vector of {other:?}"),
    }
}

/// The owned type of a field, without `| null`.
fn base_type(scope: &Scope, field: &Field) -> String {
    match &field.ty {
        Type::Scalar(_) | Type::Enum(_) => value_type(scope, &field.ty),
        Type::String => "string".to_owned(),
        Type::Struct(id) | Type::Table(id) | Type::Union(id) => scope.name(*id, "T"),
        ty if is_bytes(ty) => "Uint8Array".to_owned(),
        Type::Vector(e) => match **e {
            Type::Union(_) => format!("({})[]", elem_type(scope, e)),
            _ => format!("{}[]", elem_type(scope, e)),
        },
        Type::Array(..) => unreachable!("arrays only occur in structs"),
    }
}

/// True when the owned field can be `null`.
fn nullable(field: &Field) -> bool {
    !always_present(field) || (matches!(field.ty, Type::Union(_)) && !is_required(field))
}

/// The owned type of a field.
fn field_type(scope: &Scope, field: &Field) -> String {
    let base = base_type(scope, field);
    if nullable(field) { format!("{base} | null") } else { base }
}

/// The value of a field the constructor was not given (`None` for required fields).
fn default_value(scope: &Scope, field: &Field) -> Option<String> {
    if is_required(field) {
        return None;
    }
    if nullable(field) {
        return Some("null".to_owned());
    }
    Some(match &field.ty {
        Type::Scalar(s) => scalar_default(*s, field),
        Type::Enum(id) => {
            let value = match field.default {
                Some(Value::Int(i)) => i,
                _ => 0,
            };
            value_expr(scope, *id, value)
        }
        Type::String => match &field.default_nonscalar {
            Some(NonScalarDefault::String(text)) => string_literal(text),
            _ => "\"\"".to_owned(),
        },
        ty if is_bytes(ty) => "new Uint8Array(0)".to_owned(),
        Type::Vector(_) => "[]".to_owned(),
        other => unreachable!("no default for {other:?}"),
    })
}

/// The expression (on a reader, `this`) giving a field's owned value.
fn unpack_expr(scope: &Scope, field: &Field) -> String {
    let v = scope.v();
    let a = acc(field);
    let required = is_required(field);
    match &field.ty {
        Type::Scalar(_) | Type::Enum(_) | Type::String => format!("this.{a}()"),
        Type::Struct(_) | Type::Table(_) if required => format!("this.{a}().unpack()"),
        Type::Struct(_) | Type::Table(_) => format!("this.{a}()?.unpack() ?? null"),
        Type::Union(id) => {
            let owned = scope.name(*id, "T");
            let tail = if required {
                format!(" ?? {v}.missing({})", string_literal(&field.name))
            } else {
                String::new()
            };
            format!(
                "{owned}.unpack(this.bb!, this.{}(), {v}.field(this.bb!, this.bb_pos, {})){tail}",
                member(&format!("{}Type", camel(&field.name)), READER_MEMBERS),
                vt(field.id)
            )
        }
        Type::Vector(elem) => {
            let base = camel(&field.name);
            let list = if is_bytes(&field.ty) {
                if always_present(field) {
                    format!("this.{base}Array().slice()")
                } else {
                    return format!("this.{base}Array()?.slice() ?? null");
                }
            } else {
                let element = match &**elem {
                    Type::Scalar(_) | Type::Enum(_) | Type::String => format!("this.{a}(i)!"),
                    Type::Struct(_) | Type::Table(_) => format!("this.{a}(i)!.unpack()"),
                    Type::Union(id) => format!(
                        "{}.unpack(this.bb!, this.{}(i) ?? 0, {v}.vectorStart(this.bb!, this.bb_pos, {}) + i * 4)",
                        scope.name(*id, "T"),
                        member(&format!("{base}Type"), READER_MEMBERS),
                        vt(field.id)
                    ),
                    other => unreachable!("vector of {other:?}"),
                };
                format!("{v}.list(this.{base}Length(), (i) => {element})")
            };
            if always_present(field) {
                list
            } else {
                format!("this.bb!.__offset(this.bb_pos, {}) ? {list} : null", vt(field.id))
            }
        }
        Type::Array(..) => unreachable!("arrays only occur in structs"),
    }
}

/// The reader's `unpack()` and `unpackTo()`.
pub(crate) fn emit_unpack(scope: &Scope, code: &mut Code, id: DeclId, t: &Table) {
    let owned = scope.name(id, "T");
    let fields: Vec<(String, String)> =
        live_fields(t).map(|f| (prop(f), unpack_expr(scope, f))).collect();
    code.line("");
    code.doc1("Copies everything this reader sees into an owned object.");
    code.open(format!("unpack(): {owned} {{"));
    if fields.is_empty() {
        code.line(format!("return new {owned}();"));
    } else {
        code.open(format!("return new {owned}({{"));
        for (p, e) in &fields {
            code.line(format!("{p}: {e},"));
        }
        code.close("});");
    }
    code.close("}");
    code.line("");
    code.doc1("Copies everything this reader sees into an existing owned object.");
    let param = if fields.is_empty() { "_o" } else { "o" };
    code.open(format!("unpackTo({param}: {owned}): void {{"));
    for (p, e) in &fields {
        code.line(format!("o.{p} = {e};"));
    }
    code.close("}");
}

/// The owned class `MonsterT`.
pub(crate) fn emit_object(scope: &Scope, code: &mut Code, id: DeclId, t: &Table) {
    let model = scope.model();
    let decl = model.decl(id);
    let dotted = decl.name.dotted();
    let raw = &decl.name.name;
    let reader = type_ident(raw);
    let owned = type_ident(&format!("{raw}T"));
    let fb = scope.fb();
    let v = scope.v();
    scope.claim_top(&owned, format!("the object class of table `{dotted}`"), decl.loc);
    let space = format!("object {dotted}");
    for m in OBJECT_MEMBERS {
        scope.claim(&space, m, "the object's own member", decl.loc);
    }
    let fields: Vec<&Field> = live_fields(t).collect();

    code.doc1(format!("The owned form of a {{@link {reader}}}: plain data, written with `pack`."));
    code.open(format!("export class {owned} {{"));
    for f in &fields {
        let p = prop(f);
        scope.claim(&space, &p, format!("field `{}` of `{dotted}`", f.name), f.loc);
        code.doc(&f.docs);
        code.line(format!("{p}: {};", field_type(scope, f)));
    }
    let inits: Vec<String> = fields
        .iter()
        .map(|f| {
            let q = if is_required(f) { "" } else { "?" };
            format!("{}{q}: {}", prop(f), field_type(scope, f))
        })
        .collect();
    let any_required = fields.iter().any(|f| is_required(f));
    code.line("");
    code.doc1(if any_required {
        "Required fields must be given; the others default as the schema says (absent: `null`)."
    } else {
        "Fields not given default as the schema says (absent: `null`)."
    });
    if fields.is_empty() {
        code.line("constructor() {}");
    } else {
        let default = if any_required { "" } else { " = {}" };
        code.open(format!("constructor(init: {{ {} }}{default}) {{", join(&inits, "; ")));
        for f in &fields {
            let p = prop(f);
            match default_value(scope, f) {
                Some(d) => code.line(format!("this.{p} = init.{p} ?? {d};")),
                None => code.line(format!("this.{p} = init.{p};")),
            }
        }
        code.close("}");
    }

    // pack
    code.line("");
    code.doc1("Writes this object (and everything it holds) and returns the table's offset.");
    code.open(format!("pack(builder: {fb}.Builder): {fb}.Offset {{"));
    let mut args = Vec::new();
    for f in &fields {
        emit_pack_field(scope, code, &reader, f, &mut args);
    }
    if args.is_empty() {
        code.line(format!("return {reader}.create{raw}(builder);"));
    } else {
        code.line(format!("return {reader}.create{raw}(builder, {{ {} }});", join(&args, ", ")));
    }
    code.close("}");

    code.line("");
    code.doc1("This object as a finished buffer of its own (no file identifier).");
    code.open("toBytes(): Uint8Array {");
    code.line(format!("const builder = new {fb}.Builder();"));
    code.line("builder.finish(this.pack(builder));");
    code.line("return builder.asUint8Array();");
    code.close("}");

    code.line("");
    code.doc1("Verifies `bytes` as a buffer whose root is this table and unpacks it; throws a `VerifyError` naming what is wrong.");
    code.open(format!(
        "static fromBytes(bytes: Uint8Array, options?: {v}.VerifyOptions): {owned} {{"
    ));
    code.line(format!("return {reader}.fromBytes(bytes, options).unpack();"));
    code.close("}");
    code.close("}");
}

/// Statements writing a field's out-of-line data into `$<field>`, and the `createX` argument
/// that passes it on.
fn emit_pack_field(
    scope: &Scope,
    code: &mut Code,
    reader: &str,
    f: &Field,
    args: &mut Vec<String>,
) {
    let p = prop(f);
    let key = member(&camel(&f.name), &[]);
    let local = format!("${}", camel(&f.name));
    let this = format!("this.{p}");
    let null = nullable(f);
    // `<check> ? 0 : <write>` for nullable fields.
    let guard = |write: String| if null { format!("{this} === null ? 0 : {write}") } else { write };
    match &f.ty {
        Type::Scalar(_) | Type::Enum(_) | Type::Struct(_) => {
            args.push(format!("{key}: {this}"));
        }
        Type::String => {
            code.line(format!(
                "const {local} = {};",
                guard(format!("builder.createString({this})"))
            ));
            args.push(format!("{key}: {local}"));
        }
        Type::Table(_) => {
            code.line(format!("const {local} = {};", guard(format!("{this}.pack(builder)"))));
            args.push(format!("{key}: {local}"));
        }
        Type::Union(id) => {
            let owned = scope.name(*id, "T");
            let tag = scope.name(*id, "");
            let empty = scope.model().union(*id).variants.is_empty();
            // A union without variants has no value to write (its owned type is `never`).
            let value = if empty {
                "0".to_owned()
            } else {
                guard(format!("{owned}.pack(builder, {this})"))
            };
            code.line(format!("const {local} = {value};"));
            let tag_key = member(&camel(&format!("{}_type", f.name)), &[]);
            let tag_value = if empty {
                format!("{tag}.NONE")
            } else if null {
                format!("{this}?.type ?? {tag}.NONE")
            } else {
                format!("{this}.type")
            };
            args.push(format!("{tag_key}: {tag_value}"));
            args.push(format!("{key}: {local}"));
        }
        Type::Vector(elem) => {
            let upper = super::names::upper_camel(&f.name);
            let create = format!("{reader}.create{upper}Vector");
            match &**elem {
                Type::Union(id) => {
                    let owned = scope.name(*id, "T");
                    let tag = scope.name(*id, "");
                    let tag_upper = super::names::upper_camel(&format!("{}_type", f.name));
                    let tag_local = format!("${}Type", camel(&f.name));
                    // Elements of a union without variants are all `null` (no tag, no value).
                    let (tag_of, value_of) = if scope.model().union(*id).variants.is_empty() {
                        (format!("() => {tag}.NONE"), "() => 0".to_owned())
                    } else {
                        (
                            format!("(x) => x?.type ?? {tag}.NONE"),
                            format!("(x) => (x === null ? 0 : {owned}.pack(builder, x))"),
                        )
                    };
                    code.line(format!(
                        "const {tag_local} = {};",
                        guard(format!(
                            "{reader}.create{tag_upper}Vector(builder, {this}.map({tag_of}))"
                        ))
                    ));
                    code.line(format!(
                        "const {local} = {};",
                        guard(format!("{create}(builder, {this}.map({value_of}))"))
                    ));
                    let tag_key = member(&camel(&format!("{}_type", f.name)), &[]);
                    args.push(format!("{tag_key}: {tag_local}"));
                }
                Type::Scalar(_) | Type::Enum(_) | Type::Struct(_) => {
                    code.line(format!(
                        "const {local} = {};",
                        guard(format!("{create}(builder, {this})"))
                    ));
                }
                Type::String => {
                    code.line(format!(
                        "const {local} = {};",
                        guard(format!(
                            "{create}(builder, {this}.map((x) => builder.createString(x)))"
                        ))
                    ));
                }
                Type::Table(id) => {
                    let items = match scope.model().table(*id).key {
                        Some(k) => {
                            let key_field = &scope.model().table(*id).fields[k];
                            let kp = prop(key_field);
                            let v = scope.v();
                            match key_field.ty {
                                Type::String => {
                                    format!("{v}.sortByStringKey({this}, (x) => x.{kp})")
                                }
                                Type::Struct(_) => format!(
                                    "{v}.sortByKeyValues({this}, (x) => x.{kp}.keyValues())"
                                ),
                                _ => format!("{v}.sortByKey({this}, (x) => x.{kp})"),
                            }
                        }
                        None => this.clone(),
                    };
                    code.line(format!(
                        "const {local} = {};",
                        guard(format!("{create}(builder, {items}.map((x) => x.pack(builder)))"))
                    ));
                }
                other => unreachable!("vector of {other:?}"),
            }
            args.push(format!("{key}: {local}"));
        }
        Type::Array(..) => unreachable!("arrays only occur in structs"),
    }
}
