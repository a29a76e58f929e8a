//! Entry points for the fuzz targets of `gateway/fuzz`: the gateway's own parsers of untrusted
//! bytes, which are private to the crate, each wrapped in a function that takes any bytes and
//! panics only when an invariant breaks. Compiled with the `fuzz` feature only; not an API.
//!
//! The frame decoder itself is public (`gateway_protocol`) and fuzzed from there.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use gateway_protocol::{Frame, MIN_MAX_FRAME_SIZE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::admin::Admin;
use crate::outbox::{Outbox, Wire};
use crate::ws::codec::{Reader, Stop};

/// WebSocket frames from a client, as the session reads them: the stream is fed to the reader
/// in chunks of a size taken from the first byte, and what it yields (protocol frames, then the
/// stop) must be the same as when the stream arrives whole. Each message fits the limit (also
/// chosen by the first byte): a larger one is refused from its header.
pub fn ws_stream(data: &[u8]) {
    let Some((&head, stream)) = data.split_first() else { return };
    let max = [64, 1024, MIN_MAX_FRAME_SIZE, 1 << 20][usize::from(head & 3)];
    let welcomed = head & 4 != 0;
    let chunk = usize::from(head >> 3) + 1;
    let whole = read_ws(stream, max, welcomed, stream.len().max(1));
    let split = read_ws(stream, max, welcomed, chunk);
    assert_eq!(whole, split, "the same stream read in chunks of {chunk} bytes read otherwise");
    for frame in whole.iter().filter_map(|read| read.as_ref().ok()) {
        let len = frame.encoded_len().expect("a decoded frame encodes");
        // The length prefix is not part of a WebSocket message.
        assert!(len - 4 <= max as usize, "a message of {} bytes passed a limit of {max}", len - 4);
    }
}

/// What [`Reader::next`] yields for `stream` arriving `chunk` bytes at a time: the frames, then
/// the stop if any.
fn read_ws(stream: &[u8], max: u32, welcomed: bool, chunk: usize) -> Vec<Result<Frame, Stop>> {
    let mut reader = Reader::default();
    if welcomed {
        reader.welcomed();
    }
    let mut out = Outbox::new(Wire::WebSocket, MIN_MAX_FRAME_SIZE);
    let mut buf = BytesMut::new();
    let mut read = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match reader.next(&mut buf, max, &mut out) {
                Ok(Some(frame)) => read.push(Ok(frame)),
                Ok(None) => break,
                Err(stop) => {
                    read.push(Err(stop));
                    return read;
                }
            }
        }
    }
    read
}

/// A WebSocket upgrade request's head: found in the bytes, read, and its key hashed.
pub fn ws_upgrade(data: &[u8]) {
    let Some(end) = crate::ws::upgrade::find_head_end(data) else { return };
    assert!(end <= data.len() && data[..end].ends_with(b"\r\n\r\n"));
    let Ok(head) = std::str::from_utf8(&data[..end]) else { return };
    if let Ok(request) = crate::ws::upgrade::Request::parse(head) {
        let accept = crate::ws::upgrade::accept_key(request.key.as_bytes());
        assert_eq!(accept.len(), 28, "a base64 SHA-1 is 28 characters");
    }
}

/// One admin connection fed `data` as the client's bytes (HTTP/1.1, parsed by hyper, answered
/// by the admin routes with their limits), until the gateway closes it or has answered all it
/// could. Whatever the bytes, the answer is HTTP, and the gateway holds no more than its limits.
pub fn admin_request(data: &[u8]) {
    static RUNTIME: OnceLock<(tokio::runtime::Runtime, Arc<Admin>)> = OnceLock::new();
    let (runtime, admin) = RUNTIME.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let admin = runtime.block_on(async { Arc::new(Admin::standalone("secret")) });
        (runtime, admin)
    });
    runtime.block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let stop = tokio_util::sync::CancellationToken::new();
        let (slot, _) = Arc::new(crate::admin::Slots::default()).take(1).expect("a slot");
        let served =
            tokio::spawn(crate::admin::serve_connection(server, peer, admin.clone(), stop, slot));
        // The client writes its bytes and closes its side while reading the answer, so that
        // neither waits on the other. The clock is paused: a read timeout elapses at once when
        // nothing more comes.
        let (mut reading, mut writing) = tokio::io::split(client);
        let request = data.to_vec();
        let writer = tokio::spawn(async move {
            let _ = writing.write_all(&request).await;
            let _ = writing.shutdown().await;
        });
        let mut answer = Vec::new();
        let _ = reading.read_to_end(&mut answer).await;
        let _ = writer.await;
        served.await.expect("the admin connection does not panic");
        if !answer.is_empty() {
            // HTTP/1.0 requests are answered in HTTP/1.0.
            assert!(answer.starts_with(b"HTTP/1."), "an answer that is not HTTP: {answer:?}");
        }
    });
}

/// The secret of [`jwt`]'s key.
const JWT_SECRET: &str = "fuzzing-secret-of-thirty-two-bytes!!";

/// A token presented in AUTH: the first byte picks how the rest is read. Even: the token as
/// sent. Odd: a header and claims (JSON, split at the first `\n`), encoded and signed with the
/// gateway's key, so that the claims are read past the signature check. Either way the answer
/// is a grant or an error naming its kind; a grant never outlives the token's `exp`.
pub fn jwt(data: &[u8]) {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    static AUTH: OnceLock<crate::auth::Authenticator> = OnceLock::new();
    let auth = AUTH.get_or_init(|| {
        let config: crate::auth::AuthConfig = toml::from_str(&format!(
            r#"
            audience = "gateway"
            issuer = "fuzz"
            roles_claim = "roles"
            permissions_claim = "grants"
            forward_claims = ["tenant"]
            default_roles = ["base"]
            [[keys]]
            algorithm = "HS256"
            secret = "{JWT_SECRET}"
            [[keys]]
            kid = "other"
            algorithm = "HS256"
            secret = "{JWT_SECRET}-other"
            [roles.base]
            call = ["echo.*"]
            [roles.admin]
            call = ["*"]
            subscribe = ["*"]
            publish = ["tenant.{{sub}}.>"]
            "#
        ))
        .expect("the fuzz target's auth settings");
        crate::auth::Authenticator::new(&config).expect("the fuzz target's keys")
    });
    let Some((&mode, rest)) = data.split_first() else { return };
    let token = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let (header, claims) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
        let signature =
            jsonwebtoken::crypto::sign(signed.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .expect("HS256 signs any bytes");
        format!("{signed}.{signature}").into_bytes()
    };
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    match auth.authenticate(&token, now) {
        Ok(grant) => {
            if let Some(expires) = grant.expires_at {
                assert!(expires > now, "a grant that has already expired");
            }
            let _ = grant.expires_in_ms(now);
        }
        Err(e) => assert!(!e.message.is_empty(), "a refusal without a reason"),
    }
}

/// A JSON Web Key Set, as `auth.jwks_file` holds: its keys, or an error naming what is wrong.
pub fn jwks(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = crate::auth::keys::from_jwks(text) {
        assert!(!e.is_empty());
    }
}
