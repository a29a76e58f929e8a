//! Tables: the reader class (`Monster`: accessors, `getRootAsMonster`) and its builder statics
//! (`startMonster`, `addMana`, `createInventoryVector`, `endMonster`, `createMonster`), with
//! flatc's names.
//!
//! Unlike flatc: required fields are typed as present (`name(): string`), vector accessors
//! return `null` for an index outside the vector instead of reading past it, `xArray()` copies
//! when the bytes are not aligned for the typed array (so it never throws), unions read by their
//! tag (`equipped()`, `equippedAsWeapon()`) without `any`, and `createMonster` takes an object of
//! fields in which the required ones are required.

use super::code::{Code, join};
use super::names::{camel, member, string_literal, type_ident, upper_camel};
use super::structs::{scalar_of, value_type};
use super::types::{
    always_present, builder_width, is_64, is_required, read, scalar_default, to_builder,
    typed_array,
};
use super::{Scope, enums, unions, verify};
use crate::model::{
    DeclId, Field, FileInfo, NonScalarDefault, Presence, Scalar, Table, Type, Value,
};

/// Members every table reader has.
pub(crate) const READER_MEMBERS: &[&str] = &["bb", "bb_pos", "__init", "unpack", "unpackTo"];

/// Fields that have accessors, in declaration order.
pub(crate) fn live_fields(t: &Table) -> impl Iterator<Item = &Field> {
    t.fields.iter().filter(|f| !f.deprecated)
}

/// The vtable offset of slot `id`.
pub(crate) fn vt(id: u16) -> u32 {
    4 + 2 * u32::from(id)
}

/// The union behind a union field or a vector-of-unions field.
pub(crate) fn union_of(ty: &Type) -> Option<DeclId> {
    match ty {
        Type::Union(id) => Some(*id),
        Type::Vector(e) => match **e {
            Type::Union(id) => Some(id),
            _ => None,
        },
        _ => None,
    }
}

/// One builder slot: a field, or the tag slot of a union field (`<field>_type`).
pub(crate) struct Slot<'f> {
    pub(crate) field: &'f Field,
    /// The schema-side name: the field's, or `<field>_type`.
    pub(crate) name: String,
    pub(crate) is_tag: bool,
}

impl Slot<'_> {
    /// The vtable slot.
    pub(crate) fn id(&self) -> u16 {
        if self.is_tag { self.field.id - 1 } else { self.field.id }
    }

    /// The camelCase name (`equippedType`).
    pub(crate) fn camel(&self) -> String {
        camel(&self.name)
    }

    /// True for a union's scalar tag (not a vector of tags).
    fn is_scalar_tag(&self) -> bool {
        self.is_tag && matches!(self.field.ty, Type::Union(_))
    }

    /// Required slots: the value, and the scalar tag of a required union.
    pub(crate) fn required(&self) -> bool {
        (!self.is_tag || self.is_scalar_tag()) && is_required(self.field)
    }

    /// The size flatc sorts by when ordering `create`'s adds (as the Rust backend does): the
    /// scalar's size (the tag type's for a union tag), 4 (an offset) for everything else,
    /// structs included.
    fn sort_size(&self, scope: &Scope) -> u32 {
        if self.is_scalar_tag() {
            return tag_scalar(scope, &self.field.ty).size();
        }
        if self.is_tag {
            return 4;
        }
        match &self.field.ty {
            Type::Scalar(s) => s.size(),
            Type::Enum(id) => scope.model().enum_(*id).underlying.size(),
            _ => 4,
        }
    }
}

/// The builder slots of a table, in declaration order (a union's tag before its value).
pub(crate) fn slots(t: &Table) -> Vec<Slot<'_>> {
    let mut out = Vec::new();
    for field in live_fields(t) {
        if union_of(&field.ty).is_some() {
            out.push(Slot { field, name: format!("{}_type", field.name), is_tag: true });
        }
        out.push(Slot { field, name: field.name.clone(), is_tag: false });
    }
    out
}

/// The order `createX` adds slots in, flatc's (and the Rust backend's, so that the bytes are the
/// same): largest first (8, 4, 2, 1 bytes), within a size in reverse declaration order; with
/// `(original_order)`, reverse declaration order.
fn create_order<'s, 'f>(scope: &Scope, t: &Table, slots: &'s [Slot<'f>]) -> Vec<&'s Slot<'f>> {
    if t.original_order {
        return slots.iter().rev().collect();
    }
    let mut out = Vec::new();
    for size in [8, 4, 2, 1] {
        out.extend(slots.iter().rev().filter(|s| s.sort_size(scope) == size));
    }
    out
}

/// The reader class of a table, with its builder statics and verifier.
pub(crate) fn emit_table(
    scope: &Scope,
    code: &mut Code,
    id: DeclId,
    t: &Table,
    root: Option<&FileInfo>,
) {
    let model = scope.model();
    let decl = model.decl(id);
    let dotted = decl.name.dotted();
    let raw = &decl.name.name;
    let name = type_ident(raw);
    let fb = scope.fb();
    scope.claim_top(&name, format!("table `{dotted}`"), decl.loc);
    let reader_space = format!("reader {dotted}");
    let static_space = format!("statics {dotted}");
    for m in READER_MEMBERS {
        scope.claim(&reader_space, m, "the reader's own member", decl.loc);
    }
    let own = "the reader's own static member";
    let mut statics = vec![
        format!("getRootAs{raw}"),
        format!("getSizePrefixedRootAs{raw}"),
        format!("start{raw}"),
        format!("end{raw}"),
        format!("create{raw}"),
        "verify".to_owned(),
        "fromBytes".to_owned(),
        "__verify".to_owned(),
    ];
    if root.is_some() {
        statics.push(format!("finish{raw}Buffer"));
        statics.push(format!("finishSizePrefixed{raw}Buffer"));
        if root.is_some_and(|f| f.file_identifier.is_some()) {
            statics.push("bufferHasIdentifier".to_owned());
        }
    }
    for s in &statics {
        scope.claim(&static_space, s, own, decl.loc);
    }

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
    code.line("");
    code.doc1("Reads the root table of a buffer without verifying it: for trusted bytes only (see `fromBytes`).");
    code.open(format!("static getRootAs{raw}(bb: {fb}.ByteBuffer, obj?: {name}): {name} {{"));
    code.line(format!(
        "return (obj ?? new {name}()).__init(bb.readInt32(bb.position()) + bb.position(), bb);"
    ));
    code.close("}");
    code.line("");
    code.doc1("Reads the root table of a size-prefixed buffer without verifying it.");
    code.open(format!(
        "static getSizePrefixedRootAs{raw}(bb: {fb}.ByteBuffer, obj?: {name}): {name} {{"
    ));
    code.line(format!("bb.setPosition(bb.position() + {fb}.SIZE_PREFIX_LENGTH);"));
    code.line(format!(
        "return (obj ?? new {name}()).__init(bb.readInt32(bb.position()) + bb.position(), bb);"
    ));
    code.close("}");
    if let Some(ident_bytes) = root.and_then(|f| f.file_identifier) {
        let text: String = ident_bytes.iter().map(|&b| char::from(b)).collect();
        code.line("");
        code.doc1("True when the buffer carries this root type's file identifier.");
        code.open(format!("static bufferHasIdentifier(bb: {fb}.ByteBuffer): boolean {{"));
        code.line(format!("return bb.__has_identifier({});", string_literal(&text)));
        code.close("}");
    }
    verify::emit_table_verifier(scope, code, id, t);

    for field in live_fields(t) {
        emit_accessors(scope, code, &reader_space, &dotted, field);
    }
    emit_builder(scope, code, id, t, &static_space, root);
    emit_create(scope, code, id, t);
    super::object::emit_unpack(scope, code, id, t);
    code.close("}");
}

/// `const offset = this.bb!.__offset(this.bb_pos, N);`
fn offset_line(code: &mut Code, vt: u32) {
    code.line(format!("const offset = this.bb!.__offset(this.bb_pos, {vt});"));
}

/// The expression for a missing required field: throws (on unverified buffers only).
fn missing(scope: &Scope, field: &Field) -> String {
    format!("{}.missing({})", scope.v(), string_literal(&field.name))
}

fn claim_member(scope: &Scope, space: &str, name: &str, dotted: &str, field: &Field) {
    scope.claim(space, name, format!("field `{}` of `{dotted}`", field.name), field.loc);
}

/// The accessors of one field.
fn emit_accessors(scope: &Scope, code: &mut Code, space: &str, dotted: &str, field: &Field) {
    let fb = scope.fb();
    let v = scope.v();
    let base = camel(&field.name);
    let acc = member(&base, READER_MEMBERS);
    let vt_value = vt(field.id);
    let required = is_required(field);
    claim_member(scope, space, &acc, dotted, field);
    code.line("");
    code.doc(&field.docs);
    match &field.ty {
        Type::Scalar(_) | Type::Enum(_) => {
            let s = scalar_of(scope, &field.ty);
            let ty = value_type(scope, &field.ty);
            let value = read(s, "this.bb!", "this.bb_pos + offset");
            let (ret, absent) = if field.presence == Presence::Default {
                let default = match &field.ty {
                    Type::Enum(id) => enums::value_expr(scope, *id, default_int(field)),
                    _ => scalar_default(s, field),
                };
                (ty, default)
            } else {
                (format!("{ty} | null"), "null".to_owned())
            };
            code.open(format!("{acc}(): {ret} {{"));
            offset_line(code, vt_value);
            code.line(format!("return offset ? {value} : {absent};"));
            code.close("}");
        }
        Type::String => {
            let present = always_present(field);
            let null = if present { "" } else { " | null" };
            let absent = if required {
                missing(scope, field)
            } else if let Some(NonScalarDefault::String(text)) = &field.default_nonscalar {
                format!("{v}.stringDefault({}, optionalEncoding)", string_literal(text))
            } else {
                "null".to_owned()
            };
            code.line(format!("{acc}(): string{null};"));
            code.line(format!(
                "{acc}(optionalEncoding: {fb}.Encoding): string | Uint8Array{null};"
            ));
            code.open(format!(
                "{acc}(optionalEncoding?: {fb}.Encoding): string | Uint8Array{null} {{"
            ));
            offset_line(code, vt_value);
            code.line(format!(
                "return offset ? {v}.string(this.bb!, this.bb_pos + offset, optionalEncoding) : {absent};"
            ));
            code.close("}");
        }
        Type::Struct(id) | Type::Table(id) => {
            let t = scope.name(*id, "");
            let (ret, absent) = if required {
                (t.clone(), missing(scope, field))
            } else {
                (format!("{t} | null"), "null".into())
            };
            let at = if matches!(field.ty, Type::Table(_)) {
                "this.bb!.__indirect(this.bb_pos + offset)"
            } else {
                "this.bb_pos + offset"
            };
            code.open(format!("{acc}(obj?: {t}): {ret} {{"));
            offset_line(code, vt_value);
            code.line(format!(
                "return offset ? (obj ?? new {t}()).__init({at}, this.bb!) : {absent};"
            ));
            code.close("}");
        }
        Type::Union(id) => {
            let tag = scope.name(*id, "");
            let owned = scope.name(*id, "T");
            let readers = unions::reader_types(scope, *id);
            let tag_acc = member(&format!("{base}Type"), READER_MEMBERS);
            claim_member(scope, space, &tag_acc, dotted, field);
            code.doc1(format!("The tag of `{}`: which variant it holds.", field.name));
            code.open(format!("{tag_acc}(): {tag} {{"));
            offset_line(code, vt(field.id - 1));
            let read = read_tag(scope, *id, "this.bb!", "this.bb_pos + offset");
            code.line(format!("return offset ? {read} : {tag}.NONE;"));
            code.close("}");
            code.line("");
            code.doc(&field.docs);
            let (ret, tail) = if required {
                (readers.clone(), format!(" ?? {}", missing(scope, field)))
            } else {
                (format!("{readers} | null"), String::new())
            };
            code.open(format!("{acc}(): {ret} {{"));
            offset_line(code, vt_value);
            code.line(format!(
                "return {owned}.read(this.bb!, this.{tag_acc}(), offset ? this.bb_pos + offset : 0){tail};"
            ));
            code.close("}");
            let site = VariantSite {
                index: false,
                present: "offset",
                at: "this.bb_pos + offset",
                what: "The value",
            };
            emit_variant_accessors(scope, code, space, dotted, field, *id, &tag_acc, &site);
        }
        Type::Vector(elem) => emit_vector_accessors(scope, code, space, dotted, field, elem),
        Type::Array(..) => unreachable!("arrays only occur in structs"),
    }
}

fn default_int(field: &Field) -> i128 {
    match field.default {
        Some(Value::Int(i)) => i,
        Some(Value::Float(f)) => f as i128,
        None => 0,
    }
}

/// Where the value of a union sits, for its typed accessors: a union field, or element `index`
/// of a vector of unions.
struct VariantSite<'a> {
    /// Whether the accessors take the element's `index` (and the tag accessor too).
    index: bool,
    /// The condition under which the value is there.
    present: &'a str,
    /// The position of the value's offset in the buffer.
    at: &'a str,
    /// How the doc comments name the value.
    what: &'a str,
}

/// One accessor per variant of union `id` (`equippedAsWeapon()`, `lootAsWeapon(index)`): the
/// value if the tag names that variant, else `null`.
#[allow(clippy::too_many_arguments)]
fn emit_variant_accessors(
    scope: &Scope,
    code: &mut Code,
    space: &str,
    dotted: &str,
    field: &Field,
    id: DeclId,
    tag_acc: &str,
    site: &VariantSite,
) {
    let v = scope.v();
    let tag = scope.name(id, "");
    let base = camel(&field.name);
    let at = site.at;
    for var in &scope.model().union(id).variants {
        let (rt, read) = match var.ty {
            crate::model::UnionVariantType::Table(t)
            | crate::model::UnionVariantType::Struct(t) => {
                let t = scope.name(t, "");
                let read =
                    format!("(obj ?? new {t}()).__init(this.bb!.__indirect({at}), this.bb!)");
                (t, read)
            }
            crate::model::UnionVariantType::String => {
                ("string".to_owned(), format!("{v}.string(this.bb!, {at})"))
            }
        };
        let name = format!("{base}As{}", upper_camel(&var.name));
        claim_member(scope, space, &name, dotted, field);
        let mut params = Vec::new();
        if site.index {
            params.push("index: number".to_owned());
        }
        if rt != "string" {
            params.push(format!("obj?: {rt}"));
        }
        code.line("");
        code.doc1(format!("{} if it is a `{}`.", site.what, var.name));
        code.open(format!("{name}({}): {rt} | null {{", params.join(", ")));
        offset_line(code, vt(field.id));
        code.line(format!(
            "return {} && this.{tag_acc}({}) === {tag}.{} ? {read} : null;",
            site.present,
            if site.index { "index" } else { "" },
            super::enums::enum_member(&var.name)
        ));
        code.close("}");
    }
}

/// The accessors of a vector field: the element, the length, typed arrays, union and keyed
/// extras, and the nested flatbuffer's root.
fn emit_vector_accessors(
    scope: &Scope,
    code: &mut Code,
    space: &str,
    dotted: &str,
    field: &Field,
    elem: &Type,
) {
    let fb = scope.fb();
    let v = scope.v();
    let base = camel(&field.name);
    let acc = member(&base, READER_MEMBERS);
    let vt_value = vt(field.id);
    let in_range = format!("offset && {v}.inVector(this.bb!, this.bb_pos + offset, index)");
    let vector = "this.bb!.__vector(this.bb_pos + offset)";
    match elem {
        Type::Scalar(_) | Type::Enum(_) => {
            let s = scalar_of(scope, elem);
            let ty = value_type(scope, elem);
            let at = format!("{vector} + index * {}", s.size());
            code.open(format!("{acc}(index: number): {ty} | null {{"));
            offset_line(code, vt_value);
            code.line(format!("return {in_range} ? {} : null;", read(s, "this.bb!", &at)));
            code.close("}");
        }
        Type::String => {
            let at = format!("{vector} + index * 4");
            code.line(format!("{acc}(index: number): string | null;"));
            code.line(format!(
                "{acc}(index: number, optionalEncoding: {fb}.Encoding): string | Uint8Array | null;"
            ));
            code.open(format!(
                "{acc}(index: number, optionalEncoding?: {fb}.Encoding): string | Uint8Array | null {{"
            ));
            offset_line(code, vt_value);
            code.line(format!(
                "return {in_range} ? {v}.string(this.bb!, {at}, optionalEncoding) : null;"
            ));
            code.close("}");
        }
        Type::Struct(id) | Type::Table(id) => {
            let t = scope.name(*id, "");
            let at = match elem {
                Type::Struct(_) => {
                    let size = scope.model().struct_(*id).size;
                    format!("{vector} + index * {size}")
                }
                _ => format!("this.bb!.__indirect({vector} + index * 4)"),
            };
            code.open(format!("{acc}(index: number, obj?: {t}): {t} | null {{"));
            offset_line(code, vt_value);
            code.line(format!(
                "return {in_range} ? (obj ?? new {t}()).__init({at}, this.bb!) : null;"
            ));
            code.close("}");
        }
        Type::Union(id) => {
            let tag = scope.name(*id, "");
            let owned = scope.name(*id, "T");
            let readers = unions::reader_types(scope, *id);
            // The tag vector: `lootType(i)`, `lootTypeLength()`, `lootTypeArray()`.
            let tag_base = format!("{base}Type");
            let tag_acc = member(&tag_base, READER_MEMBERS);
            claim_member(scope, space, &tag_acc, dotted, field);
            code.doc1(format!("The tag of element `index` of `{}`.", field.name));
            code.open(format!("{tag_acc}(index: number): {tag} | null {{"));
            offset_line(code, vt(field.id - 1));
            let tag_type = scope.model().union(*id).tag;
            let at = match tag_type.size() {
                1 => format!("{vector} + index"),
                size => format!("{vector} + index * {size}"),
            };
            let read = read_tag(scope, *id, "this.bb!", &at);
            code.line(format!("return {in_range} ? {read} : null;"));
            code.close("}");
            emit_length(scope, code, space, dotted, field, &tag_base, field.id - 1);
            let array = typed_array(tag_type).expect("union tags are integers");
            emit_array(scope, code, space, dotted, field, &tag_base, field.id - 1, array);
            code.line("");
            code.doc(&field.docs);
            code.open(format!("{acc}(index: number): {readers} | null {{"));
            offset_line(code, vt_value);
            code.line(format!(
                "return {in_range} ? {owned}.read(this.bb!, this.{tag_acc}(index) ?? 0, {vector} + index * 4) : null;"
            ));
            code.close("}");
            let at = format!("{vector} + index * 4");
            let site =
                VariantSite { index: true, present: &in_range, at: &at, what: "Element `index`" };
            emit_variant_accessors(scope, code, space, dotted, field, *id, &tag_acc, &site);
        }
        other => unreachable!("vector of {other:?}"),
    }
    emit_length(scope, code, space, dotted, field, &base, field.id);
    if let Type::Scalar(_) | Type::Enum(_) = elem
        && let Some(array) = typed_array(scalar_of(scope, elem))
    {
        emit_array(scope, code, space, dotted, field, &base, field.id, array);
    }
    if let Some(root) = field.nested_flatbuffer {
        let t = scope.name(root, "");
        let root_name = &scope.model().decl(root).name.name;
        let name = format!("{base}NestedFlatbuffer");
        claim_member(scope, space, &name, dotted, field);
        code.line("");
        code.doc1(format!(
            "The buffer nested in `{}`, read as its root `{root_name}` (verified with the outer buffer).",
            field.name
        ));
        code.open(format!("{name}(obj?: {t}): {t} | null {{"));
        code.line(format!("const bytes = this.{base}Array();"));
        code.line(format!(
            "return bytes ? {t}.getRootAs{root_name}(new {fb}.ByteBuffer(bytes), obj) : null;"
        ));
        code.close("}");
    }
    if let Type::Table(elem_id) = elem {
        emit_lookup(scope, code, space, dotted, field, *elem_id);
    }
}

/// `xLength()`: the number of elements, 0 when the vector is absent.
fn emit_length(
    scope: &Scope,
    code: &mut Code,
    space: &str,
    dotted: &str,
    field: &Field,
    base: &str,
    slot: u16,
) {
    let name = format!("{base}Length");
    claim_member(scope, space, &name, dotted, field);
    code.line("");
    code.open(format!("{name}(): number {{"));
    offset_line(code, vt(slot));
    code.line("return offset ? this.bb!.__vector_len(this.bb_pos + offset) : 0;");
    code.close("}");
}

/// `xArray()`: a typed array of the elements, a view of the buffer when the bytes are aligned
/// for it, else a copy; `null` when the vector is absent (an empty array for a required vector
/// or one with a `[]` default).
#[allow(clippy::too_many_arguments)]
fn emit_array(
    scope: &Scope,
    code: &mut Code,
    space: &str,
    dotted: &str,
    field: &Field,
    base: &str,
    slot: u16,
    array: &str,
) {
    let v = scope.v();
    let name = format!("{base}Array");
    claim_member(scope, space, &name, dotted, field);
    let tag_slot = slot != field.id;
    let (null, absent) = if tag_slot || !always_present(field) {
        (" | null", "null".to_owned())
    } else if is_required(field) {
        ("", missing(scope, field))
    } else {
        ("", format!("new {array}(0)"))
    };
    code.line("");
    code.doc1(
        "The elements as a typed array: a view of the buffer when aligned for it, else a copy.",
    );
    code.open(format!("{name}(): {array}{null} {{"));
    offset_line(code, vt(slot));
    code.line(format!(
        "return offset ? {v}.array(this.bb!, this.bb_pos + offset, {array}) : {absent};"
    ));
    code.close("}");
}

/// `statsByKey(key)` for a vector `stats` of a table with a `(key)` field: binary search.
fn emit_lookup(
    scope: &Scope,
    code: &mut Code,
    space: &str,
    dotted: &str,
    field: &Field,
    elem: DeclId,
) {
    let et = scope.model().table(elem);
    let Some(k) = et.key else { return };
    let key = &et.fields[k];
    let fb = scope.fb();
    let v = scope.v();
    let t = scope.name(elem, "");
    let base = camel(&field.name);
    let name = format!("{base}ByKey");
    claim_member(scope, space, &name, dotted, field);
    let key_acc = member(&camel(&key.name), READER_MEMBERS);
    let key_ty = match &key.ty {
        Type::String => "string".to_owned(),
        Type::Struct(id) => scope.name(*id, "T"),
        other => value_type(scope, other),
    };
    code.line("");
    code.doc1(format!(
        "Finds the element whose `{}` is `key`, by binary search (`pack` writes the vector sorted by key).",
        key.name
    ));
    code.open(format!("{name}(key: {key_ty}, obj?: {t}): {t} | null {{"));
    offset_line(code, vt(field.id));
    code.line("if (!offset) return null;");
    code.line("const $vector = this.bb!.__vector(this.bb_pos + offset);");
    code.line("let $low = 0;");
    code.line("let $high = this.bb!.__vector_len(this.bb_pos + offset);");
    code.line(format!("const $item = obj ?? new {t}();"));
    match key.ty {
        Type::String => code.line(format!("const $wanted = {v}.utf8(key);")),
        Type::Struct(_) => code.line("const $wanted = key.keyValues();"),
        _ => {}
    }
    code.open("while ($low < $high) {");
    code.line("const $mid = ($low + $high) >>> 1;");
    code.line("$item.__init(this.bb!.__indirect($vector + $mid * 4), this.bb!);");
    if key.ty == Type::String {
        code.line(format!(
            "const $order = {v}.compareBytes({v}.bytes($item.{key_acc}({fb}.Encoding.UTF8_BYTES)), $wanted);"
        ));
    } else if let Type::Struct(_) = key.ty {
        code.line(format!(
            "const $order = {v}.compareKeyValues($item.{key_acc}().unpack().keyValues(), $wanted);"
        ));
    } else {
        code.line(format!("const $found = $item.{key_acc}();"));
        code.line("const $order = $found < key ? -1 : $found > key ? 1 : 0;");
    }
    code.line("if ($order < 0) $low = $mid + 1;");
    code.line("else if ($order > 0) $high = $mid;");
    code.line("else return $item;");
    code.close("}");
    code.line("return null;");
    code.close("}");
}

/// flatc's builder statics: `startX`, `addY`, `createYVector`, `startYVector`, `endX` and, for a
/// root type, `finishXBuffer`.
fn emit_builder(
    scope: &Scope,
    code: &mut Code,
    id: DeclId,
    t: &Table,
    space: &str,
    root: Option<&FileInfo>,
) {
    let model = scope.model();
    let decl = model.decl(id);
    let dotted = decl.name.dotted();
    let raw = &decl.name.name;
    let name = type_ident(raw);
    let fb = scope.fb();
    let slot_count = t.fields.iter().map(|f| f.id + 1).max().unwrap_or(0);
    code.line("");
    code.open(format!("static start{raw}(builder: {fb}.Builder): void {{"));
    code.line(format!("builder.startObject({slot_count});"));
    code.close("}");
    for slot in slots(t) {
        let upper = upper_camel(&slot.name);
        let param = super::names::param(&slot.name);
        let add = format!("add{upper}");
        claim_member(scope, space, &add, &dotted, slot.field);
        let id = slot.id();
        let elem_ty: Option<&Type> = match &slot.field.ty {
            Type::Vector(e) => Some(e),
            _ => None,
        };
        code.line("");
        if slot.is_tag && elem_ty.is_none() {
            let union_id = union_of(&slot.field.ty).expect("a union");
            let tag = scope.name(union_id, "");
            let s = scope.model().union(union_id).tag;
            code.open(format!("static {add}(builder: {fb}.Builder, {param}: {tag}): void {{"));
            let (value, zero) =
                if is_64(s) { (format!("BigInt({param})"), "0n") } else { (param.clone(), "0") };
            code.line(format!("builder.addField{}({id}, {value}, {zero});", builder_width(s)));
            code.close("}");
            continue;
        }
        match &slot.field.ty {
            Type::Scalar(_) | Type::Enum(_) => {
                let s = scalar_of(scope, &slot.field.ty);
                let ty = value_type(scope, &slot.field.ty);
                let default = if slot.field.presence == Presence::Default {
                    let value = match &slot.field.ty {
                        Type::Enum(_) => super::types::int(s, default_int(slot.field)),
                        _ => scalar_default(s, slot.field),
                    };
                    to_builder(s, &value)
                } else {
                    "null".to_owned()
                };
                code.open(format!("static {add}(builder: {fb}.Builder, {param}: {ty}): void {{"));
                let add_field = format!(
                    "builder.addField{}({id}, {}, {default});",
                    builder_width(s),
                    to_builder(s, &param)
                );
                let nan_default = slot.field.presence == Presence::Default
                    && matches!(slot.field.default, Some(Value::Float(f)) if f.is_nan());
                if nan_default {
                    // NaN equals nothing, itself included: a NaN default is left out for any
                    // NaN, as our Rust does (`addField*` compares with `!=`).
                    code.line(format!("if (!Number.isNaN({param})) {add_field}"));
                } else {
                    code.line(add_field);
                }
                code.close("}");
            }
            Type::Struct(_) => {
                code.doc1(
                    "The struct must have been written just before (`createX`), as flatc requires.",
                );
                code.open(format!(
                    "static {add}(builder: {fb}.Builder, {param}Offset: {fb}.Offset): void {{"
                ));
                code.line(format!("builder.addFieldStruct({id}, {param}Offset, 0);"));
                code.close("}");
            }
            _ => {
                code.open(format!(
                    "static {add}(builder: {fb}.Builder, {param}Offset: {fb}.Offset): void {{"
                ));
                code.line(format!("builder.addFieldOffset({id}, {param}Offset, 0);"));
                code.close("}");
            }
        }
        if let Some(elem) = elem_ty {
            let elem: Type = if slot.is_tag {
                Type::Scalar(tag_scalar(scope, &slot.field.ty))
            } else {
                elem.clone()
            };
            emit_vector_builders(
                scope,
                code,
                space,
                &dotted,
                slot.field,
                &upper,
                &elem,
                slot.is_tag,
            );
        }
    }
    code.line("");
    let required: Vec<&Field> = live_fields(t).filter(|f| is_required(f)).collect();
    code.doc1(if required.is_empty() {
        "Ends the table.".to_owned()
    } else {
        "Ends the table; throws if a required field was not added.".to_owned()
    });
    code.open(format!("static end{raw}(builder: {fb}.Builder): {fb}.Offset {{"));
    code.line("const offset = builder.endObject();");
    for f in required {
        code.line(format!("builder.requiredField(offset, {}); // {}", vt(f.id), f.name));
    }
    code.line("return offset;");
    code.close("}");
    if let Some(file) = root {
        let ident_arg = match file.file_identifier {
            Some(bytes) => {
                let text: String = bytes.iter().map(|&b| char::from(b)).collect();
                format!(", {}", string_literal(&text))
            }
            None => ", undefined".to_owned(),
        };
        let ident_arg_plain =
            if file.file_identifier.is_some() { ident_arg.clone() } else { String::new() };
        code.line("");
        code.open(format!(
            "static finish{raw}Buffer(builder: {fb}.Builder, offset: {fb}.Offset): void {{"
        ));
        code.line(format!("builder.finish(offset{ident_arg_plain});"));
        code.close("}");
        code.line("");
        code.open(format!(
            "static finishSizePrefixed{raw}Buffer(builder: {fb}.Builder, offset: {fb}.Offset): void {{"
        ));
        let ident_arg =
            if file.file_identifier.is_some() { ident_arg } else { ", undefined".to_owned() };
        code.line(format!("builder.finish(offset{ident_arg}, true);"));
        code.close("}");
    }
    let _ = name;
}

/// `createXVector(builder, data)` and `startXVector(builder, n)` for a vector slot.
#[allow(clippy::too_many_arguments)]
fn emit_vector_builders(
    scope: &Scope,
    code: &mut Code,
    space: &str,
    dotted: &str,
    field: &Field,
    upper: &str,
    elem: &Type,
    is_tag: bool,
) {
    let fb = scope.fb();
    let create = format!("create{upper}Vector");
    let start = format!("start{upper}Vector");
    claim_member(scope, space, &create, dotted, field);
    claim_member(scope, space, &start, dotted, field);
    let (size, align) = match elem {
        Type::Struct(id) => {
            let s = scope.model().struct_(*id);
            (s.size, s.align)
        }
        Type::Scalar(_) | Type::Enum(_) => {
            let s = scalar_of(scope, elem).size();
            (s, s)
        }
        _ => (4, 4),
    };
    code.line("");
    match elem {
        Type::Scalar(_) | Type::Enum(_) => {
            let s = scalar_of(scope, elem);
            let ty = if is_tag {
                scope.name(union_of(&field.ty).expect("a union"), "")
            } else {
                value_type(scope, elem)
            };
            let data = match typed_array(s) {
                Some(array) if !matches!(elem, Type::Enum(_)) && !is_tag => {
                    format!("readonly {ty}[] | {array}")
                }
                _ => format!("readonly {ty}[]"),
            };
            code.open(format!(
                "static {create}(builder: {fb}.Builder, data: {data}): {fb}.Offset {{"
            ));
            if s == crate::model::Scalar::U8 && !is_tag && !matches!(elem, Type::Enum(_)) {
                code.line("if (data instanceof Uint8Array) return builder.createByteVector(data);");
            }
            code.line(format!("builder.startVector({size}, data.length, {align});"));
            code.open("for (let i = data.length - 1; i >= 0; i--) {");
            let value = if is_tag && is_64(s) {
                // Tags are numbers, 64-bit ones included (`tag_numbers_fit` keeps them exact).
                "BigInt(data[i]!)".to_owned()
            } else {
                to_builder(s, "data[i]!")
            };
            code.line(format!("builder.add{}({value});", builder_width(s)));
            code.close("}");
            code.line("return builder.endVector();");
            code.close("}");
        }
        Type::Struct(id) => {
            let t = scope.name(*id, "T");
            code.open(format!(
                "static {create}(builder: {fb}.Builder, data: readonly {t}[]): {fb}.Offset {{"
            ));
            code.line(format!("builder.startVector({size}, data.length, {align});"));
            code.open("for (let i = data.length - 1; i >= 0; i--) {");
            code.line("data[i]!.pack(builder);");
            code.close("}");
            code.line("return builder.endVector();");
            code.close("}");
        }
        Type::Union(_) => {
            code.doc1("Offsets of the values, 0 for a `NONE` element.");
            code.open(format!(
                "static {create}(builder: {fb}.Builder, data: readonly {fb}.Offset[]): {fb}.Offset {{"
            ));
            code.line("builder.startVector(4, data.length, 4);");
            code.open("for (let i = data.length - 1; i >= 0; i--) {");
            code.line("const offset = data[i]!;");
            code.line("if (offset === 0) builder.addInt32(0);");
            code.line("else builder.addOffset(offset);");
            code.close("}");
            code.line("return builder.endVector();");
            code.close("}");
        }
        _ => {
            code.open(format!(
                "static {create}(builder: {fb}.Builder, data: readonly {fb}.Offset[]): {fb}.Offset {{"
            ));
            code.line("builder.startVector(4, data.length, 4);");
            code.open("for (let i = data.length - 1; i >= 0; i--) {");
            code.line("builder.addOffset(data[i]!);");
            code.close("}");
            code.line("return builder.endVector();");
            code.close("}");
        }
    }
    code.line("");
    code.open(format!("static {start}(builder: {fb}.Builder, numElems: number): void {{"));
    code.line(format!("builder.startVector({size}, numElems, {align});"));
    code.close("}");
}

/// The type a slot takes in `createX`'s argument object.
fn arg_type(scope: &Scope, slot: &Slot) -> String {
    let fb = scope.fb();
    if slot.is_scalar_tag() {
        return scope.name(union_of(&slot.field.ty).expect("a union"), "");
    }
    if slot.is_tag {
        return format!("{fb}.Offset");
    }
    match &slot.field.ty {
        Type::Scalar(_) | Type::Enum(_) => value_type(scope, &slot.field.ty),
        Type::Struct(id) => scope.name(*id, "T"),
        _ => format!("{fb}.Offset"),
    }
}

/// `createMonster(builder, { name, mana, ... })`: writes a whole table in flatc's order.
fn emit_create(scope: &Scope, code: &mut Code, id: DeclId, t: &Table) {
    let model = scope.model();
    let decl = model.decl(id);
    let dotted = decl.name.dotted();
    let raw = &decl.name.name;
    let name = type_ident(raw);
    let fb = scope.fb();
    let slots = slots(t);
    let args_space = format!("create args {dotted}");
    let mut fields = Vec::new();
    for slot in &slots {
        let key = member(&slot.camel(), &[]);
        scope.claim(
            &args_space,
            &key,
            format!("field `{}` of `{dotted}`", slot.field.name),
            slot.field.loc,
        );
        let ty = arg_type(scope, slot);
        let optional_scalar =
            slot.field.ty.is_scalar_like() && slot.field.presence == Presence::Optional;
        if slot.required() {
            fields.push(format!("{key}: {ty}"));
        } else if optional_scalar || matches!(slot.field.ty, Type::Struct(_)) {
            fields.push(format!("{key}?: {ty} | null"));
        } else {
            fields.push(format!("{key}?: {ty}"));
        }
    }
    let all_optional = slots.iter().all(|s| !s.required());
    let default = if all_optional { " = {}" } else { "" };
    code.line("");
    code.doc1(
        "Writes a whole table: scalars left out take their default, offsets left out (or 0) are absent. \
         Strings, vectors and tables must be written first.",
    );
    if fields.is_empty() {
        code.open(format!("static create{raw}(builder: {fb}.Builder): {fb}.Offset {{"));
    } else {
        let args_ty = format!("{{ {} }}", join(&fields, "; "));
        code.open(format!(
            "static create{raw}(builder: {fb}.Builder, args: {args_ty}{default}): {fb}.Offset {{"
        ));
    }
    code.line(format!("{name}.start{raw}(builder);"));
    for slot in create_order(scope, t, &slots) {
        let key = member(&slot.camel(), &[]);
        let add = format!("{name}.add{}", upper_camel(&slot.name));
        let optional_scalar =
            slot.field.ty.is_scalar_like() && slot.field.presence == Presence::Optional;
        if slot.required() {
            match &slot.field.ty {
                Type::Struct(_) if !slot.is_tag => {
                    code.line(format!("{add}(builder, args.{key}.pack(builder));"))
                }
                // `?? 0`: an offset left out by untyped code must not be written as garbage, so
                // that `endX` reports the missing field.
                _ if !slot.is_scalar_tag() => {
                    code.line(format!("{add}(builder, args.{key} ?? 0);"))
                }
                _ => code.line(format!("{add}(builder, args.{key});")),
            }
        } else if matches!(slot.field.ty, Type::Struct(_)) && !slot.is_tag {
            code.line(format!("if (args.{key} != null) {add}(builder, args.{key}.pack(builder));"));
        } else if optional_scalar && !slot.is_tag {
            code.line(format!("if (args.{key} != null) {add}(builder, args.{key});"));
        } else {
            code.line(format!("if (args.{key} !== undefined) {add}(builder, args.{key});"));
        }
    }
    code.line(format!("return {name}.end{raw}(builder);"));
    code.close("}");
}

/// The tag type of the union a field (or vector) holds.
fn tag_scalar(scope: &Scope, ty: &Type) -> Scalar {
    scope.model().union(union_of(ty).expect("a union field")).tag
}

/// Reads the tag of union `id` at `pos`: a number, 64-bit tags included.
fn read_tag(scope: &Scope, id: DeclId, bb: &str, pos: &str) -> String {
    let s = scope.model().union(id).tag;
    let read = read(s, bb, pos);
    if is_64(s) { format!("Number({read})") } else { read }
}
