//! `tracker demo` as a user runs it: real processes on free loopback ports, a real SQLite file,
//! a tiny fake dashboard folder, a Rust client holding the tokens the demo prints, SIGTERM and
//! a restart on the same database; and over a real nats-server with `tracker serve`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway_client::{Client, ClientConfig};
use gateway_core::Code;
use gateway_testkit::{Child, NatsServer, free_addr, http_get, wait_until};
use tracker::{HistoryT, ListDevicesT, LoginT, TrackerAccountsClient, TrackerClient};

const WAIT: Duration = Duration::from_secs(15);

/// The addresses a demo is started with, every one a free loopback port.
struct Ports {
    http: SocketAddr,
    listen: SocketAddr,
    ws: SocketAddr,
    admin: SocketAddr,
    ingest: SocketAddr,
}

impl Ports {
    fn free() -> Ports {
        let ingest = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        Ports {
            http: free_addr(),
            listen: free_addr(),
            ws: free_addr(),
            admin: free_addr(),
            ingest,
        }
    }
}

/// A running `tracker demo` and the tokens it printed, by user.
struct Demo {
    child: Child,
    tokens: BTreeMap<String, String>,
    passwords: BTreeMap<String, String>,
    banner: String,
}

/// A dashboard folder with nothing but an index page.
fn fake_dashboard(dir: &Path) -> PathBuf {
    let web = dir.join("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("index.html"), "<!doctype html><title>fake dashboard</title>").unwrap();
    web
}

fn demo_command(dir: &Path, db: &Path, ports: &Ports, devices: usize) -> Command {
    demo_command_with_web(&fake_dashboard(dir), db, ports, devices)
}

fn demo_command_with_web(web: &Path, db: &Path, ports: &Ports, devices: usize) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tracker"));
    command
        .arg("demo")
        .arg("--db")
        .arg(db)
        .arg("--web")
        .arg(web)
        .args(["--devices", &devices.to_string()])
        .args(["--http", &ports.http.to_string()])
        .args(["--listen", &ports.listen.to_string()])
        .args(["--ws-listen", &ports.ws.to_string()])
        .args(["--admin-listen", &ports.admin.to_string()])
        .args(["--ingest", &ports.ingest.to_string()]);
    command
}

/// Starts the demo with `command`, its stdout in a file, and waits for the users' URLs.
fn start(dir: &Path, run: &str, mut command: Command) -> Demo {
    let out = dir.join(format!("{run}.stdout"));
    command.stdout(Stdio::from(std::fs::File::create(&out).unwrap()));
    let mut child = Child::spawn("tracker demo", command);
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    wait_until("the demo's dashboard URLs", || {
        assert!(child.is_running(), "tracker demo exited; it printed:\n{}", read());
        read().lines().filter(|l| l.contains("#token=")).count() == 2
    });
    let banner = read();
    let tokens = banner
        .lines()
        .filter_map(|line| {
            let (user, rest) = line.trim().split_once(' ')?;
            Some((user.to_owned(), rest.split_once("#token=")?.1.to_owned()))
        })
        .collect();
    let passwords = banner
        .lines()
        .filter_map(|line| {
            let (user, rest) = line.trim().split_once(' ')?;
            let password = rest.split_once("password ")?.1.split_whitespace().next()?;
            Some((user.to_owned(), password.to_owned()))
        })
        .collect();
    Demo { child, tokens, passwords, banner }
}

async fn tracker(addr: SocketAddr, token: &str) -> TrackerClient<Client> {
    let mut config = ClientConfig::new([addr.to_string()]);
    config.token = Some(token.as_bytes().to_vec());
    TrackerClient::new(Client::connect(config).await.expect("the demo's gateway accepts the token"))
}

/// Signs in as `name` through the gateway (a connection without a token may call `login`), for
/// a token.
async fn login(addr: SocketAddr, name: &str, password: &str) -> String {
    let guest = Client::connect(ClientConfig::new([addr.to_string()])).await.unwrap();
    let accounts = TrackerAccountsClient::new(guest);
    let request = LoginT { name: Some(name.into()), password: Some(password.into()) };
    // Over NATS the service may still be subscribing: ask until it answers.
    let deadline = Instant::now() + WAIT;
    loop {
        match accounts.login(request.clone()).await {
            Ok(session) => return session.unpack().token.expect("a session has a token"),
            Err(e) if e.code() == Code::Unauthenticated => panic!("{name} was refused: {e}"),
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("login does not answer: {e}"),
        }
    }
}

async fn device_ids(tracker: &TrackerClient<Client>) -> Vec<u64> {
    let list = tracker.devices(ListDevicesT::default()).await.unwrap().unpack();
    list.devices.unwrap_or_default().iter().map(|d| d.id).collect()
}

/// Subscribes to every device's key and returns the devices heard from within `WAIT`, once
/// `enough` have been.
async fn devices_heard(
    tracker: &TrackerClient<Client>,
    ids: &[u64],
    enough: usize,
) -> BTreeSet<u64> {
    let mut streams = Vec::new();
    for &id in ids {
        streams.push(tracker.subscribe_position(id).await.unwrap());
    }
    let mut events = futures::stream::select_all(streams);
    let mut heard = BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while heard.len() < enough {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(event)) = tokio::time::timeout(left, events.next()).await else { break };
        let position = event.unwrap().message().unpack();
        assert!(ids.contains(&position.device_id));
        heard.insert(position.device_id);
    }
    heard
}

async fn history_len(tracker: &TrackerClient<Client>, id: u64) -> usize {
    let request = HistoryT { device_id: id, limit: 10_000, ..HistoryT::default() };
    tracker.history(request).await.unwrap().unpack().positions.unwrap_or_default().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_dashboard_streams_positions_per_token_and_keeps_them_across_restarts()
{
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let ports = Ports::free();
    let mut demo = start(dir.path(), "first", demo_command(dir.path(), &db, &ports, 6));
    for address in [ports.http, ports.listen, ports.ws, ports.admin, ports.ingest] {
        assert!(demo.banner.contains(&address.to_string()), "{address} in:\n{}", demo.banner);
    }
    assert!(demo.banner.contains(&format!("http://{}/#token=", ports.http)), "{}", demo.banner);

    // The web server: the dashboard, its configuration, the basemap; nothing else.
    let (status, body) = http_get(ports.http, "/").unwrap();
    assert_eq!((status, body.contains("fake dashboard")), (200, true));
    let (status, body) = http_get(ports.http, "/config.json").unwrap();
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(config["gateway"], format!("ws://{}", ports.ws));
    assert_eq!(config["center"].as_array().map(Vec::len), Some(2));
    assert!(config["zoom"].is_u64());
    let (status, body) = http_get(ports.http, "/city.geojson").unwrap();
    assert_eq!(status, 200);
    let city: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(city["type"], "FeatureCollection");
    assert_eq!(city["bbox"].as_array().map(Vec::len), Some(4));
    let roads = city["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["properties"]["kind"] == "road")
        .count();
    assert!(roads > 10, "{roads} roads");
    assert_eq!(http_get(ports.http, "/app.js").unwrap().0, 404);

    // The dispatcher sees every device and hears from several of them.
    let dispatcher = tracker(ports.listen, &demo.tokens["dispatcher"]).await;
    let all = device_ids(&dispatcher).await;
    assert_eq!(all.len(), 6);
    let heard = devices_heard(&dispatcher, &all, 4).await;
    assert!(heard.len() >= 4, "positions from {heard:?} only");

    // fleet-north sees half of them, and may not listen to the others.
    let north = tracker(ports.listen, &demo.tokens["fleet-north"]).await;
    let mine = device_ids(&north).await;
    assert_eq!(mine.len(), 3);
    assert!(mine.iter().all(|id| all.contains(id)));
    assert!(!devices_heard(&north, &mine, 1).await.is_empty());
    let other = all.iter().find(|id| !mine.contains(id)).unwrap();
    let Err(refused) = north.subscribe_position(*other).await else {
        panic!("fleet-north may subscribe to device {other}, which it does not see")
    };
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused}");
    drop((dispatcher, north));

    // Signing in with the printed password gives a token that sees the same devices.
    let token = login(ports.listen, "fleet-north", &demo.passwords["fleet-north"]).await;
    assert_eq!(device_ids(&tracker(ports.listen, &token).await).await, mine);

    // Stopped (SIGTERM) and started again on the same database: nothing acknowledged is lost.
    let before =
        history_len(&tracker(ports.listen, &demo.tokens["dispatcher"]).await, all[0]).await;
    assert!(before > 0);
    let status = demo.child.terminate(WAIT).expect("the demo stops on SIGTERM");
    assert!(status.success(), "{status}");
    let ports = Ports::free();
    let demo = start(dir.path(), "second", demo_command(dir.path(), &db, &ports, 6));
    let dispatcher = tracker(ports.listen, &demo.tokens["dispatcher"]).await;
    assert_eq!(device_ids(&dispatcher).await, all, "the same devices");
    assert!(history_len(&dispatcher, all[0]).await >= before);
    // And they keep reporting (their counters were not reused).
    assert!(!devices_heard(&dispatcher, &all, 2).await.is_empty());
}

#[test]
fn start_up_errors_are_clear_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let ports = Ports::free();

    let missing = dir.path().join("missing");
    let output = demo_command_with_web(&missing, &db, &ports, 2).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("node examples/tracker/web/build.mjs"), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    // Nothing was started or written.
    assert!(!db.exists());

    // Downsampling that retention would make pointless is refused, naming both flags.
    let mut command = demo_command(dir.path(), &db, &ports, 2);
    command.args(["--retain", "1d", "--downsample-after", "2d"]);
    let output = command.output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--downsample-after 2days is not shorter than --retain 1day"),
        "{stderr}"
    );

    let taken = std::net::TcpListener::bind(ports.ws).unwrap();
    let output = demo_command(dir.path(), &db, &ports, 2).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot listen on {} (`--ws-listen`)", ports.ws)), "{stderr}");
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_nats_the_service_runs_as_its_own_process_and_positions_reach_the_client() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let ports = Ports::free();
    let mut command = demo_command(dir.path(), &db, &ports, 4);
    command.args(["--nats", &nats.url()]);
    let demo = start(dir.path(), "nats", command);
    assert!(demo.banner.contains("NATS"), "{}", demo.banner);
    // Started after the demo has enrolled its devices (either order works: the ingest loads
    // devices it does not know yet); the simulator's reports until then are lost.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_tracker"));
    serve
        .arg("serve")
        .arg("--db")
        .arg(&db)
        .args(["--ingest", &ports.ingest.to_string()])
        .args(["--nats", &nats.url()]);
    let _serve = Child::spawn("tracker serve", serve);

    let dispatcher = tracker(ports.listen, &demo.tokens["dispatcher"]).await;
    // The service may still be subscribing to NATS: ask until it answers.
    let deadline = Instant::now() + WAIT;
    let ids = loop {
        match dispatcher.devices(ListDevicesT::default()).await {
            Ok(list) => {
                break list
                    .unpack()
                    .devices
                    .unwrap_or_default()
                    .iter()
                    .map(|d| d.id)
                    .collect::<Vec<_>>();
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the service does not answer over NATS: {e}"),
        }
    };
    assert_eq!(ids.len(), 4);
    let heard = devices_heard(&dispatcher, &ids, 2).await;
    assert!(heard.len() >= 2, "positions from {heard:?} only");

    // Signing in reaches `tracker serve` over NATS, which signs with the secret next to the
    // database, the one the demo's gateway verifies with.
    let token = login(ports.listen, "fleet-north", &demo.passwords["fleet-north"]).await;
    let north = tracker(ports.listen, &token).await;
    assert_eq!(device_ids(&north).await.len(), 2);
}
