//! Roughtime behind the gateway (`schemas/roughtime/roughtime.service`): a client sends a nonce
//! and gets back the Roughtime request made for it and the signed response, which it verifies
//! as any Roughtime client does. Calls that arrive together share one Merkle tree and one
//! signature: a batching thread takes every call queued when it wakes (up to `max_batch`),
//! answers them with one signature per version, and hands each caller its response.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use gateway_core::{CallContext, Message, Status};
use tokio::sync::{mpsc, oneshot};

use crate::keys::LongTermKey;
use crate::protocol::{Request, Version, now_seconds, request_packet};
use crate::respond::Responder;

gateway_core::include_generated!("roughtime");

pub use examples::roughtime::roughtime::{DESCRIPTOR, Roughtime, RoughtimeClient, RoughtimeServer};
pub use examples::roughtime::{EmptyT, PublicKeyT, TimeReplyT, TimeRequestT};

/// How the service signs.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The most calls under one signature.
    pub max_batch: usize,
    /// RADI, seconds.
    pub radius: u32,
    /// How long each online key is delegated for (replaced with a quarter left).
    pub key_lifetime: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { max_batch: 64, radius: 3, key_lifetime: Duration::from_secs(24 * 3600) }
    }
}

struct Pending {
    request: Vec<u8>,
    reply: oneshot::Sender<Vec<u8>>,
}

/// The service: cheap to clone, the signing in one thread behind it.
#[derive(Clone, Debug)]
pub struct TimeService {
    calls: mpsc::Sender<Pending>,
    public: [u8; 32],
    batches: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("request", &self.request.len()).finish()
    }
}

impl TimeService {
    /// Starts the signing thread.
    ///
    /// # Errors
    ///
    /// No randomness for the online key, or no thread.
    pub fn start(key: LongTermKey, config: ServiceConfig) -> std::io::Result<TimeService> {
        let (calls, queue) = mpsc::channel::<Pending>(config.max_batch.max(1) * 16);
        let public = key.public();
        let batches = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = batches.clone();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        std::thread::Builder::new().name("rt-service".into()).spawn(move || {
            sign_loop(key, config, queue, &counter, &ready_tx);
        })?;
        ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("the signing thread stopped"))?
            .map_err(std::io::Error::other)?;
        Ok(TimeService { calls, public, batches })
    }

    /// The long-term public key responses verify against.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Batches signed so far (each one signature per version present).
    pub fn batches(&self) -> u64 {
        self.batches.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn delegation(key: &LongTermKey, config: &ServiceConfig) -> Result<Responder, String> {
    let delegation = key
        .delegate_from(now_seconds(), config.key_lifetime)
        .map_err(|e| format!("no randomness for an online key: {e}"))?;
    Ok(Responder::new(delegation, config.radius))
}

fn sign_loop(
    key: LongTermKey,
    config: ServiceConfig,
    mut queue: mpsc::Receiver<Pending>,
    batches: &std::sync::atomic::AtomicU64,
    ready: &std_mpsc::Sender<Result<(), String>>,
) {
    let mut responder = match delegation(&key, &config) {
        Ok(responder) => responder,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let srv = key.srv();
    let lifetime = config.key_lifetime.as_secs().max(4);
    let mut batch: Vec<Pending> = Vec::with_capacity(config.max_batch);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < config.max_batch {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if now_seconds() + lifetime / 4 >= responder.delegation().maxt() {
            if let Ok(next) = delegation(&key, &config) {
                responder = next;
            }
        }
        // The service made every request, so each parses and fits its answer; one that did not
        // would get no answer, and its caller an error.
        let (requests, indices): (Vec<Request<'_>>, Vec<usize>) = batch
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Request::parse(&p.request, &srv).ok().map(|r| (r, i)))
            .unzip();
        let mut responses: Vec<Option<Vec<u8>>> = vec![None; batch.len()];
        responder.respond(&requests, now_seconds(), |i, bytes| {
            responses[indices[i]] = Some(bytes.to_vec())
        });
        batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (pending, response) in batch.drain(..).zip(responses) {
            if let Some(response) = response {
                let _ = pending.reply.send(response);
            }
        }
    }
}

impl Roughtime for TimeService {
    async fn time(
        &self,
        _ctx: CallContext,
        request: Message<TimeRequestT>,
    ) -> Result<Message<TimeReplyT>, Status> {
        let call = request.get();
        let nonce: [u8; 32] = call.nonce().bytes().try_into().map_err(|_| {
            Status::invalid_argument(format!(
                "the nonce must be 32 bytes, not {}",
                call.nonce().len()
            ))
        })?;
        let version = if call.draft() { Version::Draft } else { Version::Rfc };
        let packet = request_packet(&nonce, &[version], None);
        let (reply, answer) = oneshot::channel();
        self.calls
            .send(Pending { request: packet.clone(), reply })
            .await
            .map_err(|_| Status::unavailable("the Roughtime signer has stopped"))?;
        let response =
            answer.await.map_err(|_| Status::internal("the Roughtime signer dropped the call"))?;
        Ok(Message::pack(&TimeReplyT { request: packet, response }))
    }

    async fn public_key(
        &self,
        _ctx: CallContext,
        _request: Message<EmptyT>,
    ) -> Result<Message<PublicKeyT>, Status> {
        Ok(Message::pack(&PublicKeyT { key: self.public.to_vec() }))
    }
}
