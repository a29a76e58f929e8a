//! Services from `.service` files. Written by the lead; a stub until then.

use proc_macro2::TokenStream;

use crate::model::{Model, Service};

/// The code for one service, placed in the module of the service's namespace.
pub(crate) fn emit_service(model: &Model, service: &Service) -> TokenStream {
    let _ = (model, service);
    TokenStream::new()
}
