//! Root-type helpers, named as flatc names them: `root_as_monster`, `finish_monster_buffer`,
//! `MONSTER_IDENTIFIER`...

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::Ctx;
use super::names::{ident, screaming, snake};
use crate::model::{DeclId, FileInfo, Model};

/// Each root type once, with the first file that declares it (for its identifier and
/// extension).
pub(crate) fn root_types(model: &Model) -> Vec<(DeclId, &FileInfo)> {
    let mut out: Vec<(DeclId, &FileInfo)> = Vec::new();
    for file in &model.files {
        if let Some(id) = file.root_type {
            if !out.iter().any(|(seen, _)| *seen == id) {
                out.push((id, file));
            }
        }
    }
    out
}

/// The helpers for root type `id`, placed in its namespace's module.
pub(crate) fn emit_root(ctx: &Ctx, id: DeclId, file: &FileInfo) -> TokenStream {
    let fb = &ctx.fb;
    let decl = ctx.model.decl(id);
    let name = ident(&decl.name.name);
    let name = quote!(self::#name);
    let name_str = &decl.name.name;
    let s = snake(&decl.name.name);
    let root_as = format_ident!("root_as_{s}");
    let root_as_opts = format_ident!("root_as_{s}_with_opts");
    let sp_root_as = format_ident!("size_prefixed_root_as_{s}");
    let sp_root_as_opts = format_ident!("size_prefixed_root_as_{s}_with_opts");
    let root_unchecked = format_ident!("root_as_{s}_unchecked");
    let sp_root_unchecked = format_ident!("size_prefixed_root_as_{s}_unchecked");
    let finish = format_ident!("finish_{s}_buffer");
    let finish_sp = format_ident!("finish_size_prefixed_{s}_buffer");
    let upper = screaming(&decl.name.name);

    // An identifier that is not UTF-8 cannot be passed to the runtime's `&str` API.
    let identifier = file.file_identifier.and_then(|b| String::from_utf8(b.to_vec()).ok());
    let (ident_const, ident_arg) = match &identifier {
        Some(text) => {
            let c = format_ident!("{upper}_IDENTIFIER");
            let has = format_ident!("{s}_buffer_has_identifier");
            let has_sp = format_ident!("{s}_size_prefixed_buffer_has_identifier");
            (
                quote! {
                    /// The file identifier buffers of this root type carry.
                    pub const #c: &::core::primitive::str = #text;

                    /// True when the buffer carries this root type's identifier.
                    #[inline]
                    pub fn #has(buf: &[::core::primitive::u8]) -> ::core::primitive::bool {
                        #fb::buffer_has_identifier(buf, #c, false)
                    }

                    /// True when the size-prefixed buffer carries this root type's identifier.
                    #[inline]
                    pub fn #has_sp(buf: &[::core::primitive::u8]) -> ::core::primitive::bool {
                        #fb::buffer_has_identifier(buf, #c, true)
                    }
                },
                quote!(::core::option::Option::Some(#c)),
            )
        }
        None => (TokenStream::new(), quote!(::core::option::Option::None)),
    };
    let extension = file.file_extension.as_ref().map(|ext| {
        let c = format_ident!("{upper}_EXTENSION");
        quote! {
            /// The file extension of this root type's buffers.
            pub const #c: &::core::primitive::str = #ext;
        }
    });
    let result = quote!(::core::result::Result<#name<'_>, #fb::InvalidFlatbuffer>);
    let doc_root = format!("Verifies that `buf` holds a `{name_str}` and returns it.");
    let doc_sp = format!("Verifies that `buf` holds a size-prefixed `{name_str}` and returns it.");
    quote! {
        #[doc = #doc_root]
        #[inline]
        pub fn #root_as(buf: &[::core::primitive::u8]) -> #result {
            #fb::root::<#name<'_>>(buf)
        }

        #[doc = #doc_sp]
        #[inline]
        pub fn #sp_root_as(buf: &[::core::primitive::u8]) -> #result {
            #fb::size_prefixed_root::<#name<'_>>(buf)
        }

        #[doc = #doc_root]
        #[inline]
        pub fn #root_as_opts<'b, 'o>(
            opts: &'o #fb::VerifierOptions,
            buf: &'b [::core::primitive::u8],
        ) -> ::core::result::Result<#name<'b>, #fb::InvalidFlatbuffer> {
            #fb::root_with_opts::<#name<'b>>(opts, buf)
        }

        #[doc = #doc_sp]
        #[inline]
        pub fn #sp_root_as_opts<'b, 'o>(
            opts: &'o #fb::VerifierOptions,
            buf: &'b [::core::primitive::u8],
        ) -> ::core::result::Result<#name<'b>, #fb::InvalidFlatbuffer> {
            #fb::size_prefixed_root_with_opts::<#name<'b>>(opts, buf)
        }

        /// Reads the root without verifying the buffer.
        ///
        /// # Safety
        ///
        /// `buf` must hold a valid buffer of this root type.
        #[inline]
        pub unsafe fn #root_unchecked(buf: &[::core::primitive::u8]) -> #name<'_> {
            // Safety: the caller's promise.
            unsafe { #fb::root_unchecked::<#name<'_>>(buf) }
        }

        /// Reads the root of a size-prefixed buffer without verifying it.
        ///
        /// # Safety
        ///
        /// `buf` must hold a valid size-prefixed buffer of this root type.
        #[inline]
        pub unsafe fn #sp_root_unchecked(buf: &[::core::primitive::u8]) -> #name<'_> {
            // Safety: the caller's promise.
            unsafe { #fb::size_prefixed_root_unchecked::<#name<'_>>(buf) }
        }

        #ident_const
        #extension

        /// Finishes the buffer with `root` (and the file identifier, if the schema has one).
        #[inline]
        pub fn #finish<'a, 'b, A: #fb::Allocator + 'a>(
            fbb: &'b mut #fb::FlatBufferBuilder<'a, A>,
            root: #fb::WIPOffset<#name<'a>>,
        ) {
            fbb.finish(root, #ident_arg);
        }

        /// Finishes the buffer with `root`, prefixed with its size.
        #[inline]
        pub fn #finish_sp<'a, 'b, A: #fb::Allocator + 'a>(
            fbb: &'b mut #fb::FlatBufferBuilder<'a, A>,
            root: #fb::WIPOffset<#name<'a>>,
        ) {
            fbb.finish_size_prefixed(root, #ident_arg);
        }
    }
}
