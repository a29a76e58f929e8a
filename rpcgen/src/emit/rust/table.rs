//! Tables: the zero-copy reader `Monster<'a>`, `MonsterArgs` and `MonsterBuilder`.
//!
//! Unlike flatc, required fields cannot be left out: `MonsterArgs` holds them unwrapped (and has
//! `MonsterArgs::new(required...)` instead of `Default`), and `MonsterBuilder::new` takes them.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::literal::{int, scalar};
use super::names::ident;
use super::types::{always_present, is_required};
use super::{Ctx, docs, unions};
use crate::model::{DeclId, Field, NonScalarDefault, Presence, Table, Type, Value};

/// The vtable offset constant of a field (`VT_NAME`), or of its union tag (`VT_NAME_TYPE`).
pub(crate) fn vt(name: &str) -> Ident {
    format_ident!("VT_{}", name.to_uppercase())
}

/// The vtable offset of slot `id`.
fn vt_value(id: u16) -> TokenStream {
    int(4 + 2 * i128::from(id))
}

/// Fields that have accessors, in declaration order.
pub(crate) fn live_fields(t: &Table) -> impl Iterator<Item = &Field> {
    t.fields.iter().filter(|f| !f.deprecated)
}

/// True for a vector of unions.
pub(crate) fn is_union_vector(ty: &Type) -> bool {
    matches!(ty, Type::Vector(e) if matches!(**e, Type::Union(_)))
}

/// The type of a union field's tag slot: the tag type, or a vector of it.
fn tag_type(ty: &Type) -> Option<Type> {
    match ty {
        Type::Union(id) => Some(Type::Enum(*id)),
        Type::Vector(e) => match **e {
            Type::Union(id) => Some(Type::Vector(Box::new(Type::Enum(id)))),
            _ => None,
        },
        _ => None,
    }
}

/// One builder slot: a field, or the tag slot of a union field.
pub(crate) struct Slot<'f> {
    pub field: &'f Field,
    /// The Rust name: the field's, or `<field>_type`.
    pub name: String,
    pub ty: Type,
    /// True for the tag of a union (or vector of unions).
    pub is_tag: bool,
}

/// The builder slots of a table, in declaration order (a union's tag before its value).
pub(crate) fn slots(t: &Table) -> Vec<Slot<'_>> {
    let mut out = Vec::new();
    for field in live_fields(t) {
        if let Some(ty) = tag_type(&field.ty) {
            out.push(Slot { field, name: format!("{}_type", field.name), ty, is_tag: true });
        }
        out.push(Slot { field, name: field.name.clone(), ty: field.ty.clone(), is_tag: false });
    }
    out
}

impl Slot<'_> {
    /// Scalar tags and scalars with a default: always passed by value, never optional.
    fn by_value_with_default(&self) -> bool {
        (self.is_tag && !matches!(self.ty, Type::Vector(_)))
            || (self.ty.is_scalar_like() && self.field.presence == Presence::Default)
    }

    /// Required slots: the value, and a scalar union tag whose value is required.
    fn required(&self) -> bool {
        is_required(self.field) && !(self.is_tag && matches!(self.ty, Type::Vector(_)))
    }

    /// A float whose default is NaN.
    fn nan_default(&self) -> bool {
        matches!(self.field.default, Some(Value::Float(f)) if f.is_nan())
    }

    fn vt(&self) -> Ident {
        vt(&self.name)
    }

    /// The size flatc sorts by when it orders `create`'s pushes: the scalar's size (the tag
    /// type's for a union tag), 4 (an offset) for everything else, structs included.
    fn sort_size(&self, ctx: &Ctx) -> u32 {
        match &self.ty {
            Type::Scalar(s) => s.size(),
            Type::Enum(id) if self.is_tag => ctx.model.union(*id).tag.size(),
            Type::Enum(id) => ctx.model.enum_(*id).underlying.size(),
            _ => 4,
        }
    }

    /// The default value of a scalar slot, as an expression.
    fn default_expr(&self, ctx: &Ctx, ns: &[String]) -> TokenStream {
        match &self.ty {
            Type::Scalar(s) => scalar(*s, self.field.default.unwrap_or(Value::Int(0))),
            Type::Enum(id) if self.is_tag => {
                let t = ctx.path(ns, *id, "");
                quote!(#t::NONE)
            }
            Type::Enum(id) => {
                let t = ctx.path(ns, *id, "");
                let e = ctx.model.enum_(*id);
                let value = match self.field.default {
                    Some(Value::Int(i)) => i,
                    _ => 0,
                };
                match e.values.iter().find(|v| v.value == value) {
                    Some(v) => {
                        let name = ident(&v.name);
                        quote!(#t::#name)
                    }
                    None => {
                        let lit = int(value);
                        quote!(#t(#lit))
                    }
                }
            }
            _ => unreachable!("only scalar slots have defaults"),
        }
    }
}

/// The order flatc's `create` adds slots in: largest first (8, 4, 2, 1 bytes), within a size
/// in reverse declaration order; with `(original_order)`, simply reverse declaration order.
pub(crate) fn create_order<'s, 'f>(
    ctx: &Ctx,
    t: &Table,
    slots: &'s [Slot<'f>],
) -> Vec<&'s Slot<'f>> {
    if t.original_order {
        return slots.iter().rev().collect();
    }
    let mut out = Vec::new();
    for size in [8, 4, 2, 1] {
        out.extend(slots.iter().rev().filter(|s| s.sort_size(ctx) == size));
    }
    out
}

/// The reader, `Args` and builder of a table.
pub(crate) fn emit_table(ctx: &Ctx, id: DeclId, t: &Table) -> TokenStream {
    let fb = &ctx.fb;
    let decl = ctx.model.decl(id);
    let ns = &decl.name.namespace;
    let name = ident(&decl.name.name);
    let offset_name = format_ident!("{}Offset", decl.name.name);
    let args = ident(&format!("{}Args", decl.name.name));
    let builder = ident(&format!("{}Builder", decl.name.name));
    let doc = docs(&decl.docs);
    let slots = slots(t);

    let vts = slots.iter().map(|s| {
        let c = s.vt();
        let slot = if s.is_tag { s.field.id - 1 } else { s.field.id };
        let v = vt_value(slot);
        quote!(pub const #c: #fb::VOffsetT = #v;)
    });
    let accessors = slots.iter().map(|s| accessor(ctx, ns, s));
    let extras = live_fields(t).map(|f| field_extras(ctx, ns, f));
    let key = t.key.map(|k| key_methods(ctx, ns, &name, &t.fields[k]));
    let debug_fields = slots.iter().map(|s| {
        let f = ident(&s.name);
        let n = &s.name;
        quote!(ds.field(#n, &self.#f());)
    });
    let name_str = &decl.name.name;

    let args_tokens = emit_args(ctx, ns, &name, &args, &slots);
    let builder_tokens = emit_builder(ctx, ns, &name, &builder, &slots);
    let needs_lt = args_lifetime(&slots);
    let args_ty = if needs_lt { quote!(self::#args<'args>) } else { quote!(self::#args) };
    let adds = create_order(ctx, t, &slots).into_iter().map(|s| {
        let f = ident(&s.name);
        let add = format_ident!("add_{}", s.name);
        if s.by_value_with_default() || s.required() {
            quote!(builder.#add(args.#f);)
        } else {
            quote!(if let ::core::option::Option::Some(x) = args.#f { builder.#add(x); })
        }
    });

    quote! {
        #[doc = concat!("Marks offsets to a [`", #name_str, "`] (flatc's name).")]
        pub enum #offset_name {}

        #doc
        #[derive(::core::marker::Copy, ::core::clone::Clone, ::core::cmp::PartialEq)]
        pub struct #name<'a> {
            pub _tab: #fb::Table<'a>,
        }

        impl<'a> #fb::Follow<'a> for self::#name<'a> {
            type Inner = self::#name<'a>;
            #[inline]
            unsafe fn follow(buf: &'a [::core::primitive::u8], loc: ::core::primitive::usize) -> Self::Inner {
                // Safety: the caller guarantees `loc` holds this table.
                Self { _tab: unsafe { #fb::Table::new(buf, loc) } }
            }
        }

        impl<'a> self::#name<'a> {
            #(#vts)*

            /// Wraps a table known to be of this type.
            ///
            /// # Safety
            ///
            /// `table` must be a valid table of this type.
            #[inline]
            pub unsafe fn init_from_table(table: #fb::Table<'a>) -> Self {
                Self { _tab: table }
            }

            /// Writes a table with the fields of `args`, in flatc's order.
            pub fn create<'bldr: 'args, 'args: 'mut_bldr, 'mut_bldr, A: #fb::Allocator + 'bldr>(
                _fbb: &'mut_bldr mut #fb::FlatBufferBuilder<'bldr, A>,
                args: &'args #args_ty,
            ) -> #fb::WIPOffset<self::#name<'bldr>> {
                let start = _fbb.start_table();
                let mut builder = self::#builder { fbb_: _fbb, start_: start };
                #(#adds)*
                builder.finish()
            }

            #(#accessors)*
            #(#extras)*
            #key
        }

        impl ::core::fmt::Debug for self::#name<'_> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut ds = f.debug_struct(#name_str);
                #(#debug_fields)*
                ds.finish()
            }
        }

        #args_tokens
        #builder_tokens
    }
}

/// The accessor of one slot.
fn accessor(ctx: &Ctx, ns: &[String], s: &Slot) -> TokenStream {
    let a = quote!('a);
    let f = ident(&s.name);
    let c = s.vt();
    let doc = if s.is_tag { TokenStream::new() } else { docs(&s.field.docs) };
    let follow = ctx.follow_type(ns, &s.ty, &a);
    let read = ctx.reader_type(ns, &s.ty, &a);
    let get = quote!(unsafe { self._tab.get::<#follow>(Self::#c, ::core::option::Option::None) });
    let safety = quote! {
        // Safety: the table was created (verified, or trusted by an `unsafe` call) as this
        // type, whose slot holds this field's type.
    };
    if s.by_value_with_default() {
        let default = s.default_expr(ctx, ns);
        return quote! {
            #doc
            #[inline]
            pub fn #f(&self) -> #read {
                #safety
                #get.unwrap_or(#default)
            }
        };
    }
    let value = match (&s.field.default_nonscalar, s.required()) {
        (_, true) => {
            let msg = format!("required field `{}` is missing", s.name);
            Some(quote!(#get.expect(#msg)))
        }
        (Some(NonScalarDefault::String(text)), false) => Some(quote!(#get.unwrap_or(#text))),
        (Some(NonScalarDefault::EmptyVector), false) if !s.is_tag => {
            Some(quote!(#get.unwrap_or_default()))
        }
        _ => None,
    };
    match value {
        Some(value) if always_present(s.field) => quote! {
            #doc
            #[inline]
            pub fn #f(&self) -> #read {
                #safety
                #value
            }
        },
        _ => quote! {
            #doc
            #[inline]
            pub fn #f(&self) -> ::core::option::Option<#read> {
                #safety
                #get
            }
        },
    }
}

/// Accessors derived from one field: typed union accessors, the nested flatbuffer root, and
/// key lookup in vectors of keyed tables.
fn field_extras(ctx: &Ctx, ns: &[String], field: &Field) -> TokenStream {
    match &field.ty {
        Type::Union(id) => unions::typed_accessors(ctx, ns, field, *id),
        Type::Vector(e) => match **e {
            Type::Union(id) => unions::typed_vector_accessors(ctx, ns, field, id),
            Type::Table(id) => lookup_accessor(ctx, ns, field, id),
            _ => nested_accessor(ctx, ns, field),
        },
        _ => TokenStream::new(),
    }
}

/// `stats_by_key(key)` for a vector `stats` of a keyed table.
fn lookup_accessor(ctx: &Ctx, ns: &[String], field: &Field, elem: DeclId) -> TokenStream {
    let t = ctx.model.table(elem);
    let Some(key) = t.key else { return TokenStream::new() };
    let key_ty = key_param_type(ctx, ns, &t.fields[key].ty);
    let elem = ctx.path(ns, elem, "");
    let f = ident(&field.name);
    let by_key = format_ident!("{}_by_key", field.name);
    let get = if always_present(field) { quote!(self.#f()) } else { quote!(self.#f()?) };
    quote! {
        /// Finds the element with this key by binary search (vectors written by `pack` or by
        /// flatc's sorted builders are sorted by key).
        pub fn #by_key(&self, key: #key_ty) -> ::core::option::Option<#elem<'a>> {
            #elem::lookup_by_key(#get, key)
        }
    }
}

/// `bytes_nested_flatbuffer()` for a `(nested_flatbuffer: "T")` field `bytes`.
fn nested_accessor(ctx: &Ctx, ns: &[String], field: &Field) -> TokenStream {
    let Some(root) = field.nested_flatbuffer else { return TokenStream::new() };
    let fb = &ctx.fb;
    let root_ty = ctx.path(ns, root, "");
    let f = ident(&field.name);
    let nested = format_ident!("{}_nested_flatbuffer", field.name);
    let get = if always_present(field) {
        quote!(::core::option::Option::Some(self.#f()))
    } else {
        quote!(self.#f())
    };
    quote! {
        /// The buffer nested in this field, read as its root table. The verifier checks nested
        /// buffers, so this is sound for verified input.
        pub fn #nested(&self) -> ::core::option::Option<#root_ty<'a>> {
            #get.map(|data| {
                // Safety: verified along with the outer buffer.
                unsafe { #fb::root_unchecked::<#root_ty<'a>>(data.bytes()) }
            })
        }
    }
}

/// The type a key is passed as: `&str` for strings, a reference for structs, the scalar
/// otherwise.
fn key_param_type(ctx: &Ctx, ns: &[String], ty: &Type) -> TokenStream {
    match ty {
        Type::String => quote!(&::core::primitive::str),
        Type::Struct(_) => {
            let t = ctx.value_type(ns, ty);
            quote!(&#t)
        }
        other => ctx.value_type(ns, other),
    }
}

/// flatc's key comparison methods, plus a typed binary search over a vector of this table.
fn key_methods(ctx: &Ctx, ns: &[String], name: &Ident, key: &Field) -> TokenStream {
    let fb = &ctx.fb;
    let k = ident(&key.name);
    let key_ty = key_param_type(ctx, ns, &key.ty);
    let compare = match &key.ty {
        Type::Scalar(s) if s.is_float() => quote! {
            self.#k().partial_cmp(&val).unwrap_or(::core::cmp::Ordering::Equal)
        },
        Type::String => quote!(self.#k().cmp(val)),
        Type::Struct(_) => quote!(self.#k().key_compare(val)),
        _ => quote!(self.#k().cmp(&val)),
    };
    let less = match &key.ty {
        Type::Struct(_) => quote!(self.#k().key_compare(o.#k()).is_lt()),
        _ => quote!(self.#k() < o.#k()),
    };
    quote! {
        /// Orders tables by key, as sorted vectors are.
        #[inline]
        pub fn key_compare_less_than(&self, o: &self::#name<'_>) -> ::core::primitive::bool {
            #less
        }

        /// Compares this table's key with `val`.
        #[inline]
        pub fn key_compare_with_value(&self, val: #key_ty) -> ::core::cmp::Ordering {
            #compare
        }

        /// Finds the table with key `key` in a vector sorted by key, by binary search.
        pub fn lookup_by_key(
            vector: #fb::Vector<'a, #fb::ForwardsUOffset<self::#name<'a>>>,
            key: #key_ty,
        ) -> ::core::option::Option<self::#name<'a>> {
            let (mut low, mut high) = (0, vector.len());
            while low < high {
                let mid = low + (high - low) / 2;
                let item = vector.get(mid);
                match item.key_compare_with_value(key) {
                    ::core::cmp::Ordering::Less => low = mid + 1,
                    ::core::cmp::Ordering::Greater => high = mid,
                    ::core::cmp::Ordering::Equal => return ::core::option::Option::Some(item),
                }
            }
            ::core::option::Option::None
        }
    }
}

/// True when `Args` holds borrowed or offset values and so needs a lifetime. A union's value
/// (`WIPOffset<UnionWIPOffset>`) has none: a table whose only other fields are scalars has no
/// lifetime to declare (declaring it anyway is E0392).
fn args_lifetime(slots: &[Slot]) -> bool {
    slots.iter().any(|s| !s.ty.is_scalar_like() && !matches!(s.ty, Type::Union(_)))
}

/// `MonsterArgs`: one field per slot; `Default` only without required fields, and `new` taking
/// the required ones.
fn emit_args(ctx: &Ctx, ns: &[String], table: &Ident, args: &Ident, slots: &[Slot]) -> TokenStream {
    let a = quote!('a);
    let needs_lt = args_lifetime(slots);
    let lt = if needs_lt { quote!(<'a>) } else { TokenStream::new() };
    let mut fields = Vec::new();
    let mut inits = Vec::new();
    let mut params = Vec::new();
    for s in slots {
        let f = ident(&s.name);
        let ty = ctx.builder_type(ns, &s.ty, &a);
        if s.by_value_with_default() {
            fields.push(quote!(pub #f: #ty));
            let d = s.default_expr(ctx, ns);
            inits.push(quote!(#f: #d));
        } else if s.required() {
            fields.push(quote!(pub #f: #ty));
            params.push(quote!(#f: #ty));
            inits.push(quote!(#f));
        } else {
            fields.push(quote!(pub #f: ::core::option::Option<#ty>));
            inits.push(quote!(#f: ::core::option::Option::None));
        }
    }
    let table_str = table.to_string();
    let default = params.is_empty().then(|| {
        quote! {
            impl #lt ::core::default::Default for self::#args #lt {
                #[inline]
                fn default() -> Self {
                    Self::new()
                }
            }
        }
    });
    quote! {
        #[doc = concat!("The fields of a [`", #table_str, "`], for `", #table_str, "::create`.")]
        pub struct #args #lt {
            #(#fields,)*
        }

        impl #lt self::#args #lt {
            /// Every optional field absent and every scalar at its default; required fields
            /// as given.
            #[inline]
            pub fn new(#(#params),*) -> Self {
                Self { #(#inits,)* }
            }
        }

        #default
    }
}

/// `MonsterBuilder`: `new` starts the table and adds the required fields, `add_*` the others.
fn emit_builder(
    ctx: &Ctx,
    ns: &[String],
    table: &Ident,
    builder: &Ident,
    slots: &[Slot],
) -> TokenStream {
    let fb = &ctx.fb;
    let b = quote!('b);
    let mut adders = Vec::new();
    let mut params = Vec::new();
    let mut required_adds = Vec::new();
    for s in slots {
        let f = ident(&s.name);
        let add = format_ident!("add_{}", s.name);
        let c = s.vt();
        let ty = ctx.builder_type(ns, &s.ty, &b);
        let body = match &s.ty {
            // NaN equals nothing, itself included, so the crate's `push_slot` (which compares
            // with `==`) would write a NaN default every time: compared bit for bit instead, the
            // default NaN (what reading an absent field gives) is left out and any other NaN
            // kept exactly.
            Type::Scalar(_) if s.by_value_with_default() && s.nan_default() => {
                quote! {
                    if #f.to_bits() != #ty::NAN.to_bits() {
                        self.fbb_.push_slot_always::<#ty>(self::#table::#c, #f);
                    }
                }
            }
            Type::Scalar(_) | Type::Enum(_) if s.by_value_with_default() => {
                let d = s.default_expr(ctx, ns);
                quote!(self.fbb_.push_slot::<#ty>(self::#table::#c, #f, #d);)
            }
            Type::Scalar(_) | Type::Enum(_) => {
                quote!(self.fbb_.push_slot_always::<#ty>(self::#table::#c, #f);)
            }
            Type::Struct(_) => quote!(self.fbb_.push_slot_always::<#ty>(self::#table::#c, #f);),
            _ => quote!(self.fbb_.push_slot_always::<#fb::WIPOffset<_>>(self::#table::#c, #f);),
        };
        let vis = if s.required() {
            params.push(quote!(#f: #ty));
            required_adds.push(quote!(builder.#add(#f);));
            TokenStream::new()
        } else {
            quote!(pub)
        };
        adders.push(quote! {
            #[inline]
            #vis fn #add(&mut self, #f: #ty) {
                #body
            }
        });
    }
    let table_str = table.to_string();
    quote! {
        #[doc = concat!("Writes a [`", #table_str, "`] field by field.")]
        pub struct #builder<'a: 'b, 'b, A: #fb::Allocator + 'a> {
            fbb_: &'b mut #fb::FlatBufferBuilder<'a, A>,
            start_: #fb::WIPOffset<#fb::TableUnfinishedWIPOffset>,
        }

        impl<'a: 'b, 'b, A: #fb::Allocator + 'a> self::#builder<'a, 'b, A> {
            #(#adders)*

            /// Starts the table and adds its required fields.
            #[inline]
            pub fn new(_fbb: &'b mut #fb::FlatBufferBuilder<'a, A>, #(#params),*) -> Self {
                let start = _fbb.start_table();
                let mut builder = Self { fbb_: _fbb, start_: start };
                #(#required_adds)*
                builder
            }

            /// Ends the table.
            #[inline]
            pub fn finish(self) -> #fb::WIPOffset<self::#table<'a>> {
                let o = self.fbb_.end_table(self.start_);
                #fb::WIPOffset::new(o.value())
            }
        }
    }
}
