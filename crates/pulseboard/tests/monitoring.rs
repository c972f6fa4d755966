//! Watch: availability monitoring — the checker's outcomes against servers started here, the SSRF
//! guard, the check endpoint and history, the failure policy (counter, status-change events,
//! deletion at max retries, alert emails) and rounds shared by several workers.

mod common;

use common::smtp::{decoded_header, part, SmtpServer};
use common::Fetch;
use common::{eventually, test_config, Options, TestApp};
use pulseboard_config::Monitor;
use pulseboard_jobs::handlers::{monitor_sweep, monitor_sweep_due, roll_up_checks, CheckBatch};
use pulseboard_watch::checker::{Checker, ErrorKind};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A small HTTP/1.1 server on 127.0.0.1 with fixed routes; counts requests per path.
#[derive(Clone)]
struct Target {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    up: Arc<AtomicBool>,
}

impl Target {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let t = Target {
            port: listener.local_addr().unwrap().port(),
            hits: Default::default(),
            up: Arc::new(AtomicBool::new(true)),
        };
        common::serve_each(listener, t.clone(), |s, stream| async move {
            s.serve(stream).await
        });
        t
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }

    async fn serve(&self, mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let Some(buf) = common::read_head(&mut stream).await? else {
            return Ok(());
        };
        let head = String::from_utf8_lossy(&buf);
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let path = target.split('?').next().unwrap_or("/").to_owned();
        *self.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        let ua = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("user-agent: ")
                    .or(l.strip_prefix("User-Agent: "))
            })
            .unwrap_or("")
            .to_owned();
        let (status, location): (&str, Option<String>) = match path.as_str() {
            "/ok" => ("200 OK", None),
            "/ua" if ua.starts_with("Pulseboard/") => ("200 OK", None),
            "/ua" => ("400 Bad Request", None),
            "/moved" => ("301 Moved Permanently", Some("/ok".into())),
            "/missing" => ("404 Not Found", None),
            "/error" => ("500 Internal Server Error", None),
            "/loop" => ("302 Found", Some("/loop".into())),
            "/flip" if self.up.load(Ordering::SeqCst) => ("200 OK", None),
            "/flip" => ("503 Service Unavailable", None),
            "/big" => ("200 OK", None),
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Ok(());
            }
            p if p.starts_with("/to/") => {
                ("302 Found", Some(format!("http://{}", &p["/to/".len()..])))
            }
            _ => ("404 Not Found", None),
        };
        let body: Vec<u8> = if path == "/big" {
            vec![b'x'; 4 * 1024 * 1024]
        } else {
            b"hello".to_vec()
        };
        let mut resp = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(l) = location {
            resp.push_str(&format!("Location: {l}\r\n"));
        }
        resp.push_str("\r\n");
        stream.write_all(resp.as_bytes()).await?;
        let _ = stream.write_all(&body).await;
        stream.shutdown().await
    }
}

/// The monitor settings of the tests: defaults with a 1 s timeout.
fn monitor(allow_private: bool, allowed_hosts: &[&str]) -> Monitor {
    let tmp = std::env::temp_dir();
    let mut m = test_config(&tmp).monitor;
    m.timeout_secs = 1;
    m.allow_private_targets = allow_private;
    m.allowed_hosts = allowed_hosts.iter().map(|h| h.to_string()).collect();
    m
}

#[tokio::test]
async fn the_checker_reports_status_codes_redirects_and_error_kinds() {
    let t = Target::start().await;
    let checker = Checker::new(&monitor(true, &[]));

    let r = checker.check(&t.url("/ok")).await;
    assert_eq!(r.status_code, Some(200));
    assert!(r.is_available && r.error_kind.is_none());
    assert_eq!(r.final_url.as_deref(), Some(t.url("/ok").as_str()));
    assert!(r.checked_at > 0 && r.response_time_ms >= 0);

    // A proper User-Agent is sent.
    assert_eq!(checker.check(&t.url("/ua")).await.status_code, Some(200));

    let r = checker.check(&t.url("/moved")).await;
    assert_eq!(r.status_code, Some(200), "301 is followed");
    assert!(r.is_available);
    assert_eq!(r.final_url.as_deref(), Some(t.url("/ok").as_str()));

    let r = checker.check(&t.url("/missing")).await;
    assert_eq!((r.status_code, r.is_available), (Some(404), false));
    assert!(r.error_kind.is_none());

    let r = checker.check(&t.url("/error")).await;
    assert_eq!((r.status_code, r.is_available), (Some(500), false));

    let r = checker.check(&t.url("/loop")).await;
    assert_eq!(r.error_kind, Some(ErrorKind::TooManyRedirects));
    assert_eq!((r.status_code, r.is_available), (None, false));
    // max_redirects (5) hops were followed, then the check stopped.
    assert_eq!(t.hits("/loop"), 6);

    let started = std::time::Instant::now();
    let r = checker.check(&t.url("/slow")).await;
    assert_eq!(r.error_kind, Some(ErrorKind::Timeout));
    assert!(!r.is_available && r.status_code.is_none());
    assert!(started.elapsed() < Duration::from_secs(3), "total timeout");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = checker.check(&format!("http://127.0.0.1:{closed}/")).await;
    assert_eq!(r.error_kind, Some(ErrorKind::Connect));

    let r = checker.check("http://nonexistent.invalid/").await;
    assert_eq!(r.error_kind, Some(ErrorKind::Dns));
    assert!(!r.is_available);

    // A large body is not downloaded in full, and the answer still counts.
    let r = checker.check(&t.url("/big")).await;
    assert_eq!(r.status_code, Some(200));
}

#[tokio::test]
async fn the_ssrf_guard_blocks_private_targets_and_private_redirects() {
    let t = Target::start().await;
    // Private targets off; "localhost" is allowed by name so that a local server can redirect.
    let checker = Checker::new(&monitor(false, &["localhost"]));
    for url in [
        t.url("/ok"),
        "http://10.0.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]:80/".to_owned(),
        "http://0.0.0.0/".to_owned(),
    ] {
        let r = checker.check(&url).await;
        assert_eq!(r.error_kind, Some(ErrorKind::Blocked), "{url}");
        assert!(!r.is_available && r.status_code.is_none());
    }
    assert_eq!(t.total_hits(), 0, "nothing reached the loopback server");

    let local = |path: &str| format!("http://localhost:{}{path}", t.port);
    let r = checker.check(&local("/ok")).await;
    assert_eq!(r.status_code, Some(200), "the allowed host is reachable");
    for hop in [
        "10.0.0.1/".to_owned(),
        "169.254.169.254/latest/meta-data/".to_owned(),
        format!("127.0.0.1:{}/ok", t.port),
    ] {
        let before = t.hits("/ok");
        let r = checker.check(&local(&format!("/to/{hop}"))).await;
        assert_eq!(r.error_kind, Some(ErrorKind::Blocked), "redirect to {hop}");
        assert_eq!(t.hits("/ok"), before, "the redirect was not followed");
    }

    // A host name that resolves to loopback is blocked after resolution.
    let strict = Checker::new(&monitor(false, &[]));
    let r = strict.check(&local("/ok")).await;
    assert_eq!(r.error_kind, Some(ErrorKind::Blocked));

    // The same URLs pass when private targets are allowed.
    let open = Checker::new(&monitor(true, &[]));
    assert_eq!(open.check(&t.url("/ok")).await.status_code, Some(200));
}

async fn check_now(app: &TestApp, c: &reqwest::Client, uuid: &str) -> Value {
    let r = c
        .post(app.url(&format!("/resources/{uuid}/check")))
        .expect_status(StatusCode::OK)
        .await;
    r.json().await.unwrap()
}

async fn get_json(c: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let r = c.get(url).fetch().await;
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn events(app: &TestApp, c: &reqwest::Client, kind: &str) -> Vec<Value> {
    let (_, feed) = get_json(c, app.url("/feed?per_page=100")).await;
    feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_check_on_demand_is_recorded_with_history_and_uptime() {
    let t = Target::start().await;
    let app = TestApp::spawn_configured(|c| {
        c.monitor.allow_private_targets = true;
        c.monitor.timeout_secs = 1;
    })
    .await;
    app.register(&app.client, "watch@example.com").await;
    let ok = app.add_resource(&app.client, &t.url("/ok")).await;
    let uuid = ok["uuid"].as_str().unwrap();

    let (_, before) = get_json(&app.client, app.url(&format!("/resources/{uuid}"))).await;
    assert_eq!(before["checks"], json!([]));
    assert_eq!(before["uptime"]["24h"], Value::Null);

    let r = check_now(&app, &app.client, uuid).await;
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["is_available"], true);
    assert_eq!(r["error_kind"], Value::Null);
    assert_eq!(r["final_url"], t.url("/ok"));
    assert_eq!(r["resource_deleted"], false);

    let (_, after) = get_json(&app.client, app.url(&format!("/resources/{uuid}"))).await;
    let checks = after["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0]["status_code"], 200);
    assert_eq!(checks[0]["is_available"], true);
    assert_eq!(after["status_code"], 200);
    assert_eq!(after["is_available"], true);
    assert_eq!(after["uptime"]["24h"], 100.0);
    assert_eq!(after["uptime"]["30d"], 100.0);

    // The list carries the latest check too.
    let (_, list) = get_json(&app.client, app.url("/resources?availability=true")).await;
    assert_eq!(list["meta"]["total_items"], 1);

    // Another user's resource is a 404.
    let other = app.new_client();
    app.register(&other, "other@example.com").await;
    other
        .post(app.url(&format!("/resources/{uuid}/check")))
        .expect_status(StatusCode::NOT_FOUND)
        .await;
    app.stop().await;
}

#[tokio::test]
async fn the_check_endpoint_keeps_the_ssrf_guard() {
    let app = TestApp::spawn().await; // private targets off (the default)
    app.register(&app.client, "guard@example.com").await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
    ] {
        let r = app.add_resource(&app.client, url).await;
        let c = check_now(&app, &app.client, r["uuid"].as_str().unwrap()).await;
        assert_eq!(c["error_kind"], "blocked", "{url}");
        assert_eq!(c["is_available"], false);
    }
    app.stop().await;
}

/// IPv6 addresses that carry a private IPv4 address (NAT64, IPv4-compatible, 6to4, IPv4-mapped)
/// are refused by the guard and recorded as blocked checks, not as connection errors: on a NAT64
/// network `64:ff9b::7f00:1` is the server's own 127.0.0.1.
#[tokio::test]
async fn ipv6_addresses_that_embed_a_private_ipv4_are_recorded_as_blocked() {
    let t = Target::start().await;
    let app = TestApp::spawn_configured(|c| {
        c.monitor.allow_private_targets = false;
        c.monitor.allowed_hosts = vec!["127.0.0.1".into()];
        c.monitor.timeout_secs = 1;
    })
    .await;
    app.register(&app.client, "nat64@example.com").await;
    for host in [
        "[64:ff9b::7f00:1]",
        "[::127.0.0.1]",
        "[2002:7f00:1::1]",
        "[::ffff:127.0.0.1]",
    ] {
        let url = format!("http://{host}:{}/ok", t.port);
        let r = app.add_resource(&app.client, &url).await;
        let uuid = r["uuid"].as_str().unwrap();
        let c = check_now(&app, &app.client, uuid).await;
        assert_eq!(c["error_kind"], "blocked", "{url}");
        assert_eq!(c["is_available"], false, "{url}");
        assert_eq!(c["status_code"], Value::Null, "{url}");
        let (_, stored) = get_json(&app.client, app.url(&format!("/resources/{uuid}"))).await;
        assert_eq!(
            stored["checks"][0]["error_kind"], "blocked",
            "{url}: recorded"
        );
    }
    // 127.0.0.1 itself is allowed by name here, and nothing reached it by another spelling.
    assert_eq!(t.total_hits(), 0);

    // The checker on its own (as the monitor batches use it), on a resolved name too.
    let checker = Checker::new(&monitor(false, &["127.0.0.1"]));
    for url in [
        format!("http://[64:ff9b::7f00:1]:{}/ok", t.port),
        format!("http://[::127.0.0.1]:{}/ok", t.port),
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/".to_owned(),
        "http://[2001:db8::1]/".to_owned(),
        format!("http://localhost:{}/ok", t.port),
    ] {
        let r = checker.check(&url).await;
        assert_eq!(r.error_kind, Some(ErrorKind::Blocked), "{url}");
    }
    assert_eq!(t.total_hits(), 0);
    assert_eq!(
        checker.check(&t.url("/ok")).await.status_code,
        Some(200),
        "the allowed spelling still works"
    );
    app.stop().await;
}

/// A worker that may check the servers started here (1 s timeout) and mails through `smtp`.
async fn alerting_app(
    smtp: &SmtpServer,
    tweak: impl FnOnce(&mut pulseboard_config::Config),
) -> TestApp {
    let smtp_url = smtp.url();
    TestApp::spawn_with_worker_configured(move |c| {
        c.monitor.allow_private_targets = true;
        c.monitor.timeout_secs = 1;
        c.mail.smtp_url = smtp_url;
        tweak(c);
    })
    .await
}

/// A new owner `email` with account `settings`, watching the page of `t` that goes down on
/// demand: its URL and the resource's uuid.
async fn watch_flip(app: &TestApp, t: &Target, email: &str, settings: Value) -> (String, String) {
    app.register(&app.client, email).await;
    app.client
        .patch(app.url("/user"))
        .json(&settings)
        .expect_status(StatusCode::OK)
        .await;
    let url = t.url("/flip");
    let res = app.add_resource(&app.client, &url).await;
    (url, res["uuid"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn failures_count_flips_write_events_and_alerts_and_max_retries_deletes() {
    let t = Target::start().await;
    let smtp = SmtpServer::start().await;
    let app = alerting_app(&smtp, |c| c.monitor.max_retries = 3).await;
    let (url, uuid) = watch_flip(
        &app,
        &t,
        "owner@example.com",
        json!({"alerts_enabled": true}),
    )
    .await;
    let count = |v: &Value| v["unavailable_count"].as_i64().unwrap();

    // First check: up. No status change (there was no previous state).
    let c = check_now(&app, &app.client, &uuid).await;
    assert_eq!((c["is_available"].as_bool(), count(&c)), (Some(true), 0));
    assert!(events(&app, &app.client, "status_changed").await.is_empty());

    // Down: the counter goes up, one status_changed event, one alert.
    t.up.store(false, Ordering::SeqCst);
    let c = check_now(&app, &app.client, &uuid).await;
    assert_eq!(c["status_code"], 503);
    assert_eq!(count(&c), 1);
    let changed = events(&app, &app.client, "status_changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["url"], url);
    let (_, detail) = get_json(&app.client, app.url(&format!("/resources/{uuid}"))).await;
    assert_eq!(detail["unavailable_count"], 1);
    assert_eq!(detail["is_available"], false);

    // Still down: no new event, the counter grows.
    let c = check_now(&app, &app.client, &uuid).await;
    assert_eq!(count(&c), 2);
    assert_eq!(events(&app, &app.client, "status_changed").await.len(), 1);

    // Back up: reset, second event, recovery alert.
    t.up.store(true, Ordering::SeqCst);
    let c = check_now(&app, &app.client, &uuid).await;
    assert_eq!(count(&c), 0);
    assert_eq!(events(&app, &app.client, "status_changed").await.len(), 2);
    let (_, detail) = get_json(&app.client, app.url(&format!("/resources/{uuid}"))).await;
    assert_eq!(detail["unavailable_count"], 0);
    assert_eq!(detail["checks"].as_array().unwrap().len(), 4);
    assert_eq!(detail["uptime"]["24h"], 50.0);

    let alerts = || {
        smtp.received()
            .into_iter()
            .filter_map(|m| {
                let subject = m.data.lines().find_map(|l| l.strip_prefix("Subject: "))?;
                (subject.starts_with("Down:") || subject.starts_with("Back up:"))
                    .then(|| (subject.to_owned(), m.to.clone()))
            })
            .collect::<Vec<_>>()
    };
    let mails = eventually(10, || async {
        let m = alerts();
        (m.len() >= 2).then_some(m)
    })
    .await;
    let subjects: Vec<&str> = mails.iter().map(|(s, _)| s.as_str()).collect();
    assert!(
        subjects.iter().any(|s| s.starts_with("Down:")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.starts_with("Back up:")),
        "{subjects:?}"
    );
    assert!(mails
        .iter()
        .all(|(_, to)| to == &vec!["owner@example.com".to_owned()]));

    // Three failures in a row (max_retries = 3): deleted, with an event that keeps the URL.
    t.up.store(false, Ordering::SeqCst);
    for expected in [1, 2] {
        let c = check_now(&app, &app.client, &uuid).await;
        assert_eq!(
            (count(&c), c["resource_deleted"].as_bool()),
            (expected, Some(false))
        );
    }
    let c = check_now(&app, &app.client, &uuid).await;
    assert_eq!(c["resource_deleted"], true);
    let (status, _) = get_json(&app.client, app.url(&format!("/resources/{uuid}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let deleted = events(&app, &app.client, "resource_deleted").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["url"], url);
    assert_eq!(deleted[0]["resource_uuid"], uuid);

    // Alerts go only to owners who enabled them: nothing more than down, up, down.
    let mails = eventually(10, || async {
        let m = alerts();
        (m.len() >= 3).then_some(m)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(alerts().len(), 3, "{mails:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_russian_speaking_owner_gets_the_alert_in_russian_at_their_local_time() {
    let t = Target::start().await;
    let smtp = SmtpServer::start().await;
    let app = alerting_app(&smtp, |_| {}).await;
    let settings = json!({"alerts_enabled": true, "locale": "ru", "time_zone": "Europe/Moscow"});
    let (url, uuid) = watch_flip(&app, &t, "ru@example.com", settings).await;
    check_now(&app, &app.client, &uuid).await;
    t.up.store(false, Ordering::SeqCst);
    let c = check_now(&app, &app.client, &uuid).await;
    assert_eq!(c["status_code"], 503);

    let mail = eventually(10, || async {
        smtp.received().into_iter().find(|m| {
            decoded_header(&m.data, "Subject").is_some_and(|s| s.starts_with("Недоступен"))
        })
    })
    .await;
    assert_eq!(mail.to, vec!["ru@example.com".to_owned()]);
    assert_eq!(
        decoded_header(&mail.data, "Subject").unwrap(),
        format!("Недоступен: {url}")
    );
    let text = part(&mail.data, "text/plain");
    assert!(
        text.starts_with(&format!("{url} недоступен (статус 503), проверка в ")),
        "{text}"
    );
    assert!(text.contains("(Europe/Moscow)"), "{text}");
    assert!(text.contains(&format!("/#/resources/{uuid}")), "{text}");
    assert!(!text.contains("is down"), "{text}");
    let html = part(&mail.data, "text/html");
    assert!(
        html.contains("lang=\"ru\"") && html.contains("Все проверки"),
        "the HTML part is Russian too: {html}"
    );
    app.stop().await;
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql)
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap();
    n
}

#[tokio::test]
async fn two_workers_share_a_round_and_check_each_resource_once() {
    let t = Target::start().await;
    let app = TestApp::spawn_with_worker_configured(|c| {
        c.monitor.allow_private_targets = true;
        c.monitor.timeout_secs = 2;
        c.monitor.batch_size = 100;
    })
    .await;
    // A second worker process on the same database.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let second = app.app.worker(None, Some(4)).unwrap();
    let second = tokio::spawn(second.run(stop_rx));

    app.register(&app.client, "many@example.com").await;
    const N: usize = 250;
    for i in 0..N {
        app.add_resource(&app.client, &t.url(&format!("/ok?n={i}")))
            .await;
    }
    // Each had its first check when it was added; the rounds below come on top.
    eventually(30, || async {
        let n = scalar(&app, "SELECT COUNT(*) FROM checks").await;
        let pending = scalar(
            &app,
            "SELECT COUNT(*) FROM resources WHERE next_check_at IS NOT NULL",
        )
        .await;
        (n == N as i64 && pending == 0).then_some(())
    })
    .await;
    assert_eq!(t.hits("/ok"), N);
    let done_before = scalar(&app, "SELECT COUNT(*) FROM jobs WHERE status = 'done'").await;
    let ctx = app.app.job_context();
    // After the first checks' rounds (their sweeps' times): a round is claimed once per resource.
    let round = now_ms() + 1_000;
    // Two schedulers firing the same round: the second sweep enqueues nothing.
    let first = monitor_sweep(&ctx, round).await.unwrap();
    assert_eq!(first, N.div_ceil(100) as u64);
    assert_eq!(monitor_sweep(&ctx, round).await.unwrap(), 0);
    // A duplicated batch (another key, overlapping ids) checks nothing already claimed.
    let ids: Vec<i64> = sqlx::query_as::<_, (i64,)>("SELECT id FROM resources ORDER BY id")
        .fetch_all(&mut *app.sql().await)
        .await
        .unwrap()
        .into_iter()
        .map(|(id,)| id)
        .collect();
    app.app
        .queue
        .enqueue(&CheckBatch {
            round,
            resource_ids: ids[50..150].to_vec(),
        })
        .await
        .unwrap();

    eventually(30, || async {
        let done = scalar(&app, "SELECT COUNT(*) FROM jobs WHERE status = 'done'").await;
        let n = scalar(&app, "SELECT COUNT(*) FROM checks").await;
        // The round's batches and the duplicated one.
        (n >= 2 * N as i64 && done > done_before + first as i64).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM checks").await,
        2 * N as i64
    );
    assert_eq!(
        scalar(&app, "SELECT COUNT(DISTINCT resource_id) FROM checks").await,
        N as i64
    );
    assert_eq!(
        t.hits("/ok"),
        2 * N,
        "each resource was requested once in the round"
    );

    // The next round checks them all again.
    monitor_sweep(&ctx, round + 60_000).await.unwrap();
    eventually(30, || async {
        (scalar(&app, "SELECT COUNT(*) FROM checks").await >= 3 * N as i64).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.hits("/ok"), 3 * N);

    let _ = stop_tx.send(true);
    second.await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn the_scheduler_runs_monitoring_rounds() {
    let t = Target::start().await;
    let app = TestApp::spawn_with(
        Options {
            worker: true,
            scheduler: true,
        },
        |c| {
            c.monitor.allow_private_targets = true;
            c.schedules.monitor.cron = "* * * * * *".into();
        },
    )
    .await;
    app.register(&app.client, "cron@example.com").await;
    let r = app.add_resource(&app.client, &t.url("/ok")).await;
    let uuid = r["uuid"].as_str().unwrap().to_owned();
    eventually(15, || async {
        let (_, v) = get_json(&app.client, app.url(&format!("/resources/{uuid}"))).await;
        (v["checks"].as_array().map_or(0, |c| c.len()) >= 2).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn old_checks_roll_up_into_hourly_aggregates_that_still_count_for_uptime() {
    let t = Target::start().await;
    let app = TestApp::spawn_configured(|c| {
        c.monitor.allow_private_targets = true;
        c.monitor.check_retention_days = 7;
    })
    .await;
    app.register(&app.client, "history@example.com").await;
    let r = app.add_resource(&app.client, &t.url("/ok")).await;
    let uuid = r["uuid"].as_str().unwrap().to_owned();
    let id = r["id"].as_i64().unwrap();
    // Three checks ten days ago, in one hour: two up, one down.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let old = (now - 10 * 86_400_000) / 3_600_000 * 3_600_000 + 60_000;
    for (i, up) in [true, false, true].into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO checks (resource_id, checked_at, status_code, error_kind, \
             response_time_ms, is_available, final_url) VALUES ($1, $2, $3, NULL, $4, $5, NULL)",
        )
        .bind(id)
        .bind(old + i as i64 * 1000)
        .bind(if up { 200_i64 } else { 500 })
        .bind(100_i64)
        .bind(up)
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    }
    check_now(&app, &app.client, &uuid).await;

    let ctx = app.app.job_context();
    assert_eq!(roll_up_checks(&ctx, now).await.unwrap(), 3);
    assert_eq!(
        roll_up_checks(&ctx, now).await.unwrap(),
        0,
        "nothing left to roll up"
    );
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM checks").await, 1);
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM check_hourly").await, 1);
    assert_eq!(
        scalar(&app, "SELECT CAST(SUM(checks) AS BIGINT) FROM check_hourly").await,
        3
    );

    let (_, v) = get_json(&app.client, app.url(&format!("/resources/{uuid}"))).await;
    assert_eq!(
        v["checks"].as_array().unwrap().len(),
        1,
        "raw history is recent only"
    );
    assert_eq!(v["uptime"]["24h"], 100.0);
    assert_eq!(v["uptime"]["7d"], 100.0);
    assert_eq!(v["uptime"]["30d"], 75.0, "3 of 4 checks were available");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Own check intervals (check_interval_secs, next_check_at)

async fn add_with(app: &TestApp, c: &reqwest::Client, body: Value) -> (StatusCode, Value) {
    let r = c.post(app.url("/resources")).json(&body).fetch().await;
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn patch(app: &TestApp, c: &reqwest::Client, key: &str, body: Value) -> (StatusCode, Value) {
    let r = c
        .patch(app.url(&format!("/resources/{key}")))
        .json(&body)
        .fetch()
        .await;
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn now_ms() -> i64 {
    pulseboard_domain::Timestamp::now()
}

fn rfc3339_ms(v: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(
        v.as_str().expect("a time"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[tokio::test]
async fn due_sweeps_check_own_intervals_again_after_them_and_the_others_only_in_rounds() {
    let (with, without) = (Target::start().await, Target::start().await);
    let app =
        TestApp::spawn_with_worker_configured(|c| c.monitor.allow_private_targets = true).await;
    app.register(&app.client, "cadence@example.com").await;
    let start = now_ms();
    let (status, a) = add_with(
        &app,
        &app.client,
        json!({"url": with.url("/ok"), "check_interval_secs": 60}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    assert_eq!(a["check_interval_secs"], 60);
    assert!(a["next_check_at"].is_string(), "due at once: {a}");
    let b = app.add_resource(&app.client, &without.url("/ok")).await;
    assert_eq!(b["check_interval_secs"], Value::Null);
    assert!(b["next_check_at"].is_string(), "due at once: {b}");

    let checks_of = |id: i64| {
        let app = &app;
        async move {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM checks WHERE resource_id = $1")
                .bind(id)
                .fetch_one(&mut *app.sql().await)
                .await
                .unwrap();
            n
        }
    };
    let (a_id, b_id) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    // Both are checked at once, without a round or a scheduled sweep: adding them asked for one.
    eventually(10, || async {
        (checks_of(a_id).await == 1 && checks_of(b_id).await == 1).then_some(())
    })
    .await;
    // Without an interval, the next check is then the next round (schedules.monitor, every 12 h).
    let s = &app.app.config.schedules.monitor;
    let next_round =
        pulseboard_jobs::scheduler::next_occurrence(&s.cron, &s.timezone, now_ms()).unwrap();
    let (_, v) = get_json(&app.client, app.url(&format!("/resources/{b_id}"))).await;
    assert_eq!(
        v["next_check_at"],
        pulseboard_domain::Timestamp::rfc3339(next_round)
    );

    let ctx = app.app.job_context();
    // Taken once: the first checks moved the one with an interval one interval on and cleared
    // the other's.
    let now = now_ms();
    assert_eq!(monitor_sweep_due(&ctx, now).await.unwrap(), 0);
    assert_eq!(monitor_sweep_due(&ctx, now + 30_000).await.unwrap(), 0);
    let (_, v) = get_json(&app.client, app.url(&format!("/resources/{}", a_id))).await;
    let next = rfc3339_ms(&v["next_check_at"]);
    assert!(
        (start + 59_000..=now + 61_000).contains(&next),
        "next check one interval on: {v}"
    );

    // After its interval it is checked again.
    assert_eq!(monitor_sweep_due(&ctx, now + 61_000).await.unwrap(), 1);
    eventually(10, || async { (checks_of(a_id).await == 2).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(checks_of(b_id).await, 1, "no round yet: not checked again");
    assert_eq!(without.total_hits(), 1);

    // A round checks every resource without an interval, and those with one only when due.
    monitor_sweep(&ctx, now + 62_000).await.unwrap();
    eventually(10, || async { (checks_of(b_id).await == 2).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(checks_of(a_id).await, 2, "not due in this round");
    monitor_sweep(&ctx, now + 125_000).await.unwrap();
    eventually(10, || async {
        (checks_of(a_id).await == 3 && checks_of(b_id).await == 3).then_some(())
    })
    .await;

    // Clearing the interval hands the resource back to the rounds.
    let (status, v) = patch(
        &app,
        &app.client,
        &a_id.to_string(),
        json!({"check_interval_secs": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["check_interval_secs"], Value::Null);
    assert_eq!(
        v["next_check_at"],
        pulseboard_domain::Timestamp::rfc3339(next_round)
    );
    assert_eq!(
        monitor_sweep_due(&ctx, now + 10 * 86_400_000)
            .await
            .unwrap(),
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_short_interval_is_kept_by_the_scheduler_and_a_resource_without_is_checked_once_then_waits_for_the_round(
) {
    let (with, without) = (Target::start().await, Target::start().await);
    let app = TestApp::spawn_with(
        Options {
            worker: true,
            scheduler: true,
        },
        |c| {
            c.monitor.allow_private_targets = true;
            c.monitor.min_check_interval_secs = 1;
            c.schedules.monitor_due.cron = "* * * * * *".into();
            c.schedules.monitor.cron = "0 0 0 1 1 *".into(); // once a year: not during the test
        },
    )
    .await;
    app.register(&app.client, "short@example.com").await;
    let (status, a) = add_with(
        &app,
        &app.client,
        json!({"url": with.url("/ok"), "check_interval_secs": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let b = app.add_resource(&app.client, &without.url("/ok")).await;
    let uuid = a["uuid"].as_str().unwrap().to_owned();

    let checks = eventually(20, || async {
        let (_, v) = get_json(&app.client, app.url(&format!("/resources/{uuid}"))).await;
        let checks = v["checks"].as_array().cloned().unwrap_or_default();
        (checks.len() >= 3).then_some(checks)
    })
    .await;
    // Checked again after its interval, not before (ticks every second, interval 2 s).
    let times: Vec<i64> = checks
        .iter()
        .map(|c| rfc3339_ms(&c["checked_at"]))
        .collect();
    for pair in times.windows(2) {
        assert!(
            pair[0] - pair[1] >= 1_500,
            "checks {times:?} closer than the interval"
        );
    }
    // The other one had its first check when it was added, and none since: no round yet.
    assert_eq!(without.total_hits(), 1, "first check only");
    let (_, v) = get_json(
        &app.client,
        app.url(&format!("/resources/{}", b["uuid"].as_str().unwrap())),
    )
    .await;
    assert_eq!(v["checks"].as_array().map(Vec::len), Some(1), "{v}");

    // Given an interval, the resource without one is checked again (its last check was long
    // enough ago: due at once).
    let (status, v) = patch(
        &app,
        &app.client,
        b["uuid"].as_str().unwrap(),
        json!({"check_interval_secs": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["check_interval_secs"], 1);
    eventually(10, || async { (without.total_hits() >= 2).then_some(()) }).await;
    app.stop().await;
}

#[tokio::test]
async fn new_resources_are_checked_within_seconds_many_in_one_sweep() {
    let target = Target::start().await;
    let app =
        TestApp::spawn_with_worker_configured(|c| c.monitor.allow_private_targets = true).await;
    app.register(&app.client, "first@example.com").await;
    let r = app.add_resource(&app.client, &target.url("/ok")).await;
    // No round, no scheduler: adding it was enough.
    let uuid = r["uuid"].as_str().unwrap().to_owned();
    let v = eventually(10, || async {
        let (_, v) = get_json(&app.client, app.url(&format!("/resources/{uuid}"))).await;
        v["is_available"].as_bool().map(|_| v)
    })
    .await;
    assert_eq!(v["is_available"], true);
    assert_eq!(v["status_code"], 200);
    assert_eq!(target.hits("/ok"), 1);

    // Many added at once share one sweep: every one is checked once.
    let urls: Vec<String> = (0..30).map(|i| target.url(&format!("/ok?n={i}"))).collect();
    futures_util::future::join_all(urls.iter().map(|u| app.add_resource(&app.client, u))).await;
    eventually(15, || async { (target.hits("/ok") == 31).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(target.hits("/ok"), 31, "each checked once");
    let sweeps = scalar(&app, "SELECT COUNT(*) FROM jobs WHERE kind = 'monitor_due'").await;
    assert!(sweeps < 31, "{sweeps} sweeps for 31 additions");
    app.stop().await;
}

#[tokio::test]
async fn check_intervals_are_validated_on_post_and_patch() {
    let app = TestApp::spawn().await;
    app.register(&app.client, "bounds@example.com").await;
    for bad in [
        json!(59),
        json!(2_592_001),
        json!(0),
        json!(-60),
        json!(90.5),
        json!("soon"),
        json!(true),
        json!([60]),
    ] {
        let (status, v) = add_with(
            &app,
            &app.client,
            json!({"url": "https://bounds.example.com/", "check_interval_secs": bad}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
        assert!(
            v["details"]["check_interval_secs"].is_string(),
            "{bad}: {v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains("60 to 2592000"),
            "{v}"
        );
    }
    let (_, list) = get_json(&app.client, app.url("/resources")).await;
    assert_eq!(list["meta"]["total_items"], 0, "nothing was added");

    // The bounds themselves are fine; so is a form body.
    let (status, v) = add_with(
        &app,
        &app.client,
        json!({"url": "https://bounds.example.com/a", "check_interval_secs": 60}),
    )
    .await;
    assert_eq!(
        (status, v["check_interval_secs"].clone()),
        (StatusCode::CREATED, json!(60))
    );
    let v: Value = app
        .client
        .post(app.url("/resources"))
        .form(&[
            ("url", "https://bounds.example.com/b"),
            ("check_interval_secs", "2592000"),
        ])
        .expect_json(StatusCode::CREATED)
        .await;
    assert_eq!(v["check_interval_secs"], 2_592_000);
    let uuid = v["uuid"].as_str().unwrap().to_owned();

    for bad in [json!(30), json!(3_000_000), json!("x")] {
        let (status, v) = patch(
            &app,
            &app.client,
            &uuid,
            json!({ "check_interval_secs": bad }),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
        assert!(v["details"]["check_interval_secs"].is_string(), "{v}");
    }
    let (status, _) = patch(&app, &app.client, &uuid, json!({"interval": 60})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "unknown field");
    // Nothing to change: the resource as it is.
    let (status, v) = patch(&app, &app.client, &uuid, json!({})).await;
    assert_eq!(
        (status, v["check_interval_secs"].clone()),
        (StatusCode::OK, json!(2_592_000))
    );
    let (status, v) = patch(
        &app,
        &app.client,
        &uuid,
        json!({"check_interval_secs": 3600}),
    )
    .await;
    assert_eq!(
        (status, v["check_interval_secs"].clone()),
        (StatusCode::OK, json!(3600))
    );
    let (_, v) = get_json(&app.client, app.url(&format!("/resources/{uuid}"))).await;
    assert_eq!(v["check_interval_secs"], 3600);
    assert!(v["next_check_at"].is_string());

    // Another user's resource, or none: 404.
    let other = app.new_client();
    app.register(&other, "intruder@example.com").await;
    let (status, _) = patch(&app, &other, &uuid, json!({"check_interval_secs": 60})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = patch(
        &app,
        &app.client,
        "999999",
        json!({"check_interval_secs": 60}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// One guard per process, from `monitor`: the one the checker hands out (to the capture route and
/// the notifier) refuses what checks refuse and lets through the hosts the operator named.
#[test]
fn the_checker_hands_out_the_guard_of_its_settings() {
    let private = reqwest::Url::parse("http://10.0.0.1/").unwrap();
    let named = reqwest::Url::parse("http://127.0.0.1:8080/").unwrap();
    let strict = Checker::new(&monitor(false, &["Intranet.Example", "127.0.0.1"]));
    assert!(strict.guard().check_url(&private).is_err());
    assert!(strict.guard().check_url(&named).is_ok());
    assert!(strict.guard().host_allowed("intranet.example"));
    assert!(!strict.guard().host_allowed("other.example"));
    let open = Checker::new(&monitor(true, &[]));
    assert!(open.guard().check_url(&private).is_ok());
}
