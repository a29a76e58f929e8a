//! The `gateway` binary itself: `--help`, configuration errors, and a real run stopped by
//! SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use gateway::config::KEYS;

fn gateway() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    // The developer's environment must not change what the tests see.
    for key in KEYS {
        cmd.env_remove(gateway::config::env_var(key.name));
    }
    cmd
}

/// A gateway on ports of the system's choosing, serving anonymous clients, its log (at `info`,
/// without colours) on a pipe.
fn serving_gateway() -> Command {
    let mut cmd = gateway();
    cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--ws-listen", "127.0.0.1:0", "--anonymous-roles", "all"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn help_describes_every_setting() {
    let out = gateway().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for key in KEYS {
        let flag = format!("--{}", key.name.replace('_', "-"));
        assert!(help.contains(&flag), "no {flag} in\n{help}");
        let default = if key.default.is_empty() { "none" } else { key.default };
        assert!(help.contains(&format!("[default: {default}]")), "no default of {flag}");
        assert!(help.contains(&gateway::config::env_var(key.name)), "no env var of {flag}");
    }
}

#[test]
fn invalid_settings_exit_with_the_key_and_value() {
    let out = gateway().env("GATEWAY_MAX_IN_FLIGHT_PER_CONNECTION", "0").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "max_in_flight_per_connection = \"0\" (from environment variable \
             `GATEWAY_MAX_IN_FLIGHT_PER_CONNECTION`): must be at least 1"
        ),
        "{stderr}"
    );
}

#[test]
fn the_binary_serves_some_api_and_stops_on_sigterm() {
    let mut child = serving_gateway().args(["--worker-threads", "5"]).spawn().unwrap();
    let mut logs = BufReader::new(child.stderr.take().unwrap()).lines();
    // `--worker-threads 5` (not what `auto` gives on a machine of 2, 4 or 8 cores): the runtime
    // says how many workers it has before anything listens.
    let workers = logs
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let rest = line.split("worker_threads=").nth(1)?;
            Some(rest.split_whitespace().next()?.to_owned())
        })
        .expect("the gateway logs its worker threads");
    assert_eq!(workers, "5");
    // The log line announcing the listener carries the port chosen.
    let addr = logs
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let rest = line.split("listen=").nth(1)?;
            Some(rest.split_whitespace().next()?.to_owned())
        })
        .expect("the gateway logs its address");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let config = gateway_client::ClientConfig::new([addr]);
        let client =
            tokio::time::timeout(Duration::from_secs(10), gateway_client::Client::connect(config))
                .await
                .unwrap()
                .unwrap();
        let api = some_api::SomeApiClient::new(client.clone());
        let reply = api.sum(some_api::RequestSumT { a: 2, b: 3 }).await.unwrap();
        assert_eq!(reply.get().sum(), 5);
        // Authenticated time through the gateway: the answer verifies as Roughtime.
        let time = roughtime::service::RoughtimeClient::new(client.clone());
        let key = time.public_key(roughtime::service::EmptyT {}).await.unwrap().get().unpack().key;
        let key: [u8; 32] = key.try_into().unwrap();
        let nonce = [9u8; 32];
        let reply = time
            .time(roughtime::service::TimeRequestT { nonce: nonce.to_vec(), draft: false })
            .await
            .unwrap()
            .get()
            .unpack();
        let verified = roughtime::verify::verify(&reply.request, &reply.response, &key).unwrap();
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(verified.midp.abs_diff(now) < 60);
        // The slow method: answered after its wait, or cut off by the call's deadline.
        let echo = echo::EchoClient::new(client.clone());
        let slow = |ms| echo::DelayT { ms, data: Some(b"slow".to_vec()) };
        let answer = echo.delay(slow(50)).await.unwrap();
        assert_eq!(answer.get().data().map(|d| d.bytes()), Some(&b"slow"[..]));
        let started = std::time::Instant::now();
        let cut = echo.clone().with_timeout(Duration::from_millis(100)).delay(slow(5_000)).await;
        assert_eq!(cut.unwrap_err().code(), gateway_core::Code::DeadlineExceeded);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        client.close().await;
    });

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    // Bounded: the drain has nothing to wait for.
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait()));
    let Ok(status) = rx.recv_timeout(Duration::from_secs(20)) else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("the gateway did not stop on SIGTERM");
    };
    let status = status.unwrap();
    assert!(status.success(), "{status:?}");
}

/// A gateway killed cannot remove its temporary mailbox store; the next one to start does. The
/// store of a gateway still running, and a directory that was never locked, are left alone, and
/// a gateway that stops cleanly removes its own.
#[test]
fn the_store_of_a_killed_gateway_is_removed_by_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let never_locked = tmp.path().join("gateway-mailbox-never-locked");
    std::fs::create_dir(&never_locked).unwrap();
    let mut gateways = Gateways(Vec::new());

    let killed = gateways.start(tmp.path());
    let running = gateways.start(tmp.path());
    gateways.kill(killed.0);
    assert!(killed.1.exists(), "a gateway killed cannot clean up");

    let next = gateways.start(tmp.path());
    assert!(!killed.1.exists(), "the killed gateway's store is still there");
    assert!(running.1.exists(), "a running gateway's store was removed");
    assert!(next.1.exists());
    assert!(never_locked.exists(), "a directory never locked was removed");

    gateways.stop(running.0);
    gateways.stop(next.0);
    assert!(!running.1.exists() && !next.1.exists(), "a store not removed at a clean exit");
}

/// Gateways started by a test, each with the system's temporary directory of the test's
/// choosing; those still running when the test ends are killed.
struct Gateways(Vec<std::process::Child>);

impl Gateways {
    /// Starts a gateway whose temporary directory is `tmp` and waits until it serves; returns
    /// its index and its mailbox store.
    fn start(&mut self, tmp: &std::path::Path) -> (usize, std::path::PathBuf) {
        let mut child = serving_gateway().env("TMPDIR", tmp).spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        self.0.push(child);
        let (mut store, mut serving) = (None, false);
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("gateway: the mailbox's store is ") {
                store = rest.split(" (").next().map(std::path::PathBuf::from);
            }
            serving |= line.contains("listen=");
            if serving && store.is_some() {
                break;
            }
        }
        // The rest of its log, read so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let store = store.expect("the gateway names its mailbox store");
        assert!(serving, "the gateway did not start serving");
        assert!(store.starts_with(tmp), "{}", store.display());
        (self.0.len() - 1, store)
    }

    /// SIGKILL: the gateway cannot clean up.
    fn kill(&mut self, index: usize) {
        self.0[index].kill().unwrap();
        self.0[index].wait().unwrap();
    }

    /// SIGTERM, and the gateway exits cleanly.
    fn stop(&mut self, index: usize) {
        let child = &mut self.0[index];
        let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(term.success());
        assert!(child.wait().unwrap().success());
    }
}

impl Drop for Gateways {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `gateway --nats` against a nats-server without JetStream refuses to start, saying what it
/// needs (docs/bus.md, "What a gateway on NATS needs").
#[test]
fn a_gateway_on_nats_without_jetstream_refuses_to_start_and_says_why() {
    let addr = gateway_testkit::free_addr();
    let mut nats = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &addr.port().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (the test command installs it)");
    gateway_testkit::wait_until("nats-server to accept connections", || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    let out = gateway()
        .args(["--nats", &format!("nats://{addr}"), "--anonymous-roles", "all"])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--ws-listen", "off"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let _ = nats.kill();
    let _ = nats.wait();
    assert!(!out.status.success(), "{:?}", out.status);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("cannot open the operator switches' key-value bucket (is JetStream on?)"),
        "{stderr}"
    );
}

/// `--tls-cert`/`--tls-key`: the binary serves `tls://` with a certificate made for the test,
/// says so when it listens, reloads the pair on SIGHUP, and keeps the one it has when the files
/// on disk do not load.
#[test]
fn the_binary_serves_tls_and_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let ca = gateway_testkit::pki::TestCa::new("binary test CA");
    let (cert, key) = ca.issue(&["localhost"]).write(dir.path(), "gateway");
    let mut child = KillOnDrop(
        gateway()
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--ws-listen",
                "off",
            ])
            .args(["--anonymous-roles", "all"])
            .arg("--tls-cert")
            .arg(&cert)
            .env("GATEWAY_TLS_KEY", &key)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut logs = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let listening = logs
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("gateway listening"))
        .expect("the gateway says it listens");
    assert!(listening.contains("tls=true"), "{listening}");
    let port = listening
        .split("listen=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit_once(':'))
        .map(|(_, port)| port.to_owned())
        .expect("the address in the log");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sum = |a: i64, b: i64| {
        let mut config = gateway_client::ClientConfig::new([format!("tls://localhost:{port}")]);
        config.tls_ca = Some(ca.cert_pem().into_bytes());
        runtime.block_on(async move {
            let client = gateway_client::Client::connect(config).await?;
            let api = some_api::SomeApiClient::new(client.clone());
            let sum = api.sum(some_api::RequestSumT { a, b }).await.unwrap().get().sum();
            client.close().await;
            Ok::<i64, gateway_client::ConnectError>(sum)
        })
    };
    assert_eq!(sum(2, 3).unwrap(), 5);

    let hangup = |child: &KillOnDrop| {
        let sent = Command::new("kill").args(["-HUP", &child.0.id().to_string()]).status().unwrap();
        assert!(sent.success());
    };
    // SIGHUP reloads even files that did not change.
    hangup(&child);
    let reloaded =
        logs.by_ref().map_while(Result::ok).find(|line| line.contains("TLS certificate reloaded"));
    assert!(reloaded.is_some(), "no reload logged after SIGHUP");
    // A key that does not load: the previous pair stays, and says why.
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
        .unwrap();
    hangup(&child);
    let refused = logs
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("TLS certificate not reloaded"))
        .expect("the failed reload is logged");
    assert!(refused.contains("tls_key"), "{refused}");
    assert_eq!(sum(4, 5).unwrap(), 9, "the previous certificate serves on");
}

/// A child process killed (and reaped) when the test ends, passed or not: a gateway left
/// running would hold its stderr pipe, and whatever reads the test's output, open.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
