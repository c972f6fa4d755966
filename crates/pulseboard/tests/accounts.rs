//! Registration, login, refresh, logout, throttling, CSRF and CORS.

mod common;

use common::{eventually, Fetch, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn the_seed_flow_register_then_logged_in_then_logout() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    let body: Value = c
        .get(app.url("/user"))
        .expect_json(StatusCode::UNAUTHORIZED)
        .await;
    assert!(body["message"].as_str().unwrap().len() > 5);

    let reg = app.register(c, "  Alice@Example.com ").await;
    assert_eq!(reg["email"], "alice@example.com");
    assert!(reg["id"].as_i64().unwrap() > 0);
    assert!(reg["access_token"].as_str().unwrap().split('.').count() == 3);

    // Logged in at once, by cookie.
    let me: Value = c.get(app.url("/user")).fetch_json().await;
    assert_eq!(me["email"], "alice@example.com");
    assert!(me.get("password_hash").is_none());

    c.delete(app.url("/session"))
        .expect_status(StatusCode::NO_CONTENT)
        .await;
    c.get(app.url("/user"))
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;
    app.stop().await;
}

#[tokio::test]
async fn register_and_login_accept_form_bodies() {
    let app = TestApp::spawn().await;
    app.client
        .post(app.url("/user"))
        .form(&[("email", "form@example.com"), ("password", PASSWORD)])
        .expect_status(StatusCode::OK)
        .await;
    let other = app.new_client();
    other
        .post(app.url("/session"))
        .form(&[("email", "FORM@example.com"), ("password", PASSWORD)])
        .expect_status(StatusCode::OK)
        .await;
    let me: Value = other.get(app.url("/user")).fetch_json().await;
    assert_eq!(me["email"], "form@example.com");
    app.stop().await;
}

#[tokio::test]
async fn cookies_are_http_only_and_the_refresh_cookie_is_scoped() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .post(app.url("/user"))
        .json(&json!({"email": "c@example.com", "password": PASSWORD}))
        .fetch()
        .await;
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let access = cookies
        .iter()
        .find(|c| c.starts_with("pb_access="))
        .expect("access cookie");
    let refresh = cookies
        .iter()
        .find(|c| c.starts_with("pb_refresh="))
        .expect("refresh cookie");
    for c in [access, refresh] {
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
    }
    assert!(access.contains("Path=/;"), "{access}");
    assert!(refresh.contains("Path=/session;"), "{refresh}");
    // Under /api the refresh cookie follows the prefix.
    let r = app
        .new_client()
        .post(app.url("/api/user"))
        .json(&json!({"email": "d@example.com", "password": PASSWORD}))
        .fetch()
        .await;
    let refresh = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("pb_refresh="))
        .unwrap();
    assert!(refresh.contains("Path=/api/session;"), "{refresh}");
    app.stop().await;
}

#[tokio::test]
async fn duplicate_email_is_409_with_the_seed_message_case_insensitively() {
    let app = TestApp::spawn().await;
    app.register(&app.client, "dup@example.com").await;
    let body: Value = app
        .new_client()
        .post(app.url("/user"))
        .json(&json!({"email": "DUP@example.com", "password": PASSWORD}))
        .expect_json(StatusCode::CONFLICT)
        .await;
    assert_eq!(body["message"], "This email is already taken");
    app.stop().await;
}

#[tokio::test]
async fn registration_validates_with_field_details() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "ok@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"email": "ok@example.com", "password": "OK@example.com"}),
            "password",
        ),
        (
            json!({"email": "ok@example.com", "password": "x".repeat(1025)}),
            "password",
        ),
    ];
    for (body, field) in cases {
        let r = app.client.post(app.url("/user")).json(&body).fetch().await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["error"], "validation_failed");
        assert!(err["details"][field].is_string(), "{err}");
    }
    app.stop().await;
}

#[tokio::test]
async fn malformed_bodies_get_clear_4xx() {
    let app = TestApp::spawn().await;
    let json = Some("application/json");
    let cases = [
        ("{\"email\": ", json, StatusCode::BAD_REQUEST),
        (
            "{\"email\": 5, \"password\": \"xxxxxxxxxx\"}",
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "{\"email\": \"a@b.co\", \"password\": \"xxxxxxxxxx\", \"admin\": true}",
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "email=a",
            Some("text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("{}", None, StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ];
    for (body, content_type, want) in cases {
        let mut req = app.client.post(app.url("/user")).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let r = req.fetch().await;
        assert_eq!(r.status(), want, "{body} as {content_type:?}");
        if body.contains("admin") {
            let msg: Value = r.json().await.unwrap();
            assert!(msg["message"].as_str().unwrap().contains("admin"), "{msg}");
        }
    }
    let huge = format!(
        "{{\"email\": \"a@b.co\", \"password\": \"{}\"}}",
        "x".repeat(200_000)
    );
    let err: Value = app
        .client
        .post(app.url("/user"))
        .header("content-type", "application/json")
        .body(huge)
        .expect_json(StatusCode::PAYLOAD_TOO_LARGE)
        .await;
    assert_eq!(err["error"], "payload_too_large");
    app.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let app = TestApp::spawn().await;
    app.register(&app.client, "known@example.com").await;
    let c = app.new_client();
    let a = c
        .post(app.url("/session"))
        .json(&json!({"email": "known@example.com", "password": "wrong password"}))
        .fetch()
        .await;
    let b = c
        .post(app.url("/session"))
        .json(&json!({"email": "unknown@example.com", "password": "wrong password"}))
        .fetch()
        .await;
    assert_eq!(a.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(b.status(), StatusCode::UNAUTHORIZED);
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a, b);
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_are_throttled_with_retry_after() {
    let app = TestApp::spawn_configured(|c| c.auth.login_max_failures = 3).await;
    app.register(&app.client, "victim@example.com").await;
    let c = app.new_client();
    let attempt = || {
        c.post(app.url("/session"))
            .json(&json!({"email": "victim@example.com", "password": "guess guess"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let r = attempt().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Even the right password waits until the window passes.
    c.post(app.url("/session"))
        .json(&json!({"email": "victim@example.com", "password": PASSWORD}))
        .expect_status(StatusCode::TOO_MANY_REQUESTS)
        .await;
    app.stop().await;
}

fn expired_token(app: &TestApp, user_id: i64, sid: &str) -> String {
    let key = std::fs::read(app.data_dir.join("jwt.key")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": user_id, "sid": sid, "role": "user", "iat": now - 3600, "exp": now - 600}),
        &jsonwebtoken::EncodingKey::from_secret(&key),
    )
    .unwrap()
}

fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn expired_access_token_is_401_and_refresh_brings_it_back() {
    let app = TestApp::spawn().await;
    let reg = app.register(&app.client, "exp@example.com").await;
    let sid = claims(reg["access_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let stale = expired_token(&app, reg["id"].as_i64().unwrap(), &sid);
    let msg: Value = app
        .new_client()
        .get(app.url("/user"))
        .bearer_auth(&stale)
        .expect_json(StatusCode::UNAUTHORIZED)
        .await;
    assert!(
        msg["message"].as_str().unwrap().contains("expired"),
        "{msg}"
    );

    let fresh: Value = app
        .client
        .post(app.url("/session/refresh"))
        .expect_json(StatusCode::OK)
        .await;
    app.new_client()
        .get(app.url("/user"))
        .bearer_auth(fresh["access_token"].as_str().unwrap())
        .expect_status(StatusCode::OK)
        .await;
    app.stop().await;
}

fn refresh_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("pb_refresh=") && !c.starts_with("pb_refresh=;"))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

/// Registers `email` from a client without a cookie jar, so that a test replays cookies by hand;
/// returns that client and the login's first refresh cookie.
async fn register_without_jar(app: &TestApp, email: &str) -> (reqwest::Client, String) {
    let raw = reqwest::Client::new();
    let r = app.register_response(&raw, email).await;
    (raw, refresh_cookie(&r).expect("a refresh cookie"))
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_login() {
    let app = TestApp::spawn_configured(|c| c.auth.refresh_grace_secs = 0).await;
    let (raw, first) = register_without_jar(&app, "reuse@example.com").await;
    let r = raw
        .post(app.url("/session/refresh"))
        .header("cookie", &first)
        .expect_status(StatusCode::OK)
        .await;
    let second = refresh_cookie(&r).expect("rotated token");
    assert_ne!(first, second);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // The thief replays the first token: refused, and the whole login is revoked…
    raw.post(app.url("/session/refresh"))
        .header("cookie", &first)
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;
    // …so the legitimate holder of the second token is logged out too.
    raw.post(app.url("/session/refresh"))
        .header("cookie", &second)
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;
    app.stop().await;
}

#[tokio::test]
async fn two_tabs_refreshing_at_once_stay_logged_in() {
    let app = TestApp::spawn().await;
    let raw = reqwest::Client::new();
    let r = app.register_response(&raw, "tabs@example.com").await;
    let token = refresh_cookie(&r).unwrap();
    let (a, b) = tokio::join!(
        raw.post(app.url("/session/refresh"))
            .header("cookie", &token)
            .send(),
        raw.post(app.url("/session/refresh"))
            .header("cookie", &token)
            .send(),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(b.status(), StatusCode::OK);
    // Exactly one of them rotated the token.
    assert_eq!(
        [refresh_cookie(&a), refresh_cookie(&b)]
            .iter()
            .filter(|c| c.is_some())
            .count(),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn logout_revokes_bearer_tokens_too() {
    let app = TestApp::spawn().await;
    let reg = app.register(&app.client, "bye@example.com").await;
    let token = reg["access_token"].as_str().unwrap();
    let api = reqwest::Client::new();
    assert_eq!(
        api.get(app.url("/user"))
            .bearer_auth(token)
            .fetch_status()
            .await,
        StatusCode::OK
    );
    assert_eq!(
        app.client.delete(app.url("/session")).fetch_status().await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get(app.url("/user"))
            .bearer_auth(token)
            .fetch_status()
            .await,
        StatusCode::UNAUTHORIZED
    );
    // And the refresh token is dead.
    assert_eq!(
        app.client
            .post(app.url("/session/refresh"))
            .fetch_status()
            .await,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn cross_site_writes_are_refused_and_allowed_origins_get_cors() {
    let app = TestApp::spawn().await;
    app.register(&app.client, "csrf@example.com").await;
    app.client
        .post(app.url("/tasks"))
        .header("origin", "http://evil.example")
        .json(&json!({"title": "x"}))
        .expect_status(StatusCode::FORBIDDEN)
        .await;
    app.client
        .post(app.url("/tasks"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"title": "x"}))
        .expect_status(StatusCode::FORBIDDEN)
        .await;
    // The configured web-app origin (nginx on port 80) may call with credentials.
    let r = app
        .client
        .post(app.url("/tasks"))
        .header("origin", "http://localhost")
        .json(&json!({"title": "x"}))
        .expect_status(StatusCode::CREATED)
        .await;
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let pre = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/tasks"))
        .header("origin", "http://localhost")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "content-type")
        .fetch()
        .await;
    assert!(pre.status().is_success());
    assert!(pre.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PATCH"));
    let pre = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/tasks"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .fetch()
        .await;
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}

#[tokio::test]
async fn registration_enqueues_the_welcome_email_and_the_worker_writes_it() {
    let app = TestApp::spawn_with_worker().await;
    app.register(&app.client, "welcome@example.com").await;
    // A failed duplicate registration enqueues nothing (its transaction rolled back).
    app.new_client()
        .post(app.url("/user"))
        .json(&json!({"email": "welcome@example.com", "password": PASSWORD}))
        .expect_status(StatusCode::CONFLICT)
        .await;
    let outbox = app.data_dir.join("outbox");
    let mail = eventually(10, || {
        let outbox = outbox.clone();
        async move {
            let files: Vec<_> = std::fs::read_dir(&outbox).ok()?.flatten().collect();
            (files.len() == 1).then(|| std::fs::read_to_string(files[0].path()).unwrap())
        }
    })
    .await;
    assert!(mail.contains("To: welcome@example.com"), "{mail}");
    assert!(mail.contains("Subject: Welcome to Pulseboard"), "{mail}");
    assert!(mail.contains("text/plain") && mail.contains("text/html"));
    let welcome = "SELECT COUNT(*) FROM jobs WHERE kind = 'welcome_email'";
    assert_eq!(app.count(welcome).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn passwords_never_reach_the_database_in_clear() {
    let app = TestApp::spawn().await;
    app.register(&app.client, "hash@example.com").await;
    let hash = app.user("hash@example.com").await.password_hash;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    app.stop().await;
}

#[tokio::test]
async fn registration_accepts_the_forms_repeat_field_and_names_it_when_it_differs() {
    let app = TestApp::spawn().await;
    // Equal: registers as usual, as JSON and as a form, under each name clients use.
    for (i, field) in [
        "password_repeat",
        "repeat_password",
        "password_confirmation",
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("repeat{i}@example.com");
        let r = app
            .new_client()
            .post(app.url("/user"))
            .json(&json!({"email": email, "password": PASSWORD, field: PASSWORD}))
            .fetch()
            .await;
        assert_eq!(r.status(), StatusCode::OK, "JSON with {field}");
        let form_email = format!("form-repeat{i}@example.com");
        let c = app.new_client();
        let r = c
            .post(app.url("/user"))
            .form(&[
                ("email", form_email.as_str()),
                ("password", PASSWORD),
                (field, PASSWORD),
            ])
            .fetch()
            .await;
        assert_eq!(r.status(), StatusCode::OK, "form with {field}");
        let me: Value = c.get(app.url("/user")).fetch_json().await;
        assert_eq!(me["email"], form_email);
    }

    // Different: 422 naming the field the client sent, and no account.
    for (i, field) in [
        "password_repeat",
        "repeat_password",
        "password_confirmation",
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("mismatch{i}@example.com");
        let json_body = json!({"email": email, "password": PASSWORD, field: "something else"});
        let form_body = [
            ("email", email.as_str()),
            ("password", PASSWORD),
            (field, "something else"),
        ];
        for r in [
            app.client
                .post(app.url("/user"))
                .json(&json_body)
                .fetch()
                .await,
            app.client
                .post(app.url("/user"))
                .form(&form_body)
                .fetch()
                .await,
        ] {
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "validation_failed", "{body}");
            let details = body["details"].as_object().unwrap();
            assert_eq!(details.len(), 1, "{body}");
            assert!(
                details[field].as_str().unwrap().contains("do not match"),
                "{body}"
            );
            assert!(body["message"].as_str().unwrap().contains("do not match"));
        }
        let r = app
            .new_client()
            .post(app.url("/session"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .fetch()
            .await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "no account for {email}"
        );
    }

    // A bad email is still reported along with the mismatch.
    let body: Value = app
        .client
        .post(app.url("/user"))
        .json(&json!({"email": "not-an-email", "password": PASSWORD, "password_repeat": "x"}))
        .expect_json(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    assert!(body["details"]["email"].is_string(), "{body}");
    assert!(body["details"]["password_repeat"].is_string(), "{body}");

    // Any other unknown field is still refused, in both body forms; login takes no repeat field.
    let body: Value = app
        .client
        .post(app.url("/user"))
        .json(&json!({"email": "x1@example.com", "password": PASSWORD, "password2": PASSWORD}))
        .expect_json(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    assert!(
        body["message"].as_str().unwrap().contains("password2"),
        "{body}"
    );
    app.client
        .post(app.url("/user"))
        .form(&[
            ("email", "x2@example.com"),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ])
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    app
        .client
        .post(app.url("/session"))
        .json(&json!({"email": "repeat0@example.com", "password": PASSWORD, "password_repeat": PASSWORD}))
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY).await;
    app.stop().await;
}

#[tokio::test]
async fn put_session_refreshes_like_post_session_refresh() {
    let app = TestApp::spawn_configured(|c| c.auth.refresh_grace_secs = 0).await;
    let (raw, first) = register_without_jar(&app, "put@example.com").await;

    // PUT /session rotates the token and answers what POST /session/refresh answers.
    let r = raw
        .put(app.url("/session"))
        .header("cookie", &first)
        .expect_status(StatusCode::OK)
        .await;
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("pb_access=") && !c.starts_with("pb_access=;")),
        "{cookies:?}"
    );
    let second = refresh_cookie(&r).expect("rotated token");
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&second) && c.contains("Path=/session;")),
        "{cookies:?}"
    );
    assert_ne!(first, second);
    let put: Value = r.json().await.unwrap();
    assert_eq!(put["token_type"], "Bearer");
    assert!(put["expires_in"].as_u64().unwrap() > 0);
    raw.get(app.url("/user"))
        .bearer_auth(put["access_token"].as_str().unwrap())
        .expect_status(StatusCode::OK)
        .await;

    // The same token through the other route: POST /session/refresh rotates it again.
    let r = raw
        .post(app.url("/session/refresh"))
        .header("cookie", &second)
        .expect_status(StatusCode::OK)
        .await;
    let third = refresh_cookie(&r).expect("rotated again");
    let post: Value = r.json().await.unwrap();
    let mut keys: Vec<_> = post.as_object().unwrap().keys().collect();
    let mut put_keys: Vec<_> = put.as_object().unwrap().keys().collect();
    keys.sort();
    put_keys.sort();
    assert_eq!(keys, put_keys);

    // Without a cookie: the same 401.
    raw.put(app.url("/session"))
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Replaying a rotated token through PUT revokes the login…
    let r = raw
        .put(app.url("/session"))
        .header("cookie", &first)
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;
    assert!(r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("pb_refresh=;")));
    // …so the current token is dead too, by either route.
    for r in [
        raw.put(app.url("/session"))
            .header("cookie", &third)
            .fetch()
            .await,
        raw.post(app.url("/session/refresh"))
            .header("cookie", &third)
            .fetch()
            .await,
    ] {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    app.stop().await;
}

#[tokio::test]
async fn put_session_under_the_api_prefix_uses_its_cookie_path() {
    let app = TestApp::spawn().await;
    let c = &app.client; // a cookie jar: the browser's behaviour
    c.post(app.url("/api/user"))
        .json(&json!({"email": "api-put@example.com", "password": PASSWORD}))
        .expect_status(StatusCode::OK)
        .await;
    let r = c
        .put(app.url("/api/session"))
        .expect_status(StatusCode::OK)
        .await;
    let refreshed = refresh_cookie(&r).expect("rotated");
    assert!(r.headers().get_all("set-cookie").iter().any(|v| v
        .to_str()
        .unwrap()
        .starts_with(&refreshed)
        && v.to_str().unwrap().contains("Path=/api/session;")));
    c.get(app.url("/api/user"))
        .expect_status(StatusCode::OK)
        .await;
    app.stop().await;
}
