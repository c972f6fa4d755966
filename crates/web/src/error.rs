//! One error enum for every handler, mapped to the JSON error model:
//! `{"message": "...", "error": "machine_code", "details": {...}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pulseboard_domain::FieldError;
use pulseboard_storage::StorageError;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{message}")]
    Validation {
        message: String,
        details: BTreeMap<String, String>,
    },
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    /// 503 with `Retry-After`: a bounded resource is full right now (password hashing).
    #[error("{message}")]
    Busy {
        message: String,
        retry_after_secs: u64,
    },
    /// 507: the server has too little disk space for the request (an upload).
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable(_) | ApiError::Busy { .. } => "service_unavailable",
            ApiError::InsufficientStorage(_) => "insufficient_storage",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn not_logged_in() -> Self {
        ApiError::Unauthorized("You are not logged in".into())
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        let mut details = BTreeMap::new();
        details.insert(e.field.to_owned(), e.message.clone());
        ApiError::Validation {
            message: e.message,
            details,
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict => ApiError::Conflict("Already exists".into()),
            // The cause (a full disk, a lost connection) is for the log, not the client; the
            // client learns that retrying later is the remedy.
            StorageError::Unavailable(m) => database_unavailable(&m),
            e @ StorageError::Database(_) if e.is_outage() => database_unavailable(&e.to_string()),
            StorageError::Database(e) => ApiError::Internal(e.to_string()),
        }
    }
}

fn database_unavailable(detail: &str) -> ApiError {
    tracing::warn!(error = %detail, "database unavailable");
    ApiError::Busy {
        message: "The database is unavailable right now; please try again shortly".into(),
        retry_after_secs: 5,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            // Never show internals to the client; they are logged instead.
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "Something went wrong on our side; please try again".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = serde_json::json!({ "message": message, "error": self.code() });
        if let ApiError::Validation { details, .. } = &self {
            body["details"] = serde_json::to_value(details).unwrap_or_default();
        }
        let mut resp = (status, axum::Json(body)).into_response();
        // RFC 9110: a 401 names the scheme to use (Bearer: an API token or an access token).
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        }
        | ApiError::Busy {
            retry_after_secs, ..
        } = self
        {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        resp
    }
}
