//! Where a call goes: method id → method descriptor → bus subject.
//!
//! The [`Registry`] holds the descriptors of the services the gateway routes to (generated code
//! provides them: `some_api::DESCRIPTOR`). It is built before the server starts and never changes
//! afterwards, so sessions read it without locks. Each method gets a [`Route`] with its bus
//! subjects formatted once, and a small index that the metrics use to find the method's counters
//! without hashing or allocating on the request path.

use std::collections::HashMap;
use std::sync::Arc;

use gateway_bus::contract;
use gateway_core::{MethodDesc, ServiceDesc, TopicDesc};

/// Everything the gateway needs to forward a call of one method.
#[derive(Debug)]
pub struct Route {
    pub method: &'static MethodDesc,
    pub service: &'static ServiceDesc,
    /// The bus subject calls are sent to (`rpc.<method name>`).
    pub subject: String,
    /// The subject cancellations of this service's calls go to (`cancel.<service name>`).
    pub cancel_subject: Arc<str>,
    /// This route's position in [`Registry::routes`], and so in the metrics' tables.
    pub index: usize,
}

/// The services, methods and topics the gateway knows.
#[derive(Debug, Default)]
pub struct Registry {
    /// In registration order.
    services: Vec<&'static ServiceDesc>,
    routes: Vec<Route>,
    by_id: HashMap<u32, usize>,
    topics: HashMap<u32, &'static TopicDesc>,
}

/// Two registered methods, or two registered topics, share an id.
#[derive(Debug, thiserror::Error)]
#[error("{kind} id {id:#010x} of `{method}` is already taken by `{existing}`")]
pub struct DuplicateMethod {
    /// `method` or `topic`.
    pub kind: &'static str,
    pub id: u32,
    pub method: &'static str,
    pub existing: &'static str,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds every method and topic of `service`.
    ///
    /// # Errors
    ///
    /// A method id already registered (by this or another service): rpcgen makes ids unique
    /// within one compilation, but two separately compiled services can still collide, and a
    /// gateway routing one id to two places would be wrong half the time. Nothing is added then.
    pub fn register(&mut self, service: &'static ServiceDesc) -> Result<(), DuplicateMethod> {
        for (i, method) in service.methods.iter().enumerate() {
            let earlier = self.by_id.get(&method.id).map(|&at| self.routes[at].method);
            let earlier =
                earlier.or_else(|| service.methods[..i].iter().find(|m| m.id == method.id));
            if let Some(existing) = earlier {
                return Err(DuplicateMethod {
                    kind: "method",
                    id: method.id,
                    method: method.name,
                    existing: existing.name,
                });
            }
        }
        for (i, topic) in service.topics.iter().enumerate() {
            let earlier = self.topics.get(&topic.id).copied();
            let earlier = earlier.or_else(|| service.topics[..i].iter().find(|t| t.id == topic.id));
            if let Some(existing) = earlier {
                return Err(DuplicateMethod {
                    kind: "topic",
                    id: topic.id,
                    method: topic.name,
                    existing: existing.name,
                });
            }
        }
        self.topics.extend(service.topics.iter().map(|t| (t.id, t)));
        if !self.services.iter().any(|s| s.name == service.name) {
            self.services.push(service);
        }
        let cancel_subject: Arc<str> = contract::cancel_subject(service.name).into();
        for method in service.methods {
            let index = self.routes.len();
            self.by_id.insert(method.id, index);
            self.routes.push(Route {
                method,
                service,
                subject: contract::method_subject(method),
                cancel_subject: cancel_subject.clone(),
                index,
            });
        }
        Ok(())
    }

    /// The route of method `id`, if a registered service has it.
    pub fn route(&self, id: u32) -> Option<&Route> {
        self.by_id.get(&id).map(|&at| &self.routes[at])
    }

    /// Topic `id`, if a registered service has it.
    pub fn topic(&self, id: u32) -> Option<&'static TopicDesc> {
        self.topics.get(&id).copied()
    }

    /// Every registered topic, in no particular order.
    pub fn topics(&self) -> impl Iterator<Item = &'static TopicDesc> + '_ {
        self.topics.values().copied()
    }

    /// The registered service named `name` (fully qualified).
    pub fn service(&self, name: &str) -> Option<&'static ServiceDesc> {
        self.services.iter().copied().find(|s| s.name == name)
    }

    /// Every registered service, in registration order.
    pub fn services(&self) -> &[&'static ServiceDesc] {
        &self.services
    }

    /// Every route, in registration order (a route's `index` is its position here).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(id: u32, name: &'static str) -> MethodDesc {
        MethodDesc {
            id,
            name,
            request: "t.Req",
            response: Some("t.Rep"),
            idempotent: false,
            writes: false,
        }
    }

    static A: ServiceDesc = ServiceDesc {
        name: "t.A",
        methods: &[
            MethodDesc {
                id: 1,
                name: "t.A.one",
                request: "t.Req",
                response: Some("t.Rep"),
                idempotent: false,
                writes: false,
            },
            MethodDesc {
                id: 2,
                name: "t.A.two",
                request: "t.Req",
                response: None,
                idempotent: false,
                writes: false,
            },
        ],
        topics: &[],
        errors: &[],
    };

    #[test]
    fn routes_carry_subjects_and_their_index() {
        let mut registry = Registry::new();
        registry.register(&A).unwrap();
        let two = registry.route(2).unwrap();
        assert_eq!(two.subject, "rpc.t.A.two");
        assert_eq!(&*two.cancel_subject, "cancel.t.A");
        assert_eq!(two.index, 1);
        assert!(std::ptr::eq(&registry.routes()[1], two));
        assert!(registry.route(3).is_none());
        assert!(std::ptr::eq(registry.service("t.A").unwrap(), &A));
        assert!(registry.service("t").is_none());
    }

    #[test]
    fn a_taken_id_is_refused_and_nothing_is_added() {
        static B: std::sync::LazyLock<&'static ServiceDesc> = std::sync::LazyLock::new(|| {
            let methods = Box::leak(Box::new([method(7, "t.B.seven"), method(1, "t.B.one")]));
            Box::leak(Box::new(ServiceDesc { name: "t.B", methods, topics: &[], errors: &[] }))
        });
        let mut registry = Registry::new();
        registry.register(&A).unwrap();
        let err = registry.register(&B).unwrap_err();
        assert_eq!(
            err.to_string(),
            "method id 0x00000001 of `t.B.one` is already taken by `t.A.one`"
        );
        assert!(registry.route(7).is_none());
        assert_eq!(registry.routes().len(), 2);
        assert!(registry.service("t.B").is_none(), "a refused service is not known");
        assert_eq!(registry.services().len(), 1);
    }
}
