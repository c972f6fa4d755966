//! Middleware that every response passes through: the browser's security headers, the CSRF origin
//! check, and one JSON error format for the rejections axum writes as plain text.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pulseboard_config::{Config, RunMode};

/// The web app and the API docs load only their own files: no inline script, no other origin, no
/// framing. Inline styles stay allowed: they cannot run code, and the server-rendered pages
/// (unsubscribe, the API docs) keep their few rules inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
     font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The policy for a page served as `host`: [`CONTENT_SECURITY_POLICY`], with the page's own
/// WebSocket origins added to `connect-src` (the live log), since browsers differ on whether
/// `'self'` covers `ws:`/`wss:`. A Host that is not a plain host[:port] gets the base policy.
fn content_security_policy(host: Option<&str>) -> HeaderValue {
    let plain = |h: &str| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    match host.filter(|h| plain(h)) {
        Some(host) => HeaderValue::from_str(&CONTENT_SECURITY_POLICY.replace(
            "connect-src 'self'",
            &format!("connect-src 'self' ws://{host} wss://{host}"),
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        None => HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    }
}

/// Adds the security headers to every response, unless a handler set its own.
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let csp = content_security_policy(req.headers().get(HOST).and_then(|h| h.to_str().ok()));
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(csp);
    let mut set = |name: header::HeaderName, value: &'static str| {
        h.entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "strict-origin-when-cross-origin");
    set(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if state.config.http.public_url.starts_with("https://") {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    res
}

/// Whether a browser request's `Origin` may act on this server: `http.public_url`'s origin or an
/// allowed origin (`Config::allowed_origins`); in development also the `Host` it was sent to, so
/// that any local port works. No `Origin` header: not a cross-site browser request.
pub fn origin_allowed(cfg: &Config, headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return Ok(());
    };
    let origin_lc = origin.trim_end_matches('/').to_ascii_lowercase();
    let same_host = cfg.env == RunMode::Development
        && headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| {
                origin_lc
                    .split_once("://")
                    .is_some_and(|(_, rest)| rest == host.to_ascii_lowercase())
            });
    if same_host
        || origin_lc == cfg.public_origin()
        || cfg
            .allowed_origins()
            .iter()
            .any(|o| o.eq_ignore_ascii_case(&origin_lc))
    {
        Ok(())
    } else {
        Err(origin.to_owned())
    }
}

/// Refuses state-changing requests sent by a browser from a foreign site (CSRF). SameSite=Lax
/// cookies already stop most; this also covers same-site subdomains and old browsers.
pub async fn csrf(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    if bearer_only(headers) {
        return next.run(req).await;
    }
    if let Err(origin) = origin_allowed(&state.config, headers) {
        return ApiError::Forbidden(format!(
            "Cross-site request refused: origin {origin} is not allowed"
        ))
        .into_response();
    }
    if headers.get(ORIGIN).is_none()
        && headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return ApiError::Forbidden("Cross-site request refused".into()).into_response();
    }
    next.run(req).await
}

/// A request that authenticates with `Authorization: Bearer` (an API token or an access JWT) and
/// carries no cookie: a foreign page cannot make a browser attach that header on its own, so there
/// is nothing to forge, and scripts on other origins may use their tokens. With a cookie present
/// the origin is still checked (the cookie could be what the request really relies on).
fn bearer_only(headers: &HeaderMap) -> bool {
    headers.get(header::COOKIE).is_none()
        && headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
            })
}

/// axum's extractors answer a bad path, query or body with a plain-text message; clients of this
/// API get every error in the one JSON format, with that message.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let plain = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text
    };
    let mut out = error_for(status, message).into_response();
    // Keep what the rejection said besides its body (Allow, Retry-After…).
    for (name, value) in parts.headers.iter() {
        if name != CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    *out.status_mut() = status;
    out
}

fn error_for(status: StatusCode, message: String) -> Response {
    let e = match status {
        StatusCode::BAD_REQUEST => ApiError::BadRequest(message),
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized(message),
        StatusCode::FORBIDDEN => ApiError::Forbidden(message),
        StatusCode::NOT_FOUND => ApiError::NotFound(message),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(message),
        StatusCode::CONFLICT => ApiError::Conflict(message),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(message),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(message),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Validation {
            message,
            details: Default::default(),
        },
        _ => {
            let code = status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
                .replace([' ', '-'], "_");
            let body = serde_json::json!({ "message": message, "error": code });
            return (status, axum::Json(body)).into_response();
        }
    };
    e.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Yaml};

    fn config(env: &str, public_url: &str) -> Config {
        let yaml = format!("env: {env}\nhttp:\n  public_url: {public_url}\n");
        Config::from_figment(
            figment::Figment::from(Yaml::string(pulseboard_config::DEFAULTS_YAML))
                .merge(Yaml::string(&yaml)),
        )
        .unwrap()
    }

    fn request(origin: &str, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        h.insert(HOST, HeaderValue::from_str(host).unwrap());
        h
    }

    #[test]
    fn only_a_bearer_request_without_cookies_skips_the_origin_check() {
        let mut h = request("https://evil.example", "x");
        assert!(!bearer_only(&h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer pb_abc"),
        );
        assert!(bearer_only(&h));
        h.insert(header::COOKIE, HeaderValue::from_static("pb_access=x"));
        assert!(!bearer_only(&h));
        h.remove(header::COOKIE);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(!bearer_only(&h));
    }

    #[test]
    fn the_policy_names_the_pages_own_websocket_origin_and_nothing_injected() {
        let csp = content_security_policy(Some("board.example.com:8443"));
        let csp = csp.to_str().unwrap();
        assert!(csp.contains(
            "connect-src 'self' ws://board.example.com:8443 wss://board.example.com:8443;"
        ));
        assert!(csp.contains("script-src 'self';"));
        for bad in ["evil.example; script-src *", "a b", ""] {
            assert_eq!(content_security_policy(Some(bad)), CONTENT_SECURITY_POLICY);
        }
        assert_eq!(content_security_policy(None), CONTENT_SECURITY_POLICY);
    }

    #[test]
    fn production_trusts_public_url_and_configured_origins_not_the_host_header() {
        let prod = config("production", "https://board.example.com");
        assert!(origin_allowed(&prod, &request("https://board.example.com", "x")).is_ok());
        // An attacker's page on a host that merely points at the server: Host matches Origin.
        assert!(origin_allowed(&prod, &request("http://evil.example", "evil.example")).is_err());
        // The development origins are not in effect in production.
        assert!(origin_allowed(&prod, &request("http://localhost", "localhost")).is_err());
        assert!(!prod
            .allowed_origins()
            .iter()
            .any(|o| o.contains("localhost")));

        let dev = config("development", "http://localhost:8080");
        assert!(origin_allowed(&dev, &request("http://127.0.0.1:9999", "127.0.0.1:9999")).is_ok());
        assert!(origin_allowed(&dev, &request("http://localhost", "x")).is_ok());
        assert!(origin_allowed(&dev, &request("http://evil.example", "x")).is_err());
        // No Origin: not a cross-site browser request.
        assert!(origin_allowed(&prod, &HeaderMap::new()).is_ok());
    }
}
