//! Where a call goes: method id → method descriptor → bus subject.
//!
//! The [`Registry`] holds the descriptors of the services the gateway routes to (generated code
//! provides them: `some_api::DESCRIPTOR`). It is built before the server starts and never changes
//! afterwards, so sessions read it without locks. Each method gets a [`Route`] with its bus
//! subjects made once ([`MethodRoute`]: shared bytes, so passing them along allocates nothing),
//! and a small index that the metrics and each session's permission cache use to find the
//! method's entries without hashing or allocating on the request path.

use std::collections::HashMap;

use gateway_bus::MethodRoute;
use gateway_core::hash::FastMap;
use gateway_core::{MethodDesc, ServiceDesc, TopicDesc};

/// Everything the gateway needs to forward a call of one method.
#[derive(Debug)]
pub struct Route {
    pub method: &'static MethodDesc,
    pub service: &'static ServiceDesc,
    /// The bus subjects: calls go to `rpc.<method name>`, their cancellations to
    /// `cancel.<service name>`.
    pub bus: MethodRoute,
    /// This route's position in [`Registry::routes`], and so in the metrics' tables.
    pub index: usize,
}

/// The services, methods and topics the gateway knows.
#[derive(Debug, Default)]
pub struct Registry {
    /// In registration order.
    services: Vec<&'static ServiceDesc>,
    routes: Vec<Route>,
    /// Method ids are FNV-1a hashes (or ids a service file pins), so they need no hashing of
    /// their own: looked up on every request, with a multiply.
    by_id: FastMap<u32, usize>,
    topics: HashMap<u32, &'static TopicDesc>,
}

/// Why a service cannot be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Two registered methods, or two registered topics, share an id.
    #[error("{kind} id {id:#010x} of `{method}` is already taken by `{existing}`")]
    Duplicate {
        /// `method` or `topic`.
        kind: &'static str,
        id: u32,
        method: &'static str,
        existing: &'static str,
    },
    /// A method whose name makes no valid bus subject (a hand-written descriptor; rpcgen's
    /// names always do).
    #[error("method `{method}` cannot be routed: {reason}")]
    InvalidName { method: &'static str, reason: String },
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds every method and topic of `service`.
    ///
    /// # Errors
    ///
    /// [`RegisterError::Duplicate`] for a method id already registered (by this or another
    /// service): rpcgen makes ids unique within one compilation, but two separately compiled
    /// services can still collide, and a gateway routing one id to two places would be wrong
    /// half the time. [`RegisterError::InvalidName`] for a name that makes no subject. Nothing
    /// is added then.
    pub fn register(&mut self, service: &'static ServiceDesc) -> Result<(), RegisterError> {
        for (i, method) in service.methods.iter().enumerate() {
            let earlier = self.by_id.get(&method.id).map(|&at| self.routes[at].method);
            let earlier =
                earlier.or_else(|| service.methods[..i].iter().find(|m| m.id == method.id));
            if let Some(existing) = earlier {
                return Err(RegisterError::Duplicate {
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
                return Err(RegisterError::Duplicate {
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
        let mut routes = Vec::with_capacity(service.methods.len());
        for method in service.methods {
            let bus = MethodRoute::new(service, method).map_err(|e| {
                RegisterError::InvalidName { method: method.name, reason: e.to_string() }
            })?;
            routes.push((method, bus));
        }
        for (method, bus) in routes {
            let index = self.routes.len();
            self.by_id.insert(method.id, index);
            self.routes.push(Route { method, service, bus, index });
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
        assert_eq!(two.bus.subject().as_str(), "rpc.t.A.two");
        assert_eq!(two.bus.cancel_subject().as_str(), "cancel.t.A");
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
