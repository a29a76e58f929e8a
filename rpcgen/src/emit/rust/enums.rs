//! Enums, `bit_flags` enums and union tag types: `#[repr(transparent)]` newtypes over their
//! underlying integer, so values the schema does not name (from a newer writer) survive a read.

use proc_macro2::TokenStream;
use quote::quote;

use super::literal::{int, prim};
use super::names::ident;
use super::{Ctx, docs};
use crate::model::{Decl, Enum, Scalar, Union};

/// One named value of an enum or union tag.
struct Named<'a> {
    name: &'a str,
    docs: &'a [String],
    value: i128,
}

/// The code for an enum declaration.
pub(crate) fn emit_enum(ctx: &Ctx, decl: &Decl, e: &Enum) -> TokenStream {
    let values: Vec<Named> =
        e.values.iter().map(|v| Named { name: &v.name, docs: &v.docs, value: v.value }).collect();
    let body = if e.bit_flags {
        flags_type(decl, e.underlying, &values)
    } else {
        enum_type(decl, e.underlying, &values)
    };
    let scalar_impls = scalar_impls(ctx, &ident(&decl.name.name), e.underlying);
    quote!(#body #scalar_impls)
}

/// The tag type of a union: `NONE = 0` and one value per variant, over the union's tag type
/// (`u8` unless declared `union U: int`).
pub(crate) fn emit_union_tag(ctx: &Ctx, decl: &Decl, u: &Union) -> TokenStream {
    let none = Named { name: "NONE", docs: &[], value: 0 };
    let values: Vec<Named> = std::iter::once(none)
        .chain(u.variants.iter().map(|v| Named { name: &v.name, docs: &v.docs, value: v.value }))
        .collect();
    let body = enum_type(decl, u.tag, &values);
    let scalar_impls = scalar_impls(ctx, &ident(&decl.name.name), u.tag);
    quote!(#body #scalar_impls)
}

fn consts(values: &[Named]) -> TokenStream {
    let consts = values.iter().map(|v| {
        let name = ident(v.name);
        let value = int(v.value);
        let docs = docs(v.docs);
        quote!(#docs pub const #name: Self = Self(#value);)
    });
    quote!(#(#consts)*)
}

/// A plain enum: named constants, `ENUM_MIN`/`ENUM_MAX`/`ENUM_VALUES`, `variant_name`, and a
/// `Debug` that shows unknown values as `<UNKNOWN n>`, as flatc's does.
fn enum_type(decl: &Decl, underlying: Scalar, values: &[Named]) -> TokenStream {
    let name = ident(&decl.name.name);
    let ty = prim(underlying);
    let doc = docs(&decl.docs);
    let consts = consts(values);
    let min = int(values.iter().map(|v| v.value).min().unwrap_or(0));
    let max = int(values.iter().map(|v| v.value).max().unwrap_or(0));
    let idents: Vec<_> = values.iter().map(|v| ident(v.name)).collect();
    let names = values.iter().map(|v| v.name);
    quote! {
        #doc
        #[derive(
            ::core::clone::Clone, ::core::marker::Copy, ::core::cmp::PartialEq, ::core::cmp::Eq,
            ::core::cmp::PartialOrd, ::core::cmp::Ord, ::core::hash::Hash,
            ::core::default::Default
        )]
        #[repr(transparent)]
        pub struct #name(pub #ty);

        impl #name {
            #consts
            pub const ENUM_MIN: #ty = #min;
            pub const ENUM_MAX: #ty = #max;
            pub const ENUM_VALUES: &'static [Self] = &[#(Self::#idents),*];

            /// The value's name in the schema, or `None` for a value the schema does not name.
            pub fn variant_name(self) -> ::core::option::Option<&'static ::core::primitive::str> {
                match self {
                    #(Self::#idents => ::core::option::Option::Some(#names),)*
                    _ => ::core::option::Option::None,
                }
            }
        }

        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self.variant_name() {
                    ::core::option::Option::Some(name) => f.write_str(name),
                    ::core::option::Option::None => ::core::write!(f, "<UNKNOWN {:?}>", self.0),
                }
            }
        }
    }
}

/// A `bit_flags` enum: a flags newtype with the set operations, without depending on the
/// bitflags crate. Unknown bits are kept by every operation except `!`, which complements
/// within the known flags (as bitflags does).
fn flags_type(decl: &Decl, underlying: Scalar, values: &[Named]) -> TokenStream {
    let name = ident(&decl.name.name);
    let ty = prim(underlying);
    let doc = docs(&decl.docs);
    let consts = consts(values);
    let all = int(values.iter().fold(0i128, |acc, v| acc | v.value));
    let idents: Vec<_> = values.iter().map(|v| ident(v.name)).collect();
    let names = values.iter().map(|v| v.name);
    let ops = [
        (quote!(BitOr), quote!(bitor), quote!(BitOrAssign), quote!(bitor_assign), quote!(|)),
        (quote!(BitAnd), quote!(bitand), quote!(BitAndAssign), quote!(bitand_assign), quote!(&)),
        (quote!(BitXor), quote!(bitxor), quote!(BitXorAssign), quote!(bitxor_assign), quote!(^)),
    ]
    .into_iter()
    .map(|(tr, method, tr_assign, method_assign, op)| {
        quote! {
            impl ::core::ops::#tr for #name {
                type Output = Self;
                fn #method(self, other: Self) -> Self {
                    Self(self.0 #op other.0)
                }
            }
            impl ::core::ops::#tr_assign for #name {
                fn #method_assign(&mut self, other: Self) {
                    self.0 = self.0 #op other.0;
                }
            }
        }
    });
    quote! {
        #doc
        #[derive(
            ::core::clone::Clone, ::core::marker::Copy, ::core::cmp::PartialEq, ::core::cmp::Eq,
            ::core::cmp::PartialOrd, ::core::cmp::Ord, ::core::hash::Hash,
            ::core::default::Default
        )]
        #[repr(transparent)]
        pub struct #name(pub #ty);

        impl #name {
            #consts
            /// Every flag the schema names, in declaration order.
            pub const FLAGS: &'static [(&'static ::core::primitive::str, Self)] =
                &[#((#names, Self::#idents)),*];

            /// No flag set.
            pub const fn empty() -> Self {
                Self(0)
            }
            /// Every flag the schema names.
            pub const fn all() -> Self {
                Self(#all)
            }
            /// The raw bits, including bits the schema does not name.
            pub const fn bits(self) -> #ty {
                self.0
            }
            /// Keeps every bit, named or not (the name bitflags and flatc use).
            pub const fn from_bits_retain(bits: #ty) -> Self {
                Self(bits)
            }
            pub const fn is_empty(self) -> ::core::primitive::bool {
                self.0 == 0
            }
            /// True when every flag of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> ::core::primitive::bool {
                self.0 & other.0 == other.0
            }
            /// True when any flag of `other` is set in `self`.
            pub const fn intersects(self, other: Self) -> ::core::primitive::bool {
                self.0 & other.0 != 0
            }
            pub fn insert(&mut self, other: Self) {
                self.0 |= other.0;
            }
            pub fn remove(&mut self, other: Self) {
                self.0 &= !other.0;
            }
        }

        #(#ops)*

        impl ::core::ops::Not for #name {
            type Output = Self;
            fn not(self) -> Self {
                Self(!self.0 & Self::all().0)
            }
        }

        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut rest = self.0;
                let mut first = true;
                for (name, flag) in Self::FLAGS {
                    if flag.0 != 0 && self.contains(*flag) {
                        if !first {
                            f.write_str(" | ")?;
                        }
                        f.write_str(name)?;
                        rest &= !flag.0;
                        first = false;
                    }
                }
                if rest != 0 || first {
                    if !first {
                        f.write_str(" | ")?;
                    }
                    ::core::write!(f, "{:#x}", rest)?;
                }
                ::core::result::Result::Ok(())
            }
        }
    }
}

/// `Follow`, `Push`, `EndianScalar` and `Verifiable` for a newtype over `underlying`, so it can
/// be read and written wherever its integer could.
fn scalar_impls(ctx: &Ctx, name: &proc_macro2::Ident, underlying: Scalar) -> TokenStream {
    let fb = &ctx.fb;
    let ty = prim(underlying);
    quote! {
        impl<'a> #fb::Follow<'a> for #name {
            type Inner = Self;
            #[inline]
            unsafe fn follow(buf: &'a [::core::primitive::u8], loc: ::core::primitive::usize) -> Self {
                // Safety: the caller guarantees `loc` holds a value of this type.
                Self(unsafe { #fb::read_scalar_at::<#ty>(buf, loc) })
            }
        }

        impl #fb::Push for #name {
            type Output = Self;
            #[inline]
            unsafe fn push(&self, dst: &mut [::core::primitive::u8], _written_len: ::core::primitive::usize) {
                // Safety: the builder hands over room for exactly one value.
                unsafe { #fb::emplace_scalar::<#ty>(dst, self.0) };
            }
        }

        impl #fb::EndianScalar for #name {
            type Scalar = #ty;
            #[inline]
            fn to_little_endian(self) -> #ty {
                self.0.to_le()
            }
            #[inline]
            fn from_little_endian(v: #ty) -> Self {
                Self(#ty::from_le(v))
            }
        }

        impl #fb::Verifiable for #name {
            #[inline]
            fn run_verifier(
                v: &mut #fb::Verifier<'_, '_>,
                pos: ::core::primitive::usize,
            ) -> ::core::result::Result<(), #fb::InvalidFlatbuffer> {
                <#ty as #fb::Verifiable>::run_verifier(v, pos)
            }
        }

        impl #fb::SimpleToVerifyInSlice for #name {}
    }
}
