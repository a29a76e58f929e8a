//! Services from `.service` files: id constants, a descriptor, a server trait with a dispatcher,
//! a typed client, and the service's error enum.
//!
//! For `service SomeApi` in namespace `examples` this emits `examples::some_api`:
//!
//! - `NAME`, and modules `method`, `topic`, `error` with one id constant per member;
//! - `DESCRIPTOR: ServiceDesc`, what the gateway routes and applies policies by;
//! - trait `SomeApi`, one async method per RPC taking a `CallContext` and the verified request;
//! - `SomeApiServer<S>`, the `Dispatch` implementation that serves a `SomeApi` on a bus;
//! - `SomeApiClient<T>`, typed calls over any `Transport`, typed publish and subscribe over any
//!   `Topics`;
//! - `SomeApiError`, the declared application errors, convertible to and from `Status`.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::docs;
use super::literal::prim;
use super::names::{decl_path, ident, screaming, snake};
use crate::model::{LagPolicy, Model, Service, StatusCode, Topic, TopicKeyType};

/// Emits the module of one service, to be placed in the module of its namespace.
pub(crate) fn emit_service(model: &Model, service: &Service, rt: &TokenStream) -> TokenStream {
    let module = ident(&snake(&service.name.name));
    let docs = docs(&service.docs);
    let body = [
        constants(service),
        descriptor(model, service, rt),
        server(model, service, rt),
        client(model, service, rt),
        errors(service, rt),
    ];
    quote! {
        #docs
        pub mod #module {
            #(#body)*
        }
    }
}

/// A path to the owned type of table `id`, as seen from inside the service's module.
fn owned(model: &Model, service: &Service, id: crate::model::DeclId) -> TokenStream {
    // The service module sits one level below its namespace's module; naming that extra level
    // makes `decl_path` climb out of it.
    let mut from = service.name.namespace.clone();
    from.push(snake(&service.name.name));
    decl_path(model, &from, id, "T")
}

fn const_name(name: &str) -> proc_macro2::Ident {
    format_ident!("{}", screaming(name))
}

fn qualified(service: &Service, member: &str) -> String {
    format!("{}.{member}", service.name.dotted())
}

fn constants(service: &Service) -> TokenStream {
    let name = service.name.dotted();
    let methods = service.methods.iter().map(|m| {
        let (konst, id, docs) = (const_name(&m.name), Literal::u32_suffixed(m.id), &m.docs);
        let doc = format!(" `{}`{}", qualified(service, &m.name), first_line(docs));
        quote! { #[doc = #doc] pub const #konst: u32 = #id; }
    });
    let topics = service.topics.iter().map(|t| {
        let (konst, id) = (const_name(&t.name), Literal::u32_suffixed(t.id));
        let doc = format!(" `{}`{}", qualified(service, &t.name), first_line(&t.docs));
        quote! { #[doc = #doc] pub const #konst: u32 = #id; }
    });
    let errors = service.errors.iter().map(|e| {
        let (konst, id) = (const_name(&e.name), Literal::u32_suffixed(e.id));
        let doc = format!(" `{}`{}", qualified(service, &e.name), first_line(&e.docs));
        quote! { #[doc = #doc] pub const #konst: u32 = #id; }
    });
    quote! {
        /// The service's fully qualified name.
        pub const NAME: &str = #name;
        /// Stable method ids.
        pub mod method { #(#methods)* }
        /// Stable topic ids.
        pub mod topic { #(#topics)* }
        /// Stable application error ids.
        pub mod error { #(#errors)* }
    }
}

fn first_line(docs: &[String]) -> String {
    docs.first().map(|line| format!(": {}", line.trim())).unwrap_or_default()
}

fn descriptor(model: &Model, service: &Service, rt: &TokenStream) -> TokenStream {
    let table_name = |id| model.decl(id).name.dotted();
    let methods = service.methods.iter().map(|m| {
        let (konst, name) = (const_name(&m.name), qualified(service, &m.name));
        let request = table_name(m.request);
        let response = match m.response {
            Some(r) => {
                let r = table_name(r);
                quote!(::core::option::Option::Some(#r))
            }
            None => quote!(::core::option::Option::None),
        };
        let (idempotent, writes) = (m.idempotent, m.writes);
        quote! {
            #rt::MethodDesc {
                id: method::#konst, name: #name, request: #request, response: #response,
                idempotent: #idempotent, writes: #writes,
            }
        }
    });
    let topics = service.topics.iter().map(|t| {
        let (konst, name) = (const_name(&t.name), qualified(service, &t.name));
        let message = table_name(t.message);
        let key = match &t.key {
            Some(key) => {
                let key = &key.name;
                quote!(::core::option::Option::Some(#key))
            }
            None => quote!(::core::option::Option::None),
        };
        let on_lag = match t.on_lag {
            LagPolicy::Disconnect => quote!(Disconnect),
            LagPolicy::DropOldest => quote!(DropOldest),
            LagPolicy::KeepLatest => quote!(KeepLatest),
        };
        let (retain, client_publish) = (t.retain, t.client_publish);
        let history = match t.history {
            Some(history) => {
                let events = Literal::u32_suffixed(history.events);
                let ttl_ms = Literal::u64_suffixed(history.ttl_ms);
                quote!(::core::option::Option::Some(#rt::HistoryDesc { events: #events, ttl_ms: #ttl_ms }))
            }
            None => quote!(::core::option::Option::None),
        };
        quote! {
            #rt::TopicDesc {
                id: topic::#konst, name: #name, message: #message, key: #key,
                on_lag: #rt::LagPolicy::#on_lag, retain: #retain, client_publish: #client_publish,
                history: #history,
            }
        }
    });
    let errors = service.errors.iter().map(|e| {
        let (id, name, code) =
            (Literal::u32_suffixed(e.id), qualified(service, &e.name), code(e.status));
        quote! { #rt::ErrorDesc { id: #id, name: #name, code: #rt::Code::#code } }
    });
    quote! {
        /// What the service offers: the gateway routes and applies policies by this.
        pub static DESCRIPTOR: #rt::ServiceDesc = #rt::ServiceDesc {
            name: NAME,
            methods: &[#(#methods),*],
            topics: &[#(#topics),*],
            errors: &[#(#errors),*],
        };
    }
}

fn code(status: StatusCode) -> proc_macro2::Ident {
    let camel: String = status
        .name()
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect::<String>()
        })
        .collect();
    format_ident!("{}", camel)
}

fn server(model: &Model, service: &Service, rt: &TokenStream) -> TokenStream {
    let trait_name = ident(&service.name.name);
    let server_name = format_ident!("{}Server", service.name.name);
    let trait_docs = docs(&service.docs);
    let mut trait_methods = Vec::new();
    let mut arms = Vec::new();
    for m in &service.methods {
        let (func, konst) = (ident(&snake(&m.name)), const_name(&m.name));
        let name = qualified(service, &m.name);
        let docs = docs(&m.docs);
        let request = owned(model, service, m.request);
        match m.response {
            Some(response) => {
                let response = owned(model, service, response);
                trait_methods.push(quote! {
                    #docs
                    fn #func(
                        &self,
                        ctx: #rt::CallContext,
                        request: #rt::Message<#request>,
                    ) -> impl ::core::future::Future<
                        Output = ::core::result::Result<#rt::Message<#response>, #rt::Status>,
                    > + ::core::marker::Send;
                });
                arms.push(quote! {
                    method::#konst => ::std::boxed::Box::pin(async move {
                        let request = #rt::codegen::decode_request::<#request>(request, #name)?;
                        let reply = service.#func(ctx, request).await?;
                        ::core::result::Result::Ok(reply.into_bytes())
                    }),
                });
            }
            None => {
                trait_methods.push(quote! {
                    #docs
                    fn #func(
                        &self,
                        ctx: #rt::CallContext,
                        request: #rt::Message<#request>,
                    ) -> impl ::core::future::Future<
                        Output = ::core::result::Result<(), #rt::Status>,
                    > + ::core::marker::Send;
                });
                arms.push(quote! {
                    method::#konst => ::std::boxed::Box::pin(async move {
                        let request = #rt::codegen::decode_request::<#request>(request, #name)?;
                        service.#func(ctx, request).await?;
                        ::core::result::Result::Ok(#rt::bytes::Bytes::new())
                    }),
                });
            }
        }
    }
    let server_doc = format!(
        " Serves a [`{trait_name}`] implementation: decodes and verifies requests, calls it, encodes replies."
    );
    quote! {
        #trait_docs
        pub trait #trait_name: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#trait_methods)*
        }

        #[doc = #server_doc]
        #[derive(Debug)]
        pub struct #server_name<S> {
            service: ::std::sync::Arc<S>,
        }

        impl<S: #trait_name> #server_name<S> {
            pub fn new(service: S) -> Self {
                Self { service: ::std::sync::Arc::new(service) }
            }

            /// Serves an implementation that is shared with other code.
            pub fn from_arc(service: ::std::sync::Arc<S>) -> Self {
                Self { service }
            }
        }

        impl<S> ::core::clone::Clone for #server_name<S> {
            fn clone(&self) -> Self {
                Self { service: ::std::sync::Arc::clone(&self.service) }
            }
        }

        impl<S: #trait_name> #rt::Dispatch for #server_name<S> {
            fn descriptor(&self) -> &'static #rt::ServiceDesc {
                &DESCRIPTOR
            }

            fn dispatch(
                &self,
                ctx: #rt::CallContext,
                request: #rt::bytes::Bytes,
            ) -> #rt::BoxFuture<'static, ::core::result::Result<#rt::bytes::Bytes, #rt::Status>> {
                let service = ::std::sync::Arc::clone(&self.service);
                match ctx.method_id() {
                    #(#arms)*
                    other => ::std::boxed::Box::pin(async move {
                        ::core::result::Result::Err(#rt::codegen::unknown_method(NAME, other))
                    }),
                }
            }
        }
    }
}

fn client(model: &Model, service: &Service, rt: &TokenStream) -> TokenStream {
    let client_name = format_ident!("{}Client", service.name.name);
    let methods = service.methods.iter().enumerate().map(|(index, m)| {
        let func = ident(&snake(&m.name));
        let func_with = format_ident!("{}_with", snake(&m.name));
        let name = qualified(service, &m.name);
        let docs = docs(&m.docs);
        let request = owned(model, service, m.request);
        let index = Literal::usize_unsuffixed(index);
        let with_doc = format!(" [`Self::{}`] with explicit call options.", snake(&m.name));
        match m.response {
            Some(response) => {
                let response = owned(model, service, response);
                quote! {
                    #docs
                    pub async fn #func(
                        &self,
                        request: impl ::core::convert::Into<#rt::Message<#request>>,
                    ) -> ::core::result::Result<#rt::Message<#response>, #rt::Status> {
                        self.#func_with(request, self.options.clone()).await
                    }

                    #[doc = #with_doc]
                    pub async fn #func_with(
                        &self,
                        request: impl ::core::convert::Into<#rt::Message<#request>>,
                        options: #rt::CallOptions,
                    ) -> ::core::result::Result<#rt::Message<#response>, #rt::Status> {
                        let request = request.into().into_bytes();
                        let reply = self.transport.unary(&DESCRIPTOR.methods[#index], request, options).await?;
                        #rt::codegen::decode_reply::<#response>(reply, #name)
                    }
                }
            }
            None => quote! {
                #docs
                pub async fn #func(
                    &self,
                    request: impl ::core::convert::Into<#rt::Message<#request>>,
                ) -> ::core::result::Result<(), #rt::Status> {
                    self.#func_with(request, self.options.clone()).await
                }

                #[doc = #with_doc]
                pub async fn #func_with(
                    &self,
                    request: impl ::core::convert::Into<#rt::Message<#request>>,
                    options: #rt::CallOptions,
                ) -> ::core::result::Result<(), #rt::Status> {
                    let request = request.into().into_bytes();
                    self.transport.fire_and_forget(&DESCRIPTOR.methods[#index], request, options).await
                }
            },
        }
    });
    let doc = if service.topics.is_empty() {
        format!(" Typed calls to `{}` over any `Transport`.", service.name.dotted())
    } else {
        format!(
            " Typed calls to `{}` over any `Transport`; typed publish and subscribe over any \
             `Topics`.",
            service.name.dotted()
        )
    };
    let topics = topics(model, service, rt);
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug)]
        pub struct #client_name<T> {
            transport: T,
            options: #rt::CallOptions,
        }

        impl<T> #client_name<T> {
            pub fn new(transport: T) -> Self {
                Self { transport, options: ::core::default::Default::default() }
            }

            /// The transport (or topics implementation) the client works through.
            pub fn transport(&self) -> &T {
                &self.transport
            }
        }

        impl<T: #rt::Transport> #client_name<T> {
            /// Gives every call made through this client `timeout`, unless the call says
            /// otherwise.
            pub fn with_timeout(mut self, timeout: ::core::time::Duration) -> Self {
                self.options.timeout = ::core::option::Option::Some(timeout);
                self
            }

            #(#methods)*
        }

        #topics
    }
}

/// The typed publish and subscribe methods of the client, one set per topic, in an impl block of
/// their own: a type may implement `Transport`, `Topics` or both.
fn topics(model: &Model, service: &Service, rt: &TokenStream) -> TokenStream {
    if service.topics.is_empty() {
        return TokenStream::new();
    }
    let client_name = format_ident!("{}Client", service.name.name);
    let methods = service.topics.iter().enumerate().map(|(index, t)| {
        let snake_name = snake(&t.name);
        let publish = format_ident!("publish_{}", snake_name);
        let subscribe = format_ident!("subscribe_{}", snake_name);
        let name = qualified(service, &t.name);
        let message = owned(model, service, t.message);
        let index = Literal::usize_unsuffixed(index);
        let topic_docs = docs(&t.docs);
        let gap = if t.docs.is_empty() { quote!() } else { quote!(#[doc = ""]) };
        let publish_doc = publish_doc(t, &name);
        let subscription = quote! {
            ::core::result::Result<
                #rt::Subscription<#message, <T as #rt::Topics>::Subscription>,
                #rt::Status,
            >
        };
        let Some(key) = &t.key else {
            let subscribe_doc = format!(" Subscribes to `{name}`.");
            let lag = lag_docs(t);
            return quote! {
                #topic_docs
                #gap
                #(#[doc = #publish_doc])*
                pub async fn #publish(
                    &self,
                    message: impl ::core::convert::Into<#rt::Message<#message>>,
                ) -> ::core::result::Result<(), #rt::Status> {
                    let message = message.into().into_bytes();
                    self.transport.publish(&DESCRIPTOR.topics[#index], "", message).await
                }

                #topic_docs
                #gap
                #[doc = #subscribe_doc]
                #(#[doc = #lag])*
                pub async fn #subscribe(&self) -> #subscription {
                    let raw = self
                        .transport
                        .subscribe(&DESCRIPTOR.topics[#index], #rt::Selector::AllKeys)
                        .await?;
                    ::core::result::Result::Ok(#rt::Subscription::new(raw))
                }
            };
        };
        let subscribe_all = format_ident!("subscribe_{}_all", snake_name);
        // The key parameter is named after the key, unless that would meet `message`.
        let key_snake = snake(&key.name);
        let key_param =
            if key_snake == "message" { format_ident!("key") } else { ident(&key_snake) };
        let (key_type, key_text) = match key.ty {
            TopicKeyType::String => (quote!(&str), quote!(#key_param)),
            TopicKeyType::Int(scalar) => {
                let prim = prim(scalar);
                (quote!(#prim), quote!(&::std::string::ToString::to_string(&#key_param)))
            }
        };
        let key_owned = match key.ty {
            TopicKeyType::String => quote!(::std::borrow::ToOwned::to_owned(#key_param)),
            TopicKeyType::Int(_) => quote!(::std::string::ToString::to_string(&#key_param)),
        };
        let subscribe_doc =
            format!(" Subscribes to the events of `{name}` for one `{}`.", key.name);
        let subscribe_all_doc =
            format!(" Subscribes to the events of `{name}` for every `{}`.", key.name);
        let lag = lag_docs(t);
        quote! {
            #topic_docs
            #gap
            #(#[doc = #publish_doc])*
            pub async fn #publish(
                &self,
                #key_param: #key_type,
                message: impl ::core::convert::Into<#rt::Message<#message>>,
            ) -> ::core::result::Result<(), #rt::Status> {
                let message = message.into().into_bytes();
                self.transport.publish(&DESCRIPTOR.topics[#index], #key_text, message).await
            }

            #topic_docs
            #gap
            #[doc = #subscribe_doc]
            #(#[doc = #lag])*
            pub async fn #subscribe(&self, #key_param: #key_type) -> #subscription {
                let selector = #rt::Selector::Key(#key_owned);
                let raw = self.transport.subscribe(&DESCRIPTOR.topics[#index], selector).await?;
                ::core::result::Result::Ok(#rt::Subscription::new(raw))
            }

            #topic_docs
            #gap
            #[doc = #subscribe_all_doc]
            #(#[doc = #lag])*
            pub async fn #subscribe_all(&self) -> #subscription {
                let raw = self
                    .transport
                    .subscribe(&DESCRIPTOR.topics[#index], #rt::Selector::AllKeys)
                    .await?;
                ::core::result::Result::Ok(#rt::Subscription::new(raw))
            }
        }
    });
    quote! {
        impl<T: #rt::Topics> #client_name<T> {
            #(#methods)*
        }
    }
}

/// What a publisher is told: when the call resolves, and who may publish.
fn publish_doc(topic: &Topic, name: &str) -> Vec<String> {
    let mut lines = vec![
        format!(" Publishes an event of `{name}`."),
        " Resolves once the event is handed on, which says nothing about who receives it.".into(),
    ];
    if !topic.client_publish {
        lines.push(String::new());
        lines.push(
            " Only services publish this topic (it is not `client_publish`): a gateway".into(),
        );
        lines.push(" refuses it from clients.".into());
    }
    lines
}

/// What a subscriber is told about the topic's `on_lag` and `retain`.
fn lag_docs(topic: &Topic) -> Vec<String> {
    let of_each_key = if topic.key.is_some() { " of each key" } else { "" };
    let mut lines = vec![String::new()];
    match topic.on_lag {
        LagPolicy::Disconnect => {
            lines.push(" A subscriber that falls behind is disconnected by the gateway".into());
            lines.push(" (`on_lag: disconnect`): events are never skipped silently.".into());
        }
        LagPolicy::DropOldest => {
            lines.push(
                " When a subscriber falls behind, the gateway drops its oldest queued".into(),
            );
            lines.push(" events (`on_lag: drop_oldest`); `Event::missed()` says how many.".into());
        }
        LagPolicy::KeepLatest => {
            lines.push(format!(
                " When a subscriber falls behind, the gateway keeps only the newest queued event{of_each_key}"
            ));
            lines.push(
                " (`on_lag: keep_latest`): events in between are skipped, never the latest.".into(),
            );
        }
    }
    if topic.retain {
        lines.push(format!(
            " The subscription first receives the last event published{of_each_key}, if any (`retain`)."
        ));
    }
    lines
}

fn errors(service: &Service, rt: &TokenStream) -> TokenStream {
    let enum_name = format_ident!("{}Error", service.name.name);
    let variants: Vec<_> = service.errors.iter().map(|e| ident(&e.name)).collect();
    let docs = service.errors.iter().map(|e| docs(&e.docs));
    let consts: Vec<_> = service.errors.iter().map(|e| const_name(&e.name)).collect();
    let codes: Vec<_> = service.errors.iter().map(|e| code(e.status)).collect();
    let doc = format!(" The application errors `{}` declares.", service.name.dotted());
    let from_id = if variants.is_empty() {
        quote! { let _ = id; ::core::option::Option::None }
    } else {
        quote! {
            match id {
                #(error::#consts => ::core::option::Option::Some(Self::#variants),)*
                _ => ::core::option::Option::None,
            }
        }
    };
    let (id_body, code_body) = if variants.is_empty() {
        (quote! { match self {} }, quote! { match self {} })
    } else {
        (
            quote! { match self { #(Self::#variants => error::#consts,)* } },
            quote! { match self { #(Self::#variants => #rt::Code::#codes,)* } },
        )
    };
    quote! {
        #[doc = #doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum #enum_name {
            #(#docs #variants,)*
        }

        impl #enum_name {
            pub const ALL: &'static [Self] = &[#(Self::#variants),*];

            /// The stable id that travels on the wire.
            pub const fn id(self) -> u32 {
                #id_body
            }

            /// The status code the error travels under.
            pub const fn code(self) -> #rt::Code {
                #code_body
            }

            pub fn from_id(id: u32) -> ::core::option::Option<Self> {
                #from_id
            }

            /// The error a failed call carries, if it is one of these.
            pub fn of(status: &#rt::Status) -> ::core::option::Option<Self> {
                Self::from_id(status.error_id())
            }

            /// A status carrying this error, for a service to return.
            pub fn status(
                self,
                message: impl ::core::convert::Into<::std::borrow::Cow<'static, str>>,
            ) -> #rt::Status {
                #rt::Status::new(self.code(), message).with_error_id(self.id())
            }
        }
    }
}
