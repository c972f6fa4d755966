//! The OpenAPI document, generated from the code: each handler's `#[utoipa::path]` annotation and
//! the router that serves it ([`crate::api_routes`]), so a route cannot exist without its entry.
//!
//! Statuses that come from the shared machinery rather than from one handler are added here to
//! every operation they apply to, so the annotations only name what is particular to a route:
//! 401 (any authenticated route), 400/413/415/422 (a request body, see [`crate::extract::Input`]),
//! 403 (CSRF refusal of a cross-site cookie request on unsafe methods) and 503 (the request
//! timeout, a full password-hashing queue, an unavailable database).

use std::sync::OnceLock;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi as _, ToSchema};

/// The body of every error response (see [`crate::error::ApiError`]).
#[derive(ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)] // Describes the JSON that ApiError writes; never built.
pub struct ErrorBody {
    /// For people: what went wrong and what to do.
    message: String,
    /// For programs: a stable code such as `validation_failed` or `not_found`.
    #[schema(example = "validation_failed")]
    error: String,
    /// For 422: the message per field name.
    details: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Pulseboard API",
        description = "Every path is also served under /api (e.g. /api/tasks); a trailing slash is accepted. \
Errors are {message, error, details?}. Authentication: the pb_access http-only cookie or \
Authorization: Bearer <access_token>. Scripts use a personal API token (POST /tokens, from a \
signed-in session): Authorization: Bearer pb_…; each token carries scopes, a request outside them \
gets 403, a revoked or expired token 401. This document is generated from the code; see docs/api.md."
    ),
    security(("cookie" = []), ("bearer" = []), ("apiToken" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The document as served: built once from the router's annotations.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, paths) = crate::api_routes().split_for_parts();
        let mut doc = ApiDoc::openapi();
        doc.merge(paths);
        Shared.modify(&mut doc);
        doc
    })
}

/// The document as JSON text (what `GET /openapi.json` answers).
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the document serialises")
    })
}

struct Shared;

const SHARED: [(&str, &str); 9] = [
    ("BadRequest", "the body is not well-formed JSON"),
    ("Unauthorized", "not logged in, or an unknown, revoked or expired token (WWW-Authenticate: Bearer)"),
    ("Forbidden", "refused: a cross-site request with the session cookie (CSRF)"),
    ("NotFound", "no such item for this user"),
    ("PayloadTooLarge", "the body is larger than the limit"),
    ("UnsupportedMediaType", "send application/json or application/x-www-form-urlencoded"),
    ("Validation", "invalid input: details names each field"),
    ("TooManyRequests", "too many attempts; Retry-After says when to try again"),
    ("Unavailable", "the request took too long, or a bounded resource (the database, password hashing) is unavailable; Retry-After may say when to retry"),
];

impl Modify for Shared {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, description) in SHARED {
            components
                .responses
                .insert(name.to_owned(), RefOr::T(error_response(description)));
        }
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new("pb_access"),
            )),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiToken",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("pb_<43 base64url characters>")
                    .description(Some(
                        "A personal API token (POST /tokens). Scopes: tasks:read, tasks:write, \
resources:read, resources:write, status:write, admin (each operation's 403 names the one it needs). \
Out of scope → 403; unknown, revoked or expired → 401 with WWW-Authenticate: Bearer.",
                    ))
                    .build(),
            ),
        );
        for item in doc.paths.paths.values_mut() {
            for (method, op) in [
                (HttpMethod::Get, &mut item.get),
                (HttpMethod::Post, &mut item.post),
                (HttpMethod::Put, &mut item.put),
                (HttpMethod::Patch, &mut item.patch),
                (HttpMethod::Delete, &mut item.delete),
            ] {
                if let Some(op) = op {
                    add_shared(method, op);
                }
            }
        }
    }
}

fn add_shared(method: HttpMethod, op: &mut Operation) {
    // utoipa names an operation after its handler, and several modules have a `list` or a
    // `get`: the tag makes the name unique, as OpenAPI requires (the route test checks it).
    if let (Some(tag), Some(id)) = (op.tags.as_ref().and_then(|t| t.first()), &op.operation_id) {
        op.operation_id = Some(format!("{tag}_{id}"));
    }
    // `security(())` on an annotation marks a route that needs no login.
    let public = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
    let mut add = |status: &str, name: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    };
    if !public {
        add("401", "Unauthorized");
    }
    if !matches!(method, HttpMethod::Get) {
        add("403", "Forbidden");
    }
    add("503", "Unavailable");
    if op.request_body.is_some() {
        add("400", "BadRequest");
        add("413", "PayloadTooLarge");
        add("415", "UnsupportedMediaType");
        add("422", "Validation");
    }
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build(),
        )
        .build()
}

// Shapes of answers that handlers build as `serde_json::Value` (pages, the resource detail, an
// import's progress…). Described here rather than by the handlers' types; never built. The route
// tests check the answers, and schemathesis checks them against these (see .ci/schemathesis.sh).

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PageMeta {
    page: i64,
    per_page: i64,
    total_pages: i64,
    total_items: i64,
}

/// Path and query of this, the next and the previous page (the client's other query parameters
/// kept); null when there is none.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PageLinks {
    #[schema(rename = "self")]
    this: String,
    next: Option<String>,
    prev: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ResourcePage {
    items: Vec<crate::routes::watch_view::ResourceView>,
    meta: PageMeta,
    links: PageLinks,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventPage {
    items: Vec<crate::routes::watch_view::EventView>,
    meta: PageMeta,
    links: PageLinks,
}

/// One availability check.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Check {
    checked_at: String,
    /// Final HTTP status; null when no response arrived.
    status_code: Option<i64>,
    /// dns, connect, tls, timeout, too_many_redirects, blocked or other; null when it answered.
    error_kind: Option<String>,
    response_time_ms: i64,
    /// Final status 200-399.
    is_available: bool,
    /// The URL after redirects.
    final_url: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ScreenshotInfo {
    url: String,
    content_type: String,
    size_bytes: i64,
    source: String,
    created_at: String,
}

/// Percent of available checks (null without checks).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Uptime {
    #[schema(rename = "24h")]
    day: Option<f64>,
    #[schema(rename = "7d")]
    week: Option<f64>,
    #[schema(rename = "30d")]
    month: Option<f64>,
}

/// A resource with its latest checks (newest first), uptime, events and screenshot.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ResourceDetail {
    #[schema(inline)]
    #[serde(flatten)]
    resource: crate::routes::watch_view::ResourceView,
    checks: Vec<Check>,
    uptime: Uptime,
    events: Vec<crate::routes::watch_view::EventView>,
    screenshot: Option<ScreenshotInfo>,
}

/// The result of `POST /resources/{key}/check`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CheckResult {
    #[serde(flatten)]
    check: Check,
    uuid: String,
    full_url: String,
    unavailable_count: i64,
    /// This check reached monitor.max_retries and deleted the resource.
    resource_deleted: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportErrors {
    count: i64,
    /// The first 100 bad lines.
    error_urls: Vec<String>,
}

/// The progress of a ZIP import.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProcessingRequest {
    id: String,
    /// pending, in_process, succeeded or failed.
    status: String,
    /// Data lines in the CSV files (header and blank lines not counted).
    total: i64,
    processed: i64,
    created: i64,
    /// Lines repeating an earlier line or a URL already in the catalogue.
    duplicates: i64,
    errors: ImportErrors,
    /// Why the import failed (only when status is failed).
    failure: Option<String>,
    created_at: String,
    updated_at: String,
}

/// A ZIP import was accepted: follow `status_url`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportAccepted {
    request_id: String,
    status_url: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LogLine {
    timestamp: String,
    /// TRACE, DEBUG, INFO, WARN or ERROR.
    level: String,
    target: String,
    message: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LogLines {
    logs: Vec<LogLine>,
}

/// A ZIP of CSV files, one URL a line.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ZipUpload {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A PNG, JPEG or WebP image.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImageUpload {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}
