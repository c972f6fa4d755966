//! The HTTP skeleton and the binary's behaviour on bad input.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::Value;
use std::process::Command;

#[tokio::test]
async fn health_and_readiness_at_root_and_under_api_with_trailing_slash() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/api/healthz", "/healthz/", "/api/healthz/"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "service_unavailable");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_a_given_one() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(r.headers().get("x-request-id").is_some());
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
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
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-encoding"], enc);
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/no-such-thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("/no-such-thing"));
    let r = app.client.put(app.url("/tasks")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_has_a_browsable_page() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
        .send()
        .await
        .unwrap()
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
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
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

// ---- the binary, run as a newcomer would, on bad input ----

fn pulseboard(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulseboard"));
    cmd.args(args)
        .env("PULSEBOARD_DATA_DIR", data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("PULSEBOARD_CONFIG");
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulseboard"));
    let out = cmd
        .args(["migrate"])
        .current_dir(&dir.0)
        .env("PULSEBOARD_DATA_DIR", &dir.0)
        .env("PULSEBOARD_HTTP__PORT", "99999")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulseboard"));
    let out = cmd
        .args(["migrate"])
        .current_dir(&dir.0)
        .env("PULSEBOARD_DATA_DIR", &dir.0)
        .env("PULSEBOARD_DATABASE__CONNECT_TIMEOUT_SECS", "2")
        .env("DATABASE_URL", "postgres://nobody:secret@127.0.0.1:1/none")
        .output()
        .unwrap();
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
    let out = Command::new(env!("CARGO_BIN_EXE_pulseboard"))
        .arg("serve")
        .current_dir(&dir.0)
        .env("PULSEBOARD_DATA_DIR", file.join("data"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_clean_failure(&out, "data directory");
}

#[test]
fn port_in_use_is_refused() {
    let dir = common::tempdir::Dir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulseboard"));
    let out = cmd
        .args(["serve"])
        .current_dir(&dir.0)
        .env("PULSEBOARD_DATA_DIR", &dir.0)
        .env("PULSEBOARD_HTTP__HOST", "127.0.0.1")
        .env("PULSEBOARD_HTTP__PORT", &port)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulseboard"));
    let out = cmd
        .args(["serve"])
        .current_dir(&dir.0)
        .env("PULSEBOARD_DATA_DIR", &dir.0)
        .env("PULSEBOARD_ENV", "production")
        .env_remove("PULSEBOARD_JWT_SECRET")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_clean_failure(&out, "PULSEBOARD_JWT_SECRET");
}
