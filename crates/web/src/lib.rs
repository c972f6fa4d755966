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
use axum::routing::{delete, get, post};
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

fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/user",
            post(users::register)
                .get(users::me)
                .patch(users::update_settings)
                .delete(routes::account::delete),
        )
        .route("/user/export", get(routes::account::export))
        .route(
            "/unsubscribe",
            get(unsubscribe::confirm).post(unsubscribe::apply),
        )
        .route(
            "/session",
            post(sessions::login)
                // Clients of the seed refresh with PUT /session: the same handler.
                .put(sessions::refresh)
                .delete(sessions::logout),
        )
        .route("/session/refresh", post(sessions::refresh))
        .route("/tasks", get(tasks::list).post(tasks::create))
        .route(
            "/tasks/{id}",
            get(tasks::get).patch(tasks::update).delete(tasks::delete),
        )
        // Watch: uploads (ZIP imports, screenshots) lift the app-wide body limit on these two
        // routes; the handlers enforce http.upload_limit_bytes and keep JSON bodies at the JSON limit.
        .route(
            "/resources",
            get(routes::resources::list)
                .post(routes::resources::create)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/resources/{key}",
            get(routes::resources::get)
                .post(routes::resources::upload_screenshot)
                .delete(routes::resources::delete)
                .layer(DefaultBodyLimit::disable())
                // After the layer: a JSON body, under the app-wide limit.
                .patch(routes::checks::update),
        )
        .route(
            "/resources/{key}/screenshot",
            get(routes::resources::screenshot),
        )
        .route(
            "/resources/{key}/screenshot/capture",
            post(routes::capture::capture),
        )
        .route("/resources/{key}/check", post(routes::checks::check_now))
        .route(
            "/processing-requests/{id}",
            get(routes::resources::processing_request),
        )
        .route("/feed", get(routes::resources::feed))
        .route("/admin/queues", get(admin::queues))
        .route("/admin/jobs/{id}/retry", post(admin::retry))
        .route("/admin/jobs/{id}", delete(admin::discard))
        .route("/logs", get(routes::logs::list))
        .route("/logs/stream", get(routes::logs::stream))
        .route("/logs.pdf", get(routes::logs::pdf))
        .route("/openapi.json", get(docs::openapi))
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
        .merge(api_routes())
        .nest("/api", api_routes())
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
