//! Safe retries: an `Idempotency-Key` header on `POST /tasks` and `POST /resources` (JSON or form
//! body). The first request with a key (per user) reserves it in the very transaction that creates
//! the task or resource and stores its response there too (see `storage::idempotency`); a repeat
//! within 24 hours with the same method, path and body bytes gets that response again, with
//! `Idempotent-Replayed: true`, and creates nothing. The same key with another body is 422; a key
//! whose first request is still running is 409 with `Retry-After` (in practice a concurrent repeat
//! waits for the first one's commit and is answered with its response). Without the header the
//! request takes exactly the path it took before.

use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use pulseboard_domain::UnixMillis;
use pulseboard_storage::idempotency::{self, Earlier};
use pulseboard_storage::{Conn, Db, StorageError};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;

/// What a creation run under a key is: a write on the shared transaction returning its JSON body.
type Write<'c> = Pin<Box<dyn Future<Output = pulseboard_storage::Result<String>> + Send + 'c>>;

pub const HEADER: &str = "Idempotency-Key";
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A valid key and the fingerprint of the request that carries it.
#[derive(Debug, Clone)]
pub struct Key {
    pub key: String,
    pub fingerprint: String,
}

fn invalid(reason: &str) -> ApiError {
    ApiError::Validation {
        message: format!("Invalid {HEADER} header: {reason}"),
        details: [(HEADER.to_owned(), reason.to_owned())].into(),
    }
}

/// The request's `Idempotency-Key`, if any: 1–255 visible ASCII characters, else 422.
pub fn key_of(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid("must be sent once"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(invalid("must be 1 to 255 visible ASCII characters"));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// SHA-256 (hex) of the method, the path (without the `/api` prefix) and the body bytes.
pub fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let path = path
        .strip_prefix("/api")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// [`Input`] plus the request's idempotency key. Without the header this is `Input` itself; with
/// it the body is read whole first (under the same limit) to fingerprint it.
pub struct Idempotent<T> {
    pub body: T,
    pub key: Option<Key>,
}

impl<S, T> FromRequest<S> for Idempotent<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Some(key) = key_of(req.headers())? else {
            let Input(body) = Input::<T>::from_request(req, state).await?;
            return Ok(Idempotent { body, key: None });
        };
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge("Request body is too large".into()))?;
        let fingerprint = fingerprint(&parts.method, parts.uri.path(), &bytes);
        let Input(body) =
            Input::<T>::from_request(Request::from_parts(parts, Body::from(bytes)), state).await?;
        Ok(Idempotent {
            body,
            key: Some(Key { key, fingerprint }),
        })
    }
}

/// Runs a creation under `key`: reserves the key, runs `create` (which returns the JSON body of
/// its 201 answer) and stores that answer, all in one `Db::write`. `Err(earlier)` when the key was
/// used before; nothing was created then.
pub async fn create<F>(
    db: &Db,
    user_id: i64,
    key: Key,
    now: UnixMillis,
    create: F,
) -> Result<Result<String, Earlier>, StorageError>
where
    F: for<'c> FnOnce(&'c mut Conn) -> Write<'c> + Send + 'static,
{
    let Key { key, fingerprint } = key;
    db.write(move |conn| {
        Box::pin(async move {
            if let Some(earlier) =
                idempotency::reserve(&mut *conn, user_id, &key, &fingerprint, now).await?
            {
                return Ok(Err(earlier));
            }
            let body = create(&mut *conn).await?;
            idempotency::finish(
                &mut *conn,
                user_id,
                &key,
                StatusCode::CREATED.as_u16(),
                &body,
            )
            .await?;
            Ok(Ok(body))
        })
    })
    .await
}

/// The 201 answer of a fresh creation.
pub fn created(body: String) -> Response {
    (StatusCode::CREATED, [(CONTENT_TYPE, JSON)], body).into_response()
}

/// The answer to a request whose key was used before.
pub fn answer(earlier: Earlier) -> Response {
    match earlier {
        Earlier::Replay { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [
                (CONTENT_TYPE, JSON),
                (REPLAYED, HeaderValue::from_static("true")),
            ],
            body,
        )
            .into_response(),
        Earlier::Mismatch => ApiError::Validation {
            message: format!(
                "This {HEADER} was already used with a different request; use a new key"
            ),
            details: [(
                HEADER.to_owned(),
                "was used with a different request".to_owned(),
            )]
            .into(),
        }
        .into_response(),
        Earlier::InProgress => {
            let mut resp = ApiError::Conflict(format!(
                "A request with this {HEADER} is still being processed; retry shortly"
            ))
            .into_response();
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(1u32));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn keys_are_1_to_255_visible_ascii_characters() {
        assert_eq!(key_of(&headers(&[])).unwrap(), None);
        assert_eq!(
            key_of(&headers(&[b"a-Z_0~!"])).unwrap().as_deref(),
            Some("a-Z_0~!")
        );
        assert!(key_of(&headers(&[&[b'k'; 255]])).unwrap().is_some());
        for bad in [&b""[..], b"a b", b"a\tb", "é".as_bytes(), &[b'k'; 256]] {
            assert!(key_of(&headers(&[bad])).is_err(), "{bad:?}");
        }
        assert!(key_of(&headers(&[b"a", b"b"])).is_err());
    }

    #[test]
    fn fingerprints_cover_method_path_and_body_but_not_the_api_prefix() {
        let f = fingerprint(&Method::POST, "/tasks", b"{}");
        assert_eq!(f.len(), 64);
        assert_eq!(fingerprint(&Method::POST, "/api/tasks", b"{}"), f);
        assert_ne!(fingerprint(&Method::POST, "/tasks", b"{ }"), f);
        assert_ne!(fingerprint(&Method::POST, "/resources", b"{}"), f);
        assert_ne!(fingerprint(&Method::PUT, "/tasks", b"{}"), f);
        assert_ne!(fingerprint(&Method::POST, "/apitasks", b"{}"), f);
    }
}
