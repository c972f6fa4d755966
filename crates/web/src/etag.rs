//! Conditional GETs. A read that clients poll (`GET /tasks`, `GET /resources`, one resource)
//! answers with a strong `ETag` computed from the exact bytes of its JSON body and
//! `Cache-Control: private, no-cache` (store it, but revalidate each time; never in a shared cache).
//! A request whose `If-None-Match` names that tag (weak comparison, lists and `*`, RFC 9110 §13.1.2)
//! gets 304 with the tag and no body. The tag depends only on the body, so a 304 means the client
//! already holds exactly these bytes: no query is added and no state is kept.
//!
//! The response compression layer runs after this and keeps the tag; If-None-Match uses the weak
//! comparison, so a compressed and an identity copy of one body revalidate alike.

use crate::error::{ApiError, ApiResult};
use axum::extract::FromRequestParts;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

const CACHE: HeaderValue = HeaderValue::from_static("private, no-cache");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The request's `If-None-Match` values (usually none), without copying the other headers.
#[derive(Default)]
pub struct IfNoneMatch(Vec<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(
            parts
                .headers
                .get_all(IF_NONE_MATCH)
                .iter()
                .cloned()
                .collect(),
        ))
    }
}

impl IfNoneMatch {
    /// Whether any listed tag matches `tag` (a quoted opaque tag) by the weak comparison, or the
    /// list is `*`. A malformed list matches nothing from where it breaks, so it costs a full answer.
    pub fn matches(&self, tag: &str) -> bool {
        self.0
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|list| list_matches(list, tag))
    }
}

fn list_matches(list: &str, tag: &str) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            return false;
        }
        let opaque = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(inner) = opaque.strip_prefix('"') else {
            return false;
        };
        let Some(end) = inner.find('"') else {
            return false;
        };
        if &opaque[..end + 2] == tag {
            return true;
        }
        rest = &inner[end + 1..];
    }
}

/// The strong tag of a body: the first 128 bits of its SHA-256, quoted.
pub fn tag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    tag.push_str(&hex::encode(&digest[..16]));
    tag.push('"');
    tag
}

/// 200 with `body` (JSON), its `ETag` and `Cache-Control: private, no-cache`; or 304 with the tag
/// and no body when the request's `If-None-Match` already names it.
pub fn respond(if_none_match: &IfNoneMatch, body: Vec<u8>) -> Response {
    let tag = tag_of(&body);
    let etag = HeaderValue::from_str(&tag).expect("hex is a valid header value");
    if if_none_match.matches(&tag) {
        return (
            StatusCode::NOT_MODIFIED,
            [(ETAG, etag), (CACHE_CONTROL, CACHE)],
        )
            .into_response();
    }
    (
        [(CONTENT_TYPE, JSON), (ETAG, etag), (CACHE_CONTROL, CACHE)],
        body,
    )
        .into_response()
}

/// [`respond`] for a value serialised as JSON.
pub fn json<T: Serialize + ?Sized>(if_none_match: &IfNoneMatch, value: &T) -> ApiResult<Response> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(respond(if_none_match, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inm(values: &[&str]) -> IfNoneMatch {
        IfNoneMatch(
            values
                .iter()
                .map(|v| HeaderValue::from_str(v).unwrap())
                .collect(),
        )
    }

    #[test]
    fn if_none_match_lists_weak_tags_and_star() {
        let tag = tag_of(b"[]");
        assert_eq!(tag.len(), 34);
        assert!(inm(&[&tag]).matches(&tag));
        assert!(inm(&[&format!("W/{tag}")]).matches(&tag));
        assert!(inm(&[&format!("\"x\", W/\"y\" ,{tag}")]).matches(&tag));
        assert!(inm(&["\"a\"", &tag]).matches(&tag));
        assert!(inm(&[" * "]).matches(&tag));
        assert!(!inm(&[]).matches(&tag));
        assert!(!inm(&["\"a\", W/\"b\""]).matches(&tag));
        assert!(!inm(&[&tag[1..33]]).matches(&tag)); // unquoted
        assert!(!inm(&["\"a\", *"]).matches(&tag)); // `*` only alone
        assert!(!inm(&["\"abc"]).matches(&tag));
        assert_ne!(tag_of(b"[1]"), tag);
    }
}
