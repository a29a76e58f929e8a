//! `roughtime query` against several servers: nonces chained (RFC 10049 8.2), and a lying
//! server caught with a malfeasance report (8.4) that anyone can check from the report alone.

use std::net::SocketAddr;
use std::process::Command;

use base64::Engine as _;
use roughtime::keys::LongTermKey;
use roughtime::measure::chained_nonce;
use roughtime::server::{Config, Server};
use roughtime::verify::verify;
use roughtime::wire::{Message, Tag, unframe};

fn serve(seed: u8, clock_offset: i64) -> (Server, String) {
    let key = LongTermKey::from_seed(&[seed; 32]);
    let public = base64::engine::general_purpose::STANDARD.encode(key.public());
    let config = Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        workers: 1,
        clock_offset,
        ..Config::default()
    };
    let server = Server::start(config, key).expect("starts");
    let arg = format!("{}={public}", server.local_addr());
    (server, arg)
}

fn query(servers: &[&str], report: &std::path::Path) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roughtime"));
    command.arg("query").arg("--report").arg(report);
    for server in servers {
        command.args(["--server", server]);
    }
    command.output().expect("roughtime query runs")
}

#[test]
fn honest_servers_agree_and_a_liar_is_proven_by_its_report() {
    let dir = tempfile::tempdir().expect("a folder");
    let (a, a_arg) = serve(31, 0);
    let (b, b_arg) = serve(32, 0);
    let (liar, liar_arg) = serve(33, -3600);

    let report = dir.path().join("honest.json");
    let output = query(&[&a_arg, &b_arg], &report);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 4, "two servers, twice");
    assert!(!report.exists());

    let report = dir.path().join("liar.json");
    let output = query(&[&a_arg, &liar_arg], &report);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("malfeasance"), "{output:?}");

    // The report alone proves it: every response verifies with its key, each nonce is chained
    // from the previous response, and the times contradict that order.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("written")).expect("JSON");
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("a string"))
            .expect("base64")
    };
    let responses = report["responses"].as_array().expect("a list");
    assert_eq!(responses.len(), 4);
    let mut times = Vec::new();
    let mut previous: Option<Vec<u8>> = None;
    for (i, entry) in responses.iter().enumerate() {
        let key: [u8; 32] = b64(&entry["publicKey"]).try_into().expect("32 bytes");
        let (request, response) = (b64(&entry["request"]), b64(&entry["response"]));
        let verified = verify(&request, &response, &key).expect("each response verifies");
        times.push((verified.midp, verified.radius));
        let nonce = Message::parse(unframe(&request).expect("packet"))
            .expect("message")
            .get(Tag::NONC)
            .expect("NONC")
            .to_vec();
        match &previous {
            None => assert!(entry.get("rand").is_none(), "the first nonce is random"),
            Some(prev) => {
                let rand: [u8; 32] = b64(&entry["rand"]).try_into().expect("32 bytes");
                assert_eq!(nonce, chained_nonce(prev, &rand), "probe {i} is chained");
            }
        }
        previous = Some(response);
    }
    let (first, second) = (times[0], times[1]);
    assert!(
        first.0 - u64::from(first.1) > second.0 + u64::from(second.1),
        "the times contradict the order"
    );
    for server in [a, b, liar] {
        server.shutdown();
    }
}
