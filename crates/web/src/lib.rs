//! The HTTP API and the embedded web app.
//!
//! Handlers are thin: they parse input into domain types, call storage or enqueue a job, and map
//! errors through [`error::ApiError`]. Every route is served at the root and again under `/api`.

pub mod attempts;
pub mod auth;
pub mod client_ip;
pub mod error;
pub mod etag;
pub mod extract;
pub mod idempotency;
pub mod layers;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod state;

pub use auth::Keys;
pub use state::AppState;

use crate::error::ApiError;
use axum::extract::{DefaultBodyLimit, FromRequestParts, OriginalUri, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use routes::{admin, docs, health, sessions, tasks, unsubscribe, users};
use std::time::Duration;
use tower::Layer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

/// Whether the request came in under `/api` (cookie paths follow the prefix the client uses).
pub struct ApiPrefix(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for ApiPrefix {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| u.0.path().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned());
        Ok(ApiPrefix(path == "/api" || path.starts_with("/api/")))
    }
}

/// Every API route, each with its OpenAPI operation (the handler's `#[utoipa::path]`): the
/// document ([`openapi::document`]) is split from this same router, so the two cannot drift.
/// Routes that are not part of the API document are added in [`app_routes`].
pub fn api_routes() -> OpenApiRouter<AppState> {
    use routes::{
        account, capture, channels, checks, feed, imports, logs, resources, screenshots, tokens,
    };
    // Watch: uploads (ZIP imports, screenshots) lift the app-wide body limit on these two
    // routes; the handlers enforce http.upload_limit_bytes and keep JSON bodies at the JSON limit.
    let unlimited = |(schemas, paths, router): UtoipaMethodRouter<AppState>| {
        (schemas, paths, router.layer(DefaultBodyLimit::disable()))
    };
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(
            users::register,
            users::me,
            users::update_settings,
            account::delete
        ))
        .routes(routes!(account::export))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::delete))
        .routes(routes!(unsubscribe::confirm, unsubscribe::apply))
        // Clients of the seed refresh with PUT /session: the same handler as POST /session/refresh.
        .routes(routes!(
            sessions::login,
            sessions::refresh_put,
            sessions::logout
        ))
        .routes(routes!(sessions::refresh))
        .routes(routes!(tasks::list, tasks::create))
        .routes(routes!(tasks::get, tasks::update, tasks::delete))
        .routes(unlimited(routes!(resources::list, resources::create)))
        .routes(unlimited(routes!(
            resources::get,
            screenshots::upload_screenshot,
            resources::delete
        )))
        // Added after the layer above: a JSON body, under the app-wide limit.
        .routes(routes!(checks::update))
        .routes(routes!(screenshots::screenshot))
        .routes(routes!(capture::capture))
        .routes(routes!(checks::check_now))
        .routes(routes!(imports::processing_request))
        .routes(routes!(feed::feed))
        .routes(routes!(channels::list, channels::create))
        .routes(routes!(channels::get, channels::update, channels::delete))
        .routes(routes!(channels::test))
        .routes(routes!(channels::confirm_page, channels::confirm))
        .routes(routes!(admin::queues))
        .routes(routes!(admin::retry))
        .routes(routes!(admin::discard))
        .routes(routes!(logs::list))
        .routes(routes!(logs::stream))
        .routes(routes!(logs::pdf))
}

/// Routes served next to the API but not described in its document: the document itself and
/// the page that browses it. Listed for the route test (crates/pulseboard/tests/openapi.rs).
pub const NOT_IN_DOCUMENT: [(&str, &str); 3] = [
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs.js"),
];

/// The routes served at the root and again under `/api`: the API and the document's own routes.
/// Public so that the route test can list what is actually routed.
pub fn app_routes() -> Router<AppState> {
    let (api, _) = api_routes().split_for_parts();
    api.route("/openapi.json", get(docs::openapi))
        .route("/docs", get(docs::page))
        .route("/docs.js", get(docs::script))
        .method_not_allowed_fallback(method_not_allowed)
}

/// The whole application, with its middleware.
pub fn router(state: AppState) -> Router {
    let cfg = state.config.clone();
    let mut origins: Vec<HeaderValue> = cfg
        .allowed_origins()
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    origins.extend(HeaderValue::from_str(&cfg.public_origin()).ok());
    let request_id = HeaderName::from_static("x-request-id");
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::PUT,
            Method::DELETE,
        ])
        .allow_headers([
            CONTENT_TYPE,
            axum::http::header::AUTHORIZATION,
            request_id.clone(),
        ])
        .expose_headers([request_id.clone(), axum::http::header::RETRY_AFTER])
        .max_age(Duration::from_secs(3600));
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request| {
            let id = req
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        })
        .on_request(())
        .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
            tracing::info!(status = res.status().as_u16(), duration_ms = latency.as_secs_f64() * 1000.0, "request");
        })
        .on_failure(());

    Router::new()
        .merge(app_routes())
        .nest("/api", app_routes())
        .fallback(static_or_not_found)
        .layer(middleware::from_fn(crate::layers::json_errors))
        .layer(DefaultBodyLimit::max(cfg.http.json_body_limit_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::layers::csrf,
        ))
        .layer(cors)
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::layers::security_headers,
        ))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish. The connection loop,
/// with its timeouts and connection cap (`http.header_read_timeout_secs`,
/// `keep_alive_timeout_secs`, `max_connections`), is in [`server`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = server::Limits::from_config(&state.config.http);
    // Trailing slashes are trimmed before routing, so `/tasks/` is `/tasks`.
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(state));
    server::run(listener, app, limits, shutdown).await
}

/// A request taking longer than `http.request_timeout_secs` gets 503. Multipart uploads (ZIP
/// imports, screenshots: the only routes that take them) get `http.upload_timeout_secs`, so that a
/// large file on a slow link is not cut off; the body limit still bounds what they may send.
async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let http = &state.config.http;
    let upload = req.method() == Method::POST
        && req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            });
    let secs = if upload {
        http.upload_timeout_secs
    } else {
        http.request_timeout_secs
    };
    match tokio::time::timeout(Duration::from_secs(secs), next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(format!(
            "The request took longer than {secs} s; please try again"
        ))
        .into_response(),
    }
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "Method {} is not allowed on {}",
        req.method(),
        req.uri().path()
    ))
}

#[derive(rust_embed::RustEmbed)]
#[folder = "../../frontend/"]
struct Assets;

/// The web app's files for GET requests; a JSON 404 for everything else.
async fn static_or_not_found(req: Request) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        let path = req.uri().path().trim_start_matches('/');
        let path = if path.is_empty() { "index.html" } else { path };
        if let Some(file) = Assets::get(path) {
            let mime = file.metadata.mimetype().to_owned();
            return (
                [
                    (CONTENT_TYPE, mime),
                    // Files change with each release; revalidate rather than serve stale code.
                    (CACHE_CONTROL, "no-cache".to_owned()),
                ],
                file.data.into_owned(),
            )
                .into_response();
        }
    }
    ApiError::NotFound(format!(
        "No route for {} {}",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}
