//! A scripted gateway for the client's tests: a real listener on 127.0.0.1, port 0, whose
//! every frame the test sends and checks itself with `gateway-protocol`. Every wait is bounded
//! by [`WAIT`].

#![allow(dead_code, unreachable_pub)] // Each test file uses a different part.

use std::time::Duration;

use bytes::BytesMut;
use gateway_client::ClientConfig;
use gateway_core::{LagPolicy, MethodDesc, TopicDesc};
use gateway_protocol::{
    DEFAULT_MAX_FRAME_SIZE, Decoded, Frame, Hello, Request, Subscribe, Welcome, decode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The bound of every wait for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// A method that wants a reply; not idempotent.
pub static ECHO: MethodDesc = MethodDesc {
    id: 0x0101,
    name: "test.Echo.echo",
    request: "test.Any",
    response: Some("test.Any"),
    idempotent: false,
    writes: true,
};

/// A method that wants a reply and is safe to retry.
pub static LOOKUP: MethodDesc = MethodDesc {
    id: 0x0102,
    name: "test.Echo.lookup",
    request: "test.Any",
    response: Some("test.Any"),
    idempotent: true,
    writes: false,
};

/// A `-> void` method.
pub static NOTIFY: MethodDesc = MethodDesc {
    id: 0x0103,
    name: "test.Echo.notify",
    request: "test.Any",
    response: None,
    idempotent: false,
    writes: true,
};

/// A keyed topic.
pub static POSITION: TopicDesc = TopicDesc {
    id: 0x0201,
    name: "test.Tracker.position",
    message: "test.Any",
    key: Some("device_id"),
    on_lag: LagPolicy::DropOldest,
    retain: false,
    client_publish: true,
    history: None,
};

/// A listening scripted gateway.
pub struct Gateway {
    listener: TcpListener,
    pub endpoint: String,
}

impl Gateway {
    pub async fn bind() -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = listener.local_addr().expect("local address").to_string();
        Gateway { listener, endpoint }
    }

    /// The next connection, without a handshake.
    pub async fn accept(&self) -> Peer {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the client connected in time")
            .expect("accept");
        Peer { stream, buf: BytesMut::new() }
    }

    /// The next connection, with HELLO read and `welcome` sent.
    pub async fn accept_with(&self, welcome: Welcome) -> (Peer, Hello) {
        let mut peer = self.accept().await;
        let Frame::Hello(hello) = peer.recv().await else {
            panic!("the client's first frame is HELLO")
        };
        peer.send(Frame::Welcome(welcome)).await;
        (peer, hello)
    }

    /// The next connection, greeted with [`welcome`].
    pub async fn accept_handshake(&self) -> Peer {
        self.accept_with(welcome()).await.0
    }

    /// True when no client connects within `wait`.
    pub async fn stays_unvisited(&self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.listener.accept()).await.is_err()
    }
}

/// Terms a server grants when the test does not care.
pub fn welcome() -> Welcome {
    Welcome {
        capabilities: 0,
        version: 1,
        max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        max_in_flight: 10_000,
        idle_timeout_ms: 0,
        server_id: "scripted".into(),
        auth_expires_in_ms: 0,
    }
}

/// A client configuration for these gateways, without keepalive pings (tests that want them
/// turn them on), so that every frame the scripted gateway reads is one the test expects.
pub fn config(gateways: &[&Gateway]) -> ClientConfig {
    let mut config = ClientConfig::new(gateways.iter().map(|g| g.endpoint.clone()));
    config.keepalive_interval = None;
    config.connect_timeout = WAIT;
    config
}

/// The server's end of one connection.
pub struct Peer {
    stream: TcpStream,
    buf: BytesMut,
}

impl Peer {
    /// The next frame; `None` when the client closed the connection.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            match decode(&mut self.buf, DEFAULT_MAX_FRAME_SIZE).expect("a valid frame") {
                Decoded::Frame(frame) => return Some(frame),
                Decoded::Skipped { .. } => continue,
                Decoded::Incomplete { needed } => self.buf.reserve(needed),
            }
            let read = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("the client sent something in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next frame, which must come.
    pub async fn recv(&mut self) -> Frame {
        self.next().await.expect("the connection is open")
    }

    /// The next frame, which must be a REQUEST.
    pub async fn request(&mut self) -> Request {
        match self.recv().await {
            Frame::Request(request) => request,
            other => panic!("expected REQUEST, got {other:?}"),
        }
    }

    /// The next frame, which must be a SUBSCRIBE.
    pub async fn subscribe(&mut self) -> Subscribe {
        match self.recv().await {
            Frame::Subscribe(subscribe) => subscribe,
            other => panic!("expected SUBSCRIBE, got {other:?}"),
        }
    }

    /// Sends the frames in one write.
    pub async fn send_all(&mut self, frames: impl IntoIterator<Item = Frame>) {
        let mut out = BytesMut::new();
        for frame in frames {
            frame.encode(&mut out, DEFAULT_MAX_FRAME_SIZE).expect("encodable");
        }
        self.stream.write_all(&out).await.expect("write");
    }

    pub async fn send(&mut self, frame: Frame) {
        self.send_all([frame]).await;
    }

    /// Waits until the client closes the connection, returning the frames it sent meanwhile.
    pub async fn until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next().await {
            frames.push(frame);
        }
        frames
    }
}
