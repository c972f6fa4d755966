//! `POST /resources/{id or uuid}/screenshot/capture`: a worker takes a screenshot of the
//! resource with headless Chromium (`watch::capture`) and stores it like an uploaded one.

use crate::auth::{CurrentUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::ApiPrefix;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulseboard_config::CaptureMode;
use pulseboard_jobs::handlers::CaptureScreenshot;
use pulseboard_storage::resources::{self, ResourceKey};
use pulseboard_watch::capture::find_chromium;
use serde_json::json;

fn not_found() -> ApiError {
    ApiError::NotFound("Resource not found".into())
}

/// 202 `{job_id, resource_uuid, screenshot_url}`; the worker stores the PNG, which then shows at
/// `screenshot_url` with a `photo_added` event. 503 when this server has no Chromium; 422 when
/// the URL is a private or local address that captures may not reach.
#[utoipa::path(
    post,
    path = "/resources/{key}/screenshot/capture",
    tag = "resources",
    params(("key" = String, Path, description = "the resource's id or uuid")),
    responses(
        (status = 202, description = "a capture job is queued; the PNG then shows at screenshot_url", body = Object),
        (status = 403, description = "an API token without the resources:write scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such resource of this user", body = crate::openapi::ErrorBody),
        (status = 422, description = "the URL is a private or local address that captures may not reach", body = crate::openapi::ErrorBody),
        (status = 503, description = "this server has no Chromium, or the capture queue is full", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:write")))
)]
pub async fn capture(
    State(state): State<AppState>,
    user: CurrentUser,
    prefix: ApiPrefix,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    user.require(Scope::ResourcesWrite)?;
    let key = ResourceKey::parse(&key).ok_or_else(not_found)?;
    let resource = resources::get(&state.db, user.id, &key)
        .await?
        .ok_or_else(not_found)?;
    let cfg = &state.config;
    match cfg.screenshots.capture {
        CaptureMode::Never => {
            return Err(ApiError::Unavailable(
                "Screenshot capture is switched off on this server (screenshots.capture)".into(),
            ))
        }
        // Looked up on each request (a stat or two): installing Chromium needs no restart.
        CaptureMode::Auto if find_chromium(&cfg.screenshots.chromium_path).is_none() => {
            return Err(ApiError::Unavailable(
                "Screenshot capture is not available: Chromium is not installed on this server \
                 (install the chromium package or set screenshots.chromium_path; \
                 screenshots.capture: always when only the workers have it)"
                    .into(),
            ))
        }
        CaptureMode::Auto | CaptureMode::Always => {}
    }
    // The part of the guard that needs no DNS, now; the worker checks again after resolving
    // (and every request the page makes).
    if let Ok(url) = url::Url::parse(&resource.full_url) {
        if state.checker.guard().check_url(&url).is_err() {
            let message = "Screenshots of private or local addresses are not allowed".to_owned();
            return Err(ApiError::Validation {
                message: message.clone(),
                details: [("url".to_owned(), message)].into(),
            });
        }
    }
    let job = CaptureScreenshot {
        user_id: user.id,
        resource_uuid: resource.uuid.clone(),
    };
    // A second click while a capture of this resource waits or runs gets that capture.
    let job_id = match state.queue.unfinished(&job).await? {
        Some(id) => Some(id),
        None => state.queue.enqueue(&job).await?,
    };
    let screenshot_url = format!(
        "{}/resources/{}/screenshot",
        if prefix.0 { "/api" } else { "" },
        resource.uuid
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "job_id": job_id,
            "resource_uuid": resource.uuid,
            "status": "queued",
            "screenshot_url": screenshot_url,
        })),
    )
        .into_response())
}
