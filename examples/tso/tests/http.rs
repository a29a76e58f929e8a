//! The EpicEpoch-compatible HTTP endpoint of two `tso` processes on a real nats-server, called
//! over HTTP/1.1 and h2c with hyper's client: the leader answers `/timestamp?n=` with n
//! consecutive timestamps of one epoch, the follower with 409 naming the leader; `/members`
//! (and `/membership`) list both and name the leader; bad requests get 400, 404 and 405; the
//! metrics count what was served. Then the leader is killed: the follower serves within the
//! lease plus a second, above everything served before, and lists itself as the leader.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_testkit::{Child, NatsServer, free_addr};
use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tso::Timestamp;

const LEASE: Duration = Duration::from_secs(1);

struct Instance {
    process: Child,
    http: SocketAddr,
}

fn instance(nats: &NatsServer, id: &str) -> Instance {
    let http = free_addr();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tso"));
    command.args(["--id", id, "--nats", &nats.url(), "--replicas", "1", "--lease", "1s"]);
    command.arg("--http").arg(http.to_string());
    Instance { process: Child::spawn(&format!("tso {id}"), command), http }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    fn timestamps(&self) -> Vec<Timestamp> {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        assert_eq!(self.content_type, "application/octet-stream");
        assert_eq!(self.body.len() % Timestamp::LEN, 0, "{:?}", self.body);
        self.body
            .chunks_exact(Timestamp::LEN)
            .map(|chunk| Timestamp::from_bytes(chunk.try_into().expect("16 bytes")))
            .collect()
    }
}

/// One request on a fresh connection, over HTTP/1.1 or h2c (prior knowledge).
async fn request(addr: SocketAddr, method: &str, path: &str, h2: bool) -> std::io::Result<Answer> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let io = TokioIo::new(stream);
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .expect("a request");
    let other = |e: hyper::Error| std::io::Error::other(e.to_string());
    let response = if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.map_err(other)?;
        tokio::spawn(connection);
        sender.send_request(request).await.map_err(other)?
    } else {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(io).await.map_err(other)?;
        tokio::spawn(connection);
        sender.send_request(request).await.map_err(other)?
    };
    let status = response.status();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.into_body().collect().await.map_err(other)?.to_bytes();
    Ok(Answer { status, content_type, body })
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, false).await.unwrap_or_else(|e| panic!("GET {path} at {addr}: {e}"))
}

/// Polls `GET path` until its status is `want`; the answer.
async fn until_status(addr: SocketAddr, path: &str, want: StatusCode, within: Duration) -> Answer {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(answer) = request(addr, "GET", path, false).await
            && answer.status == want
        {
            return answer;
        }
        assert!(Instant::now() < deadline, "GET {path} at {addr}: no {want} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of an unlabelled metric.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_endpoint_answers_as_epicepochs_and_follows_the_leader() {
    let nats = NatsServer::start();
    let mut first = instance(&nats, "1");
    until_status(first.http, "/ready", StatusCode::OK, Duration::from_secs(20)).await;
    let second = instance(&nats, "2");
    // The follower is ready once it has seen the leader renew.
    let ready = until_status(second.http, "/ready", StatusCode::OK, Duration::from_secs(20)).await;
    assert_eq!(ready.text(), "leader=1 nodeID=2 term=1\n");

    let up = get(first.http, "/up").await;
    assert_eq!((up.status, up.text().as_str()), (StatusCode::OK, "ok"));

    // n consecutive timestamps of one epoch, over both protocols, each call above the last.
    let mut last = None;
    for (n, h2) in [(1, false), (5, false), (3, true), (1000, true)] {
        let path = if n == 1 { "/timestamp".to_owned() } else { format!("/timestamp?n={n}") };
        let answer = request(first.http, "GET", &path, h2).await.expect("a timestamp");
        let stamps = answer.timestamps();
        assert_eq!(stamps.len(), n, "{path}");
        for pair in stamps.windows(2) {
            assert_eq!(pair[1], Timestamp { epoch: pair[0].epoch, index: pair[0].index + 1 });
        }
        assert!(last < Some(stamps[0]), "{last:?} then {:?}", stamps[0]);
        last = stamps.last().copied();
    }

    // The follower refuses, naming the leader; /members lists both, from either instance.
    let refused = get(second.http, "/timestamp?n=2").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.text(), "node (2) is not the leader (1)\n");
    let members = serde_json::json!({
        "leader": { "nodeID": 1, "addr": first.http.to_string() },
        "members": [
            { "nodeID": 1, "addr": first.http.to_string() },
            { "nodeID": 2, "addr": second.http.to_string() },
        ],
    });
    for (addr, path) in [(first.http, "/members"), (second.http, "/membership")] {
        let answer = get(addr, path).await;
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(answer.json(), members, "{path} at {addr}");
    }

    // Bad requests.
    for bad in ["/timestamp?n=0", "/timestamp?n=x", "/timestamp?n=1048577"] {
        let answer = get(first.http, bad).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(answer.text().starts_with("invalid n param"), "{bad}: {}", answer.text());
    }
    assert_eq!(get(first.http, "/time").await.status, StatusCode::NOT_FOUND);
    let post = request(first.http, "POST", "/timestamp", false).await.expect("an answer");
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);

    // What the leader served: 1 + 5 + 3 + 1000 timestamps in four calls of four sizes.
    let metrics = get(first.http, "/metrics").await.text();
    assert_eq!(metric(&metrics, "tso_timestamps_served_total"), 1009.0);
    assert_eq!(metric(&metrics, "tso_batch_size_count"), 4.0);
    assert!(metrics.contains("tso_batch_size_bucket{le=\"1\"} 1\n"), "{metrics}");
    assert!(metrics.contains("tso_batch_size_bucket{le=\"4\"} 2\n"), "{metrics}");
    assert!(metrics.contains("tso_batch_size_bucket{le=\"8\"} 3\n"), "{metrics}");
    assert!(metrics.contains("tso_batch_size_bucket{le=\"1024\"} 4\n"), "{metrics}");
    assert_eq!(metric(&metrics, "tso_leading"), 1.0);
    let follower = get(second.http, "/metrics").await.text();
    assert_eq!(metric(&follower, "tso_leading"), 0.0);
    assert!(follower.contains("tso_refused_total{reason=\"not_leader\"} 1\n"), "{follower}");

    // The leader dies: the follower serves within the lease plus a second, above.
    first.process.kill();
    let killed = Instant::now();
    let answer =
        until_status(second.http, "/timestamp", StatusCode::OK, LEASE + Duration::from_secs(1))
            .await;
    eprintln!("served again {:?} after the leader was killed", killed.elapsed());
    assert!(last < Some(answer.timestamps()[0]));
    let members = get(second.http, "/members").await.json();
    assert_eq!(
        members["leader"],
        serde_json::json!({ "nodeID": 2, "addr": second.http.to_string() })
    );
    assert_eq!(members["members"].as_array().map(Vec::len), Some(2), "{members}");
    let metrics = get(second.http, "/metrics").await.text();
    assert_eq!(metric(&metrics, "tso_terms_won_total"), 1.0);
    assert_eq!(metric(&metrics, "tso_term"), 2.0);
    assert_eq!(metric(&metrics, "tso_leader_changes_total"), 1.0);
    let leaderless = metric(&metrics, "tso_leaderless_seconds_total");
    assert!(leaderless > 0.0 && leaderless < 1.0, "{leaderless}");

    // SIGTERM: the instance stops at once, and cleanly.
    let mut second = second;
    let status = second.process.terminate(Duration::from_secs(5)).expect("stops on SIGTERM");
    assert!(status.success(), "{status}");
}
