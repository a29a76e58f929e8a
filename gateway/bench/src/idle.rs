//! The idle mode (`loadgen idle`): N connections that say HELLO (with a token, or none) and then
//! nothing, over TCP or WebSocket, held open for a while, so that `scripts/bench-memory` can read
//! what the gateway's memory grew by with them open: the cost of an idle connection.
//!
//! The WebSocket client is written here on the bytes (an upgrade request, one masked binary
//! message for HELLO), so that 15,000 of them cost the load generator little.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures::{StreamExt as _, TryStreamExt as _};
use gateway_protocol::{
    DEFAULT_MAX_FRAME_SIZE, Decoded, Frame, Hello, VERSION, decode, decode_message,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::LoadError;

/// How idle connections reach the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleTransport {
    Tcp,
    WebSocket,
}

/// What an idle run does.
#[derive(Clone, Debug)]
pub struct IdleConfig {
    pub addr: SocketAddr,
    pub connections: usize,
    pub transport: IdleTransport,
    /// The token HELLO carries; empty for none.
    pub token: String,
    /// Connections opened at once.
    pub connect_batch: usize,
    /// How long the connections stay open once all are up.
    pub hold: Duration,
}

/// An open, welcomed connection, kept only so that it stays open.
struct Idle {
    _stream: TcpStream,
}

/// Opens every connection, says HELLO on each and waits for its WELCOME, prints `ready: N` to
/// stdout, then holds them for `config.hold` (or until `stop`), and closes them.
///
/// # Errors
///
/// The first connection that fails to connect, upgrade or be welcomed.
pub async fn run(
    config: &IdleConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), LoadError> {
    let started = Instant::now();
    let open: Vec<Idle> = futures::stream::iter(0..config.connections)
        .map(|_| open(config))
        .buffer_unordered(config.connect_batch.max(1))
        .try_collect()
        .await?;
    println!(
        "ready: {} {} connections welcomed in {:.1} s",
        open.len(),
        match config.transport {
            IdleTransport::Tcp => "TCP",
            IdleTransport::WebSocket => "WebSocket",
        },
        started.elapsed().as_secs_f64()
    );
    tokio::select! {
        () = tokio::time::sleep(config.hold) => {}
        () = stop => {}
    }
    drop(open);
    Ok(())
}

async fn open(config: &IdleConfig) -> Result<Idle, LoadError> {
    let mut stream = TcpStream::connect(config.addr).await?;
    stream.set_nodelay(true)?;
    let hello = Frame::Hello(Hello {
        capabilities: 0,
        version: VERSION,
        max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        client_name: "loadgen-idle".into(),
        token: Bytes::from(config.token.clone().into_bytes()),
    });
    let mut buf = BytesMut::new();
    let welcomed = match config.transport {
        IdleTransport::Tcp => {
            let mut out = BytesMut::new();
            hello.encode(&mut out, DEFAULT_MAX_FRAME_SIZE).map_err(LoadError::encode)?;
            stream.write_all(&out).await?;
            loop {
                match decode(&mut buf, DEFAULT_MAX_FRAME_SIZE)? {
                    Decoded::Frame(frame) => break frame,
                    Decoded::Skipped { .. } => {}
                    Decoded::Incomplete { .. } => read_more(&mut stream, &mut buf).await?,
                }
            }
        }
        IdleTransport::WebSocket => {
            upgrade(&mut stream, &mut buf, config.addr).await?;
            let mut body = BytesMut::new();
            hello.encode_message(&mut body, DEFAULT_MAX_FRAME_SIZE).map_err(LoadError::encode)?;
            stream.write_all(&masked_binary(&body)).await?;
            loop {
                if let Some(message) = server_message(&mut buf)? {
                    match decode_message(message)? {
                        Some(frame) => break frame,
                        None => continue,
                    }
                }
                read_more(&mut stream, &mut buf).await?;
            }
        }
    };
    match welcomed {
        Frame::Welcome(_) => Ok(Idle { _stream: stream }),
        Frame::Goaway(goaway) => {
            Err(LoadError::Handshake(format!("GOAWAY `{}`: {}", goaway.reason, goaway.message)))
        }
        other => Err(LoadError::Handshake(format!(
            "expected WELCOME, got {}",
            other.frame_type().name()
        ))),
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), LoadError> {
    if stream.read_buf(buf).await? == 0 {
        return Err(LoadError::Closed("during the handshake".into()));
    }
    Ok(())
}

/// The HTTP upgrade, with a fixed key (the gateway checks only that there is one).
async fn upgrade(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    addr: SocketAddr,
) -> Result<(), LoadError> {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 101") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                return Err(LoadError::Handshake(format!("the upgrade was refused: {head}")));
            }
            buf.advance(end + 4);
            return Ok(());
        }
        read_more(stream, buf).await?;
    }
}

/// One client WebSocket frame: FIN, binary, masked (with a fixed mask: nothing here is secret).
fn masked_binary(payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x82);
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend((n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend((n as u64).to_be_bytes());
        }
    }
    frame.extend(MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// The next unmasked, unfragmented binary message from the server, if `buf` holds all of it.
fn server_message(buf: &mut BytesMut) -> Result<Option<Bytes>, LoadError> {
    let [b0, b1, ..] = buf[..] else { return Ok(None) };
    let (extra, short) = match b1 & 0x7f {
        126 => (2, 0),
        127 => (8, 0),
        n => (0, u64::from(n)),
    };
    if buf.len() < 2 + extra {
        return Ok(None);
    }
    let len = match extra {
        0 => short,
        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        _ => u64::from_be_bytes(buf[2..10].try_into().unwrap_or_default()),
    } as usize;
    if buf.len() < 2 + extra + len {
        return Ok(None);
    }
    if b0 & 0x0f != 0x2 {
        return Err(LoadError::Handshake(format!("a WebSocket frame of opcode {:#x}", b0 & 0x0f)));
    }
    buf.advance(2 + extra);
    Ok(Some(buf.split_to(len).freeze()))
}
