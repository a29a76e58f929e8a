//! Services from `.service` files, over the client runtime (`@rpcgen/client`), as
//! `docs/generated-ts.md` and the contract with the client package describe: for
//! `service SomeApi`,
//!
//! - `SomeApi`, the descriptor: the service's name, and its methods, topics and errors with
//!   their stable ids;
//! - `SomeApiClient`, one async method per RPC and `publishX`/`subscribeX`(`All`) per topic over a
//!   `Client`. Replies are verified before they are handed out: one that does not verify rejects
//!   with `RpcError` `DATA_LOSS`; an event that does not verify is skipped (`onDecodeError`). A
//!   `-> void` method is sent fire-and-forget (`Client.send`);
//! - `SomeApiErrorName` and `someApiError(e)`, which names the declared error an `RpcError`
//!   carries.

use super::Scope;
use super::code::{Code, join};
use super::names::{camel, ident, member, string_literal, type_ident, upper_camel};
use crate::model::{Scalar, Service, Topic, TopicKeyType};

/// Member names the generated client class does not give an RPC: `then` would make a client
/// look like a promise (`await` and `Promise.resolve` would call it).
const CLIENT_MEMBERS: &[&str] = &["then"];

pub(crate) fn emit_service(scope: &Scope, code: &mut Code, svc: &Service) {
    let model = scope.model();
    let dotted = svc.name.dotted();
    let raw = &svc.name.name;
    let desc = type_ident(raw);
    let client_class = type_ident(&format!("{raw}Client"));
    let error_name = type_ident(&format!("{raw}ErrorName"));
    let error_fn = ident(&format!("{}Error", camel(raw)));
    let what = |part: &str| format!("{part} of service `{dotted}`");
    scope.claim_top(&desc, what("the descriptor"), svc.loc);
    scope.claim_top(&client_class, what("the client class"), svc.loc);
    scope.claim_top(&error_name, what("the error names"), svc.loc);
    scope.claim_top(&error_fn, what("the error recogniser"), svc.loc);
    let v = scope.v();
    let client_ty = scope.client_type("Client");
    let call_options = scope.client_type("CallOptions");
    let subscription = scope.client_type("Subscription");
    let subscribe_options = scope.client_type("SubscribeOptions");

    // The descriptor.
    code.doc(&svc.docs);
    code.open(format!("export const {desc} = {{"));
    code.line(format!("name: {},", string_literal(&dotted)));
    code.open("methods: {");
    for m in &svc.methods {
        code.doc(&m.docs);
        code.line(format!(
            "{}: {{ id: {:#010x}, name: {}, idempotent: {} }},",
            member(&m.name, &[]),
            m.id,
            string_literal(&format!("{dotted}.{}", m.name)),
            m.idempotent
        ));
    }
    code.close("},");
    code.open("topics: {");
    for t in &svc.topics {
        code.doc(&t.docs);
        // A topic with history says so, so that the client knows a restore that could not
        // recover lost events.
        let history = t.history.map_or(String::new(), |h| {
            format!(", history: {{ events: {}, ttlMs: {} }}", h.events, h.ttl_ms)
        });
        code.line(format!(
            "{}: {{ id: {:#010x}, name: {}{history} }},",
            member(&t.name, &[]),
            t.id,
            string_literal(&format!("{dotted}.{}", t.name))
        ));
    }
    code.close("},");
    code.open("errors: {");
    for e in &svc.errors {
        code.doc(&e.docs);
        code.line(format!(
            "{}: {{ id: {:#010x}, name: {}, code: {} }},",
            member(&e.name, &[]),
            e.id,
            string_literal(&format!("{dotted}.{}", e.name)),
            e.status as u32
        ));
    }
    code.close("},");
    code.close("} as const;");

    // The client.
    let space = format!("client {dotted}");
    code.line("");
    code.doc1(format!(
        "Calls `{dotted}` through a `Client`: one method per RPC, publish and subscribe per topic."
    ));
    code.open(format!("export class {client_class} {{"));
    let client_param =
        format!("Pick<{client_ty}, \"call\" | \"send\" | \"publish\" | \"subscribe\">");
    code.line(format!("readonly #client: {client_param};"));
    code.line(format!("readonly #defaults: {call_options};"));
    code.line("");
    code.doc1(
        "Calls go through `client` (a `Client`, or anything with its `call`, `send`, `publish` and \
         `subscribe`); \
         `defaults` apply to every call, a call's own options taking precedence.",
    );
    code.open(format!("constructor(client: {client_param}, defaults: {call_options} = {{}}) {{"));
    code.line("this.#client = client;");
    code.line("this.#defaults = defaults;");
    code.close("}");
    for m in &svc.methods {
        let name = member(&camel(&m.name), CLIENT_MEMBERS);
        scope.claim(&space, &name, format!("method `{}`", m.name), m.loc);
        let request = scope.name(m.request, "T");
        let method = format!("{desc}.methods.{}", member(&m.name, &[]));
        code.line("");
        code.doc(&m.docs);
        // `call` for a reply, `send` (fire-and-forget, as the Rust client sends them) for `-> void`.
        // No object is made for the options of a call that gives none.
        let call = |what: &str| {
            format!(
                "this.#client.{what}({method}, request instanceof Uint8Array ? request : request.toBytes(), options === undefined ? this.#defaults : {{ ...this.#defaults, ...options }})"
            )
        };
        match m.response {
            Some(response) => {
                let reader = scope.name(response, "");
                let table = &model.decl(response).name;
                code.open(format!(
                    "async {name}(request: {request} | Uint8Array, options?: {call_options}): Promise<{reader}> {{"
                ));
                let what =
                    format!("the reply of {dotted}.{} is not a valid {}", m.name, table.dotted());
                // The reader class itself decodes: no function is made per call.
                code.line(format!(
                    "return $decode({}, {reader}, await {});",
                    string_literal(&what),
                    call("call")
                ));
            }
            None => {
                code.open(format!(
                    "async {name}(request: {request} | Uint8Array, options?: {call_options}): Promise<void> {{"
                ));
                code.line(format!("await {};", call("send")));
            }
        }
        code.close("}");
    }
    for t in &svc.topics {
        emit_topic(scope, code, &space, &desc, t, &call_options, &subscription, &subscribe_options);
    }
    code.close("}");

    // Errors.
    code.line("");
    code.doc1(format!("The application errors `{dotted}` declares."));
    if svc.errors.is_empty() {
        code.line(format!("export type {error_name} = never;"));
    } else {
        let names = svc.errors.iter().map(|e| string_literal(&e.name));
        code.line(format!("export type {error_name} = {};", join(names, " | ")));
    }
    code.line("");
    code.doc1("The declared error an `RpcError` carries (by its `errorId`), or `undefined` for any other error.");
    let param = if svc.errors.is_empty() { "_e" } else { "e" };
    code.open(format!("export function {error_fn}({param}: unknown): {error_name} | undefined {{"));
    if !svc.errors.is_empty() {
        code.open(format!("switch ({v}.errorId(e)) {{"));
        for e in &svc.errors {
            code.line(format!("case {:#010x}: return {};", e.id, string_literal(&e.name)));
        }
        code.line("default: return undefined;");
        code.close("}");
    } else {
        code.line("return undefined;");
    }
    code.close("}");
}

/// The module's reply decoder, once per module with services: verifies and reads a reply, and
/// turns a reply that does not verify into `DATA_LOSS` (the service's fault, not the caller's).
pub(crate) fn emit_decoder(scope: &Scope, code: &mut Code) {
    let v = scope.v();
    let rpc_error = scope.client_value("RpcError");
    let code_values = scope.client_value("Code");
    code.line("");
    code.doc1(
        "Verifies and reads a reply; one that does not verify is the service's fault: `DATA_LOSS`.",
    );
    code.open(
        "function $decode<T>(what: string, reader: { fromBytes(bytes: Uint8Array): T }, bytes: Uint8Array): T {",
    );
    code.open("try {");
    code.line("return reader.fromBytes(bytes);");
    code.reopen("} catch (error) {");
    code.line(format!(
        "throw new {rpc_error}({code_values}.DATA_LOSS, `${{what}}: ${{{v}.message(error)}}`, {{ retryable: false, cause: error }});"
    ));
    code.close("}");
    code.close("}");
}

/// `publishX` and `subscribeX` (and `subscribeXAll` for a keyed topic).
#[allow(clippy::too_many_arguments)]
fn emit_topic(
    scope: &Scope,
    code: &mut Code,
    space: &str,
    desc: &str,
    t: &Topic,
    call_options: &str,
    subscription: &str,
    subscribe_options: &str,
) {
    let v = scope.v();
    let upper = upper_camel(&t.name);
    let owned = scope.name(t.message, "T");
    let reader = scope.name(t.message, "");
    let topic = format!("{desc}.topics.{}", member(&t.name, &[]));
    let publish = format!("publish{upper}");
    let subscribe = format!("subscribe{upper}");
    scope.claim(space, &publish, format!("topic `{}`", t.name), t.loc);
    scope.claim(space, &subscribe, format!("topic `{}`", t.name), t.loc);
    let bytes = "message instanceof Uint8Array ? message : message.toBytes()";
    let sub_options = format!("Omit<{subscribe_options}<{reader}>, \"decode\">");
    let decode = format!(
        "{{ ...this.#defaults, ...options, decode: (payload) => {reader}.fromBytes(payload) }}"
    );
    let lag = match t.on_lag {
        crate::model::LagPolicy::Disconnect => "a subscriber that falls behind is disconnected",
        crate::model::LagPolicy::DropOldest => {
            "a subscriber that falls behind loses the oldest events (counted in `missed`)"
        }
        crate::model::LagPolicy::KeepLatest => {
            "a subscriber that falls behind gets only each key's newest event"
        }
    };
    let retain =
        if t.retain { "; a new subscription first receives the last event (per key)" } else { "" };
    let sub_doc = format!(
        "Subscribes; resolves once the gateway confirms. On lag, {lag}{retain}. Events that do not verify are skipped (`onDecodeError`)."
    );
    match &t.key {
        None => {
            code.line("");
            code.doc(&t.docs);
            code.open(format!(
                "async {publish}(message: {owned} | Uint8Array, options?: {call_options}): Promise<void> {{"
            ));
            code.line(format!("return this.#client.publish({topic}, \"\", {bytes}, {{ ...this.#defaults, ...options }});"));
            code.close("}");
            code.line("");
            code.doc1(&sub_doc);
            code.open(format!(
                "async {subscribe}(options?: {sub_options}): Promise<{subscription}<{reader}>> {{"
            ));
            code.line(format!(
                "return this.#client.subscribe({topic}, {{ unkeyed: true }}, {decode});"
            ));
            code.close("}");
        }
        Some(key) => {
            let mut param = ident(&camel(&key.name));
            if param == "message" || param == "options" {
                param = "key".to_owned();
            }
            let (key_ty, key_text) = match key.ty {
                TopicKeyType::String => ("string".to_owned(), param.clone()),
                TopicKeyType::Int(s) => {
                    let ty = if matches!(s, Scalar::I64 | Scalar::U64) {
                        "bigint | number"
                    } else {
                        "number | bigint"
                    };
                    (ty.to_owned(), format!("{v}.intKey({param}, {})", string_literal(s.keyword())))
                }
            };
            let all = format!("subscribe{upper}All");
            scope.claim(space, &all, format!("topic `{}`", t.name), t.loc);
            code.line("");
            code.doc(&t.docs);
            code.open(format!(
                "async {publish}({param}: {key_ty}, message: {owned} | Uint8Array, options?: {call_options}): Promise<void> {{"
            ));
            code.line(format!(
                "return this.#client.publish({topic}, {key_text}, {bytes}, {{ ...this.#defaults, ...options }});"
            ));
            code.close("}");
            code.line("");
            code.doc1(format!("One key's events. {sub_doc}"));
            code.open(format!(
                "async {subscribe}({param}: {key_ty}, options?: {sub_options}): Promise<{subscription}<{reader}>> {{"
            ));
            code.line(format!(
                "return this.#client.subscribe({topic}, {{ key: {key_text} }}, {decode});"
            ));
            code.close("}");
            code.line("");
            code.doc1(format!("Every key's events. {sub_doc}"));
            code.open(format!(
                "async {all}(options?: {sub_options}): Promise<{subscription}<{reader}>> {{"
            ));
            code.line(format!(
                "return this.#client.subscribe({topic}, {{ allKeys: true }}, {decode});"
            ));
            code.close("}");
        }
    }
}
