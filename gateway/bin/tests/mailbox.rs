//! The mailbox relay as processes (docs/mailbox.md): `mailbox-service` (one shard, its store and
//! key in a directory) on a real nats-server behind a real gateway, called with the generated
//! client. A bundle to two devices: the sender gets its id and a signed receipt; one recipient
//! gets its batch pushed on its `batches` key, the other fetches it; both verify with the keys
//! `keys` returns; an acknowledgement deletes. Then 24 more bundles, answered, and the service
//! is killed with SIGKILL and started again on the same directory: every answered message is
//! there, and the recipient's chain carries on.
//!
//! Like `nats.rs`, this needs `mailbox-service` built next to `gateway` (`cargo test
//! --workspace` does it).

use std::time::Duration;

use gateway_core::Status;
use mailbox::service::{AckRequestT, BatchT, FetchRequestT, MailboxClient};
use mailbox::{DeviceVerifier, Signed};

mod support;
use support::mailbox::{bundle, decoded, id, key_ring, read_mailboxes};
use support::{System, WAIT};

const MAILBOX_CALLS: &str = "rpc.examples.mailbox.Mailbox.*";

async fn fetch<T: gateway_core::Transport>(
    mailbox: &MailboxClient<T>,
    device: &str,
) -> Vec<BatchT> {
    let request = FetchRequestT { device: Some(device.into()), after: None, max_batches: 1000 };
    mailbox.fetch(request).await.expect("fetched").unpack().batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_signed_delivered_acknowledged_and_survive_a_kill() {
    let system = System::start();
    let dir = tempfile::tempdir().expect("a directory for the shard");
    let dir_arg = dir.path().to_str().expect("a UTF-8 path").to_owned();
    let args = ["--dir", dir_arg.as_str(), "--allow-anonymous"];
    let mut service = system.service("mailbox-service", "mailbox-service", &args);
    let gateway = system.gateway("gw").await;
    system.wait_for_subscribers("mailbox-service", MAILBOX_CALLS, 1).await;
    let mailbox = MailboxClient::new(gateway.client().await);

    let ring = key_ring(&mailbox).await;

    // Bob follows his batches; a bundle to alice and bob.
    let mut pushed = mailbox.subscribe_batches("bob").await.expect("subscribed");
    system.wait_for_subscribers("gw", "topic.examples.mailbox.Mailbox.batches.bob", 1).await;
    let sent = mailbox.send(bundle(&["alice", "bob"], "hello")).await.expect("sent").unpack();
    let receipt = Signed::decode(&sent.receipt).expect("a signed receipt");
    receipt.verify(&ring).expect("signed by the shard");
    assert_eq!(receipt.receipt().map(|r| (r.bundle, r.count)), Some((id(&sent.bundle), 2)));

    let event = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut pushed))
        .await
        .expect("a batch within the wait")
        .expect("the subscription goes on")
        .expect("a batch, not an error");
    let (attestation, messages) = decoded(&event.message().unpack());
    let mut bob = DeviceVerifier::new("bob", ring.clone());
    bob.accept(&attestation, &messages).expect("bob's batch verifies");
    assert_eq!(messages[0].id, id(&sent.bundle).offset(1).expect("in range"));
    assert_eq!(&messages[0].part[..], b"hello, for bob");

    // Alice fetches hers, verifies, acknowledges: it is gone.
    let batches = fetch(&mailbox, "alice").await;
    assert_eq!(batches.len(), 1);
    let (attestation, messages) = decoded(&batches[0]);
    DeviceVerifier::new("alice", ring.clone()).accept(&attestation, &messages).expect("verifies");
    let acked = mailbox
        .ack(AckRequestT { device: Some("alice".into()), upto: messages[0].id.to_bytes().to_vec() })
        .await
        .expect("acknowledged");
    assert_eq!(acked.get().deleted(), 1);
    assert!(fetch(&mailbox, "alice").await.is_empty());

    // Bad bundles are refused by name.
    let refused: Status =
        mailbox.send(bundle(&["bob", "bob"], "twice")).await.expect_err("refused");
    assert_eq!(
        mailbox::service::MailboxError::of(&refused),
        Some(mailbox::service::MailboxError::BadBundle)
    );
    assert!(refused.message().contains("\"bob\" is a recipient twice"), "{refused:?}");

    // 24 more bundles to bob, answered; then the service dies and comes back.
    let mut answered = Vec::new();
    let sends: Vec<_> = (0..24).map(|i| mailbox.send(bundle(&["bob"], &format!("m{i}")))).collect();
    for reply in futures::future::join_all(sends).await {
        answered.push(id(&reply.expect("sent").unpack().bundle));
    }
    service.kill();
    let _restarted = system.service("mailbox-service", "mailbox-service-2", &args);
    system.wait_for_subscribers("mailbox-service", MAILBOX_CALLS, 1).await;
    let batches = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(reply) = mailbox
                .fetch(FetchRequestT { device: Some("bob".into()), after: None, max_batches: 1000 })
                .await
            {
                return reply.unpack().batches;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the service answers again");
    let mut kept = Vec::new();
    for batch in &batches {
        let (attestation, messages) = decoded(batch);
        bob.accept(&attestation, &messages).expect("bob's chain carries on across the restart");
        kept.extend(messages.iter().map(|m| m.bundle));
    }
    for bundle in &answered {
        assert!(kept.contains(bundle), "answered bundle {bundle} lost in the restart");
    }
    // And the restarted service goes on numbering above.
    let after = mailbox.send(bundle(&["bob"], "after")).await.expect("sent").unpack();
    assert!(answered.iter().all(|b| *b < id(&after.bundle)));
}

/// A gateway whose devices have tokens: role `device` may call the mailbox and subscribe to its
/// own key of `batches` (`Mailbox.batches.{sub}`); anonymous connections may do nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_reads_only_its_own_mailbox() {
    let system = System::start();
    let dir = tempfile::tempdir().expect("a directory");
    let secret = dir.path().join("dev.secret");
    std::fs::write(&secret, "a development secret of at least 32 bytes").expect("the secret");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\n\
             [[auth.keys]]\nalgorithm = \"HS256\"\nsecret_file = {secret:?}\n\
             [auth.roles.device]\ncall = [\"Mailbox.*\"]\nsubscribe = [\"Mailbox.batches.{{sub}}\"]\n"
        ),
    )
    .expect("the config");
    let store = dir.path().join("shard");
    let store = store.to_str().expect("UTF-8").to_owned();
    let _service = system.service("mailbox-service", "mailbox-service", &["--dir", &store]);
    system.wait_for_subscribers("mailbox-service", MAILBOX_CALLS, 1).await;
    let gateway = system.gateway_with("gw", &["--config", config.to_str().expect("UTF-8")]).await;
    let token = |sub: &str| {
        let out = std::process::Command::new(support::sibling_binary("gateway-token"))
            .args(["--sub", sub, "--roles", "device", "--ttl", "10m", "--algorithm", "HS256"])
            .arg("--secret-file")
            .arg(&secret)
            .output()
            .expect("gateway-token runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("a token").trim().as_bytes().to_vec()
    };
    let bob = MailboxClient::new(gateway.client_with_token(token("bob")).await);
    let alice = MailboxClient::new(gateway.client_with_token(token("alice")).await);

    let mut pushed = bob.subscribe_batches("bob").await.expect("bob follows his own batches");
    let denied = alice.subscribe_batches("bob").await.expect_err("alice may not follow bob's");
    assert_eq!(denied.code(), gateway_core::Code::PermissionDenied, "{denied:?}");
    system.wait_for_subscribers("gw", "topic.examples.mailbox.Mailbox.batches.bob", 1).await;

    alice.send(bundle(&["alice", "bob"], "hi")).await.expect("alice sends");
    let event = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut pushed))
        .await
        .expect("in time")
        .expect("the subscription goes on")
        .expect("a batch");
    assert_eq!(event.key(), "bob");

    // Reading: a device names no mailbox (its own) or its own; never another's.
    let own = |device: Option<&str>| FetchRequestT {
        device: device.map(str::to_owned),
        after: None,
        max_batches: 10,
    };
    assert_eq!(bob.fetch(own(None)).await.expect("his own").unpack().batches.len(), 1);
    assert_eq!(bob.fetch(own(Some("bob"))).await.expect("named").unpack().batches.len(), 1);
    let refused = bob.fetch(own(Some("alice"))).await.expect_err("not his");
    assert_eq!(
        mailbox::service::MailboxError::of(&refused),
        Some(mailbox::service::MailboxError::NotYourMailbox),
        "{refused:?}"
    );
    let refused = bob
        .ack(AckRequestT { device: Some("alice".into()), upto: vec![0xff; 16] })
        .await
        .expect_err("not his");
    assert_eq!(refused.code(), gateway_core::Code::PermissionDenied);
    assert_eq!(alice.fetch(own(None)).await.expect("hers").unpack().batches.len(), 1, "untouched");
}

/// The gateway with `shards` shards in process (`MAILBOX_SHARDS`, `MAILBOX_DIR`), on `addr`,
/// ready.
async fn in_process_gateway(
    logs: &std::path::Path,
    name: &str,
    dir: &std::path::Path,
    shards: &str,
    addr: std::net::SocketAddr,
) -> support::Process {
    let admin = gateway_testkit::free_addr();
    let args: Vec<String> = [
        "--listen",
        &addr.to_string(),
        "--admin-listen",
        &admin.to_string(),
        "--ws-listen",
        "127.0.0.1:0",
        "--anonymous-roles",
        "all",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_gateway"));
    let mut process = support::Process::spawn_with_env(
        logs,
        name,
        program,
        &args,
        &[("MAILBOX_DIR", dir), ("MAILBOX_SHARDS", std::path::Path::new(shards))],
    );
    support::eventually(&format!("{name} to be ready"), || {
        assert!(process.child.is_running(), "{name} exited");
        matches!(gateway_testkit::http_get(admin, "/readyz"), Ok((200, _))).then_some(())
    })
    .await;
    process
}

/// The gateway, its shard in process, killed with SIGKILL while 8 senders keep bundles coming:
/// started again on the same directory, it holds every bundle it answered, in every recipient's
/// mailbox, once, each device's chain intact; and it serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_answered_is_lost_when_the_gateway_is_killed_under_load() {
    gateway_killed_under_load("1").await;
}

/// The same with two shards and their sequencer in the gateway's process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_answered_is_lost_when_a_gateway_with_two_shards_is_killed_under_load() {
    gateway_killed_under_load("2").await;
}

async fn gateway_killed_under_load(shards: &str) {
    let logs = tempfile::tempdir().expect("a directory for logs");
    let dir = tempfile::tempdir().expect("a directory for the shard");
    let addr = gateway_testkit::free_addr();
    let mut first = in_process_gateway(logs.path(), "gateway", dir.path(), shards, addr).await;
    let client =
        gateway_client::Client::connect(gateway_client::ClientConfig::new([addr.to_string()]))
            .await
            .expect("connects");
    let mailbox = MailboxClient::new(client);
    let devices = ["d0", "d1", "d2", "d3", "d4"];
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..8usize {
        let (mailbox, answered) = (mailbox.clone(), answered.clone());
        senders.spawn(async move {
            for i in 0usize.. {
                let to = [devices[(sender + i) % 5], devices[(sender + i + 1) % 5]];
                match mailbox.send(bundle(&to, &format!("s{sender} m{i}"))).await {
                    Ok(reply) => {
                        answered.lock().expect("answers").push((id(&reply.unpack().bundle), to))
                    }
                    Err(_) => return i, // the gateway is gone
                }
            }
            unreachable!()
        });
    }
    // Once a hundred bundles are answered, the gateway is killed mid-stream.
    let answers = answered.clone();
    support::eventually("100 bundles answered", || {
        (answers.lock().expect("answers").len() > 100).then_some(())
    })
    .await;
    first.kill();
    while senders.join_next().await.is_some() {}
    let answered = answered.lock().expect("answers").clone();
    assert!(answered.len() > 100, "only {} bundles answered before the kill", answered.len());

    let _second = in_process_gateway(logs.path(), "gateway", dir.path(), shards, addr).await;
    let client =
        gateway_client::Client::connect(gateway_client::ClientConfig::new([addr.to_string()]))
            .await
            .expect("connects again");
    let mailbox = MailboxClient::new(client);
    let ring = key_ring(&mailbox).await;
    let mut held = std::collections::HashMap::new();
    for device in devices {
        let mut verifier = DeviceVerifier::new(device, ring.clone());
        for batch in fetch(&mailbox, device).await {
            let (attestation, messages) = decoded(&batch);
            verifier.accept(&attestation, &messages).unwrap_or_else(|e| panic!("{device}: {e}"));
            for m in messages {
                assert!(
                    held.insert((device, m.bundle), m.common.clone()).is_none(),
                    "{device} got {} twice",
                    m.bundle
                );
            }
        }
    }
    for (bundle, to) in &answered {
        for device in to {
            assert!(
                held.contains_key(&(*device, *bundle)),
                "answered bundle {bundle} to {device} lost"
            );
        }
    }
    let after = mailbox.send(bundle(&["d0"], "after")).await.expect("served again").unpack();
    assert!(answered.iter().all(|(b, _)| *b < id(&after.bundle)));
}

/// The keys `keys` returns, as a verifier takes them.
/// Two shards as processes and the sequencer as a third, on nats-server behind a gateway, while
/// 8 senders keep bundles coming to devices on both shards: shard 1 is killed with SIGKILL and
/// started again on its directory, then the sequencer is. Every answered bundle is in every
/// recipient's mailbox (read through whichever shard the gateway reaches), once, with the
/// content sent; each device's chain verifies across the kills under the key of its shard; and
/// sends are answered again after each restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_lose_nothing_answered_when_a_shard_or_the_sequencer_is_killed() {
    use mailbox::hash::owner;
    let system = System::start();
    let dir = tempfile::tempdir().expect("a directory for the shards");
    let dir_arg = dir.path().to_str().expect("a UTF-8 path").to_owned();
    let shard = |n: &'static str, name: &str| {
        let args = ["--dir", dir_arg.as_str(), "--allow-anonymous", "--shards", "2", "--shard", n];
        system.service("mailbox-service", name, &args)
    };
    let _shard0 = shard("0", "shard-0");
    let mut shard1 = shard("1", "shard-1");
    let sequencer_args = ["--shards", "2"];
    let mut sequencer = system.service("mailbox-sequencer", "sequencer", &sequencer_args);
    let gateway = system.gateway("gw").await;
    system.wait_for_subscribers("mailbox-service", MAILBOX_CALLS, 2).await;
    let mailbox = MailboxClient::new(gateway.client().await);

    let devices: Vec<String> = (0..8).map(|d| format!("device-{d}")).collect();
    assert!((0..2).all(|s| devices.iter().any(|d| owner(d, 2) == s)), "devices on both shards");
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..8usize {
        let (mailbox, answered, devices, stop) =
            (mailbox.clone(), answered.clone(), devices.clone(), stop.clone());
        senders.spawn(async move {
            let mut refused = 0;
            for i in 0usize.. {
                if stop.is_cancelled() {
                    return refused;
                }
                let to = [
                    devices[(sender + i) % 8].as_str(),
                    devices[(sender + 3 * i + 1) % 8].as_str(),
                ];
                let to: Vec<&str> = if to[0] == to[1] { vec![to[0]] } else { to.to_vec() };
                let common = format!("s{sender} m{i}");
                match mailbox.send(bundle(&to, &common)).await {
                    Ok(reply) => answered.lock().expect("answers").push((
                        id(&reply.unpack().bundle),
                        to.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>(),
                        common,
                    )),
                    Err(_) => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            unreachable!()
        });
    }
    let answers_beyond = |n: usize| {
        let answered = answered.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(30), async {
                while answered.lock().expect("answers").len() <= n {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no more than {n} bundles answered within 30 s"));
        }
    };
    answers_beyond(150).await;
    shard1.kill();
    // Gone from nats-server (its requests to shard 1 now meet no one) before it comes back.
    support::eventually("shard 1 gone from nats-server", || {
        let subscribed = system.subscriptions("mailbox-service", "mailbox.shard.1.route");
        subscribed.iter().all(|&n| n == 0).then_some(())
    })
    .await;
    let before = answered.lock().expect("answers").len();
    let _shard1 = shard("1", "shard-1-again");
    answers_beyond(before + 150).await;
    sequencer.kill();
    support::eventually("the sequencer gone from nats-server", || {
        let connections = system.connections();
        connections.iter().all(|c| c["name"] != "mailbox-sequencer").then_some(())
    })
    .await;
    let before = answered.lock().expect("answers").len();
    let _sequencer = system.service("mailbox-sequencer", "sequencer-again", &sequencer_args);
    answers_beyond(before + 150).await;
    stop.cancel();
    let mut refused = 0;
    while let Some(sender) = senders.join_next().await {
        refused += sender.expect("a sender");
    }
    let answered = answered.lock().expect("answers").clone();
    eprintln!("{} bundles answered, {refused} sends failed across the kills", answered.len());

    let ring = key_ring(&mailbox).await;
    assert!(ring.get(0).is_some() && ring.get(1).is_some(), "both shards' keys");
    let held = read_mailboxes(&mailbox, &devices, &ring, Some(2)).await;
    for (bundle, to, common) in &answered {
        for device in to {
            assert_eq!(
                held.get(&(device.clone(), *bundle)),
                Some(common),
                "answered bundle {bundle} to {device}"
            );
        }
    }
}
