//! `.service` files: services, their methods, topics and errors, and their stable ids.
//!
//! Message names resolve from the service's namespace outward, like `.fbs` names. Every method,
//! topic and error gets a stable id, [`crate::ids::stable_id`] of `ns.Service.member`, unless
//! pinned with `(id: N)`; ids must be non-zero and unique within their kind across the whole
//! model, since the wire names members by id alone.

use std::collections::HashMap;

use crate::case::snake;
use crate::diag::Diagnostic;
use crate::ids::stable_id;
use crate::load::{Ast, ParsedFile};
use crate::model::{
    ErrorDef, History, LagPolicy, Method, QualifiedName, Service, StatusCode, Topic, TopicKey,
    TopicKeyType,
};
use crate::source::{FileId, Loc, Span};
use crate::syntax::ast::{
    Attribute, Member, MemberKind, ServiceDecl, ServiceItemKind, TypeExprKind,
};

use super::attrs::literal_text;
use super::scope::{edit_distance, scalar_keyword};
use super::types::written_type;
use super::{Checker, qualified};

/// What value a service attribute takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    Nothing,
    Integer,
    Name,
}

const METHOD_ATTRIBUTES: [(&str, Takes); 3] =
    [("idempotent", Takes::Nothing), ("writes", Takes::Nothing), ("id", Takes::Integer)];
const TOPIC_ATTRIBUTES: [(&str, Takes); 6] = [
    ("on_lag", Takes::Name),
    ("retain", Takes::Nothing),
    ("client_publish", Takes::Nothing),
    ("history", Takes::Integer),
    ("history_ttl", Takes::Name),
    ("id", Takes::Integer),
];

/// The most events a topic's history may keep (per key).
const MAX_HISTORY: i128 = 1_000_000;
const ERROR_ATTRIBUTES: [(&str, Takes); 1] = [("id", Takes::Integer)];

/// `500ms`, `30s`, `10m`, `2h`, `7d` in milliseconds; `None` for anything else or an overflow.
fn parse_duration_ms(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// The members seen so far of one kind, by id, to report collisions.
#[derive(Default)]
struct IdTable {
    kind: &'static str,
    seen: HashMap<u32, (String, Loc)>,
}

impl Checker<'_, '_> {
    pub(super) fn check_services(&mut self, files: &[ParsedFile]) -> Vec<Service> {
        let mut services = Vec::new();
        let mut names: HashMap<String, Loc> = HashMap::new();
        let mut ids = [
            IdTable { kind: "methods", ..Default::default() },
            IdTable { kind: "topics", ..Default::default() },
            IdTable { kind: "errors", ..Default::default() },
        ];
        for parsed in files {
            let Ast::Service(service_file) = &parsed.ast else {
                continue;
            };
            let mut namespace: Vec<String> = Vec::new();
            for item in &service_file.items {
                match &item.kind {
                    ServiceItemKind::Namespace(path) => {
                        namespace = path.parts.iter().map(|p| p.text.clone()).collect();
                    }
                    ServiceItemKind::Service(decl) => {
                        let name = qualified(&namespace, &decl.name.text);
                        let loc = Loc::new(parsed.file, decl.name.span);
                        if let Some(first) = names.insert(name.dotted(), loc) {
                            self.report(
                                Diagnostic::error(format!(
                                    "service `{}` is defined twice",
                                    name.dotted()
                                ))
                                .at(loc, "redefined here")
                                .with(first, "first defined here"),
                            );
                            continue;
                        }
                        services.push(self.check_service(parsed.file, name, decl, &mut ids));
                    }
                    ServiceItemKind::Include(_) => {}
                }
            }
        }
        services
    }

    fn check_service(
        &mut self,
        file: FileId,
        name: QualifiedName,
        decl: &ServiceDecl,
        ids: &mut [IdTable; 3],
    ) -> Service {
        self.service_attributes(file, &decl.attributes, &[], "a service");
        let mut service = Service {
            name,
            docs: decl.docs.clone(),
            loc: Loc::new(file, decl.name.span),
            methods: Vec::new(),
            topics: Vec::new(),
            errors: Vec::new(),
        };
        let namespace = service.name.namespace.clone();
        let mut members: HashMap<&str, Span> = HashMap::new();
        let mut stubs = StubNames::default();
        for member in &decl.members {
            let member_name = match &member.kind {
                MemberKind::Method { name, .. }
                | MemberKind::Topic { name, .. }
                | MemberKind::Error { name, .. } => name,
            };
            let loc = Loc::new(file, member_name.span);
            if let Some(first) = members.insert(&member_name.text, member_name.span) {
                self.report(
                    Diagnostic::error(format!(
                        "`{}` is defined twice in service `{}`",
                        member_name.text,
                        service.name.dotted()
                    ))
                    .at(loc, "redefined here")
                    .with(Loc::new(file, first), "first defined here"),
                );
                continue;
            }
            stubs.claim(self, &member.kind, loc);
            let full_name = format!("{}.{}", service.name.dotted(), member_name.text);
            match &member.kind {
                MemberKind::Method { name, request, response, .. } => {
                    self.service_attributes(
                        file,
                        &member.attributes,
                        &METHOD_ATTRIBUTES,
                        "a method",
                    );
                    let id = self.member_id(file, member, &full_name, loc, &mut ids[0]);
                    let request = self.resolve_table(file, &namespace, request, "a method request");
                    let response = match response {
                        Some(path) => self
                            .resolve_table(file, &namespace, path, "a method response")
                            .map(Some),
                        None => Some(None),
                    };
                    let (Some(request), Some(response)) = (request, response) else {
                        continue;
                    };
                    service.methods.push(Method {
                        name: name.text.clone(),
                        docs: member.docs.clone(),
                        loc,
                        id,
                        request,
                        response,
                        idempotent: has(&member.attributes, "idempotent"),
                        writes: has(&member.attributes, "writes"),
                    });
                }
                MemberKind::Topic { name, key, message } => {
                    self.service_attributes(file, &member.attributes, &TOPIC_ATTRIBUTES, "a topic");
                    let id = self.member_id(file, member, &full_name, loc, &mut ids[1]);
                    let on_lag = self.on_lag(file, &member.attributes);
                    let history = self.history(file, &member.attributes);
                    let key = match key {
                        Some(key) => self.topic_key(file, key).map(Some),
                        None => Some(None),
                    };
                    let message = self.resolve_table(file, &namespace, message, "a topic message");
                    let (Some(key), Some(message), Some(on_lag), Some(history)) =
                        (key, message, on_lag, history)
                    else {
                        continue;
                    };
                    service.topics.push(Topic {
                        name: name.text.clone(),
                        docs: member.docs.clone(),
                        loc,
                        id,
                        message,
                        key,
                        on_lag,
                        retain: has(&member.attributes, "retain"),
                        client_publish: has(&member.attributes, "client_publish"),
                        history,
                    });
                }
                MemberKind::Error { name, status } => {
                    self.service_attributes(
                        file,
                        &member.attributes,
                        &ERROR_ATTRIBUTES,
                        "an error",
                    );
                    let id = self.member_id(file, member, &full_name, loc, &mut ids[2]);
                    let Some(status) = self.status(file, status) else {
                        continue;
                    };
                    service.errors.push(ErrorDef {
                        name: name.text.clone(),
                        docs: member.docs.clone(),
                        loc,
                        id,
                        status,
                    });
                }
            }
        }
        service
    }

    /// Reports attributes not in `allowed`, and values missing or given where not expected.
    fn service_attributes(
        &mut self,
        file: FileId,
        attributes: &[Attribute],
        allowed: &[(&str, Takes)],
        place: &str,
    ) {
        for attribute in attributes {
            let name = attribute.name.text.as_str();
            let loc = Loc::new(file, attribute.span);
            let Some(&(_, takes)) = allowed.iter().find(|(n, _)| *n == name) else {
                let known: Vec<String> = allowed.iter().map(|(n, _)| format!("`{n}`")).collect();
                let mut diagnostic =
                    Diagnostic::error(format!("unknown attribute `{name}` on {place}"))
                        .at(Loc::new(file, attribute.name.span), "unknown attribute");
                diagnostic = if known.is_empty() {
                    diagnostic.note(format!("{place} takes no attributes"))
                } else {
                    diagnostic.note(format!("{place} takes {}", known.join(", ")))
                };
                self.report(diagnostic);
                continue;
            };
            match (takes, &attribute.value) {
                (Takes::Nothing, Some(_)) => self.report(
                    Diagnostic::error(format!("attribute `{name}` takes no value"))
                        .at(loc, "unexpected value")
                        .help(format!("write `({name})`")),
                ),
                (Takes::Integer | Takes::Name, None) => self.report(
                    Diagnostic::error(format!("attribute `{name}` needs a value"))
                        .at(loc, "no value given")
                        .help(format!("write `({name}: ...)`")),
                ),
                _ => {}
            }
        }
    }

    /// The member's id, pinned or derived from its name, registered in its kind's table.
    fn member_id(
        &mut self,
        file: FileId,
        member: &Member,
        full_name: &str,
        loc: Loc,
        table: &mut IdTable,
    ) -> u32 {
        let pinned =
            member.attributes.iter().find(|a| a.name.text == "id").and_then(|a| a.value.as_ref());
        let (id, id_loc) = match pinned {
            Some(value) => {
                let id_loc = Loc::new(file, value.span);
                match self.integer_literal(file, value) {
                    Some(n) if (1..=i128::from(u32::MAX)).contains(&n) => (n as u32, id_loc),
                    Some(n) => {
                        let mut diagnostic =
                            Diagnostic::error(format!("id {n} of `{full_name}` is out of range"))
                                .at(id_loc, "ids are 1 to 4294967295");
                        if n == 0 {
                            diagnostic = diagnostic.note("id 0 is reserved on the wire");
                        }
                        self.report(diagnostic);
                        return 0;
                    }
                    None => return 0,
                }
            }
            None => (stable_id(full_name), loc),
        };
        if id == 0 {
            self.report(
                Diagnostic::error(format!("`{full_name}` hashes to id 0, which is reserved"))
                    .at(loc, "id 0")
                    .help("pin another id with `(id: N)`"),
            );
            return 0;
        }
        if let Some((other, other_loc)) = table.seen.get(&id) {
            self.report(
                Diagnostic::error(format!(
                    "{} `{other}` and `{full_name}` have the same id {id}",
                    table.kind
                ))
                .at(id_loc, format!("`{full_name}` has id {id}"))
                .with(*other_loc, format!("`{other}` has id {id} too"))
                .help("pin one of them to another id with `(id: N)`"),
            );
        } else {
            table.seen.insert(id, (full_name.to_string(), id_loc));
        }
        id
    }

    fn on_lag(&mut self, file: FileId, attributes: &[Attribute]) -> Option<LagPolicy> {
        let Some(value) =
            attributes.iter().find(|a| a.name.text == "on_lag").and_then(|a| a.value.as_ref())
        else {
            return Some(LagPolicy::default());
        };
        let text = literal_text(&value.kind);
        match text.as_str() {
            "disconnect" => Some(LagPolicy::Disconnect),
            "drop_oldest" => Some(LagPolicy::DropOldest),
            "keep_latest" => Some(LagPolicy::KeepLatest),
            _ => {
                self.report(
                    Diagnostic::error(format!("unknown lag policy `{text}`"))
                        .at(Loc::new(file, value.span), "unknown policy")
                        .note("`on_lag` is one of `disconnect`, `drop_oldest`, `keep_latest`"),
                );
                None
            }
        }
    }

    /// `(history: N)` and `(history_ttl: "duration")`: `Some(None)` without history, `None`
    /// when either is invalid (reported).
    fn history(&mut self, file: FileId, attributes: &[Attribute]) -> Option<Option<History>> {
        let find = |name: &str| {
            attributes.iter().find(|a| a.name.text == name).and_then(|a| a.value.as_ref())
        };
        let (events, ttl) = (find("history"), find("history_ttl"));
        let Some(events) = events else {
            if let Some(ttl) = ttl {
                self.report(
                    Diagnostic::error("`history_ttl` without `history`")
                        .at(Loc::new(file, ttl.span), "an age limit of no history")
                        .help("give the number of events to keep: `(history: 100, history_ttl: \"10m\")`"),
                );
                return None;
            }
            return Some(None);
        };
        let count = self.integer_literal(file, events)?;
        if !(1..=MAX_HISTORY).contains(&count) {
            self.report(
                Diagnostic::error(format!("a history of {count} events is out of range"))
                    .at(Loc::new(file, events.span), format!("1 to {MAX_HISTORY} events")),
            );
            return None;
        }
        let ttl_ms = match ttl {
            None => 0,
            Some(ttl) => {
                let text = literal_text(&ttl.kind);
                match parse_duration_ms(&text) {
                    Some(0) => {
                        self.report(
                            Diagnostic::error(format!("an age limit of `{text}` keeps nothing"))
                                .at(Loc::new(file, ttl.span), "zero")
                                .help(
                                    "leave `history_ttl` out for no age limit of the topic's own",
                                ),
                        );
                        return None;
                    }
                    Some(ms) => ms,
                    None => {
                        self.report(
                            Diagnostic::error(format!("`{text}` is not a duration"))
                                .at(Loc::new(file, ttl.span), "not a duration")
                                .note("a duration is a number and a unit: `500ms`, `30s`, `10m`, `2h`, `7d`"),
                        );
                        return None;
                    }
                }
            }
        };
        Some(Some(History { events: count as u32, ttl_ms }))
    }

    /// A topic key type: `string` or an integer scalar keyword. Key types are not looked up
    /// among declarations (see `docs/service-files.md`), so any other name is simply invalid.
    fn topic_key(&mut self, file: FileId, key: &crate::syntax::ast::TopicKey) -> Option<TopicKey> {
        let name = key.name.text.clone();
        if let TypeExprKind::Named(path) = &key.ty.kind {
            if let [single] = path.parts.as_slice() {
                if single.text == "string" {
                    return Some(TopicKey { name, ty: TopicKeyType::String });
                }
                if let Some(scalar) = scalar_keyword(&single.text).filter(|s| s.is_integer()) {
                    return Some(TopicKey { name, ty: TopicKeyType::Int(scalar) });
                }
            }
        }
        let written = written_type(&key.ty);
        self.report(
            Diagnostic::error(format!(
                "a topic key must be `string` or an integer type, found `{written}`"
            ))
            .at(Loc::new(file, key.ty.span), "invalid key type"),
        );
        None
    }

    fn status(&mut self, file: FileId, status: &crate::syntax::ast::Ident) -> Option<StatusCode> {
        let loc = Loc::new(file, status.span);
        match StatusCode::from_name(&status.text) {
            Some(StatusCode::Ok) => {
                self.report(
                    Diagnostic::error("an error cannot have status `ok`")
                        .at(loc, "not an error status"),
                );
                None
            }
            Some(code) => Some(code),
            None => {
                let mut diagnostic =
                    Diagnostic::error(format!("unknown status code `{}`", status.text))
                        .at(loc, "unknown status");
                if let Some(close) = StatusCode::ALL
                    .iter()
                    .map(|c| c.name())
                    .filter(|n| edit_distance(n, &status.text) <= (status.text.len() / 3).max(1))
                    .min_by_key(|n| edit_distance(n, &status.text))
                {
                    diagnostic = diagnostic.help(format!("did you mean `{close}`?"));
                }
                self.report(diagnostic.note(
                    "status codes are gRPC's, in snake_case: `not_found`, `invalid_argument`...",
                ));
                None
            }
        }
    }
}

/// The methods of a service's generated client claimed so far, to report two members that would
/// generate the same one. Names are compared in snake_case, the form the Rust backend emits
/// (`docs/generated-rust.md`): a method `m` generates `m` and `m_with`; a topic `t` generates
/// `publish_t` and `subscribe_t`, and `subscribe_t_all` if it has a key.
#[derive(Default)]
struct StubNames {
    seen: HashMap<String, (String, Loc)>,
}

/// What every generated client defines itself, whatever the service.
const CLIENT_OWN_METHODS: [&str; 3] = ["new", "with_timeout", "transport"];

impl StubNames {
    fn claim(&mut self, checker: &mut Checker<'_, '_>, member: &MemberKind, loc: Loc) {
        let (what, generated) = match member {
            MemberKind::Method { name, .. } => {
                let snake = snake(&name.text);
                let with = format!("{snake}_with");
                (format!("method `{}`", name.text), vec![snake, with])
            }
            MemberKind::Topic { name, key, .. } => {
                let snake = snake(&name.text);
                let mut generated = vec![format!("publish_{snake}"), format!("subscribe_{snake}")];
                if key.is_some() {
                    generated.push(format!("subscribe_{snake}_all"));
                }
                (format!("topic `{}`", name.text), generated)
            }
            MemberKind::Error { .. } => return,
        };
        for stub in generated {
            if CLIENT_OWN_METHODS.contains(&stub.as_str()) {
                checker.report(
                    Diagnostic::error(format!(
                        "{what} generates a client method `{stub}`, which every client already has"
                    ))
                    .at(loc, format!("generates `{stub}`"))
                    .help("rename it"),
                );
            } else if let Some((first, first_loc)) = self.seen.get(&stub) {
                checker.report(
                    Diagnostic::error(format!(
                        "{first} and {what} both generate a client method `{stub}`"
                    ))
                    .at(loc, format!("generates `{stub}` too"))
                    .with(*first_loc, format!("generates `{stub}`"))
                    .help("rename one of them"),
                );
            } else {
                self.seen.insert(stub, (what.clone(), loc));
            }
        }
    }
}

fn has(attributes: &[Attribute], name: &str) -> bool {
    attributes.iter().any(|a| a.name.text == name)
}
