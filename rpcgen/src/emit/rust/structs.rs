//! Structs: `#[repr(transparent)] Vec3(pub [u8; N])` holding the little-endian bytes exactly as
//! they sit in a buffer (so a reader can point into the buffer), with getters, setters, `new`,
//! and the owned `Vec3T`.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::quote;

use super::names::ident;
use super::{Ctx, docs};
use crate::model::{Decl, Struct, StructField, Type};

/// The code for a struct declaration: the byte struct and its owned type.
pub(crate) fn emit_struct(ctx: &Ctx, decl: &Decl, s: &Struct) -> TokenStream {
    let fb = &ctx.fb;
    let name = ident(&decl.name.name);
    let owned = ident(&format!("{}T", decl.name.name));
    let size = Literal::usize_unsuffixed(s.size as usize);
    let align = Literal::usize_unsuffixed(s.align as usize);
    let doc = docs(&decl.docs);
    let ns = &decl.name.namespace;

    let mut accessors = Vec::new();
    let mut new_params = Vec::new();
    let mut new_sets = Vec::new();
    let mut debug_fields = Vec::new();
    let mut unpack_fields = Vec::new();
    let mut owned_fields = Vec::new();
    let mut pack_args = Vec::new();
    let mut key_steps = Vec::new();
    for field in &s.fields {
        let f = ident(&field.name);
        let setter = ident(&format!("set_{}", field.name));
        let fname = &field.name;
        let (param, access) = field_access(ctx, ns, field, &f, &setter);
        accessors.push(access);
        new_params.push(quote!(#f: #param));
        new_sets.push(quote!(s.#setter(#f);));
        debug_fields.push(quote!(.field(#fname, &self.#f())));
        let (owned_ty, unpack, pack) = owned_field(ctx, ns, &field.ty, &f);
        let fdoc = docs(&field.docs);
        owned_fields.push(quote!(#fdoc pub #f: #owned_ty));
        unpack_fields.push(quote!(#f: #unpack));
        pack_args.push(pack);
        key_steps.push(compare_step(&field.ty, &quote!(self.#f()), &quote!(other.#f())));
    }
    let name_str = &decl.name.name;
    quote! {
        #doc
        #[repr(transparent)]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::cmp::PartialEq)]
        pub struct #name(pub [::core::primitive::u8; #size]);

        impl ::core::default::Default for #name {
            fn default() -> Self {
                Self([0; #size])
            }
        }

        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#name_str) #(#debug_fields)* .finish()
            }
        }

        impl #fb::SimpleToVerifyInSlice for #name {}

        impl<'a> #fb::Follow<'a> for #name {
            type Inner = &'a #name;
            #[inline]
            unsafe fn follow(buf: &'a [::core::primitive::u8], loc: ::core::primitive::usize) -> Self::Inner {
                // Safety: the caller guarantees `loc` holds this struct.
                unsafe { <&'a #name as #fb::Follow<'a>>::follow(buf, loc) }
            }
        }

        impl<'a> #fb::Follow<'a> for &'a #name {
            type Inner = &'a #name;
            #[inline]
            unsafe fn follow(buf: &'a [::core::primitive::u8], loc: ::core::primitive::usize) -> Self::Inner {
                // Safety: the struct is a byte array (alignment 1) and the caller guarantees
                // `loc` holds one.
                unsafe { #fb::follow_cast_ref::<#name>(buf, loc) }
            }
        }

        impl #fb::Push for #name {
            type Output = #name;
            #[inline]
            unsafe fn push(&self, dst: &mut [::core::primitive::u8], _written_len: ::core::primitive::usize) {
                dst.copy_from_slice(&self.0);
            }
            #[inline]
            fn alignment() -> #fb::PushAlignment {
                #fb::PushAlignment::new(#align)
            }
        }

        impl #fb::Verifiable for #name {
            #[inline]
            fn run_verifier(
                v: &mut #fb::Verifier<'_, '_>,
                pos: ::core::primitive::usize,
            ) -> ::core::result::Result<(), #fb::InvalidFlatbuffer> {
                v.in_buffer::<Self>(pos)
            }
        }

        impl #name {
            /// A struct with every field set; padding is zero.
            #[allow(clippy::too_many_arguments)]
            pub fn new(#(#new_params),*) -> Self {
                let mut s = Self([0; #size]);
                #(#new_sets)*
                s
            }

            #(#accessors)*

            /// Copies the struct into its owned form.
            pub fn unpack(&self) -> #owned {
                #owned { #(#unpack_fields),* }
            }

            /// Orders structs as flatc orders struct keys: field by field in declaration order,
            /// arrays element by element, numbers by value; the first fields that differ decide,
            /// and a NaN there makes the two equal.
            pub fn key_compare(&self, other: &Self) -> ::core::cmp::Ordering {
                #(#key_steps)*
                ::core::cmp::Ordering::Equal
            }
        }

        #[doc = concat!("The owned form of [`", #name_str, "`].")]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
        pub struct #owned {
            #(#owned_fields),*
        }

        impl ::core::default::Default for #owned {
            fn default() -> Self {
                #name::default().unpack()
            }
        }

        impl #owned {
            /// The struct's bytes.
            pub fn pack(&self) -> #name {
                #name::new(#(#pack_args),*)
            }
        }
    }
}

/// Returns from `key_compare` with the order of `a` and `b`, values of type `ty`, unless they
/// are equal.
fn compare_step(ty: &Type, a: &TokenStream, b: &TokenStream) -> TokenStream {
    match ty {
        Type::Scalar(s) if s.is_float() => quote! {
            let (a, b) = (#a, #b);
            if a != b {
                return a.partial_cmp(&b).unwrap_or(::core::cmp::Ordering::Equal);
            }
        },
        Type::Struct(_) => quote! {
            match #a.key_compare(#b) {
                ::core::cmp::Ordering::Equal => {}
                order => return order,
            }
        },
        Type::Array(elem, _) => {
            let step = compare_step(elem, &quote!(a), &quote!(b));
            quote! {
                for (a, b) in #a.iter().zip(#b.iter()) {
                    #step
                }
            }
        }
        _ => quote! {
            match #a.cmp(&#b) {
                ::core::cmp::Ordering::Equal => {}
                order => return order,
            }
        },
    }
}

/// The parameter type of `new`/the setter, and the getter and setter of one field.
fn field_access(
    ctx: &Ctx,
    ns: &[String],
    field: &StructField,
    f: &Ident,
    setter: &Ident,
) -> (TokenStream, TokenStream) {
    let fb = &ctx.fb;
    let off = Literal::usize_unsuffixed(field.offset as usize);
    let doc = docs(&field.docs);
    match &field.ty {
        Type::Scalar(_) | Type::Enum(_) => {
            let ty = ctx.value_type(ns, &field.ty);
            let access = quote! {
                #doc
                pub fn #f(&self) -> #ty {
                    // Safety: the field lies within the struct's bytes.
                    unsafe { #fb::read_scalar::<#ty>(&self.0[#off..]) }
                }
                pub fn #setter(&mut self, value: #ty) {
                    // Safety: the field lies within the struct's bytes.
                    unsafe { #fb::emplace_scalar::<#ty>(&mut self.0[#off..], value) }
                }
            };
            (ty, access)
        }
        Type::Struct(id) => {
            let ty = ctx.path(ns, *id, "");
            let len = Literal::usize_unsuffixed(ctx.model.struct_(*id).size as usize);
            let access = quote! {
                #doc
                pub fn #f(&self) -> &#ty {
                    // Safety: structs are byte arrays (alignment 1) and the field's bytes lie
                    // within this struct.
                    unsafe { #fb::follow_cast_ref::<#ty>(&self.0, #off) }
                }
                pub fn #setter(&mut self, value: &#ty) {
                    self.0[#off..#off + #len].copy_from_slice(&value.0);
                }
            };
            (quote!(&#ty), access)
        }
        Type::Array(elem, n) => {
            let n = Literal::usize_unsuffixed(*n as usize);
            let elem_ty = ctx.value_type(ns, elem);
            let set = match &**elem {
                Type::Struct(id) => {
                    let len = Literal::usize_unsuffixed(ctx.model.struct_(*id).size as usize);
                    quote! {
                        for (i, item) in value.iter().enumerate() {
                            let at = #off + i * #len;
                            self.0[at..at + #len].copy_from_slice(&item.0);
                        }
                    }
                }
                // Safety: the array lies within the struct's bytes.
                _ => quote!(unsafe { #fb::emplace_scalar_array(&mut self.0, #off, value) }),
            };
            let access = quote! {
                #doc
                pub fn #f(&self) -> #fb::Array<'_, #elem_ty, #n> {
                    // Safety: the array lies within the struct's bytes.
                    unsafe { <#fb::Array<'_, #elem_ty, #n> as #fb::Follow<'_>>::follow(&self.0, #off) }
                }
                pub fn #setter(&mut self, value: &[#elem_ty; #n]) {
                    #set
                }
            };
            (quote!(&[#elem_ty; #n]), access)
        }
        // The checker allows only scalars, enums, structs and arrays of those in structs.
        other => unreachable!("struct field of type {other:?}"),
    }
}

/// The owned type of a struct field, its `unpack` expression and its `pack` argument.
fn owned_field(
    ctx: &Ctx,
    ns: &[String],
    ty: &Type,
    f: &Ident,
) -> (TokenStream, TokenStream, TokenStream) {
    match ty {
        Type::Struct(id) => {
            let owned = ctx.path(ns, *id, "T");
            (owned, quote!(self.#f().unpack()), quote!(&self.#f.pack()))
        }
        Type::Array(elem, n) => {
            let n = Literal::usize_unsuffixed(*n as usize);
            match &**elem {
                Type::Struct(id) => {
                    let owned = ctx.path(ns, *id, "T");
                    (
                        quote!([#owned; #n]),
                        quote!(::core::array::from_fn(|i| self.#f().get(i).unpack())),
                        quote!(&::core::array::from_fn(|i| self.#f[i].pack())),
                    )
                }
                _ => {
                    let elem_ty = ctx.value_type(ns, elem);
                    (
                        quote!([#elem_ty; #n]),
                        quote!(::core::array::from_fn(|i| self.#f().get(i))),
                        quote!(&self.#f),
                    )
                }
            }
        }
        _ => (ctx.value_type(ns, ty), quote!(self.#f()), quote!(self.#f)),
    }
}
