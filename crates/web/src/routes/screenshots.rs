//! Watch: a resource's screenshot: `POST /resources/{id or uuid}` with a multipart `file` uploads
//! one (PNG, JPEG or WebP, told by its bytes), `GET /resources/{id or uuid}/screenshot` serves it.
//! Captured screenshots (`super::capture`) end up in the same place.

use super::upload::{media_type, multipart_error, no_file_field, open_multipart, too_large};
use super::watch_view::{internal, invalid, not_found, resource_key, screenshot_path};
use crate::auth::{CurrentUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::ApiPrefix;
use axum::extract::{Path, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulseboard_domain::Timestamp;
use pulseboard_storage::blobs::{self, ScreenshotError};
use pulseboard_storage::{resources, screenshots};
use serde_json::json;

/// Screenshots above this size are refused (and never above `http.upload_limit_bytes`).
pub const SCREENSHOT_MAX_BYTES: usize = 10 * 1024 * 1024;

/// `POST /resources/{id or uuid}` multipart `file`: stores a PNG, JPEG or WebP screenshot.
#[utoipa::path(
    post,
    path = "/resources/{key}",
    tag = "resources",
    params(("key" = String, Path, description = "the resource's id or uuid")),
    request_body(description = "a PNG, JPEG or WebP image in the field `file`", content((crate::openapi::ImageUpload = "multipart/form-data"))),
    responses(
        (status = 201, description = "stored; a photo_added event is in the feed", body = Object),
        (status = 403, description = "an API token without the resources:write scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such resource of this user", body = crate::openapi::ErrorBody),
        (status = 507, description = "the server has too little disk space for the upload", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:write")))
)]
pub async fn upload_screenshot(
    State(state): State<AppState>,
    user: CurrentUser,
    prefix: ApiPrefix,
    Path(key): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    user.require(Scope::ResourcesWrite)?;
    let key = resource_key(&key)?;
    if media_type(req.headers()) != "multipart/form-data" {
        return Err(ApiError::UnsupportedMediaType(
            "Send the screenshot as multipart/form-data in the field `file`".into(),
        ));
    }
    let resource = resources::get(&state.db, user.id, &key)
        .await?
        .ok_or_else(not_found)?;
    let limit = SCREENSHOT_MAX_BYTES.min(state.config.http.upload_limit_bytes);
    let mut multipart = open_multipart(req, &state, limit).await?;
    let mut bytes: Option<Vec<u8>> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let mut buf = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if buf.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&chunk);
        }
        bytes = Some(buf);
        break;
    }
    let bytes = bytes.ok_or_else(no_file_field)?;
    // The same path as a captured screenshot: type by content, blob, row + photo_added event.
    let shot = blobs::store_screenshot(
        &state.db,
        &state.blobs,
        &resource,
        bytes.into(),
        "upload",
        Timestamp::now(),
    )
    .await
    .map_err(|e| match e {
        ScreenshotError::NotAnImage => invalid("file", "The file is not a PNG, JPEG or WebP image"),
        ScreenshotError::Storage(e) => e.into(),
        ScreenshotError::Blob(e) => internal(e),
    })?;
    let url = screenshot_path(&prefix, &resource.uuid);
    Ok((
        StatusCode::CREATED,
        [(LOCATION, url.clone())],
        Json(json!({
            "resource_uuid": resource.uuid,
            "url": url,
            "content_type": shot.content_type,
            "size_bytes": shot.size_bytes,
            "source": shot.source,
            "created_at": Timestamp::rfc3339(shot.created_at),
        })),
    )
        .into_response())
}

/// `GET /resources/{id or uuid}/screenshot`: the image.
#[utoipa::path(
    get,
    path = "/resources/{key}/screenshot",
    tag = "resources",
    params(("key" = String, Path, description = "the resource's id or uuid")),
    responses(
        (status = 200, description = "the image", content(("image/png"), ("image/jpeg"), ("image/webp"))),
        (status = 403, description = "an API token without the resources:read scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such resource of this user, or it has no screenshot", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:read")))
)]
pub async fn screenshot(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    user.require(Scope::ResourcesRead)?;
    let resource = resources::get(&state.db, user.id, &resource_key(&key)?)
        .await?
        .ok_or_else(not_found)?;
    let nf = || ApiError::NotFound("This resource has no screenshot".into());
    let shot = screenshots::screenshot_of(&state.db, resource.id)
        .await?
        .ok_or_else(nf)?;
    let bytes = state
        .blobs
        .get(&shot.blob_key)
        .await
        .map_err(internal)?
        .ok_or_else(nf)?;
    Ok((
        [
            (CONTENT_TYPE, shot.content_type),
            (CACHE_CONTROL, "private, no-cache".to_owned()),
            (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (CONTENT_DISPOSITION, "inline".to_owned()),
        ],
        bytes,
    )
        .into_response())
}
