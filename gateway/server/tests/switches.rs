//! Operator switches through a real gateway: set over the admin HTTP endpoint (or straight in
//! the store, as another gateway would through NATS), they refuse calls at once with the
//! operator's reason, leave other services and methods alone, and lift when cleared.

mod support;

use bytes::Bytes;
use gateway_bus::switches::{ServiceSwitches, SwitchStore};
use gateway_client::{Client, ClientConfig};
use gateway_core::Code;
use gateway_protocol::{Frame, Request, Response};
use some_api::{RequestSubT, RequestSumT, SomeApiClient};
use support::*;

const SOME_API: &str = "examples.some_api.SomeApi";

fn method_id(short: &str) -> u32 {
    let name = format!("{SOME_API}.{short}");
    some_api::DESCRIPTOR.methods.iter().find(|m| m.name == name).unwrap().id
}

async fn typed_client(gw: &TestGateway) -> SomeApiClient<Client> {
    let client = Client::connect(ClientConfig::new([gw.addr.to_string()]));
    SomeApiClient::new(tokio::time::timeout(WAIT, client).await.unwrap().unwrap())
}

/// Calls `method` on `client` and returns its answer: the payload, or the error.
async fn call(client: &mut RawClient, id: u32, method: u32) -> Result<Bytes, gateway_core::Status> {
    client.call(id, method, 0, b"payload").await;
    match client.recv().await {
        Frame::Response(Response { request_id, payload }) if request_id == id => Ok(payload),
        Frame::Error(e) if e.request_id == id => Err(e.status),
        other => panic!("expected the answer to {id}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_service_refuses_every_call_with_the_reason_until_cleared() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.client().await;
    let api = typed_client(&gw).await;
    assert_eq!(call(&mut client, 1, ECHO).await.unwrap(), "payload");

    let (status, body) = gw
        .admin_request("PUT", "/switches/test.Timing", &[], r#"{"disabled":"database migration"}"#)
        .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"disabled\":\"database migration\",\"read_only\":false}\n")
    );

    // Every method of the service, on a connection opened before the change.
    for (id, method) in [(2, ECHO), (3, WRITE), (4, SLOW)] {
        let refused = call(&mut client, id, method).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable);
        assert_eq!(
            refused.message(),
            "service `test.Timing` is disabled by the operator: database migration"
        );
        assert!(!refused.retryable(), "automatic retries must not hammer a disabled service");
    }
    // Other services are served.
    assert_eq!(api.sum(RequestSumT { a: 40, b: 2 }).await.unwrap().get().sum(), 42);

    let (status, body) = gw.admin_request("GET", "/switches", &[], "").await;
    assert_eq!(status, 200);
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(all["test.Timing"]["disabled"], "database migration");
    assert_eq!(all[SOME_API], serde_json::json!({"disabled": null, "read_only": false}));
    let refused = "gateway_calls_refused_total{service=\"test.Timing\",reason=\"disabled\"}";
    assert_eq!(gw.metric(refused).await, 3.0);
    assert_eq!(
        gw.metric("gateway_requests_total{method=\"test.Timing.echo\",code=\"unavailable\"}").await,
        1.0
    );

    let (status, body) = gw.admin_request("DELETE", "/switches/test.Timing", &[], "").await;
    assert_eq!((status, body.as_str()), (200, "{\"disabled\":null,\"read_only\":false}\n"));
    assert_eq!(call(&mut client, 5, ECHO).await.unwrap(), "payload");
    assert_eq!(call(&mut client, 6, WRITE).await.unwrap(), "payload");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_service_refuses_only_its_writing_methods() {
    let gw = TestGateway::start(config()).await;
    let mut client = gw.client().await;
    let (status, _) = gw
        .admin_request(
            "PUT",
            "/switches/test.Timing",
            &[],
            r#"{"read_only":true,"read_only_reason":"reindexing"}"#,
        )
        .await;
    assert_eq!(status, 200);
    let refused = call(&mut client, 1, WRITE).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused.message(),
        "service `test.Timing` is read-only: reindexing (`test.Timing.write` writes)"
    );
    assert!(!refused.retryable());
    assert_eq!(call(&mut client, 2, ECHO).await.unwrap(), "payload", "reads are served");

    // SomeApi read-only, set in the store directly as another gateway would through NATS:
    // `sub` (-> void, writes) is refused, `sum` is served. A `-> void` REQUEST that asks for a
    // reply gets the refusal; sent fire-and-forget (as the typed client sends `sub`) it is
    // dropped silently, as every refusal of one is (`docs/protocol.md`).
    gw.switches.set(SOME_API, ServiceSwitches::read_only(None)).await.unwrap();
    let refused = call(&mut client, 3, method_id("sub")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused}");
    assert_eq!(
        refused.message(),
        "service `examples.some_api.SomeApi` is read-only (`examples.some_api.SomeApi.sub` writes)"
    );
    assert!(!refused.retryable());
    let api = typed_client(&gw).await;
    assert_eq!(api.sum(RequestSumT { a: 1, b: 2 }).await.unwrap().get().sum(), 3);
    api.sub(RequestSubT { amount: 5 }).await.unwrap();
    client
        .send(Frame::Request(Request {
            request_id: 4,
            method_id: method_id("sub"),
            timeout_ms: 0,
            fire_and_forget: true,
            payload: Bytes::from_static(b"x"),
        }))
        .await;
    client.send(Frame::Ping { data: 7 }).await;
    assert_eq!(client.recv().await, Frame::Pong { data: 7 }, "no answer to fire-and-forget");
    let sub =
        |code: &str| format!("gateway_requests_total{{method=\"{SOME_API}.sub\",code=\"{code}\"}}");
    assert_eq!(gw.metric(&sub("failed_precondition")).await, 3.0, "all refused at the gateway");
    assert_eq!(gw.metric(&sub("ok")).await, 0.0, "none reached the service");
    let read_only =
        format!("gateway_calls_refused_total{{service=\"{SOME_API}\",reason=\"read_only\"}}");
    assert_eq!(gw.metric(&read_only).await, 3.0);

    // Cleared (one through the store, one through the endpoint): writes are served again.
    gw.switches.clear(SOME_API).await.unwrap();
    assert_eq!(gw.admin_request("DELETE", "/switches/test.Timing", &[], "").await.0, 200);
    api.sub(RequestSubT { amount: 5 }).await.unwrap();
    assert_eq!(call(&mut client, 5, WRITE).await.unwrap(), "payload");
    let served = async {
        while gw.metric(&sub("ok")).await < 1.0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, served).await.expect("the sub sent after the clear is served");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_checks_the_token_the_service_and_the_body() {
    let gw = TestGateway::start(gateway::Config { admin_token: "t0ken".into(), ..config() }).await;
    let path = "/switches/test.Timing";
    let body = r#"{"disabled":"x"}"#;
    let bearer = "Authorization: Bearer t0ken";

    let (status, message) = gw.admin_request("PUT", path, &[], body).await;
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("Authorization: Bearer <admin_token>"), "{message}");
    let wrong = gw.admin_request("PUT", path, &["Authorization: Bearer t0ke"], body).await;
    assert_eq!(wrong.0, 401);
    assert_eq!(gw.admin_request("DELETE", path, &[], "").await.0, 401);
    assert!(gw.switches.follow().borrow().is_empty(), "nothing changed without the token");
    // Reads need no token.
    assert_eq!(gw.admin_request("GET", path, &[], "").await.0, 200);

    let (status, message) =
        gw.admin_request("PUT", "/switches/test.Nothing", &[bearer], body).await;
    assert_eq!(
        (status, message.as_str()),
        (404, "this gateway routes to no service `test.Nothing`\n")
    );
    let (status, message) =
        gw.admin_request("PUT", path, &[bearer], r#"{"disabled":"x","readonly":true}"#).await;
    assert_eq!(status, 400);
    assert!(
        message.starts_with("invalid switches for `test.Timing`: unknown field `readonly`"),
        "{message}"
    );
    let (status, message) = gw.admin_request("PUT", path, &[bearer], "not json").await;
    assert_eq!(status, 400, "{message}");
    let (status, message) = gw.admin_request("PUT", path, &[bearer], &"x".repeat(9000)).await;
    assert_eq!(
        (status, message.as_str()),
        (413, "a body of 9000 bytes is over the limit of 8192\n")
    );
    assert!(gw.switches.follow().borrow().is_empty(), "nothing refused was applied");

    let (status, _) = gw.admin_request("PUT", path, &[bearer], body).await;
    assert_eq!(status, 200);
    assert_eq!(gw.switches.follow().borrow()["test.Timing"], ServiceSwitches::disabled("x"));
    let (status, body) = gw.admin_request("GET", path, &[], "").await;
    assert_eq!((status, body.as_str()), (200, "{\"disabled\":\"x\",\"read_only\":false}\n"));
    assert_eq!(gw.admin_request("DELETE", path, &[bearer], "").await.0, 200);
    assert!(gw.switches.follow().borrow().is_empty());
    gw.stop().await;
}
