//! Admin-only views of the application log: the last lines, a live WebSocket stream and a PDF.
//!
//! The lines come from the process-wide [`pulseboard_logs::global`] hub, which the binary's
//! telemetry feeds. `?lines=N` (default `logging.default_lines`, at most the buffer size) and
//! `?level=warn` (that level and more severe) apply to all three.

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulseboard_logs::{Level, LogLine};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// A viewer whose socket accepts nothing for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct LogQuery {
    pub lines: usize,
    pub level: Option<Level>,
}

fn invalid(field: &str, message: String) -> ApiError {
    let mut details = BTreeMap::new();
    details.insert(field.to_owned(), message.clone());
    ApiError::Validation { message, details }
}

pub(crate) fn parse_query(state: &AppState, raw: Option<&str>) -> ApiResult<LogQuery> {
    let hub = pulseboard_logs::global();
    let max = state.config.logging.buffer_lines.min(hub.capacity()).max(1);
    let mut lines = state.config.logging.default_lines.min(max);
    let mut level = None;
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let v = v.trim();
        match k.as_ref() {
            "lines" if !v.is_empty() => {
                let n: usize = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    invalid(
                        "lines",
                        format!("lines must be a whole number from 1 to {max}"),
                    )
                })?;
                // More than the buffer holds is simply everything there is.
                lines = n.min(max);
            }
            "level" if !v.is_empty() => {
                level = Some(match v.to_ascii_lowercase().as_str() {
                    "trace" => Level::TRACE,
                    "debug" => Level::DEBUG,
                    "info" => Level::INFO,
                    "warn" | "warning" => Level::WARN,
                    "error" => Level::ERROR,
                    _ => {
                        return Err(invalid(
                            "level",
                            "level must be one of trace, debug, info, warn, error".into(),
                        ))
                    }
                });
            }
            _ => {}
        }
    }
    Ok(LogQuery { lines, level })
}

/// `GET /logs?lines=N&level=warn` → `{logs: [{timestamp, level, target, message}]}`, newest last.
#[utoipa::path(
    get,
    path = "/logs",
    tag = "admin",
    params(("lines" = Option<i64>, Query, minimum = 1, description = "how many of the latest lines"), ("level" = Option<String>, Query, description = "the lowest level: trace, debug, info, warn or error")),
    responses(
        (status = 200, description = "the latest log lines, newest last", body = crate::openapi::LogLines),
        (status = 403, description = "not an administrator (or a token without the admin scope)", body = crate::openapi::ErrorBody),
        (status = 422, description = "lines or level is invalid", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("admin")))
)]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    user.require_admin(&state).await?;
    let q = parse_query(&state, raw.as_deref())?;
    let logs = pulseboard_logs::global().recent(q.lines, q.level);
    Ok(Json(json!({ "logs": logs })))
}

/// `GET /logs/stream`: a WebSocket that sends `{logs: [...]}` with the last lines on connect, then
/// each new line as one `{timestamp, level, target, message}` message. The access cookie (or a
/// Bearer header) authenticates the upgrade.
#[utoipa::path(
    get,
    path = "/logs/stream",
    tag = "admin",
    params(("lines" = Option<i64>, Query, minimum = 1, description = "how many of the latest lines"), ("level" = Option<String>, Query, description = "the lowest level: trace, debug, info, warn or error")),
    responses(
        (status = 101, description = "a WebSocket: the last lines as {logs: [...]}, then each new line"),
        (status = 400, description = "not a WebSocket upgrade", body = crate::openapi::ErrorBody),
        (status = 403, description = "not an administrator (or a token without the admin scope)", body = crate::openapi::ErrorBody),
        (status = 422, description = "lines or level is invalid", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("admin")))
)]
pub async fn stream(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    // Who is asking comes first: a non-admin gets 403 whether or not this is a WebSocket request.
    user.require_admin(&state).await?;
    // The handshake is a GET with the cookie, so the CSRF check does not run: a page of another
    // site must not open an admin's log stream (cross-site WebSocket hijacking).
    if let Err(origin) = crate::layers::origin_allowed(&state.config, &headers) {
        return Err(ApiError::Forbidden(format!(
            "WebSocket from origin {origin} refused"
        )));
    }
    let q = parse_query(&state, raw.as_deref())?;
    let ws =
        ws.map_err(|e| ApiError::BadRequest(format!("{e}: connect with a WebSocket client")))?;
    Ok(ws.on_upgrade(move |socket| watch(socket, q)))
}

async fn send_json(socket: &mut WebSocket, value: &impl serde::Serialize) -> bool {
    let Ok(text) = serde_json::to_string(value) else {
        return true;
    };
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

async fn watch(mut socket: WebSocket, q: LogQuery) {
    let (recent, mut rx) = pulseboard_logs::global().subscribe(q.lines, q.level);
    if !send_json(&mut socket, &json!({ "logs": recent })).await {
        return;
    }
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Ok(line) => {
                    if q.level.is_some_and(|m| line.level > m) {
                        continue;
                    }
                    if !send_json(&mut socket, &line).await {
                        return;
                    }
                }
                // A slow viewer skips ahead: the server never waits for it.
                Err(RecvError::Lagged(skipped)) => {
                    let note = LogLine {
                        timestamp: pulseboard_logs::now(),
                        level: Level::WARN,
                        target: "pulseboard_web::logs".into(),
                        message: format!("{skipped} lines skipped: this viewer fell behind"),
                    };
                    if !send_json(&mut socket, &note).await {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // Pings are answered by axum; anything else from the client is ignored.
                Some(Ok(_)) => {}
            },
        }
    }
}

/// `GET /logs.pdf?lines=N&level=warn`: the same lines as `GET /logs`, as a PDF made on the server.
#[utoipa::path(
    get,
    path = "/logs.pdf",
    tag = "admin",
    params(("lines" = Option<i64>, Query, minimum = 1, description = "how many of the latest lines"), ("level" = Option<String>, Query, description = "the lowest level: trace, debug, info, warn or error")),
    responses(
        (status = 200, description = "the lines as a PDF", content_type = "application/pdf"),
        (status = 403, description = "not an administrator (or a token without the admin scope)", body = crate::openapi::ErrorBody),
        (status = 422, description = "lines or level is invalid", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("admin")))
)]
pub async fn pdf(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    user.require_admin(&state).await?;
    let q = parse_query(&state, raw.as_deref())?;
    let lines = pulseboard_logs::global().recent(q.lines, q.level);
    let level = q.level.map(|l| format!("{} and above", l.as_str()));
    // Layout and font subsetting take CPU time: keep them off the request threads.
    let bytes = tokio::task::spawn_blocking(move || {
        pulseboard_logs::render_pdf(
            &lines,
            &pulseboard_logs::PdfInfo {
                title: "Pulseboard logs",
                level: level.as_deref(),
                generated_at: &pulseboard_logs::now(),
            },
        )
    })
    .await
    .map_err(|e| ApiError::Internal(format!("PDF task: {e}")))?
    .map_err(|e| ApiError::Internal(format!("PDF rendering: {e}")))?;
    Ok((
        [
            (CONTENT_TYPE, "application/pdf"),
            (
                CONTENT_DISPOSITION,
                "attachment; filename=\"pulseboard-logs.pdf\"",
            ),
            (CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response())
}
