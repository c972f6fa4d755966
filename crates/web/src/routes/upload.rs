//! Watch: reading multipart uploads (ZIP imports, screenshots). The upload routes lift the app-wide
//! body limit, so each checks its own: the declared length first, then the bytes as they come.

use super::watch_view::invalid;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};

pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub(crate) fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("The upload is too large".into())
    } else {
        ApiError::BadRequest(format!("Malformed multipart body: {}", e.body_text()))
    }
}

pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("The upload is too large: at most {} bytes", limit))
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// 413 when the declared body is too large for a file of `limit` bytes.
pub(crate) fn check_declared(declared: Option<u64>, limit: usize) -> ApiResult<()> {
    // The body also carries the multipart framing: allow a little over the file limit.
    if declared.is_some_and(|n| n > limit as u64 + 64 * 1024) {
        return Err(too_large(limit));
    }
    Ok(())
}

pub(crate) async fn open_multipart(
    req: Request,
    state: &AppState,
    limit: usize,
) -> ApiResult<Multipart> {
    check_declared(content_length(req.headers()), limit)?;
    Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

pub(crate) fn no_file_field() -> ApiError {
    invalid("file", "Attach the file in the multipart field `file`")
}
