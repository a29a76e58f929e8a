use std::net::SocketAddr;

use gateway_bus::switches::{MemorySwitches, ServiceSwitches, SwitchStore};
use gateway_core::ServiceDesc;

use super::*;
use crate::router::Registry;

static SERVICE: ServiceDesc = ServiceDesc { name: "t.S", methods: &[], topics: &[], errors: &[] };

fn admin(token: &str) -> (Admin, MemorySwitches) {
    let store = MemorySwitches::new();
    let metrics = Arc::new(Metrics::new(&Registry::new()));
    let bus: Arc<dyn gateway_bus::Bus> = Arc::new(gateway_bus::LocalBus::new());
    let admin = Admin {
        console: console::Sources::empty(bus.clone(), metrics.clone()),
        metrics,
        connections: Arc::default(),
        bus,
        switches: Arc::new(store.clone()),
        services: [SERVICE.name].into_iter().collect(),
        token: token.to_owned(),
        gateway: "test".to_owned(),
    };
    (admin, store)
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request {
    Request {
        method: method.to_owned(),
        path: path.to_owned(),
        headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        body: body.as_bytes().to_vec(),
        peer: SocketAddr::from(([127, 0, 0, 1], 1)),
    }
}

async fn answer(admin: &Admin, method: &str, path: &str, body: &str) -> (u16, String) {
    let response = route(&request(method, path, &[], body), admin).await;
    (response.status, response.body)
}

#[tokio::test]
async fn health_and_metrics_answer_by_path_and_method() {
    let (admin, _) = admin("");
    let status = |method: &'static str, path: &'static str| {
        let admin = &admin;
        async move { answer(admin, method, path, "").await.0 }
    };
    assert_eq!(status("GET", "/healthz").await, 200);
    assert_eq!(status("GET", "/readyz").await, 503, "not ready before listening");
    admin.metrics.set_ready(true);
    assert_eq!(status("GET", "/readyz").await, 200);
    assert_eq!(status("GET", "/metrics").await, 200);
    assert_eq!(status("POST", "/metrics").await, 405);
    assert_eq!(status("GET", "/").await, 404);
    assert_eq!(status("GET", "").await, 404);
    assert_eq!(status("GET", "/switchesx").await, 404);
}

#[test]
fn bodies_need_a_length_under_the_cap() {
    let length = |method: &str, headers: &[(&str, &str)]| {
        body_length(&request(method, "/switches/t.S", headers, "")).map_err(|r| (r.status, r.body))
    };
    assert_eq!(length("GET", &[]), Ok(0));
    assert_eq!(length("PUT", &[]).unwrap_err().0, 411);
    assert_eq!(length("PUT", &[("transfer-encoding", "chunked")]).unwrap_err().0, 411);
    assert_eq!(length("PUT", &[("content-length", "8192")]), Ok(8192));
    let (status, body) = length("PUT", &[("content-length", "8193")]).unwrap_err();
    assert_eq!((status, body.as_str()), (413, "a body of 8193 bytes is over the limit of 8192\n"));
    assert_eq!(length("PUT", &[("content-length", "-1")]).unwrap_err().0, 400);
}

#[tokio::test]
async fn switches_are_set_read_and_cleared() {
    let (admin, store) = admin("");
    let (status, body) = answer(&admin, "GET", "/switches", "").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"t.S\":{\"disabled\":null,\"read_only\":false}}\n")
    );

    let (status, body) = answer(&admin, "PUT", "/switches/t.S", r#"{"disabled":"moving"}"#).await;
    assert_eq!((status, body.as_str()), (200, "{\"disabled\":\"moving\",\"read_only\":false}\n"));
    assert_eq!(store.follow().borrow()["t.S"], ServiceSwitches::disabled("moving"));
    let (_, body) = answer(&admin, "GET", "/switches/t.S", "").await;
    assert_eq!(body, "{\"disabled\":\"moving\",\"read_only\":false}\n");

    // PUT replaces: the fields left out are normal.
    let (status, _) = answer(&admin, "PUT", "/switches/t.S", r#"{"read_only":true}"#).await;
    assert_eq!(status, 200);
    assert_eq!(store.follow().borrow()["t.S"], ServiceSwitches::read_only(None));

    // Switches set elsewhere for services this gateway does not route to are listed too.
    store.set("other.Service", ServiceSwitches::disabled("x")).await.unwrap();
    let (_, body) = answer(&admin, "GET", "/switches", "").await;
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(all["other.Service"]["disabled"], "x");
    assert_eq!(all["t.S"]["read_only"], true);

    let (status, body) = answer(&admin, "DELETE", "/switches/t.S", "").await;
    assert_eq!((status, body.as_str()), (200, "{\"disabled\":null,\"read_only\":false}\n"));
    assert!(!store.follow().borrow().contains_key("t.S"));
    // An empty object is normal too.
    answer(&admin, "PUT", "/switches/t.S", r#"{"disabled":"again"}"#).await;
    assert_eq!(answer(&admin, "PUT", "/switches/t.S", "{}").await.0, 200);
    assert!(!store.follow().borrow().contains_key("t.S"));
}

#[tokio::test]
async fn bad_bodies_unknown_services_and_methods_are_refused() {
    let (admin, store) = admin("");
    for (body, words) in [
        ("", "expected a JSON object"),
        ("{\"disabled\":", "EOF while parsing"),
        (r#"{"read_only":true,"disable":"x"}"#, "unknown field `disable`"),
        (r#"{"read_only":1}"#, "expected a boolean"),
        (r#"{"disabled":""}"#, "`disabled` needs a reason"),
    ] {
        let (status, message) = answer(&admin, "PUT", "/switches/t.S", body).await;
        assert_eq!(status, 400, "{body}: {message}");
        assert!(message.starts_with("invalid switches for `t.S`: "), "{message}");
        assert!(message.contains(words), "{body}: {message}");
    }
    assert!(store.follow().borrow().is_empty(), "nothing refused was stored");

    let (status, message) =
        answer(&admin, "PUT", "/switches/t.Nope", r#"{"read_only":true}"#).await;
    assert_eq!((status, message.as_str()), (404, "this gateway routes to no service `t.Nope`\n"));
    assert_eq!(answer(&admin, "DELETE", "/switches/t.Nope", "").await.0, 404);
    assert_eq!(answer(&admin, "GET", "/switches/t.Nope", "").await.0, 404);
    assert_eq!(answer(&admin, "DELETE", "/switches", "").await.0, 405);
    assert_eq!(answer(&admin, "POST", "/switches/t.S", "{}").await.0, 405);
}

#[tokio::test]
async fn with_a_token_changes_need_it_and_reads_do_not() {
    let (admin, store) = admin("s3cret-token");
    let put = |headers: &'static [(&'static str, &'static str)]| {
        let admin = &admin;
        async move {
            let request = request("PUT", "/switches/t.S", headers, r#"{"read_only":true}"#);
            route(&request, admin).await
        }
    };
    let refused = put(&[]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.headers, &["WWW-Authenticate: Bearer"]);
    for wrong in [
        &[("authorization", "Bearer s3cret-toke")][..],
        &[("authorization", "Bearer s3cret-token2")],
        &[("authorization", "Basic s3cret-token")],
        &[("authorization", "s3cret-token")],
    ] {
        assert_eq!(put(wrong).await.status, 401, "{wrong:?}");
    }
    // Unknown services are not revealed without the token either.
    let request_unknown = request("DELETE", "/switches/t.Nope", &[], "");
    assert_eq!(route(&request_unknown, &admin).await.status, 401);
    assert!(store.follow().borrow().is_empty());

    assert_eq!(put(&[("authorization", "Bearer s3cret-token")]).await.status, 200);
    assert!(store.follow().borrow()["t.S"].read_only);
    assert_eq!(answer(&admin, "GET", "/switches", "").await.0, 200, "reads are open");
    assert_eq!(answer(&admin, "DELETE", "/switches/t.S", "").await.0, 401);
}

#[tokio::test]
async fn the_console_page_is_open_and_its_documents_need_the_token() {
    let (admin, _) = admin("t0ken");
    let get = |path: &str, headers: &[(&str, &str)]| request("GET", path, headers, "");
    let page = route(&get("/console", &[]), &admin).await;
    assert_eq!((page.status, page.content_type), (200, "text/html; charset=utf-8"));
    assert!(page.body.contains("<title>Gateway console</title>"));
    assert_eq!(route(&get("/console/state", &[]), &admin).await.status, 401);
    assert_eq!(route(&get("/console/services", &[]), &admin).await.status, 401);
    let bearer = [("authorization", "Bearer t0ken")];
    let state = route(&get("/console/state", &bearer), &admin).await;
    assert_eq!(state.status, 200, "{}", state.body);
    let state: serde_json::Value = serde_json::from_str(&state.body).unwrap();
    assert_eq!(state["token_required"], true);
    assert_eq!(state["switches"]["t.S"]["disabled"], serde_json::Value::Null);
    assert!(state["connections"].as_array().unwrap().is_empty());
    let services = route(&get("/console/services", &bearer), &admin).await;
    let services: serde_json::Value = serde_json::from_str(&services.body).unwrap();
    assert_eq!(services[0]["service"], "t.S");
    assert!(services[0]["instances"].as_array().unwrap().is_empty(), "nobody serves t.S");
    assert_eq!(route(&request("POST", "/console/state", &bearer, ""), &admin).await.status, 405);
    assert_eq!(route(&get("/console/nothing", &bearer), &admin).await.status, 404);
}

#[tokio::test]
async fn closing_a_connection_signals_its_mailbox_and_needs_the_token() {
    let (admin, _) = admin("secret");
    let mailbox = Arc::new(crate::mailbox::Mailbox::new(1024, admin.metrics.clone()));
    let info = Arc::new(crate::state::ConnectionInfo {
        peer: SocketAddr::from(([127, 0, 0, 1], 9)),
        transport: crate::metrics::Transport::Tcp,
        tls: false,
        since: std::time::SystemTime::now(),
        hello: std::sync::OnceLock::new(),
    });
    let id = admin.connections.add(mailbox.clone(), info);
    let path = format!("/connections/{id}/close");
    assert_eq!(answer(&admin, "POST", &path, "").await.0, 401, "no token");
    assert_eq!(mailbox.signals(), 0);
    let bearer = [("authorization", "Bearer secret")];
    let admin = &admin;
    let close = |path: String, method: &'static str| async move {
        route(&request(method, &path, &bearer, ""), admin).await
    };
    assert_eq!(close(path.clone(), "GET").await.status, 405);
    assert_eq!(close(format!("/connections/{}/close", id + 1), "POST").await.status, 404);
    assert_eq!(close("/connections/x/close".into(), "POST").await.status, 404);
    assert_eq!(close(format!("/connections/{id}"), "POST").await.status, 404);
    assert_eq!(mailbox.signals(), 0);
    let response = close(path, "POST").await;
    assert_eq!((response.status, response.body.as_str()), (200, "closing\n"));
    assert_eq!(mailbox.signals(), crate::mailbox::signal::CLOSE);
}
