//! What tests and benchmarks need to run the real thing: a [`NatsServer`] on free loopback
//! ports (JetStream on, its store in a temporary directory), a [`NatsCluster`] of them with
//! replicated JetStream, [`Child`] processes that are killed when the test ends, and
//! [`http_get`] for monitoring endpoints.
//!
//! `NatsServer` runs `nats-server` from the path (Debian's 2.9.10 in CI). `NatsCluster` runs
//! the binary named by `NATS_SERVER_CLUSTER`, else the pinned 2.15.1 that
//! `scripts/install-nats-server` puts in `.tools/nats-server/bin`, else the one on the path.
//!
//! Everything here is blocking and quick (a start waits for the server's ports file, typically
//! tens of milliseconds), so async tests call it directly.
//!
//! ```no_run
//! let mut nats = gateway_testkit::NatsServer::start();
//! let url = nats.url(); // nats://127.0.0.1:<port>
//! nats.kill(); // like a crash: SIGKILL
//! nats.restart(); // same ports, same JetStream store
//! ```

pub mod nats_jwt;
pub mod pki;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long starting anything may take before the harness gives up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A child process that is killed (SIGKILL) and reaped when dropped, and that the kernel kills
/// if the test process dies first.
#[derive(Debug)]
pub struct Child {
    name: String,
    child: Option<std::process::Child>,
}

impl Child {
    /// Spawns `command`, its stdout and stderr inherited (cargo test shows them for failing
    /// tests only when captured by the harness, so they go to the terminal as they come).
    ///
    /// # Panics
    ///
    /// If the program cannot be started, naming it.
    pub fn spawn(name: &str, mut command: Command) -> Child {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: the closure runs in the child between fork and exec and only makes one
        // async-signal-safe system call (prctl).
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", command.get_program()));
        Child { name: name.to_owned(), child: Some(child) }
    }

    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Kills the process (SIGKILL, like a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the process to stop (SIGTERM) and waits up to `timeout` for it to exit; kills it
    /// after that. Returns its exit status if it exited by itself.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = rustix::process::Pid::from_raw(child.id() as i32)?;
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop within {timeout:?} of SIGTERM; killing it", self.name);
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Pauses the process (SIGSTOP): it holds its sockets and answers nothing, like a machine
    /// that hangs.
    pub fn pause(&self) {
        self.signal(rustix::process::Signal::STOP);
    }

    /// Resumes a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal(rustix::process::Signal::CONT);
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let pid = self.id().and_then(|id| rustix::process::Pid::from_raw(id as i32));
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real `nats-server` with JetStream, listening on loopback ports chosen by the kernel, its
/// store in a temporary directory. Stopped (SIGKILL) when dropped.
#[derive(Debug)]
pub struct NatsServer {
    process: Child,
    port: u16,
    monitor_port: u16,
    /// JetStream's store and the ports file; removed on drop, after the server is gone.
    dir: tempfile::TempDir,
    /// Arguments given to every run (e.g. `--user`), after ours.
    extra: Vec<String>,
}

impl NatsServer {
    /// Starts `nats-server -js` on free loopback ports and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If `nats-server` is not installed (the test command installs Debian's) or does not come
    /// up within 20 s.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&[])
    }

    /// As [`NatsServer::start`], with more arguments for `nats-server` (e.g. `--user u --pass
    /// p`), given again on [`NatsServer::restart`].
    pub fn start_with(extra: &[&str]) -> NatsServer {
        let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        let dir = tempfile::tempdir().expect("a temporary directory for nats-server");
        let ports_dir = dir.path().join("ports");
        std::fs::create_dir(&ports_dir).expect("the ports directory");
        let mut command = nats_command(dir.path(), "-1", "-1");
        command.arg("--ports_file_dir").arg(&ports_dir).args(&extra);
        let process = Child::spawn("nats-server", command);
        let ports = wait_for_ports_file(&ports_dir);
        let port = first_port(&ports, "nats");
        let monitor_port = first_port(&ports, "monitoring");
        let server = NatsServer { process, port, monitor_port, dir, extra };
        server.wait_accepting();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>` of the monitoring endpoints (`/varz`, `/connz`, `/subsz`).
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// A monitoring endpoint's JSON, e.g. `monitor("/connz?subs=1")`.
    ///
    /// # Panics
    ///
    /// If the server does not answer with JSON.
    pub fn monitor(&self, path_and_query: &str) -> serde_json::Value {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.monitor_port));
        let (status, body) = http_get(addr, path_and_query)
            .unwrap_or_else(|e| panic!("GET {path_and_query} from nats-server: {e}"));
        assert_eq!(status, 200, "GET {path_and_query}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path_and_query}: {e}: {body}"))
    }

    /// What the server has logged so far (every run since [`NatsServer::start`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// Kills the server (SIGKILL, like a crash). Clients see their connections drop.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same ports with the same store (what clients reconnect
    /// to), and waits until it accepts connections. Kills the running one first, if any.
    pub fn restart(&mut self) {
        self.process.kill();
        let mut command =
            nats_command(self.dir.path(), &self.port.to_string(), &self.monitor_port.to_string());
        command.args(&self.extra);
        self.process = Child::spawn("nats-server", command);
        self.wait_accepting();
    }

    fn wait_accepting(&self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        wait_until(&format!("nats-server to accept connections on {addr}"), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
    }
}

/// Real `nats-server`s with JetStream clustered over loopback routes, each with its own store in
/// a temporary directory: the replicated JetStream that key-value buckets with several replicas
/// need. Nodes are stopped (SIGKILL) when dropped.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<ClusterNode>,
}

#[derive(Debug)]
struct ClusterNode {
    process: Child,
    name: String,
    port: u16,
    monitor_port: u16,
    cluster_port: u16,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes (`node-1`...) in cluster `test`, every node routing to every other,
    /// and waits until each accepts connections and JetStream has elected a meta leader that all
    /// of them know.
    ///
    /// # Panics
    ///
    /// If `nats-server` is missing or the cluster does not form within 20 s. (Which nats-server:
    /// see `NATS_SERVER_CLUSTER` in the crate's documentation.)
    pub fn start(size: usize) -> NatsCluster {
        let addrs: Vec<(u16, u16, u16)> = (0..size)
            .map(|_| (free_addr().port(), free_addr().port(), free_addr().port()))
            .collect();
        let mut cluster = NatsCluster { nodes: Vec::with_capacity(size) };
        for (i, &(port, monitor_port, cluster_port)) in addrs.iter().enumerate() {
            let node = ClusterNode {
                // Not started yet: `restart` starts it.
                process: Child { name: "nats-server".to_owned(), child: None },
                name: format!("node-{}", i + 1),
                port,
                monitor_port,
                cluster_port,
                dir: tempfile::tempdir().expect("a temporary directory for nats-server"),
            };
            cluster.nodes.push(node);
        }
        for i in 0..size {
            cluster.restart(i);
        }
        cluster.wait_for_meta_leader();
        cluster
    }

    /// The nodes' client URLs, comma-separated (what a client that fails over is given).
    pub fn urls(&self) -> String {
        (0..self.nodes.len()).map(|i| self.url(i)).collect::<Vec<_>>().join(",")
    }

    /// `nats://127.0.0.1:<port>` of node `i` (from 0).
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    /// Node `i`'s server name (`node-<i + 1>`).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// A monitoring endpoint's JSON from node `i`, e.g. `monitor(0, "/jsz")`.
    ///
    /// # Panics
    ///
    /// If the node does not answer with JSON.
    pub fn monitor(&self, i: usize, path_and_query: &str) -> serde_json::Value {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.nodes[i].monitor_port));
        let (status, body) = http_get(addr, path_and_query)
            .unwrap_or_else(|e| panic!("GET {path_and_query} from {}: {e}", self.nodes[i].name));
        assert_eq!(status, 200, "GET {path_and_query}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path_and_query}: {e}: {body}"))
    }

    /// A monitoring endpoint's JSON from every node that answers (a killed one does not).
    pub fn monitor_all(&self, path_and_query: &str) -> Vec<serde_json::Value> {
        self.nodes
            .iter()
            .filter_map(|node| {
                let addr = SocketAddr::from(([127, 0, 0, 1], node.monitor_port));
                let (status, body) = http_get(addr, path_and_query).ok()?;
                (status == 200).then(|| serde_json::from_str(&body).ok()).flatten()
            })
            .collect()
    }

    /// Every node's log so far, each under its name.
    pub fn logs(&self) -> String {
        (0..self.nodes.len())
            .map(|i| format!("--- {} ---\n{}", self.nodes[i].name, self.log(i)))
            .collect()
    }

    /// What node `i` has logged so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].dir.path().join("nats.log")).unwrap_or_default()
    }

    /// Kills node `i` (SIGKILL, like a crash).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].process.kill();
    }

    /// Pauses node `i` (SIGSTOP).
    pub fn pause(&self, i: usize) {
        self.nodes[i].process.pause();
    }

    /// Resumes node `i` (SIGCONT).
    pub fn resume(&self, i: usize) {
        self.nodes[i].process.resume();
    }

    /// Node `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].process.id()
    }

    /// Whether node `i` is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].process.is_running()
    }

    /// Starts node `i` again on its ports with its store (killing it first if it runs), and
    /// waits until it accepts connections.
    pub fn restart(&mut self, i: usize) {
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, node)| format!("nats://127.0.0.1:{}", node.cluster_port))
            .collect();
        let node = &mut self.nodes[i];
        node.process.kill();
        let mut command = nats_command_of(
            &cluster_server(),
            node.dir.path(),
            &node.port.to_string(),
            &node.monitor_port.to_string(),
        );
        command
            .args(["--server_name", &node.name, "--cluster_name", "test", "--cluster"])
            .arg(format!("nats://127.0.0.1:{}", node.cluster_port))
            .arg("--routes")
            .arg(routes.join(","));
        node.process = Child::spawn("nats-server", command);
        let addr = SocketAddr::from(([127, 0, 0, 1], node.port));
        wait_until(&format!("{} to accept connections on {addr}", node.name), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
    }

    /// Waits until every running node names the same running node as JetStream's meta leader,
    /// and returns its name.
    ///
    /// # Panics
    ///
    /// After 20 s without one.
    pub fn wait_for_meta_leader(&mut self) -> String {
        let mut leader = String::new();
        let running: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.is_running(i)).collect();
        let names: Vec<String> = running.iter().map(|&i| self.nodes[i].name.clone()).collect();
        wait_until("a JetStream meta leader that every running node knows", || {
            let seen: Vec<Option<String>> = running
                .iter()
                .map(|&i| {
                    let addr = SocketAddr::from(([127, 0, 0, 1], self.nodes[i].monitor_port));
                    let (_, body) = http_get(addr, "/jsz").ok()?;
                    let jsz: serde_json::Value = serde_json::from_str(&body).ok()?;
                    jsz["meta_cluster"]["leader"]
                        .as_str()
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                })
                .collect();
            match seen.first() {
                Some(Some(first))
                    if names.contains(first) && seen.iter().all(|s| s.as_ref() == Some(first)) =>
                {
                    leader.clone_from(first);
                    true
                }
                _ => false,
            }
        });
        leader
    }
}

/// The nats-server a [`NatsCluster`] runs: `NATS_SERVER_CLUSTER` if set, else the pinned
/// 2.15.1 that `scripts/install-nats-server` puts in `.tools/`, else `nats-server` on the path.
/// (With Debian's 2.9.10, requests published on one node of a cluster got "no responders" for
/// seconds at a time while the queue group serving them was on another; 2.15.1 delivers them.)
fn cluster_server() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_CLUSTER") {
        return PathBuf::from(path);
    }
    let pinned =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/nats-server/bin/nats-server");
    if pinned.is_file() { pinned } else { PathBuf::from("nats-server") }
}

fn nats_command(dir: &Path, port: &str, monitor_port: &str) -> Command {
    nats_command_of(Path::new("nats-server"), dir, port, monitor_port)
}

fn nats_command_of(program: &Path, dir: &Path, port: &str, monitor_port: &str) -> Command {
    let mut command = Command::new(program);
    command
        .args(["-a", "127.0.0.1", "-p", port, "-m", monitor_port, "-js", "-sd"])
        .arg(dir.join("jetstream"))
        // Its log is noise unless something fails: it goes to a file that `NatsServer::log`
        // reads.
        .arg("--log")
        .arg(dir.join("nats.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

fn wait_for_ports_file(dir: &Path) -> serde_json::Value {
    let mut found: Option<PathBuf> = None;
    wait_until("nats-server to write its ports file", || {
        found = std::fs::read_dir(dir)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
            .map(|entry| entry.path());
        found.is_some()
    });
    let path = found.expect("found above");
    let mut ports = serde_json::Value::Null;
    // The file may be seen before it is fully written.
    wait_until("a complete ports file", || {
        ports = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(serde_json::Value::Null);
        ports.get("nats").is_some() && ports.get("monitoring").is_some()
    });
    ports
}

/// The port of the first URL under `kind` in a ports file (`{"nats":["nats://127.0.0.1:4222"]}`).
fn first_port(ports: &serde_json::Value, kind: &str) -> u16 {
    ports[kind][0]
        .as_str()
        .and_then(|url| url.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no {kind} port in nats-server's ports file: {ports}"))
}

/// Polls `ready` every 10 ms until it holds.
///
/// # Panics
///
/// After 20 s, naming what it waited for.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A free loopback address for a server a test starts: a port that could be bound just now.
///
/// The port is below Linux's ephemeral range (32768 and up by default), where the kernel picks
/// ports for `bind(0)` and for outgoing connections. A port the kernel handed out could be taken
/// again by any connection some other test opens before the server binds it (CI saw a gateway's
/// admin port taken that way); a port from 20000–32767 can only be taken by another caller of
/// this function. Within a process each call gets a different port: the search walks on from a
/// start that differs between processes.
pub fn free_addr() -> SocketAddr {
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    const FIRST: u32 = 20_000;
    const PORTS: u32 = 32_768 - FIRST;
    static NEXT: LazyLock<AtomicU32> = LazyLock::new(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        AtomicU32::new((std::process::id().wrapping_mul(7919) ^ nanos) % PORTS)
    });
    for _ in 0..PORTS {
        let port = FIRST + NEXT.fetch_add(1, Relaxed) % PORTS;
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free loopback port in {FIRST}..32768");
}

/// One HTTP/1.1 GET (`Connection: close`); the status code and the body as text.
///
/// # Errors
///
/// Connection failures and responses that are not HTTP.
pub fn http_get(addr: SocketAddr, path_and_query: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path_and_query, &[], "")
}

/// One HTTP/1.1 request with a body (`Connection: close`) and extra header lines
/// (`"Authorization: Bearer x"`); the status code and the body as text.
///
/// # Errors
///
/// Connection failures and responses that are not HTTP.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[&str],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    // nats-server answers with chunked bodies only for streams; a Content-Length body is whole.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_reports_itself_and_restarts_on_the_same_port() {
        let mut nats = NatsServer::start();
        let varz = nats.monitor("/varz");
        assert_eq!(varz["port"].as_u64(), Some(u64::from(nats.port())));
        assert!(varz["jetstream"]["config"].is_object(), "JetStream is on: {varz}");
        assert!(nats.log().contains("Server is ready"), "{}", nats.log());
        nats.kill();
        let addr = SocketAddr::from(([127, 0, 0, 1], nats.port()));
        assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
        nats.restart();
        assert_eq!(nats.monitor("/varz")["port"].as_u64(), Some(u64::from(nats.port())));
    }

    #[test]
    fn a_cluster_elects_a_meta_leader_and_elects_another_when_it_dies() {
        let mut cluster = NatsCluster::start(3);
        let leader = cluster.wait_for_meta_leader();
        // A leader can be elected by two before the third has joined the meta group.
        wait_until("the meta group to count all 3 nodes", || {
            cluster.monitor(0, "/jsz")["meta_cluster"]["cluster_size"] == 3
        });
        assert_eq!(cluster.urls().split(',').count(), 3);
        let dead = (0..3).find(|&i| cluster.name(i) == leader).expect("the leader is a node");
        cluster.kill(dead);
        let next = cluster.wait_for_meta_leader();
        assert_ne!(next, leader, "the two left elect another leader");
        cluster.restart(dead);
        cluster.wait_for_meta_leader();
        assert!(cluster.log(dead).contains("Server is ready"), "{}", cluster.log(dead));
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
