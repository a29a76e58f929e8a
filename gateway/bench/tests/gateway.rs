//! The load generator's gateway mode against a scripted gateway on a free port: the handshake,
//! RESPONSE and ERROR frames, replies that differ from their request, and a gateway whose terms
//! do not allow the run's depth.

use std::time::Duration;

use bytes::BytesMut;
use gateway_bench::{LoadConfig, LoadError, Target, run};
use gateway_core::Status;
use gateway_protocol::{
    DEFAULT_MAX_FRAME_SIZE, Decoded, ErrorReply, Frame, Response, Welcome, decode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every `ERROR_EVERY`th request is answered with `resource_exhausted`, and as many others with
/// their payload spoilt.
const ERROR_EVERY: u64 = 10;

/// A gateway that says WELCOME with `max_in_flight`, then answers each REQUEST with its payload,
/// with an ERROR for every tenth, or with the payload's last byte changed for every tenth
/// (counting from the fifth).
async fn scripted_gateway(listener: TcpListener, max_in_flight: u32) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        tokio::spawn(serve(stream, max_in_flight));
    }
}

async fn serve(mut stream: TcpStream, max_in_flight: u32) -> Option<()> {
    let (mut buf, mut out, mut received) = (BytesMut::new(), BytesMut::new(), 0u64);
    loop {
        while let Decoded::Frame(frame) = decode(&mut buf, DEFAULT_MAX_FRAME_SIZE).ok()? {
            let reply = match frame {
                Frame::Hello(_) => Frame::Welcome(Welcome {
                    capabilities: 0,
                    version: 1,
                    max_frame_size: DEFAULT_MAX_FRAME_SIZE,
                    max_in_flight,
                    idle_timeout_ms: 0,
                    server_id: "scripted".into(),
                    auth_expires_in_ms: 0,
                }),
                Frame::Request(request) => {
                    received += 1;
                    if received % ERROR_EVERY == 0 {
                        Frame::Error(ErrorReply {
                            request_id: request.request_id,
                            status: Status::resource_exhausted("busy"),
                            details: Default::default(),
                        })
                    } else if received % ERROR_EVERY == ERROR_EVERY / 2 {
                        // Same length, one byte off: only a byte-for-byte check notices.
                        let mut spoilt = request.payload.to_vec();
                        *spoilt.last_mut()? ^= 0xff;
                        Frame::Response(Response {
                            request_id: request.request_id,
                            payload: spoilt.into(),
                        })
                    } else {
                        Frame::Response(Response {
                            request_id: request.request_id,
                            payload: request.payload,
                        })
                    }
                }
                _ => return None,
            };
            reply.encode(&mut out, DEFAULT_MAX_FRAME_SIZE).ok()?;
        }
        stream.write_all(&out).await.ok()?;
        out.clear();
        if stream.read_buf(&mut buf).await.ok()? == 0 {
            return Some(());
        }
    }
}

async fn start(max_in_flight: u32) -> LoadConfig {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(scripted_gateway(listener, max_in_flight));
    let mut config = LoadConfig::new(addr, Target::Gateway);
    config.warmup = Duration::from_millis(50);
    config.duration = Duration::from_millis(300);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_counted_and_errors_and_spoilt_payloads_are_counted_by_kind() {
    let mut config = start(64).await;
    config.connections = 2;
    config.depth = 4;
    let summary =
        tokio::time::timeout(Duration::from_secs(10), run(&config)).await.unwrap().unwrap();

    assert!(summary.requests > 50, "{summary}");
    let kinds: Vec<_> = summary.errors_by_status.keys().map(String::as_str).collect();
    assert_eq!(kinds, ["bad_payload", "resource_exhausted"], "{summary}");
    let calls = (summary.requests + summary.errors) as f64;
    for kind in kinds {
        // One in ten per connection, counted over the window only: close to a tenth of all calls.
        let share = summary.errors_by_status[kind] as f64 / calls;
        assert!((0.08..0.12).contains(&share), "{kind}: {share}: {summary}");
    }
}

#[tokio::test]
async fn a_depth_over_the_gateways_in_flight_limit_fails_the_handshake() {
    let mut config = start(8).await;
    config.depth = 9;
    let err = run(&config).await.unwrap_err();
    assert!(matches!(err, LoadError::Handshake(_)), "{err}");
    assert!(err.to_string().contains("allows 8 requests in flight"), "{err}");
}
