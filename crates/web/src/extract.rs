//! Request bodies: JSON or `application/x-www-form-urlencoded`, decoded into a typed request, with
//! a clear error for each way a body can be wrong.

use crate::error::ApiError;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

pub struct Input<T>(pub T);

impl<S, T> FromRequest<S> for Input<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match content_type.as_str() {
            "application/json" => axum::Json::<T>::from_request(req, state)
                .await
                .map(|axum::Json(v)| Input(v))
                .map_err(json_rejection),
            "application/x-www-form-urlencoded" => axum::Form::<T>::from_request(req, state)
                .await
                .map(|axum::Form(v)| Input(v))
                .map_err(form_rejection),
            "" => Err(ApiError::UnsupportedMediaType(
                "Missing Content-Type: send application/json or application/x-www-form-urlencoded".into(),
            )),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "Unsupported Content-Type {other}: send application/json or application/x-www-form-urlencoded"
            ))),
        }
    }
}

fn too_large(status: axum::http::StatusCode) -> Option<ApiError> {
    (status == axum::http::StatusCode::PAYLOAD_TOO_LARGE)
        .then(|| ApiError::PayloadTooLarge("Request body is too large".into()))
}

pub fn json_rejection(r: JsonRejection) -> ApiError {
    if let Some(e) = too_large(r.status()) {
        return e;
    }
    match r {
        JsonRejection::JsonDataError(e) => ApiError::Validation {
            message: format!("Invalid request body: {}", source_text(&e)),
            details: Default::default(),
        },
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::BadRequest(format!("Malformed JSON: {}", source_text(&e)))
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("Content-Type must be application/json".into())
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

fn form_rejection(r: FormRejection) -> ApiError {
    if let Some(e) = too_large(r.status()) {
        return e;
    }
    match r {
        FormRejection::FailedToDeserializeForm(e) => form_error(&e),
        FormRejection::FailedToDeserializeFormBody(e) => form_error(&e),
        other => ApiError::BadRequest(other.body_text()),
    }
}

fn form_error(e: &dyn std::error::Error) -> ApiError {
    ApiError::Validation {
        message: format!("Invalid form body: {}", source_text(e)),
        details: Default::default(),
    }
}

/// The innermost cause, which is what serde has to say ("missing field `email` at line 1 …").
fn source_text(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
