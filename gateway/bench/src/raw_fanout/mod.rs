//! The fan-out baseline: a length-framed TCP server that speaks just enough of the protocol to
//! relay events, the transport's limit for fan-out.
//!
//! It answers HELLO with WELCOME, SUBSCRIBE with SUBSCRIBED (any topic, any key: there is one
//! stream of events), PING with PONG, and forwards the payload of every PUBLISH as an EVENT to
//! every subscription, acknowledging the PUBLISH with an empty RESPONSE when its request id is
//! not 0. The EVENT is encoded once per subscription id (once in all, when every client uses the
//! same id, as the load generator does) and the same bytes go to every connection's `outbox`,
//! bounded with drop-oldest and MISSED, as the gateway's `drop_oldest` topics are. What the
//! gateway adds on top is its hub, its bus and its per-subscription queues; no checks happen here
//! (no permissions, no topic lookup).

mod outbox;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use gateway_protocol::{
    DEFAULT_MAX_FRAME_SIZE, Decoded, Event, Frame, Publish, Response, Welcome, decode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use outbox::{Outbox, Taken};

/// The default bound of a connection's pending events, in bytes: the gateway's default
/// `send_queue_bytes`, so that both drop at the same backlog.
pub const DEFAULT_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// The read buffer's starting capacity.
const READ_BUFFER: usize = 16 * 1024;

/// Every subscription of the server.
#[derive(Debug, Default)]
struct Subscriptions {
    /// A std mutex: held to add, remove, or hand one event to every outbox, never across an
    /// `.await`.
    all: Mutex<Vec<Subscription>>,
    /// Numbers connections, so that a closing one can find its subscriptions.
    next_connection: AtomicU64,
}

#[derive(Debug)]
struct Subscription {
    connection: u64,
    id: u32,
    outbox: Arc<Outbox>,
}

impl Subscriptions {
    /// Hands `publish`'s payload, as an EVENT, to every subscription.
    fn publish(&self, publish: &Publish) {
        // Encoded frames by subscription id; nearly always one entry.
        let mut encoded: Vec<(u32, Bytes)> = Vec::with_capacity(1);
        let all = self.all.lock().expect("subscriptions lock");
        for subscription in all.iter() {
            let frame = match encoded.iter().find(|(id, _)| *id == subscription.id) {
                Some((_, frame)) => frame.clone(),
                None => {
                    let event = Frame::Event(Event {
                        subscription_id: subscription.id,
                        key: publish.key.clone(),
                        payload: publish.payload.clone(),
                    });
                    let mut frame = BytesMut::new();
                    // The payload came in a frame no larger than the maximum, so its EVENT,
                    // which has no topic id, is no larger either.
                    if event.encode(&mut frame, DEFAULT_MAX_FRAME_SIZE).is_err() {
                        return;
                    }
                    let frame = frame.freeze();
                    encoded.push((subscription.id, frame.clone()));
                    frame
                }
            };
            subscription.outbox.push_event(subscription.id, frame);
        }
    }
}

/// Accepts connections on `listener` and relays events until `shutdown` is cancelled; each
/// connection holds at most `queue_bytes` of pending events. Connections run in their own tasks
/// and end when their peer closes.
///
/// # Errors
///
/// The listener failing to accept.
pub async fn serve(
    listener: TcpListener,
    queue_bytes: usize,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let subscriptions = Arc::new(Subscriptions::default());
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let connection = subscriptions.next_connection.fetch_add(1, Ordering::Relaxed);
        let subscriptions = subscriptions.clone();
        tokio::spawn(async move {
            // A failure (typically the load generator resetting the connection at the end of a
            // run) concerns only this connection.
            let _ = serve_connection(stream, connection, queue_bytes, &subscriptions).await;
            subscriptions
                .all
                .lock()
                .expect("subscriptions lock")
                .retain(|s| s.connection != connection);
        });
    }
}

/// Reads one connection's frames and answers them until it closes; a writer task sends what its
/// outbox collects.
async fn serve_connection(
    stream: TcpStream,
    connection: u64,
    queue_bytes: usize,
    subscriptions: &Subscriptions,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (mut read_half, write_half) = stream.into_split();
    let outbox = Arc::new(Outbox::new(queue_bytes));
    let writer = tokio::spawn(write(write_half, outbox.clone()));
    let read = async {
        let mut buf = BytesMut::with_capacity(READ_BUFFER);
        loop {
            loop {
                match decode(&mut buf, DEFAULT_MAX_FRAME_SIZE).map_err(invalid)? {
                    Decoded::Frame(frame) => answer(frame, connection, &outbox, subscriptions)?,
                    Decoded::Skipped { .. } => {}
                    Decoded::Incomplete { .. } => break,
                }
            }
            if read_half.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
    };
    let read: io::Result<()> = read.await;
    outbox.close();
    let _ = writer.await;
    read
}

/// Takes one client frame: answers it, subscribes, or publishes.
///
/// # Errors
///
/// `InvalidData` for a frame a client does not send (the connection closes).
fn answer(
    frame: Frame,
    connection: u64,
    outbox: &Arc<Outbox>,
    subscriptions: &Subscriptions,
) -> io::Result<()> {
    let reply = match frame {
        Frame::Hello(_) => Some(Frame::Welcome(Welcome {
            capabilities: 0,
            version: gateway_protocol::VERSION,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_in_flight: u32::MAX,
            idle_timeout_ms: 0,
            server_id: "raw-fanout".into(),
            auth_expires_in_ms: 0,
        })),
        Frame::Subscribe(subscribe) => {
            let id = subscribe.subscription_id;
            // SUBSCRIBED is queued before the first event can be: the subscription joins below.
            outbox.push_control(&Frame::Subscribed { subscription_id: id }).map_err(invalid)?;
            let subscription = Subscription { connection, id, outbox: outbox.clone() };
            subscriptions.all.lock().expect("subscriptions lock").push(subscription);
            None
        }
        Frame::Unsubscribe { subscription_id } => {
            let mut all = subscriptions.all.lock().expect("subscriptions lock");
            all.retain(|s| (s.connection, s.id) != (connection, subscription_id));
            None
        }
        Frame::Publish(publish) => {
            subscriptions.publish(&publish);
            (publish.request_id != 0).then(|| {
                Frame::Response(Response { request_id: publish.request_id, payload: Bytes::new() })
            })
        }
        Frame::Ping { data } => Some(Frame::Pong { data }),
        Frame::Pong { .. } => None,
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("raw-fanout does not take {} frames", other.frame_type().name()),
            ));
        }
    };
    match reply {
        Some(reply) => outbox.push_control(&reply).map_err(invalid),
        None => Ok(()),
    }
}

/// Sends what `outbox` collects, one write per batch, until the connection closes.
async fn write(mut half: OwnedWriteHalf, outbox: Arc<Outbox>) -> io::Result<()> {
    let mut out = BytesMut::with_capacity(READ_BUFFER);
    loop {
        match outbox.take(&mut out).await {
            Taken::Frames => {
                half.write_all(&out).await?;
                out.clear();
            }
            Taken::Closed => return half.shutdown().await,
        }
    }
}

fn invalid(err: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}
