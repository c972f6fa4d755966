//! Screenshots: capture with the system's headless Chromium (a page served here, the worker, the
//! stored PNG and its feed event), the SSRF guard of captures (the target, redirect hops,
//! sub-resources, fetches and WebSockets through the guarding proxy), the 503 without Chromium,
//! and blobs on S3-compatible storage (moto_server).
//!
//! Chromium: CI installs it (`.ci/run`); without it the capture tests check the 503 instead.
//! moto_server: `pip install 'moto[server]'` (`.ci/run` does); without it the S3 test is skipped
//! with a message.

mod common;

use common::{eventually, Fetch, TestApp};
use pulseboard::App;
use pulseboard_storage::jobs;
use pulseboard_watch::capture::{find_chromium, CaptureError, Capturer};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A small web site on 127.0.0.1 (also reachable as localhost); counts requests per path.
#[derive(Clone)]
struct Site {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Site {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let site = Site {
            port: listener.local_addr().unwrap().port(),
            hits: Default::default(),
        };
        common::serve_each(listener, site.clone(), |s, stream| async move {
            s.serve(stream).await
        });
        site
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    async fn serve(&self, mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let Some(buf) = common::read_head(&mut stream).await? else {
            return Ok(());
        };
        let head = String::from_utf8_lossy(&buf);
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let path = path.to_owned();
        // A query parameter (`to=host:port`, `for=/a,/b`), empty when absent.
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or("")
                .to_owned()
        };
        *self.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        let secret = self.url("127.0.0.1", "/secret");
        let frame = self.url("localhost", "/frame");
        let (status, kind, body, location) = match path.as_str() {
            // A page with a cross-site frame (localhost vs 127.0.0.1): its requests must not
            // stall the load.
            "/page" => (
                "200 OK",
                "text/html",
                format!(
                    "<!doctype html><html><body style=\"margin:0;background:#2a9d8f\">\
                     <h1 style=\"color:#fff;font:48px sans-serif\">Pulseboard capture test</h1>\
                     <iframe src=\"{frame}\" width=\"400\" height=\"200\"></iframe>\
                     </body></html>"
                ),
                None,
            ),
            "/frame" => (
                "200 OK",
                "text/html",
                "<!doctype html><body style=\"background:#e9c46a\">frame</body>".to_owned(),
                None,
            ),
            // Allowed by name (localhost), but it pulls in a private address.
            "/guarded" => (
                "200 OK",
                "text/html",
                format!(
                    "<!doctype html><body><h1>guarded</h1><img src=\"{secret}\">\
                     <iframe src=\"{secret}\"></iframe></body>"
                ),
                None,
            ),
            // WebSockets (not paused by the DevTools Fetch domain): one to a private address
            // (`to`), one to an echo server on the allowed `localhost` (`echo`). Each outcome is
            // reported with a request to this site, and an image waits for them, so the page
            // finishes loading (and is captured) only once both sockets have had their say.
            "/ws-page" => (
                "200 OK",
                "text/html",
                format!(
                    "<!doctype html><body style=\"background:#264653\">\
                     <h1 style=\"color:#fff;font:48px sans-serif\">websockets</h1>\
                     <img src=\"/wait?for=/ws-private-closed,/ws-echoed\" width=\"1\" height=\"1\">\
                     <script>\
                     const report = (what) => fetch('/ws-' + what).catch(() => {{}});\
                     const inside = new WebSocket('ws://{to}/socket');\
                     inside.onopen = () => report('private-opened');\
                     inside.onclose = () => report('private-closed');\
                     const echo = new WebSocket('ws://localhost:{echo}/echo');\
                     echo.onopen = () => echo.send('hello');\
                     echo.onmessage = (e) => {{ if (e.data === 'hello') report('echoed'); }};\
                     echo.onclose = () => report('echo-closed');\
                     </script></body>",
                    to = param("to"),
                    echo = param("echo"),
                ),
                None,
            ),
            // Sub-resources and a fetch to a private address (`to`); the image waits for the
            // fetch to settle.
            "/peek-page" => (
                "200 OK",
                "text/html",
                format!(
                    "<!doctype html><body><h1>peek</h1>\
                     <img src=\"http://{to}/img\"><iframe src=\"http://{to}/frame\"></iframe>\
                     <img src=\"/wait?for=/fetch-done\" width=\"1\" height=\"1\">\
                     <script>fetch('http://{to}/fetch', {{mode: 'no-cors'}}).catch(() => {{}})\
                     .finally(() => fetch('/fetch-done'));</script></body>",
                    to = param("to"),
                ),
                None,
            ),
            // Answers once every path in `for` was requested (or after 15 s).
            "/wait" => {
                let wanted = param("for");
                for _ in 0..150 {
                    if wanted.split(',').all(|p| self.hits(p) > 0) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                ("404 Not Found", "text/plain", "waited".to_owned(), None)
            }
            "/redirect" => ("302 Found", "text/plain", String::new(), Some(secret)),
            "/secret" => ("200 OK", "text/plain", "secret".to_owned(), None),
            "/hang" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Ok(());
            }
            _ => ("404 Not Found", "text/plain", "nothing".to_owned(), None),
        };
        let mut resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(l) = location {
            resp.push_str(&format!("Location: {l}\r\n"));
        }
        resp.push_str("\r\n");
        resp.push_str(&body);
        stream.write_all(resp.as_bytes()).await?;
        stream.shutdown().await
    }
}

/// A WebSocket echo server on `ip` (also a plain TCP listener: it counts every connection it
/// accepts, a WebSocket or not).
struct WsServer {
    addr: std::net::SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl WsServer {
    async fn start(ip: &str) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    use futures_util::{SinkExt, StreamExt};
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_text() && ws.send(msg).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn add(app: &TestApp, c: &reqwest::Client, url: &str) -> String {
    let v = app.add_resource(c, url).await;
    v["uuid"].as_str().unwrap().to_owned()
}

async fn capture(app: &TestApp, c: &reqwest::Client, uuid: &str) -> reqwest::Response {
    c.post(app.url(&format!("/resources/{uuid}/screenshot/capture")))
        .fetch()
        .await
}

async fn resource(app: &TestApp, c: &reqwest::Client, uuid: &str) -> Value {
    c.get(app.url(&format!("/resources/{uuid}")))
        .fetch_json()
        .await
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

async fn capture_app(tweak: impl FnOnce(&mut pulseboard_config::Config)) -> TestApp {
    TestApp::spawn_with_worker_configured(|c| {
        // Generous: Chromium starts slowly on a busy two-core machine.
        c.screenshots.timeout_secs = 60;
        c.jobs.max_attempts = 2;
        tweak(c);
    })
    .await
}

/// The capture guard as deployed: private targets refused, `localhost` allowed by name (so that
/// the site served here can be reached under that name and point at private addresses).
async fn guarded_capture_app() -> TestApp {
    capture_app(|c| {
        c.monitor.allow_private_targets = false;
        c.monitor.allowed_hosts = vec!["localhost".into()];
    })
    .await
}

/// Asks for a capture of `uuid` and waits until it is stored. Without Chromium it checks the 503
/// instead and returns false: the rest of `test` cannot run.
async fn captured(app: &TestApp, c: &reqwest::Client, uuid: &str, test: &str) -> bool {
    let r = capture(app, c, uuid).await;
    if find_chromium("").is_none() {
        println!("Chromium is not installed: the {test} test only checks the 503");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        return false;
    }
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    eventually(120, || async {
        let v = resource(app, c, uuid).await;
        (!v["screenshot"].is_null()).then_some(())
    })
    .await;
    true
}

#[tokio::test]
async fn a_capture_stores_a_png_like_an_upload() {
    let site = Site::start().await;
    let app = capture_app(|c| c.monitor.allow_private_targets = true).await;
    let c = &app.client;
    app.register(c, "camera@example.com").await;
    let uuid = add(&app, c, &site.url("127.0.0.1", "/page")).await;

    let r = capture(&app, c, &uuid).await;
    if find_chromium("").is_none() {
        println!("Chromium is not installed: checking the 503 instead of a capture");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "service_unavailable");
        assert!(v["message"].as_str().unwrap().contains("Chromium"), "{v}");
        app.stop().await;
        return;
    }
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v: Value = r.json().await.unwrap();
    assert!(v["job_id"].as_i64().unwrap() > 0, "{v}");
    assert_eq!(v["resource_uuid"], uuid.as_str());
    assert_eq!(v["screenshot_url"], format!("/resources/{uuid}/screenshot"));

    let shot = eventually(120, || async {
        let v = resource(&app, c, &uuid).await;
        (!v["screenshot"].is_null()).then(|| v["screenshot"].clone())
    })
    .await;
    assert_eq!(shot["source"], "capture");
    assert_eq!(shot["content_type"], "image/png");

    let r = c
        .get(app.url(&format!("/resources/{uuid}/screenshot")))
        .expect_status(StatusCode::OK)
        .await;
    assert_eq!(r.headers()["content-type"], "image/png");
    let png = r.bytes().await.unwrap();
    assert!(png.starts_with(PNG_MAGIC), "not a PNG");
    assert!(
        png.len() > 2000,
        "a real page, not a blank: {} bytes",
        png.len()
    );
    assert_eq!(png_size(&png), (1280, 800), "the configured viewport");
    assert_eq!(shot["size_bytes"], png.len());
    assert!(site.hits("/page") >= 1);
    assert!(site.hits("/frame") >= 1, "the cross-site frame loaded too");

    // The same feed event as an upload.
    let feed: Value = c.get(app.url("/feed")).fetch_json().await;
    assert_eq!(feed["items"][0]["kind"], "photo_added");
    assert_eq!(feed["items"][0]["resource_uuid"], uuid.as_str());
    assert_eq!(feed["items"][0]["details"]["source"], "capture");

    // A second capture replaces the first (one browser, reused): one blob left.
    let r = capture(&app, c, &uuid).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    eventually(120, || async {
        let v: Value = c.get(app.url("/feed")).fetch_json().await;
        (v["meta"]["total_items"].as_i64() == Some(3)).then_some(())
    })
    .await;
    let blobs = std::fs::read_dir(app.data_dir.join("blobs"))
        .unwrap()
        .count();
    assert_eq!(blobs, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_capturer_times_out_relaunches_a_dead_browser_and_goes_on() {
    if find_chromium("").is_none() {
        println!("SKIPPED: Chromium is not installed; the capturer itself was not tested");
        return;
    }
    let site = Site::start().await;
    let tmp = std::env::temp_dir();
    let mut config = common::test_config(&tmp);
    config.monitor.allow_private_targets = true;
    config.screenshots.timeout_secs = 4;
    config.screenshots.max_pages = 1;
    let capturer = Capturer::new(&config.screenshots, &config.monitor);
    assert_eq!(
        capturer.browser_pid().await,
        None,
        "launched on first use only"
    );

    // A page that never finishes loading: a timeout, and the tab is given back.
    let started = std::time::Instant::now();
    let err = capturer.capture(&site.url("127.0.0.1", "/hang")).await;
    assert!(matches!(err, Err(CaptureError::Timeout(_))), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let png = capturer
        .capture(&site.url("127.0.0.1", "/page"))
        .await
        .expect("the one tab is free again");
    assert!(png.starts_with(PNG_MAGIC));

    // The browser dies: the next capture launches another.
    let pid = capturer.browser_pid().await.expect("a browser runs");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let png = capturer
        .capture(&site.url("127.0.0.1", "/page"))
        .await
        .expect("captured by a new browser");
    assert!(png.starts_with(PNG_MAGIC));
    let new_pid = capturer.browser_pid().await.expect("a browser runs");
    assert_ne!(pid, new_pid);
    capturer.shutdown().await;
    assert_eq!(capturer.browser_pid().await, None);
}

#[tokio::test]
async fn without_chromium_capture_is_a_clear_503() {
    let app = TestApp::spawn_configured(|c| {
        c.screenshots.chromium_path = "/nonexistent/chromium".into();
        c.monitor.allow_private_targets = true;
    })
    .await;
    let c = &app.client;
    let guest = app.new_client();
    let r = capture(&app, &guest, "1").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    app.register(c, "nochrome@example.com").await;
    let uuid = add(&app, c, "https://example.com/").await;
    let r = capture(&app, c, &uuid).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "service_unavailable");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("Chromium is not installed"), "{message}");
    assert!(message.contains("screenshots.chromium_path"), "{message}");

    // Someone else's resource, or none: 404 before anything else.
    let other = app.new_client();
    app.register(&other, "other@example.com").await;
    assert_eq!(
        capture(&app, &other, &uuid).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        capture(&app, c, "00000000-0000-4000-8000-000000000000")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // Nothing was queued.
    let queued: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE kind = 'capture_screenshot'")
            .fetch_one(&mut *app.sql().await)
            .await
            .unwrap();
    assert_eq!(queued.0, 0);
    app.stop().await;
}

#[tokio::test]
async fn screenshots_capture_always_or_never_overrides_the_local_lookup() {
    // `always`: the API takes the request although it has no Chromium (the workers do).
    let app = TestApp::spawn_configured(|c| {
        c.screenshots.chromium_path = "/nonexistent/chromium".into();
        c.screenshots.capture = pulseboard_config::CaptureMode::Always;
    })
    .await;
    let c = &app.client;
    app.register(c, "always@example.com").await;
    let uuid = add(&app, c, "https://example.com/").await;
    let r = capture(&app, c, &uuid).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job_id = r.json::<Value>().await.unwrap()["job_id"].as_i64().unwrap();
    let job = jobs::get(&app.app.db, job_id).await.unwrap().unwrap();
    assert_eq!(job.kind, "capture_screenshot");
    assert_eq!(job.queue, "screenshots");
    app.stop().await;

    // `never`: switched off, whatever is installed.
    let app = TestApp::spawn_configured(|c| {
        c.screenshots.capture = pulseboard_config::CaptureMode::Never
    })
    .await;
    let c = &app.client;
    app.register(c, "never@example.com").await;
    let uuid = add(&app, c, "https://example.com/").await;
    let r = capture(&app, c, &uuid).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("switched off"),
        "{v}"
    );
    app.stop().await;
}

#[tokio::test]
async fn captures_never_reach_private_addresses_unless_allowed() {
    let site = Site::start().await;
    // Private targets refused; `localhost` trusted by name, as an operator might trust one host.
    let app = guarded_capture_app().await;
    let c = &app.client;
    app.register(c, "guard@example.com").await;

    // A literal private address is refused at once.
    let direct = add(&app, c, &site.url("127.0.0.1", "/secret")).await;
    let r = capture(&app, c, &direct).await;
    if find_chromium("").is_none() {
        println!("Chromium is not installed: the capture guard test only checks the 503");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        app.stop().await;
        return;
    }
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert!(v["details"]["url"].is_string(), "{v}");

    // An allowed page that pulls in a private address: captured, without that address.
    let guarded = add(&app, c, &site.url("localhost", "/guarded")).await;
    assert_eq!(
        capture(&app, c, &guarded).await.status(),
        StatusCode::ACCEPTED
    );
    eventually(120, || async {
        let v = resource(&app, c, &guarded).await;
        (!v["screenshot"].is_null()).then_some(())
    })
    .await;
    assert!(site.hits("/guarded") >= 1);

    // An allowed page that redirects to a private address: no screenshot, a dead job that
    // says why.
    let redirect = add(&app, c, &site.url("localhost", "/redirect")).await;
    let r = capture(&app, c, &redirect).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job_id = r.json::<Value>().await.unwrap()["job_id"].as_i64().unwrap();
    let job = eventually(120, || async {
        let j = jobs::get(&app.app.db, job_id).await.unwrap().unwrap();
        (j.status == "dead").then_some(j)
    })
    .await;
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains("blocked"), "{error}");
    assert_eq!(job.attempts, 1, "a blocked target is not retried");
    assert!(site.hits("/redirect") >= 1);
    assert!(resource(&app, c, &redirect).await["screenshot"].is_null());

    assert_eq!(
        site.hits("/secret"),
        0,
        "the private address was never reached"
    );
    app.stop().await;
}

/// The capture browser goes out only through the guarding proxy: a WebSocket (which the DevTools
/// Fetch domain never pauses) to a private address that is not allowed never connects, while one
/// to the allowed host works, and the page is captured.
#[tokio::test]
async fn websockets_of_a_captured_page_never_reach_private_addresses() {
    let site = Site::start().await;
    // 127.0.0.2: loopback, so reachable from here, but not the allowed `localhost`.
    let inside = WsServer::start("127.0.0.2").await;
    let echo = WsServer::start("127.0.0.1").await;
    let app = guarded_capture_app().await;
    let c = &app.client;
    app.register(c, "sockets@example.com").await;
    let page = format!("/ws-page?to={}&echo={}", inside.addr, echo.addr.port());
    let uuid = add(&app, c, &site.url("localhost", &page)).await;
    if !captured(&app, c, &uuid, "WebSocket guard").await {
        app.stop().await;
        return;
    }
    assert!(site.hits("/ws-page") >= 1);
    assert_eq!(
        site.hits("/ws-echoed"),
        1,
        "a WebSocket to the allowed host works"
    );
    assert!(echo.connections() >= 1);
    assert_eq!(
        site.hits("/ws-private-closed"),
        1,
        "the page tried the private WebSocket and saw it fail"
    );
    assert_eq!(site.hits("/ws-private-opened"), 0);
    assert_eq!(
        inside.connections(),
        0,
        "the private address was never reached"
    );
    app.stop().await;
}

/// Images, frames and fetches of an allowed page to a private address that is not allowed never
/// reach it; the page is still captured.
#[tokio::test]
async fn sub_resources_and_fetches_of_a_captured_page_never_reach_private_addresses() {
    let site = Site::start().await;
    let inside = WsServer::start("127.0.0.2").await;
    let app = guarded_capture_app().await;
    let c = &app.client;
    app.register(c, "peek@example.com").await;
    let uuid = add(
        &app,
        c,
        &site.url("localhost", &format!("/peek-page?to={}", inside.addr)),
    )
    .await;
    if !captured(&app, c, &uuid, "sub-resource guard").await {
        app.stop().await;
        return;
    }
    assert!(site.hits("/peek-page") >= 1);
    assert_eq!(site.hits("/fetch-done"), 1, "the page's fetch settled");
    assert_eq!(
        inside.connections(),
        0,
        "the private address was never reached"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Blobs on S3 (moto_server, an S3-compatible server in Python)

/// moto_server on a free port, stopped on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// None (with a message) when moto_server is not installed.
    async fn start() -> Option<Moto> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = match std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!(
                    "SKIPPED: moto_server is not installed (pip install 'moto[server]'); \
                     the S3 blob store was not tested"
                );
                return None;
            }
            Err(e) => panic!("cannot start moto_server: {e}"),
        };
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        eventually(60, || async {
            client
                .get(format!("{}/moto-api/", moto.endpoint))
                .send()
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Some(moto)
    }

    /// Object keys in a bucket (ListObjectsV2; moto does not check signatures).
    async fn keys(&self, bucket: &str) -> Vec<String> {
        let xml = reqwest::get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}

/// The application on blobs in `s3://bucket/prefix` at moto, with credentials passed the way
/// the binary reads them (the `AWS_*` variables), but without touching this process's environment.
async fn s3_app(moto: &Moto, bucket: &str, prefix: &str) -> S3App {
    let tmp = common::tempdir::Dir::new();
    let mut config = common::test_config(&tmp.0);
    let pg = match common::postgres_admin_url() {
        Some(admin) => Some(common::PgDatabase::create(&admin).await),
        None => None,
    };
    if let Some(pg) = &pg {
        config.database.url = pg.url.clone();
    }
    config.blobs.url = format!("s3://{bucket}/{prefix}");
    config.blobs.endpoint = moto.endpoint.clone();
    config.blobs.allow_http = true;
    config.blobs.region = "us-east-1".into();
    let mut app = App::build(config, true).await.expect("app builds");
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    app.blobs = pulseboard::open_blobs(&app.config, env).expect("S3 blob store");
    let running = pulseboard::start(&app, true, false, false, None, None)
        .await
        .expect("app starts");
    S3App {
        base: format!("http://127.0.0.1:{}", running.addr.port()),
        client: common::client(),
        app,
        running: Some(running),
        _pg: pg,
        tmp,
    }
}

struct S3App {
    base: String,
    client: reqwest::Client,
    app: App,
    running: Option<pulseboard::Running>,
    _pg: Option<common::PgDatabase>,
    tmp: common::tempdir::Dir,
}

impl S3App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

#[tokio::test]
async fn screenshots_live_in_s3_when_blobs_url_says_so() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let bucket = "pulseboard-test";
    let r = reqwest::Client::new()
        .put(format!("{}/{bucket}", moto.endpoint))
        .fetch()
        .await;
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let s3 = s3_app(&moto, bucket, "shots/test").await;
    assert_eq!(s3.app.blobs.describe(), "s3://pulseboard-test/shots/test");
    let c = &s3.client;

    // The store itself: missing keys are None / deletable.
    assert_eq!(s3.app.blobs.get("nothing-here.png").await.unwrap(), None);
    s3.app.blobs.delete("nothing-here.png").await.unwrap();

    c.post(s3.url("/user"))
        .json(&json!({"email": "s3@example.com", "password": common::PASSWORD}))
        .expect_status(StatusCode::OK)
        .await;
    let r: Value = c
        .post(s3.url("/resources"))
        .json(&json!({"url": "https://s3.example.com/"}))
        .fetch_json()
        .await;
    let uuid = r["uuid"].as_str().unwrap().to_owned();
    let mut png = PNG_MAGIC.to_vec();
    png.extend_from_slice(&[7u8; 4096]);
    let upload = |bytes: Vec<u8>| common::file_form(bytes, "shot.png", "image/png");
    c.post(s3.url(&format!("/resources/{uuid}")))
        .multipart(upload(png.clone()))
        .expect_status(StatusCode::CREATED)
        .await;

    let keys = moto.keys(bucket).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with(&format!("shots/test/screenshot-{uuid}-")),
        "{keys:?}"
    );
    assert!(
        !s3.tmp.0.join("blobs").exists(),
        "nothing was written to the local disk"
    );
    let r = c
        .get(s3.url(&format!("/resources/{uuid}/screenshot")))
        .expect_status(StatusCode::OK)
        .await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), png.as_slice());

    // A replacement removes the old object; deleting the resource removes the last one.
    png[9] = 1;
    c.post(s3.url(&format!("/resources/{uuid}")))
        .multipart(upload(png.clone()))
        .expect_status(StatusCode::CREATED)
        .await;
    let after = moto.keys(bucket).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, keys);
    c.delete(s3.url(&format!("/resources/{uuid}")))
        .expect_status(StatusCode::NO_CONTENT)
        .await;
    assert!(moto.keys(bucket).await.is_empty());

    let mut s3 = s3;
    if let Some(r) = s3.running.take() {
        r.stop().await.expect("clean stop");
    }
    s3.app.db.close().await;
}

#[tokio::test]
async fn a_missing_bucket_is_an_error_not_a_hang() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let s3 = s3_app(&moto, "no-such-bucket", "").await;
    let started = std::time::Instant::now();
    let err = s3
        .app
        .blobs
        .put("x.png", PNG_MAGIC.to_vec())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30), "{err}");
    let mut s3 = s3;
    if let Some(r) = s3.running.take() {
        r.stop().await.expect("clean stop");
    }
    s3.app.db.close().await;
}

#[tokio::test]
async fn a_resource_removed_by_failed_checks_takes_its_screenshot_along() {
    let app = TestApp::spawn_configured(|c| {
        c.monitor.allow_private_targets = true;
        c.monitor.max_retries = 2;
        c.monitor.timeout_secs = 2;
    })
    .await;
    let c = &app.client;
    app.register(c, "doomed@example.com").await;
    // Nothing listens there: every check fails.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let uuid = add(&app, c, &format!("http://127.0.0.1:{port}/")).await;
    let mut png = PNG_MAGIC.to_vec();
    png.extend_from_slice(&[1u8; 256]);
    c.post(app.url(&format!("/resources/{uuid}")))
        .multipart(Form::new().part("file", Part::bytes(png).file_name("s.png")))
        .expect_status(StatusCode::CREATED)
        .await;
    let blobs = || {
        std::fs::read_dir(app.data_dir.join("blobs"))
            .unwrap()
            .count()
    };
    assert_eq!(blobs(), 1);
    let mut deleted = false;
    for _ in 0..2 {
        let v: Value = c
            .post(app.url(&format!("/resources/{uuid}/check")))
            .fetch_json()
            .await;
        deleted = v["resource_deleted"] == true;
    }
    assert!(deleted, "deleted at monitor.max_retries");
    assert_eq!(blobs(), 0, "its screenshot went with it");
    app.stop().await;
}

/// A second "Capture now" while the first capture waits gets that capture, not another one; once
/// it is finished, a new click queues a new capture.
#[tokio::test]
async fn a_repeated_capture_request_joins_the_one_under_way() {
    let app = TestApp::spawn_configured(|c| {
        c.screenshots.capture = pulseboard_config::CaptureMode::Always;
        c.monitor.allow_private_targets = true;
    })
    .await;
    let c = &app.client;
    app.register(c, "double-click@example.com").await;
    let uuid = add(&app, c, "http://127.0.0.1:9/").await;
    let other = add(&app, c, "http://127.0.0.1:10/").await;
    let job_of = |r: Value| r["job_id"].as_i64().unwrap();
    let first = capture(&app, c, &uuid).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first = job_of(first.json().await.unwrap());
    let second = job_of(capture(&app, c, &uuid).await.json().await.unwrap());
    assert_eq!(first, second);
    // Another resource's capture is its own job.
    let third = job_of(capture(&app, c, &other).await.json().await.unwrap());
    assert_ne!(third, first);
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'capture_screenshot'")
            .fetch_one(&mut *app.sql().await)
            .await
            .unwrap();
    assert_eq!(count, 2);
    // Finished (as a worker would leave it): the next click is a new capture.
    sqlx::query("UPDATE jobs SET status = 'done' WHERE id = $1")
        .bind(first)
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    let fourth = job_of(capture(&app, c, &uuid).await.json().await.unwrap());
    assert_ne!(fourth, first);
    app.stop().await;
}
