//! The demo's web server (the contract with the dashboard, `docs/tracker.md`, "The demo"): the
//! dashboard's built files, `/config.json` (where the gateway is) and `/city.geojson` (the
//! basemap: the city the simulated devices drive in). GET and HEAD only, one request per
//! connection (`Connection: close`), anything else 404.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response may take to be written.
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

/// Serves `site` on `listener` until `shutdown`, then waits for the responses being written.
pub async fn serve(listener: TcpListener, site: Arc<Site>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let site = site.clone();
                connections.spawn(async move {
                    if let Err(e) = respond(stream, &site).await {
                        tracing::debug!(%peer, cause = %e, "an HTTP request failed");
                    }
                });
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

async fn respond(mut stream: TcpStream, site: &Site) -> std::io::Result<()> {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let Some(head) = head else {
        return write(&mut stream, 400, "text/plain; charset=utf-8", b"bad request\n", true).await;
    };
    let mut parts = head.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split(['?', '#']).next().unwrap_or("");
    let (status, kind, body) = match method {
        "GET" | "HEAD" if path.starts_with('/') => site.get(path).await,
        "GET" | "HEAD" => not_found(),
        _ => (405, "text/plain; charset=utf-8", b"method not allowed: GET or HEAD\n".to_vec()),
    };
    write(&mut stream, status, kind, &body, method != "HEAD").await
}

/// The request line, once the whole head has arrived; `None` if it is too long or not text.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
    let Ok(text) = std::str::from_utf8(&head) else { return Ok(None) };
    Ok(text.lines().next().map(str::to_owned))
}

async fn write(
    stream: &mut TcpStream,
    status: u16,
    kind: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let allow = if status == 405 { "Allow: GET, HEAD\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n{allow}\
         Connection: close\r\n\r\n",
        body.len()
    );
    let send = async {
        stream.write_all(head.as_bytes()).await?;
        if with_body {
            stream.write_all(body).await?;
        }
        stream.shutdown().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, send).await.unwrap_or(Ok(()))
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

    #[test]
    fn a_folder_without_index_html_is_refused_naming_the_build_command() {
        let dir = tempfile::tempdir().unwrap();
        let err = Site::new(dir.path(), Vec::new(), Vec::new()).unwrap_err();
        assert!(err.contains("node examples/tracker/web/build.mjs"), "{err}");
    }
}
