//! The Rust client against real gateways: when one drains, calls carry on through another.

mod support;

use std::time::Duration;

use gateway_client::{Client, ClientConfig};
use some_api::{RequestSumT, SomeApiClient};
use support::{TestGateway, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_gateway_hands_its_clients_to_the_next_one() {
    let first = TestGateway::start(config()).await;
    let second = TestGateway::start(config()).await;
    let mut client_config = ClientConfig::new([first.addr.to_string(), second.addr.to_string()]);
    client_config.default_timeout = Duration::from_secs(5);
    let client = Client::connect(client_config).await.unwrap();
    let api = SomeApiClient::new(client.clone());
    assert_eq!(api.sum(RequestSumT { a: 1, b: 2 }).await.unwrap().get().sum(), 3);
    assert_eq!(counted(&first, 1.0).await, 1.0);

    // The first gateway drains: GOAWAY with the reconnect flag, then it closes.
    first.stop().await;

    // Every later call succeeds, through the second gateway.
    for i in 0..20 {
        let reply = api.sum(RequestSumT { a: i, b: 1 }).await.unwrap();
        assert_eq!(reply.get().sum(), i + 1);
    }
    assert_eq!(counted(&second, 20.0).await, 20.0);
    client.close().await;
    second.stop().await;
}

/// The gateway's count of successful `sum` calls, once it reaches `want` (or after 5 s): a call
/// is counted just after its answer is written, so the last one may still be on its way.
async fn counted(gateway: &TestGateway, want: f64) -> f64 {
    let series = "gateway_requests_total{method=\"examples.some_api.SomeApi.sum\",code=\"ok\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut count = gateway.metric(series).await;
    while count < want && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        count = gateway.metric(series).await;
    }
    count
}
