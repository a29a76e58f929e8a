//! Bounds and misbehaving clients: in-flight caps, the connection limit, malformed and oversized
//! frames, handshake and idle timeouts, and many connections at once.

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use gateway_core::Code;
use gateway_protocol::{Frame, GoawayReason, Hello, MIN_MAX_FRAME_SIZE};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_requests_get_resource_exhausted_at_once() {
    let gw =
        TestGateway::start(gateway::Config { max_in_flight_per_connection: 4, ..config() }).await;
    let mut client = gw.client().await;
    for id in 1..=4 {
        client.call(id, HANG, 0, b"").await;
    }
    client.call(5, ECHO, 0, b"one too many").await;
    let error = client.expect_error().await;
    assert_eq!((error.request_id, error.status.code()), (5, Code::ResourceExhausted));
    assert!(error.status.retryable());
    // Another connection has its own cap.
    let mut other = gw.client().await;
    other.call(1, ECHO, 0, b"ok").await;
    assert!(matches!(other.recv().await, Frame::Response(r) if r.request_id == 1));
    assert_eq!(gw.metric("gateway_shed_total{bound=\"connection\"}").await, 1.0);
    assert_eq!(gw.metric("gateway_requests_in_flight").await, 4.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_global_cap_every_connection_is_refused() {
    let gw = TestGateway::start(gateway::Config { max_in_flight_total: 2, ..config() }).await;
    let mut first = gw.client().await;
    first.call(1, HANG, 0, b"").await;
    first.call(2, HANG, 0, b"").await;
    gw.observed
        .wait_for("hanging handlers", 2, |o| o.hanging.load(std::sync::atomic::Ordering::SeqCst))
        .await;
    let mut second = gw.client().await;
    second.call(1, ECHO, 0, b"").await;
    assert_eq!(second.expect_error().await.status.code(), Code::ResourceExhausted);
    assert_eq!(gw.metric("gateway_shed_total{bound=\"global\"}").await, 1.0);
    // Freeing a place lets calls through again.
    first.send(Frame::Cancel { request_id: 1 }).await;
    assert_eq!(first.expect_error().await.status.code(), Code::Cancelled);
    second.call(2, ECHO, 0, b"").await;
    assert!(matches!(second.recv().await, Frame::Response(r) if r.request_id == 2));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_limit_clients_get_goaway_too_many_connections() {
    let gw = TestGateway::start(gateway::Config { max_connections: 2, ..config() }).await;
    let _a = gw.client().await;
    let mut b = gw.client().await;
    let mut c = RawClient::connect(gw.addr).await;
    let goaway = c.expect_goaway().await;
    assert_eq!(goaway.reason, GoawayReason::TOO_MANY_CONNECTIONS);
    assert!(goaway.reconnect);
    b.call(1, ECHO, 0, b"").await;
    assert!(matches!(b.recv().await, Frame::Response(_)));
    assert_eq!(gw.metric("gateway_connections_rejected_total").await, 1.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_own_connection() {
    let gw = TestGateway::start(config()).await;
    let mut bystander = gw.client().await;
    // An unknown frame type without the ignorable flag.
    let mut bad = gw.client().await;
    bad.send_raw(&[3, 0, 0, 0, 0x7f, 0x00, 0xaa]).await;
    assert_eq!(bad.expect_goaway().await.reason, GoawayReason::PROTOCOL_ERROR);
    // Request id 0.
    let mut zero = gw.client().await;
    zero.call(0, ECHO, 0, b"").await;
    assert_eq!(zero.expect_goaway().await.reason, GoawayReason::PROTOCOL_ERROR);
    // A request id already in flight.
    let mut twice = gw.client().await;
    twice.call(7, HANG, 0, b"").await;
    twice.call(7, ECHO, 0, b"").await;
    let goaway = twice.expect_goaway().await;
    assert_eq!((goaway.reason, goaway.reconnect), (GoawayReason::PROTOCOL_ERROR, false));
    // A frame that only servers send.
    let mut backwards = gw.client().await;
    backwards.send(Frame::Cancel { request_id: 1 }).await; // fine: ignored
    backwards
        .send(Frame::Response(gateway_protocol::Response { request_id: 1, payload: Bytes::new() }))
        .await;
    assert_eq!(backwards.expect_goaway().await.reason, GoawayReason::PROTOCOL_ERROR);

    bystander.call(1, ECHO, 0, b"unharmed").await;
    assert!(matches!(bystander.recv().await, Frame::Response(r) if r.payload == "unharmed"));
    assert_eq!(gw.metric("gateway_protocol_errors_total").await, 4.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_gets_frame_too_large_from_its_prefix_alone() {
    let gw = TestGateway::start(gateway::Config { max_frame_size: MIN_MAX_FRAME_SIZE, ..config() })
        .await;
    let mut bystander = gw.client().await;
    let mut big = gw.client().await;
    // Only the length prefix is sent: the server must not wait for the frame's bytes.
    big.send_raw(&(MIN_MAX_FRAME_SIZE + 1).to_le_bytes()).await;
    let goaway = big.expect_goaway().await;
    assert_eq!((goaway.reason, goaway.reconnect), (GoawayReason::FRAME_TOO_LARGE, false));
    bystander.call(1, ECHO, 0, b"").await;
    assert!(matches!(bystander.recv().await, Frame::Response(_)));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_handshake_is_refused_with_its_reason() {
    let gw = TestGateway::start(config()).await;
    let mut early = RawClient::connect(gw.addr).await;
    early.call(1, ECHO, 0, b"").await;
    assert_eq!(early.expect_goaway().await.reason, GoawayReason::PROTOCOL_ERROR);

    let hello = |version, max_frame_size| {
        Frame::Hello(Hello {
            capabilities: 0,
            version,
            max_frame_size,
            client_name: String::new(),
            token: Bytes::new(),
        })
    };
    let mut old = RawClient::connect(gw.addr).await;
    old.send(hello(0, MIN_MAX_FRAME_SIZE)).await;
    let goaway = old.expect_goaway().await;
    assert_eq!(goaway.reason, GoawayReason::UNSUPPORTED_VERSION);
    assert!(goaway.message.contains("version 1"), "{}", goaway.message);

    let mut newer = RawClient::connect(gw.addr).await;
    newer.send(hello(9, MIN_MAX_FRAME_SIZE)).await;
    assert!(
        matches!(newer.recv().await, Frame::Welcome(w) if w.version == 1),
        "the highest common version"
    );

    let mut tiny = RawClient::connect(gw.addr).await;
    tiny.send(hello(1, 1000)).await;
    assert_eq!(tiny.expect_goaway().await.reason, GoawayReason::PROTOCOL_ERROR);
    gw.stop().await;
}

/// The gateway sleeps through a HELLO that comes in pieces (the socket's low-water mark is what
/// HELLO still needs) and must still answer it the moment it is whole: its last byte alone
/// wakes the gateway. WELCOME puts the mark back to one byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_sent_in_pieces_is_answered_once_whole() {
    let gw = TestGateway::start(config()).await;
    let hello = Frame::Hello(Hello {
        capabilities: 0,
        version: gateway_protocol::VERSION,
        max_frame_size: MIN_MAX_FRAME_SIZE,
        client_name: "in pieces".into(),
        token: Bytes::new(),
    });
    let mut bytes = bytes::BytesMut::new();
    hello.encode(&mut bytes, MIN_MAX_FRAME_SIZE).unwrap();
    let len = bytes.len();
    assert!(len > 8, "a HELLO of {len} bytes");
    // No answer to what is not whole; meanwhile the gateway reads it and sets the mark.
    async fn no_answer_yet(client: &mut RawClient) {
        let early = tokio::time::timeout(Duration::from_millis(100), client.framed.next()).await;
        assert!(early.is_err(), "an answer before HELLO was whole: {early:?}");
    }

    // All of HELLO but its last byte, then that byte alone.
    let mut client = RawClient::connect(gw.addr).await;
    client.send_raw(&bytes[..len - 1]).await;
    no_answer_yet(&mut client).await;
    client.send_raw(&bytes[len - 1..]).await;
    assert!(matches!(client.recv().await, Frame::Welcome(_)));

    // The length prefix and 2 bytes (the mark is then the rest of HELLO), then the rest with all
    // of a call but its last byte: welcomed, the last byte alone wakes the gateway again.
    let mut call = bytes::BytesMut::new();
    request(2, ECHO, 0, b"in two").encode(&mut call, MIN_MAX_FRAME_SIZE).unwrap();
    let mut client = RawClient::connect(gw.addr).await;
    client.send_raw(&bytes[..6]).await;
    no_answer_yet(&mut client).await;
    client.send_raw(&[&bytes[6..], &call[..call.len() - 1]].concat()).await;
    assert!(matches!(client.recv().await, Frame::Welcome(_)));
    client.send_raw(&call[call.len() - 1..]).await;
    assert!(matches!(client.recv().await, Frame::Response(r) if &r.payload[..] == b"in two"));
    gw.stop().await;
}

/// A wave of connections that say nothing is let in at the pace, the rest waiting in the accept
/// loop's lobby (`gateway_connections_waited_total`) rather than in the kernel's accept queue. A
/// client that connects behind the wave is welcomed at its turn; every connection of the wave
/// that the gateway accepted gets GOAWAY `handshake_timeout`, and the lobby ends empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_silent_connections_waits_in_the_lobby_and_a_client_behind_it_is_welcomed() {
    const WAVE: usize = 1_500;
    let handshake_timeout = Duration::from_secs(2);
    let gw = TestGateway::start(gateway::Config { handshake_timeout, ..config() }).await;
    let addr = gw.addr;
    let wave = futures::future::join_all((0..WAVE).map(|_| tokio::net::TcpStream::connect(addr)));
    let wave: Vec<_> = wave.await.into_iter().map(Result::unwrap).collect();

    let mut client = RawClient::connect(addr).await;
    let welcome = tokio::time::timeout(Duration::from_secs(10), client.hello()).await;
    assert!(welcome.is_ok(), "the client behind the wave was not welcomed");
    let waited = gw.metric("gateway_connections_waited_total").await;
    assert!(waited > 0.0, "no connection of the wave waited in the lobby");

    // Each connection of the wave the gateway accepted reads GOAWAY `handshake_timeout`. The
    // kernel may never have handed over a few: a SYN-cookie connection whose last ACK met a full
    // accept queue exists only on the client's side until it sends something, and reads nothing
    // until the deadline.
    let deadline = tokio::time::Instant::now() + handshake_timeout + Duration::from_secs(10);
    // Those stay open until the counts are taken: closing one would send the kernel its first
    // segment after the handshake, and the gateway would accept it then.
    let reads = wave.into_iter().map(|stream| async move {
        let mut client = RawClient::from_stream(stream);
        match tokio::time::timeout_at(deadline, client.framed.next()).await {
            Ok(Some(Ok(Frame::Goaway(goaway)))) => (Some(goaway.reason), None),
            Ok(other) => panic!("a silent connection got {other:?} instead of a GOAWAY"),
            Err(_) => (None, Some(client)),
        }
    });
    let (reasons, never_accepted): (Vec<_>, Vec<_>) =
        futures::future::join_all(reads).await.into_iter().unzip();
    let timed_out = reasons.iter().flatten().count();
    assert!(reasons.iter().flatten().all(|&reason| reason == GoawayReason::HANDSHAKE_TIMEOUT));
    let accepted = gw.metric("gateway_connections_total").await;
    assert_eq!(timed_out as f64, accepted - 1.0, "all but the client timed out");
    assert!(timed_out > WAVE / 2, "only {timed_out} of the wave accepted");
    let counted = gw.metric("gateway_goaway_total{reason=\"handshake_timeout\"}").await;
    assert_eq!(counted, timed_out as f64);
    assert_eq!(gw.metric("gateway_connections_waiting").await, 0.0);
    drop(never_accepted);
    gw.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_without_hello_is_closed_at_the_handshake_timeout() {
    let gw = TestGateway::start(gateway::Config {
        handshake_timeout: Duration::from_secs(5),
        ..config()
    })
    .await;
    let start = tokio::time::Instant::now();
    let mut silent = RawClient::connect(gw.addr).await;
    let goaway = silent.expect_goaway().await;
    assert_eq!((goaway.reason, goaway.reconnect), (GoawayReason::HANDSHAKE_TIMEOUT, false));
    assert!(start.elapsed() >= Duration::from_secs(5));
    gw.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_but_not_one_pinging_or_with_a_call_in_flight() {
    // Paused time: the test's own bounded waits (10 s) are virtual too, so the timers stay below.
    let idle_timeout = Duration::from_secs(3);
    let gw = TestGateway::start(gateway::Config { idle_timeout, ..config() }).await;
    let mut busy = gw.client().await;
    busy.call(1, SLOW, 0, &millis(8_000)).await;
    let start = tokio::time::Instant::now();
    let mut idle = gw.client().await;
    let goaway = idle.expect_goaway().await;
    assert_eq!((goaway.reason, goaway.reconnect), (GoawayReason::IDLE_TIMEOUT, true));
    assert!(start.elapsed() >= idle_timeout);
    // Frames keep a connection alive: PINGs every 2 s outlive the 3 s timeout.
    let mut pinger = gw.client().await;
    for data in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        pinger.send(Frame::Ping { data }).await;
        assert_eq!(pinger.recv().await, Frame::Pong { data });
    }
    // The busy connection outlived the idle timeout because its call was in flight.
    let reply = busy.recv().await;
    assert!(matches!(reply, Frame::Response(r) if r.request_id == 1));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_each_make_a_call() {
    let gw = TestGateway::start(config()).await;
    let addr = gw.addr;
    let clients: Vec<_> = (0..1000u32)
        .map(|i| {
            tokio::spawn(async move {
                let mut client = RawClient::connect(addr).await;
                client.hello().await;
                client.call(1, ECHO, 0, &i.to_le_bytes()).await;
                let reply = client.recv().await;
                (client, reply)
            })
        })
        .collect();
    let mut open = Vec::new();
    for (i, task) in clients.into_iter().enumerate() {
        let (client, reply) = task.await.unwrap();
        let expected = Bytes::copy_from_slice(&(i as u32).to_le_bytes());
        assert!(matches!(reply, Frame::Response(r) if r.payload == expected));
        open.push(client);
    }
    assert_eq!(gw.metric("gateway_connections").await, 1000.0);
    assert_eq!(
        gw.metric("gateway_requests_total{method=\"test.Timing.echo\",code=\"ok\"}").await,
        1000.0
    );
    drop(open);
    gw.stop().await;
}

/// WELCOME states the largest frame the gateway takes, and that is no more than its bus carries
/// (with room for a call's headers): a frame that fits is served, a larger one is refused from
/// its length prefix, like any frame over the stated limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_states_no_more_than_the_bus_carries() {
    let bus = gateway_bus::LocalBusOptions { max_payload: 200_000, ..Default::default() };
    let gw = TestGateway::start_on(config(), bus).await;
    assert!(config().max_frame_size > 200_000, "the configured limit is the larger");
    let mut client = RawClient::connect(gw.addr).await;
    let welcome = client.hello().await;
    assert_eq!(welcome.max_frame_size, 200_000 - 4096);
    let payload = vec![7u8; 150_000];
    client.call(1, ECHO, 5_000, &payload).await;
    assert!(matches!(client.recv().await, Frame::Response(r) if r.payload.len() == payload.len()));
    client.send_raw(&(200_000u32 - 4096 + 1).to_le_bytes()).await;
    assert_eq!(client.expect_goaway().await.reason, GoawayReason::FRAME_TOO_LARGE);
    gw.stop().await;
    // On the default in-process bus (8 MiB), the configured 16 MiB is cut the same way.
    let gw = TestGateway::start(config()).await;
    let mut client = RawClient::connect(gw.addr).await;
    assert_eq!(client.hello().await.max_frame_size, 8 * 1024 * 1024 - 4096);
    gw.stop().await;
}
