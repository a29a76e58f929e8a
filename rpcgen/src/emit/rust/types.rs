//! How each schema type is spelt in the reader, the builder, the verifier and the owned object.
//!
//! Every function takes the namespace of the module the code is emitted into, because user types
//! are referred to by paths relative to it.

use proc_macro2::TokenStream;
use quote::quote;

use super::Ctx;
use super::literal::prim;
use super::names::shared;
use crate::model::{Field, Presence, Type};

impl Ctx<'_> {
    /// Scalars, enums and structs by value: `::core::primitive::i16`, `self::Color`,
    /// `self::Vec3`.
    pub(crate) fn value_type(&self, ns: &[String], ty: &Type) -> TokenStream {
        match ty {
            Type::Scalar(s) => prim(*s),
            Type::Enum(id) | Type::Struct(id) | Type::Table(id) | Type::Union(id) => {
                self.path(ns, *id, "")
            }
            Type::String => quote!(::core::primitive::str),
            Type::Vector(_) | Type::Array(..) => unreachable!("no value type for {ty:?}"),
        }
    }

    /// The `Follow` type through which a value of `ty` is read where it is stored (a table
    /// slot or a vector element): inline for scalars, enums and structs, through an offset
    /// otherwise. `lt` is the buffer's lifetime.
    pub(crate) fn follow_type(&self, ns: &[String], ty: &Type, lt: &TokenStream) -> TokenStream {
        let fb = &self.fb;
        shared(match ty {
            Type::Scalar(_) | Type::Enum(_) | Type::Struct(_) => self.value_type(ns, ty),
            Type::String => quote!(#fb::ForwardsUOffset<&#lt ::core::primitive::str>),
            Type::Table(id) => {
                let t = self.path(ns, *id, "");
                quote!(#fb::ForwardsUOffset<#t<#lt>>)
            }
            Type::Union(_) => quote!(#fb::ForwardsUOffset<#fb::Table<#lt>>),
            Type::Vector(elem) => {
                let e = self.follow_type(ns, elem, lt);
                quote!(#fb::ForwardsUOffset<#fb::Vector<#lt, #e>>)
            }
            Type::Array(..) => unreachable!("arrays only occur in structs"),
        })
    }

    /// What a table accessor yields for a present field of type `ty`.
    pub(crate) fn reader_type(&self, ns: &[String], ty: &Type, lt: &TokenStream) -> TokenStream {
        let fb = &self.fb;
        shared(match ty {
            Type::Scalar(_) | Type::Enum(_) => self.value_type(ns, ty),
            Type::String => quote!(&#lt ::core::primitive::str),
            Type::Struct(id) => {
                let t = self.path(ns, *id, "");
                quote!(&#lt #t)
            }
            Type::Table(id) => {
                let t = self.path(ns, *id, "");
                quote!(#t<#lt>)
            }
            Type::Union(_) => quote!(#fb::Table<#lt>),
            Type::Vector(elem) => {
                let e = self.follow_type(ns, elem, lt);
                quote!(#fb::Vector<#lt, #e>)
            }
            Type::Array(..) => unreachable!("arrays only occur in structs"),
        })
    }

    /// The type a builder takes for a field of type `ty`: values for scalars, a reference for
    /// structs, a `WIPOffset` for everything written out of line.
    pub(crate) fn builder_type(&self, ns: &[String], ty: &Type, lt: &TokenStream) -> TokenStream {
        let fb = &self.fb;
        shared(match ty {
            Type::Scalar(_) | Type::Enum(_) => self.value_type(ns, ty),
            Type::Struct(id) => {
                let t = self.path(ns, *id, "");
                quote!(&#lt #t)
            }
            Type::Union(_) => quote!(#fb::WIPOffset<#fb::UnionWIPOffset>),
            _ => {
                let r = self.reader_type(ns, ty, lt);
                quote!(#fb::WIPOffset<#r>)
            }
        })
    }

    /// The owned type of one value of `ty` (a vector element, or a present field).
    pub(crate) fn owned_type(&self, ns: &[String], ty: &Type) -> TokenStream {
        shared(match ty {
            Type::Scalar(_) | Type::Enum(_) => self.value_type(ns, ty),
            Type::String => quote!(::std::string::String),
            Type::Struct(id) | Type::Union(id) => self.path(ns, *id, "T"),
            Type::Table(id) => {
                let t = self.path(ns, *id, "T");
                quote!(::std::boxed::Box<#t>)
            }
            Type::Vector(elem) => {
                let e = match &**elem {
                    // Vectors hold tables unboxed, as flatc's owned types do.
                    Type::Table(id) => self.path(ns, *id, "T"),
                    other => self.owned_type(ns, other),
                };
                quote!(::std::vec::Vec<#e>)
            }
            Type::Array(..) => unreachable!("arrays only occur in structs"),
        })
    }
}

/// True when a table field always has a value to read: scalars with defaults, fields marked
/// `required` (and `key`, which flatc treats as required), and strings and vectors with a default.
pub(crate) fn always_present(field: &Field) -> bool {
    field.presence == Presence::Default || is_required(field) || field.default_nonscalar.is_some()
}

/// Required non-scalar fields: builders take them up front and owned types hold them unwrapped.
pub(crate) fn is_required(field: &Field) -> bool {
    field.presence == Presence::Required || (field.key && !field.ty.is_scalar_like())
}
