//! A client that collapses concurrent callers into one call in flight, as TiKV's PD client
//! does: callers that ask while a call is out wait for the next one, which asks for all their
//! timestamps at once and hands each its share (consecutive indexes of one epoch).

use gateway_core::{Status, Transport};
use tokio::sync::{mpsc, oneshot};

use crate::Timestamp;
use crate::oracle::MAX_BATCH;
use crate::service::{TimestampsRequestT, TsoClient};

type Waiting = (u32, oneshot::Sender<Result<Timestamp, Status>>);

/// Timestamps for many concurrent callers over one transport, one call in flight at a time.
/// Cheap to clone; the calls are made by a task that ends when every clone is dropped.
#[derive(Clone, Debug)]
pub struct Collapsing {
    waiting: mpsc::UnboundedSender<Waiting>,
}

impl Collapsing {
    /// Starts the calling task on the current tokio runtime.
    pub fn new<T: Transport + 'static>(client: TsoClient<T>) -> Collapsing {
        let (waiting, queue) = mpsc::unbounded_channel();
        tokio::spawn(call_loop(client, queue));
        Collapsing { waiting }
    }

    /// `n` (1 to [`MAX_BATCH`]) consecutive timestamps of one epoch: the first is returned.
    ///
    /// # Errors
    ///
    /// The status of the call that would have carried them (`unavailable` during a change of
    /// leader: retry), or `invalid_argument` for an `n` out of range.
    pub async fn timestamps(&self, n: u32) -> Result<Timestamp, Status> {
        if n == 0 || u64::from(n) > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "asked for {n} timestamps: between 1 and {MAX_BATCH}"
            )));
        }
        let (reply, answer) = oneshot::channel();
        self.waiting
            .send((n, reply))
            .map_err(|_| Status::unavailable("the timestamp client has stopped"))?;
        answer.await.map_err(|_| Status::unavailable("the timestamp client has stopped"))?
    }
}

async fn call_loop<T: Transport>(
    client: TsoClient<T>,
    mut queue: mpsc::UnboundedReceiver<Waiting>,
) {
    let mut batch: Vec<Waiting> = Vec::new();
    // A caller that did not fit the last call, first in the next.
    let mut held: Option<Waiting> = None;
    loop {
        let first = match held.take() {
            Some(first) => first,
            None => match queue.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut total = u64::from(first.0);
        batch.push(first);
        while let Ok(next) = queue.try_recv() {
            if total + u64::from(next.0) > MAX_BATCH {
                held = Some(next);
                break;
            }
            total += u64::from(next.0);
            batch.push(next);
        }
        let n = u32::try_from(total).expect("at most MAX_BATCH");
        let reply = client.timestamps(TimestampsRequestT { n }).await.and_then(|reply| {
            let first: [u8; 16] =
                reply.get().first().bytes().try_into().map_err(|_| {
                    Status::internal("the oracle's reply holds no 16-byte timestamp")
                })?;
            Ok(Timestamp::from_bytes(&first))
        });
        match reply {
            Ok(first) => {
                let mut index = first.index;
                for (n, caller) in batch.drain(..) {
                    let _ = caller.send(Ok(Timestamp { epoch: first.epoch, index }));
                    index += u64::from(n);
                }
            }
            Err(status) => {
                for (_, caller) in batch.drain(..) {
                    let _ = caller.send(Err(status.clone()));
                }
            }
        }
    }
}
