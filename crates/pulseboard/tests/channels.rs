//! Notification channels: every kind delivered to a local fake of its service's API, down/up
//! transitions delivered to every channel, retries then the error in the channel's status, the
//! SSRF guard, email confirmation, authorization, validation, and secrets kept out of reads.

mod common;

use common::smtp::{decoded_header, part, SmtpServer};
use common::{eventually, Options, TestApp};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request a fake service received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    /// Lower-case names.
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A fake HTTP service on 127.0.0.1: records every request and answers 200 `{"ok":true}`, or the
/// statuses queued with [`Fake::answer`], or always `fail_with` once set.
#[derive(Clone, Default)]
struct Fake {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
    fail_with: Arc<Mutex<Option<u16>>>,
}

impl Fake {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake {
            port: listener.local_addr().unwrap().port(),
            ..Default::default()
        };
        let f = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let f = f.clone();
                tokio::spawn(async move {
                    let _ = f.serve(stream).await;
                });
            }
        });
        fake
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Seen> {
        eventually(15, || async {
            let s = self.seen();
            (s.len() >= n).then_some(s)
        })
        .await
    }

    async fn serve(&self, mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.lines();
        let mut first = lines.next().unwrap_or("").split_whitespace();
        let method = first.next().unwrap_or("").to_owned();
        let path = first.next().unwrap_or("/").to_owned();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_end..].to_vec();
        self.seen.lock().unwrap().push(Seen {
            method,
            path,
            headers,
            body,
        });
        let status = match *self.fail_with.lock().unwrap() {
            Some(code) => code,
            None => self.answers.lock().unwrap().pop_front().unwrap_or(200),
        };
        let body = if status == 200 {
            r#"{"ok":true}"#.to_owned()
        } else {
            format!(r#"{{"ok":false,"description":"fake says {status}"}}"#)
        };
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(resp.as_bytes()).await?;
        stream.shutdown().await
    }
}

/// A fake that answers availability checks: 200 while `up`, else 503.
#[derive(Clone)]
struct Site {
    fake: Fake,
    up: Arc<AtomicBool>,
}

impl Site {
    async fn start() -> Self {
        let site = Site {
            fake: Fake::start().await,
            up: Arc::new(AtomicBool::new(true)),
        };
        site.set_up(true);
        site
    }
    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        *self.fake.fail_with.lock().unwrap() = (!up).then_some(503);
    }
}

async fn spawn(allow_private: bool, smtp: Option<&SmtpServer>, telegram: Option<&Fake>) -> TestApp {
    let smtp_url = smtp.map(SmtpServer::url);
    let telegram_url = telegram.map(|t| t.url("/tg"));
    TestApp::spawn_with(
        Options {
            worker: true,
            scheduler: false,
        },
        move |c| {
            c.monitor.allow_private_targets = allow_private;
            c.monitor.timeout_secs = 2;
            if let Some(url) = smtp_url {
                c.mail.smtp_url = url;
            }
            if let Some(url) = telegram_url {
                c.alerts.telegram_api_url = url;
            }
        },
    )
    .await
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create(app: &TestApp, c: &reqwest::Client, body: Value) -> Value {
    let (status, v) = send(c.post(app.url("/channels")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body} → {v}");
    v
}

async fn channel(app: &TestApp, c: &reqwest::Client, id: i64) -> Value {
    let (status, v) = send(c.get(app.url(&format!("/channels/{id}")))).await;
    assert_eq!(status, StatusCode::OK);
    v
}

async fn test_event(app: &TestApp, c: &reqwest::Client, id: i64) {
    let (status, v) = send(c.post(app.url(&format!("/channels/{id}/test")))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
}

/// Waits until the channel's last delivery has `status`; returns the channel.
async fn delivered(app: &TestApp, c: &reqwest::Client, id: i64, status: &str) -> Value {
    eventually(20, || async {
        let ch = channel(app, c, id).await;
        (ch["last_delivery"]["status"] == status).then_some(ch)
    })
    .await
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap()
}

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Mail bodies as the relay got them, soft line breaks and `=3D` of quoted-printable undone.
fn mail_text(data: &str) -> String {
    data.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

#[tokio::test]
async fn every_kind_delivers_a_test_event_in_its_services_shape() {
    let (hook, slack, discord, telegram, ntfy) = (
        Fake::start().await,
        Fake::start().await,
        Fake::start().await,
        Fake::start().await,
        Fake::start().await,
    );
    let smtp = SmtpServer::start().await;
    let app = spawn(true, Some(&smtp), Some(&telegram)).await;
    let c = &app.client;
    app.register(c, "kinds@example.com").await;

    let webhook = create(
        &app,
        c,
        json!({"kind": "webhook", "name": "Hook", "config": {"url": hook.url("/in"), "secret": "s3cret-key"}}),
    )
    .await;
    let slack_ch = create(
        &app,
        c,
        json!({"kind": "slack", "name": "Slack", "config": {"url": slack.url("/services/T/B/x")}}),
    )
    .await;
    let discord_ch = create(
        &app,
        c,
        json!({"kind": "discord", "name": "Discord", "config": {"url": discord.url("/api/webhooks/1/t")}}),
    )
    .await;
    let telegram_ch = create(
        &app,
        c,
        json!({"kind": "telegram", "name": "TG", "config": {"bot_token": "123456:AAbb-cc_DD", "chat_id": -1001234}}),
    )
    .await;
    let ntfy_ch = create(
        &app,
        c,
        json!({"kind": "ntfy", "name": "ntfy", "config": {"server": ntfy.url("/"), "topic": "pb-alerts", "token": "tk_secret"}}),
    )
    .await;
    let email_ch = create(
        &app,
        c,
        json!({"kind": "email", "name": "Me", "config": {"address": "Kinds@Example.com"}}),
    )
    .await;
    assert_eq!(email_ch["confirmed"], true, "the account's own address");
    for ch in [
        &webhook,
        &slack_ch,
        &discord_ch,
        &telegram_ch,
        &ntfy_ch,
        &email_ch,
    ] {
        assert_eq!(ch["last_delivery"], Value::Null);
        test_event(&app, c, id(ch)).await;
    }

    // Webhook: the event as JSON, signed with the secret over the raw body.
    let seen = hook.wait_for(1).await;
    let r = &seen[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/in"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["event"], "test");
    assert!(r.json()["at"].as_str().unwrap().ends_with('Z'));
    let sig = r.header("x-pulseboard-signature").expect("signed");
    assert_eq!(sig, format!("sha256={}", hmac_hex(b"s3cret-key", &r.body)));
    assert_ne!(sig, format!("sha256={}", hmac_hex(b"other", &r.body)));

    let r = &slack.wait_for(1).await[0];
    assert_eq!(r.path, "/services/T/B/x");
    assert!(r.json()["text"]
        .as_str()
        .unwrap()
        .contains("\"Slack\" works"));

    let r = &discord.wait_for(1).await[0];
    assert!(r.json()["content"]
        .as_str()
        .unwrap()
        .contains("Test notification"));

    // Telegram: the Bot API path with the token, the chat id.
    let r = &telegram.wait_for(1).await[0];
    assert_eq!(r.path, "/tg/bot123456:AAbb-cc_DD/sendMessage");
    assert_eq!(r.json()["chat_id"], "-1001234");
    assert!(r.json()["text"].as_str().unwrap().contains("TG"));

    // ntfy: the topic path, Title/Priority/Tags headers, the bearer token, a text body.
    let r = &ntfy.wait_for(1).await[0];
    assert_eq!(r.path, "/pb-alerts");
    assert_eq!(r.header("authorization"), Some("Bearer tk_secret"));
    assert_eq!(r.header("title"), Some("Pulseboard test notification"));
    assert_eq!(r.header("priority"), Some("2"));
    assert_eq!(r.header("tags"), Some("bell"));
    assert!(String::from_utf8_lossy(&r.body).contains("ntfy"));

    // Email: to the address, through the relay.
    let mail = eventually(15, || async {
        smtp.received()
            .into_iter()
            .find(|m| m.data.contains("Subject: Pulseboard test notification"))
    })
    .await;
    assert_eq!(mail.to, vec!["kinds@example.com".to_owned()]);

    // Each channel shows its delivery as ok.
    for ch in [
        &webhook,
        &slack_ch,
        &discord_ch,
        &telegram_ch,
        &ntfy_ch,
        &email_ch,
    ] {
        let v = delivered(&app, c, id(ch), "ok").await;
        assert_eq!(v["last_delivery"]["error"], Value::Null);
    }

    // Secrets are never read back: not by GET, the list, or the export.
    let (_, list) = send(c.get(app.url("/channels"))).await;
    assert_eq!(list.as_array().unwrap().len(), 6);
    let (_, export) = send(c.get(app.url("/user/export"))).await;
    assert_eq!(export["channels"].as_array().unwrap().len(), 6);
    for text in [list.to_string(), export.to_string()] {
        for secret in ["s3cret-key", "AAbb-cc_DD", "tk_secret"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
    let hook_view = channel(&app, c, id(&webhook)).await;
    assert_eq!(
        hook_view["config"],
        json!({"url": hook.url("/in"), "secret": "set"})
    );
    assert_eq!(
        channel(&app, c, id(&telegram_ch)).await["config"]["bot_token"],
        "set"
    );

    // A PATCH that leaves the secret out keeps it; the next delivery is still signed with it.
    let (status, patched) = send(
        c.patch(app.url(&format!("/channels/{}", id(&webhook))))
            .json(&json!({"name": "Hook 2", "config": {"url": hook.url("/in2")}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["config"]["secret"], "set");
    test_event(&app, c, id(&webhook)).await;
    let r = &hook.wait_for(2).await[1];
    assert_eq!(r.path, "/in2");
    assert_eq!(
        r.header("x-pulseboard-signature").unwrap(),
        format!("sha256={}", hmac_hex(b"s3cret-key", &r.body))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_down_and_up_transition_is_delivered_to_every_channel() {
    let site = Site::start().await;
    let (hook, slack, ntfy) = (
        Fake::start().await,
        Fake::start().await,
        Fake::start().await,
    );
    let app = spawn(true, None, None).await;
    let c = &app.client;
    app.register(c, "flip@example.com").await;
    create(
        &app,
        c,
        json!({"kind": "webhook", "name": "h", "config": {"url": hook.url("/h")}}),
    )
    .await;
    create(
        &app,
        c,
        json!({"kind": "slack", "name": "s", "config": {"url": slack.url("/s")}}),
    )
    .await;
    create(
        &app,
        c,
        json!({"kind": "ntfy", "name": "n", "config": {"server": ntfy.url(""), "topic": "t"}}),
    )
    .await;
    // A disabled channel gets nothing.
    let off = Fake::start().await;
    create(
        &app,
        c,
        json!({"kind": "discord", "name": "off", "enabled": false, "config": {"url": off.url("/d")}}),
    )
    .await;

    let (status, res) = send(
        c.post(app.url("/resources"))
            .json(&json!({"url": site.fake.url("/")})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let uuid = res["uuid"].as_str().unwrap().to_owned();
    let check = || async {
        let (status, v) = send(c.post(app.url(&format!("/resources/{uuid}/check")))).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    };
    // The first check sets the state (no transition); then down, then up.
    assert_eq!(check().await["is_available"], true);
    site.set_up(false);
    assert_eq!(check().await["is_available"], false);
    site.set_up(true);
    assert_eq!(check().await["is_available"], true);

    let events = hook.wait_for(2).await;
    let kinds: Vec<Value> = events.iter().map(|s| s.json()["event"].clone()).collect();
    assert!(
        kinds.contains(&json!("down")) && kinds.contains(&json!("up")),
        "{kinds:?}"
    );
    let down = events
        .iter()
        .map(Seen::json)
        .find(|e| e["event"] == "down")
        .unwrap();
    assert_eq!(
        down["resource"],
        json!({"uuid": uuid, "url": site.fake.url("/")})
    );
    assert_eq!(down["check"]["status_code"], 503);
    assert!(down.get("at").is_some());
    assert_eq!(
        hook.seen()
            .iter()
            .filter(|s| s.header("x-pulseboard-signature").is_some())
            .count(),
        0,
        "no secret, no signature"
    );

    let texts: Vec<String> = slack
        .wait_for(2)
        .await
        .iter()
        .map(|s| s.json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("unavailable (status 503)")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("available again")),
        "{texts:?}"
    );
    let ntfy_seen = ntfy.wait_for(2).await;
    let priorities: Vec<&str> = ntfy_seen
        .iter()
        .filter_map(|s| s.header("priority"))
        .collect();
    assert!(
        priorities.contains(&"5") && priorities.contains(&"3"),
        "{priorities:?}"
    );
    assert!(ntfy_seen.iter().all(|s| s.path == "/t"));
    assert!(ntfy_seen
        .iter()
        .all(|s| s.header("authorization").is_none()));

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(off.seen().is_empty(), "a disabled channel is skipped");
    assert_eq!(hook.seen().len(), 2, "one delivery per transition");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_service_is_retried_then_the_error_shows_and_a_4xx_is_not_retried() {
    let failing = Fake::start().await;
    *failing.fail_with.lock().unwrap() = Some(500);
    let refusing = Fake::start().await;
    *refusing.fail_with.lock().unwrap() = Some(404);
    let flaky = Fake::start().await;
    flaky.answers.lock().unwrap().extend([429, 503]);
    let app = spawn(true, None, None).await;
    let c = &app.client;
    app.register(c, "fail@example.com").await;
    let max_attempts = app.app.config.jobs.max_attempts as usize;

    let down = create(
        &app,
        c,
        json!({"kind": "slack", "name": "down", "config": {"url": failing.url("/x")}}),
    )
    .await;
    test_event(&app, c, id(&down)).await;
    let v = delivered(&app, c, id(&down), "failed").await;
    assert!(
        v["last_delivery"]["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{v}"
    );
    assert_eq!(
        failing.seen().len(),
        max_attempts,
        "retried up to jobs.max_attempts"
    );

    let gone = create(
        &app,
        c,
        json!({"kind": "discord", "name": "gone", "config": {"url": refusing.url("/x")}}),
    )
    .await;
    test_event(&app, c, id(&gone)).await;
    let v = delivered(&app, c, id(&gone), "failed").await;
    assert!(
        v["last_delivery"]["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 404"),
        "{v}"
    );
    assert!(
        v["last_delivery"]["error"]
            .as_str()
            .unwrap()
            .contains("fake says 404"),
        "{v}"
    );
    assert_eq!(refusing.seen().len(), 1, "a 404 is not worth retrying");

    // 429 then 503, then it works: the status ends ok.
    let later = create(
        &app,
        c,
        json!({"kind": "slack", "name": "later", "config": {"url": flaky.url("/x")}}),
    )
    .await;
    test_event(&app, c, id(&later)).await;
    delivered(&app, c, id(&later), "ok").await;
    assert_eq!(flaky.seen().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let fake = Fake::start().await;
    let app = spawn(false, None, None).await;
    let c = &app.client;
    app.register(c, "guard@example.com").await;
    // A literal private address: refused at once, naming the field.
    let (status, v) = send(
        c.post(app.url("/channels"))
            .json(&json!({"kind": "webhook", "name": "x", "config": {"url": fake.url("/in")}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["details"]["config.url"].is_string(), "{v}");
    let (status, v) = send(c.post(app.url("/channels")).json(
        &json!({"kind": "ntfy", "name": "x", "config": {"server": "http://169.254.169.254/", "topic": "t"}}),
    ))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["details"]["config.server"].is_string(), "{v}");
    // A name that resolves to one: refused when delivering, never connected to.
    let named = create(
        &app,
        c,
        json!({"kind": "webhook", "name": "local", "config": {"url": format!("http://localhost:{}/in", fake.port)}}),
    )
    .await;
    test_event(&app, c, id(&named)).await;
    let v = delivered(&app, c, id(&named), "failed").await;
    assert!(
        v["last_delivery"]["error"]
            .as_str()
            .unwrap()
            .contains("SSRF"),
        "{v}"
    );
    assert!(fake.seen().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_email_channel_to_another_address_waits_for_its_confirmation() {
    let smtp = SmtpServer::start().await;
    let app = spawn(true, Some(&smtp), None).await;
    let c = &app.client;
    app.register(c, "owner@example.com").await;
    let ch = create(
        &app,
        c,
        json!({"kind": "email", "name": "Team", "config": {"address": "team@example.org"}}),
    )
    .await;
    assert_eq!(ch["confirmed"], false);
    // Nothing is sent to it before it confirms: a test is refused.
    let (status, _) = send(c.post(app.url(&format!("/channels/{}/test", id(&ch))))).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let link = pulseboard_watch::alerts::confirm_link(
        &app.app.config.http.public_url,
        &app.app.signing_key,
        id(&ch),
        "team@example.org",
    );
    let path = &link[link.find("/channels/").unwrap()..];
    let mail = eventually(15, || async {
        smtp.received()
            .into_iter()
            .find(|m| m.to == vec!["team@example.org".to_owned()])
    })
    .await;
    assert!(
        mail_text(&mail.data).contains(path),
        "the mail carries the link"
    );

    let guest = app.new_client();
    // A forged or another channel's token confirms nothing.
    let forged = app.url(&format!(
        "/channels/{}/confirm?t={}",
        id(&ch),
        "00".repeat(32)
    ));
    assert_eq!(
        guest.post(&forged).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    // GET only shows a button (mail scanners follow links).
    let page = guest.get(app.url(path)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    assert_eq!(channel(&app, c, id(&ch)).await["confirmed"], false);
    let done = guest.post(app.url(path)).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(channel(&app, c, id(&ch)).await["confirmed"], true);

    test_event(&app, c, id(&ch)).await;
    delivered(&app, c, id(&ch), "ok").await;
    assert!(smtp
        .received()
        .iter()
        .any(|m| m.to == vec!["team@example.org".to_owned()]
            && m.data.contains("Subject: Pulseboard test notification")));

    // A new address is unconfirmed again; the old link no longer works for it.
    let (status, v) = send(
        c.patch(app.url(&format!("/channels/{}", id(&ch))))
            .json(&json!({"config": {"address": "ops@example.org"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["confirmed"], false);
    assert_eq!(
        guest.post(app.url(path)).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

/// The first mail to `to` whose decoded subject starts with `subject`: (subject, text, HTML).
async fn mail_to(smtp: &SmtpServer, to: &str, subject: &str) -> (String, String, String) {
    eventually(15, || async {
        smtp.received().into_iter().find_map(|m| {
            let s = decoded_header(&m.data, "Subject")?;
            (m.to == [to] && s.starts_with(subject))
                .then(|| (s, part(&m.data, "text/plain"), part(&m.data, "text/html")))
        })
    })
    .await
}

#[tokio::test]
async fn an_email_channel_writes_in_its_owners_language_and_escapes_in_html() {
    let site = Site::start().await;
    let smtp = SmtpServer::start().await;
    let app = spawn(true, Some(&smtp), None).await;
    let c = &app.client;
    app.register(c, "ru-owner@example.com").await;
    let (status, v) = send(
        c.patch(app.url("/user"))
            .json(&json!({"locale": "ru", "time_zone": "Europe/Moscow"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let own = create(
        &app,
        c,
        json!({"kind": "email", "name": "<b>x</b>", "config": {"address": "ru-owner@example.com"}}),
    )
    .await;
    assert_eq!(own["confirmed"], true);

    // A test: Russian subject and body, the owner's clock, the name escaped in HTML only.
    test_event(&app, c, id(&own)).await;
    let (subject, text, html) = mail_to(&smtp, "ru-owner@example.com", "Тестовое").await;
    assert_eq!(subject, "Тестовое уведомление Pulseboard");
    assert!(text.contains("канал «<b>x</b>» работает"), "{text}");
    assert!(text.contains("(Europe/Moscow)"), "{text}");
    assert!(!text.contains("Test notification"), "{text}");
    assert!(
        html.contains("lang=\"ru\"") && html.contains("«&lt;b&gt;x&lt;"),
        "{html}"
    );
    assert!(!html.contains("<b>x</b>"), "{html}");

    // A down transition: the account's alert mail's content, naming the channel.
    let url = site.fake.url("/ru");
    let (status, res) = send(c.post(app.url("/resources")).json(&json!({ "url": url }))).await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    let uuid = res["uuid"].as_str().unwrap().to_owned();
    let check = || async {
        let (status, v) = send(c.post(app.url(&format!("/resources/{uuid}/check")))).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    };
    assert_eq!(check().await["is_available"], true);
    site.set_up(false);
    assert_eq!(check().await["is_available"], false);
    let (subject, text, html) = mail_to(&smtp, "ru-owner@example.com", "Недоступен").await;
    assert_eq!(subject, format!("Недоступен: {url}"));
    assert!(
        text.starts_with(&format!("{url} недоступен (статус 503), проверка в ")),
        "{text}"
    );
    assert!(text.contains("(Europe/Moscow)"), "{text}");
    assert!(text.contains(&format!("/#/resources/{uuid}")), "{text}");
    assert!(
        text.contains("через канал уведомлений Pulseboard «<b>x</b>»"),
        "{text}"
    );
    assert!(
        html.contains("Все проверки") && !html.contains("<b>x</b>"),
        "{html}"
    );

    // The confirmation of another address: in the owner's language, the link in both parts.
    let team = create(
        &app,
        c,
        json!({"kind": "email", "name": "<b>x</b> team", "config": {"address": "team-ru@example.org"}}),
    )
    .await;
    let link = pulseboard_watch::alerts::confirm_link(
        &app.app.config.http.public_url,
        &app.app.signing_key,
        id(&team),
        "team-ru@example.org",
    );
    let (subject, text, html) = mail_to(&smtp, "team-ru@example.org", "Подтвердите").await;
    assert_eq!(subject, "Подтвердите уведомления от Pulseboard");
    assert!(text.lines().any(|l| l.trim_end() == link), "{text}");
    assert!(text.contains("(канал «<b>x</b> team»)"), "{text}");
    let token = &link[link.find("?t=").unwrap()..];
    assert!(html.contains(&format!("{token}\">")), "{html}");
    assert!(
        html.contains("«&lt;b&gt;x&lt;") && !html.contains("<b>x</b>"),
        "{html}"
    );
    app.stop().await;
}

#[tokio::test]
async fn channels_are_private_to_their_owner_and_bad_input_names_the_field() {
    let app = TestApp::spawn().await;
    let (owner, other) = (&app.client, app.new_client());
    app.register(owner, "mine@example.com").await;
    app.register(&other, "theirs@example.com").await;
    let ch = create(
        &app,
        owner,
        json!({"kind": "slack", "name": "s", "config": {"url": "https://hooks.slack.example/x"}}),
    )
    .await;
    let path = format!("/channels/{}", id(&ch));
    assert_eq!(
        send(other.get(app.url(&path))).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(
            other
                .patch(app.url(&path))
                .json(&json!({"name": "mine now"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(other.delete(app.url(&path))).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(other.post(app.url(&format!("{path}/test")))).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, theirs) = send(other.get(app.url("/channels"))).await;
    assert_eq!(theirs, json!([]));
    assert_eq!(
        channel(&app, owner, id(&ch)).await["name"],
        "s",
        "unchanged"
    );
    assert_eq!(
        send(owner.get(app.url("/channels/abc"))).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(app.new_client().get(app.url("/channels"))).await.0,
        StatusCode::UNAUTHORIZED
    );

    for (body, field) in [
        (json!({"kind": "sms", "name": "x", "config": {}}), "kind"),
        (
            json!({"kind": "slack", "name": " ", "config": {"url": "https://h.example/"}}),
            "name",
        ),
        (
            json!({"kind": "slack", "name": "x", "config": {"url": "ftp://h.example/"}}),
            "config.url",
        ),
        (
            json!({"kind": "webhook", "name": "x", "config": {}}),
            "config.url",
        ),
        (
            json!({"kind": "webhook", "name": "x", "config": {"url": "https://h.example/", "extra": 1}}),
            "config",
        ),
        (
            json!({"kind": "telegram", "name": "x", "config": {"bot_token": "1:a", "chat_id": "not a chat"}}),
            "config.chat_id",
        ),
        (
            json!({"kind": "telegram", "name": "x", "config": {"bot_token": "token", "chat_id": "1"}}),
            "config.bot_token",
        ),
        (
            json!({"kind": "ntfy", "name": "x", "config": {"server": "https://ntfy.example", "topic": "a b"}}),
            "config.topic",
        ),
        (
            json!({"kind": "email", "name": "x", "config": {"address": "nope"}}),
            "config.address",
        ),
        (
            json!({"kind": "email", "name": "x", "config": "x"}),
            "config",
        ),
    ] {
        let (status, v) = send(owner.post(app.url("/channels")).json(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(v["details"][field].is_string(), "{body}: {v}");
    }
    // PATCH: the same rules; a new kind needs its config.
    let (status, v) = send(
        owner
            .patch(app.url(&path))
            .json(&json!({"kind": "telegram"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["details"]["config"].is_string(), "{v}");
    let (status, v) = send(
        owner
            .patch(app.url(&path))
            .json(&json!({"config": {"url": "nope"}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["details"]["config.url"].is_string(), "{v}");
    let (status, v) = send(owner.patch(app.url(&path)).json(&json!({"enabled": false}))).await;
    assert_eq!((status, &v["enabled"]), (StatusCode::OK, &json!(false)));

    // An API token needs resources:read to read channels and resources:write to change them.
    let (status, token) = send(
        owner
            .post(app.url("/tokens"))
            .json(&json!({"name": "reader", "scopes": ["resources:read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let script = reqwest::Client::new();
    let as_token = |req: reqwest::RequestBuilder| req.header("authorization", bearer.clone());
    assert_eq!(
        send(as_token(script.get(app.url("/channels")))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(as_token(script.get(app.url(&path)))).await.0,
        StatusCode::OK
    );
    for req in [
        script
            .post(app.url("/channels"))
            .json(&json!({"kind": "slack", "name": "t", "config": {"url": "https://h.example/"}})),
        script.patch(app.url(&path)).json(&json!({"name": "t"})),
        script.delete(app.url(&path)),
        script.post(app.url(&format!("{path}/test"))),
    ] {
        assert_eq!(send(as_token(req)).await.0, StatusCode::FORBIDDEN);
    }

    assert_eq!(
        send(owner.delete(app.url(&path))).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(owner.get(app.url(&path))).await.0,
        StatusCode::NOT_FOUND
    );

    // Every operation is documented.
    let (_, doc) = send(owner.get(app.url("/openapi.json"))).await;
    for (p, method) in [
        ("/channels", "get"),
        ("/channels", "post"),
        ("/channels/{id}", "get"),
        ("/channels/{id}", "patch"),
        ("/channels/{id}", "delete"),
        ("/channels/{id}/test", "post"),
        ("/channels/{id}/confirm", "post"),
    ] {
        assert!(doc["paths"][p][method].is_object(), "{method} {p}");
    }
    app.stop().await;
}
