//! What the integration tests share: a gateway started in-process on port 0 with a `LocalBus`
//! and `MemorySwitches`, the example `SomeApi` and a hand-written test service on
//! `ServiceRuntime`s, and a raw protocol client speaking `gateway-protocol` frames.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different part

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use gateway::{Config, Registry};
use gateway_bus::{Bus, LocalBus, MemorySwitches, ServeOptions, ServiceRuntime};
use gateway_core::{
    BoxFuture, CallContext, Dispatch, LagPolicy, MethodDesc, ServiceDesc, Status, TopicDesc,
};
use gateway_protocol::{
    DEFAULT_MAX_FRAME_SIZE, ErrorReply, Frame, FrameCodec, Goaway, Hello, Request, VERSION, Welcome,
};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

pub const ECHO: u32 = 0x7e57_0001;
pub const SLOW: u32 = 0x7e57_0002;
pub const HANG: u32 = 0x7e57_0003;
/// Answers with the caller's identity as the service sees it: `subject;name=value;...`, or
/// `anonymous`.
pub const WHOAMI: u32 = 0x7e57_0004;
/// Marked `(writes)`: refused while the service is read-only. Echoes its payload.
pub const WRITE: u32 = 0x7e57_0005;
/// Registered with the gateway but served by nobody.
pub const ORPHAN: u32 = 0x7e57_00ff;

const fn method(id: u32, name: &'static str) -> MethodDesc {
    MethodDesc {
        id,
        name,
        request: "test.Bytes",
        response: Some("test.Bytes"),
        idempotent: false,
        writes: false,
    }
}

/// The test service: `echo` (and `write`, which writes) answers its payload at once; `slow` sleeps for the number of
/// milliseconds its payload holds (u32 LE), then echoes it; `hang` never answers and counts the
/// cancellations its handlers see.
pub static TEST_SERVICE: ServiceDesc = ServiceDesc {
    name: "test.Timing",
    methods: &[
        method(ECHO, "test.Timing.echo"),
        method(SLOW, "test.Timing.slow"),
        method(HANG, "test.Timing.hang"),
        method(WHOAMI, "test.Timing.whoami"),
        MethodDesc { writes: true, ..method(WRITE, "test.Timing.write") },
    ],
    topics: &[],
    errors: &[],
};

pub static ORPHAN_SERVICE: ServiceDesc = ServiceDesc {
    name: "test.Orphan",
    methods: &[method(ORPHAN, "test.Orphan.lonely")],
    topics: &[],
    errors: &[],
};

const fn topic(
    id: u32,
    name: &'static str,
    key: Option<&'static str>,
    on_lag: LagPolicy,
    retain: bool,
    client_publish: bool,
) -> TopicDesc {
    TopicDesc {
        id,
        name,
        message: "test.Bytes",
        key,
        on_lag,
        retain,
        client_publish,
        history: None,
    }
}

pub const FEED_CUT: u32 = 0x7e57_0101;
pub const FEED_DROP: u32 = 0x7e57_0102;
pub const FEED_LATEST: u32 = 0x7e57_0103;
pub const FEED_RETAINED: u32 = 0x7e57_0104;
pub const FEED_SERVICE: u32 = 0x7e57_0105;
pub const FEED_HISTORY: u32 = 0x7e57_0106;
pub const FEED_HISTORY_LONG: u32 = 0x7e57_0107;

/// Keeps 5 events per key for subscribers that come back.
const HISTORY: TopicDesc = TopicDesc {
    history: Some(gateway_core::HistoryDesc { events: 5, ttl_ms: 0 }),
    ..topic(FEED_HISTORY, "test.Feed.history", Some("id"), LagPolicy::DropOldest, false, true)
};

/// Keeps 10,000 events per key.
const HISTORY_LONG: TopicDesc = TopicDesc {
    history: Some(gateway_core::HistoryDesc { events: 10_000, ttl_ms: 0 }),
    ..topic(FEED_HISTORY_LONG, "test.Feed.long", Some("id"), LagPolicy::DropOldest, false, true)
};

/// Topics for the pub/sub tests, one per lag policy, all open to client publishing but the
/// last. Payloads are opaque bytes: the gateway never looks inside.
pub static TOPICS: ServiceDesc = ServiceDesc {
    name: "test.Feed",
    methods: &[],
    topics: &[
        topic(FEED_CUT, "test.Feed.cut", None, LagPolicy::Disconnect, false, true),
        topic(FEED_DROP, "test.Feed.drop", Some("id"), LagPolicy::DropOldest, false, true),
        topic(FEED_LATEST, "test.Feed.latest", Some("id"), LagPolicy::KeepLatest, false, true),
        topic(FEED_RETAINED, "test.Feed.retained", Some("id"), LagPolicy::KeepLatest, true, true),
        topic(FEED_SERVICE, "test.Feed.service", None, LagPolicy::DropOldest, false, false),
        HISTORY,
        HISTORY_LONG,
    ],
    errors: &[],
};

/// What the test service's handlers observed.
#[derive(Debug, Default)]
pub struct Observed {
    /// `hang` handlers started.
    pub hanging: AtomicUsize,
    /// `hang` handlers whose `CallContext` was cancelled.
    pub cancelled: AtomicUsize,
    pub changed: Notify,
}

impl Observed {
    /// Waits (bounded) until `count(self)` reaches `n`.
    pub async fn wait_for(&self, what: &str, n: usize, count: impl Fn(&Observed) -> usize) {
        let reached = async {
            loop {
                let notified = self.changed.notified();
                if count(self) >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(WAIT, reached)
            .await
            .unwrap_or_else(|_| panic!("{what} did not reach {n} (now {})", count(self)));
    }
}

#[derive(Debug)]
struct TestService(Arc<Observed>);

impl Dispatch for TestService {
    fn descriptor(&self) -> &'static ServiceDesc {
        &TEST_SERVICE
    }

    fn dispatch(
        &self,
        ctx: CallContext,
        request: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, Status>> {
        let observed = self.0.clone();
        Box::pin(async move {
            match ctx.method_id() {
                ECHO | WRITE => Ok(request),
                WHOAMI => Ok(match ctx.identity() {
                    None => Bytes::from_static(b"anonymous"),
                    Some(who) => {
                        let mut text = who.subject.clone();
                        for (name, value) in &who.claims {
                            text.push_str(&format!(";{name}={value}"));
                        }
                        Bytes::from(text)
                    }
                }),
                SLOW => {
                    let ms =
                        request.get(..4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
                    tokio::time::sleep(Duration::from_millis(ms.into())).await;
                    Ok(request)
                }
                HANG => {
                    // Counts the cancellation even when the runtime drops this future: the
                    // guard's drop runs after the context is cancelled.
                    struct Guard(Arc<Observed>, CallContext);
                    impl Drop for Guard {
                        fn drop(&mut self) {
                            if self.1.is_cancelled() {
                                self.0.cancelled.fetch_add(1, Ordering::SeqCst);
                                self.0.changed.notify_waiters();
                            }
                        }
                    }
                    let _guard = Guard(observed.clone(), ctx.clone());
                    observed.hanging.fetch_add(1, Ordering::SeqCst);
                    observed.changed.notify_waiters();
                    ctx.cancelled().await;
                    Err(Status::cancelled("cancelled"))
                }
                other => Err(Status::unimplemented(format!("no method {other}"))),
            }
        })
    }
}

/// A gateway running in this process.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The WebSocket listener (`ws_listen`, on a free port unless the config turns it off).
    pub ws: Option<SocketAddr>,
    pub observed: Arc<Observed>,
    /// The gateway's bus, to publish as a service would and to count subscriptions.
    pub bus: LocalBus,
    /// The gateway's operator switches.
    pub switches: MemorySwitches,
    pub shutdown: CancellationToken,
    services: CancellationToken,
    task: JoinHandle<Result<(), gateway::Error>>,
}

/// A config for tests: loopback, port 0, generous limits unless a test lowers them, a short
/// drain so that stopping a gateway with hanging calls is quick, and anonymous clients allowed
/// everything (the auth tests configure keys and roles of their own).
pub fn config() -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        ws_listen: Some("127.0.0.1:0".parse().unwrap()),
        drain_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    config.auth.anonymous_roles = vec!["all".into()];
    config
}

impl TestGateway {
    pub async fn start(config: Config) -> TestGateway {
        TestGateway::start_on(config, gateway_bus::LocalBusOptions::default()).await
    }

    /// [`TestGateway::start`] on an in-process bus with `options`.
    pub async fn start_on(config: Config, options: gateway_bus::LocalBusOptions) -> TestGateway {
        let local = LocalBus::with_options(options);
        let bus: Arc<dyn Bus> = Arc::new(local.clone());
        let services = CancellationToken::new();
        let observed = Arc::new(Observed::default());
        let options = ServeOptions { concurrency: 100_000, ..ServeOptions::default() };
        ServiceRuntime::new(bus.clone(), Arc::new(TestService(observed.clone())))
            .with_options(options.clone())
            .start(services.clone())
            .await
            .unwrap();
        // The calculator publishes its running total on `pub`, as in the gateway binary.
        let topics = gateway_bus::BusTopics::new(bus.clone());
        let calculator =
            Arc::new(some_api::SomeApiServer::new(some_api::Calculator::with_topics(topics)));
        ServiceRuntime::new(bus.clone(), calculator)
            .with_options(options)
            .start(services.clone())
            .await
            .unwrap();
        let mut registry = Registry::new();
        registry.register(&TEST_SERVICE).unwrap();
        registry.register(&ORPHAN_SERVICE).unwrap();
        registry.register(&some_api::DESCRIPTOR).unwrap();
        registry.register(&TOPICS).unwrap();
        let listeners = gateway::Listeners::bind(&config).await.unwrap();
        let addr = listeners.tcp.local_addr().unwrap();
        let admin_addr = listeners.admin.local_addr().unwrap();
        let ws = listeners.websocket.as_ref().map(|l| l.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let switches = MemorySwitches::new();
        let task = tokio::spawn(gateway::run(
            config,
            listeners,
            bus,
            Arc::new(switches.clone()),
            registry,
            shutdown.clone(),
        ));
        TestGateway {
            addr,
            admin: admin_addr,
            ws,
            observed,
            bus: local,
            switches,
            shutdown,
            services,
            task,
        }
    }

    /// Shuts the gateway down and waits (bounded) for `run` to return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT * 2, self.task).await.expect("gateway stops").unwrap().unwrap();
        self.services.cancel();
    }

    /// Waits (bounded) for `run` to return after its shutdown token was cancelled.
    pub async fn stopped(self) {
        tokio::time::timeout(WAIT * 2, self.task).await.expect("gateway stops").unwrap().unwrap();
        self.services.cancel();
    }

    /// A WebSocket client that has completed the handshake.
    pub async fn ws_client(&self) -> WsClient {
        let mut client = WsClient::connect(self.ws.expect("a WebSocket listener")).await;
        let welcome = client.hello().await;
        assert_eq!(welcome.version, VERSION);
        client
    }

    /// A raw client that has completed the handshake.
    pub async fn client(&self) -> RawClient {
        let mut client = RawClient::connect(self.addr).await;
        let welcome = client.hello().await;
        assert_eq!(welcome.version, VERSION);
        client
    }

    /// GET `path` on the admin port: status code and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(self.admin).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(WAIT, stream.read_to_string(&mut response)).await.unwrap().unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }

    /// One request to the admin port over real HTTP (`gateway_testkit::http_request`, run off
    /// the async threads): status code and body.
    pub async fn admin_request(
        &self,
        method: &'static str,
        path: &str,
        headers: &[&str],
        body: &str,
    ) -> (u16, String) {
        let (admin, path, body) = (self.admin, path.to_owned(), body.to_owned());
        let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
        let request = tokio::task::spawn_blocking(move || {
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            gateway_testkit::http_request(admin, method, &path, &headers, &body)
        });
        tokio::time::timeout(WAIT, request).await.unwrap().unwrap().unwrap()
    }

    /// The value of the metrics line `series` (e.g. `gateway_connections`).
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.admin_get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no `{series}` in\n{body}"))
    }
}

/// A client speaking raw frames.
pub struct RawClient {
    pub framed: Framed<TcpStream, FrameCodec>,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        RawClient::from_stream(TcpStream::connect(addr).await.unwrap())
    }

    pub fn from_stream(stream: TcpStream) -> RawClient {
        RawClient { framed: Framed::new(stream, FrameCodec::new(DEFAULT_MAX_FRAME_SIZE)) }
    }

    pub async fn send(&mut self, frame: Frame) {
        self.framed.send(frame).await.unwrap();
    }

    /// Sends raw bytes (for malformed input).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.framed.get_mut().write_all(bytes).await.unwrap();
    }

    pub async fn hello(&mut self) -> Welcome {
        self.hello_with(Bytes::new()).await
    }

    /// HELLO with `token`, expecting WELCOME.
    pub async fn hello_with(&mut self, token: Bytes) -> Welcome {
        self.send_hello(token).await;
        match self.recv().await {
            Frame::Welcome(w) => {
                self.framed.codec_mut().set_peer_max_frame_size(w.max_frame_size);
                w
            }
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }

    pub async fn send_hello(&mut self, token: Bytes) {
        self.send_hello_with(token, 0).await;
    }

    /// HELLO announcing `capabilities`.
    pub async fn send_hello_with(&mut self, token: Bytes, capabilities: u32) {
        self.send(Frame::Hello(Hello {
            capabilities,
            version: VERSION,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            client_name: "test".into(),
            token,
        }))
        .await;
    }

    /// HELLO announcing `HISTORY`, expecting a WELCOME that announces it too.
    pub async fn hello_with_history(&mut self) -> Welcome {
        self.send_hello_with(Bytes::new(), gateway_protocol::CAPABILITY_HISTORY).await;
        match self.recv().await {
            Frame::Welcome(w) => {
                assert_eq!(w.capabilities, gateway_protocol::CAPABILITY_HISTORY, "{w:?}");
                self.framed.codec_mut().set_peer_max_frame_size(w.max_frame_size);
                w
            }
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }

    pub async fn call(&mut self, request_id: u32, method_id: u32, timeout_ms: u32, payload: &[u8]) {
        self.send(request(request_id, method_id, timeout_ms, payload)).await;
    }

    /// The next frame (bounded wait); panics when the connection ends first.
    pub async fn recv(&mut self) -> Frame {
        self.try_recv().await.expect("connection ended")
    }

    /// The next frame, or `None` when the server closed the connection.
    pub async fn try_recv(&mut self) -> Option<Frame> {
        match tokio::time::timeout(WAIT, self.framed.next()).await {
            Ok(Some(Ok(frame))) => Some(frame),
            Ok(Some(Err(e))) => panic!("bad frame from the server: {e}"),
            Ok(None) => None,
            Err(_) => panic!("no frame within {WAIT:?}"),
        }
    }

    /// Expects a GOAWAY and then the end of the connection.
    pub async fn expect_goaway(&mut self) -> Goaway {
        let goaway = match self.recv().await {
            Frame::Goaway(g) => g,
            other => panic!("expected GOAWAY, got {other:?}"),
        };
        assert_eq!(self.try_recv().await, None, "GOAWAY is the last frame");
        goaway
    }

    pub async fn expect_error(&mut self) -> ErrorReply {
        match self.recv().await {
            Frame::Error(e) => e,
            other => panic!("expected ERROR, got {other:?}"),
        }
    }
}

pub fn request(request_id: u32, method_id: u32, timeout_ms: u32, payload: &[u8]) -> Frame {
    Frame::Request(Request {
        request_id,
        method_id,
        timeout_ms,
        fire_and_forget: false,
        payload: Bytes::copy_from_slice(payload),
    })
}

/// The `slow` method's payload: sleep this long.
pub fn millis(ms: u32) -> [u8; 4] {
    ms.to_le_bytes()
}

/// Frames encoded back to back, for sending in one write.
pub fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut buf = BytesMut::new();
    for f in frames {
        f.encode(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap();
    }
    buf
}

/// A WebSocket client speaking raw frames, one per binary message.
pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a WebSocket client's connection ended, as far as it read.
#[derive(Debug)]
pub struct WsClosed {
    /// The GOAWAY that came before the close frame, if any.
    pub goaway: Option<Goaway>,
    /// The server's close frame.
    pub close: Option<CloseFrame>,
}

impl WsClient {
    /// Upgrades a connection to `addr`, sending no `Origin` (not a browser).
    pub async fn connect(addr: SocketAddr) -> WsClient {
        WsClient::connect_from(addr, None).await.expect("the WebSocket upgrade succeeds")
    }

    /// Upgrades a connection to `addr` with `origin` as a browser would send it.
    pub async fn connect_from(
        addr: SocketAddr,
        origin: Option<&str>,
    ) -> Result<WsClient, tungstenite::Error> {
        let mut request = format!("ws://{addr}/").into_client_request()?;
        if let Some(origin) = origin {
            request.headers_mut().insert("Origin", origin.parse().unwrap());
        }
        let connect = tokio_tungstenite::connect_async(request);
        let (ws, _) =
            tokio::time::timeout(WAIT, connect).await.expect("the upgrade is answered")?;
        Ok(WsClient { ws })
    }

    /// Upgrades `stream` (a socket set up by the caller).
    pub async fn over(stream: TcpStream, addr: SocketAddr) -> WsClient {
        let request = format!("ws://{addr}/").into_client_request().unwrap();
        let upgrade = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream));
        let (ws, _) = tokio::time::timeout(WAIT, upgrade).await.unwrap().unwrap();
        WsClient { ws }
    }

    /// Sends `frame` in its message form.
    pub async fn send(&mut self, frame: Frame) {
        let mut message = BytesMut::new();
        frame.encode_message(&mut message, DEFAULT_MAX_FRAME_SIZE).unwrap();
        self.send_binary(message.freeze()).await;
    }

    /// Sends one binary message as it is.
    pub async fn send_binary(&mut self, bytes: impl Into<Bytes>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    pub async fn hello(&mut self) -> Welcome {
        self.hello_with(Bytes::new()).await
    }

    /// HELLO with `token`, expecting WELCOME.
    pub async fn hello_with(&mut self, token: Bytes) -> Welcome {
        self.send_hello(token).await;
        match self.recv().await {
            Frame::Welcome(w) => w,
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }

    pub async fn send_hello(&mut self, token: Bytes) {
        self.send(Frame::Hello(Hello {
            capabilities: 0,
            version: VERSION,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            client_name: "ws-test".into(),
            token,
        }))
        .await;
    }

    pub async fn call(&mut self, request_id: u32, method_id: u32, timeout_ms: u32, payload: &[u8]) {
        self.send(request(request_id, method_id, timeout_ms, payload)).await;
    }

    /// The next message other than pings and pongs (bounded wait), `None` once the connection
    /// is over.
    pub async fn next_message(&mut self) -> Option<Message> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(message))) => return Some(message),
                Ok(Some(Err(e))) => panic!("the WebSocket failed: {e}"),
                Ok(None) => return None,
                Err(_) => panic!("no message within {WAIT:?}"),
            }
        }
    }

    /// The next frame (bounded wait); panics on anything but a binary message.
    pub async fn recv(&mut self) -> Frame {
        match self.next_message().await {
            Some(Message::Binary(bytes)) => gateway_protocol::decode_message(bytes)
                .expect("the server sends valid frames")
                .expect("the server sends no ignorable frames"),
            other => panic!("expected a binary message, got {other:?}"),
        }
    }

    /// Reads to the end of the connection: an optional GOAWAY, then the close frame, then
    /// nothing (the server closes the TCP connection once the client answered the close frame).
    pub async fn closed(&mut self) -> WsClosed {
        let mut goaway = None;
        let close = loop {
            match self.next_message().await {
                Some(Message::Binary(bytes)) if goaway.is_none() => {
                    match gateway_protocol::decode_message(bytes) {
                        Ok(Some(Frame::Goaway(g))) => goaway = Some(g),
                        other => panic!("expected GOAWAY, got {other:?}"),
                    }
                }
                Some(Message::Close(close)) => break close,
                None => break None,
                Some(other) => panic!("expected GOAWAY then a close frame, got {other:?}"),
            }
        };
        if close.is_some() {
            assert!(self.next_message().await.is_none(), "the close frame is the last message");
        }
        WsClosed { goaway, close }
    }

    /// Expects GOAWAY `reason` then a close frame with `code`; returns the GOAWAY.
    pub async fn expect_goaway(
        &mut self,
        reason: gateway_protocol::GoawayReason,
        code: u16,
    ) -> Goaway {
        let WsClosed { goaway, close } = self.closed().await;
        let goaway = goaway.unwrap_or_else(|| panic!("no GOAWAY before the close frame {close:?}"));
        assert_eq!(goaway.reason, reason, "{goaway:?}");
        let close = close.unwrap_or_else(|| panic!("no close frame after {goaway:?}"));
        assert_eq!(u16::from(close.code), code, "{close:?} after {goaway:?}");
        let reason_text = close.reason.as_str();
        assert!(
            goaway.message.starts_with(reason_text) && reason_text.len() <= 123,
            "the close reason `{reason_text}` is the GOAWAY's message `{}`, cut to 123 bytes",
            goaway.message
        );
        goaway
    }
}
