//! Unions: the tag type, the owned `AnyT` enum, and typed accessors on tables.
//!
//! Beyond flatc's Rust output, a variant may be a struct or a string (stored out of line behind
//! an offset, as C++ stores them), and a field may be a vector of unions (a `[tag]` vector in
//! slot `id - 1` beside a vector of offsets in slot `id`).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::names::{camel, ident, snake};
use super::{Ctx, enums};
use crate::model::{DeclId, Field, Union, UnionVariant, UnionVariantType};

/// The tag type, `AnyUnionTableOffset` and the owned `AnyT`.
pub(crate) fn emit_union(ctx: &Ctx, id: DeclId, u: &Union) -> TokenStream {
    let fb = &ctx.fb;
    let decl = ctx.model.decl(id);
    let ns = &decl.name.namespace;
    let tag = ident(&decl.name.name);
    let owned = ident(&format!("{}T", decl.name.name));
    let offset = format_ident!("{}UnionTableOffset", decl.name.name);
    let tag_method = ident(&format!("{}_type", snake(&decl.name.name)));
    let name_str = &decl.name.name;
    let tag_code = enums::emit_union_tag(ctx, decl, u);
    let tag_decl = tag;
    let tag = quote!(self::#tag_decl);

    let mut variants = Vec::new();
    let mut tags = Vec::new();
    let mut packs = Vec::new();
    let mut unpacks = Vec::new();
    let mut helpers = Vec::new();
    for v in &u.variants {
        let vname = ident(&v.name);
        // The owned enum's variant, UpperCamel as flatc names it (`a_b_T` becomes `ABT`).
        let oname = ident(&camel(&v.name));
        let vt = match v.ty {
            UnionVariantType::Table(t) => {
                let t = ctx.path(ns, t, "T");
                quote!(::std::boxed::Box<#t>)
            }
            UnionVariantType::Struct(s) => ctx.path(ns, s, "T"),
            UnionVariantType::String => quote!(::std::string::String),
        };
        variants.push(quote!(#oname(#vt)));
        tags.push(quote!(Self::#oname(_) => #tag::#vname));
        packs.push(match v.ty {
            UnionVariantType::Table(_) => quote!(Self::#oname(v) => v.pack(fbb).as_union_value()),
            UnionVariantType::Struct(_) => {
                quote!(Self::#oname(v) => #fb::WIPOffset::new(fbb.push(v.pack()).value()))
            }
            UnionVariantType::String => {
                quote!(Self::#oname(v) => fbb.create_string(v).as_union_value())
            }
        });
        let (_, read) = read_variant(ctx, ns, v, &quote!(value));
        let convert = match v.ty {
            UnionVariantType::Table(_) => quote!(::std::boxed::Box::new(#read.unpack())),
            UnionVariantType::Struct(_) => quote!(#read.unpack()),
            UnionVariantType::String => quote!(::std::string::ToString::to_string(#read)),
        };
        unpacks.push(quote!(#tag::#vname => Self::#oname(#convert)));
        let snake_v = snake(&v.name);
        let as_ref = format_ident!("as_{}", snake_v);
        let as_mut = format_ident!("as_{}_mut", snake_v);
        let take = format_ident!("take_{}", snake_v);
        let (by_ref, deref) = match v.ty {
            UnionVariantType::Table(t) => (ctx.path(ns, t, "T"), quote!(v.as_ref())),
            UnionVariantType::Struct(s) => (ctx.path(ns, s, "T"), quote!(v)),
            UnionVariantType::String => (quote!(::std::string::String), quote!(v)),
        };
        let deref_mut = match v.ty {
            UnionVariantType::Table(_) => quote!(v.as_mut()),
            _ => quote!(v),
        };
        helpers.push(quote! {
            /// The value, if this variant is set.
            pub fn #as_ref(&self) -> ::core::option::Option<&#by_ref> {
                if let Self::#oname(v) = self { ::core::option::Option::Some(#deref) } else { ::core::option::Option::None }
            }
            /// The value, mutably, if this variant is set.
            pub fn #as_mut(&mut self) -> ::core::option::Option<&mut #by_ref> {
                if let Self::#oname(v) = self { ::core::option::Option::Some(#deref_mut) } else { ::core::option::Option::None }
            }
            /// Takes the value out if this variant is set, leaving `NONE`.
            pub fn #take(&mut self) -> ::core::option::Option<#vt> {
                match ::core::mem::take(self) {
                    Self::#oname(v) => ::core::option::Option::Some(v),
                    other => {
                        *self = other;
                        ::core::option::Option::None
                    }
                }
            }
        });
    }

    quote! {
        #tag_code

        #[doc = concat!("Marks offsets to a [`", #name_str, "`] value (flatc's name).")]
        pub struct #offset {}

        #[doc = concat!("The owned form of a [`", #name_str, "`] value.")]
        #[non_exhaustive]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, ::core::default::Default)]
        pub enum #owned {
            /// No value (also what unknown variants read as).
            #[default]
            NONE,
            #(#variants,)*
        }

        impl self::#owned {
            /// The tag of the variant held.
            pub fn #tag_method(&self) -> #tag {
                match self {
                    Self::NONE => #tag::NONE,
                    #(#tags,)*
                }
            }

            /// Writes the value; `None` for `NONE`.
            pub fn pack<'b, A: #fb::Allocator + 'b>(
                &self,
                fbb: &mut #fb::FlatBufferBuilder<'b, A>,
            ) -> ::core::option::Option<#fb::WIPOffset<#fb::UnionWIPOffset>> {
                ::core::option::Option::Some(match self {
                    Self::NONE => return ::core::option::Option::None,
                    #(#packs,)*
                })
            }

            /// Reads the value a tag and an offset designate. Unknown tags and a missing value
            /// read as `NONE`.
            pub fn unpack(tag: #tag, value: ::core::option::Option<#fb::Table<'_>>) -> Self {
                let ::core::option::Option::Some(value) = value else { return Self::NONE };
                match tag {
                    #(#unpacks,)*
                    _ => Self::NONE,
                }
            }

            /// Writes a vector of unions: the tag vector and the value vector. A `NONE` element
            /// gets a zero offset, which readers never follow since its tag is `NONE`.
            pub fn pack_vector<'b, A: #fb::Allocator + 'b>(
                items: &[Self],
                fbb: &mut #fb::FlatBufferBuilder<'b, A>,
            ) -> (
                #fb::WIPOffset<#fb::Vector<'b, #tag>>,
                #fb::WIPOffset<#fb::Vector<'b, #fb::ForwardsUOffset<#fb::Table<'b>>>>,
            ) {
                // flatc's order, so the bytes match its `pack()`: the tag vector, then each
                // value, then the vector of offsets.
                let tags: ::std::vec::Vec<#tag> = items.iter().map(Self::#tag_method).collect();
                let tags = fbb.create_vector(&tags);
                let values: ::std::vec::Vec<_> = items.iter().map(|item| item.pack(fbb)).collect();
                fbb.start_vector::<#fb::WIPOffset<#fb::UnionWIPOffset>>(values.len());
                for value in values.iter().rev() {
                    match value {
                        ::core::option::Option::Some(offset) => {
                            fbb.push(*offset);
                        }
                        ::core::option::Option::None => {
                            fbb.push(0u32);
                        }
                    }
                }
                let values = fbb.end_vector::<#fb::WIPOffset<#fb::UnionWIPOffset>>(values.len());
                (tags, #fb::WIPOffset::new(values.value()))
            }

            #(#helpers)*
        }
    }
}

/// The type and the expression reading variant `v` from `table` (a `Table` positioned where the
/// union's offset points): `(Weapon<'a>, unsafe { Weapon::init_from_table(table) })`.
fn read_variant(
    ctx: &Ctx,
    ns: &[String],
    v: &UnionVariant,
    table: &TokenStream,
) -> (TokenStream, TokenStream) {
    let fb = &ctx.fb;
    match v.ty {
        UnionVariantType::Table(t) => {
            let t = ctx.path(ns, t, "");
            // Safety (all three): the tag says the value is of this type.
            (quote!(#t<'a>), quote!(unsafe { #t::init_from_table(#table) }))
        }
        UnionVariantType::Struct(s) => {
            let s = ctx.path(ns, s, "");
            (
                quote!(&'a #s),
                quote!(unsafe { <&#s as #fb::Follow<'_>>::follow(#table.buf(), #table.loc()) }),
            )
        }
        UnionVariantType::String => (
            quote!(&'a ::core::primitive::str),
            quote!(unsafe {
                <&::core::primitive::str as #fb::Follow<'_>>::follow(#table.buf(), #table.loc())
            }),
        ),
    }
}

/// `x_as_weapon()` and friends for a union field `x`.
pub(crate) fn typed_accessors(ctx: &Ctx, ns: &[String], field: &Field, id: DeclId) -> TokenStream {
    let decl = ctx.model.decl(id);
    let tag = ctx.path(ns, id, "");
    let f = ident(&field.name);
    let tag_fn = ident(&format!("{}_type", field.name));
    let value = if super::types::always_present(field) {
        quote!(::core::option::Option::Some(self.#f()))
    } else {
        quote!(self.#f())
    };
    let methods = ctx.model.union(id).variants.iter().map(|v| {
        let method = format_ident!("{}_as_{}", field.name, snake(&v.name));
        let vname = ident(&v.name);
        let (ty, read) = read_variant(ctx, ns, v, &quote!(t));
        let doc = format!("The value if it is a `{}` ({}).", v.name, decl.name.name);
        quote! {
            #[doc = #doc]
            #[inline]
            pub fn #method(&self) -> ::core::option::Option<#ty> {
                if self.#tag_fn() == #tag::#vname {
                    #value.map(|t| #read)
                } else {
                    ::core::option::Option::None
                }
            }
        }
    });
    quote!(#(#methods)*)
}

/// `x_as_weapon(i)` and friends for a vector-of-unions field `x`: element `i` if it is of that
/// variant.
pub(crate) fn typed_vector_accessors(
    ctx: &Ctx,
    ns: &[String],
    field: &Field,
    id: DeclId,
) -> TokenStream {
    let tag = ctx.path(ns, id, "");
    let f = ident(&field.name);
    let tag_fn = ident(&format!("{}_type", field.name));
    let methods = ctx.model.union(id).variants.iter().map(|v| {
        let method = format_ident!("{}_as_{}", field.name, snake(&v.name));
        let vname = ident(&v.name);
        let (ty, read) = read_variant(ctx, ns, v, &quote!(t));
        let doc = format!("Element `i` if it is a `{}`.", v.name);
        quote! {
            #[doc = #doc]
            pub fn #method(&self, i: ::core::primitive::usize) -> ::core::option::Option<#ty> {
                let tags = self.#tag_fn()?;
                let values = self.#f()?;
                if i < tags.len() && i < values.len() && tags.get(i) == #tag::#vname {
                    let t = values.get(i);
                    ::core::option::Option::Some(#read)
                } else {
                    ::core::option::Option::None
                }
            }
        }
    });
    quote!(#(#methods)*)
}
