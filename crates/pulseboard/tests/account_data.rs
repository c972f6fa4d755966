//! The user's data: `GET /user/export` and `DELETE /user`.

mod common;

use common::{Fetch, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn add_task(app: &TestApp, c: &reqwest::Client, title: &str) -> Value {
    let r = c
        .post(app.url("/tasks"))
        .json(&json!({"title": title, "description": format!("about {title}")}))
        .fetch()
        .await;
    assert!(r.status().is_success(), "add task {title}");
    r.json().await.unwrap()
}

async fn export(app: &TestApp, c: &reqwest::Client) -> Value {
    let r = c
        .get(app.url("/user/export"))
        .expect_status(StatusCode::OK)
        .await;
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"pulseboard-export-")
            && disposition.ends_with(".json\""),
        "{disposition}"
    );
    r.json().await.unwrap()
}

#[tokio::test]
async fn export_holds_everything_of_the_user_and_nothing_of_others() {
    let app = TestApp::spawn().await;
    let guest = app.new_client();
    guest
        .get(app.url("/user/export"))
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;

    let c = &app.client;
    app.register(c, "exporter@example.com").await;
    let t1 = add_task(&app, c, "first").await;
    add_task(&app, c, "second").await;
    let r = c
        .patch(app.url(&format!("/tasks/{}", t1["id"])))
        .json(&json!({"done": true}))
        .fetch()
        .await;
    assert!(r.status().is_success());
    let res = app.add_resource(c, "https://mine.example.com/a?x=1").await;
    let uuid = res["uuid"].as_str().unwrap().to_owned();
    app.add_resource(c, "https://mine.example.org/").await;
    app.upload_screenshot(c, &uuid, common::png(0, 64)).await;

    let other = app.new_client();
    app.register(&other, "someone-else@example.com").await;
    add_task(&app, &other, "not yours").await;
    app.add_resource(&other, "https://theirs.example.net/")
        .await;

    let doc = export(&app, c).await;
    assert!(doc["exported_at"].is_string());
    assert_eq!(doc["user"]["email"], "exporter@example.com");
    assert_eq!(doc["user"]["time_zone"], "UTC");
    assert!(doc["user"].get("password_hash").is_none());
    let text = doc.to_string();
    assert!(!text.contains("argon2"), "no password hash anywhere");
    assert!(!text.contains("theirs.example.net") && !text.contains("not yours"));

    let tasks = doc["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    let first = tasks.iter().find(|t| t["title"] == "first").unwrap();
    assert_eq!(first["done"], true);
    assert_eq!(first["description"], "about first");
    assert!(first["position"].is_i64() && first["created_at"].is_string());
    assert!(first["done_at"].is_string() && first["updated_at"].is_string());

    let resources = doc["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 2);
    let shot = resources
        .iter()
        .find(|r| r["uuid"] == uuid.as_str())
        .unwrap();
    assert_eq!(shot["has_screenshot"], true);
    assert_eq!(shot["full_url"], "https://mine.example.com/a?x=1");
    assert!(shot.get("check_interval_secs").is_some() && shot["created_at"].is_string());
    let plain = resources
        .iter()
        .find(|r| r["uuid"] != uuid.as_str())
        .unwrap();
    assert_eq!(plain["has_screenshot"], false);

    let feed = doc["feed"].as_array().unwrap();
    assert!(feed.iter().any(|e| e["kind"] == "photo_added"));
    assert_eq!(
        feed.iter()
            .filter(|e| e["kind"] == "resource_added")
            .count(),
        2
    );

    // The other user's export is theirs alone.
    let theirs = export(&app, &other).await;
    assert_eq!(theirs["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["resources"].as_array().unwrap().len(), 1);
    assert!(!theirs.to_string().contains("mine.example.com"));
    app.stop().await;
}

/// The `pb_refresh` cookie a response set.
fn refresh_cookie(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix("pb_refresh=")
                .map(|rest| rest.split(';').next().unwrap().to_owned())
        })
        .expect("a refresh cookie")
}

#[tokio::test]
async fn deleting_the_account_takes_everything_and_ends_every_login() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    let me = app.register(c, "leaver@example.com").await;
    let my_id = me["id"].as_i64().unwrap();
    add_task(&app, c, "mine").await;
    let res = app.add_resource(c, "https://leaver.example.com/").await;
    let uuid = res["uuid"].as_str().unwrap().to_owned();
    app.upload_screenshot(c, &uuid, common::png(0, 64)).await;
    let blob_key: String = sqlx::query_scalar("SELECT blob_key FROM screenshots")
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap();
    assert!(app.app.blobs.get(&blob_key).await.unwrap().is_some());

    let other = app.new_client();
    let them = app.register(&other, "stayer@example.com").await;
    let their_id = them["id"].as_i64().unwrap();
    let app_ref = &app;
    let channel = |client: reqwest::Client| async move {
        let created: Value = client
            .post(app_ref.url("/channels"))
            .json(&json!({"kind": "webhook", "name": "hook",
                          "config": {"url": "https://hooks.example.com/x"}}))
            .expect_status(StatusCode::CREATED)
            .await
            .json()
            .await
            .unwrap();
        created["id"].as_i64().unwrap()
    };
    let my_channel = channel(c.clone()).await;
    let their_channel = channel(other.clone()).await;
    // Sent mail is recorded by key: the leaver's go with the account, the stayer's stay.
    let keys = [
        format!("welcome:{my_id}"),
        format!("digest:{my_id}:2026-01-01"),
        format!("alert:{uuid}:1700000000000"),
        format!("test:abc:channel:{my_channel}"),
        format!("channel-confirm:{my_channel}:1"),
        format!("welcome:{their_id}"),
        format!("digest:{their_id}:2026-01-01"),
        format!("test:abc:channel:{their_channel}"),
        format!("channel-confirm:{their_channel}:1"),
    ];
    for key in &keys {
        sqlx::query("INSERT INTO mail_log (message_key, sent_at) VALUES ($1, $2)")
            .bind(key)
            .bind(1_i64)
            .execute(&mut *app.sql().await)
            .await
            .unwrap();
    }
    add_task(&app, &other, "theirs").await;
    app.add_resource(&other, "https://stayer.example.com/")
        .await;

    // A second login, without a cookie jar: its bearer token and refresh cookie are kept.
    let bare = reqwest::Client::new();
    let login = bare
        .post(app.url("/session"))
        .json(&json!({"email": "leaver@example.com", "password": PASSWORD}))
        .expect_status(StatusCode::OK)
        .await;
    let refresh = refresh_cookie(&login);
    let login: Value = login.json().await.unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let r = bare.get(app.url("/user")).bearer_auth(&token).fetch().await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the login works (and is remembered)"
    );

    // A guest, a missing password, a wrong one: nothing is deleted.
    app.new_client()
        .delete(app.url("/user"))
        .json(&json!({"password": PASSWORD}))
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;
    c.delete(app.url("/user"))
        .json(&json!({}))
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    let body: Value = c
        .delete(app.url("/user"))
        .json(&json!({"password": "not the password at all"}))
        .expect_json(StatusCode::FORBIDDEN)
        .await;
    assert!(body["message"].as_str().unwrap().contains("password"));
    // A wrong password counts as a failed login of the account.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_throttle WHERE key = 'account:leaver@example.com'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM tasks").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM resources").await, 2);
    assert!(app.app.blobs.get(&blob_key).await.unwrap().is_some());
    c.get(app.url("/user")).expect_status(StatusCode::OK).await;

    // The right password, as a form.
    let r = c
        .delete(app.url("/user"))
        .form(&[("password", PASSWORD)])
        .expect_status(StatusCode::NO_CONTENT)
        .await;
    let cleared: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(cleared
        .iter()
        .any(|v| v.starts_with("pb_access=;") && v.contains("Max-Age=0")));
    assert!(cleared
        .iter()
        .any(|v| v.starts_with("pb_refresh=;") && v.contains("Max-Age=0")));

    // The login counters of the email went with it (before the failed login below adds some).
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_throttle WHERE key LIKE '%leaver@%'")
            .await,
        0
    );
    // Every login is over at once: the other login's token and refresh cookie too.
    bare.get(app.url("/user"))
        .bearer_auth(&token)
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;
    bare.get(app.url("/user/export"))
        .bearer_auth(&token)
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;
    bare.post(app.url("/session/refresh"))
        .header("cookie", format!("pb_refresh={refresh}"))
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;
    app.new_client()
        .post(app.url("/session"))
        .json(&json!({"email": "leaver@example.com", "password": PASSWORD}))
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;

    // Nothing of theirs is left; the other user's data is untouched.
    assert!(app.app.blobs.get(&blob_key).await.unwrap().is_none());
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM refresh_tokens WHERE user_id NOT IN (SELECT id FROM users)"
        )
        .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM screenshots").await, 0);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT message_key FROM mail_log ORDER BY message_key")
            .fetch_all(&mut *app.sql().await)
            .await
            .unwrap();
    let mut kept = keys[5..].to_vec();
    kept.sort();
    assert_eq!(
        left, kept,
        "the other user's mail records stay, the leaver's go"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM resource_counts WHERE user_id NOT IN (SELECT id FROM users)"
        )
        .await,
        0
    );
    let theirs = export(&app, &other).await;
    assert_eq!(theirs["tasks"][0]["title"], "theirs");
    assert_eq!(
        theirs["resources"][0]["full_url"],
        "https://stayer.example.com/"
    );
    assert_eq!(theirs["resources"].as_array().unwrap().len(), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM tasks").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 1);
    let list: Value = other.get(app.url("/resources")).fetch_json().await;
    assert_eq!(list["meta"]["total_items"], 1, "{list}");

    // The email is free again.
    let again = app.new_client();
    let back = app.register(&again, "leaver@example.com").await;
    let doc = export(&app, &again).await;
    assert_eq!(doc["user"]["id"], back["id"]);
    assert!(doc["tasks"].as_array().unwrap().is_empty());
    assert!(doc["resources"].as_array().unwrap().is_empty());
    assert!(doc["feed"].as_array().unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn both_operations_are_documented_with_their_statuses() {
    let app = TestApp::spawn().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).fetch_json().await;
    let export = &doc["paths"]["/user/export"]["get"]["responses"];
    for status in ["200", "401"] {
        assert!(export.get(status).is_some(), "export {status}");
    }
    let delete = &doc["paths"]["/user"]["delete"];
    for status in ["204", "401", "403", "422"] {
        assert!(delete["responses"].get(status).is_some(), "delete {status}");
    }
    assert!(delete["requestBody"]["content"]
        .get("application/x-www-form-urlencoded")
        .is_some());
    assert!(doc["components"]["schemas"]["Export"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn jobs_queued_for_a_deleted_user_finish_quietly() {
    let app = TestApp::spawn_with_worker().await;
    let c = &app.client;
    // The welcome mail and the first check are queued; the account is gone before or while they
    // run, and they end as done, not as errors.
    app.register(c, "brief@example.com").await;
    app.add_resource(c, "https://brief.example.com/").await;
    c.delete(app.url("/user"))
        .json(&json!({ "password": PASSWORD }))
        .expect_status(StatusCode::NO_CONTENT)
        .await;
    common::eventually(30, || async {
        let unfinished = app
            .count("SELECT COUNT(*) FROM jobs WHERE status <> 'done'")
            .await;
        (unfinished == 0).then_some(())
    })
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE last_error IS NOT NULL OR attempts > 1")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    app.stop().await;
}
