//! The server over real UDP sockets on loopback: batched answers verify, bad datagrams get no
//! answer, keys rotate without losing a request, shutdown answers what was queued.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use roughtime::keys::LongTermKey;
use roughtime::protocol::{Version, request_packet};
use roughtime::server::{Config, Server};
use roughtime::verify::verify;
use roughtime::wire::{Message, Tag, unframe};

fn start(config: Config) -> (Server, LongTermKey) {
    let key = LongTermKey::from_seed(&[11; 32]);
    let server = Server::start(config, LongTermKey::from_seed(&key.seed())).expect("starts");
    (server, key)
}

fn local() -> Config {
    Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        workers: 2,
        sockets: 2,
        ..Config::default()
    }
}

/// Sends `requests` all at once and collects the answers (by nonce) until `wait` passes.
fn exchange(to: SocketAddr, requests: &[Vec<u8>], wait: Duration) -> HashMap<[u8; 32], Vec<u8>> {
    let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    client.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
    for request in requests {
        client.send_to(request, to).expect("sent");
    }
    let mut answers = HashMap::new();
    let deadline = Instant::now() + wait;
    let mut buffer = [0u8; 1500];
    while Instant::now() < deadline && answers.len() < requests.len() {
        if let Ok((len, _)) = client.recv_from(&mut buffer) {
            let message =
                Message::parse(unframe(&buffer[..len]).expect("a packet")).expect("a message");
            let nonce: [u8; 32] =
                message.get(Tag::NONC).expect("NONC").try_into().expect("32 bytes");
            answers.insert(nonce, buffer[..len].to_vec());
        }
    }
    answers
}

fn nonce(i: usize) -> [u8; 32] {
    let mut n = [0u8; 32];
    n[..8].copy_from_slice(&(i as u64).to_le_bytes());
    n
}

#[test]
fn requests_arriving_together_share_a_signature_and_every_answer_verifies() {
    // Batches wait 20 ms even for an idle worker: the requests sent together share them.
    let wait = Duration::from_millis(20);
    let (server, key) = start(Config { min_delay: wait, max_delay: wait, ..local() });
    let srv = key.srv();
    let requests: Vec<Vec<u8>> = (0..48)
        .map(|i| {
            let versions: &[Version] = if i % 3 == 0 { &[Version::Draft] } else { &Version::ALL };
            request_packet(&nonce(i), versions, if i % 2 == 0 { Some(&srv) } else { None })
        })
        .collect();
    let answers = exchange(server.local_addr(), &requests, Duration::from_secs(5));
    assert_eq!(answers.len(), requests.len(), "every request answered");
    let mut batched = 0;
    for (i, request) in requests.iter().enumerate() {
        let answer = &answers[&nonce(i)];
        assert!(answer.len() <= request.len());
        let verified = verify(request, answer, &key.public()).expect("valid");
        assert_eq!(verified.version, if i % 3 == 0 { Version::Draft } else { Version::Rfc });
        let message = Message::parse(unframe(answer).expect("packet")).expect("message");
        batched += usize::from(!message.get(Tag::PATH).expect("PATH").is_empty());
    }
    let metrics = server.metrics();
    let signatures = metrics.signatures.load(Ordering::Relaxed);
    assert!(batched > 0, "some answers came from batches of more than one");
    assert!(
        signatures < requests.len() as u64,
        "{signatures} signatures for {} requests",
        requests.len()
    );
    assert_eq!(metrics.responses.load(Ordering::Relaxed), requests.len() as u64);
    server.shutdown();
}

#[test]
fn an_idle_worker_answers_a_lone_request_without_waiting_for_the_batch_delay() {
    let (server, key) = start(Config { max_delay: Duration::from_secs(30), ..local() });
    let request = request_packet(&nonce(1), &Version::ALL, None);
    let started = Instant::now();
    let answers =
        exchange(server.local_addr(), std::slice::from_ref(&request), Duration::from_secs(10));
    verify(&request, &answers[&nonce(1)], &key.public()).expect("answered and valid");
    assert!(started.elapsed() < Duration::from_secs(10), "waited {:?}", started.elapsed());
    server.shutdown();
}

#[test]
fn bad_datagrams_get_no_answer_and_are_counted() {
    let (server, key) = start(local());
    let other_key = LongTermKey::from_seed(&[12; 32]);
    let mut not_a_request = request_packet(&nonce(1), &Version::ALL, None);
    not_a_request[8] ^= 1; // the length field
    let bad = vec![
        vec![0u8; 3],
        b"ROUGHTIM garbage".to_vec(),
        not_a_request,
        request_packet(&nonce(2), &Version::ALL, Some(&other_key.srv())),
    ];
    let good = request_packet(&nonce(3), &Version::ALL, None);
    let mut all = bad.clone();
    all.push(good.clone());
    let answers = exchange(server.local_addr(), &all, Duration::from_millis(500));
    assert_eq!(answers.len(), 1, "only the good request is answered");
    verify(&good, &answers[&nonce(3)], &key.public()).expect("valid");
    let metrics = server.metrics();
    assert_eq!(metrics.ignored_malformed.load(Ordering::Relaxed), 3);
    assert_eq!(metrics.ignored_unknown_server.load(Ordering::Relaxed), 1);
    let text = metrics.render();
    assert!(
        text.contains("roughtime_dropped_total{stage=\"respond\",reason=\"malformed\"} 3"),
        "{text}"
    );
    assert!(text.contains("roughtime_responses_total 1"), "{text}");
    server.shutdown();
}

#[test]
fn the_online_key_rotates_before_it_expires_without_losing_a_request() {
    let (server, key) = start(Config { key_lifetime: Duration::from_secs(4), ..local() });
    let mut online_keys = Vec::new();
    // Requests one after another until an answer is signed by a second online key (the first
    // is replaced about 3 s in); every request is answered and valid meanwhile.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    while online_keys.len() < 2 {
        assert!(Instant::now() < deadline, "no rotation within 10 s ({i} requests)");
        let request = request_packet(&nonce(i), &Version::ALL, None);
        let answers =
            exchange(server.local_addr(), std::slice::from_ref(&request), Duration::from_secs(2));
        let verified =
            verify(&request, &answers[&nonce(i)], &key.public()).expect("answered and valid");
        if online_keys.last() != Some(&verified.online_key) {
            online_keys.push(verified.online_key);
        }
        i += 1;
    }
    assert!(server.metrics().key_rotations.load(Ordering::Relaxed) >= 1);
    server.shutdown();
}

#[test]
fn without_a_pipeline_each_receive_thread_answers_its_batches() {
    let (server, key) = start(Config { workers: 0, ..local() });
    let requests: Vec<Vec<u8>> =
        (0..40).map(|i| request_packet(&nonce(i), &Version::ALL, None)).collect();
    let answers = exchange(server.local_addr(), &requests, Duration::from_secs(5));
    assert_eq!(answers.len(), requests.len(), "every request answered");
    for (i, request) in requests.iter().enumerate() {
        verify(request, &answers[&nonce(i)], &key.public()).expect("valid");
    }
    assert_eq!(server.metrics().responses.load(Ordering::Relaxed), requests.len() as u64);
    server.shutdown();
}
