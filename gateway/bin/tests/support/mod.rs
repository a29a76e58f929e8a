//! The processes of a test system: nats-server (one, or a cluster), gateways and service
//! processes, each with its log printed when the test fails; and bounded waiting.
#![allow(dead_code)] // Each test file uses its own part.

pub(crate) mod mailbox;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway_client::{Client, ClientConfig};
use gateway_testkit::{Child, NatsCluster, NatsServer, free_addr, http_get};
use serde_json::Value;

/// Every wait for something to happen is bounded by this.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// What a test system's processes connect to: one nats-server, or a cluster of them.
pub(crate) trait Nats {
    /// The client URL(s), comma-separated.
    fn urls(&self) -> String;
    /// The connections every reachable server lists, with their subscriptions.
    fn connections(&self) -> Vec<Value>;
    /// The servers' logs.
    fn logs(&self) -> String;
}

impl Nats for NatsServer {
    fn urls(&self) -> String {
        self.url()
    }

    fn connections(&self) -> Vec<Value> {
        let connz = self.monitor("/connz?subs=1");
        connz["connections"].as_array().cloned().unwrap_or_default()
    }

    fn logs(&self) -> String {
        self.log()
    }
}

impl Nats for NatsCluster {
    fn urls(&self) -> String {
        NatsCluster::urls(self)
    }

    fn connections(&self) -> Vec<Value> {
        self.monitor_all("/connz?subs=1")
            .iter()
            .flat_map(|connz| connz["connections"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    fn logs(&self) -> String {
        NatsCluster::logs(self)
    }
}

/// NATS (one server, or a cluster) and the logs of the processes of one test.
pub(crate) struct System<N: Nats = NatsServer> {
    pub(crate) nats: N,
    pub(crate) logs: tempfile::TempDir,
}

impl System<NatsServer> {
    pub(crate) fn start() -> System {
        System::with(NatsServer::start())
    }
}

impl System<NatsCluster> {
    /// A system on a cluster of `size` nats-servers.
    pub(crate) fn start_cluster(size: usize) -> System<NatsCluster> {
        System::with(NatsCluster::start(size))
    }
}

impl<N: Nats> System<N> {
    pub(crate) fn with(nats: N) -> System<N> {
        System { nats, logs: tempfile::tempdir().expect("a directory for the processes' logs") }
    }

    /// Starts service `binary` (`echo-service`, `some-api-service`) against this system's NATS;
    /// `name` names its log. It connects to NATS as `binary`.
    pub(crate) fn service(&self, binary: &str, name: &str, args: &[&str]) -> Process {
        let mut all = vec!["--nats".to_owned(), self.nats.urls()];
        all.extend(args.iter().map(|&a| a.to_owned()));
        Process::spawn(self.logs.path(), name, &sibling_binary(binary), &all)
    }

    /// Starts a gateway over this system's NATS, its connection named `name` (`--server-id`),
    /// anonymous connections allowed everything, and waits until it is ready.
    pub(crate) async fn gateway(&self, name: &str) -> Gateway {
        self.gateway_with(name, &["--anonymous-roles", "all"]).await
    }

    /// [`System::gateway`] with `extra` arguments instead of `--anonymous-roles all` (e.g.
    /// `--config FILE`).
    pub(crate) async fn gateway_with(&self, name: &str, extra: &[&str]) -> Gateway {
        self.gateway_with_env(name, extra, &[]).await
    }

    /// [`System::gateway_with`] with environment variables set.
    pub(crate) async fn gateway_with_env(
        &self,
        name: &str,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Gateway {
        self.gateway_on(name, (free_addr(), free_addr()), extra, env).await
    }

    /// Starts gateway `name` again on the addresses of `old` (killed first if it runs), with
    /// anonymous connections allowed everything: a restart, as clients see it.
    pub(crate) async fn restart(&self, mut old: Gateway) -> Gateway {
        old.process.kill();
        let (name, addrs) = (old.name.clone(), (old.addr, old.admin));
        drop(old);
        self.gateway_on(&name, addrs, &["--anonymous-roles", "all"], &[]).await
    }

    /// A gateway listening on `addr`, its admin port on `admin`.
    async fn gateway_on(
        &self,
        name: &str,
        (addr, admin): (SocketAddr, SocketAddr),
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> Gateway {
        let mut args = vec![
            "--nats".to_owned(),
            self.nats.urls(),
            "--listen".to_owned(),
            addr.to_string(),
            "--admin-listen".to_owned(),
            admin.to_string(),
            "--ws-listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--server-id".to_owned(),
            name.to_owned(),
        ];
        args.extend(extra.iter().map(|&a| a.to_owned()));
        let program = Path::new(env!("CARGO_BIN_EXE_gateway"));
        let mut process = Process::spawn_with_env(self.logs.path(), name, program, &args, env);
        eventually(&format!("gateway {name} to be ready"), || {
            assert!(process.child.is_running(), "gateway {name} exited");
            matches!(http_get(admin, "/readyz"), Ok((200, _))).then_some(())
        })
        .await;
        Gateway { name: name.to_owned(), process, addr, admin }
    }

    /// The connections nats-server lists, with their subscriptions.
    pub(crate) fn connections(&self) -> Vec<Value> {
        self.nats.connections()
    }

    /// For each connection named `name`, how many of its subscriptions are to `subject`.
    pub(crate) fn subscriptions(&self, name: &str, subject: &str) -> Vec<usize> {
        self.connections()
            .iter()
            .filter(|c| c["name"] == name)
            .map(|c| {
                let list = c["subscriptions_list"].as_array().cloned().unwrap_or_default();
                list.iter().filter(|s| *s == subject).count()
            })
            .collect()
    }

    /// Waits until `count` connections named `name` subscribe to `subject`.
    pub(crate) async fn wait_for_subscribers(&self, name: &str, subject: &str, count: usize) {
        eventually(&format!("{count} connections named {name} subscribed to {subject}"), || {
            let subscribed = self.subscriptions(name, subject).iter().filter(|&&n| n > 0).count();
            (subscribed >= count).then_some(())
        })
        .await;
    }

    /// For each connection named `name`, in nats-server's order, the messages delivered to it.
    pub(crate) fn messages_delivered(&self, name: &str) -> Vec<u64> {
        let mut connections: Vec<(u64, u64)> = self
            .connections()
            .iter()
            .filter(|c| c["name"] == name)
            .map(|c| (c["cid"].as_u64().unwrap_or(0), c["out_msgs"].as_u64().unwrap_or(0)))
            .collect();
        connections.sort();
        connections.into_iter().map(|(_, delivered)| delivered).collect()
    }
}

impl<N: Nats> Drop for System<N> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- nats-server's log ---\n{}", self.nats.logs());
        }
    }
}

/// A child process whose stderr goes to a log file, printed if the test fails.
pub(crate) struct Process {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Process {
    pub(crate) fn spawn(logs: &Path, name: &str, program: &Path, args: &[String]) -> Process {
        Process::spawn_with_env(logs, name, program, args, &[])
    }

    /// [`Process::spawn`] with environment variables set.
    pub(crate) fn spawn_with_env(
        logs: &Path,
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &Path)],
    ) -> Process {
        let log = logs.join(format!("{name}.log"));
        // Appended to: a process restarted under the same name keeps one log.
        let file = File::options().create(true).append(true).open(&log).expect("a log file");
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            // Services log with `tracing` to standard output, the gateway to standard error:
            // both go to the log.
            .stdout(file.try_clone().expect("the log file, twice"))
            .stderr(file);
        Process { name: name.to_owned(), child: Child::spawn(name, command), log }
    }

    /// Kills it (SIGKILL, like a crash).
    pub(crate) fn kill(&mut self) {
        self.child.kill();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- {}'s log ---\n{log}", self.name);
        }
    }
}

/// The path of a binary built next to this package's `gateway`.
///
/// # Panics
///
/// If it has not been built, saying how to build it.
pub(crate) fn sibling_binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_gateway")).with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: run cargo test --workspace, or cargo build -p echo -p some-api -p roughtime -p mailbox \
         -p tso --bins, first",
        path.display()
    );
    path
}

/// A gateway process.
pub(crate) struct Gateway {
    pub(crate) name: String,
    pub(crate) process: Process,
    pub(crate) addr: SocketAddr,
    pub(crate) admin: SocketAddr,
}

impl Gateway {
    /// A new client connection to this gateway.
    pub(crate) async fn client(&self) -> Client {
        let config = ClientConfig::new([self.addr.to_string()]);
        tokio::time::timeout(WAIT, Client::connect(config))
            .await
            .unwrap_or_else(|_| panic!("connecting to {} timed out", self.name))
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name))
    }

    /// A new client connection to this gateway, authenticated with `token`.
    pub(crate) async fn client_with_token(&self, token: Vec<u8>) -> Client {
        let mut config = ClientConfig::new([self.addr.to_string()]);
        config.token = Some(token);
        tokio::time::timeout(WAIT, Client::connect(config))
            .await
            .unwrap_or_else(|_| panic!("connecting to {} timed out", self.name))
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name))
    }

    /// The status code of its `/readyz`.
    pub(crate) fn readiness(&self) -> u16 {
        http_get(self.admin, "/readyz").expect("the gateway's /readyz").0
    }

    /// The value of the metrics line `series` (e.g. `gateway_connections_total`).
    pub(crate) fn metric(&self, series: &str) -> f64 {
        let (status, body) = http_get(self.admin, "/metrics").expect("the gateway's /metrics");
        assert_eq!(status, 200, "{body}");
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no `{series}` in\n{body}"))
    }
}

/// Polls `check` every 20 ms until it returns `Some`.
///
/// # Panics
///
/// After [`WAIT`], naming `what`.
pub(crate) async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
