//! The mailbox behind the gateway (`schemas/mailbox/mailbox.service`, docs/mailbox.md, "The
//! service"): `send`, `fetch`, `ack`, `attestations`, `keys`, and each committed batch published
//! on the keyed topic `batches` under its device's id.
//!
//! A caller with a token acts for its subject: `fetch`, `ack` and `attestations` name no
//! device (or the subject itself), and a device subscribes to `batches` with its own id, which
//! the gateway's permissions enforce (`Mailbox.batches.{sub}`, docs/auth.md). Anonymous callers
//! name the device themselves, only when the service allows it (development).

use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use gateway_bus::{Bus, BusError, Headers, contract};
use gateway_core::flatbuffers::{FlatBufferBuilder, ForwardsUOffset, Vector, WIPOffset};
use gateway_core::{CallContext, Message, Status, Table, Topics};
use tokio_util::sync::CancellationToken;

use crate::shard::{self, Refused, Shard};
use crate::{SeqId, peers};

gateway_core::include_generated!("mailbox");

pub use examples::mailbox::mailbox::{
    DESCRIPTOR, Mailbox, MailboxClient, MailboxError, MailboxServer,
};
pub use examples::mailbox::{
    AckReplyT, AckRequestT, AttestationsReplyT, AttestationsRequestT, BatchT, FetchReplyT,
    FetchRequestT, KeysRequestT, KeysT, MessageT, PartT, SendReplyT, SendRequestT, ShardKeyT,
    SignedT,
};
use examples::mailbox::{AckRequest, AttestationsRequest, FetchRequest};

/// The most batches one `fetch` returns.
pub const MAX_FETCH: usize = 1024;

/// The service over one shard: it takes sends in, and serves the devices whose mailboxes it
/// holds; with several shards, it forwards the reads of other devices to their shard over the
/// bus (`read`, docs/mailbox.md, "Between shards").
#[derive(Clone)]
pub struct MailboxService {
    shard: Shard,
    allow_anonymous: bool,
    bus: Option<Arc<dyn Bus>>,
    /// Every shard's key, once known.
    keys: Arc<OnceLock<Vec<ShardKeyT>>>,
}

impl std::fmt::Debug for MailboxService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxService")
            .field("shard", &self.shard.number())
            .field("allow_anonymous", &self.allow_anonymous)
            .finish_non_exhaustive()
    }
}

impl MailboxService {
    /// A service over `shard`; anonymous callers may do nothing but `keys`.
    pub fn new(shard: Shard) -> MailboxService {
        MailboxService { shard, allow_anonymous: false, bus: None, keys: Arc::default() }
    }

    /// Lets anonymous callers send and name the mailbox they read (development only).
    pub fn allow_anonymous(mut self, allow: bool) -> MailboxService {
        self.allow_anonymous = allow;
        self
    }

    /// The mailbox a call may read: the token's subject (a named device must be it), or for
    /// an anonymous caller, when allowed, the one it names.
    fn mailbox(&self, ctx: &CallContext, named: Option<&str>) -> Result<String, Status> {
        let named = named.filter(|device| !device.is_empty());
        match (ctx.identity(), named) {
            (Some(identity), None) => Ok(identity.subject.clone()),
            (Some(identity), Some(device)) if device == identity.subject => {
                Ok(identity.subject.clone())
            }
            (Some(identity), Some(device)) => Err(MailboxError::NotYourMailbox.status(format!(
                "{:?} may read only its own mailbox, not {device:?}",
                identity.subject
            ))),
            (None, Some(device)) if self.allow_anonymous => Ok(device.to_owned()),
            (None, _) if self.allow_anonymous => {
                Err(Status::invalid_argument("an anonymous caller names its device"))
            }
            (None, _) => Err(Status::unauthenticated("mailboxes are read with a token")),
        }
    }

    /// The bus to the other shards (needed when there are several).
    pub fn with_peers(mut self, bus: Arc<dyn Bus>) -> MailboxService {
        self.bus = Some(bus);
        self
    }

    /// The shard holding `device`'s mailbox, if not this one.
    fn elsewhere(&self, device: &str) -> Option<u32> {
        let owner = crate::hash::owner(device, self.shard.shards());
        (owner != self.shard.number()).then_some(owner)
    }

    /// Forwards the call `call` of `device` (its request's bytes) to shard `owner`.
    async fn forward<T: Table>(
        &self,
        owner: u32,
        call: &'static str,
        device: &str,
        request: &Bytes,
    ) -> Result<Message<T>, Status> {
        let bus = self.bus.as_ref().ok_or_else(|| {
            Status::internal(format!(
                "the mailbox of {device:?} is on shard {owner}, and this shard has no bus to it"
            ))
        })?;
        let mut headers = Headers::new();
        headers.insert(CALL, call);
        let answer = bus
            .request(
                &peers::subject(owner, "read"),
                headers,
                read_payload(device, request),
                peers::PATIENCE,
            )
            .await
            .map_err(|e| e.to_status())?;
        if let Some(status) = contract::status_from_headers(&answer.headers) {
            return Err(status);
        }
        Message::from_bytes(answer.payload).map_err(|e| {
            Status::internal(format!(
                "shard {owner} answered `{call}` with a buffer that does not verify: {e}"
            ))
        })
    }

    fn fetch_here(
        &self,
        device: &str,
        request: FetchRequest<'_>,
    ) -> Result<Message<FetchReplyT>, Status> {
        let after = id_of(request.after().map(|a| a.bytes()), "after")?;
        let max = (request.max_batches() as usize).clamp(1, MAX_FETCH);
        let batches = self.shard.fetch(device, after, max);
        let mut fbb = FlatBufferBuilder::with_capacity(
            batches.iter().map(|b| batch_size(b)).sum::<usize>() + 64,
        );
        let written: Vec<_> = batches.iter().map(|b| write_batch(&mut fbb, b)).collect();
        let batches = fbb.create_vector(&written);
        let args = examples::mailbox::FetchReplyArgs { batches };
        let root = examples::mailbox::FetchReply::create(&mut fbb, &args);
        fbb.finish_minimal(root);
        Ok(finished(fbb, "FetchReply"))
    }

    fn ack_here(
        &self,
        device: &str,
        request: AckRequest<'_>,
    ) -> Result<Message<AckReplyT>, Status> {
        let upto = id_of(Some(request.upto().bytes()), "upto")?
            .ok_or_else(|| Status::invalid_argument("upto is empty"))?;
        let deleted = self.shard.ack(device, upto);
        Ok(Message::pack(&AckReplyT { deleted: u32::try_from(deleted).unwrap_or(u32::MAX) }))
    }

    fn attestations_here(
        &self,
        device: &str,
        request: AttestationsRequest<'_>,
    ) -> Result<Message<AttestationsReplyT>, Status> {
        let attestations = self.shard.attestations(device, request.from_epoch());
        Ok(Message::pack(&AttestationsReplyT {
            attestations: attestations
                .iter()
                .map(|s| SignedT { bytes: s.bytes().to_vec() })
                .collect(),
        }))
    }

    /// Answers a `read` forwarded by another shard: the call's name in the `mailbox-call`
    /// header, the device and the request in the payload.
    fn read(&self, call: &str, payload: &Bytes) -> Result<Bytes, Status> {
        let (device, request) = read_from(payload).ok_or_else(|| {
            Status::invalid_argument("a read whose payload is not a device and a request")
        })?;
        if let Some(owner) = self.elsewhere(&device) {
            return Err(Status::internal(format!(
                "the mailbox of {device:?} is on shard {owner}, not {}",
                self.shard.number()
            )));
        }
        let bad =
            |e| Status::invalid_argument(format!("a forwarded `{call}` that does not verify: {e}"));
        Ok(match call {
            "fetch" => {
                let request = Message::<FetchRequestT>::from_bytes(request).map_err(bad)?;
                self.fetch_here(&device, request.get())?.into_bytes()
            }
            "ack" => {
                let request = Message::<AckRequestT>::from_bytes(request).map_err(bad)?;
                self.ack_here(&device, request.get())?.into_bytes()
            }
            "attestations" => {
                let request = Message::<AttestationsRequestT>::from_bytes(request).map_err(bad)?;
                self.attestations_here(&device, request.get())?.into_bytes()
            }
            other => return Err(Status::invalid_argument(format!("no such read: {other:?}"))),
        })
    }

    /// Answers the reads other shards forward to this one, on `bus`, until `stop`.
    ///
    /// # Errors
    ///
    /// When the bus refuses the subscription.
    pub async fn serve_reads(
        self,
        bus: Arc<dyn Bus>,
        stop: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, BusError> {
        let mut reads = bus.subscribe(&peers::subject(self.shard.number(), "read"), None).await?;
        Ok(tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return,
                    message = reads.next() => message,
                };
                let Some(message) = message else { return };
                let Some(reply) = message.reply else { continue };
                let call = message.headers.get(CALL).unwrap_or_default();
                let answer = self.read(call, &message.payload).and_then(|payload| {
                    // Headers and all must fit the bus's largest message.
                    let room = bus.max_payload().saturating_sub(1024);
                    if payload.len() > room {
                        return Err(Status::resource_exhausted(format!(
                            "the answer to `{call}` is {} bytes, more than the bus carries ({room}): ask for fewer batches",
                            payload.len()
                        )));
                    }
                    Ok(payload)
                });
                let (headers, payload) = match answer {
                    Ok(payload) => (Headers::new(), payload),
                    Err(status) => (contract::status_headers(&status), Bytes::new()),
                };
                if let Err(e) = bus.publish(&reply, headers, payload).await {
                    tracing::warn!(call, error = %e, "cannot answer a read forwarded by another shard");
                }
            }
        }))
    }
}

/// The header of a forwarded read naming the call.
const CALL: &str = "mailbox-call";

/// A forwarded read's payload: the device (u16 length, UTF-8), then the request's bytes.
fn read_payload(device: &str, request: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + device.len() + request.len());
    out.put_u16(device.len() as u16);
    out.put_slice(device.as_bytes());
    out.put_slice(request);
    out.freeze()
}

fn read_from(payload: &Bytes) -> Option<(String, Bytes)> {
    let len = u16::from_be_bytes(payload.get(..2)?.try_into().ok()?) as usize;
    let device = std::str::from_utf8(payload.get(2..2 + len)?).ok()?.to_owned();
    Some((device, payload.slice(2 + len..)))
}

fn id_of(bytes: Option<&[u8]>, what: &str) -> Result<Option<SeqId>, Status> {
    match bytes {
        None | Some([]) => Ok(None),
        Some(bytes) => {
            let bytes: &[u8; 16] = bytes.try_into().map_err(|_| {
                Status::invalid_argument(format!("{what} is {} bytes, not 16", bytes.len()))
            })?;
            Ok(Some(SeqId::from_bytes(bytes)))
        }
    }
}

fn status_of(refused: Refused) -> Status {
    let (message, retryable) = (refused.to_string(), refused.retryable());
    let status = match refused {
        Refused::MailboxFull(_) => MailboxError::MailboxFull.status(message),
        Refused::Busy(_) | Refused::Storage(_) | Refused::Stopped => Status::unavailable(message),
        Refused::NoRecipients
        | Refused::TooManyRecipients(..)
        | Refused::Parts { .. }
        | Refused::BadDevice(..)
        | Refused::Duplicate(_)
        | Refused::TooLarge(..) => MailboxError::BadBundle.status(message),
    };
    status.with_retryable(retryable)
}

/// The bytes a batch takes in a buffer, about: the builder's starting capacity.
fn batch_size(batch: &shard::Batch) -> usize {
    let messages: usize = batch
        .messages
        .iter()
        .map(|m| {
            96 + m.common.len()
                + m.part.len()
                + m.recipients.iter().map(|r| r.len() + 8).sum::<usize>()
        })
        .sum();
    64 + batch.attestation.bytes().len() + messages
}

/// Writes `batch` as a `Batch` table into `fbb` (a bundle's recipient list written once per run
/// of its messages).
fn write_batch<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    batch: &shard::Batch,
) -> WIPOffset<examples::mailbox::Batch<'a>> {
    use examples::mailbox::{Batch, BatchArgs, Message as MessageTable, MessageArgs};
    /// A recipient list written, and the list it was written from.
    type Written<'a> = (*const [String], WIPOffset<Vector<'a, ForwardsUOffset<&'a str>>>);
    let mut messages = Vec::with_capacity(batch.messages.len());
    let mut shared: Option<Written<'a>> = None;
    for m in &batch.messages {
        let id = fbb.create_vector(&m.id.to_bytes());
        let bundle = fbb.create_vector(&m.bundle.to_bytes());
        let recipients = match shared {
            Some((list, offset)) if std::ptr::eq(list, Arc::as_ptr(&m.recipients)) => offset,
            _ => {
                let strings: Vec<_> = m.recipients.iter().map(|r| fbb.create_string(r)).collect();
                let offset = fbb.create_vector(&strings);
                shared = Some((Arc::as_ptr(&m.recipients), offset));
                offset
            }
        };
        let common = Some(fbb.create_vector(&m.common));
        let part = Some(fbb.create_vector(&m.part));
        let args = MessageArgs { id, bundle, recipients, common, part };
        messages.push(MessageTable::create(fbb, &args));
    }
    let messages = fbb.create_vector(&messages);
    let attestation = fbb.create_vector(batch.attestation.bytes());
    Batch::create(fbb, &BatchArgs { attestation, messages })
}

/// The message of a finished builder.
fn finished<T: gateway_core::Table>(fbb: FlatBufferBuilder<'_>, what: &str) -> Message<T> {
    let (buffer, head) = fbb.collapse();
    Message::from_bytes(Bytes::from(buffer).split_off(head))
        .unwrap_or_else(|e| panic!("the builder wrote an invalid {what}: {e}"))
}

/// A batch as the API carries it, built straight into one FlatBuffers buffer.
pub fn batch_message(batch: &shard::Batch) -> Message<BatchT> {
    let mut fbb = FlatBufferBuilder::with_capacity(batch_size(batch));
    let root = write_batch(&mut fbb, batch);
    fbb.finish_minimal(root);
    finished(fbb, "Batch")
}

impl Mailbox for MailboxService {
    async fn send(
        &self,
        ctx: CallContext,
        request: Message<SendRequestT>,
    ) -> Result<Message<SendReplyT>, Status> {
        if ctx.identity().is_none() && !self.allow_anonymous {
            return Err(Status::unauthenticated("sending takes a token"));
        }
        // The ciphertexts are copied out of the request (whose buffer may hold other frames,
        // and a mailbox may keep them for long) into one buffer of their own.
        let request = request.get();
        let common = request.common().map_or(&[][..], |c| c.bytes());
        let parts: Vec<&[u8]> =
            request.parts().iter().map(|p| p.bytes().map_or(&[][..], |b| b.bytes())).collect();
        let mut owned =
            BytesMut::with_capacity(common.len() + parts.iter().map(|p| p.len()).sum::<usize>());
        owned.put_slice(common);
        for part in &parts {
            owned.put_slice(part);
        }
        let mut owned = owned.freeze();
        let common = owned.split_to(common.len());
        let parts = parts.iter().map(|part| owned.split_to(part.len())).collect();
        let bundle = shard::Bundle {
            recipients: request.recipients().iter().map(str::to_owned).collect(),
            common,
            parts,
        };
        let sent = self.shard.send(bundle).await.map_err(status_of)?;
        let mut fbb = FlatBufferBuilder::with_capacity(sent.receipt.bytes().len() + 64);
        let args = examples::mailbox::SendReplyArgs {
            bundle: fbb.create_vector(&sent.bundle.to_bytes()),
            receipt: fbb.create_vector(sent.receipt.bytes()),
        };
        let root = examples::mailbox::SendReply::create(&mut fbb, &args);
        fbb.finish_minimal(root);
        Ok(finished(fbb, "SendReply"))
    }

    async fn fetch(
        &self,
        ctx: CallContext,
        request: Message<FetchRequestT>,
    ) -> Result<Message<FetchReplyT>, Status> {
        let device = self.mailbox(&ctx, request.get().device())?;
        match self.elsewhere(&device) {
            Some(owner) => self.forward(owner, "fetch", &device, request.bytes()).await,
            None => self.fetch_here(&device, request.get()),
        }
    }

    async fn ack(
        &self,
        ctx: CallContext,
        request: Message<AckRequestT>,
    ) -> Result<Message<AckReplyT>, Status> {
        let device = self.mailbox(&ctx, request.get().device())?;
        match self.elsewhere(&device) {
            Some(owner) => self.forward(owner, "ack", &device, request.bytes()).await,
            None => self.ack_here(&device, request.get()),
        }
    }

    async fn attestations(
        &self,
        ctx: CallContext,
        request: Message<AttestationsRequestT>,
    ) -> Result<Message<AttestationsReplyT>, Status> {
        let device = self.mailbox(&ctx, request.get().device())?;
        match self.elsewhere(&device) {
            Some(owner) => self.forward(owner, "attestations", &device, request.bytes()).await,
            None => self.attestations_here(&device, request.get()),
        }
    }

    async fn keys(
        &self,
        _ctx: CallContext,
        _request: Message<KeysRequestT>,
    ) -> Result<Message<KeysT>, Status> {
        if let Some(keys) = self.keys.get() {
            return Ok(Message::pack(&KeysT { shards: keys.clone() }));
        }
        let mut keys = Vec::new();
        for shard in 0..self.shard.shards() {
            let public_key = if shard == self.shard.number() {
                self.shard.public_key()
            } else {
                let bus = self
                    .bus
                    .as_ref()
                    .ok_or_else(|| Status::internal("no bus to the other shards"))?;
                peers::status(&**bus, shard)
                    .await
                    .map_err(|e| Status::unavailable(format!("shard {shard}'s key: {e}")))?
                    .public_key
            };
            keys.push(ShardKeyT { shard, public_key: public_key.to_vec() });
        }
        let keys = self.keys.get_or_init(|| keys).clone();
        Ok(Message::pack(&KeysT { shards: keys }))
    }
}

/// Publishes every batch the shard commits on `batches`, under its device's id, until `stop`.
/// A batch the publisher could not keep up with is not lost: the device fetches it.
pub async fn publish_batches<T: Topics>(
    shard: Shard,
    publisher: MailboxClient<T>,
    stop: CancellationToken,
) {
    let mut deliveries = shard.deliveries();
    loop {
        let batch = tokio::select! {
            () = stop.cancelled() => return,
            batch = deliveries.recv() => batch,
        };
        match batch {
            Ok(batch) => {
                if let Err(status) =
                    publisher.publish_batches(&batch.device, batch_message(&batch)).await
                {
                    tracing::warn!(device = %batch.device, %status, "cannot publish a batch");
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the publisher fell behind the shard: devices fetch those batches"
                );
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The [`Arc`]'d server, for a [`gateway_bus::ServiceRuntime`].
pub fn server(service: MailboxService) -> Arc<dyn gateway_core::Dispatch> {
    Arc::new(MailboxServer::new(service))
}

/// Calls one instance serves at once: a send waits for its epoch (a few milliseconds), parked
/// at almost no cost, so an instance takes far more at once than the runtime's default of
/// 1,024 (the shard bounds the bundles waiting, [`shard::Limits::pending`]).
pub const CONCURRENCY: usize = 16_384;

/// The service on `bus`, taking [`CONCURRENCY`] calls at once.
pub fn runtime(bus: Arc<dyn Bus>, service: MailboxService) -> gateway_bus::ServiceRuntime {
    gateway_bus::ServiceRuntime::new(bus, server(service)).with_options(gateway_bus::ServeOptions {
        concurrency: CONCURRENCY,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..gateway_bus::ServeOptions::default()
    })
}
