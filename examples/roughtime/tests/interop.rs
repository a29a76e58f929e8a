//! Interoperability with roughenough 2.2.0, another implementation (`scripts/install-roughenough`
//! installs its client and server into `.tools/roughenough/bin`; `ROUGHENOUGH_BIN` names another
//! folder): its client queries our server, in both versions and with requests batched together,
//! and our client queries its server.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use roughtime::keys::LongTermKey;
use roughtime::protocol::{Version, request_packet};
use roughtime::server::{Config, Server};
use roughtime::verify::verify;

fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("ROUGHENOUGH_BIN").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/roughenough/bin")
    });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: run `scripts/install-roughenough` (or set ROUGHENOUGH_BIN)",
        path.display()
    );
    path
}

/// Runs roughenough's client against `server` offering `protocol` (`1`, `19` or `both`);
/// returns its output when it printed a verified time, else panics with the output.
fn their_client(server: SocketAddr, public: &[u8; 32], protocol: &str) -> Command {
    let mut command = Command::new(bin("roughenough_client"));
    command
        .args([&server.ip().to_string(), &server.port().to_string(), "-P", protocol, "-k"])
        .arg(base64::engine::general_purpose::STANDARD.encode(public))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn succeeded(output: &std::process::Output) -> bool {
    let text = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    output.status.success() && text.contains("UTC (+/-") && !text.contains("ERROR")
}

#[test]
fn their_client_trusts_our_server_in_both_versions_and_in_batches() {
    let key = LongTermKey::from_seed(&[21; 32]);
    let bind = SocketAddr::from(([127, 0, 0, 1], 0));
    // The default shape (each socket's thread answers what it receives), then the pipeline,
    // whose batches wait 100 ms (both delays) so that the twelve clients below share them.
    let wait = Duration::from_millis(100);
    let pipeline =
        Config { bind, workers: 2, min_delay: wait, max_delay: wait, ..Config::default() };
    for config in [Config { bind, ..Config::default() }, pipeline.clone()] {
        let workers = config.workers;
        let server = Server::start(config, LongTermKey::from_seed(&key.seed())).expect("starts");
        for protocol in ["1", "19", "both"] {
            let output =
                their_client(server.local_addr(), &key.public(), protocol).output().expect("runs");
            assert!(succeeded(&output), "{workers} workers, protocol {protocol}: {output:?}");
        }
        // Their client names our key (SRV); another key's client gets no answer.
        let other = LongTermKey::from_seed(&[22; 32]);
        let output =
            their_client(server.local_addr(), &other.public(), "1").output().expect("runs");
        assert!(!succeeded(&output), "a client expecting another key must not get a valid time");
        server.shutdown();
    }
    // Several at once: their requests share batches, so their answers carry Merkle paths.
    let server = Server::start(pipeline, LongTermKey::from_seed(&key.seed())).expect("starts");
    let addr = server.local_addr();
    let children: Vec<Child> =
        (0..12).map(|_| their_client(addr, &key.public(), "both").spawn().expect("runs")).collect();
    for child in children {
        let output = child.wait_with_output().expect("finishes");
        assert!(succeeded(&output), "{output:?}");
    }
    let signatures = server.metrics().signatures.load(Ordering::Relaxed);
    assert!(
        signatures < 12,
        "12 requests at once took {signatures} signatures: no batch was shared"
    );
    server.shutdown();
}

/// Kills the child when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn our_client_trusts_their_server() {
    let port =
        UdpSocket::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let _server = Killed(
        Command::new(bin("roughenough_server"))
            .args(["--insecure-zero-seed", "-i", "127.0.0.1", "-p", &port.to_string(), "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("roughenough_server starts"),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let public = LongTermKey::from_seed(&[0; 32]).public();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let mut buffer = [0u8; 1500];
    // Asks until an answer comes or `within` passes (the server may still be starting).
    let mut ask = |versions: &[Version], within: Duration| {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).expect("randomness");
        let request = request_packet(&nonce, versions, None);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            socket.send_to(&request, addr).expect("sent");
            if let Ok((len, _)) = socket.recv_from(&mut buffer) {
                return Some((request, buffer[..len].to_vec()));
            }
        }
        None
    };
    for versions in [&[Version::Rfc][..], &Version::ALL] {
        let (request, answer) =
            ask(versions, Duration::from_secs(10)).expect("roughenough_server answers");
        let verified = verify(&request, &answer, &public).expect("their answer verifies");
        assert_eq!(verified.version, Version::Rfc);
        assert!(verified.midp.abs_diff(now) < 60, "midp {} is not now ({now})", verified.midp);
    }
    // roughenough-server 2.2.0 speaks version 1 only, and ignores a request offering only the
    // draft version, as RFC 10049 5.1.1 allows.
    assert!(ask(&[Version::Draft], Duration::from_secs(1)).is_none());
}
