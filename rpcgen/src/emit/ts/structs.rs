//! Structs: a reader class over the bytes in a buffer (`Vec3` with `x()`, `sizeOf()`,
//! `createVec3(builder, x, y, z)`), as flatc writes it, and the owned `Vec3T`.
//!
//! Unlike flatc, `createX` takes a nested struct as its object (`start: Vec3T`) rather than
//! flattened as `start_x, start_y...`, and array accessors check their index.

use super::code::{Code, join};
use super::enums::value_expr;
use super::names::{camel, member, type_ident};
use super::types::{builder_width, is_64, read, ts_type};
use super::{Scope, types};
use crate::model::{DeclId, Scalar, Struct, Type, Value};

/// Members every struct reader has.
pub(crate) const READER_MEMBERS: &[&str] = &["bb", "bb_pos", "__init", "unpack", "unpackTo"];
/// Members every owned struct has.
const OBJECT_MEMBERS: &[&str] = &["pack", "keyValues"];

pub(crate) fn emit_struct(scope: &Scope, code: &mut Code, id: DeclId, s: &Struct) {
    let model = scope.model();
    let decl = model.decl(id);
    let dotted = decl.name.dotted();
    let name = type_ident(&decl.name.name);
    let owned = type_ident(&format!("{}T", decl.name.name));
    let fb = scope.fb();
    scope.claim_top(&name, format!("struct `{dotted}`"), decl.loc);
    scope.claim_top(&owned, format!("the object class of struct `{dotted}`"), decl.loc);
    let reader_space = format!("reader {dotted}");
    let static_space = format!("statics {dotted}");
    let object_space = format!("object {dotted}");
    for m in READER_MEMBERS {
        scope.claim(&reader_space, m, "the reader's own member", decl.loc);
    }
    scope.claim(&static_space, "sizeOf", "the reader's own member", decl.loc);
    let create = format!("create{}", decl.name.name);
    scope.claim(&static_space, &create, "the reader's own member", decl.loc);
    scope.claim(&object_space, "pack", "the object's own member", decl.loc);

    // The reader.
    code.doc(&decl.docs);
    code.open(format!("export class {name} {{"));
    code.line(format!("bb: {fb}.ByteBuffer | null = null;"));
    code.line("bb_pos = 0;");
    code.line("");
    code.open(format!("__init(i: number, bb: {fb}.ByteBuffer): {name} {{"));
    code.line("this.bb_pos = i;");
    code.line("this.bb = bb;");
    code.line("return this;");
    code.close("}");
    for f in &s.fields {
        let accessor = member(&camel(&f.name), READER_MEMBERS);
        scope.claim(&reader_space, &accessor, format!("field `{}` of `{dotted}`", f.name), f.loc);
        code.line("");
        code.doc(&f.docs);
        let pos = at_offset(f.offset);
        match &f.ty {
            Type::Array(elem, n) => {
                let size = elem_size(scope, elem);
                let at = format!("{pos} + index * {size}");
                let check = format!("(index >>> 0) === index && index < {n}");
                match &**elem {
                    Type::Struct(e) => {
                        let t = scope.name(*e, "");
                        code.open(format!("{accessor}(index: number, obj?: {t}): {t} | null {{"));
                        code.line(format!(
                            "return {check} ? (obj ?? new {t}()).__init({at}, this.bb!) : null;"
                        ));
                    }
                    elem => {
                        let ty = value_type(scope, elem);
                        code.open(format!("{accessor}(index: number): {ty} | null {{"));
                        let value = read(scalar_of(scope, elem), "this.bb!", &at);
                        code.line(format!("return {check} ? {value} : null;"));
                    }
                }
            }
            Type::Struct(e) => {
                let t = scope.name(*e, "");
                code.open(format!("{accessor}(obj?: {t}): {t} {{"));
                code.line(format!("return (obj ?? new {t}()).__init({pos}, this.bb!);"));
            }
            ty => {
                code.open(format!("{accessor}(): {} {{", value_type(scope, ty)));
                code.line(format!("return {};", read(scalar_of(scope, ty), "this.bb!", &pos)));
            }
        }
        code.close("}");
    }
    code.line("");
    code.doc1("The struct's size in bytes.");
    code.open("static sizeOf(): number {");
    code.line(format!("return {};", s.size));
    code.close("}");

    // createVec3(builder, x, y, z)
    let params: Vec<(String, String)> = s
        .fields
        .iter()
        .map(|f| (super::names::param(&f.name), object_type(scope, &f.ty)))
        .collect();
    code.line("");
    code.doc1("Writes the struct inline (right before adding it to a table or vector).");
    let param_list = params.iter().map(|(p, t)| format!("{p}: {t}"));
    code.open(format!(
        "static {create}(builder: {fb}.Builder, {}): {fb}.Offset {{",
        join(param_list, ", ")
    ));
    code.line(format!("builder.prep({}, {});", s.align, s.size));
    let values: Vec<String> = params.iter().map(|(p, _)| p.clone()).collect();
    write_fields(scope, code, s, &values, 0);
    code.line("return builder.offset();");
    code.close("}");

    // unpack / unpackTo
    let props: Vec<String> =
        s.fields.iter().map(|f| member(&camel(&f.name), OBJECT_MEMBERS)).collect();
    let reads: Vec<String> =
        s.fields.iter().map(|f| unpack_expr(scope, &f.ty, &at_offset(f.offset))).collect();
    code.line("");
    code.doc1("Copies the struct into an owned object.");
    code.open(format!("unpack(): {owned} {{"));
    let inits = props.iter().zip(&reads).map(|(p, r)| format!("{p}: {r}"));
    code.line(format!("return new {owned}({{ {} }});", join(inits, ", ")));
    code.close("}");
    code.line("");
    code.doc1("Copies the struct into an existing owned object.");
    code.open(format!("unpackTo(_o: {owned}): void {{"));
    for (p, r) in props.iter().zip(&reads) {
        code.line(format!("_o.{p} = {r};"));
    }
    code.close("}");
    code.close("}");

    // The owned class.
    code.line("");
    code.doc1(format!("The owned form of a {{@link {}}}: plain data, written with `pack`.", name));
    code.open(format!("export class {owned} {{"));
    for (f, p) in s.fields.iter().zip(&props) {
        scope.claim(&object_space, p, format!("field `{}` of `{dotted}`", f.name), f.loc);
        code.doc(&f.docs);
        code.line(format!("{p}: {};", object_type(scope, &f.ty)));
    }
    code.line("");
    let init_fields =
        s.fields.iter().zip(&props).map(|(f, p)| format!("{p}?: {}", object_type(scope, &f.ty)));
    code.doc1("Every field not given is zero (or the enum value 0, or zeroed structs and arrays).");
    code.open(format!("constructor(init: {{ {} }} = {{}}) {{", join(init_fields, "; ")));
    for (f, p) in s.fields.iter().zip(&props) {
        code.line(format!("this.{p} = init.{p} ?? {};", zero(scope, &f.ty)));
    }
    code.close("}");
    code.line("");
    code.doc1("Writes the struct inline (right before adding it to a table or vector).");
    code.open(format!("pack(builder: {fb}.Builder): {fb}.Offset {{"));
    let args = props.iter().map(|p| format!("this.{p}"));
    code.line(format!("return {name}.{create}(builder, {});", join(args, ", ")));
    code.close("}");
    code.line("");
    code.doc1(
        "What a struct key is ordered by (`compareKeyValues`): the fields in declaration order, nested structs and arrays flattened.",
    );
    code.open("keyValues(): (number | bigint | boolean)[] {");
    let values = s.fields.iter().zip(&props).map(|(f, p)| key_values(&f.ty, &format!("this.{p}")));
    code.line(format!("return [{}];", join(values, ", ")));
    code.close("}");
    code.close("}");
}

/// `value` (of type `ty`) as elements of a `keyValues()` list.
fn key_values(ty: &Type, value: &str) -> String {
    match ty {
        Type::Struct(_) => format!("...{value}.keyValues()"),
        Type::Array(elem, _) if matches!(**elem, Type::Struct(_)) => {
            format!("...{value}.flatMap((e) => e.keyValues())")
        }
        Type::Array(..) => format!("...{value}"),
        _ => value.to_owned(),
    }
}

/// The position of a struct field: `this.bb_pos + 4`, or `this.bb_pos` for the first.
fn at_offset(offset: u32) -> String {
    if offset == 0 { "this.bb_pos".to_owned() } else { format!("this.bb_pos + {offset}") }
}

/// The scalar behind a scalar or enum type.
pub(crate) fn scalar_of(scope: &Scope, ty: &Type) -> Scalar {
    match ty {
        Type::Scalar(s) => *s,
        Type::Enum(id) => scope.model().enum_(*id).underlying,
        other => unreachable!("{other:?} is not a scalar"),
    }
}

/// The TypeScript type of a scalar or enum value.
pub(crate) fn value_type(scope: &Scope, ty: &Type) -> String {
    match ty {
        Type::Scalar(s) => ts_type(*s).to_owned(),
        Type::Enum(id) => scope.name(*id, ""),
        other => unreachable!("{other:?} is not a scalar"),
    }
}

/// The owned type of a struct field: the value, `Vec3T`, or an array of those.
fn object_type(scope: &Scope, ty: &Type) -> String {
    match ty {
        Type::Struct(id) => scope.name(*id, "T"),
        Type::Array(elem, _) => format!("{}[]", object_type(scope, elem)),
        other => value_type(scope, other),
    }
}

/// The size of an array element.
fn elem_size(scope: &Scope, ty: &Type) -> u32 {
    match ty {
        Type::Struct(id) => scope.model().struct_(*id).size,
        other => scalar_of(scope, other).size(),
    }
}

/// The zero value of a struct field's owned type.
fn zero(scope: &Scope, ty: &Type) -> String {
    match ty {
        Type::Struct(id) => format!("new {}()", scope.name(*id, "T")),
        Type::Array(elem, n) => format!("{}.list({n}, () => {})", scope.v(), zero(scope, elem)),
        Type::Enum(id) => value_expr(scope, *id, 0),
        Type::Scalar(s) => types::literal(*s, Value::Int(0)),
        other => unreachable!("{other:?} in a struct"),
    }
}

/// The expression reading a struct field at `pos` into its owned form.
fn unpack_expr(scope: &Scope, ty: &Type, pos: &str) -> String {
    match ty {
        Type::Struct(id) => {
            format!("new {}().__init({pos}, this.bb!).unpack()", scope.name(*id, ""))
        }
        Type::Array(elem, n) => {
            let size = elem_size(scope, elem);
            let at = format!("{pos} + i * {size}");
            format!("{}.list({n}, (i) => {})", scope.v(), unpack_expr(scope, elem, &at))
        }
        other => read(scalar_of(scope, other), "this.bb!", pos),
    }
}

/// Writes the fields of struct `s`, back to front with their padding, taking each field's value
/// from `values` (expressions that may be `undefined` below the top level).
fn write_fields(scope: &Scope, code: &mut Code, s: &Struct, values: &[String], depth: usize) {
    for (f, value) in s.fields.iter().zip(values).rev() {
        if f.padding > 0 {
            code.line(format!("builder.pad({});", f.padding));
        }
        write_value(scope, code, &f.ty, value, depth);
    }
}

fn write_value(scope: &Scope, code: &mut Code, ty: &Type, value: &str, depth: usize) {
    match ty {
        Type::Struct(id) => {
            let inner = scope.model().struct_(*id);
            let values: Vec<String> = inner
                .fields
                .iter()
                .map(|f| format!("{value}?.{}", member(&camel(&f.name), OBJECT_MEMBERS)))
                .collect();
            write_fields(scope, code, inner, &values, depth + 1);
        }
        Type::Array(elem, n) => {
            let i = format!("i{depth}");
            code.open(format!("for (let {i} = {}; {i} >= 0; {i}--) {{", n - 1));
            write_value(scope, code, elem, &format!("{value}?.[{i}]"), depth + 1);
            code.close("}");
        }
        other => {
            let s = scalar_of(scope, other);
            let width = builder_width(s);
            let value = if s == Scalar::Bool {
                format!("{value} ? 1 : 0")
            } else if depth == 0 {
                value.to_owned()
            } else if is_64(s) {
                format!("{value} ?? BigInt(0)")
            } else {
                format!("{value} ?? 0")
            };
            code.line(format!("builder.write{width}({value});"));
        }
    }
}
