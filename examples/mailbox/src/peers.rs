//! Shards and the sequencer over the bus (docs/mailbox.md, "Between shards"): each shard
//! answers requests on `mailbox.shard.<n>.<op>` — `close` (from the sequencer), `route` (from
//! the other shards' inboxes), `status` — and, in [`crate::service`], `read` (the calls of a
//! device whose mailbox it holds, forwarded by the shard a gateway reached).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use gateway_bus::{Bus, BusError, BusMessage, Headers};
use tokio_util::sync::CancellationToken;

use crate::shard::{Routed, Router, Shard};
use crate::store::{EpochRecord, StoredBundle, record_bytes, record_from};

/// The header of an answer that failed: what was wrong.
pub const ERROR: &str = "mailbox-error";
/// The header of a `route` request: the version of the owner's full mailboxes the inbox knows.
pub const KNOWN: &str = "mailbox-full-known";
/// The header of a route from a shard opened again that asks the owner for the owner's own
/// route of the epoch again (`1`), see [`Routed::asks_again`].
pub const AGAIN: &str = "mailbox-route-again";

/// How long a request between shards waits for its answer before it is sent again (sending
/// again is harmless). A request taken by a process that then died is never answered: this is
/// how long its sender takes to notice, and so how long epochs wait after such a death before
/// the shard started again gets the request.
pub const PATIENCE: Duration = Duration::from_secs(2);

/// The subject of `op` on shard `shard`.
pub fn subject(shard: u32, op: &str) -> String {
    format!("mailbox.shard.{shard}.{op}")
}

/// What a shard says of itself (`status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The last epoch it closed as an inbox.
    pub closed: u64,
    /// The last epoch it committed as an owner.
    pub committed: u64,
    /// How many shards it counts.
    pub shards: u32,
    /// Its Ed25519 public key.
    pub public_key: [u8; 32],
}

impl Status {
    fn bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(52);
        out.put_u64(self.closed);
        out.put_u64(self.committed);
        out.put_u32(self.shards);
        out.put_slice(&self.public_key);
        out.freeze()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Status> {
        let bytes: &[u8; 52] = bytes.try_into().ok()?;
        Some(Status {
            closed: u64::from_be_bytes(bytes[0..8].try_into().ok()?),
            committed: u64::from_be_bytes(bytes[8..16].try_into().ok()?),
            shards: u32::from_be_bytes(bytes[16..20].try_into().ok()?),
            public_key: bytes[20..52].try_into().ok()?,
        })
    }
}

/// Why a request to a shard failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("shard {shard} refused `{op}`: {reason}")]
    Refused { shard: u32, op: &'static str, reason: String },
    #[error("shard {shard} answered `{op}` with {len} bytes that mean nothing")]
    Garbled { shard: u32, op: &'static str, len: usize },
}

async fn request(
    bus: &dyn Bus,
    shard: u32,
    op: &'static str,
    headers: Headers,
    payload: Bytes,
) -> Result<BusMessage, PeerError> {
    let answer = bus.request(&subject(shard, op), headers, payload, PATIENCE).await?;
    match answer.headers.get(ERROR) {
        Some(reason) => Err(PeerError::Refused { shard, op, reason: reason.to_owned() }),
        None => Ok(answer),
    }
}

/// Asks shard `shard` for its [`Status`].
///
/// # Errors
///
/// The bus's, or an answer that is not a status.
pub async fn status(bus: &dyn Bus, shard: u32) -> Result<Status, PeerError> {
    let answer = request(bus, shard, "status", Headers::new(), Bytes::new()).await?;
    Status::from_bytes(&answer.payload).ok_or(PeerError::Garbled {
        shard,
        op: "status",
        len: answer.payload.len(),
    })
}

/// Asks shard `shard` to close `epoch`; resolves once it has (every owner of its bundles
/// committed them), with the bundles it numbered.
///
/// # Errors
///
/// The bus's (the close may still go on: closing again is harmless).
pub async fn close(bus: &dyn Bus, shard: u32, epoch: u64) -> Result<u32, PeerError> {
    let answer =
        request(bus, shard, "close", Headers::new(), Bytes::copy_from_slice(&epoch.to_be_bytes()))
            .await?;
    let count: [u8; 4] = answer.payload[..].try_into().map_err(|_| PeerError::Garbled {
        shard,
        op: "close",
        len: answer.payload.len(),
    })?;
    Ok(u32::from_be_bytes(count))
}

/// Hands routes to the other shards over the bus, trying again (every 50 ms, doubling to a
/// second) until the owner has committed.
#[derive(Clone)]
pub struct BusRouter {
    bus: Arc<dyn Bus>,
    shard: Shard,
}

impl std::fmt::Debug for BusRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusRouter").field("shard", &self.shard.number()).finish_non_exhaustive()
    }
}

impl BusRouter {
    pub fn new(bus: Arc<dyn Bus>, shard: Shard) -> BusRouter {
        BusRouter { bus, shard }
    }
}

impl Router for BusRouter {
    fn route(&self, to: u32, epoch: u64, routed: Routed) -> impl Future<Output = ()> + Send {
        let me = self.shard.number();
        let asks_again = routed.asks_again;
        let payloads = route_payloads(epoch, me, routed.bundles, self.bus.max_payload());
        async move {
            futures::future::join_all(payloads.into_iter().map(|payload| async move {
                let mut wait = Duration::from_millis(50);
                for attempt in 1u64.. {
                    let mut headers = Headers::new();
                    headers.insert(KNOWN, self.shard.known_full(to).to_string());
                    if asks_again {
                        headers.insert(AGAIN, "1".to_owned());
                    }
                    match request(&*self.bus, to, "route", headers, payload.clone()).await {
                        Ok(answer) => {
                            if let Some((version, full)) = full_from(&answer.payload) {
                                self.shard.learn_full(to, version, full);
                            }
                            return;
                        }
                        Err(e) if attempt == 1 || attempt % 20 == 0 => {
                            tracing::warn!(shard = me, to, epoch, attempt, error = %e, "cannot route the epoch yet; trying again");
                        }
                        Err(_) => {}
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }))
            .await;
        }
    }
}

/// The bytes a route's header takes: epoch, inbox, piece, pieces.
const ROUTE_HEADER: usize = 20;
/// The bytes a record takes besides its bundles: magic, bundle count, statement count.
const RECORD_OVERHEAD: usize = 16;

/// The bytes `bundle` takes in a record.
pub fn bundle_size(bundle: &StoredBundle) -> usize {
    28 + bundle.common.len()
        + bundle.recipients.iter().map(|r| 2 + r.len()).sum::<usize>()
        + bundle.parts.iter().map(|(_, p)| 8 + p.len()).sum::<usize>()
}

/// The largest bundle a route of at most `limit` bytes carries.
pub fn largest_routable(limit: usize) -> usize {
    limit.saturating_sub(ROUTE_HEADER + RECORD_OVERHEAD)
}

/// A route's `route` requests (docs/mailbox.md, "Between shards"): the epoch, the inbox, which
/// piece of how many, and the bundles as a record without statements, split into pieces of at
/// most `limit` bytes (the bus's largest message) at bundle boundaries; at least one piece.
///
/// # Panics
///
/// If a bundle alone is more than [`largest_routable`]`(limit)` bytes (shards refuse such
/// sends).
pub fn route_payloads(
    epoch: u64,
    from: u32,
    bundles: Vec<StoredBundle>,
    limit: usize,
) -> Vec<Bytes> {
    let room = largest_routable(limit);
    let mut pieces: Vec<Vec<StoredBundle>> = vec![Vec::new()];
    let mut used = 0;
    for bundle in bundles {
        let size = bundle_size(&bundle);
        assert!(size <= room, "a bundle of {size} bytes in a route of at most {limit}");
        if used + size > room {
            pieces.push(Vec::new());
            used = 0;
        }
        used += size;
        pieces.last_mut().expect("a piece").push(bundle);
    }
    let count = pieces.len() as u32;
    (0u32..)
        .zip(pieces)
        .map(|(piece, bundles)| {
            let record = EpochRecord { epoch, bundles, ..EpochRecord::default() };
            let mut payload = BytesMut::new();
            payload.put_u64(epoch);
            payload.put_u32(from);
            payload.put_u32(piece);
            payload.put_u32(count);
            payload.put_slice(&record_bytes(&record));
            payload.freeze()
        })
        .collect()
}

/// A route answer's full mailboxes: the version (u64) and the devices (count u32, each a u16
/// length and UTF-8); empty when the inbox's version is current.
/// At most `limit` bytes: past it, the devices that do not fit are left out (and said so in
/// the log), so that the answer always fits the bus.
fn full_bytes(full: Option<(u64, Vec<String>)>, limit: usize) -> Bytes {
    let Some((version, devices)) = full else { return Bytes::new() };
    let mut fitting = Vec::with_capacity(devices.len());
    let mut size = 12;
    for device in &devices {
        if size + 2 + device.len() > limit {
            break;
        }
        size += 2 + device.len();
        fitting.push(device);
    }
    if fitting.len() < devices.len() {
        tracing::warn!(
            full = devices.len(),
            said = fitting.len(),
            "too many full mailboxes to tell the other shards of them all: sends to the others are not refused there"
        );
    }
    let mut out = BytesMut::with_capacity(size);
    out.put_u64(version);
    out.put_u32(fitting.len() as u32);
    for device in fitting {
        out.put_u16(device.len() as u16);
        out.put_slice(device.as_bytes());
    }
    out.freeze()
}

/// The most bytes a route's answer takes telling full mailboxes.
const FULL_LIMIT: usize = 256 << 10;

fn full_from(mut bytes: &[u8]) -> Option<(u64, Vec<String>)> {
    use bytes::Buf as _;
    if bytes.len() < 12 {
        return None;
    }
    let version = bytes.get_u64();
    let count = bytes.get_u32();
    let mut devices = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        if bytes.len() < 2 {
            return None;
        }
        let len = bytes.get_u16() as usize;
        if bytes.len() < len {
            return None;
        }
        devices.push(String::from_utf8(bytes[..len].to_vec()).ok()?);
        bytes.advance(len);
    }
    Some((version, devices))
}

/// Answers `close`, `route` and `status` for `shard` on `bus` until `stop` (requests already
/// taken are still answered).
///
/// # Errors
///
/// When the bus refuses the subscription.
pub async fn serve(
    shard: Shard,
    bus: Arc<dyn Bus>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, BusError> {
    let me = shard.number();
    let mut requests = Vec::new();
    for op in ["close", "route", "status"] {
        requests.push((op, bus.subscribe(&subject(me, op), None).await?));
    }
    let router = BusRouter::new(bus.clone(), shard.clone());
    shard.limit_bundles(largest_routable(bus.max_payload()));
    let pieces = Arc::new(Pieces::default());
    Ok(tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(watch_for_the_sequencer(shard.clone(), stop.clone()));
        for (op, mut subscription) in requests {
            let (shard, bus, router, stop, pieces) =
                (shard.clone(), bus.clone(), router.clone(), stop.clone(), pieces.clone());
            tasks.spawn(async move {
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        message = subscription.next() => message,
                    };
                    let Some(message) = message else { return };
                    let (shard, bus, router, pieces) =
                        (shard.clone(), bus.clone(), router.clone(), pieces.clone());
                    tokio::spawn(async move {
                        let Some(reply) = message.reply.clone() else { return };
                        let (headers, payload) = match answer(op, &shard, &router, &pieces, message).await {
                            Ok(payload) => (Headers::new(), payload),
                            Err(reason) => {
                                tracing::warn!(shard = shard.number(), op, %reason, "refused a request");
                                let mut headers = Headers::new();
                                headers.insert(ERROR, reason);
                                (headers, Bytes::new())
                            }
                        };
                        let _ = bus.publish(&reply, headers, payload).await;
                    });
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }))
}

/// Warns (every 30 s at most) while bundles wait and no epoch has been closed for 5 s: with
/// several shards, epochs end only when the sequencer closes them.
async fn watch_for_the_sequencer(shard: Shard, stop: CancellationToken) {
    const QUIET: Duration = Duration::from_secs(5);
    let mut last = (shard.progress().0, tokio::time::Instant::now());
    let mut warned: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let closed = shard.progress().0;
        let now = tokio::time::Instant::now();
        if closed != last.0 {
            last = (closed, now);
            continue;
        }
        let waiting = shard.waiting();
        let due = warned.is_none_or(|at| now - at >= Duration::from_secs(30));
        if waiting > 0 && now - last.1 >= QUIET && due {
            tracing::warn!(
                shard = shard.number(),
                waiting,
                quiet = ?(now - last.1),
                "no epoch closed while bundles wait: is the sequencer running (mailbox-sequencer --shards {})?",
                shard.shards()
            );
            warned = Some(now);
        }
    }
}

/// The most pieces one route may come in.
const MAX_PIECES: u32 = 1 << 16;

/// The pieces of one route here so far, by piece number.
type Held = Vec<Option<Vec<StoredBundle>>>;

/// Routes arriving in pieces: per epoch and inbox, the pieces here so far.
#[derive(Debug, Default)]
struct Pieces(std::sync::Mutex<HashMap<(u64, u32), Held>>);

impl Pieces {
    /// Keeps `piece` of `pieces` of the route of `epoch` from `from`; the whole route's bundles,
    /// in order, once every piece is here. Forgets the pieces of committed epochs.
    fn put(
        &self,
        shard: &Shard,
        epoch: u64,
        from: u32,
        piece: u32,
        pieces: u32,
        bundles: Vec<StoredBundle>,
    ) -> Option<Vec<StoredBundle>> {
        if pieces == 1 {
            return Some(bundles);
        }
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let committed = shard.progress().1;
        held.retain(|(e, _), _| *e > committed);
        let slots = held.entry((epoch, from)).or_insert_with(|| vec![None; pieces as usize]);
        if slots.len() != pieces as usize {
            *slots = vec![None; pieces as usize];
        }
        slots[piece as usize] = Some(bundles);
        if slots.iter().any(Option::is_none) {
            return None;
        }
        let slots = held.remove(&(epoch, from)).expect("held");
        Some(slots.into_iter().flatten().flatten().collect())
    }
}

async fn answer(
    op: &str,
    shard: &Shard,
    router: &BusRouter,
    pieces_in: &Pieces,
    message: BusMessage,
) -> Result<Bytes, String> {
    match op {
        "status" => {
            let (closed, committed) = shard.progress();
            Ok(Status { closed, committed, shards: shard.shards(), public_key: shard.public_key() }
                .bytes())
        }
        "close" => {
            let epoch: [u8; 8] = message.payload[..].try_into().map_err(|_| {
                format!("a close of {} bytes, not an 8-byte epoch", message.payload.len())
            })?;
            let numbered = shard.close(u64::from_be_bytes(epoch), router).await;
            Ok(Bytes::copy_from_slice(&(numbered as u32).to_be_bytes()))
        }
        "route" => {
            let payload = &message.payload;
            if payload.len() < ROUTE_HEADER {
                return Err(format!("a route of {} bytes", payload.len()));
            }
            let epoch = u64::from_be_bytes(payload[0..8].try_into().expect("8"));
            let from = u32::from_be_bytes(payload[8..12].try_into().expect("4"));
            let piece = u32::from_be_bytes(payload[12..16].try_into().expect("4"));
            let pieces = u32::from_be_bytes(payload[16..20].try_into().expect("4"));
            if from >= shard.shards() || from == shard.number() {
                return Err(format!("a route from shard {from} of {}", shard.shards()));
            }
            if piece >= pieces || pieces > MAX_PIECES {
                return Err(format!("piece {piece} of {pieces} of a route"));
            }
            let record = record_from(epoch, &payload[ROUTE_HEADER..]).map_err(|e| e.to_string())?;
            if let Some(stray) = record.bundles.iter().find(|b| {
                b.bundle.epoch != epoch
                    || b.bundle.shard != from
                    || b.parts.iter().any(|(position, _)| {
                        b.recipients.get(*position as usize).is_none_or(|device| {
                            crate::hash::owner(device, shard.shards()) != shard.number()
                        })
                    })
            }) {
                return Err(format!(
                    "a route of epoch {epoch} from shard {from} holds bundle {} with a part for another shard or from another epoch",
                    stray.bundle
                ));
            }
            let known = message.headers.get(KNOWN).and_then(|v| v.parse().ok()).unwrap_or(0);
            // Once per route, not once per piece.
            if piece == 0 && message.headers.get(AGAIN) == Some("1") && shard.has_closed(epoch) {
                // The inbox was opened again and may have committed the epoch, empty, before
                // dying, answering this shard's route then: this shard's route to it was empty
                // (had it carried bundles, the inbox would have stored the epoch), so an empty
                // route again completes the epoch there, and is answered at once where it is
                // committed. Sent without the header: no route is sent back for it.
                let (router, me) = (router.clone(), shard.number());
                tokio::spawn(async move {
                    router.route(from, epoch, Routed::new(me, Vec::new())).await
                });
            }
            match pieces_in.put(shard, epoch, from, piece, pieces, record.bundles) {
                Some(bundles) => {
                    shard.accept(epoch, Routed::new(from, bundles)).await;
                }
                None => shard.committed(epoch).await,
            }
            Ok(full_bytes(shard.full_since(known), FULL_LIMIT))
        }
        other => Err(format!("no such request: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeqId;

    #[test]
    fn the_documented_route() {
        // docs/mailbox.md, "Between shards": bundle 3.0.0 to ["carol", "bob"], bob's part.
        let bundle = StoredBundle {
            bundle: SeqId { epoch: 3, shard: 0, index: 0 },
            recipients: vec!["carol".to_owned(), "bob".to_owned()].into(),
            common: Bytes::from_static(b"hi"),
            parts: vec![(1, Bytes::from_static(b"p"))],
        };
        assert_eq!(crate::hash::owner("bob", 2), 1);
        let payloads = route_payloads(3, 0, vec![bundle], 1 << 20);
        assert_eq!(payloads.len(), 1);
        let hex: String = payloads[0].iter().map(|b| format!("{b:02x}")).collect();
        let documented = "0000000000000003 00000000 00000000 00000001 4d42585245433032 00000001 \
            00000000000000030000000000000000 00000002 0005 6361726f6c 0003 626f62 \
            00000002 6869 00000001 00000001 00000001 70 00000000";
        assert_eq!(hex, documented.split_whitespace().collect::<String>());
    }

    #[test]
    fn routes_come_in_pieces_that_fit_the_bus() {
        let bundle = |index: u32| StoredBundle {
            bundle: SeqId { epoch: 3, shard: 0, index },
            recipients: vec!["bob".to_owned()].into(),
            common: Bytes::from(vec![7; 100]),
            parts: vec![(0, Bytes::from(vec![9; 50]))],
        };
        let size = bundle_size(&bundle(0));
        let bundles: Vec<StoredBundle> = (0..10).map(bundle).collect();
        // Room for three bundles a piece: four pieces, each within the limit, in order.
        let limit = ROUTE_HEADER + RECORD_OVERHEAD + 3 * size;
        let payloads = route_payloads(3, 0, bundles.clone(), limit);
        assert_eq!(payloads.len(), 4);
        let mut back = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            assert!(payload.len() <= limit, "piece {i}: {} bytes", payload.len());
            assert_eq!(&payload[12..20], &[0, 0, 0, i as u8, 0, 0, 0, 4]);
            back.extend(record_from(3, &payload[ROUTE_HEADER..]).expect("a record").bundles);
        }
        assert_eq!(back, bundles);
        // An empty route is one piece.
        assert_eq!(route_payloads(3, 0, Vec::new(), limit).len(), 1);
    }

    #[test]
    fn full_sets_come_back_as_written_and_cut_ones_are_refused() {
        let bytes = full_bytes(Some((7, vec!["a".to_owned(), "bé".to_owned()])), 1000);
        assert_eq!(full_from(&bytes), Some((7, vec!["a".to_owned(), "bé".to_owned()])));
        for len in 0..bytes.len() {
            assert_eq!(full_from(&bytes[..len]), None, "{len} bytes");
        }
        assert!(full_bytes(None, 1000).is_empty());
        // Past the limit, the devices that do not fit are left out.
        let many: Vec<String> = (0..100).map(|d| format!("device-{d:03}")).collect();
        let bytes = full_bytes(Some((8, many.clone())), 12 + 10 * 12);
        assert!(bytes.len() <= 12 + 10 * 12);
        assert_eq!(full_from(&bytes), Some((8, many[..10].to_vec())));
    }

    #[test]
    fn statuses_come_back_as_written() {
        let status = Status { closed: 9, committed: 8, shards: 2, public_key: [7; 32] };
        assert_eq!(Status::from_bytes(&status.bytes()), Some(status));
        assert_eq!(Status::from_bytes(&status.bytes()[..51]), None);
    }
}
