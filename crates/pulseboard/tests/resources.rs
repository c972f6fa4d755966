//! Watch: the resource catalogue, its pagination and filters, isolation between users, the feed,
//! ZIP imports (counts and defences) and screenshots.

mod common;

use common::{eventually, Fetch, TestApp};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

async fn get_json(c: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let r = c.get(url).fetch().await;
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A ZIP built in memory from (name, bytes) entries, deflated.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, bytes) in entries {
        if name.ends_with('/') {
            w.add_directory(*name, opts).unwrap();
        } else {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

fn upload_form(bytes: Vec<u8>, file_name: &str) -> Form {
    common::file_form(bytes, file_name, "application/zip")
}

/// Uploads an archive; returns the request id (202 expected).
async fn import(app: &TestApp, c: &reqwest::Client, bytes: Vec<u8>) -> String {
    let r = c
        .post(app.url("/resources"))
        .multipart(upload_form(bytes, "urls.zip"))
        .expect_status(StatusCode::ACCEPTED)
        .await;
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let id = body["request_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/processing-requests/{id}"));
    id
}

/// Polls the request until it is finished.
async fn finished(app: &TestApp, c: &reqwest::Client, id: &str) -> Value {
    eventually(60, || async {
        let (status, v) = get_json(c, app.url(&format!("/processing-requests/{id}"))).await;
        assert_eq!(status, StatusCode::OK);
        matches!(v["status"].as_str(), Some("succeeded" | "failed")).then_some(v)
    })
    .await
}

async fn import_failure(app: &TestApp, c: &reqwest::Client, bytes: Vec<u8>) -> String {
    let id = import(app, c, bytes).await;
    let v = finished(app, c, &id).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["created"], 0, "{v}");
    v["failure"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn guests_get_401() {
    let app = TestApp::spawn().await;
    for path in ["/resources", "/feed", "/resources/1"] {
        let r = app.client.get(app.url(path)).fetch().await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    app.client
        .post(app.url("/resources"))
        .json(&json!({"url": "https://vk.com"}))
        .expect_status(StatusCode::UNAUTHORIZED)
        .await;
    app.stop().await;
}

#[tokio::test]
async fn seed_examples() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "watch@example.com").await;

    // POST /resources {"url": "https://vk.com"}
    let r = app.add_resource(c, "https://vk.com").await;
    assert!(r["id"].as_i64().unwrap() > 0);
    assert_eq!(r["uuid"].as_str().unwrap().len(), 36);
    assert_eq!(r["full_url"], "https://vk.com/");
    assert_eq!(r["protocol"], "https");
    assert_eq!(r["domain"], "vk.com");
    assert_eq!(r["domain_zone"], "com");
    assert_eq!(r["url_path"], "/");
    assert_eq!(r["query_params"], json!({}));
    assert!(r["status_code"].is_null() && r["is_available"].is_null());
    assert_eq!(r["unavailable_count"], 0);

    let r = app
        .add_resource(c, "https://example.org/search?q=rust&page=2")
        .await;
    assert_eq!(r["domain_zone"], "org");
    assert_eq!(r["url_path"], "/search");
    assert_eq!(r["query_params"], json!({"q": "rust", "page": "2"}));
    let org_id = r["id"].as_i64().unwrap();

    // The seed's example query, also under /api.
    for prefix in ["", "/api"] {
        let (status, v) = get_json(
            c,
            app.url(&format!(
                "{prefix}/resources?availability=true&id={org_id}&domain_zone=org&page=1&per_page=2"
            )),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        // Not checked yet: neither available nor unavailable.
        assert_eq!(v["items"], json!([]));
        assert_eq!(
            v["meta"],
            json!({"page": 1, "per_page": 2, "total_pages": 0, "total_items": 0})
        );
        assert_eq!(
            v["links"]["self"],
            format!("{prefix}/resources?availability=true&id={org_id}&domain_zone=org&page=1&per_page=2")
        );
    }
    let (_, v) = get_json(
        c,
        app.url(&format!(
            "/resources?id={org_id}&domain_zone=org&page=1&per_page=2"
        )),
    )
    .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["items"][0]["full_url"],
        "https://example.org/search?q=rust&page=2"
    );

    // Form bodies work too; an IDN host is stored in punycode.
    let v: Value = c
        .post(app.url("/api/resources/"))
        .form(&[("url", "https://пример.рф/")])
        .expect_json(StatusCode::CREATED)
        .await;
    assert_eq!(v["domain"], "xn--e1afmkfd.xn--p1ai");
    assert_eq!(v["domain_zone"], "xn--p1ai");
    let (_, v) = get_json(c, app.url("/resources?domain_zone=рф")).await;
    assert_eq!(v["meta"]["total_items"], 1);
    app.stop().await;
}

#[tokio::test]
async fn bad_urls_are_422_and_duplicates_409() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "dups@example.com").await;
    app.add_resource(c, "https://vk.com").await;

    // The same address however it is spelled.
    for same in [
        "https://vk.com",
        "HTTPS://VK.COM/",
        "https://vk.com:443/#top",
    ] {
        let r = c
            .post(app.url("/resources"))
            .json(&json!({ "url": same }))
            .fetch()
            .await;
        assert_eq!(r.status(), StatusCode::CONFLICT, "{same}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "conflict");
    }
    for bad in [
        "",
        "vk.com",
        "ftp://vk.com/",
        "javascript:alert(1)",
        "http://",
        "https:///nohost",
        "http://exa mple.com",
        "http://user:secret@vk.com/",
    ] {
        let r = c
            .post(app.url("/resources"))
            .json(&json!({ "url": bad }))
            .fetch()
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        let v: Value = r.json().await.unwrap();
        assert!(v["details"]["url"].is_string(), "{bad:?}: {v}");
    }
    // Wrong shapes of body.
    c.post(app.url("/resources"))
        .json(&json!({ "url": 5 }))
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    c.post(app.url("/resources"))
        .json(&json!({ "link": "https://a.com" }))
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    c.post(app.url("/resources"))
        .header("content-type", "text/plain")
        .body("https://a.com")
        .expect_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .await;
    // The upload limit of this route does not lift the JSON limit.
    c.post(app.url("/resources"))
        .json(&json!({ "url": format!("https://a.com/{}", "x".repeat(70_000)) }))
        .expect_status(StatusCode::PAYLOAD_TOO_LARGE)
        .await;
    app.stop().await;
}

#[tokio::test]
async fn pagination_links_on_first_middle_and_last_pages() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "pages@example.com").await;
    for i in 0..25 {
        app.add_resource(c, &format!("https://site{i}.example.com/"))
            .await;
    }
    app.add_resource(c, "https://other.org/").await;

    let page = |n: i64| {
        app.url(&format!(
            "/resources?domain_zone=com&sort=ignored&page={n}&per_page=10"
        ))
    };
    let link = |n: i64| format!("/resources?domain_zone=com&sort=ignored&page={n}&per_page=10");

    let (status, v) = get_json(c, page(1)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["meta"],
        json!({"page": 1, "per_page": 10, "total_pages": 3, "total_items": 25})
    );
    assert_eq!(v["items"].as_array().unwrap().len(), 10);
    assert_eq!(v["items"][0]["full_url"], "https://site0.example.com/");
    assert_eq!(v["links"]["self"], link(1));
    assert_eq!(v["links"]["next"], link(2));
    assert!(v["links"]["prev"].is_null());

    let (_, v) = get_json(c, page(2)).await;
    assert_eq!(v["items"][0]["full_url"], "https://site10.example.com/");
    assert_eq!(v["links"]["prev"], link(1));
    assert_eq!(v["links"]["next"], link(3));

    let (_, v) = get_json(c, page(3)).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    assert_eq!(v["links"]["prev"], link(2));
    assert!(v["links"]["next"].is_null());

    // Past the end: empty, and "prev" leads back to the last page.
    let (_, v) = get_json(c, page(7)).await;
    assert_eq!(v["items"], json!([]));
    assert_eq!(v["links"]["prev"], link(3));
    assert!(v["links"]["next"].is_null());

    // Defaults: page 1, 10 per page, links carry them.
    let (_, v) = get_json(c, app.url("/resources")).await;
    assert_eq!(v["meta"]["per_page"], 10);
    assert_eq!(v["meta"]["total_items"], 26);
    assert_eq!(v["links"]["next"], "/resources?page=2&per_page=10");
    let (_, v) = get_json(c, app.url("/api/resources?per_page=100")).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 26);
    assert_eq!(v["links"]["self"], "/api/resources?page=1&per_page=100");

    for (query, param) in [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
        ("per_page=1.5", "per_page"),
    ] {
        let (status, v) = get_json(c, app.url(&format!("/resources?{query}"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(v["details"][param].is_string(), "{query}: {v}");
    }
    app.stop().await;
}

#[tokio::test]
async fn filters_combine() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "filters@example.com").await;
    let a = app.add_resource(c, "https://a.org/").await;
    let b = app.add_resource(c, "https://b.org/").await;
    let d = app.add_resource(c, "https://d.com/").await;
    let e = app.add_resource(c, "https://news.bbc.co.uk/").await;
    assert_eq!(e["domain_zone"], "co.uk");

    // Pretend a monitoring round ran: a.org and d.com up, b.org down.
    for (r, up) in [(&a, true), (&b, false), (&d, true)] {
        sqlx::query(
            "UPDATE resources SET last_is_available = $1, last_status_code = $2, \
             last_checked_at = $3, last_response_time_ms = 42 WHERE id = $4",
        )
        .bind(up)
        .bind(if up { 200i64 } else { 503 })
        .bind(1_700_000_000_000i64)
        .bind(r["id"].as_i64().unwrap())
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    }
    let urls = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["full_url"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, v) = get_json(c, app.url("/resources?availability=true")).await;
    assert_eq!(urls(&v), ["https://a.org/", "https://d.com/"]);
    assert_eq!(v["items"][0]["status_code"], 200);
    assert_eq!(v["items"][0]["is_available"], true);
    assert_eq!(v["items"][0]["response_time_ms"], 42);
    assert_eq!(v["items"][0]["checked_at"], "2023-11-14T22:13:20Z");
    let (_, v) = get_json(c, app.url("/resources?availability=false")).await;
    assert_eq!(urls(&v), ["https://b.org/"]);
    assert_eq!(v["items"][0]["status_code"], 503);
    let (_, v) = get_json(c, app.url("/resources?availability=true&domain_zone=org")).await;
    assert_eq!(urls(&v), ["https://a.org/"]);
    let (_, v) = get_json(c, app.url("/resources?domain_zone=ORG")).await;
    assert_eq!(urls(&v), ["https://a.org/", "https://b.org/"]);
    let (_, v) = get_json(c, app.url("/resources?domain_zone=co.uk")).await;
    assert_eq!(urls(&v), ["https://news.bbc.co.uk/"]);
    let (_, v) = get_json(
        c,
        app.url(&format!("/resources?domain_zone=org&id={}", b["id"])),
    )
    .await;
    assert_eq!(urls(&v), ["https://b.org/"]);
    let (_, v) = get_json(
        c,
        app.url(&format!("/resources?domain_zone=com&id={}", b["id"])),
    )
    .await;
    assert_eq!(urls(&v), Vec::<String>::new());
    let (_, v) = get_json(
        c,
        app.url(&format!(
            "/resources?uuid={}&availability=true",
            d["uuid"].as_str().unwrap().to_uppercase()
        )),
    )
    .await;
    assert_eq!(urls(&v), ["https://d.com/"]);
    // Empty values are no filter.
    let (_, v) = get_json(c, app.url("/resources?availability=&domain_zone=")).await;
    assert_eq!(v["meta"]["total_items"], 4);

    for (query, param) in [
        ("availability=maybe", "availability"),
        ("id=abc", "id"),
        ("id=0", "id"),
        ("uuid=not-a-uuid", "uuid"),
        ("domain_zone=a%20b", "domain_zone"),
    ] {
        let (status, v) = get_json(c, app.url(&format!("/resources?{query}"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(v["details"][param].is_string(), "{query}: {v}");
    }
    app.stop().await;
}

#[tokio::test]
async fn another_users_resource_is_404() {
    let app = TestApp::spawn().await;
    let alice = &app.client;
    app.register(alice, "alice@example.com").await;
    let r = app.add_resource(alice, "https://alice.example.com/").await;
    let (id, uuid) = (r["id"].as_i64().unwrap(), r["uuid"].as_str().unwrap());

    let bob = app.new_client();
    app.register(&bob, "bob@example.com").await;
    for key in [id.to_string(), uuid.to_owned()] {
        let (status, _) = get_json(&bob, app.url(&format!("/resources/{key}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        bob.delete(app.url(&format!("/resources/{key}")))
            .expect_status(StatusCode::NOT_FOUND)
            .await;
    }
    let (_, v) = get_json(&bob, app.url(&format!("/resources?id={id}"))).await;
    assert_eq!(v["meta"]["total_items"], 0);
    let (_, v) = get_json(&bob, app.url("/feed")).await;
    assert_eq!(v["meta"]["total_items"], 0);
    // Bob may watch the same address: catalogues are per user.
    app.add_resource(&bob, "https://alice.example.com/").await;
    // Alice still has hers.
    let (status, _) = get_json(alice, app.url(&format!("/resources/{uuid}"))).await;
    assert_eq!(status, StatusCode::OK);
    for junk in ["0", "-1", "abc", "1e3"] {
        let (status, _) = get_json(alice, app.url(&format!("/resources/{junk}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{junk}");
    }
    app.stop().await;
}

#[tokio::test]
async fn details_delete_and_feed() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "feed@example.com").await;
    let a = app.add_resource(c, "https://a.example.com/").await;
    let b = app.add_resource(c, "https://b.example.com/").await;
    let uuid_a = a["uuid"].as_str().unwrap();

    let (status, v) = get_json(c, app.url(&format!("/resources/{uuid_a}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["full_url"], "https://a.example.com/");
    assert_eq!(v["checks"], json!([]));
    assert!(v["screenshot"].is_null());
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
    assert_eq!(v["events"][0]["kind"], "resource_added");
    assert_eq!(v["events"][0]["resource_exists"], true);
    // By numeric id too.
    let (status, _) = get_json(c, app.url(&format!("/resources/{}", a["id"]))).await;
    assert_eq!(status, StatusCode::OK);

    // Delete by numeric id, then by uuid.
    c.delete(app.url(&format!("/resources/{}", a["id"])))
        .expect_status(StatusCode::NO_CONTENT)
        .await;
    c.delete(app.url(&format!("/resources/{}", a["id"])))
        .expect_status(StatusCode::NOT_FOUND)
        .await;
    c.delete(app.url(&format!("/api/resources/{}", b["uuid"].as_str().unwrap())))
        .expect_status(StatusCode::NO_CONTENT)
        .await;
    let (status, _) = get_json(c, app.url(&format!("/resources/{uuid_a}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The feed keeps the deleted URLs, newest first.
    let (_, v) = get_json(c, app.url("/feed?per_page=3")).await;
    assert_eq!(
        v["meta"],
        json!({"page": 1, "per_page": 3, "total_pages": 2, "total_items": 4})
    );
    let kinds: Vec<(String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("resource_deleted".into(), "https://b.example.com/".into()),
            ("resource_deleted".into(), "https://a.example.com/".into()),
            ("resource_added".into(), "https://b.example.com/".into()),
        ]
    );
    assert_eq!(v["items"][1]["resource_uuid"], uuid_a);
    // Every event of a deleted resource says so (clients do not link to it).
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["resource_exists"] == false));
    assert!(v["items"][0]["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["links"]["next"], "/feed?page=2&per_page=3");
    let (_, v) = get_json(c, app.url("/feed?page=2&per_page=3")).await;
    assert_eq!(v["items"][0]["kind"], "resource_added");
    assert_eq!(v["items"][0]["url"], "https://a.example.com/");
    assert_eq!(v["items"][0]["resource_exists"], false);
    assert_eq!(v["links"]["prev"], "/feed?page=1&per_page=3");
    let kept = app.add_resource(c, "https://kept.example.com/").await;
    let (_, v) = get_json(c, app.url("/feed?per_page=1")).await;
    assert_eq!(v["items"][0]["resource_uuid"], kept["uuid"]);
    assert_eq!(v["items"][0]["resource_exists"], true);
    let (status, _) = get_json(c, app.url("/feed?per_page=500")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

#[tokio::test]
async fn zip_import_reports_exact_counts() {
    let app = TestApp::spawn_with_worker().await;
    let c = &app.client;
    app.register(c, "import@example.com").await;
    // 100 URLs already in the catalogue.
    for i in 0..100 {
        app.add_resource(c, &format!("https://known{i}.example.com/"))
            .await;
    }
    // 10,000 data lines: 9,300 new URLs, 500 duplicates (100 of the catalogue, 400 repeated in
    // the file), 200 invalid (2%), plus a header, blank lines, CRLF endings and a BOM.
    let mut csv = String::from("\u{feff}url,title\r\n");
    let mut data = 0;
    for i in 0..9_300 {
        csv.push_str(&format!(
            "https://site{i}.example.com/page?id={i},Site {i}\r\n"
        ));
        data += 1;
        if i % 1000 == 0 {
            csv.push_str("\r\n");
        }
    }
    for i in 0..400 {
        // Another spelling of an earlier line: same address once normalised.
        csv.push_str(&format!("HTTPS://SITE{i}.example.com:443/page?id={i}\n"));
        data += 1;
    }
    for i in 0..100 {
        csv.push_str(&format!("\"https://known{i}.example.com\",already there\n"));
        data += 1;
    }
    for i in 0..200 {
        csv.push_str(&format!("not a url {i},x\n"));
        data += 1;
    }
    assert_eq!(data, 10_000);
    let id = import(&app, c, zip_of(&[("export/urls.csv", csv.as_bytes())])).await;
    let v = finished(&app, c, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["total"], 10_000);
    assert_eq!(v["processed"], 10_000);
    assert_eq!(v["created"], 9_300);
    assert_eq!(v["duplicates"], 500);
    assert_eq!(v["errors"]["count"], 200);
    let errors = v["errors"]["error_urls"].as_array().unwrap();
    assert_eq!(errors.len(), 100);
    assert_eq!(errors[0], "not a url 0");
    assert!(v.get("failure").is_none());

    let (_, list) = get_json(c, app.url("/resources?per_page=1")).await;
    assert_eq!(list["meta"]["total_items"], 9_400);
    let (_, feed) = get_json(c, app.url("/feed?per_page=1")).await;
    assert_eq!(feed["meta"]["total_items"], 9_400);
    assert_eq!(feed["items"][0]["kind"], "resource_added");
    // The upload is gone once processed (removed just after the request is marked finished).
    let uploads_dir = app.data_dir.join("uploads");
    eventually(5, || async {
        (std::fs::read_dir(&uploads_dir).unwrap().count() == 0).then_some(())
    })
    .await;

    // Another user cannot see the request.
    let other = app.new_client();
    app.register(&other, "other@example.com").await;
    let (status, _) = get_json(&other, app.url(&format!("/processing-requests/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get_json(c, app.url("/processing-requests/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn zip_import_defences() {
    let app = TestApp::spawn_with_worker().await;
    let c = &app.client;
    app.register(c, "defences@example.com").await;

    // A small import with a folder, a README and two CSVs works (no header, LF endings).
    let id = import(
        &app,
        c,
        zip_of(&[
            ("list/", b""),
            ("list/README.txt", b"hello"),
            ("list/a.csv", b"https://a.com\nhttps://b.com\n"),
            ("list/b.CSV", b"https://b.com\nhttps://c.com"),
            ("__MACOSX/list/._a.csv", b"\x00\x05\x16\x07junk"),
        ]),
    )
    .await;
    let v = finished(&app, c, &id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(
        (
            v["total"].as_i64(),
            v["created"].as_i64(),
            v["duplicates"].as_i64()
        ),
        (Some(4), Some(3), Some(1))
    );

    // Zip bomb: 50 MiB of zeros deflate to ~50 KiB.
    let zeros = vec![b'0'; 50 * 1024 * 1024];
    let reason = import_failure(&app, c, zip_of(&[("bomb.csv", &zeros)])).await;
    assert!(reason.contains("zip bomb"), "{reason}");
    // (The total-size limit and lying headers are unit-tested in watch::import::archive.)

    // Thousands of entries.
    let names: Vec<String> = (0..3000).map(|i| format!("f{i}.csv")).collect();
    let entries: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), b"https://a.com\n".as_slice()))
        .collect();
    let reason = import_failure(&app, c, zip_of(&entries)).await;
    assert!(reason.contains("more than 100 files"), "{reason}");

    // No CSV.
    let reason = import_failure(&app, c, zip_of(&[("urls.txt", b"https://a.com\n")])).await;
    assert!(reason.contains("no CSV"), "{reason}");

    // Nested archive, by name and by content.
    let inner = zip_of(&[("urls.csv", b"https://a.com\n")]);
    let reason = import_failure(&app, c, zip_of(&[("inner.zip", &inner)])).await;
    assert!(reason.contains("Nested archives"), "{reason}");
    let reason = import_failure(&app, c, zip_of(&[("urls.csv", &inner)])).await;
    assert!(reason.contains("Nested archives"), "{reason}");

    // Path tricks.
    for name in ["../evil.csv", "/etc/evil.csv"] {
        let reason = import_failure(&app, c, zip_of(&[(name, b"https://a.com\n")])).await;
        assert!(reason.contains("unsafe file name"), "{name}: {reason}");
    }

    // Truncated upload: starts like a ZIP, ends early.
    let mut whole = zip_of(&[(
        "urls.csv",
        b"https://a.com\nhttps://b.com\n".repeat(50).as_slice(),
    )]);
    whole.truncate(whole.len() / 2);
    let reason = import_failure(&app, c, whole).await;
    assert!(reason.contains("not a valid ZIP archive"), "{reason}");

    // Not a ZIP at all: refused at upload, nothing queued.
    let v: Value = c
        .post(app.url("/resources"))
        .multipart(upload_form(b"https://a.com\n".to_vec(), "urls.zip"))
        .expect_json(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    assert!(v["details"]["file"].is_string(), "{v}");
    // No `file` field.
    c.post(app.url("/resources"))
        .multipart(Form::new().text("other", "x"))
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY)
        .await;

    // Only the first small import created anything.
    let (_, list) = get_json(c, app.url("/resources")).await;
    assert_eq!(list["meta"]["total_items"], 3);
    app.stop().await;
}

#[tokio::test]
async fn uploads_over_the_limit_are_413() {
    let app = TestApp::spawn_configured(|c| c.http.upload_limit_bytes = 256 * 1024).await;
    let c = &app.client;
    app.register(c, "limit@example.com").await;
    let mut big = b"PK\x03\x04".to_vec();
    big.resize(300 * 1024, b'x');
    c.post(app.url("/resources"))
        .multipart(upload_form(big.clone(), "big.zip"))
        .expect_status(StatusCode::PAYLOAD_TOO_LARGE)
        .await;
    // Without a Content-Length (streamed), the limit holds while reading.
    let stream = futures_stream(big);
    c.post(app.url("/resources"))
        .multipart(Form::new().part(
            "file",
            Part::stream(reqwest::Body::wrap_stream(stream)).file_name("big.zip"),
        ))
        .expect_status(StatusCode::PAYLOAD_TOO_LARGE)
        .await;
    let left: Vec<_> = std::fs::read_dir(app.data_dir.join("uploads"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "partial uploads are removed");
    // Screenshots are bounded by the same limit.
    let r = app.add_resource(c, "https://big.example.com/").await;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.resize(300 * 1024, 0);
    c.post(app.url(&format!("/resources/{}", r["uuid"].as_str().unwrap())))
        .multipart(Form::new().part("file", Part::bytes(png).file_name("big.png")))
        .expect_status(StatusCode::PAYLOAD_TOO_LARGE)
        .await;
    app.stop().await;
}

/// A body in 16 KiB chunks, without a known length.
fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + Sync + 'static {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    futures_util::stream::iter(chunks)
}

#[tokio::test]
async fn screenshots() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "shots@example.com").await;
    let r = app.add_resource(c, "https://shots.example.com/").await;
    let uuid = r["uuid"].as_str().unwrap().to_owned();

    let png = common::png(0, 64);
    let image = |bytes: Vec<u8>, name: &str| common::file_form(bytes, name, "image/png");
    // A text file named .png is refused, whatever it claims.
    c.post(app.url(&format!("/resources/{uuid}")))
        .multipart(image(b"<svg onload=alert(1)>".to_vec(), "shot.png"))
        .expect_status(StatusCode::UNPROCESSABLE_ENTITY)
        .await;
    let (status, _) = get_json(c, app.url(&format!("/resources/{uuid}/screenshot"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let v: Value = c
        .post(app.url(&format!("/resources/{uuid}")))
        .multipart(image(png.clone(), "shot.png"))
        .expect_json(StatusCode::CREATED)
        .await;
    assert_eq!(v["content_type"], "image/png");
    assert_eq!(v["url"], format!("/resources/{uuid}/screenshot"));

    let r = c
        .get(app.url(&format!("/resources/{uuid}/screenshot")))
        .expect_status(StatusCode::OK)
        .await;
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().await.unwrap().as_ref(), png.as_slice());

    // A JPEG replaces it; the old blob is removed.
    let jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec();
    c.post(app.url(&format!(
        "/resources/{}",
        r_id(&r_value(&app, c, &uuid).await)
    )))
    .multipart(image(jpeg.clone(), "shot.jpg"))
    .expect_status(StatusCode::CREATED)
    .await;
    let (_, v) = get_json(c, app.url(&format!("/resources/{uuid}"))).await;
    assert_eq!(v["screenshot"]["content_type"], "image/jpeg");
    assert_eq!(v["events"][0]["kind"], "photo_added");
    let blobs = std::fs::read_dir(app.data_dir.join("blobs"))
        .unwrap()
        .count();
    assert_eq!(blobs, 1);

    // Another user sees nothing.
    let other = app.new_client();
    app.register(&other, "nosy@example.com").await;
    let (status, _) = get_json(&other, app.url(&format!("/resources/{uuid}/screenshot"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    other
        .post(app.url(&format!("/resources/{uuid}")))
        .multipart(image(png.clone(), "shot.png"))
        .expect_status(StatusCode::NOT_FOUND)
        .await;

    // Deleting the resource removes the image.
    c.delete(app.url(&format!("/resources/{uuid}")))
        .expect_status(StatusCode::NO_CONTENT)
        .await;
    let blobs = std::fs::read_dir(app.data_dir.join("blobs"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
    app.stop().await;
}

async fn r_value(app: &TestApp, c: &reqwest::Client, uuid: &str) -> Value {
    get_json(c, app.url(&format!("/resources/{uuid}"))).await.1
}

fn r_id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap()
}

#[tokio::test]
async fn watch_routes_are_documented() {
    let app = TestApp::spawn().await;
    let (_, doc) = get_json(&app.client, app.url("/openapi.json")).await;
    for (path, method) in [
        ("/resources", "get"),
        ("/resources", "post"),
        ("/resources/{key}", "get"),
        ("/resources/{key}", "post"),
        ("/resources/{key}", "delete"),
        ("/resources/{key}/screenshot", "get"),
        ("/resources/{key}/screenshot/capture", "post"),
        ("/processing-requests/{id}", "get"),
        ("/feed", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from openapi.json"
        );
    }
    app.stop().await;
}

async fn job_of_request(app: &TestApp, id: &str) -> (i64, String) {
    sqlx::query_as("SELECT id, status FROM jobs WHERE idempotency_key = $1")
        .bind(format!("import:{id}"))
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_import_out_of_attempts_ends_failed_and_an_admin_retry_runs_it_again() {
    use pulseboard_domain::{Email, Role, Timestamp};
    let app = TestApp::spawn_with_worker_configured(|c| c.jobs.max_attempts = 2).await;
    let c = &app.client;
    app.register(c, "unlucky@example.com").await;
    // Every batch insert fails while the events table is away: a database error, retried.
    sqlx::query("ALTER TABLE events RENAME TO events_away")
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    let id = import(
        &app,
        c,
        zip_of(&[("urls.csv", b"https://a.example/\nhttps://b.example/\n")]),
    )
    .await;
    // The handler marks its own final failure: read the row, not the endpoint (which would also
    // notice the dead job).
    let req = eventually(60, || async {
        let r = pulseboard_storage::processing::request(&app.app.db, &id)
            .await
            .unwrap()
            .unwrap();
        r.is_finished().then_some(r)
    })
    .await;
    assert_eq!(req.status, "failed");
    let failure = req.failure.unwrap();
    assert!(failure.contains("repeated errors"), "{failure}");
    assert!(
        failure.contains("events"),
        "the reason names the cause: {failure}"
    );
    let v = finished(&app, c, &id).await;
    assert_eq!(v["failure"], failure.as_str());
    let (job, _) = job_of_request(&app, &id).await;
    eventually(10, || async {
        (job_of_request(&app, &id).await.1 == "dead").then_some(())
    })
    .await;

    // Fixed; an admin retries the dead job and the import runs from its kept upload.
    sqlx::query("ALTER TABLE events_away RENAME TO events")
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    let email = Email::parse("unlucky@example.com").unwrap();
    pulseboard_storage::users::set_role(&app.app.db, &email, Role::Admin, Timestamp::now())
        .await
        .unwrap();
    let admin = app.new_client();
    admin
        .post(app.url("/session"))
        .json(&json!({"email": "unlucky@example.com", "password": common::PASSWORD}))
        .expect_status(StatusCode::OK)
        .await;
    admin
        .post(app.url(&format!("/admin/jobs/{job}/retry")))
        .expect_status(StatusCode::ACCEPTED)
        .await;
    let v = eventually(60, || async {
        let (_, v) = get_json(c, app.url(&format!("/processing-requests/{id}"))).await;
        (v["status"] == "succeeded").then_some(v)
    })
    .await;
    assert_eq!(v["created"], 2, "{v}");
    assert!(v.get("failure").is_none(), "{v}");
    app.stop().await;
}

#[tokio::test]
async fn a_request_whose_job_died_unseen_reads_as_failed() {
    // No worker: the jobs are made dead (or removed) by hand, as a timeout, a panic on the last
    // attempt or an admin's discard would leave them.
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "orphan@example.com").await;
    let csv = zip_of(&[("urls.csv", b"https://a.example/\n")]);
    let timed_out = import(&app, c, csv.clone()).await;
    let discarded = import(&app, c, csv).await;
    let (_, v) = get_json(c, app.url(&format!("/processing-requests/{timed_out}"))).await;
    assert_eq!(v["status"], "pending", "a queued job is left alone");

    sqlx::query(
        "UPDATE jobs SET status = 'dead', last_error = 'timed out after 300s' \
         WHERE idempotency_key = $1",
    )
    .bind(format!("import:{timed_out}"))
    .execute(&mut *app.sql().await)
    .await
    .unwrap();
    sqlx::query("DELETE FROM jobs WHERE idempotency_key = $1")
        .bind(format!("import:{discarded}"))
        .execute(&mut *app.sql().await)
        .await
        .unwrap();

    let (_, v) = get_json(c, app.url(&format!("/processing-requests/{timed_out}"))).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert!(
        v["failure"]
            .as_str()
            .unwrap()
            .contains("timed out after 300s"),
        "{v}"
    );
    let (_, v) = get_json(c, app.url(&format!("/processing-requests/{discarded}"))).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["failure"].as_str().unwrap().contains("removed"), "{v}");
    app.stop().await;
}

/// A body sent in `parts` pieces over about `secs` seconds.
fn slow_body(bytes: Vec<u8>, parts: usize, secs: f64) -> reqwest::Body {
    let size = bytes.len().div_ceil(parts).max(1);
    let chunks: Vec<Vec<u8>> = bytes.chunks(size).map(<[u8]>::to_vec).collect();
    let pause = std::time::Duration::from_secs_f64(secs / chunks.len() as f64);
    let stream = futures_util::stream::unfold(chunks.into_iter(), move |mut rest| async move {
        let next = rest.next()?;
        tokio::time::sleep(pause).await;
        Some((Ok::<_, std::io::Error>(next), rest))
    });
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test]
async fn uploads_get_their_own_longer_timeout() {
    let app = TestApp::spawn_configured(|c| {
        c.http.request_timeout_secs = 1;
        c.http.upload_timeout_secs = 60;
    })
    .await;
    let c = &app.client;
    app.register(c, "slowlink@example.com").await;

    // A ZIP trickling in for ~3 s: past the request timeout, within the upload timeout.
    let boundary = "pulseboard-slow-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"urls.zip\"\r\n\
         Content-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend(zip_of(&[("urls.csv", b"https://slow.example/\n")]));
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let r = c
        .post(app.url("/resources"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(slow_body(body, 6, 3.0))
        .fetch()
        .await;
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "{}",
        r.text().await.unwrap()
    );

    // Any other request still gets the short one.
    let v: Value = c
        .post(app.url("/tasks"))
        .header("content-type", "application/json")
        .body(slow_body(br#"{"title": "slow task"}"#.to_vec(), 6, 3.0))
        .expect_json(StatusCode::SERVICE_UNAVAILABLE)
        .await;
    assert_eq!(v["error"], "service_unavailable");
    app.stop().await;
}

/// `meta.total_items` comes from counters kept by triggers (migration 0007), not from counting
/// rows: after additions, an import, checks that flip availability, deletions (one by cascade)
/// and a compaction, every filter's total still equals a count of the rows.
#[tokio::test]
async fn totals_stay_exact_through_every_change() {
    let app = TestApp::spawn_with_worker().await;
    let c = &app.client;
    app.register(c, "totals@example.com").await;
    let other = app.new_client();
    app.register(&other, "totals-other@example.com").await;
    let a = app.add_resource(c, "https://a.org/").await;
    app.add_resource(c, "https://b.org/").await;
    let d = app.add_resource(c, "https://d.com/").await;
    app.add_resource(&other, "https://other.org/").await;
    let csv: String = (0..30)
        .map(|i| format!("https://i{i}.example.{}/\n", ["org", "net", "io"][i % 3]))
        .collect();
    let id = import(&app, c, zip_of(&[("urls.csv", csv.as_bytes())])).await;
    assert_eq!(finished(&app, c, &id).await["created"], 30);
    // As a monitoring round would: some up, some down, one flipped twice.
    sqlx::query("UPDATE resources SET last_is_available = (id % 3 = 0)")
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    sqlx::query("UPDATE resources SET last_is_available = NULL WHERE id = $1")
        .bind(a["id"].as_i64().unwrap())
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    c.delete(app.url(&format!("/resources/{}", d["uuid"].as_str().unwrap())))
        .expect_status(StatusCode::NO_CONTENT)
        .await;

    let me: i64 = sqlx::query_scalar("SELECT id FROM users WHERE email = 'totals@example.com'")
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap();
    let shared = &app;
    let check = |label: &'static str| async move {
        let app = shared;
        for zone in [
            None,
            Some("org"),
            Some("net"),
            Some("com"),
            Some("io"),
            Some("xyz"),
        ] {
            for avail in [None, Some(true), Some(false)] {
                let mut query = String::from("/resources?per_page=1");
                let mut sql = format!("SELECT COUNT(*) FROM resources WHERE user_id = {me}");
                if let Some(z) = zone {
                    query += &format!("&domain_zone={z}");
                    sql += &format!(" AND domain_zone = '{z}'");
                }
                if let Some(v) = avail {
                    query += &format!("&availability={v}");
                    sql += if v {
                        " AND last_is_available = (1 = 1)"
                    } else {
                        " AND last_is_available = (1 = 0)"
                    };
                }
                let want: i64 = sqlx::query_scalar(&sql)
                    .fetch_one(&mut *app.sql().await)
                    .await
                    .unwrap();
                let (status, v) = get_json(c, app.url(&query)).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(v["meta"]["total_items"], want, "{label}: {query}");
            }
        }
    };
    check("after changes").await;
    // Two compactions at once (PostgreSQL folds deltas; SQLite rewrites its one row per key).
    let (x, y) = tokio::join!(
        pulseboard_storage::resources::compact_counts(&app.app.db, me),
        pulseboard_storage::resources::compact_counts(&app.app.db, me)
    );
    x.unwrap();
    y.unwrap();
    check("after compaction").await;
    // Deleting the other account cascades to its resource; our totals are untouched.
    sqlx::query("DELETE FROM users WHERE email = 'totals-other@example.com'")
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    check("after another account went").await;
    // Many small statements: PostgreSQL appends a delta row for each; the cleanup job folds them.
    for i in 0..70 {
        app.add_resource(c, &format!("https://many{i}.example.net/"))
            .await;
    }
    let folded = pulseboard_storage::resources::compact_all_counts(&app.app.db)
        .await
        .unwrap();
    let rows_left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM resource_counts WHERE user_id = $1")
            .bind(me)
            .fetch_one(&mut *app.sql().await)
            .await
            .unwrap();
    match app.app.db.backend() {
        pulseboard_storage::Backend::Postgres => assert_eq!(folded, 1),
        pulseboard_storage::Backend::Sqlite => assert_eq!(folded, 0),
    }
    assert!(rows_left <= 12, "{rows_left} count rows left");
    check("after the cleanup folded the deltas").await;
    let total: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM resource_counts")
            .fetch_one(&mut *app.sql().await)
            .await
            .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM resources")
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap();
    assert_eq!(total, rows);
    app.stop().await;
}

/// Concurrent additions share SQLite commits (storage::writer): each still gets its own answer,
/// a duplicate fails alone without undoing the others, and every created resource has its event.
#[tokio::test]
async fn concurrent_additions_commit_together_and_fail_alone() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "burst@example.com").await;
    let mut calls = vec![];
    for i in 0..60 {
        // Every sixth call repeats the URL of the call before it.
        let n = if i % 6 == 5 { i - 1 } else { i };
        let (c, url) = (c.clone(), app.url("/resources"));
        calls.push(tokio::spawn(async move {
            c.post(url)
                .json(&json!({ "url": format!("https://burst{n}.example.org/") }))
                .fetch_status()
                .await
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for call in calls {
        match call.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created, conflicts), (50, 10));
    let (_, list) = get_json(c, app.url("/resources?per_page=1")).await;
    assert_eq!(list["meta"]["total_items"], 50);
    let (_, feed) = get_json(c, app.url("/feed?per_page=1")).await;
    assert_eq!(feed["meta"]["total_items"], 50);
    app.stop().await;
}

/// A multipart upload of `zip` in the field `file`, sent in `parts` pieces over about `secs`
/// seconds (without a Content-Length).
async fn slow_import(
    url: String,
    c: &reqwest::Client,
    zip: Vec<u8>,
    parts: usize,
    secs: f64,
) -> reqwest::Response {
    let boundary = "pulseboard-limit-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"urls.zip\"\r\n\
         Content-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend(zip);
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    c.post(url)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(slow_body(body, parts, secs))
        .fetch()
        .await
}

fn uploads_in(app: &TestApp) -> usize {
    std::fs::read_dir(app.data_dir.join("uploads"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn requests_of(app: &TestApp, email: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM processing_requests p JOIN users u ON u.id = p.user_id \
         WHERE u.email = $1",
    )
    .bind(email)
    .fetch_one(&mut *app.sql().await)
    .await
    .unwrap()
}

/// Six uploads at once by one user against `http.imports_per_user: 2`: two are taken, four get
/// 429 before their bodies are read; while those two wait, the next one too. Another user is not
/// affected, and a request whose job died no longer counts.
#[tokio::test]
async fn imports_in_flight_are_limited_per_user() {
    // No worker: accepted requests stay pending, in flight.
    let app = TestApp::spawn_configured(|c| c.http.imports_per_user = 2).await;
    let c = &app.client;
    app.register(c, "eager@example.com").await;
    let zip = zip_of(&[("urls.csv", b"https://eager.example/\n")]);

    // Each body trickles in over ~1.5 s, so all six are in flight together.
    let mut calls = vec![];
    for _ in 0..6 {
        let (url, c, zip) = (app.url("/resources"), c.clone(), zip.clone());
        calls.push(tokio::spawn(async move {
            let r = slow_import(url, &c, zip, 6, 1.5).await;
            let status = r.status();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, retry_after, body)
        }));
    }
    let mut answers = vec![];
    for call in calls {
        answers.push(call.await.unwrap());
    }
    let accepted = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::ACCEPTED)
        .count();
    assert_eq!(accepted, 2, "{answers:?}");
    for (status, retry_after, body) in answers.iter().filter(|a| a.0 != StatusCode::ACCEPTED) {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"], "too_many_requests");
        assert!(
            body["message"].as_str().unwrap().contains("2 imports"),
            "{body}"
        );
        assert!(retry_after.as_deref().unwrap().parse::<u64>().unwrap() >= 1);
    }
    assert_eq!(uploads_in(&app), 2, "refused uploads spool nothing");
    assert_eq!(requests_of(&app, "eager@example.com").await, 2);

    // The two pending requests still count for a later upload (from the database).
    let r = c
        .post(app.url("/resources"))
        .multipart(upload_form(zip.clone(), "urls.zip"))
        .expect_status(StatusCode::TOO_MANY_REQUESTS)
        .await;
    assert!(r.headers().contains_key("retry-after"));

    // Another user has places of their own.
    let other = app.new_client();
    app.register(&other, "calm@example.com").await;
    import(&app, &other, zip.clone()).await;

    // A request whose job is dead will never finish: it frees its place.
    sqlx::query(
        "UPDATE jobs SET status = 'dead', last_error = 'timed out' WHERE id = \
         (SELECT MIN(j.id) FROM jobs j JOIN processing_requests p ON j.idempotency_key = 'import:' || p.id \
          JOIN users u ON u.id = p.user_id WHERE u.email = 'eager@example.com')",
    )
    .execute(&mut *app.sql().await)
    .await
    .unwrap();
    import(&app, c, zip).await;
    assert_eq!(requests_of(&app, "eager@example.com").await, 3);
    app.stop().await;
}

/// Too little free space in the uploads folder (here: a reserve no disk has) is 507 before the
/// body is read, with or without a Content-Length: nothing spooled, no request created.
#[tokio::test]
async fn uploads_are_refused_with_507_when_the_disk_is_short() {
    let app = TestApp::spawn_configured(|c| c.http.upload_min_free_bytes = u64::MAX / 2).await;
    let c = &app.client;
    app.register(c, "cramped@example.com").await;
    let zip = zip_of(&[("urls.csv", b"https://cramped.example/\n")]);
    // More attempts than `imports_per_user`: a refused upload gives its place back.
    for _ in 0..3 {
        let v: Value = c
            .post(app.url("/resources"))
            .multipart(upload_form(zip.clone(), "urls.zip"))
            .expect_json(StatusCode::INSUFFICIENT_STORAGE)
            .await;
        assert_eq!(v["error"], "insufficient_storage", "{v}");
        let message = v["message"].as_str().unwrap();
        assert!(message.contains("free"), "{message}");
        assert!(message.contains("bytes"), "names the free space: {message}");
    }
    let r = slow_import(app.url("/resources"), c, zip, 2, 0.2).await;
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(uploads_in(&app), 0, "nothing spooled");
    assert_eq!(requests_of(&app, "cramped@example.com").await, 0);
    app.stop().await;
}

/// The disk fills up while an upload is spooled (the reserve is set just below the free space,
/// so the check before the body passes and the ones while writing do not): 507, and the partial
/// file is removed.
#[tokio::test]
async fn an_upload_that_fills_the_disk_stops_with_507() {
    let tmp = common::tempdir::Dir::new();
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(&tmp.0)
        .output()
        .expect("df runs");
    let free: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let margin = 24 * 1024 * 1024;
    let app =
        TestApp::spawn_configured(|c| c.http.upload_min_free_bytes = free.saturating_sub(margin))
            .await;
    let c = &app.client;
    app.register(c, "filling@example.com").await;
    // 96 MiB (under the 100 MiB upload limit) of a "ZIP" without a Content-Length.
    let chunks = (0..96 * 16).map(|i| {
        let mut chunk = vec![0u8; 64 * 1024];
        if i == 0 {
            chunk[..4].copy_from_slice(b"PK\x03\x04");
        }
        Ok::<_, std::io::Error>(chunk)
    });
    let v: Value = c
        .post(app.url("/resources"))
        .multipart(
            Form::new().part(
                "file",
                Part::stream(reqwest::Body::wrap_stream(futures_util::stream::iter(
                    chunks,
                )))
                .file_name("big.zip"),
            ),
        )
        .expect_json(StatusCode::INSUFFICIENT_STORAGE)
        .await;
    assert_eq!(v["error"], "insufficient_storage", "{v}");
    assert_eq!(uploads_in(&app), 0, "the partial upload is removed");
    assert_eq!(requests_of(&app, "filling@example.com").await, 0);
    app.stop().await;
}

/// Issue #24 item 4: an archive for the resumable-import tests, 710 data lines after a header:
/// 600 new URLs, 60 in-file duplicates (another spelling of an earlier line, some of them hundreds
/// of lines back, so across batches and across the position of a kill), 30 URLs of the catalogue
/// ([`add_resume_catalogue`]) and 20 bad lines, interleaved.
fn resume_archive() -> Vec<u8> {
    let mut csv = String::from("url\n");
    for i in 0..600 {
        csv.push_str(&format!("https://r{i}.resume.example/p?i={i}\n"));
        if i % 10 == 9 {
            let j = i / 2;
            csv.push_str(&format!("HTTPS://R{j}.RESUME.EXAMPLE:443/p?i={j}\n"));
        }
        if i % 20 == 4 {
            csv.push_str(&format!("https://cat{}.resume.example/\n", i / 20));
        }
        if i % 30 == 7 {
            csv.push_str(&format!("not a url {i}\n"));
        }
    }
    zip_of(&[("urls.csv", csv.as_bytes())])
}

async fn add_resume_catalogue(app: &TestApp, c: &reqwest::Client) {
    for i in 0..30 {
        app.add_resource(c, &format!("https://cat{i}.resume.example/"))
            .await;
    }
}

/// Uploads the archive as a new user with the catalogue; the app has no worker, so the job stays
/// queued and the test runs the attempts itself. Returns the client and the import request.
async fn queued_resume_import(
    app: &TestApp,
    email: &str,
) -> (reqwest::Client, pulseboard_watch::import::Request<'static>) {
    let c = app.new_client();
    app.register(&c, email).await;
    add_resume_catalogue(app, &c).await;
    let id = import(app, &c, resume_archive()).await;
    let (payload,): (String,) =
        sqlx::query_as("SELECT payload FROM jobs WHERE idempotency_key = $1")
            .bind(format!("import:{id}"))
            .fetch_one(&mut *app.sql().await)
            .await
            .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    let path = std::path::PathBuf::from(payload["path"].as_str().unwrap());
    let req = pulseboard_watch::import::Request {
        request_id: Box::leak(id.into_boxed_str()),
        user_id: app.user(email).await.id,
        path: Box::leak(path.into_boxed_path()),
    };
    (c, req)
}

/// Batches of 50, so that the 710 lines take 15 transactions and a kill can land between them.
fn small_batches() -> pulseboard_watch::import::ImportLimits {
    pulseboard_watch::import::ImportLimits {
        batch: 50,
        ..Default::default()
    }
}

/// The request as the API shows it.
async fn request_json(app: &TestApp, c: &reqwest::Client, id: &str) -> Value {
    let (status, v) = get_json(c, app.url(&format!("/processing-requests/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    v
}

/// The counters and kept error lines of a finished request, for comparing two runs.
fn outcome(v: &Value) -> (Value, Value, Value, Value, Value, Value, Value) {
    (
        v["status"].clone(),
        v["total"].clone(),
        v["processed"].clone(),
        v["created"].clone(),
        v["duplicates"].clone(),
        v["errors"]["count"].clone(),
        v["errors"]["error_urls"].clone(),
    )
}

/// Each resource the import created has exactly one `resource_added` event, and nothing else of
/// the user's got one twice: the resumed attempts wrote no row before their position again.
async fn assert_one_event_per_created_resource(
    app: &TestApp,
    req: &pulseboard_watch::import::Request<'_>,
    rows_left: i64,
) {
    let (rows, events, distinct): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM resources WHERE import_id = $1), \
                (SELECT COUNT(*) FROM events e JOIN resources r ON r.uuid = e.resource_uuid \
                  WHERE r.import_id = $1 AND e.kind = 'resource_added'), \
                (SELECT COUNT(DISTINCT e.resource_uuid) FROM events e JOIN resources r \
                  ON r.uuid = e.resource_uuid WHERE r.import_id = $1 AND e.kind = 'resource_added')",
    )
    .bind(req.request_id)
    .fetch_one(&mut *app.sql().await)
    .await
    .unwrap();
    assert_eq!((rows, events, distinct), (rows_left, rows_left, rows_left));
    let user_events: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE user_id = $1 AND kind = 'resource_added'",
    )
    .bind(req.user_id)
    .fetch_one(&mut *app.sql().await)
    .await
    .unwrap();
    assert_eq!(user_events, 630, "30 additions and 600 imported, each once");
}

/// Runs one attempt that is "killed" after `batches` batches and checks what it leaves: the
/// request `in_process` at exactly the expected position, the upload kept.
async fn kill_after(
    app: &TestApp,
    c: &reqwest::Client,
    req: pulseboard_watch::import::Request<'_>,
    batches: usize,
    expected_position: i64,
) {
    let stopped =
        pulseboard_watch::import::run_killed_after(&app.app.db, req, &small_batches(), batches)
            .await
            .unwrap();
    assert!(stopped, "the import should not finish in {batches} batches");
    let v = request_json(app, c, req.request_id).await;
    assert_eq!(v["status"], "in_process", "{v}");
    assert_eq!(v["total"], 710, "{v}");
    assert_eq!(v["processed"], expected_position, "{v}");
    let counted = v["created"].as_i64().unwrap()
        + v["duplicates"].as_i64().unwrap()
        + v["errors"]["count"].as_i64().unwrap();
    assert_eq!(
        counted, expected_position,
        "every consumed line counted once: {v}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM resources WHERE import_id = $1")
        .bind(req.request_id)
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap();
    assert_eq!(
        rows,
        v["created"].as_i64().unwrap(),
        "rows commit with the position: {v}"
    );
    assert!(req.path.is_file(), "the upload is kept for the retry");
}

/// Issue #24 item 4: an import killed after some batches and retried resumes from its stored
/// position; its final counters and error lines are exactly an uninterrupted run's on the same
/// archive (in-file duplicates across the kill, catalogue duplicates, bad lines), and no row
/// before the position is written twice. The retry uses batches of another size (the job's
/// default, 1,000), so the position need not fall on a batch boundary of the new attempt.
#[tokio::test]
async fn an_interrupted_import_resumes_with_the_counters_of_an_uninterrupted_run() {
    use pulseboard_watch::import::{run, ImportLimits};
    let app = TestApp::spawn().await;
    let (ref_client, reference) = queued_resume_import(&app, "whole@example.com").await;
    run(&app.app.db, reference, &small_batches()).await.unwrap();
    let whole = request_json(&app, &ref_client, reference.request_id).await;
    let expected = outcome(&whole);
    assert_eq!(whole["status"], "succeeded", "{whole}");
    assert_eq!(
        (
            &whole["total"],
            &whole["processed"],
            &whole["created"],
            &whole["duplicates"]
        ),
        (&json!(710), &json!(710), &json!(600), &json!(90)),
        "{whole}"
    );
    assert_eq!(whole["errors"]["count"], 20, "{whole}");

    let (c, req) = queued_resume_import(&app, "killed@example.com").await;
    kill_after(&app, &c, req, 7, 350).await;
    // The user deletes a URL imported before the position (line 176) that the file repeats after
    // it (line 354). As in an uninterrupted run, the repeat is an in-file duplicate: the retry
    // knows the skipped lines' URLs without the database, so it does not create it again.
    let (uuid,): (String,) =
        sqlx::query_as("SELECT uuid FROM resources WHERE import_id = $1 AND full_url LIKE $2")
            .bind(req.request_id)
            .bind("%//r149.resume.example/%")
            .fetch_one(&mut *app.sql().await)
            .await
            .unwrap();
    let r = c
        .delete(app.url(&format!("/resources/{uuid}")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    run(&app.app.db, req, &ImportLimits::default())
        .await
        .unwrap();
    let resumed = request_json(&app, &c, req.request_id).await;
    assert_eq!(outcome(&resumed), expected, "{resumed}");
    assert_one_event_per_created_resource(&app, &req, 599).await;
    assert!(!req.path.exists(), "the upload is removed once finished");
    app.stop().await;
}

/// Issue #24 item 4: several interruptions in a row (one before any batch committed, as a kill
/// during inspection would), each attempt resuming where the last commit left it.
#[tokio::test]
async fn an_import_interrupted_several_times_resumes_each_time() {
    let app = TestApp::spawn().await;
    let (c, req) = queued_resume_import(&app, "crashy@example.com").await;
    let mut position = 0;
    for batches in [2, 0, 3, 1, 5] {
        position += 50 * batches as i64;
        kill_after(&app, &c, req, batches, position).await;
    }
    assert_eq!(position, 550);
    pulseboard_watch::import::run(&app.app.db, req, &small_batches())
        .await
        .unwrap();
    let v = request_json(&app, &c, req.request_id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(
        (
            &v["total"],
            &v["processed"],
            &v["created"],
            &v["duplicates"],
            &v["errors"]["count"]
        ),
        (
            &json!(710),
            &json!(710),
            &json!(600),
            &json!(90),
            &json!(20)
        ),
        "{v}"
    );
    let errors = v["errors"]["error_urls"].as_array().unwrap();
    assert_eq!(errors.len(), 20, "{v}");
    assert_eq!(errors[0], "not a url 7");
    assert_eq!(errors[19], "not a url 577");
    assert_one_event_per_created_resource(&app, &req, 600).await;
    // A finished request is not run again by a late duplicate of its job.
    pulseboard_watch::import::run(&app.app.db, req, &small_batches())
        .await
        .unwrap();
    assert_eq!(
        outcome(&request_json(&app, &c, req.request_id).await),
        outcome(&v)
    );
    app.stop().await;
}

/// Issue #24: an attempt taken over under load (its lease lost, its task not yet aborted) runs
/// beside its successor for a while. Both resume from the same position; each batch's counters
/// are fenced on the position it started from, so the one that falls behind writes nothing and
/// stops, and the counters stay exact.
#[tokio::test]
async fn two_attempts_at_once_count_every_line_once() {
    use pulseboard_watch::import::{run, ImportError};
    let app = TestApp::spawn().await;
    let (c, req) = queued_resume_import(&app, "twice@example.com").await;
    kill_after(&app, &c, req, 3, 150).await;
    let limits = small_batches();
    let (a, b) = tokio::join!(
        run(&app.app.db, req, &limits),
        run(&app.app.db, req, &limits)
    );
    for outcome in [&a, &b] {
        assert!(
            matches!(outcome, Ok(()) | Err(ImportError::Superseded)),
            "{outcome:?}"
        );
    }
    assert!(a.is_ok() || b.is_ok(), "one attempt finishes: {a:?} {b:?}");
    let v = request_json(&app, &c, req.request_id).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(
        (
            &v["processed"],
            &v["created"],
            &v["duplicates"],
            &v["errors"]["count"]
        ),
        (&json!(710), &json!(600), &json!(90), &json!(20)),
        "{v}"
    );
    assert_one_event_per_created_resource(&app, &req, 600).await;
    app.stop().await;
}

#[tokio::test]
async fn the_list_and_one_resource_have_etags_and_answer_if_none_match_with_304() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    app.register(c, "etag-res@example.com").await;
    let first = app.add_resource(c, "https://example.org/a").await;
    let uuid = first["uuid"].as_str().unwrap().to_owned();

    // The list.
    let (status, tag, cache, body) = common::conditional_get(c, app.url("/resources"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        tag.starts_with('"') && tag.ends_with('"') && tag.len() > 2,
        "{tag}"
    );
    assert_eq!(cache, "private, no-cache");
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["meta"]["total_items"], 1);
    for inm in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"x\", {tag}"),
        "*".into(),
    ] {
        let (status, etag, _, body) =
            common::conditional_get(c, app.url("/resources"), Some(&inm)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{inm}");
        assert_eq!(etag, tag);
        assert!(body.is_empty());
    }
    // Another page or filter is another body.
    let (status, zone_tag, ..) =
        common::conditional_get(c, app.url("/resources?domain_zone=com"), Some(&tag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(zone_tag, tag);

    // One resource.
    let one = app.url(&format!("/resources/{uuid}"));
    let (status, one_tag, cache, one_body) = common::conditional_get(c, one.clone(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache, "private, no-cache");
    assert_eq!(
        serde_json::from_slice::<Value>(&one_body).unwrap()["uuid"],
        uuid.as_str()
    );
    let (status, etag, _, body) = common::conditional_get(c, one.clone(), Some(&one_tag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(etag, one_tag);
    assert!(body.is_empty());

    // A change: the old list tag gets the full, new answer with a new tag.
    app.add_resource(c, "https://example.com/b").await;
    let (status, new_tag, _, body) =
        common::conditional_get(c, app.url("/resources"), Some(&tag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(new_tag, tag);
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["meta"]["total_items"], 2);
    let (status, ..) = common::conditional_get(c, app.url("/resources"), Some(&new_tag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // A change to the resource itself changes its tag.
    c.patch(one.clone())
        .json(&json!({"check_interval_secs": 300}))
        .expect_status(StatusCode::OK)
        .await;
    let (status, changed_tag, ..) = common::conditional_get(c, one.clone(), Some(&one_tag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(changed_tag, one_tag);

    // Another user: their own list and tag; this user's resource is a 404, never a 304.
    let other = app.new_client();
    app.register(&other, "etag-res-other@example.com").await;
    app.add_resource(&other, "https://example.net/c").await;
    let (status, other_tag, _, body) =
        common::conditional_get(&other, app.url("/resources"), Some(&new_tag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(other_tag, new_tag);
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["meta"]["total_items"], 1);
    for inm in [changed_tag.as_str(), "*"] {
        let (status, ..) = common::conditional_get(&other, one.clone(), Some(inm)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    app.stop().await;
}

#[tokio::test]
async fn idempotency_key_on_post_resources() {
    let app = TestApp::spawn().await;
    let alice = app.new_client();
    let bob = app.new_client();
    app.register(&alice, "idem-res-alice@example.com").await;
    app.register(&bob, "idem-res-bob@example.com").await;
    let post = |c: &reqwest::Client, key: &str, url: &str| {
        c.post(app.url("/resources"))
            .header("Idempotency-Key", key)
            .json(&json!({ "url": url }))
            .send()
    };
    let count = |c: &reqwest::Client| {
        let c = c.clone();
        let url = app.url("/resources");
        async move {
            let (status, v) = get_json(&c, url).await;
            assert_eq!(status, StatusCode::OK);
            v["items"].as_array().unwrap().len()
        }
    };

    let first = post(&alice, "add-example", "https://example.com/idem")
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = post(&alice, "add-example", "https://example.com/idem")
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["uuid"], first["uuid"]);
    assert_eq!(again, first);
    assert_eq!(count(&alice).await, 1);

    // Another body with that key: 422 naming the header.
    let other = post(&alice, "add-example", "https://example.org/")
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = other.json().await.unwrap();
    assert!(e["message"].as_str().unwrap().contains("Idempotency-Key"));
    assert_eq!(count(&alice).await, 1);

    // Bob's key is his own.
    let bobs = post(&bob, "add-example", "https://example.com/idem")
        .await
        .unwrap();
    assert_eq!(bobs.status(), StatusCode::CREATED);
    assert!(bobs.headers().get("idempotent-replayed").is_none());
    let bobs: Value = bobs.json().await.unwrap();
    assert_ne!(bobs["uuid"], first["uuid"]);

    // Ten at once with one key: one resource, all answered with it (or 409 while it runs).
    let requests = (0..10).map(|_| {
        let (c, url) = (alice.clone(), app.url("/resources"));
        tokio::spawn(async move {
            let r = c
                .post(url)
                .header("Idempotency-Key", "parallel")
                .json(&json!({ "url": "https://example.net/parallel" }))
                .fetch()
                .await;
            (r.status(), r.json::<Value>().await.unwrap())
        })
    });
    let mut uuids = std::collections::BTreeSet::new();
    let mut busy = 0;
    for r in requests.collect::<Vec<_>>() {
        let (status, v) = r.await.unwrap();
        match status {
            StatusCode::CREATED => {
                uuids.insert(v["uuid"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => busy += 1,
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(
        uuids.len(),
        1,
        "one resource for all ({busy} busy): {uuids:?}"
    );
    assert_eq!(count(&alice).await, 2);
    app.stop().await;
}
