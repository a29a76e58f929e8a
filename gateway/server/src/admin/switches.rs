//! `/switches`: reading and setting the operator switches (`gateway_bus::switches`).
//!
//! - `GET /switches`: every service's switches as one JSON object by service name: each service
//!   this gateway routes to (normal ones included), and any other service the store has switches
//!   for (set through a gateway that routes to it).
//! - `GET /switches/<service>`: one service's switches.
//! - `PUT /switches/<service>` with a JSON body (`{"disabled":"reason"}`, `{"read_only":true}`,
//!   both, ...): replaces the service's switches (fields left out are normal), answers the new
//!   state.
//! - `DELETE /switches/<service>`: back to normal.
//!
//! Changes need `Authorization: Bearer <admin_token>` when `admin_token` is set (compared in
//! constant time), and name a service the gateway knows (404 otherwise). The change is stored
//! (for NATS, in the bucket every gateway watches) and applied by this gateway before the answer.

use std::collections::BTreeMap;

use gateway_bus::switches::{ServiceSwitches, SwitchError};
use subtle::ConstantTimeEq as _;
use tracing::info;

use super::{Admin, Request, Response};

/// The response to a request for `/switches` or below.
pub(super) async fn route(request: &Request, admin: &Admin) -> Response {
    let service = request.path.strip_prefix("/switches").unwrap_or_default();
    let service = service.strip_prefix('/');
    match (request.method.as_str(), service) {
        ("GET", None) => all(admin),
        ("GET", Some(service)) => one(admin, service),
        ("PUT" | "DELETE", Some(service)) => change(request, admin, service).await,
        (_, None) => Response::text(405, "/switches takes GET"),
        (_, Some(_)) => Response::text(405, "/switches/<service> takes GET, PUT and DELETE"),
    }
}

fn all(admin: &Admin) -> Response {
    let snapshot = admin.switches.follow().borrow().clone();
    let mut all: BTreeMap<&str, ServiceSwitches> =
        admin.services.iter().map(|&s| (s, ServiceSwitches::default())).collect();
    all.extend(snapshot.iter().map(|(s, switches)| (s.as_str(), switches.clone())));
    Response::json(200, serde_json::to_string(&all).expect("switches serialize"))
}

fn one(admin: &Admin, service: &str) -> Response {
    let switches = admin.switches.follow().borrow().get(service).cloned();
    match switches {
        Some(switches) => Response::json(200, switches.to_json()),
        None if admin.services.contains(service) => {
            Response::json(200, ServiceSwitches::default().to_json())
        }
        None => unknown(service),
    }
}

async fn change(request: &Request, admin: &Admin, service: &str) -> Response {
    if !authorized(request, &admin.token) {
        return Response {
            headers: &["WWW-Authenticate: Bearer"],
            ..Response::text(401, "changing switches needs `Authorization: Bearer <admin_token>`")
        };
    }
    if !admin.services.contains(service) {
        return unknown(service);
    }
    let switches = if request.method == "PUT" {
        match ServiceSwitches::from_json(&request.body) {
            Ok(switches) => switches,
            Err(e) => return Response::text(400, format!("invalid switches for `{service}`: {e}")),
        }
    } else {
        ServiceSwitches::default()
    };
    let stored = if switches.is_normal() {
        admin.switches.clear(service).await
    } else {
        admin.switches.set(service, switches.clone()).await
    };
    match stored {
        Ok(()) => {
            info!(
                service,
                %switches,
                gateway = %admin.gateway,
                peer = %request.peer,
                "switch set through the admin endpoint"
            );
            Response::json(200, switches.to_json())
        }
        Err(e @ (SwitchError::Invalid { .. } | SwitchError::InvalidService { .. })) => {
            Response::text(400, e.to_string())
        }
        Err(e @ SwitchError::Unavailable { .. }) => Response::text(503, e.to_string()),
    }
}

fn unknown(service: &str) -> Response {
    Response::text(404, format!("this gateway routes to no service `{service}`"))
}

/// Whether `request` may change switches: always when no token is configured, otherwise with
/// `Authorization: Bearer <token>`. The token is compared in constant time, so response times
/// do not reveal how much of a guess was right.
pub(super) fn authorized(request: &Request, token: &str) -> bool {
    if token.is_empty() {
        return true;
    }
    let presented = request.header("authorization").and_then(|v| v.strip_prefix("Bearer "));
    presented.is_some_and(|p| bool::from(p.trim().as_bytes().ct_eq(token.as_bytes())))
}
