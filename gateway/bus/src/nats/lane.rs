//! The call lane: a second NATS connection that carries calls and the answers to them, and
//! nothing else.
//!
//! Through `async-nats`, each call costs a message on the client's command channel, a wake-up of
//! its connection task (which then writes that one request: the task runs right after the
//! caller, before other callers add theirs), and on the way back a hop through the inbox
//! subscription's channel to a task that finds the waiting request. At tens of thousands of
//! calls a second those hops cost more than nats-server's own work per call.
//!
//! The lane speaks the NATS client protocol itself, for exactly what calls need:
//! - **Requests** are appended, already encoded (`HPUB subject reply hlen tlen`, the header
//!   block, the payload), to one buffer under a lock, and so are a service's answers (`PUB` or
//!   `HPUB` to the caller's inbox). A writer task, woken by the first append, yields once so that
//!   every caller ready on this worker adds its own, then writes the whole buffer in one system
//!   call.
//! - **Answers** arrive on one wildcard inbox subscription (`_INBOX.<id>.*`, subscription id 1).
//!   The reader parses every complete message in what one read returned and hands each to the
//!   waiting request itself ([`Answers::answer`]): no task in between.
//! - **Keepalive**: a `PING` every `ping_interval`; two without a `PONG` mark the connection
//!   dead. The server's `PING`s are answered.
//! - **Loss**: when the connection drops, what was not yet written is discarded and every
//!   request sent on it fails at once ([`Answers::lost`]); until it is back (reconnecting with
//!   the bus's backoff), calls take the main connection.
//!
//! What the lane does not speak (TLS, WebSocket, servers without headers, authentication other
//! than a user and password or a token in the URL) leaves it off; calls then take the main
//! connection, as before.

use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::{HeaderMap, HeaderName, HeaderValue, ServerAddr, StatusCode, Subject};
use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::NatsCredentials;

/// The read half of the lane's connection, TCP or TLS.
type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The write half.
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Where the lane hands what comes back.
pub(super) trait Answers: Send + Sync + 'static {
    /// A message for request `token`: its answer, or a running notice.
    fn answer(&self, token: u64, message: async_nats::Message);

    /// The connection is gone: every request sent on it fails. Called with the lane's buffer
    /// locked, so that no request is sent on it meanwhile.
    fn lost(&self);
}

/// The lane's settings, from the bus's.
pub(super) struct LaneOptions {
    pub(super) name: String,
    pub(super) connect_timeout: Duration,
    pub(super) ping_interval: Duration,
    pub(super) max_reconnect_delay: Duration,
    /// What the main connection authenticated with (the URL's credentials or the settings').
    pub(super) credentials: NatsCredentials,
    /// TLS, when it is configured (or the URLs are `tls://`): the connector trusting the
    /// configured CA (or the system's), presenting the client certificate if there is one.
    pub(super) tls: Option<tokio_rustls::TlsConnector>,
}

/// A handle on the lane; cheap to clone.
#[derive(Clone)]
pub(super) struct Lane {
    shared: Arc<Shared>,
}

struct Shared {
    out: Mutex<Outbox>,
    /// Wakes the writer when the buffer stops being empty.
    wake: Notify,
    /// `_INBOX.<id>.`: a request's reply subject is this followed by its token.
    inbox_prefix: String,
}

/// What waits to be written, and whether there is a connection to write it on.
struct Outbox {
    buf: Vec<u8>,
    up: bool,
    /// `PING`s sent since the last `PONG`.
    pings_out: u8,
}

impl Outbox {
    /// Appends one message: `HPUB` when there is a header block, `PUB` otherwise.
    fn push_publish(
        &mut self,
        subject: &str,
        reply: Option<(&str, u64)>,
        headers: &[u8],
        payload: &[u8],
    ) {
        let buf = &mut self.buf;
        buf.reserve(subject.len() + headers.len() + payload.len() + 80);
        buf.extend_from_slice(if headers.is_empty() { b"PUB " } else { b"HPUB " });
        buf.extend_from_slice(subject.as_bytes());
        if let Some((prefix, token)) = reply {
            buf.push(b' ');
            buf.extend_from_slice(prefix.as_bytes());
            push_decimal(buf, token);
        }
        if !headers.is_empty() {
            buf.push(b' ');
            push_decimal(buf, headers.len() as u64);
        }
        buf.push(b' ');
        push_decimal(buf, (headers.len() + payload.len()) as u64);
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(headers);
        buf.extend_from_slice(payload);
        buf.extend_from_slice(b"\r\n");
    }
}

/// Why a connection attempt failed.
enum ConnectFailure {
    /// Worth retrying (the server is down, the network failed).
    Retry(String),
    /// The server wants what the lane does not speak; it stays off.
    Unsupported(String),
}

impl Lane {
    /// Starts the lane on the servers of `urls` (comma-separated, as for the main connection).
    /// `None` when a URL is of a kind the lane does not speak (WebSocket), or `tls://` without
    /// a TLS connector.
    pub(super) fn start<A: Answers>(
        urls: &str,
        inbox_prefix: String,
        options: LaneOptions,
        answers: Weak<A>,
        stop: CancellationToken,
    ) -> Option<Lane> {
        let mut addrs = Vec::new();
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let addr: ServerAddr = url.parse().ok()?;
            let spoken = match addr.scheme() {
                "nats" => true,
                "tls" => options.tls.is_some(),
                _ => false,
            };
            if !spoken {
                debug!(
                    url,
                    "the call lane does not speak this URL; calls take the main connection"
                );
                return None;
            }
            addrs.push(addr);
        }
        if addrs.is_empty() {
            return None;
        }
        let shared = Arc::new(Shared {
            out: Mutex::new(Outbox { buf: Vec::new(), up: false, pings_out: 0 }),
            wake: Notify::new(),
            inbox_prefix,
        });
        tokio::spawn(supervise(shared.clone(), addrs, options, answers, stop));
        Some(Lane { shared })
    }

    /// Whether the lane has a connection now.
    pub(super) fn is_up(&self) -> bool {
        self.shared.out.lock().expect("lane buffer").up
    }

    /// Sends a request for `token` if the lane is up: `register` runs first, under the same
    /// lock as the loss of the connection, so a registered request is either sent on a live
    /// connection or failed by [`Answers::lost`]. `false` (and nothing done) when it is down.
    pub(super) fn request(
        &self,
        subject: &str,
        token: u64,
        headers: &[u8],
        payload: &[u8],
        register: impl FnOnce(),
    ) -> bool {
        let mut out = self.shared.out.lock().expect("lane buffer");
        if !out.up {
            return false;
        }
        register();
        let was_empty = out.buf.is_empty();
        out.push_publish(subject, Some((&self.shared.inbox_prefix, token)), headers, payload);
        drop(out);
        if was_empty {
            self.shared.wake.notify_one();
        }
        true
    }

    /// Publishes a message if the lane is up (`false` otherwise).
    pub(super) fn publish(&self, subject: &str, headers: &[u8], payload: &[u8]) -> bool {
        let mut out = self.shared.out.lock().expect("lane buffer");
        if !out.up {
            return false;
        }
        let was_empty = out.buf.is_empty();
        out.push_publish(subject, None, headers, payload);
        drop(out);
        if was_empty {
            self.shared.wake.notify_one();
        }
        true
    }

    /// Appends a control line (`PING`, `PONG`) if the lane is up.
    fn control(shared: &Shared, line: &[u8]) {
        let mut out = shared.out.lock().expect("lane buffer");
        if out.up {
            let was_empty = out.buf.is_empty();
            out.buf.extend_from_slice(line);
            drop(out);
            if was_empty {
                shared.wake.notify_one();
            }
        }
    }
}

/// Connects, serves the connection until it fails, and reconnects, until `stop`.
async fn supervise<A: Answers>(
    shared: Arc<Shared>,
    addrs: Vec<ServerAddr>,
    options: LaneOptions,
    answers: Weak<A>,
    stop: CancellationToken,
) {
    let mut failures = 0usize;
    let mut next = 0usize;
    loop {
        let addr = &addrs[next % addrs.len()];
        next += 1;
        let attempt = tokio::select! {
            () = stop.cancelled() => return,
            attempt = connect(addr, &shared.inbox_prefix, &options) => attempt,
        };
        match attempt {
            Ok((reader, writer, leftover)) => {
                if failures > 0 {
                    info!(server = addr.as_url_str(), "NATS call lane restored");
                } else {
                    debug!(server = addr.as_url_str(), "NATS call lane connected");
                }
                failures = 0;
                let cause =
                    serve(&shared, reader, writer, leftover, &answers, &options, &stop).await;
                let Some(answers) = answers.upgrade() else { return };
                {
                    let mut out = shared.out.lock().expect("lane buffer");
                    out.up = false;
                    out.buf.clear();
                    out.pings_out = 0;
                    answers.lost();
                }
                match cause {
                    None => return,
                    Some(cause) => warn!(
                        %cause,
                        "NATS call lane lost; calls take the main connection until it is back"
                    ),
                }
            }
            Err(ConnectFailure::Unsupported(reason)) => {
                info!(%reason, "NATS call lane off; calls take the main connection");
                return;
            }
            Err(ConnectFailure::Retry(reason)) => {
                failures += 1;
                debug!(%reason, server = addr.as_url_str(), "NATS call lane cannot connect");
            }
        }
        if failures > 0 && next % addrs.len() == 0 {
            let delay = reconnect_delay(failures, options.max_reconnect_delay);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// Serves one connection until it fails (`Some(cause)`) or the lane stops (`None`).
async fn serve<A: Answers>(
    shared: &Arc<Shared>,
    reader: Reader,
    writer: Writer,
    leftover: BytesMut,
    answers: &Weak<A>,
    options: &LaneOptions,
    stop: &CancellationToken,
) -> Option<io::Error> {
    shared.out.lock().expect("lane buffer").up = true;
    let mut writing = tokio::spawn(write(shared.clone(), writer));
    let ended = tokio::select! {
        () = stop.cancelled() => None,
        read = read(shared, reader, leftover, answers) => Some(read),
        written = &mut writing => Some(written.unwrap_or_else(|e| Err(io::Error::other(e)))),
        dead = keepalive(shared, options.ping_interval) => Some(Err(dead)),
    };
    writing.abort();
    match ended {
        None | Some(Ok(())) => None,
        Some(Err(e)) => Some(e),
    }
}

/// Writes what callers append: once woken, yields so that every caller ready on this worker
/// adds its requests, then writes them all at once.
async fn write(shared: Arc<Shared>, mut writer: Writer) -> io::Result<()> {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        shared.wake.notified().await;
        tokio::task::yield_now().await;
        std::mem::swap(&mut shared.out.lock().expect("lane buffer").buf, &mut batch);
        if batch.is_empty() {
            continue;
        }
        writer.write_all(&batch).await?;
        // TLS holds what it could not send yet until flushed (nothing to do on TCP).
        writer.flush().await?;
        batch.clear();
        if batch.capacity() > 1024 * 1024 {
            batch = Vec::with_capacity(64 * 1024);
        }
    }
}

/// Pings the server every `interval`; fails when two pings in a row went unanswered.
async fn keepalive(shared: &Shared, interval: Duration) -> io::Error {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tick.tick().await;
        let unanswered = {
            let mut out = shared.out.lock().expect("lane buffer");
            out.pings_out += 1;
            out.pings_out > 2
        };
        if unanswered {
            return io::Error::new(io::ErrorKind::TimedOut, "the server stopped answering pings");
        }
        Lane::control(shared, b"PING\r\n");
    }
}

/// Reads and dispatches until the connection ends (`Ok` when the server closed it cleanly is
/// still a loss: the caller reconnects).
async fn read<A: Answers>(
    shared: &Shared,
    mut reader: Reader,
    mut buf: BytesMut,
    answers: &Weak<A>,
) -> io::Result<()> {
    loop {
        // Once per read, not per answer: the bus is gone when it cannot be had.
        let Some(answers) = answers.upgrade() else { return Ok(()) };
        while let Some(op) = parse(&mut buf)? {
            match op {
                Op::Msg(msg) => {
                    let token = msg
                        .subject
                        .strip_prefix(shared.inbox_prefix.as_bytes())
                        .and_then(|t| std::str::from_utf8(t).ok())
                        .and_then(|t| t.parse::<u64>().ok());
                    match token {
                        Some(token) => answers.answer(token, msg.into_message()?),
                        None => debug!("the call lane got a message outside its inbox"),
                    }
                }
                Op::Ping => Lane::control(shared, b"PONG\r\n"),
                Op::Pong => shared.out.lock().expect("lane buffer").pings_out = 0,
                Op::Ok | Op::Info => {}
                Op::Err(message) => warn!(%message, "NATS call lane: the server reports an error"),
            }
        }
        // Not held while waiting: the bus may go meanwhile.
        drop(answers);
        buf.reserve(64 * 1024);
        if reader.read_buf(&mut buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
    }
}

/// Opens a connection: `INFO`, `CONNECT`, the inbox subscription, and a `PING` whose `PONG`
/// confirms the server took them.
async fn connect(
    addr: &ServerAddr,
    inbox_prefix: &str,
    options: &LaneOptions,
) -> Result<(Reader, Writer, BytesMut), ConnectFailure> {
    let retry =
        |what: &str, e: &dyn std::fmt::Display| ConnectFailure::Retry(format!("{what}: {e}"));
    let handshake = async {
        let mut stream = TcpStream::connect((addr.host(), addr.port()))
            .await
            .map_err(|e| retry("connect", &e))?;
        stream.set_nodelay(true).map_err(|e| retry("set TCP_NODELAY", &e))?;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let info = loop {
            if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                let line = buf.split_to(end + 2);
                break parse_info(&line[..end])?;
            }
            if buf.len() > 64 * 1024 {
                return Err(ConnectFailure::Retry("the server's INFO is too long".into()));
            }
            if stream.read_buf(&mut buf).await.map_err(|e| retry("read INFO", &e))? == 0 {
                return Err(ConnectFailure::Retry("the server closed before INFO".into()));
            }
        };
        // TLS starts after the server's INFO, as the main connection does it.
        let (mut reader, mut writer): (Reader, Writer) = match &options.tls {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(addr.host().to_owned())
                    .map_err(|e| ConnectFailure::Unsupported(format!("the server's name: {e}")))?;
                let tls = connector.connect(name, stream).await.map_err(|e| retry("TLS", &e))?;
                let (reader, writer) = tokio::io::split(tls);
                (Box::new(reader), Box::new(writer))
            }
            None if info.tls_required => {
                return Err(ConnectFailure::Unsupported(
                    "the server requires TLS and none is configured".into(),
                ));
            }
            None => {
                let (reader, writer) = stream.into_split();
                (Box::new(reader), Box::new(writer))
            }
        };
        if !info.headers {
            return Err(ConnectFailure::Unsupported("the server does not support headers".into()));
        }
        if info.auth_required && options.credentials.is_none() {
            return Err(ConnectFailure::Unsupported(
                "the server requires credentials and none were given".into(),
            ));
        }
        let hello = connect_line(&options.credentials, info.nonce.as_deref(), &options.name)
            .map_err(ConnectFailure::Unsupported)?;
        let mut hello = hello.into_bytes();
        hello.extend_from_slice(format!("SUB {inbox_prefix}* 1\r\nPING\r\n").as_bytes());
        writer.write_all(&hello).await.map_err(|e| retry("send CONNECT", &e))?;
        writer.flush().await.map_err(|e| retry("send CONNECT", &e))?;
        loop {
            match parse(&mut buf).map_err(|e| retry("read", &e))? {
                Some(Op::Pong) => return Ok((reader, writer, buf)),
                Some(Op::Err(message)) => {
                    return Err(ConnectFailure::Unsupported(format!(
                        "the server refused: {message}"
                    )));
                }
                Some(_) => continue,
                None => {}
            }
            buf.reserve(4096);
            if reader.read_buf(&mut buf).await.map_err(|e| retry("read", &e))? == 0 {
                return Err(ConnectFailure::Retry("the server closed during the handshake".into()));
            }
        }
    };
    match tokio::time::timeout(options.connect_timeout, handshake).await {
        Ok(result) => result,
        Err(_) => Err(ConnectFailure::Retry("no answer within the connect timeout".into())),
    }
}

/// What the lane reads of the server's `INFO`.
#[derive(Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
struct ServerInfo {
    tls_required: bool,
    auth_required: bool,
    headers: bool,
    /// What an NKey or JWT connection signs.
    nonce: Option<String>,
}

fn parse_info(line: &[u8]) -> Result<ServerInfo, ConnectFailure> {
    let json = line
        .strip_prefix(b"INFO")
        .ok_or_else(|| ConnectFailure::Retry("the server did not start with INFO".into()))?;
    serde_json::from_slice(json.trim_ascii())
        .map_err(|e| ConnectFailure::Retry(format!("the server's INFO is not valid JSON: {e}")))
}

/// The credentials in a server URL: `nats://user:password@host` or `nats://token@host`, with
/// `%XX` escapes decoded (`p%40ss` is `p@ss`).
pub(super) fn credentials(addr: &ServerAddr) -> NatsCredentials {
    match (addr.username(), addr.password()) {
        (Some(user), Some(password)) => NatsCredentials::UserPassword {
            user: percent_decode(user),
            password: percent_decode(password),
        },
        (Some(token), None) => NatsCredentials::Token(percent_decode(token)),
        _ => NatsCredentials::None,
    }
}

/// `%XX` escapes decoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `CONNECT` line: no `+OK`s, headers and no-responders answers on, the credentials (an
/// NKey or JWT signs the server's `nonce`).
fn connect_line(
    credentials: &NatsCredentials,
    nonce: Option<&str>,
    name: &str,
) -> Result<String, String> {
    let mut options = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "lang": "rust-gateway-lane",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 1,
        "headers": true,
        "no_responders": true,
        "name": format!("{name} (calls)"),
    });
    match credentials {
        NatsCredentials::UserPassword { user, password } => {
            options["user"] = user.as_str().into();
            options["pass"] = password.as_str().into();
        }
        NatsCredentials::Token(token) => options["auth_token"] = token.as_str().into(),
        NatsCredentials::NKey { public_key, .. } => options["nkey"] = public_key.as_str().into(),
        NatsCredentials::Jwt { jwt, .. } => options["jwt"] = jwt.as_str().into(),
        NatsCredentials::None => {}
    }
    if let Some(seed) = credentials.seed() {
        let nonce = nonce.ok_or("the server sent no nonce to sign")?;
        options["sig"] = super::auth::sign_nonce(seed, nonce.as_bytes())?.into();
    }
    Ok(format!("CONNECT {options}\r\n"))
}

/// One operation from the server.
#[derive(Debug, PartialEq)]
enum Op {
    Msg(Msg),
    Ping,
    Pong,
    Ok,
    Err(String),
    Info,
}

/// A `MSG` or `HMSG`.
#[derive(Debug, PartialEq)]
struct Msg {
    subject: Bytes,
    /// The header block (`NATS/1.0…\r\n\r\n`) of an `HMSG`.
    headers: Option<Bytes>,
    payload: Bytes,
}

/// The longest control line accepted (the server's own limit is 4 KiB by default).
const MAX_LINE: usize = 64 * 1024;
/// The largest message accepted (nats-server's `max_payload` cannot exceed 64 MiB).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Takes the next complete operation off `buf`; `None` when more bytes are needed.
fn parse(buf: &mut BytesMut) -> io::Result<Option<Op>> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > MAX_LINE {
            return Err(protocol_error("a control line longer than 64 KiB"));
        }
        return Ok(None);
    };
    let line = &buf[..end];
    let verb_end = line.iter().position(|&b| b == b' ' || b == b'\t').unwrap_or(line.len());
    let verb = &line[..verb_end];
    let args = &line[verb_end..];
    let is = |name: &[u8]| verb.eq_ignore_ascii_case(name);
    if is(b"MSG") || is(b"HMSG") {
        let with_headers = is(b"HMSG");
        let fields: Vec<&[u8]> =
            args.split(|&b| b == b' ' || b == b'\t').filter(|f| !f.is_empty()).collect();
        // MSG subject sid [reply] size; HMSG subject sid [reply] hsize size.
        let sizes = if with_headers { 2 } else { 1 };
        if fields.len() < 2 + sizes || fields.len() > 3 + sizes {
            return Err(protocol_error(format!(
                "malformed {}",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            )));
        }
        let number = |f: &[u8]| -> io::Result<usize> {
            std::str::from_utf8(f)
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|n| *n <= MAX_MESSAGE)
                .ok_or_else(|| protocol_error("a message size that is not a number up to 64 MiB"))
        };
        let total = number(fields[fields.len() - 1])?;
        let header_len = if with_headers { number(fields[fields.len() - 2])? } else { 0 };
        if header_len > total {
            return Err(protocol_error("a header block longer than its message"));
        }
        let subject_range = offset_of(buf, fields[0]);
        let needed = end + 2 + total + 2;
        if buf.len() < needed {
            buf.reserve(needed - buf.len());
            return Ok(None);
        }
        let mut head = buf.split_to(end + 2).freeze();
        let subject = head.split_off(subject_range.0).split_to(subject_range.1);
        let mut body = buf.split_to(total).freeze();
        if &buf[..2] != b"\r\n" {
            return Err(protocol_error("a message not followed by CRLF"));
        }
        buf.advance(2);
        let headers = with_headers.then(|| body.split_to(header_len));
        return Ok(Some(Op::Msg(Msg { subject, headers, payload: body })));
    }
    let op = if is(b"PING") {
        Op::Ping
    } else if is(b"PONG") {
        Op::Pong
    } else if is(b"+OK") {
        Op::Ok
    } else if is(b"-ERR") {
        Op::Err(String::from_utf8_lossy(args.trim_ascii()).trim_matches('\'').to_owned())
    } else if is(b"INFO") {
        Op::Info
    } else {
        return Err(protocol_error(format!(
            "an unknown operation `{}`",
            String::from_utf8_lossy(&verb[..verb.len().min(40)])
        )));
    };
    buf.advance(end + 2);
    Ok(Some(op))
}

/// Where `part` (a slice of `buf`) starts in `buf`, and its length.
fn offset_of(buf: &[u8], part: &[u8]) -> (usize, usize) {
    (part.as_ptr() as usize - buf.as_ptr() as usize, part.len())
}

impl Msg {
    /// As the message `async-nats` would have delivered.
    fn into_message(self) -> io::Result<async_nats::Message> {
        let length = self.payload.len() + self.headers.as_ref().map_or(0, Bytes::len);
        let (headers, status, description) = match &self.headers {
            None => (None, None, None),
            Some(block) => {
                let (headers, status, description) = parse_headers(block)?;
                (Some(headers), status, description)
            }
        };
        Ok(async_nats::Message {
            subject: Subject::from_static("_INBOX"),
            reply: None,
            payload: self.payload,
            headers,
            status,
            description,
            length,
        })
    }
}

/// A header block: `NATS/1.0[ status[ description]]\r\n`, then `name: value\r\n` lines, then
/// `\r\n`.
fn parse_headers(block: &[u8]) -> io::Result<(HeaderMap, Option<StatusCode>, Option<String>)> {
    let text = std::str::from_utf8(block)
        .map_err(|_| protocol_error("a header block that is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let rest = first
        .strip_prefix("NATS/1.0")
        .ok_or_else(|| protocol_error("a header block that does not start with NATS/1.0"))?
        .trim();
    let (status, description) = if rest.is_empty() {
        (None, None)
    } else {
        let (code, description) = rest.split_once(' ').unwrap_or((rest, ""));
        let code = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| protocol_error("a header status that is not a code"))?;
        let description = description.trim();
        (Some(code), (!description.is_empty()).then(|| description.to_owned()))
    };
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(protocol_error("a header line without `:`"));
        };
        let name = name
            .trim()
            .parse::<HeaderName>()
            .map_err(|_| protocol_error("a header name NATS does not allow"))?;
        headers.append(name, HeaderValue::from(value.trim()));
    }
    Ok((headers, status, description))
}

/// The delay before reconnect attempt `attempts` (1 = the first): doubling from 50 ms up to
/// `max`, with ±25% jitter so that many gateways do not reconnect in lockstep.
pub(super) fn reconnect_delay(attempts: usize, max: Duration) -> Duration {
    let exponent = attempts.saturating_sub(1).min(16) as u32;
    let base = Duration::from_millis(50).saturating_mul(1 << exponent).min(max);
    let jitter = 0.75 + 0.5 * jitter_unit();
    base.mul_f64(jitter)
}

/// A number in [0, 1) that differs between calls and processes; enough for jitter.
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos() as u64));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Appends `n` in decimal.
pub(super) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(crate::call::decimal(n, &mut [0; 20]).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Op> {
        let mut buf = BytesMut::from(input);
        let mut ops = Vec::new();
        while let Some(op) = parse(&mut buf).unwrap() {
            ops.push(op);
        }
        assert!(buf.is_empty(), "left over: {:?}", String::from_utf8_lossy(&buf));
        ops
    }

    #[test]
    fn messages_with_and_without_headers_parse_whole() {
        let input = b"+OK\r\nMSG _INBOX.a.7 1 5\r\nhello\r\nPING\r\n\
            HMSG _INBOX.a.8 1 _INBOX.r 18 22\r\nNATS/1.0\r\nk: v\r\n\r\nabcd\r\nPONG\r\n";
        let ops = parse_all(input);
        assert_eq!(ops.len(), 5);
        assert_eq!(ops[0], Op::Ok);
        let Op::Msg(first) = &ops[1] else { panic!("{:?}", ops[1]) };
        assert_eq!(&first.subject[..], b"_INBOX.a.7");
        assert_eq!(&first.payload[..], b"hello");
        assert_eq!(first.headers, None);
        assert_eq!(ops[2], Op::Ping);
        let Op::Msg(second) = &ops[3] else { panic!("{:?}", ops[3]) };
        assert_eq!(&second.subject[..], b"_INBOX.a.8");
        assert_eq!(second.headers.as_deref(), Some(&b"NATS/1.0\r\nk: v\r\n\r\n"[..]));
        assert_eq!(&second.payload[..], b"abcd");
        assert_eq!(ops[4], Op::Pong);
    }

    #[test]
    fn a_message_split_anywhere_waits_for_the_rest() {
        let input = b"HMSG _INBOX.a.8 1 12 15\r\nNATS/1.0\r\n\r\nxyz\r\n";
        for cut in 0..input.len() {
            let mut buf = BytesMut::from(&input[..cut]);
            assert_eq!(parse(&mut buf).unwrap(), None, "cut at {cut}");
            buf.extend_from_slice(&input[cut..]);
            let Some(Op::Msg(msg)) = parse(&mut buf).unwrap() else { panic!("cut at {cut}") };
            assert_eq!(&msg.payload[..], b"xyz");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn no_responders_and_headers_come_out_as_async_nats_gives_them() {
        let block = b"NATS/1.0 503\r\n\r\n";
        let (headers, status, description) = parse_headers(block).unwrap();
        assert_eq!(status, Some(StatusCode::NO_RESPONDERS));
        assert_eq!(description, None);
        assert!(headers.is_empty());
        let block = b"NATS/1.0 408 Request Timeout\r\nrpc-status: 4\r\nx-a: 1\r\nx-a: 2\r\n\r\n";
        let (headers, status, description) = parse_headers(block).unwrap();
        assert_eq!(status, Some(StatusCode::from_u16(408).unwrap()));
        assert_eq!(description.as_deref(), Some("Request Timeout"));
        assert_eq!(headers.get("rpc-status").map(HeaderValue::as_str), Some("4"));
        let all: Vec<&str> = headers.get_all("x-a").map(HeaderValue::as_str).collect();
        assert_eq!(all, ["1", "2"]);
    }

    #[test]
    fn malformed_input_is_an_error_naming_it() {
        for bad in [
            &b"MSG a\r\n"[..],
            b"MSG a 1 x\r\n",
            b"HMSG a 1 9 4\r\n",
            b"BOGUS\r\n",
            b"MSG a 1 99999999999\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            let err = parse(&mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{}", String::from_utf8_lossy(bad));
        }
        let mut buf = BytesMut::from(&b"MSG a 1 3\r\nabcXY"[..]);
        assert!(parse(&mut buf).is_err(), "a payload not followed by CRLF");
        assert!(parse_headers(b"HTTP/1.1 200\r\n\r\n").is_err());
        assert!(parse_headers(b"NATS/1.0\r\nno colon\r\n\r\n").is_err());
    }

    #[test]
    fn requests_are_encoded_as_hpub_or_pub() {
        let mut out = Outbox { buf: Vec::new(), up: true, pings_out: 0 };
        out.push_publish("rpc.s.m", Some(("_INBOX.x.", 42)), b"NATS/1.0\r\na: b\r\n\r\n", b"hi");
        out.push_publish("cancel.s", None, b"", b"");
        assert_eq!(
            String::from_utf8(out.buf).unwrap(),
            "HPUB rpc.s.m _INBOX.x.42 18 20\r\nNATS/1.0\r\na: b\r\n\r\nhi\r\nPUB cancel.s 0\r\n\r\n"
        );
    }

    #[test]
    fn credentials_in_the_url_go_into_connect() {
        let connect = |credentials: &NatsCredentials, nonce: Option<&str>| -> serde_json::Value {
            let line = connect_line(credentials, nonce, "gw").unwrap();
            serde_json::from_str(line.strip_prefix("CONNECT ").unwrap().trim_end()).unwrap()
        };
        let addr: ServerAddr = "nats://me:p%40ss%20word@127.0.0.1:4222".parse().unwrap();
        let json = connect(&credentials(&addr), None);
        assert_eq!(json["user"], "me");
        assert_eq!(json["pass"], "p@ss word");
        assert_eq!(json["headers"], true);
        assert_eq!(json["no_responders"], true);
        assert_eq!(json["verbose"], false);
        let addr: ServerAddr = "nats://s3cret@127.0.0.1:4222".parse().unwrap();
        let json = connect(&credentials(&addr), None);
        assert_eq!(json["auth_token"], "s3cret");
        assert!(json.get("user").is_none());
    }

    #[test]
    fn an_nkey_signs_the_nonce_in_connect() {
        use base64::Engine as _;
        let key = nkeys::KeyPair::new_user();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("user.nk");
        std::fs::write(&file, key.seed().unwrap()).unwrap();
        let credentials = NatsCredentials::nkey_file(&file).unwrap();
        let line = connect_line(&credentials, Some("QnJ1Y2U"), "gw").unwrap();
        let json: serde_json::Value =
            serde_json::from_str(line.strip_prefix("CONNECT ").unwrap().trim_end()).unwrap();
        assert_eq!(json["nkey"], key.public_key());
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(json["sig"].as_str().unwrap())
            .unwrap();
        key.verify(b"QnJ1Y2U", &sig).unwrap();
        let err = connect_line(&credentials, None, "gw").unwrap_err();
        assert_eq!(err, "the server sent no nonce to sign");
    }
}
