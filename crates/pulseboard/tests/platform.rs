//! The HTTP skeleton and the binary's behaviour on bad input.

mod common;

use common::{Fetch, TestApp};
use reqwest::StatusCode;
use serde_json::Value;
use std::process::Command;

#[tokio::test]
async fn health_and_readiness_at_root_and_under_api_with_trailing_slash() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/api/healthz", "/healthz/", "/api/healthz/"] {
        let r = app.client.get(app.url(path)).fetch().await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r: Value = app.client.get(app.url("/readyz")).fetch_json().await;
    let expected = if common::postgres_admin_url().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(r["database"], expected);
    app.stop().await;
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    app.app.db.close().await;
    let body: Value = app
        .client
        .get(app.url("/readyz"))
        .expect_json(StatusCode::SERVICE_UNAVAILABLE)
        .await;
    assert_eq!(body["error"], "service_unavailable");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_a_given_one() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).fetch().await;
    assert!(r.headers().get("x-request-id").is_some());
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .fetch()
        .await;
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    app.stop().await;
}

#[tokio::test]
async fn responses_are_compressed_when_asked() {
    let app = TestApp::spawn().await;
    for enc in ["gzip", "br"] {
        let r = app
            .client
            .get(app.url("/openapi.json"))
            .header("accept-encoding", enc)
            .expect_status(StatusCode::OK)
            .await;
        assert_eq!(r.headers()["content-encoding"], enc);
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    let body: Value = app
        .client
        .get(app.url("/no-such-thing"))
        .expect_json(StatusCode::NOT_FOUND)
        .await;
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("/no-such-thing"));
    let body: Value = app
        .client
        .put(app.url("/tasks"))
        .expect_json(StatusCode::METHOD_NOT_ALLOWED)
        .await;
    assert_eq!(body["error"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_has_a_browsable_page() {
    let app = TestApp::spawn().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).fetch_json().await;
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/user", "post"),
        ("/user", "get"),
        ("/session", "post"),
        ("/session", "delete"),
        ("/session/refresh", "post"),
        ("/tasks", "get"),
        ("/tasks", "post"),
        ("/tasks/{id}", "get"),
        ("/tasks/{id}", "patch"),
        ("/tasks/{id}", "delete"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/admin/queues", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from openapi.json"
        );
    }
    let page = app
        .client
        .get(app.url("/docs"))
        .fetch()
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("openapi.json") && !page.contains("https://"),
        "docs page must work offline"
    );
    app.stop().await;
}

#[tokio::test]
async fn serves_the_web_app_at_root() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/"))
        .expect_status(StatusCode::OK)
        .await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("<!doctype html"));
    app.stop().await;
}

// ---- connection limits: half-sent requests, idle keep-alive, the connection cap ----

mod connections {
    use super::common::{Options, TestApp};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn spawn(header_secs: u64, keep_alive_secs: u64, max: usize) -> TestApp {
        let opts = Options {
            worker: false,
            scheduler: false,
        };
        TestApp::spawn_with(opts, |c| {
            c.http.header_read_timeout_secs = header_secs;
            c.http.keep_alive_timeout_secs = keep_alive_secs;
            c.http.max_connections = max;
        })
        .await
    }

    fn addr(app: &TestApp) -> String {
        app.base.trim_start_matches("http://").to_owned()
    }

    /// A connection that sends part of a request and then nothing: the request line only half
    /// (`i` even) or the request line and some headers without the blank line (`i` odd).
    async fn stalled(addr: &str, i: usize) -> TcpStream {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let partial: &[u8] = if i.is_multiple_of(2) {
            b"GET /hea"
        } else {
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        };
        s.write_all(partial).await.unwrap();
        s
    }

    /// Whether the server closed `s` (EOF or a reset) within `secs`.
    async fn closed_within(mut s: TcpStream, secs: u64) -> bool {
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Whether `s` is still open: nothing to read and no EOF.
    fn still_open(s: &TcpStream) -> bool {
        let mut buf = [0u8; 16];
        matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Reads one response with a Content-Length body; returns its status code.
    async fn read_response(s: &mut TcpStream) -> std::io::Result<u16> {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            data.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
        let status = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .expect("a content-length")
            .trim()
            .parse()
            .unwrap();
        while data.len() < head_end + length {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            data.extend_from_slice(&buf[..n]);
        }
        Ok(status)
    }

    const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

    /// `GET /healthz` on a new connection, answered within 2 s.
    async fn healthz(addr: &str) -> u16 {
        let fetch = async {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(HEALTHZ).await?;
            read_response(&mut s).await
        };
        tokio::time::timeout(Duration::from_secs(2), fetch)
            .await
            .expect("/healthz answers within 2 s")
            .expect("/healthz answers")
    }

    #[tokio::test]
    async fn half_sent_requests_are_closed_and_health_stays_fast_meanwhile() {
        let app = spawn(4, 75, 4096).await;
        let addr = addr(&app);
        let opened = Instant::now();
        let mut conns = Vec::new();
        for i in 0..200 {
            conns.push(stalled(&addr, i).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..5 {
            assert_eq!(healthz(&addr).await, 200);
        }
        // The answers above came while the 200 were held open (unless this machine is so slow
        // that the header timeout already passed).
        if opened.elapsed() < Duration::from_secs(3) {
            let open = conns.iter().filter(|s| still_open(s)).count();
            assert_eq!(open, 200, "stalled connections closed too early");
        }
        let mut waits = tokio::task::JoinSet::new();
        for s in conns {
            waits.spawn(closed_within(s, 15));
        }
        let mut closed = 0;
        while let Some(r) = waits.join_next().await {
            closed += usize::from(r.unwrap());
        }
        assert_eq!(closed, 200, "every half-sent request is closed");
        assert_eq!(healthz(&addr).await, 200);
        app.stop().await;
    }

    #[tokio::test]
    async fn idle_keep_alive_connections_are_closed_after_the_keep_alive_timeout() {
        let app = spawn(1, 3, 4096).await;
        let addr = addr(&app);
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut s).await.unwrap(), 200);
        // Idle for longer than the header timeout: still open, the keep-alive timeout governs.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut s).await.unwrap(), 200);
        let idle_from = Instant::now();
        assert!(closed_within(s, 15).await, "idle connection is closed");
        let idle = idle_from.elapsed();
        assert!(
            idle >= Duration::from_millis(2500),
            "closed after {idle:?}, before the keep-alive timeout"
        );
        app.stop().await;
    }

    #[tokio::test]
    async fn at_the_connection_cap_new_connections_wait_for_a_free_slot() {
        let app = spawn(2, 75, 20).await;
        let addr = addr(&app);
        let mut conns = Vec::new();
        for i in 0..20 {
            conns.push(stalled(&addr, i).await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // One more: the kernel completes the handshake, but the server does not take it yet.
        let mut extra = TcpStream::connect(&addr).await.unwrap();
        extra.write_all(HEALTHZ).await.unwrap();
        let early = tokio::time::timeout(Duration::from_secs(1), read_response(&mut extra)).await;
        assert!(early.is_err(), "served beyond the cap: {early:?}");
        // The header timeout frees the slots; then the waiting request is served.
        let status = tokio::time::timeout(Duration::from_secs(15), read_response(&mut extra))
            .await
            .expect("served once a slot is free")
            .unwrap();
        assert_eq!(status, 200);
        let mut closed = 0;
        for s in conns {
            closed += usize::from(closed_within(s, 15).await);
        }
        assert_eq!(closed, 20);
        for _ in 0..3 {
            assert_eq!(healthz(&addr).await, 200);
        }
        app.stop().await;
    }
}

// ---- the binary, run as a newcomer would, on bad input ----

fn pulseboard(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    pulseboard_env(args, data_dir, &[])
}

/// `pulseboard ARGS` with its data in `data_dir` and no database or config file from the
/// environment of the test run, then `env` on top (`None` removes a variable).
fn pulseboard_env(
    args: &[&str],
    data_dir: &std::path::Path,
    env: &[(&str, Option<&str>)],
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulseboard"));
    cmd.args(args)
        .env("PULSEBOARD_DATA_DIR", data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("PULSEBOARD_CONFIG");
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    cmd.current_dir(data_dir);
    cmd.output().unwrap()
}

fn assert_clean_failure(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "stderr should mention {needle:?}: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "no panic: {stderr}"
    );
}

#[test]
fn unknown_subcommand_or_flag_is_refused() {
    let dir = common::tempdir::Dir::new();
    assert_clean_failure(&pulseboard(&["frobnicate"], &dir.0), "frobnicate");
    assert_clean_failure(&pulseboard(&["serve", "--bogus"], &dir.0), "--bogus");
    assert_clean_failure(
        &pulseboard(&["worker", "--concurrency", "0"], &dir.0),
        "concurrency",
    );
}

#[test]
fn invalid_configuration_names_the_key() {
    let dir = common::tempdir::Dir::new();
    let out = pulseboard_env(
        &["migrate"],
        &dir.0,
        &[("PULSEBOARD_HTTP__PORT", Some("99999"))],
    );
    assert_clean_failure(&out, "http.port");

    let bad = dir.0.join("bad.yaml");
    std::fs::write(&bad, "http: [oops\n").unwrap();
    let out = pulseboard(&["--config", bad.to_str().unwrap(), "migrate"], &dir.0);
    assert_clean_failure(&out, "bad.yaml");

    let out = pulseboard(&["--config", "/nonexistent/pb.yaml", "migrate"], &dir.0);
    assert_clean_failure(&out, "/nonexistent/pb.yaml");
}

#[test]
fn unreachable_database_is_one_clear_line() {
    let dir = common::tempdir::Dir::new();
    let out = pulseboard_env(
        &["migrate"],
        &dir.0,
        &[
            ("PULSEBOARD_DATABASE__CONNECT_TIMEOUT_SECS", Some("2")),
            (
                "DATABASE_URL",
                Some("postgres://nobody:secret@127.0.0.1:1/none"),
            ),
        ],
    );
    assert_clean_failure(&out, "cannot open database");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("secret"),
        "password must not be shown"
    );
}

#[test]
fn read_only_data_dir_is_refused() {
    let dir = common::tempdir::Dir::new();
    // A data dir below a regular file can never be created, even by root.
    let file = dir.0.join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = pulseboard_env(
        &["serve"],
        &dir.0,
        &[(
            "PULSEBOARD_DATA_DIR",
            Some(file.join("data").to_str().unwrap()),
        )],
    );
    assert_clean_failure(&out, "data directory");
}

#[test]
fn port_in_use_is_refused() {
    let dir = common::tempdir::Dir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = pulseboard_env(
        &["serve"],
        &dir.0,
        &[
            ("PULSEBOARD_HTTP__HOST", Some("127.0.0.1")),
            ("PULSEBOARD_HTTP__PORT", Some(port.as_str())),
        ],
    );
    assert_clean_failure(&out, &port);
}

#[test]
fn migrate_and_user_promote_work_from_the_command_line() {
    let dir = common::tempdir::Dir::new();
    let out = pulseboard(&["migrate"], &dir.0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pulseboard(&["user", "promote", "nobody@example.com"], &dir.0);
    assert_clean_failure(&out, "no account with email nobody@example.com");
}

#[test]
fn production_mode_requires_a_jwt_secret() {
    let dir = common::tempdir::Dir::new();
    let out = pulseboard_env(
        &["serve"],
        &dir.0,
        &[
            ("PULSEBOARD_ENV", Some("production")),
            ("PULSEBOARD_JWT_SECRET", None),
        ],
    );
    assert_clean_failure(&out, "PULSEBOARD_JWT_SECRET");
}
