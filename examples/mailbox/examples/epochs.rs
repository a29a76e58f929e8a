//! 20 epochs of 1,000 single-recipient bundles to 64 devices through one shard, each device
//! acknowledging all it has after each epoch: a fixed workload to count instructions on, before
//! and after a change to the shard's path (docs/benchmarks.md, the mailbox relay):
//!
//! ```sh
//! cargo build --release -p mailbox --example epochs
//! valgrind --tool=callgrind target/release/examples/epochs
//! ```
use mailbox::shard::Bundle;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("a directory");
    let shard = mailbox::model::shard_in(dir.path());
    for _ in 0..20 {
        let mut sends = Vec::new();
        for i in 0..1000 {
            let s = shard.clone();
            let device = format!("device-{}", i % 64);
            sends.push(tokio::spawn(async move {
                s.send(Bundle {
                    recipients: vec![device],
                    common: vec![0x5a; 100].into(),
                    parts: vec![vec![0xa5; 32].into()],
                })
                .await
            }));
        }
        while shard.waiting() < 1000 {
            tokio::task::yield_now().await;
        }
        shard.end_epoch().await;
        for s in sends {
            s.await.expect("a sender").expect("answered");
        }
        for d in 0..64 {
            let device = format!("device-{d}");
            let last = shard
                .fetch(&device, None, usize::MAX)
                .last()
                .and_then(|b| b.messages.last().map(|m| m.id));
            if let Some(last) = last {
                shard.ack(&device, last);
            }
        }
    }
}
