//! Registration, login, refresh, logout, throttling, CSRF and CORS.

mod common;

use common::{eventually, Options, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn the_seed_flow_register_then_logged_in_then_logout() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    let r = c.get(app.url("/user")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().len() > 5);

    let reg = app.register(c, "  Alice@Example.com ").await;
    assert_eq!(reg["email"], "alice@example.com");
    assert!(reg["id"].as_i64().unwrap() > 0);
    assert!(reg["access_token"].as_str().unwrap().split('.').count() == 3);

    // Logged in at once, by cookie.
    let me: Value = c
        .get(app.url("/user"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "alice@example.com");
    assert!(me.get("password_hash").is_none());

    let r = c.delete(app.url("/session")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c.get(app.url("/user")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn register_and_login_accept_form_bodies() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .post(app.url("/user"))
        .form(&[("email", "form@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let other = app.new_client();
    let r = other
        .post(app.url("/session"))
        .form(&[("email", "FORM@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = other
        .get(app.url("/user"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
        .send()
        .await
        .unwrap();
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
        .send()
        .await
        .unwrap();
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
    let r = app
        .new_client()
        .post(app.url("/user"))
        .json(&json!({"email": "DUP@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: Value = r.json().await.unwrap();
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
        let r = app
            .client
            .post(app.url("/user"))
            .json(&body)
            .send()
            .await
            .unwrap();
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
    let post = |body: &'static str, ct: Option<&'static str>| {
        let mut req = app.client.post(app.url("/user")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let r = post("{\"email\": ", Some("application/json"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(
        "{\"email\": 5, \"password\": \"xxxxxxxxxx\"}",
        Some("application/json"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = post(
        "{\"email\": \"a@b.co\", \"password\": \"xxxxxxxxxx\", \"admin\": true}",
        Some("application/json"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let msg: Value = r.json().await.unwrap();
    assert!(msg["message"].as_str().unwrap().contains("admin"), "{msg}");
    let r = post("email=a", Some("text/plain")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = post("{}", None).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(
        "{{\"email\": \"a@b.co\", \"password\": \"{}\"}}",
        "x".repeat(200_000)
    );
    let r = app
        .client
        .post(app.url("/user"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let err: Value = r.json().await.unwrap();
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
        .send()
        .await
        .unwrap();
    let b = c
        .post(app.url("/session"))
        .json(&json!({"email": "unknown@example.com", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(b.status(), StatusCode::UNAUTHORIZED);
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a, b);
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_are_throttled_with_retry_after() {
    let app = TestApp::spawn_with(
        Options {
            worker: false,
            scheduler: false,
        },
        |c| c.auth.login_max_failures = 3,
    )
    .await;
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
    let r = c
        .post(app.url("/session"))
        .json(&json!({"email": "victim@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
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
    let r = app
        .new_client()
        .get(app.url("/user"))
        .bearer_auth(&stale)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let msg: Value = r.json().await.unwrap();
    assert!(
        msg["message"].as_str().unwrap().contains("expired"),
        "{msg}"
    );

    let r = app
        .client
        .post(app.url("/session/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let fresh: Value = r.json().await.unwrap();
    let r = app
        .new_client()
        .get(app.url("/user"))
        .bearer_auth(fresh["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
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

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_login() {
    let app = TestApp::spawn_with(
        Options {
            worker: false,
            scheduler: false,
        },
        |c| c.auth.refresh_grace_secs = 0,
    )
    .await;
    let raw = reqwest::Client::new(); // no cookie jar: we replay cookies by hand
    let r = raw
        .post(app.url("/user"))
        .json(&json!({"email": "reuse@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let first = refresh_cookie(&r).unwrap();
    let r = raw
        .post(app.url("/session/refresh"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let second = refresh_cookie(&r).expect("rotated token");
    assert_ne!(first, second);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // The thief replays the first token: refused, and the whole login is revoked…
    let r = raw
        .post(app.url("/session/refresh"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // …so the legitimate holder of the second token is logged out too.
    let r = raw
        .post(app.url("/session/refresh"))
        .header("cookie", &second)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn two_tabs_refreshing_at_once_stay_logged_in() {
    let app = TestApp::spawn().await;
    let raw = reqwest::Client::new();
    let r = raw
        .post(app.url("/user"))
        .json(&json!({"email": "tabs@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
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
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.client
            .delete(app.url("/session"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get(app.url("/user"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // And the refresh token is dead.
    assert_eq!(
        app.client
            .post(app.url("/session/refresh"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn cross_site_writes_are_refused_and_allowed_origins_get_cors() {
    let app = TestApp::spawn().await;
    app.register(&app.client, "csrf@example.com").await;
    let r = app
        .client
        .post(app.url("/tasks"))
        .header("origin", "http://evil.example")
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .client
        .post(app.url("/tasks"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The configured web-app origin (nginx on port 80) may call with credentials.
    let r = app
        .client
        .post(app.url("/tasks"))
        .header("origin", "http://localhost")
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
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
        .send()
        .await
        .unwrap();
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
        .send()
        .await
        .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}

#[tokio::test]
async fn registration_enqueues_the_welcome_email_and_the_worker_writes_it() {
    let app = TestApp::spawn_with_worker().await;
    app.register(&app.client, "welcome@example.com").await;
    // A failed duplicate registration enqueues nothing (its transaction rolled back).
    let r = app
        .new_client()
        .post(app.url("/user"))
        .json(&json!({"email": "welcome@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
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
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE kind = 'welcome_email'")
        .fetch_one(app.app.db.pool())
        .await
        .unwrap();
    assert_eq!(n.0, 1);
    app.stop().await;
}

#[tokio::test]
async fn passwords_never_reach_the_database_in_clear() {
    let app = TestApp::spawn().await;
    app.register(&app.client, "hash@example.com").await;
    let (hash,): (String,) =
        sqlx::query_as("SELECT password_hash FROM users WHERE email = 'hash@example.com'")
            .fetch_one(app.app.db.pool())
            .await
            .unwrap();
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
            .send()
            .await
            .unwrap();
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
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "form with {field}");
        let me: Value = c
            .get(app.url("/user"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
                .send()
                .await
                .unwrap(),
            app.client
                .post(app.url("/user"))
                .form(&form_body)
                .send()
                .await
                .unwrap(),
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
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "no account for {email}"
        );
    }

    // A bad email is still reported along with the mismatch.
    let r = app
        .client
        .post(app.url("/user"))
        .json(&json!({"email": "not-an-email", "password": PASSWORD, "password_repeat": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(body["details"]["email"].is_string(), "{body}");
    assert!(body["details"]["password_repeat"].is_string(), "{body}");

    // Any other unknown field is still refused, in both body forms; login takes no repeat field.
    let r = app
        .client
        .post(app.url("/user"))
        .json(&json!({"email": "x1@example.com", "password": PASSWORD, "password2": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("password2"),
        "{body}"
    );
    let r = app
        .client
        .post(app.url("/user"))
        .form(&[
            ("email", "x2@example.com"),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .client
        .post(app.url("/session"))
        .json(&json!({"email": "repeat0@example.com", "password": PASSWORD, "password_repeat": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

#[tokio::test]
async fn put_session_refreshes_like_post_session_refresh() {
    let app = TestApp::spawn_with(
        Options {
            worker: false,
            scheduler: false,
        },
        |c| c.auth.refresh_grace_secs = 0,
    )
    .await;
    let raw = reqwest::Client::new(); // no cookie jar: we replay cookies by hand
    let r = raw
        .post(app.url("/user"))
        .json(&json!({"email": "put@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let first = refresh_cookie(&r).unwrap();

    // PUT /session rotates the token and answers what POST /session/refresh answers.
    let r = raw
        .put(app.url("/session"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
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
    let r = raw
        .get(app.url("/user"))
        .bearer_auth(put["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The same token through the other route: POST /session/refresh rotates it again.
    let r = raw
        .post(app.url("/session/refresh"))
        .header("cookie", &second)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let third = refresh_cookie(&r).expect("rotated again");
    let post: Value = r.json().await.unwrap();
    let mut keys: Vec<_> = post.as_object().unwrap().keys().collect();
    let mut put_keys: Vec<_> = put.as_object().unwrap().keys().collect();
    keys.sort();
    put_keys.sort();
    assert_eq!(keys, put_keys);

    // Without a cookie: the same 401.
    let r = raw.put(app.url("/session")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Replaying a rotated token through PUT revokes the login…
    let r = raw
        .put(app.url("/session"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("pb_refresh=;")));
    // …so the current token is dead too, by either route.
    for r in [
        raw.put(app.url("/session"))
            .header("cookie", &third)
            .send()
            .await
            .unwrap(),
        raw.post(app.url("/session/refresh"))
            .header("cookie", &third)
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    app.stop().await;
}

#[tokio::test]
async fn put_session_under_the_api_prefix_uses_its_cookie_path() {
    let app = TestApp::spawn().await;
    let c = &app.client; // a cookie jar: the browser's behaviour
    let r = c
        .post(app.url("/api/user"))
        .json(&json!({"email": "api-put@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c.put(app.url("/api/session")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let refreshed = refresh_cookie(&r).expect("rotated");
    assert!(r.headers().get_all("set-cookie").iter().any(|v| v
        .to_str()
        .unwrap()
        .starts_with(&refreshed)
        && v.to_str().unwrap().contains("Path=/api/session;")));
    let r = c.get(app.url("/api/user")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}
