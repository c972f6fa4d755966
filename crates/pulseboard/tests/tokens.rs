//! Personal API tokens: `POST/GET /tokens`, `DELETE /tokens/{id}`, and requests made with them.

mod common;

use common::{Fetch, TestApp, PASSWORD};
use pulseboard_domain::{Email, Role, Timestamp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A client without cookies: what a script holding only a token is.
fn script() -> reqwest::Client {
    reqwest::Client::new()
}

async fn create_token(app: &TestApp, c: &reqwest::Client, body: Value) -> Value {
    let r = c.post(app.url("/tokens")).json(&body).fetch().await;
    assert_eq!(r.status(), StatusCode::CREATED, "create token {body}");
    r.json().await.unwrap()
}

async fn token_with(app: &TestApp, c: &reqwest::Client, scopes: &[&str]) -> (i64, String) {
    let t = create_token(app, c, json!({"name": "script", "scopes": scopes})).await;
    (
        t["id"].as_i64().unwrap(),
        t["token"].as_str().unwrap().to_owned(),
    )
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = req.fetch().await;
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn list_tokens(app: &TestApp, c: &reqwest::Client) -> Vec<Value> {
    let r = c
        .get(app.url("/tokens"))
        .expect_status(StatusCode::OK)
        .await;
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_token_is_shown_once_stored_hashed_and_works_within_its_scopes() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "owner@example.com").await;
    let created = create_token(
        &app,
        c,
        json!({"name": " ci ", "scopes": ["tasks:read", "tasks:write", "resources:read"],
               "expires_in_days": 30}),
    )
    .await;
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("pb_") && secret.len() > 40, "{secret}");
    assert_eq!(created["name"], "ci");
    assert_eq!(
        created["scopes"],
        json!(["tasks:read", "tasks:write", "resources:read"])
    );
    assert!(created["expires_at"].is_string(), "{created}");
    let (created_at, expires_at): (i64, Option<i64>) =
        sqlx::query_as("SELECT created_at, expires_at FROM api_tokens WHERE id = $1")
            .bind(created["id"].as_i64().unwrap())
            .fetch_one(&mut *app.sql().await)
            .await
            .unwrap();
    assert_eq!(expires_at, Some(created_at + 30 * 86_400_000));

    // Never again: not in the list, not in the database.
    let listed = list_tokens(&app, c).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    assert!(listed[0].get("token").is_none(), "{}", listed[0]);
    assert_eq!(listed[0]["last_used_at"], Value::Null);
    assert!(!serde_json::to_string(&listed).unwrap().contains(&secret));
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap();
    assert_ne!(stored, secret);
    assert_eq!(stored.len(), 64, "a SHA-256 in hex");

    let s = script();
    let (status, task) = send(
        s.post(app.url("/tasks"))
            .bearer_auth(&secret)
            .json(&json!({"title": "from a script"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let (status, tasks) = send(s.get(app.url("/tasks")).bearer_auth(&secret)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tasks[0]["title"], "from a script");
    // Under /api too, and the browser sees the script's task.
    let (status, _) = send(
        s.get(app.url(&format!("/api/tasks/{}", task["id"])))
            .bearer_auth(&secret),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(s.get(app.url("/resources")).bearer_auth(&secret)).await;
    assert_eq!(status, StatusCode::OK);

    // Out of scope: 403 naming the scope, and nothing was created.
    let (status, body) = send(
        s.post(app.url("/resources"))
            .bearer_auth(&secret)
            .json(&json!({"url": "https://example.com/"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("resources:write"),
        "{body}"
    );
    let (_, resources) = send(c.get(app.url("/resources"))).await;
    assert_eq!(
        resources["items"].as_array().map(Vec::len),
        Some(0),
        "{resources}"
    );
    let (status, _) = send(s.get(app.url("/admin/queues")).bearer_auth(&secret)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(s.get(app.url("/logs")).bearer_auth(&secret)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A token with resources:write adds a resource.
    let (_, writer) = token_with(&app, c, &["resources:write"]).await;
    let (status, body) = send(
        s.post(app.url("/resources"))
            .bearer_auth(&writer)
            .json(&json!({"url": "https://example.com/"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = send(s.get(app.url("/tasks")).bearer_auth(&writer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn a_token_cannot_manage_tokens_or_the_account() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "careful@example.com").await;
    let all = [
        "tasks:read",
        "tasks:write",
        "resources:read",
        "resources:write",
        "status:write",
    ];
    let (id, secret) = token_with(&app, c, &all).await;
    let s = script();
    let refused = [
        s.get(app.url("/tokens")),
        s.post(app.url("/tokens"))
            .json(&json!({"name": "more", "scopes": ["tasks:read"]})),
        s.delete(app.url(&format!("/tokens/{id}"))),
        s.patch(app.url("/user")).json(&json!({"locale": "ru"})),
        s.delete(app.url("/user"))
            .json(&json!({"password": PASSWORD})),
        s.get(app.url("/user/export")),
        s.delete(app.url("/session")),
    ];
    for req in refused {
        let req = req.bearer_auth(&secret).build().unwrap();
        let what = format!("{} {}", req.method(), req.url().path());
        let r = s.execute(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
    }
    // Nothing happened: one token, the account and its settings as they were.
    assert_eq!(list_tokens(&app, c).await.len(), 1);
    let (status, me) = send(s.get(app.url("/user")).bearer_auth(&secret)).await;
    assert_eq!(status, StatusCode::OK, "who am I works with any token");
    assert_eq!(me["email"], "careful@example.com");
    assert_eq!(me["locale"], "en");
    app.stop().await;
}

#[tokio::test]
async fn revoked_expired_and_unknown_tokens_get_401_and_others_tokens_404() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "a@example.com").await;
    let (id, secret) = token_with(&app, c, &["tasks:read"]).await;
    let (expiring_id, expiring) = token_with(&app, c, &["tasks:read"]).await;
    let s = script();
    let (status, _) = send(s.get(app.url("/tasks")).bearer_auth(&secret)).await;
    assert_eq!(status, StatusCode::OK);

    // Another user can neither see nor revoke it.
    let other = app.new_client();
    app.register(&other, "b@example.com").await;
    assert!(list_tokens(&app, &other).await.is_empty());
    for path in [
        format!("/tokens/{id}"),
        "/tokens/abc".into(),
        "/tokens/0".into(),
    ] {
        let (status, _) = send(other.delete(app.url(&path))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = send(s.get(app.url("/tasks")).bearer_auth(&secret)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "still valid after the other user's attempt"
    );

    // Revoked: 401 at the next request, with the Bearer challenge.
    c.delete(app.url(&format!("/tokens/{id}")))
        .expect_status(StatusCode::NO_CONTENT)
        .await;
    let r = s
        .get(app.url("/tasks"))
        .bearer_auth(&secret)
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let (status, _) = send(c.delete(app.url(&format!("/tokens/{id}")))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already revoked");

    // Expired: backdated past its expiry.
    sqlx::query("UPDATE api_tokens SET expires_at = $1 WHERE id = $2")
        .bind(Timestamp::now() - 1000)
        .bind(expiring_id)
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    let (status, body) = send(s.get(app.url("/tasks")).bearer_auth(&expiring)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    // Still listed (so the owner sees why a script stopped), until revoked.
    assert_eq!(list_tokens(&app, c).await.len(), 1);

    let forged = format!("pb_{}", "A".repeat(43));
    let (status, _) = send(s.get(app.url("/tasks")).bearer_auth(&forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    let (status, _) = send(
        script()
            .post(app.url("/tokens"))
            .json(&json!({"name": "x", "scopes": ["tasks:read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.register(c, "typo@example.com").await;
    let cases = [
        (json!({"name": "", "scopes": ["tasks:read"]}), "name"),
        (json!({"name": "   ", "scopes": ["tasks:read"]}), "name"),
        (
            json!({"name": "x".repeat(101), "scopes": ["tasks:read"]}),
            "name",
        ),
        (json!({"name": "x", "scopes": ["tasks:delete"]}), "scopes"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x", "scopes": "tasks:read"}), "scopes"),
        (json!({"name": "x", "scopes": ["admin"]}), "scopes"),
        (
            json!({"name": "x", "scopes": ["tasks:read"], "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "scopes": ["tasks:read"], "expires_in_days": -5}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "scopes": ["tasks:read"], "expires_in_days": 100000}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "scopes": ["tasks:read"], "expires_in_days": "30"}),
            "expires_in_days",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = send(c.post(app.url("/tokens")).json(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(err["details"].get(field).is_some(), "{body} → {err}");
    }
    assert!(list_tokens(&app, c).await.is_empty());
    // No expiry is allowed: the token never expires.
    let t = create_token(
        &app,
        c,
        json!({"name": "forever", "scopes": ["tasks:read"]}),
    )
    .await;
    assert_eq!(t["expires_at"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn admin_needs_the_scope_and_the_role_and_a_demotion_holds_at_once() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "root@example.com").await;
    let email = Email::parse("root@example.com").unwrap();
    pulseboard_storage::users::set_role(&app.app.db, &email, Role::Admin, Timestamp::now())
        .await
        .unwrap();
    let (_, admin) = token_with(&app, c, &["admin"]).await;
    let (_, plain) = token_with(&app, c, &["tasks:read"]).await;
    let s = script();
    for path in ["/admin/queues", "/logs"] {
        let (status, _) = send(s.get(app.url(path)).bearer_auth(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let (status, _) = send(s.get(app.url(path)).bearer_auth(&plain)).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{path} without the admin scope"
        );
    }
    // `admin` alone does not reach the user's tasks.
    let (status, _) = send(s.get(app.url("/tasks")).bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    pulseboard_storage::users::set_role(&app.app.db, &email, Role::User, Timestamp::now())
        .await
        .unwrap();
    let (status, _) = send(s.get(app.url("/admin/queues")).bearer_auth(&admin)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "demoted: the token's admin scope is void"
    );
    app.stop().await;
}

#[tokio::test]
async fn deleting_the_account_revokes_its_tokens_and_the_export_lists_them_without_secrets() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "leaving@example.com").await;
    let (_, secret) = token_with(&app, c, &["tasks:read"]).await;

    let r = c
        .get(app.url("/user/export"))
        .expect_status(StatusCode::OK)
        .await;
    let text = r.text().await.unwrap();
    assert!(!text.contains(&secret));
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["tokens"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["tokens"][0]["name"], "script");
    assert_eq!(doc["tokens"][0]["scopes"], json!(["tasks:read"]));
    assert!(doc["tokens"][0].get("token").is_none());

    c.delete(app.url("/user"))
        .json(&json!({"password": PASSWORD}))
        .expect_status(StatusCode::NO_CONTENT)
        .await;
    let (status, _) = send(script().get(app.url("/tasks")).bearer_auth(&secret)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap();
    assert_eq!(left, 0);
    app.stop().await;
}

#[tokio::test]
async fn twenty_parallel_requests_with_one_token_all_succeed_and_record_the_use() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "busy@example.com").await;
    let (id, secret) = token_with(&app, c, &["tasks:read", "tasks:write"]).await;
    let s = script();
    let before = Timestamp::now();
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let (s, secret, url) = (s.clone(), secret.clone(), app.url("/tasks"));
            tokio::spawn(async move {
                let req = if i % 2 == 0 {
                    s.get(url)
                } else {
                    s.post(url).json(&json!({"title": format!("task {i}")}))
                };
                req.bearer_auth(&secret).fetch_status().await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(r.await.unwrap());
    }
    for (i, status) in statuses.iter().enumerate() {
        let want = if i % 2 == 0 {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        assert_eq!(*status, want, "request {i}");
    }
    let used: Option<i64> = sqlx::query_scalar("SELECT last_used_at FROM api_tokens WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap();
    let used = used.expect("last_used_at is set");
    assert!(used >= before - 1000 && used <= Timestamp::now(), "{used}");
    let listed = list_tokens(&app, c).await;
    assert!(listed[0]["last_used_at"].is_string(), "{}", listed[0]);

    // Within the minute, another use does not write again.
    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(used - 10_000)
        .bind(id)
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    let (status, _) = send(s.get(app.url("/tasks")).bearer_auth(&secret)).await;
    assert_eq!(status, StatusCode::OK);
    let again: Option<i64> =
        sqlx::query_scalar("SELECT last_used_at FROM api_tokens WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *app.sql().await)
            .await
            .unwrap();
    assert_eq!(again, Some(used - 10_000));
    app.stop().await;
}

#[tokio::test]
async fn a_token_is_not_refused_as_cross_site_but_a_cookie_still_is() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "integrator@example.com").await;
    let (_, secret) = token_with(&app, c, &["tasks:write"]).await;
    // A page on another origin holding a token (no cookies): not a forged request.
    let (status, body) = send(
        script()
            .post(app.url("/tasks"))
            .header("origin", "https://elsewhere.example")
            .bearer_auth(&secret)
            .json(&json!({"title": "from another site"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The browser's cookie from a foreign page is refused, as before.
    let (status, _) = send(
        c.post(app.url("/tasks"))
            .header("origin", "https://elsewhere.example")
            .json(&json!({"title": "forged"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A token beside the cookie does not lift the check either.
    let (status, _) = send(
        c.post(app.url("/tasks"))
            .header("origin", "https://elsewhere.example")
            .bearer_auth(&secret)
            .json(&json!({"title": "forged"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_tokens_and_their_scheme() {
    let app = TestApp::spawn().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).fetch_json().await;
    for (path, method) in [
        ("/tokens", "get"),
        ("/tokens", "post"),
        ("/tokens/{id}", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["apiToken"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["paths"]["/tasks"]["post"]["x-scope"], "tasks:write");
    app.stop().await;
}
