//! Logs: size-rotated files, `GET /logs`, the live WebSocket stream, the PDF export, admin-only
//! access, and no secrets in log lines.

mod common;

use common::{eventually, Fetch, TestApp};
use futures_util::StreamExt;
use pulseboard_logs::{LogLine, RotatingFile};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The binary's telemetry installs the hub; tests start apps without it, so install it here once.
fn init_hub() {
    use tracing_subscriber::prelude::*;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::registry()
            .with(pulseboard_logs::global().layer())
            .with(tracing_subscriber::EnvFilter::new(
                "info,sqlx=warn,tower_http=warn",
            ))
            .try_init();
    });
}

async fn spawn() -> TestApp {
    init_hub();
    TestApp::spawn().await
}

/// Registers `email`, makes it an admin and logs in again; returns the client and its access token.
async fn admin(app: &TestApp, email: &str) -> (reqwest::Client, String) {
    let client = app.new_client();
    app.register(&client, email).await;
    app.promote(email).await;
    // The role is carried by the access token: log in again to get an admin one.
    let r = app.login(&client, email).await;
    let body: Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    (client, token)
}

fn messages(body: &Value) -> Vec<String> {
    body["logs"]
        .as_array()
        .expect("logs array")
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn rotation_at_the_configured_size_keeps_exactly_the_configured_number_of_files() {
    let dir = common::tempdir::Dir::new();
    let path = dir.0.join("logs").join("pulseboard.log");
    let (max_bytes, backups) = (1024u64, 3usize);
    let mut file = RotatingFile::open(&path, max_bytes, backups).unwrap();
    let line = format!("{}\n", "x".repeat(99));
    for _ in 0..200 {
        file.write_all(line.as_bytes()).unwrap();
    }
    file.flush().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.0.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "pulseboard.log",
            "pulseboard.log.1",
            "pulseboard.log.2",
            "pulseboard.log.3"
        ]
    );
    for name in &names {
        let len = std::fs::metadata(dir.0.join("logs").join(name))
            .unwrap()
            .len();
        assert!(len <= max_bytes, "{name} has {len} bytes");
        if name != "pulseboard.log" {
            // Rotated files are full: 10 lines of 100 bytes fit under 1024.
            assert_eq!(len, 1000, "{name}");
        }
    }
    // Reopening continues the current file and keeps rotating with the same count.
    drop(file);
    let mut file = RotatingFile::open(&path, max_bytes, backups).unwrap();
    for _ in 0..50 {
        file.write_all(line.as_bytes()).unwrap();
    }
    assert!(!dir.0.join("logs").join("pulseboard.log.4").exists());

    // No backups: the file starts again.
    let single = dir.0.join("single.log");
    let mut file = RotatingFile::open(&single, max_bytes, 0).unwrap();
    for _ in 0..50 {
        file.write_all(line.as_bytes()).unwrap();
    }
    assert!(std::fs::metadata(&single).unwrap().len() <= max_bytes);
    assert!(!dir.0.join("single.log.1").exists());
}

#[tokio::test]
async fn logs_are_for_admins_only() {
    let app = spawn().await;
    let guest = app.new_client();
    for path in ["/logs", "/logs/stream", "/logs.pdf", "/api/logs"] {
        let r = guest.get(app.url(path)).fetch().await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "guest {path}");
    }
    app.register(&app.client, "plain@example.com").await;
    for path in ["/logs", "/logs/stream", "/logs.pdf"] {
        let r = app.client.get(app.url(path)).fetch().await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "user {path}");
    }
    // The WebSocket handshake is refused too.
    let mut req = app
        .url("/logs/stream")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", "pb_access=not-a-token".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    app.stop().await;
}

#[tokio::test]
async fn get_logs_returns_the_last_lines_in_order() {
    let app = spawn().await;
    let (admin, _) = admin(&app, "boss@example.com").await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    for i in 1..=5 {
        tracing::info!(n = i, "order-{marker} line {i}");
    }
    tracing::error!("order-{marker} failure");

    let body: Value = admin.get(app.url("/logs?lines=1000")).fetch_json().await;
    let mine: Vec<String> = messages(&body)
        .into_iter()
        .filter(|m| m.contains(&marker))
        .collect();
    assert_eq!(
        mine,
        (1..=5)
            .map(|i| format!("order-{marker} line {i} n={i}"))
            .chain([format!("order-{marker} failure")])
            .collect::<Vec<_>>()
    );
    let line = &body["logs"].as_array().unwrap()[0];
    for key in ["timestamp", "level", "target", "message"] {
        assert!(line[key].is_string(), "{key} in {line}");
    }

    // N bounds the count; the last line is the newest.
    let two: Value = admin.get(app.url("/logs?lines=2")).fetch_json().await;
    let two = two["logs"].as_array().unwrap();
    assert_eq!(two.len(), 2);
    assert!(two[0]["timestamp"].as_str() <= two[1]["timestamp"].as_str());
    // Without ?lines=, the configured default.
    let default: Value = admin.get(app.url("/logs")).fetch_json().await;
    assert!(default["logs"].as_array().unwrap().len() <= app.app.config.logging.default_lines);

    // ?level=error keeps errors only, and ours is there.
    let errors: Value = admin
        .get(app.url("/logs?lines=1000&level=error"))
        .fetch_json()
        .await;
    assert!(errors["logs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["level"] == "ERROR"));
    assert!(messages(&errors)
        .iter()
        .any(|m| m == &format!("order-{marker} failure")));

    for bad in ["lines=abc", "lines=0", "lines=-1", "level=loud"] {
        let r = admin.get(app.url(&format!("/logs?{bad}"))).fetch().await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_websocket_client_receives_lines_logged_after_it_connected() {
    let app = spawn().await;
    let (_, token) = admin(&app, "watcher@example.com").await;
    let before = uuid::Uuid::new_v4().simple().to_string();
    tracing::info!("ws-before-{before}");

    let mut req = app
        .url("/logs/stream?lines=1000")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", format!("pb_access={token}").parse().unwrap());
    // A page of another site may not open the stream with the admin's cookie.
    let mut foreign = req.clone();
    foreign
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(foreign).await.is_err());
    let mut same = req.clone();
    same.headers_mut()
        .insert("origin", app.base.parse().unwrap());
    let (same, _) = tokio_tungstenite::connect_async(same)
        .await
        .expect("same-origin upgrade");
    drop(same);
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");

    // First message: the last lines, which hold the one logged before connecting.
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Text(text) = first else {
        panic!("text expected, got {first:?}")
    };
    let recent: Value = serde_json::from_str(&text).unwrap();
    assert!(messages(&recent)
        .iter()
        .any(|m| m == &format!("ws-before-{before}")));

    let after = uuid::Uuid::new_v4().simple().to_string();
    tracing::warn!(detail = "Привет", "ws-after-{after}");
    let got: Value = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["message"].as_str().is_some_and(|m| m.contains(&after)) {
                        return v;
                    }
                }
                _ => continue,
            }
        }
    })
    .await
    .expect("the new line arrives");
    assert_eq!(got["level"], "WARN");
    assert_eq!(
        got["message"],
        format!("ws-after-{after} detail=\"Привет\"")
    );
    // An open viewer does not hold up shutdown.
    tokio::time::timeout(Duration::from_secs(15), app.stop())
        .await
        .expect("stops with a viewer connected");
    drop(ws);
}

#[tokio::test]
async fn the_pdf_parses_and_holds_the_lines() {
    let app = spawn().await;
    let (admin, _) = admin(&app, "printer@example.com").await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    tracing::info!("pdf-{marker}-first");
    tracing::error!("pdf-{marker}-Привет-мир");
    let long = "абв".repeat(80);
    tracing::warn!("pdf-{marker}-long {long}");

    let r = admin
        .get(app.url("/logs.pdf?lines=1000"))
        .expect_status(StatusCode::OK)
        .await;
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let text = pdf_extract::extract_text_from_mem(&bytes).expect("the PDF parses");
    // Extractors may break lines and spacing differently: compare without whitespace.
    let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(flat.contains("Pulseboardlogs"), "title in {text}");
    assert!(flat.contains(&format!("pdf-{marker}-first")), "{text}");
    assert!(
        flat.contains(&format!("ERRORlogs:pdf-{marker}-Привет-мир")),
        "{text}"
    );
    assert!(
        flat.contains(&format!("pdf-{marker}-long{long}")),
        "wrapped line in {text}"
    );
    assert!(flat.contains("UTC"), "time range in {text}");

    // The level filter applies to the PDF too.
    let r = admin
        .get(app.url("/logs.pdf?level=error&lines=1000"))
        .fetch()
        .await;
    let text = pdf_extract::extract_text_from_mem(&r.bytes().await.unwrap()).unwrap();
    let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(flat.contains(&format!("pdf-{marker}-Привет-мир")));
    assert!(!flat.contains(&format!("pdf-{marker}-first")));
    assert_eq!(
        admin.get(app.url("/logs.pdf?lines=x")).fetch_status().await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    app.stop().await;
}

#[tokio::test]
async fn a_registration_never_writes_the_password_into_any_log() {
    let app = spawn().await;
    let password = format!("Zebra-{}-Пароль", uuid::Uuid::new_v4().simple());
    let client = app.new_client();
    // JSON and form registrations, a failed and a successful login, a duplicate registration.
    client
        .post(app.url("/user"))
        .json(&json!({"email": "secret@example.com", "password": password}))
        .expect_status(StatusCode::OK)
        .await;
    app.new_client()
        .post(app.url("/user"))
        .form(&[
            ("email", "form@example.com"),
            ("password", password.as_str()),
        ])
        .expect_status(StatusCode::OK)
        .await;
    app.new_client()
        .post(app.url("/user"))
        .json(&json!({"email": "secret@example.com", "password": password}))
        .expect_status(StatusCode::CONFLICT)
        .await;
    app.new_client()
        .post(app.url("/session"))
        .json(&json!({"email": "secret@example.com", "password": format!("{password}x")}))
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;
    let r = app
        .new_client()
        .post(app.url("/session"))
        .json(&json!({"email": "secret@example.com", "password": password}))
        .expect_status(StatusCode::OK)
        .await;
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The registrations were logged (so the hub did see them) …
    let lines: Vec<LogLine> = eventually(5, || async {
        let lines = pulseboard_logs::global().recent(usize::MAX, None);
        lines
            .iter()
            .any(|l| l.message.contains("user registered"))
            .then_some(lines)
    })
    .await;
    // … and nothing carries the password (nor a part of it) or the token.
    let secret_part = password.split('-').nth(1).unwrap();
    for l in &lines {
        let text = format!("{} {}", l.target, l.message);
        assert!(!text.contains(secret_part), "password in {text}");
        assert!(!text.contains(&token), "access token in {text}");
    }
    app.stop().await;
}
