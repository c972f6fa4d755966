//! Per-resource alert settings (issue #19): alerts after N failures in a row, once per outage,
//! the recovery only after a down alert, reminders, the resource's own deletion limit, its own
//! channels, and the API's validation and authorization of these settings.

mod common;

use common::{eventually, Options, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A local server: paths under `/site` answer 200 while `up`, else 503; any other path is a
/// webhook that records the request's path and answers 200.
#[derive(Clone)]
struct Fake {
    port: u16,
    up: Arc<AtomicBool>,
    hooks: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let f = Fake {
            port: listener.local_addr().unwrap().port(),
            up: Arc::new(AtomicBool::new(true)),
            hooks: Default::default(),
        };
        common::serve_each(listener, f.clone(), |f, stream| async move {
            f.serve(stream).await
        });
        f
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// How many deliveries the webhook at `path` got.
    fn hits(&self, path: &str) -> usize {
        self.hooks
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    async fn serve(&self, mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let Some(head) = common::read_head(&mut stream).await? else {
            return Ok(());
        };
        let head = String::from_utf8_lossy(&head);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let status = if path.starts_with("/site") {
            if self.up.load(Ordering::SeqCst) {
                "200 OK"
            } else {
                "503 Service Unavailable"
            }
        } else {
            self.hooks.lock().unwrap().push(path);
            "200 OK"
        };
        let resp = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        stream.write_all(resp.as_bytes()).await?;
        stream.shutdown().await
    }
}

/// An app with a worker that may check and deliver to the local server.
async fn spawn(max_retries: u32) -> TestApp {
    TestApp::spawn_with(
        Options {
            worker: true,
            scheduler: false,
        },
        move |c| {
            c.monitor.allow_private_targets = true;
            c.monitor.timeout_secs = 2;
            c.monitor.max_retries = max_retries;
        },
    )
    .await
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Registers `email` with alert mails on.
async fn owner(app: &TestApp, c: &reqwest::Client, email: &str) {
    app.register(c, email).await;
    let (status, v) = send(
        c.patch(app.url("/user"))
            .json(&json!({"alerts_enabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

async fn webhook(app: &TestApp, c: &reqwest::Client, url: String) -> i64 {
    let (status, v) = send(
        c.post(app.url("/channels"))
            .json(&json!({"kind": "webhook", "name": "hook", "config": {"url": url}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v["id"].as_i64().unwrap()
}

/// Adds a resource with `body` and waits for its first (automatic) check, so that the checks
/// the test makes afterwards are the only ones.
async fn add(app: &TestApp, c: &reqwest::Client, body: Value) -> Value {
    let (status, v) = send(c.post(app.url("/resources")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body} → {v}");
    let uuid = v["uuid"].as_str().unwrap().to_owned();
    eventually(15, || async {
        let r = get(app, c, &uuid).await;
        (!r["checked_at"].is_null()).then_some(())
    })
    .await;
    v
}

async fn get(app: &TestApp, c: &reqwest::Client, uuid: &str) -> Value {
    let (status, v) = send(c.get(app.url(&format!("/resources/{uuid}")))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

async fn check(app: &TestApp, c: &reqwest::Client, uuid: &str) -> Value {
    let (status, v) = send(c.post(app.url(&format!("/resources/{uuid}/check")))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

/// (alert mails, channel deliveries) enqueued about the resource: both are written in the
/// transaction that records the check, so the count is exact as soon as the check returns.
async fn alerts(app: &TestApp, uuid: &str) -> (i64, i64) {
    let count = |kind: &str| {
        format!("SELECT COUNT(*) FROM jobs WHERE kind = '{kind}' AND payload LIKE '%{uuid}%'")
    };
    (
        app.count(&count("availability_alert")).await,
        app.count(&count("channel_delivery")).await,
    )
}

fn uuid_of(v: &Value) -> String {
    v["uuid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn alert_after_3_alerts_once_at_the_third_failure_and_recovery_once() {
    let fake = Fake::start().await;
    let app = spawn(2).await;
    let c = &app.client;
    owner(&app, c, "after@example.com").await;
    webhook(&app, c, fake.url("/hook")).await;
    // delete_after_failures = 0: five failures in a row outlast max_retries (2) and stay.
    let r = add(
        &app,
        c,
        json!({"url": fake.url("/site"), "alert_after": 3, "delete_after_failures": 0}),
    )
    .await;
    assert_eq!(
        (&r["alert_after"], &r["delete_after_failures"]),
        (&json!(3), &json!(0))
    );
    assert_eq!(
        r["removal_after_failures_left"],
        Value::Null,
        "never removed"
    );
    assert_eq!(r["channels"], Value::Null, "all channels by default");
    let uuid = uuid_of(&r);

    fake.set_up(false);
    for n in 1..=2 {
        assert_eq!(check(&app, c, &uuid).await["unavailable_count"], n);
        assert_eq!(alerts(&app, &uuid).await, (0, 0), "nothing at failure {n}");
    }
    check(&app, c, &uuid).await;
    assert_eq!(alerts(&app, &uuid).await, (1, 1), "one alert at failure 3");
    for n in 4..=5 {
        let v = check(&app, c, &uuid).await;
        assert_eq!(v["resource_deleted"], false);
        assert_eq!(
            alerts(&app, &uuid).await,
            (1, 1),
            "no repeat at failure {n}"
        );
    }
    assert_eq!(get(&app, c, &uuid).await["unavailable_count"], 5);

    fake.set_up(true);
    check(&app, c, &uuid).await;
    assert_eq!(alerts(&app, &uuid).await, (2, 2), "one recovery alert");
    check(&app, c, &uuid).await;
    assert_eq!(
        alerts(&app, &uuid).await,
        (2, 2),
        "up again is not alerted again"
    );

    // A short outage (fewer failures than alert_after) sends neither a down nor a recovery alert.
    fake.set_up(false);
    check(&app, c, &uuid).await;
    fake.set_up(true);
    check(&app, c, &uuid).await;
    assert_eq!(alerts(&app, &uuid).await, (2, 2));

    // The webhook got exactly the two alerts.
    eventually(15, || async { (fake.hits("/hook") >= 2).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.hits("/hook"), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_reminder_goes_out_every_n_hours_while_down() {
    let fake = Fake::start().await;
    let app = spawn(100).await;
    let c = &app.client;
    owner(&app, c, "remind@example.com").await;
    let r = add(
        &app,
        c,
        json!({"url": fake.url("/site"), "remind_every_hours": 2}),
    )
    .await;
    assert_eq!(r["remind_every_hours"], 2);
    let uuid = uuid_of(&r);
    fake.set_up(false);
    check(&app, c, &uuid).await;
    check(&app, c, &uuid).await;
    assert_eq!(
        alerts(&app, &uuid).await.0,
        1,
        "the down alert, no reminder yet"
    );
    // Two hours pass since that alert (moved back rather than waited for).
    let moved =
        sqlx::query("UPDATE resources SET last_alert_at = last_alert_at - 7200000 WHERE uuid = $1")
            .bind(&uuid)
            .execute(&mut *app.sql().await)
            .await
            .unwrap();
    assert_eq!(moved.rows_affected(), 1);
    check(&app, c, &uuid).await;
    assert_eq!(alerts(&app, &uuid).await.0, 2, "a reminder");
    check(&app, c, &uuid).await;
    assert_eq!(
        alerts(&app, &uuid).await.0,
        2,
        "the next one only 2 h later"
    );
    app.stop().await;
}

#[tokio::test]
async fn deletion_follows_the_resources_own_limit_else_the_global_one() {
    let fake = Fake::start().await;
    let app = spawn(3).await;
    let c = &app.client;
    owner(&app, c, "delete@example.com").await;
    let own = add(
        &app,
        c,
        json!({"url": fake.url("/site/own"), "delete_after_failures": 2}),
    )
    .await;
    let global = add(&app, c, json!({"url": fake.url("/site/global")})).await;
    assert_eq!(own["removal_after_failures_left"], 2);
    assert_eq!(global["delete_after_failures"], Value::Null);
    assert_eq!(
        global["removal_after_failures_left"], 3,
        "monitor.max_retries"
    );
    let (own, global) = (uuid_of(&own), uuid_of(&global));

    fake.set_up(false);
    assert_eq!(check(&app, c, &own).await["resource_deleted"], false);
    assert_eq!(get(&app, c, &own).await["removal_after_failures_left"], 1);
    assert_eq!(check(&app, c, &own).await["resource_deleted"], true);
    let (status, _) = send(c.get(app.url(&format!("/resources/{own}")))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for _ in 1..=2 {
        assert_eq!(check(&app, c, &global).await["resource_deleted"], false);
    }
    assert_eq!(
        get(&app, c, &global).await["removal_after_failures_left"],
        1
    );
    assert_eq!(check(&app, c, &global).await["resource_deleted"], true);
    app.stop().await;
}

#[tokio::test]
async fn alerts_go_only_to_the_resources_channels_which_must_be_the_users() {
    let fake = Fake::start().await;
    let app = spawn(100).await;
    let c = &app.client;
    owner(&app, c, "channels@example.com").await;
    let a = webhook(&app, c, fake.url("/a")).await;
    webhook(&app, c, fake.url("/b")).await;

    let other = app.new_client();
    app.register(&other, "other@example.com").await;
    let theirs = webhook(&app, &other, fake.url("/theirs")).await;
    for channels in [
        json!([theirs]),
        json!([a, theirs]),
        json!([999_999]),
        json!("x"),
    ] {
        let (status, v) = send(
            c.post(app.url("/resources"))
                .json(&json!({"url": fake.url("/site/x"), "channels": channels})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{channels}: {v}");
        assert!(v["details"]["channels"].is_string(), "{v}");
    }

    let r = add(&app, c, json!({"url": fake.url("/site"), "channels": [a]})).await;
    assert_eq!(r["channels"], json!([a]));
    let uuid = uuid_of(&r);
    assert_eq!(get(&app, c, &uuid).await["channels"], json!([a]));
    let (_, list) = send(c.get(app.url("/resources"))).await;
    assert_eq!(list["items"][0]["channels"], json!([a]), "{list}");

    fake.set_up(false);
    check(&app, c, &uuid).await;
    eventually(15, || async { (fake.hits("/a") >= 1).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((fake.hits("/a"), fake.hits("/b")), (1, 0), "only a");

    // Another user's channel in a PATCH: refused, and the list is unchanged.
    let path = app.url(&format!("/resources/{uuid}"));
    let (status, v) = send(c.patch(&path).json(&json!({"channels": [theirs]}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["details"]["channels"].is_string(), "{v}");
    assert_eq!(get(&app, c, &uuid).await["channels"], json!([a]));

    // Back to all channels: the recovery goes to both.
    let (status, v) = send(c.patch(&path).json(&json!({"channels": null}))).await;
    assert_eq!((status, &v["channels"]), (StatusCode::OK, &Value::Null));
    fake.set_up(true);
    check(&app, c, &uuid).await;
    eventually(15, || async {
        (fake.hits("/a") >= 2 && fake.hits("/b") >= 1).then_some(())
    })
    .await;
    assert_eq!(fake.hits("/theirs"), 0);
    app.stop().await;
}

#[tokio::test]
async fn settings_are_validated_naming_the_field_and_private_to_their_owner() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "valid@example.com").await;
    let r = app.add_resource(c, "https://example.com/settings").await;
    assert_eq!(
        (&r["alert_after"], &r["remind_every_hours"]),
        (&json!(1), &Value::Null),
        "the defaults"
    );
    let path = app.url(&format!("/resources/{}", uuid_of(&r)));

    let (status, v) = send(c.patch(&path).json(&json!({
        "alert_after": 5, "delete_after_failures": 10, "remind_every_hours": 168
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (
            &v["alert_after"],
            &v["delete_after_failures"],
            &v["remind_every_hours"],
            &v["removal_after_failures_left"]
        ),
        (&json!(5), &json!(10), &json!(168), &json!(10))
    );
    // A field left out is kept; null clears a nullable one.
    let (_, v) = send(c.patch(&path).json(&json!({"remind_every_hours": null}))).await;
    assert_eq!(
        (&v["alert_after"], &v["remind_every_hours"]),
        (&json!(5), &Value::Null)
    );

    for (body, field) in [
        (json!({"alert_after": 0}), "alert_after"),
        (json!({"alert_after": 101}), "alert_after"),
        (json!({"alert_after": null}), "alert_after"),
        (json!({"alert_after": "x"}), "alert_after"),
        (
            json!({"delete_after_failures": -1}),
            "delete_after_failures",
        ),
        (
            json!({"delete_after_failures": 1001}),
            "delete_after_failures",
        ),
        (
            json!({"delete_after_failures": 1.5}),
            "delete_after_failures",
        ),
        (json!({"remind_every_hours": 0}), "remind_every_hours"),
        (json!({"remind_every_hours": 169}), "remind_every_hours"),
        (json!({"channels": {"id": 1}}), "channels"),
        (json!({"channels": ["a"]}), "channels"),
    ] {
        let (status, v) = send(c.patch(&path).json(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(v["details"][field].is_string(), "{body}: {v}");
    }
    // A bad field next to a good one changes nothing.
    let (status, _) = send(
        c.patch(&path)
            .json(&json!({"alert_after": 7, "remind_every_hours": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, v) = send(c.get(&path)).await;
    assert_eq!(v["alert_after"], 5);
    let (status, v) = send(
        c.post(app.url("/resources"))
            .json(&json!({"url": "https://example.com/bad", "alert_after": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["details"]["alert_after"].is_string(), "{v}");

    // Another user's resource is not found, and stays as it was.
    let other = app.new_client();
    app.register(&other, "intruder@example.com").await;
    let (status, _) = send(other.patch(&path).json(&json!({"alert_after": 9}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A token that may only read resources cannot change their settings.
    let (status, token) = send(
        c.post(app.url("/tokens"))
            .json(&json!({"name": "reader", "scopes": ["resources:read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let script = reqwest::Client::new();
    let (status, _) = send(
        script
            .patch(&path)
            .header("authorization", bearer)
            .json(&json!({"alert_after": 9})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, v) = send(c.get(&path)).await;
    assert_eq!(v["alert_after"], 5, "unchanged");
    app.stop().await;
}
