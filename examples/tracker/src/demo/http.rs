//! The demo's web server (the contract with the dashboard, `docs/tracker.md`, "The demo"): the
//! dashboard's built files, `/config.json` (where the gateway is) and `/city.geojson` (the
//! basemap: the city the simulated devices drive in). GET and HEAD only, anything else 405;
//! unknown paths 404. HTTP/1.1 by hyper.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the responses under way may take once the server stops.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server serves.
#[derive(Debug)]
pub struct Site {
    /// The dashboard's folder, canonical.
    root: PathBuf,
    config_json: Vec<u8>,
    city_geojson: Vec<u8>,
}

impl Site {
    /// A site serving the files under `root` (which must hold `index.html`), with the two
    /// generated documents.
    ///
    /// # Errors
    /// A message naming the folder when it has no `index.html`.
    pub fn new(root: &Path, config_json: Vec<u8>, city_geojson: Vec<u8>) -> Result<Site, String> {
        let index = root.join("index.html");
        if !index.is_file() {
            return Err(format!(
                "the dashboard is not built: `{}` has no index.html (build it with \
                 `node examples/tracker/web/build.mjs`, or give --web DIR)",
                root.display()
            ));
        }
        let root = root.canonicalize().map_err(|e| format!("`{}`: {e}", root.display()))?;
        Ok(Site { root, config_json, city_geojson })
    }

    /// The response to `GET path`: status, content type, body.
    async fn get(&self, path: &str) -> (u16, &'static str, Vec<u8>) {
        match path {
            "/config.json" => return (200, "application/json", self.config_json.clone()),
            "/city.geojson" => return (200, "application/geo+json", self.city_geojson.clone()),
            _ => {}
        }
        let Some(file) = self.file(path) else { return not_found() };
        match tokio::fs::read(&file).await {
            Ok(body) => (200, content_type(&file), body),
            Err(_) => not_found(),
        }
    }

    /// The file under the root that `path` names (`/` is `index.html`), if it is one; never
    /// outside the root (no `..`, and symbolic links leading out are refused).
    fn file(&self, path: &str) -> Option<PathBuf> {
        let decoded = percent_decode(path.strip_prefix('/')?)?;
        let relative = if decoded.is_empty() || decoded.ends_with('/') {
            format!("{decoded}index.html")
        } else {
            decoded
        };
        let relative = Path::new(&relative);
        if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return None;
        }
        let file = self.root.join(relative).canonicalize().ok()?;
        (file.starts_with(&self.root) && file.is_file()).then_some(file)
    }
}

fn not_found() -> (u16, &'static str, Vec<u8>) {
    (404, "text/plain; charset=utf-8", b"not found\n".to_vec())
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "geojson" => "application/geo+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// `%XX` sequences decoded; `None` if one is malformed or the result is not UTF-8 or holds a
/// NUL or a backslash.
fn percent_decode(text: &str) -> Option<String> {
    let text = crate::enrol::percent_decode(text)?;
    (!text.contains(['\0', '\\'])).then_some(text)
}

/// Serves `site` on `listener` until `shutdown`, then waits (a bounded while) for the responses
/// being written. HTTP/1.1 by hyper, with keep-alive: a request head must arrive within
/// `HEAD_TIMEOUT` (an idle connection is closed after as long) and fit in `MAX_HEAD` bytes
/// (else 431).
pub async fn serve(listener: TcpListener, site: Arc<Site>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                connections.spawn(serve_connection(stream, peer, site.clone(), shutdown.clone()));
            }
            Err(e) => {
                tracing::warn!(cause = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    connections.close();
    let _ = tokio::time::timeout(WRITE_TIMEOUT, connections.wait()).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    site: Arc<Site>,
    shutdown: CancellationToken,
) {
    let service = hyper::service::service_fn(move |request| {
        let site = site.clone();
        async move { Ok::<_, std::convert::Infallible>(respond(&request, &site).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(%peer, cause = %e, "an HTTP connection failed");
    }
}

/// The response to one request: GET and HEAD of the site (hyper leaves a HEAD's body out),
/// 405 for other methods.
async fn respond<B>(
    request: &hyper::Request<B>,
    site: &Site,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let path = request.uri().path();
    let (status, kind, body) = match request.method().as_str() {
        "GET" | "HEAD" if path.starts_with('/') => site.get(path).await,
        "GET" | "HEAD" => not_found(),
        _ => (405, "text/plain; charset=utf-8", b"method not allowed: GET or HEAD\n".to_vec()),
    };
    let mut response = hyper::Response::builder()
        .status(status)
        .header("content-type", kind)
        .header("cache-control", "no-cache")
        .header("x-content-type-options", "nosniff");
    if status == 405 {
        response = response.header("allow", "GET, HEAD");
    }
    response
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap_or_else(|_| hyper::Response::new(http_body_util::Full::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(dir: &Path) -> Site {
        std::fs::write(dir.join("index.html"), "<h1>dash</h1>").unwrap();
        std::fs::create_dir(dir.join("maps")).unwrap();
        std::fs::write(dir.join("maps/a b.css"), "x").unwrap();
        Site::new(dir, b"{}".to_vec(), b"{\"type\":\"FeatureCollection\"}".to_vec()).unwrap()
    }

    #[tokio::test]
    async fn files_under_the_root_are_served_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web");
        std::fs::create_dir(&web).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        let site = site(&web);
        assert_eq!(
            site.get("/").await,
            (200, "text/html; charset=utf-8", b"<h1>dash</h1>".to_vec())
        );
        assert_eq!(site.get("/maps/a%20b.css").await.0, 200);
        assert_eq!(site.get("/maps/a%20b.css").await.1, "text/css; charset=utf-8");
        assert_eq!(site.get("/config.json").await.1, "application/json");
        for path in [
            "/../secret.txt",
            "/maps/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/maps/..%2f..%2fsecret.txt",
            "//etc/passwd",
            "/maps",
            "/nope.js",
            "/%zz",
            "/a%00b",
        ] {
            assert_eq!(site.get(path).await.0, 404, "{path}");
        }
    }

    #[tokio::test]
    async fn get_and_head_are_served_other_methods_refused_with_allow() {
        let dir = tempfile::tempdir().unwrap();
        let site = site(dir.path());
        let request = |method: &str, path: &str| {
            hyper::Request::builder().method(method).uri(path).body(()).unwrap()
        };
        let index = respond(&request("GET", "/?v=2"), &site).await;
        assert_eq!(index.status(), 200);
        assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(index.headers()["x-content-type-options"], "nosniff");
        assert_eq!(respond(&request("HEAD", "/config.json"), &site).await.status(), 200);
        assert_eq!(respond(&request("GET", "/nope"), &site).await.status(), 404);
        let post = respond(&request("POST", "/"), &site).await;
        assert_eq!(post.status(), 405);
        assert_eq!(post.headers()["allow"], "GET, HEAD");
    }

    #[test]
    fn a_folder_without_index_html_is_refused_naming_the_build_command() {
        let dir = tempfile::tempdir().unwrap();
        let err = Site::new(dir.path(), Vec::new(), Vec::new()).unwrap_err();
        assert!(err.contains("node examples/tracker/web/build.mjs"), "{err}");
    }
}
