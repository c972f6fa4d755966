//! Sessions: a short-lived JWT access token and a long-lived opaque refresh token.
//!
//! The access token travels in an http-only cookie (browsers) or `Authorization: Bearer` (API
//! clients). The refresh token lives only in an http-only cookie scoped to the session path; the
//! database keeps its SHA-256. Each login is a token family: refresh rotates the token, and reusing
//! a rotated token revokes the family — except within a short grace window, so that two tabs
//! refreshing at once do not log the user out.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::Engine;
use jsonwebtoken::{decode, encode, DecodingKey, EncodingKey, Header, Validation};
use pulseboard_config::{Config, CookieSecure};
use pulseboard_domain::{Password, Role, Timestamp, UnixMillis};
use pulseboard_storage::sessions;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ACCESS_COOKIE: &str = "pb_access";
pub const REFRESH_COOKIE: &str = "pb_refresh";

/// Signing keys, from `PULSEBOARD_JWT_SECRET` or the generated key file.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Keys {
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: i64,
    /// The login (refresh token family) this token belongs to; logout revokes it.
    sid: String,
    role: Role,
    iat: i64,
    exp: i64,
}

/// The logged-in user of a request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: i64,
    pub role: Role,
    pub session: String,
}

impl CurrentUser {
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("Administrators only".into()))
        }
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)
            .or_else(|| cookie(&parts.headers, ACCESS_COOKIE))
            .ok_or_else(ApiError::not_logged_in)?;
        let mut validation = Validation::default();
        validation.leeway = 5;
        let claims = decode::<Claims>(&token, &state.keys.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::Unauthorized("Your session has expired; please log in again".into())
                }
                _ => ApiError::Unauthorized("Invalid access token; please log in again".into()),
            })?
            .claims;
        // Logout revokes the login at once, not when the access token runs out.
        if !state.logins.is_active(&state.db, &claims.sid).await? {
            return Err(ApiError::Unauthorized("You have been logged out".into()));
        }
        Ok(CurrentUser {
            id: claims.sub,
            role: claims.role,
            session: claims.sid,
        })
    }
}

/// Which logins (refresh token families) were recently seen active, so that a busy client does
/// not cost a database round trip per request just to learn it has not logged out.
///
/// A revocation through this process ([`Logins::revoke`]) is seen at once; one made by another
/// process (several `serve` behind a balancer) within [`Logins::TTL`].
#[derive(Default)]
pub struct Logins {
    seen: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl Logins {
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(2);
    /// Beyond this many entries, expired ones are swept out on the next insert.
    const SWEEP_AT: usize = 10_000;

    pub async fn is_active(&self, db: &pulseboard_storage::Db, family: &str) -> ApiResult<bool> {
        let now = std::time::Instant::now();
        if self
            .seen
            .lock()
            .expect("logins lock")
            .get(family)
            .is_some_and(|at| now.duration_since(*at) < Self::TTL)
        {
            return Ok(true);
        }
        let active = sessions::family_active(db.pool(), family).await?;
        if active {
            let mut seen = self.seen.lock().expect("logins lock");
            if seen.len() >= Self::SWEEP_AT {
                seen.retain(|_, at| now.duration_since(*at) < Self::TTL);
            }
            seen.insert(family.to_owned(), now);
        }
        Ok(active)
    }

    /// Revokes a login in the database and forgets it here.
    pub async fn revoke(
        &self,
        db: &pulseboard_storage::Db,
        family: &str,
        now: UnixMillis,
    ) -> ApiResult<()> {
        self.seen.lock().expect("logins lock").remove(family);
        sessions::revoke_family(db.pool(), family, now).await?;
        self.seen.lock().expect("logins lock").remove(family);
        Ok(())
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A freshly issued pair of tokens and the cookies that carry them.
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub cookies: Vec<String>,
}

fn secure(config: &Config) -> bool {
    match config.auth.cookie_secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => config.http.public_url.starts_with("https://"),
    }
}

fn set_cookie(config: &Config, name: &str, value: &str, path: &str, max_age: u64) -> String {
    let secure = if secure(config) { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

/// The refresh cookie is scoped to the session endpoints, under the prefix the client used.
pub fn refresh_path(api_prefixed: bool) -> &'static str {
    if api_prefixed {
        "/api/session"
    } else {
        "/session"
    }
}

pub fn clear_cookies(config: &Config, api_prefixed: bool) -> Vec<String> {
    vec![
        set_cookie(config, ACCESS_COOKIE, "", "/", 0),
        set_cookie(config, REFRESH_COOKIE, "", refresh_path(api_prefixed), 0),
    ]
}

fn access_token(
    state: &AppState,
    user_id: i64,
    role: Role,
    family: &str,
) -> ApiResult<(String, u64)> {
    let ttl = state.config.auth.access_token_ttl_secs;
    let now = Timestamp::now() / 1000;
    let claims = Claims {
        sub: user_id,
        sid: family.to_owned(),
        role,
        iat: now,
        exp: now + ttl as i64,
    };
    let token = encode(&Header::default(), &claims, &state.keys.encoding)
        .map_err(|e| ApiError::Internal(format!("signing token: {e}")))?;
    Ok((token, ttl))
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn new_refresh_token(
    state: &AppState,
    user_id: i64,
    family: &str,
    now: UnixMillis,
) -> ApiResult<String> {
    let token = random_token();
    let ttl_ms = state.config.auth.refresh_token_ttl_days as i64 * 86_400_000;
    sessions::insert(
        state.db.pool(),
        user_id,
        family,
        &hash_token(&token),
        now,
        now + ttl_ms,
    )
    .await?;
    Ok(token)
}

/// Starts a new login for the user: a new token family.
pub async fn start_session(
    state: &AppState,
    user_id: i64,
    role: Role,
    api_prefixed: bool,
) -> ApiResult<Issued> {
    let family = uuid::Uuid::new_v4().simple().to_string();
    let now = Timestamp::now();
    let refresh = new_refresh_token(state, user_id, &family, now).await?;
    let (access_token, expires_in) = access_token(state, user_id, role, &family)?;
    let cfg = &state.config;
    Ok(Issued {
        cookies: vec![
            set_cookie(cfg, ACCESS_COOKIE, &access_token, "/", expires_in),
            set_cookie(
                cfg,
                REFRESH_COOKIE,
                &refresh,
                refresh_path(api_prefixed),
                cfg.auth.refresh_token_ttl_days * 86_400,
            ),
        ],
        access_token,
        expires_in,
    })
}

/// Exchanges a refresh token for a new access token (and a new refresh token).
pub async fn refresh(state: &AppState, presented: &str, api_prefixed: bool) -> ApiResult<Issued> {
    let now = Timestamp::now();
    let invalid = || ApiError::Unauthorized("Your session has expired; please log in again".into());
    let token = sessions::by_hash(state.db.pool(), &hash_token(presented))
        .await?
        .ok_or_else(invalid)?;
    if token.revoked_at.is_some() || token.expires_at <= now {
        return Err(invalid());
    }
    let grace_ms = state.config.auth.refresh_grace_secs as i64 * 1000;
    let role = pulseboard_storage::users::by_id(state.db.pool(), token.user_id)
        .await?
        .ok_or_else(invalid)?
        .role;
    let cfg = &state.config;
    let rotated_now = token.rotated_at.is_none()
        && sessions::mark_rotated(state.db.pool(), token.id, now).await?;
    if !rotated_now {
        // Already rotated: a concurrent refresh from another tab (within the grace window) gets an
        // access token and keeps the cookie the other response set; anything later is a stolen
        // token being replayed, and the whole login is revoked.
        let rotated_at = sessions::by_hash(state.db.pool(), &hash_token(presented))
            .await?
            .and_then(|t| t.rotated_at)
            .unwrap_or(now);
        if now - rotated_at > grace_ms {
            state.logins.revoke(&state.db, &token.family, now).await?;
            tracing::warn!(
                user_id = token.user_id,
                "refresh token reused; login revoked"
            );
            return Err(ApiError::Unauthorized(
                "This session was revoked; please log in again".into(),
            ));
        }
        let (access_token, expires_in) = access_token(state, token.user_id, role, &token.family)?;
        return Ok(Issued {
            cookies: vec![set_cookie(
                cfg,
                ACCESS_COOKIE,
                &access_token,
                "/",
                expires_in,
            )],
            access_token,
            expires_in,
        });
    }
    let refresh = new_refresh_token(state, token.user_id, &token.family, now).await?;
    let (access_token, expires_in) = access_token(state, token.user_id, role, &token.family)?;
    Ok(Issued {
        cookies: vec![
            set_cookie(cfg, ACCESS_COOKIE, &access_token, "/", expires_in),
            set_cookie(
                cfg,
                REFRESH_COOKIE,
                &refresh,
                refresh_path(api_prefixed),
                cfg.auth.refresh_token_ttl_days * 86_400,
            ),
        ],
        access_token,
        expires_in,
    })
}

fn argon2(config: &Config) -> Argon2<'static> {
    let params = Params::new(
        config.auth.argon2_memory_kib,
        config.auth.argon2_iterations,
        1,
        None,
    )
    .expect("argon2 parameters were validated with the configuration");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes on the blocking pool: Argon2 is deliberately slow and must not stall other requests.
pub async fn hash_password(config: &Config, password: Password) -> ApiResult<String> {
    let hasher = argon2(config);
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("hashing password: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// Verifies on the blocking pool. With no stored hash (unknown email) it still does the work of a
/// verification, so that response time does not reveal which emails have accounts.
pub async fn verify_password(
    config: &Config,
    password: Password,
    stored: Option<String>,
) -> ApiResult<bool> {
    let hasher = argon2(config);
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| {
            let salt = SaltString::generate(&mut OsRng);
            hasher
                .hash_password(b"timing-equaliser", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        });
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        hasher
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok()
            && known
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))
}
