//! Tasks: CRUD, done stamps, ordering, isolation between users, limits.

mod common;

use common::{Fetch, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn guests_get_401_on_tasks() {
    let app = TestApp::spawn().await;
    for r in [
        app.client.get(app.url("/tasks")).fetch().await,
        app.client
            .post(app.url("/tasks"))
            .json(&json!({"title": "x"}))
            .fetch()
            .await,
    ] {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    app.stop().await;
}

#[tokio::test]
async fn crud_with_done_stamps_and_filters() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "tasks@example.com").await;

    let mut ids = vec![];
    for title in ["first", "second", "third"] {
        let t: Value = c
            .post(app.url("/tasks"))
            .json(&json!({"title": title, "description": "line 1\nline 2"}))
            .expect_json(StatusCode::CREATED)
            .await;
        assert_eq!(t["done"], false);
        assert!(t["done_at"].is_null());
        ids.push(t["id"].as_i64().unwrap());
    }
    let all: Vec<Value> = c.get(app.url("/tasks")).fetch_json().await;
    assert_eq!(
        all.iter()
            .map(|t| t["title"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["first", "second", "third"]
    );

    // Mark done: stamped; filters split the lists.
    let t: Value = c
        .patch(app.url(&format!("/tasks/{}", ids[1])))
        .json(&json!({"done": true}))
        .fetch_json()
        .await;
    assert_eq!(t["done"], true);
    let stamped = t["done_at"].as_str().unwrap().to_owned();
    let done: Vec<Value> = c.get(app.url("/tasks?done=true")).fetch_json().await;
    let undone: Vec<Value> = c.get(app.url("/tasks?done=false")).fetch_json().await;
    assert_eq!(done.len(), 1);
    assert_eq!(undone.len(), 2);
    // Marking done again keeps the first stamp; editing text keeps it too.
    let t: Value = c
        .patch(app.url(&format!("/tasks/{}", ids[1])))
        .json(&json!({"done": true, "title": "second!"}))
        .fetch_json()
        .await;
    assert_eq!(t["done_at"], stamped.as_str());
    assert_eq!(t["title"], "second!");
    // Un-marking clears it.
    let t: Value = c
        .patch(app.url(&format!("/tasks/{}", ids[1])))
        .json(&json!({"done": false}))
        .fetch_json()
        .await;
    assert!(t["done_at"].is_null());

    // Reorder: move the third before the first.
    let first_pos = all[0]["position"].as_i64().unwrap();
    c.patch(app.url(&format!("/tasks/{}", ids[2])))
        .json(&json!({"position": first_pos - 1}))
        .fetch()
        .await;
    let all: Vec<Value> = c.get(app.url("/tasks")).fetch_json().await;
    assert_eq!(all[0]["id"], ids[2]);

    // Form bodies work for tasks too, and the description survives.
    let t: Value = c
        .patch(app.url(&format!("/tasks/{}", ids[0])))
        .form(&[("description", "from a form")])
        .fetch_json()
        .await;
    assert_eq!(t["description"], "from a form");
    let t: Value = c
        .get(app.url(&format!("/tasks/{}", ids[0])))
        .fetch_json()
        .await;
    assert_eq!(t["description"], "from a form");

    assert_eq!(
        c.delete(app.url(&format!("/tasks/{}", ids[0])))
            .fetch_status()
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.get(app.url(&format!("/tasks/{}", ids[0])))
            .fetch_status()
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.delete(app.url(&format!("/tasks/{}", ids[0])))
            .fetch_status()
            .await,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

/// The list is read in one aggregated statement (see `storage::tasks::list`), a task's page with
/// the row mapping: both must show the same task, whatever its text holds.
#[tokio::test]
async fn the_list_shows_every_task_exactly_as_its_own_page_does() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "list@example.com").await;
    let empty: Value = c.get(app.url("/tasks")).fetch_json().await;
    assert_eq!(empty, json!([]));

    let texts = [
        ("quotes \"and\" back\\slash", "tab\there\r\nnew line"),
        ("Задача по-русски", "ёмкость — тире, «кавычки»"),
        ("emoji 🚀 and </script>", ""),
        ("{\"looks\": [\"like json\"]}", "null"),
    ];
    let mut ids = vec![];
    for (title, description) in texts {
        let t: Value = c
            .post(app.url("/tasks"))
            .json(&json!({"title": title, "description": description}))
            .fetch_json()
            .await;
        assert_eq!(t["title"], title);
        assert_eq!(t["description"], description);
        ids.push(t["id"].as_i64().unwrap());
    }
    for id in [ids[1], ids[3]] {
        c.patch(app.url(&format!("/tasks/{id}")))
            .json(&json!({"done": true}))
            .fetch()
            .await;
    }
    for (query, want) in [
        ("", vec![ids[0], ids[1], ids[2], ids[3]]),
        ("?done=true", vec![ids[1], ids[3]]),
        ("?done=false", vec![ids[0], ids[2]]),
    ] {
        let list: Vec<Value> = c.get(app.url(&format!("/tasks{query}"))).fetch_json().await;
        assert_eq!(
            list.iter()
                .map(|t| t["id"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            want,
            "{query}"
        );
        for listed in list {
            let page: Value = c
                .get(app.url(&format!("/tasks/{}", listed["id"])))
                .fetch_json()
                .await;
            assert_eq!(listed, page);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn users_cannot_see_or_touch_each_others_tasks() {
    let app = TestApp::spawn().await;
    let alice = app.new_client();
    let bob = app.new_client();
    app.register(&alice, "alice@example.com").await;
    app.register(&bob, "bob@example.com").await;
    let t: Value = alice
        .post(app.url("/tasks"))
        .json(&json!({"title": "secret"}))
        .fetch_json()
        .await;
    let url = app.url(&format!("/tasks/{}", t["id"]));
    let bobs: Vec<Value> = bob.get(app.url("/tasks")).fetch_json().await;
    assert!(bobs.is_empty());
    assert_eq!(bob.get(&url).fetch_status().await, StatusCode::NOT_FOUND);
    assert_eq!(
        bob.patch(&url)
            .json(&json!({"title": "mine"}))
            .fetch_status()
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(bob.delete(&url).fetch_status().await, StatusCode::NOT_FOUND);
    let still: Value = alice.get(&url).fetch_json().await;
    assert_eq!(still["title"], "secret");
    app.stop().await;
}

#[tokio::test]
async fn limits_and_bad_input_are_clear_errors() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "limits@example.com").await;
    let cases = [
        (json!({"title": ""}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": "x".repeat(201)}), "title"),
        (
            json!({"title": "ok", "description": "y".repeat(10_001)}),
            "description",
        ),
    ];
    for (body, field) in cases {
        let e: Value = c
            .post(app.url("/tasks"))
            .json(&body)
            .expect_json(StatusCode::UNPROCESSABLE_ENTITY)
            .await;
        assert!(e["details"][field].is_string(), "{e}");
    }
    c.post(app.url("/tasks"))
        .json(&json!({"description": "no title"}))
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    let t: Value = c
        .post(app.url("/tasks"))
        .json(&json!({"title": "ok"}))
        .fetch_json()
        .await;
    let url = app.url(&format!("/tasks/{}", t["id"]));
    c.patch(&url)
        .json(&json!({"done": "yes"}))
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    c.patch(&url)
        .json(&json!({"position": 1i64 << 60}))
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    c.patch(&url)
        .json(&json!({"owner": 2}))
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    assert_eq!(
        c.get(app.url("/tasks/abc")).fetch_status().await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get(app.url("/tasks/99999999999999999999"))
            .fetch_status()
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get(app.url("/tasks?done=maybe")).fetch_status().await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    app.stop().await;
}

#[tokio::test]
async fn the_task_list_has_an_etag_and_answers_if_none_match_with_304() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "etag@example.com").await;
    let mut ids = vec![];
    for title in ["one", "two"] {
        let t: Value = c
            .post(app.url("/tasks"))
            .json(&json!({ "title": title }))
            .fetch_json()
            .await;
        ids.push(t["id"].as_i64().unwrap());
    }

    let (status, tag, cache, body) = common::conditional_get(c, app.url("/tasks"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"'),
        "strong: {tag}"
    );
    assert_eq!(cache, "private, no-cache");
    let list: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(list.len(), 2);
    // The same body gives the same tag (it is computed from the bytes, not stored).
    let (_, again, _, same) = common::conditional_get(c, app.url("/tasks"), None).await;
    assert_eq!((again.as_str(), &same), (tag.as_str(), &body));

    // Revalidation: the tag alone, weak, in a list, or `*` → 304 with the tag and no body.
    for inm in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"other\", W/\"x\",{tag}"),
        "*".to_owned(),
    ] {
        let (status, etag, cache, body) =
            common::conditional_get(c, app.url("/tasks"), Some(&inm)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "If-None-Match: {inm}");
        assert_eq!(etag, tag);
        assert_eq!(cache, "private, no-cache");
        assert!(body.is_empty());
    }
    // Under /api too.
    let (status, ..) = common::conditional_get(c, app.url("/api/tasks"), Some(&tag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // Tags that name nothing current → the full answer.
    for inm in ["\"other\"", "W/\"other\", \"x\"", &tag[1..tag.len() - 1]] {
        let (status, etag, _, got) = common::conditional_get(c, app.url("/tasks"), Some(inm)).await;
        assert_eq!(status, StatusCode::OK, "If-None-Match: {inm}");
        assert_eq!((etag.as_str(), &got), (tag.as_str(), &body));
    }
    // A filtered list is another body, with its own tag.
    let (status, done_tag, _, done) =
        common::conditional_get(c, app.url("/tasks?done=true"), Some(&tag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done, b"[]");
    assert_ne!(done_tag, tag);

    // After a change the tag differs and the old one gets the full answer.
    c.patch(app.url(&format!("/tasks/{}", ids[0])))
        .json(&json!({"done": true}))
        .expect_status(StatusCode::OK)
        .await;
    let (status, new_tag, _, changed) =
        common::conditional_get(c, app.url("/tasks"), Some(&tag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(new_tag, tag);
    let list: Vec<Value> = serde_json::from_slice(&changed).unwrap();
    assert_eq!(list[0]["done"], true);
    let (status, ..) =
        common::conditional_get(c, app.url("/tasks"), Some(&format!("{tag}, {new_tag}"))).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // Another user's list has its own tag: the first user's tag is no 304 for them.
    let bob = app.new_client();
    app.register(&bob, "etag-bob@example.com").await;
    bob.post(app.url("/tasks"))
        .json(&json!({"title": "bob's"}))
        .expect_status(StatusCode::CREATED)
        .await;
    let (status, bob_tag, _, bob_body) =
        common::conditional_get(&bob, app.url("/tasks"), Some(&new_tag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(bob_tag, new_tag);
    let list: Vec<Value> = serde_json::from_slice(&bob_body).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["title"], "bob's");
    // And a guest with a valid tag is still 401, never 304.
    let (status, ..) =
        common::conditional_get(&app.new_client(), app.url("/tasks"), Some(&new_tag)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, ..) =
        common::conditional_get(&app.new_client(), app.url("/tasks"), Some("*")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Idempotency-Key on POST /tasks

async fn post_task_with_key(
    app: &TestApp,
    c: &reqwest::Client,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    c.post(app.url("/tasks"))
        .header("Idempotency-Key", key)
        .json(body)
        .fetch()
        .await
}

async fn task_count(app: &TestApp, c: &reqwest::Client) -> usize {
    let all: Vec<Value> = c.get(app.url("/tasks")).fetch_json().await;
    all.len()
}

#[tokio::test]
async fn idempotency_key_replays_the_first_task_and_refuses_another_body() {
    let app = TestApp::spawn().await;
    let alice = app.new_client();
    let bob = app.new_client();
    app.register(&alice, "idem-alice@example.com").await;
    app.register(&bob, "idem-bob@example.com").await;
    let body = json!({"title": "pay rent", "description": "once"});

    let first = post_task_with_key(&app, &alice, "rent-2026-11", &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    // Under /api too: the same request, answered from the record.
    for path in ["/tasks", "/api/tasks"] {
        let again = alice
            .post(app.url(path))
            .header("Idempotency-Key", "rent-2026-11")
            .json(&body)
            .expect_status(StatusCode::CREATED)
            .await;
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let again: Value = again.json().await.unwrap();
        assert_eq!(again, first);
    }
    assert_eq!(task_count(&app, &alice).await, 1);

    // The same key with another body: 422 naming the header, nothing created.
    let other = post_task_with_key(&app, &alice, "rent-2026-11", &json!({"title": "x"})).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = other.json().await.unwrap();
    assert!(e["message"].as_str().unwrap().contains("Idempotency-Key"));
    assert!(e["details"]["Idempotency-Key"].is_string());
    assert_eq!(task_count(&app, &alice).await, 1);

    // Another user's key is their own.
    let bobs = post_task_with_key(&app, &bob, "rent-2026-11", &body).await;
    assert_eq!(bobs.status(), StatusCode::CREATED);
    assert!(bobs.headers().get("idempotent-replayed").is_none());
    let bobs: Value = bobs.json().await.unwrap();
    assert_ne!(bobs["id"], first["id"]);
    assert_eq!(task_count(&app, &bob).await, 1);
    assert_eq!(task_count(&app, &alice).await, 1);

    // Keys: 1–255 visible ASCII characters.
    for bad in [String::new(), "a b".into(), "é".into(), "k".repeat(256)] {
        let r = alice
            .post(app.url("/tasks"))
            .header("Idempotency-Key", bad.as_bytes())
            .json(&body)
            .fetch()
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "key {bad:?}");
        let e: Value = r.json().await.unwrap();
        assert!(e["message"].as_str().unwrap().contains("Idempotency-Key"));
    }
    let longest = post_task_with_key(&app, &alice, &"k".repeat(255), &body).await;
    assert_eq!(longest.status(), StatusCode::CREATED);
    // Without a key nothing changes: each POST creates.
    for _ in 0..2 {
        let r = alice
            .post(app.url("/tasks"))
            .json(&body)
            .expect_status(StatusCode::CREATED)
            .await;
        assert!(r.headers().get("idempotent-replayed").is_none());
    }
    assert_eq!(task_count(&app, &alice).await, 4);
    app.stop().await;
}

#[tokio::test]
async fn parallel_requests_with_one_idempotency_key_create_one_task() {
    let app = TestApp::spawn().await;
    let c = app.new_client();
    app.register(&c, "idem-parallel@example.com").await;
    let body = json!({"title": "only once"});
    let requests = (0..10).map(|_| {
        let (c, url, body) = (c.clone(), app.url("/tasks"), body.clone());
        tokio::spawn(async move {
            let r = c
                .post(url)
                .header("Idempotency-Key", "parallel-1")
                .json(&body)
                .fetch()
                .await;
            let status = r.status();
            let retry_after = r.headers().get("retry-after").is_some();
            (status, retry_after, r.json::<Value>().await.unwrap())
        })
    });
    let mut ids = std::collections::BTreeSet::new();
    let (mut created, mut busy) = (0, 0);
    for r in requests.collect::<Vec<_>>() {
        let (status, retry_after, v) = r.await.unwrap();
        match status {
            StatusCode::CREATED => {
                created += 1;
                ids.insert(v["id"].as_i64().unwrap());
            }
            StatusCode::CONFLICT => {
                assert!(retry_after);
                busy += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(created + busy, 10);
    assert!(created >= 1);
    assert_eq!(ids.len(), 1, "one task for all: {ids:?}");
    assert_eq!(task_count(&app, &c).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn pruned_idempotency_keys_are_forgotten() {
    let app = TestApp::spawn().await;
    let c = app.new_client();
    app.register(&c, "idem-prune@example.com").await;
    let body = json!({"title": "weekly"});
    let first: Value = post_task_with_key(&app, &c, "weekly", &body)
        .await
        .json()
        .await
        .unwrap();
    let db = &app.app.db;
    let now = pulseboard_domain::Timestamp::now();
    // What the Cleanup job deletes: rows older than 24 hours (none yet).
    let day_ago = now - pulseboard_storage::idempotency::TTL_MS;
    assert_eq!(
        pulseboard_storage::idempotency::prune(db, day_ago)
            .await
            .unwrap(),
        0
    );
    let replay = post_task_with_key(&app, &c, "weekly", &body).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert!(
        pulseboard_storage::idempotency::prune(db, now + 60_000)
            .await
            .unwrap()
            >= 1
    );
    let fresh = post_task_with_key(&app, &c, "weekly", &body).await;
    assert_eq!(fresh.status(), StatusCode::CREATED);
    assert!(fresh.headers().get("idempotent-replayed").is_none());
    let fresh: Value = fresh.json().await.unwrap();
    assert_ne!(fresh["id"], first["id"]);
    assert_eq!(task_count(&app, &c).await, 2);
    app.stop().await;
}
