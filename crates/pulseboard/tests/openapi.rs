//! The OpenAPI document is generated from the router (`pulseboard_web::api_routes`): these tests
//! walk the running app's routes and hold the document to them, in both directions, and check
//! that what the shared machinery can answer (401, 404, 403 for a scope, 4xx for a body) is in it.

mod common;

use common::{Fetch, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Routes the app serves that are not API and so not in the document, with the reason. The router
/// lists the same ones (`NOT_IN_DOCUMENT`); a route added there must be added here too, on purpose.
/// Static files and the web app's fallback answer any other GET, so they are not routes.
const EXCLUDED: [(&str, &str, &str); 3] = [
    ("get", "/openapi.json", "the document itself"),
    ("get", "/docs", "the page that browses the document"),
    ("get", "/docs.js", "the page's script"),
];

/// Every operation the hand-kept document described before it was generated: none may be lost.
const FORMERLY_DOCUMENTED: [(&str, &str); 43] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("post", "/user"),
    ("get", "/user"),
    ("delete", "/user"),
    ("get", "/user/export"),
    ("get", "/tokens"),
    ("post", "/tokens"),
    ("delete", "/tokens/{id}"),
    ("post", "/session"),
    ("put", "/session"),
    ("delete", "/session"),
    ("post", "/session/refresh"),
    ("get", "/tasks"),
    ("post", "/tasks"),
    ("get", "/tasks/{id}"),
    ("patch", "/tasks/{id}"),
    ("delete", "/tasks/{id}"),
    ("get", "/admin/queues"),
    ("post", "/admin/jobs/{id}/retry"),
    ("delete", "/admin/jobs/{id}"),
    ("get", "/logs"),
    ("get", "/logs/stream"),
    ("get", "/logs.pdf"),
    ("get", "/resources"),
    ("post", "/resources"),
    ("get", "/resources/{key}"),
    ("post", "/resources/{key}"),
    ("patch", "/resources/{key}"),
    ("delete", "/resources/{key}"),
    ("get", "/resources/{key}/screenshot"),
    ("post", "/resources/{key}/screenshot/capture"),
    ("post", "/resources/{key}/check"),
    ("get", "/processing-requests/{id}"),
    ("get", "/feed"),
    ("get", "/channels"),
    ("post", "/channels"),
    ("get", "/channels/{id}"),
    ("patch", "/channels/{id}"),
    ("delete", "/channels/{id}"),
    ("post", "/channels/{id}/test"),
    ("get", "/channels/{id}/confirm"),
    ("post", "/channels/{id}/confirm"),
];

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_string(), path.clone()))
        })
        .collect()
}

/// A concrete URL path for a templated one: any parameter value will do to reach the handler.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the router has a handler for `method path` (under `prefix`): anything but the JSON
/// 404 of the fallback ("No route for …") and the 405 of a path without that method.
async fn routed(app: &TestApp, method: &str, path: &str, prefix: &str) -> bool {
    let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let r = common::client()
        .request(m, app.url(&format!("{prefix}{}", concrete(path))))
        .fetch()
        .await;
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let fallback = status == StatusCode::NOT_FOUND && body.contains("No route for");
    !(fallback || status == StatusCode::METHOD_NOT_ALLOWED)
}

#[tokio::test]
async fn every_route_is_in_the_document_and_every_operation_is_routed() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/openapi.json")).fetch().await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    let ops = operations(&doc);

    // The router's own table: the generated part and the routes it names as not in the document.
    let router = pulseboard_web::api_routes().into_openapi();
    let table: BTreeSet<(String, String)> = operations(&serde_json::to_value(&router).unwrap());
    let unlisted: BTreeSet<(String, String)> = pulseboard_web::NOT_IN_DOCUMENT
        .iter()
        .map(|(m, p)| (m.to_ascii_lowercase(), p.to_string()))
        .collect();
    let excluded: BTreeSet<(String, String)> = EXCLUDED
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(table, ops, "the served document is the router's");
    assert_eq!(
        unlisted, excluded,
        "routes left out of the document must be listed in this test's EXCLUDED, with a reason"
    );
    assert!(ops.is_disjoint(&excluded));

    // The paths the router serves, read from its Debug output (axum has no API to list them): a
    // route added with a plain `.route()` shows up here even though the document lacks it.
    let debug = format!("{:?}", pulseboard_web::app_routes());
    // `path_router: PathRouter { routes: {…}, node: Node { paths: {RouteId(0): "/healthz", …} } }`,
    // before the fallback router (which holds the web app's catch-all).
    let node = debug
        .split("fallback_router")
        .next()
        .and_then(|d| d.split("node: Node").nth(1))
        .expect("the router's Debug output names its node");
    let served: BTreeSet<String> = node
        .split("RouteId(")
        .skip(1)
        .filter_map(|s| s.split('"').nth(1).map(str::to_owned))
        .collect();
    assert!(served.len() > 20, "paths read from the router: {served:?}");
    let known: BTreeSet<String> = ops
        .iter()
        .chain(&excluded)
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(served, known, "served paths = documented paths + EXCLUDED");

    // Walk the app: on every served path, at the root and under /api, each method reaches a
    // handler exactly when it is documented (or excluded); any other method is 405.
    for path in &served {
        for method in METHODS {
            let key = (method.to_owned(), path.clone());
            let expected = ops.contains(&key) || excluded.contains(&key);
            for prefix in ["", "/api"] {
                assert_eq!(
                    routed(&app, method, path, prefix).await,
                    expected,
                    "{} {prefix}{path}: routed and documented must agree",
                    method.to_uppercase()
                );
            }
        }
    }
    for (method, path) in FORMERLY_DOCUMENTED {
        assert!(
            ops.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} was documented before and is missing now"
        );
    }
    // A path nobody routed is the fallback's 404, so the walk above can tell the two apart.
    assert!(!routed(&app, "get", "/no-such-route/{id}", "/api").await);
    app.stop().await;
}

#[tokio::test]
async fn operations_document_the_statuses_the_machinery_can_answer() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .fetch_json()
        .await;
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = &doc["components"]["securitySchemes"];
    for scheme in ["cookie", "bearer", "apiToken"] {
        assert!(schemes[scheme].is_object(), "security scheme {scheme}");
    }
    assert!(doc["components"]["schemas"]["Error"]["properties"]["message"].is_object());
    let mut ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let what = format!("{} {path}", method.to_uppercase());
        let responses = op["responses"].as_object().expect("responses");
        let has = |s: &str| responses.contains_key(s);
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('1') || s.starts_with('2')),
            "{what}: a success status"
        );
        assert!(has("503"), "{what}: 503 (request timeout)");
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{what}: a tag"
        );
        assert!(
            ids.insert(op["operationId"].as_str().unwrap_or("").to_owned()),
            "{what}: a unique operationId"
        );
        // `security: [{}]` marks the routes that need no login; every other one can answer 401.
        let public = op["security"].as_array().is_some_and(|s| {
            s.iter()
                .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
        });
        if !public {
            assert!(has("401"), "{what}: 401");
        }
        if let Some(scope) = op.get("x-scope") {
            let forbidden = responses["403"]["description"].as_str().unwrap_or("");
            assert!(
                forbidden.contains(scope.as_str().unwrap()) || forbidden.contains("admin"),
                "{what}: 403 names the scope {scope}"
            );
        }
        if path.contains('{') {
            assert!(has("404"), "{what}: 404 for another user's or no item");
        }
        if op.get("requestBody").is_some() {
            for s in ["400", "413", "415", "422"] {
                assert!(has(s), "{what}: {s} for a bad body");
            }
        }
    }
    // Bodies that Input<T> accepts as JSON or as a form say so.
    let create_task = &doc["paths"]["/tasks"]["post"]["requestBody"]["content"];
    assert!(create_task["application/json"].is_object());
    assert!(create_task["application/x-www-form-urlencoded"].is_object());
    app.stop().await;
}
