//! Owned table objects (`MonsterT`): plain Rust values with `pack()` to write them and the
//! reader's `unpack()` to read them, and the runtime's `Table` trait tying the two together.
//!
//! Required strings, tables, structs and vectors are held unwrapped, so an owned object always
//! packs into a valid buffer. `pack()` sorts vectors of keyed tables so lookups by key work.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::names::{ident, snake};
use super::table::live_fields;
use super::types::{always_present, is_required};
use super::{Ctx, docs};
use crate::model::{DeclId, Field, NonScalarDefault, Presence, Table, Type, Value};

/// The owned type of a table, its `pack`, the reader's `unpack` and the `Table` impl.
pub(crate) fn emit_object(ctx: &Ctx, id: DeclId, t: &Table) -> TokenStream {
    let fb = &ctx.fb;
    let rt = &ctx.rt;
    let decl = ctx.model.decl(id);
    let ns = &decl.name.namespace;
    let name = ident(&decl.name.name);
    let owned = ident(&format!("{}T", decl.name.name));
    let args = ident(&format!("{}Args", decl.name.name));
    let name_str = &decl.name.name;
    let dotted = decl.name.dotted();

    let mut fields = Vec::new();
    let mut defaults = Vec::new();
    let mut unpacks = Vec::new();
    let mut packs = Vec::new();
    let mut arg_names = Vec::new();
    for field in live_fields(t) {
        let f = ident(&field.name);
        let doc = docs(&field.docs);
        let ty = field_type(ctx, ns, field);
        fields.push(quote!(#doc pub #f: #ty));
        defaults.push(default_value(ctx, ns, field));
        unpacks.push(unpack_field(ctx, ns, field));
        packs.push(pack_field(ctx, ns, field));
        if matches!(field.ty, Type::Union(_)) || super::table::is_union_vector(&field.ty) {
            arg_names.push(ident(&format!("{}_type", field.name)));
        }
        arg_names.push(f);
    }
    let field_names: Vec<&Ident> = arg_names.iter().filter(|n| !is_tag_name(t, n)).collect();

    quote! {
        #[doc = concat!("The owned form of [`", #name_str, "`]: build it, then `pack` it.")]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
        pub struct #owned {
            #(#fields,)*
        }

        impl ::core::default::Default for self::#owned {
            fn default() -> Self {
                Self { #(#field_names: #defaults,)* }
            }
        }

        impl self::#owned {
            /// Writes this object (and everything it holds) into `_fbb`.
            pub fn pack<'b, A: #fb::Allocator + 'b>(
                &self,
                _fbb: &mut #fb::FlatBufferBuilder<'b, A>,
            ) -> #fb::WIPOffset<self::#name<'b>> {
                #(#packs)*
                self::#name::create(_fbb, &self::#args { #(#arg_names,)* })
            }
        }

        impl self::#name<'_> {
            /// Copies everything this reader can see into an owned object.
            pub fn unpack(&self) -> self::#owned {
                self::#owned { #(#field_names: #unpacks,)* }
            }
        }

        impl #rt::Table for self::#owned {
            type Reader<'a> = self::#name<'a>;
            const NAME: &'static ::core::primitive::str = #dotted;

            fn unpack(reader: self::#name<'_>) -> Self {
                reader.unpack()
            }

            fn pack<'b, A: #fb::Allocator + 'b>(
                &self,
                fbb: &mut #fb::FlatBufferBuilder<'b, A>,
            ) -> #fb::WIPOffset<self::#name<'b>> {
                self::#owned::pack(self, fbb)
            }
        }
    }
}

/// True for the `<field>_type` name of a union field, which the owned type does not hold.
fn is_tag_name(t: &Table, name: &Ident) -> bool {
    live_fields(t).any(|f| {
        (matches!(f.ty, Type::Union(_)) || super::table::is_union_vector(&f.ty))
            && ident(&format!("{}_type", f.name)) == *name
    })
}

/// The owned field type: unwrapped when the field always has a value (scalars with defaults,
/// required fields, defaulted strings and vectors, unions with their `NONE`).
fn field_type(ctx: &Ctx, ns: &[String], field: &Field) -> TokenStream {
    let ty = ctx.owned_type(ns, &field.ty);
    if always_present(field) || matches!(field.ty, Type::Union(_)) {
        ty
    } else {
        quote!(::core::option::Option<#ty>)
    }
}

fn default_value(ctx: &Ctx, ns: &[String], field: &Field) -> TokenStream {
    match (&field.ty, &field.presence) {
        (Type::Scalar(s), Presence::Default) => {
            super::literal::scalar(*s, field.default.unwrap_or(Value::Int(0)))
        }
        (Type::Enum(id), Presence::Default) => {
            let t = ctx.path(ns, *id, "");
            let value = match field.default {
                Some(Value::Int(i)) => i,
                _ => 0,
            };
            let lit = super::literal::int(value);
            quote!(#t(#lit))
        }
        (Type::Union(id), _) => {
            let t = ctx.path(ns, *id, "T");
            quote!(#t::NONE)
        }
        _ if !always_present(field) => quote!(::core::option::Option::None),
        (Type::String, _) => match &field.default_nonscalar {
            Some(NonScalarDefault::String(s)) => quote!(::std::string::String::from(#s)),
            _ => quote!(::std::string::String::new()),
        },
        _ => quote!(::core::default::Default::default()),
    }
}

/// How the reader's value of a field becomes the owned value.
fn unpack_field(ctx: &Ctx, ns: &[String], field: &Field) -> TokenStream {
    let f = ident(&field.name);
    match &field.ty {
        Type::Union(id) => {
            let owned = ctx.path(ns, *id, "T");
            let tag = ident(&format!("{}_type", field.name));
            let value = if always_present(field) {
                quote!(::core::option::Option::Some(self.#f()))
            } else {
                quote!(self.#f())
            };
            return quote!(#owned::unpack(self.#tag(), #value));
        }
        Type::Vector(e) if matches!(**e, Type::Union(_)) => {
            let Type::Union(id) = **e else { unreachable!() };
            let owned = ctx.path(ns, id, "T");
            let tag = ident(&format!("{}_type", field.name));
            return quote! {
                match (self.#tag(), self.#f()) {
                    (::core::option::Option::Some(tags), ::core::option::Option::Some(values)) => {
                        ::core::option::Option::Some(
                            tags.iter()
                                .zip(values.iter())
                                .map(|(tag, value)| #owned::unpack(tag, ::core::option::Option::Some(value)))
                                .collect(),
                        )
                    }
                    _ => ::core::option::Option::None,
                }
            };
        }
        _ => {}
    }
    let convert = convert_read(&field.ty);
    if field.ty.is_scalar_like() {
        quote!(self.#f())
    } else if always_present(field) {
        quote!({ let x = self.#f(); #convert })
    } else {
        quote!(self.#f().map(|x| #convert))
    }
}

/// Converts a read value `x` of a (non-union) type into its owned form.
fn convert_read(ty: &Type) -> TokenStream {
    match ty {
        Type::Scalar(_) | Type::Enum(_) => quote!(x),
        Type::String => quote!(::std::string::ToString::to_string(x)),
        Type::Struct(_) => quote!(x.unpack()),
        Type::Table(_) => quote!(::std::boxed::Box::new(x.unpack())),
        Type::Vector(e) => match &**e {
            Type::Scalar(_) | Type::Enum(_) => quote!(x.iter().collect()),
            Type::String => quote!(x.iter().map(::std::string::ToString::to_string).collect()),
            Type::Struct(_) | Type::Table(_) => quote!(x.iter().map(|e| e.unpack()).collect()),
            other => unreachable!("vector of {other:?}"),
        },
        other => unreachable!("no owned conversion for {other:?}"),
    }
}

/// Statements that write a field's out-of-line data and bind `let <field> = ...` to what
/// `Args` takes.
fn pack_field(ctx: &Ctx, ns: &[String], field: &Field) -> TokenStream {
    let f = ident(&field.name);
    match &field.ty {
        Type::Scalar(_) | Type::Enum(_) => return quote!(let #f = self.#f;),
        Type::Union(id) => {
            let tag = ident(&format!("{}_type", field.name));
            let tag_method = ident(&format!("{}_type", snake(&ctx.model.decl(*id).name.name)));
            let value = if always_present(field) {
                let msg = format!("required union `{}` is NONE", field.name);
                quote!(self.#f.pack(_fbb).expect(#msg))
            } else {
                quote!(self.#f.pack(_fbb))
            };
            return quote! {
                let #tag = self.#f.#tag_method();
                let #f = #value;
            };
        }
        Type::Vector(e) if matches!(**e, Type::Union(_)) => {
            let Type::Union(id) = **e else { unreachable!() };
            let owned = ctx.path(ns, id, "T");
            let tag = ident(&format!("{}_type", field.name));
            return quote! {
                let (#tag, #f) = match &self.#f {
                    ::core::option::Option::Some(items) => {
                        let (tags, values) = #owned::pack_vector(items, _fbb);
                        (::core::option::Option::Some(tags), ::core::option::Option::Some(values))
                    }
                    ::core::option::Option::None => (::core::option::Option::None, ::core::option::Option::None),
                };
            };
        }
        _ => {}
    }
    if let Type::Struct(_) = field.ty {
        let tmp = quote::format_ident!("{}_tmp", field.name);
        return if always_present(field) {
            quote! { let #tmp = self.#f.pack(); let #f = &#tmp; }
        } else {
            quote! { let #tmp = self.#f.as_ref().map(|x| x.pack()); let #f = #tmp.as_ref(); }
        };
    }
    let write = write_value(ctx, &field.ty);
    if is_required(field) {
        quote! { let #f = { let x = &self.#f; #write }; }
    } else if always_present(field) {
        // A defaulted string or vector: always written, but `Args` holds it as optional.
        quote! { let #f = ::core::option::Option::Some({ let x = &self.#f; #write }); }
    } else {
        quote! { let #f = self.#f.as_ref().map(|x| #write); }
    }
}

/// Writes the owned value `x: &T` of an out-of-line type into `_fbb`.
fn write_value(ctx: &Ctx, ty: &Type) -> TokenStream {
    match ty {
        Type::String => quote!(_fbb.create_string(x)),
        Type::Table(_) => quote!(x.pack(_fbb)),
        Type::Vector(e) => match &**e {
            Type::Scalar(_) | Type::Enum(_) => quote!(_fbb.create_vector(x)),
            Type::String => quote! {{
                let w: ::std::vec::Vec<_> = x.iter().map(|s| _fbb.create_string(s)).collect();
                _fbb.create_vector(&w)
            }},
            Type::Struct(_) => quote! {{
                let w: ::std::vec::Vec<_> = x.iter().map(|s| s.pack()).collect();
                _fbb.create_vector(&w)
            }},
            Type::Table(id) => {
                let sort = ctx.model.table(*id).key.map(|k| {
                    let key = &ctx.model.table(*id).fields[k];
                    let k = ident(&key.name);
                    let cmp = match &key.ty {
                        Type::Scalar(s) if s.is_float() => quote! {
                            a.#k.partial_cmp(&b.#k).unwrap_or(::core::cmp::Ordering::Equal)
                        },
                        Type::Struct(_) => quote!(a.#k.pack().key_compare(&b.#k.pack())),
                        _ => quote!(a.#k.cmp(&b.#k)),
                    };
                    quote!(items.sort_by(|a, b| #cmp);)
                });
                quote! {{
                    let mut items: ::std::vec::Vec<_> = x.iter().collect();
                    #sort
                    let w: ::std::vec::Vec<_> = items.iter().map(|t| t.pack(_fbb)).collect();
                    _fbb.create_vector(&w)
                }}
            }
            other => unreachable!("vector of {other:?}"),
        },
        other => unreachable!("{other:?} is not written out of line"),
    }
}
