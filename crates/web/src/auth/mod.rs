//! Sessions: a short-lived JWT access token and a long-lived opaque refresh token.
//!
//! The access token travels in an http-only cookie (browsers) or `Authorization: Bearer` (API
//! clients). The refresh token lives only in an http-only cookie scoped to the session path; the
//! database keeps its SHA-256. Each login is a token family: refresh rotates the token, and reusing
//! a rotated token revokes the family — except within a short grace window, so that two tabs
//! refreshing at once do not log the user out.

mod passwords;
mod scopes;

pub use passwords::Passwords;
pub use scopes::{Scope, Scopes};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::Engine;
use jsonwebtoken::{decode, encode, DecodingKey, EncodingKey, Header, Validation};
use pulseboard_config::{Config, CookieSecure};
use pulseboard_domain::{Role, Timestamp, UnixMillis};
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
    /// The login (refresh token family); empty for an API token.
    pub session: String,
    /// The personal API token the request came with; None for a browser session (access JWT).
    pub token: Option<i64>,
    /// What the request may do: a token's scopes; everything for a session (`admin` only for an
    /// administrator).
    pub scopes: Scopes,
}

impl CurrentUser {
    /// Refuses a request whose token lacks `scope` (403). Called first thing in every handler
    /// that a token may reach; sessions hold every scope but `admin`, which
    /// [`CurrentUser::require_admin`] checks against the role.
    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        if self.scopes.contains(scope) || (self.token.is_none() && scope != Scope::Admin) {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "This API token lacks the {} scope",
            scope.as_str()
        )))
    }

    /// Browser sessions only: managing tokens, changing or deleting the account, logging out. A
    /// token, whatever its scopes, must not be able to mint more tokens or lock the owner out.
    pub fn require_session(&self) -> ApiResult<()> {
        match self.token {
            None => Ok(()),
            Some(_) => Err(ApiError::Forbidden(
                "API tokens cannot do this: sign in to the web app instead".into(),
            )),
        }
    }

    /// Administrators only (and, for a token, the `admin` scope). A session user's role may be up
    /// to [`Logins::TTL`] old (remembered to spare a query per request), so before refusing, the
    /// database is asked again: a user promoted a moment ago (by `pulseboard user promote`,
    /// another process) is let in at once. A token's role was read with the token, just now.
    pub async fn require_admin(&self, state: &AppState) -> ApiResult<()> {
        if self.token.is_some() {
            self.require(Scope::Admin)?;
        }
        if self.role == Role::Admin {
            return Ok(());
        }
        if self.token.is_none() {
            let now = sessions::login_role(&state.db, &self.session, self.id).await?;
            if now == Some(Role::Admin) {
                state.logins.forget(&self.session);
                return Ok(());
            }
        }
        Err(ApiError::Forbidden("Administrators only".into()))
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bearer = bearer(&parts.headers);
        if let Some(secret) = bearer
            .as_deref()
            .filter(|t| t.starts_with(API_TOKEN_PREFIX))
        {
            return api_token_user(state, secret).await;
        }
        let token = bearer
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
        // Logout revokes the login at once, not when the access token runs out; the role is the
        // user's current one, not the one the token was issued with.
        let Some(role) = state
            .logins
            .role(&state.db, &claims.sid, claims.sub)
            .await?
        else {
            return Err(ApiError::Unauthorized("You have been logged out".into()));
        };
        Ok(CurrentUser {
            id: claims.sub,
            role,
            session: claims.sid,
            token: None,
            scopes: session_scopes(role),
        })
    }
}

fn session_scopes(role: Role) -> Scopes {
    match role {
        Role::Admin => Scopes::all(),
        Role::User => Scopes::all().without(Scope::Admin),
    }
}

/// Personal API tokens start with this, so that they are never mistaken for an access JWT and
/// secret scanners can recognise a leaked one.
pub const API_TOKEN_PREFIX: &str = "pb_";

/// A new personal API token: the secret (shown once) and the hash that is stored.
pub fn new_api_token() -> (String, String) {
    let secret = format!("{API_TOKEN_PREFIX}{}", random_token());
    let hash = hash_token(&secret);
    (secret, hash)
}

/// `last_used_at` is written at most this often per token.
const TOKEN_USE_GAP_MS: i64 = 60_000;

/// The user of a request carrying a personal API token. Unknown (or revoked: the row is deleted)
/// and expired tokens are refused alike with 401.
async fn api_token_user(state: &AppState, secret: &str) -> Result<CurrentUser, ApiError> {
    let now = Timestamp::now();
    let found = pulseboard_storage::tokens::by_hash(&state.db, &hash_token(secret)).await?;
    let Some(found) = found else {
        return Err(ApiError::Unauthorized(
            "Unknown or revoked API token".into(),
        ));
    };
    let token = found.token;
    if token.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::Unauthorized("This API token has expired".into()));
    }
    // Only when the stored time is a minute old, and then once per process for concurrent
    // requests: a busy script costs one write a minute, not one per request.
    if token
        .last_used_at
        .is_none_or(|at| now - at >= TOKEN_USE_GAP_MS)
        && state.logins.claim_token_use(token.id, now)
    {
        // Best effort: a busy database must not fail the request over a "last used" time.
        if let Err(e) =
            pulseboard_storage::tokens::touch(&state.db, token.id, now, TOKEN_USE_GAP_MS).await
        {
            tracing::warn!(token_id = token.id, error = %e, "could not record an API token's use");
        }
    }
    Ok(CurrentUser {
        id: token.user_id,
        role: found.role,
        session: String::new(),
        token: Some(token.id),
        scopes: Scopes::from_db(&token.scopes),
    })
}

/// Which logins (refresh token families) of ordinary users were recently seen active, so that a
/// busy client does not cost a database round trip per request just to learn it has not logged out.
///
/// A revocation through this process ([`Logins::revoke`]) is seen at once; one made by another
/// process (several `serve` behind a balancer) within [`Logins::TTL`].
#[derive(Default)]
pub struct Logins {
    seen: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// When this process last recorded each API token's use (`last_used_at`), in Unix ms.
    token_uses: std::sync::Mutex<std::collections::HashMap<i64, UnixMillis>>,
}

impl Logins {
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(2);
    /// Beyond this many entries, expired ones are swept out on the next insert.
    const SWEEP_AT: usize = 10_000;

    /// The user's current role while the login is alive; None once it was revoked or the user
    /// deleted. Only ordinary users are remembered: an administrator's role is read on every
    /// request, so that a demotion takes their powers away at once, from any process.
    pub async fn role(
        &self,
        db: &pulseboard_storage::Db,
        family: &str,
        user_id: i64,
    ) -> ApiResult<Option<Role>> {
        let now = std::time::Instant::now();
        if self
            .seen
            .lock()
            .expect("logins lock")
            .get(family)
            .is_some_and(|at| now.duration_since(*at) < Self::TTL)
        {
            return Ok(Some(Role::User));
        }
        let role = sessions::login_role(db, family, user_id).await?;
        if role == Some(Role::User) {
            let mut seen = self.seen.lock().expect("logins lock");
            if seen.len() >= Self::SWEEP_AT {
                seen.retain(|_, at| now.duration_since(*at) < Self::TTL);
            }
            seen.insert(family.to_owned(), now);
        }
        Ok(role)
    }

    /// Whether this request should record a use of the token: false when another request of
    /// this process did within the last minute (twenty parallel requests write once).
    pub fn claim_token_use(&self, token_id: i64, now: UnixMillis) -> bool {
        let mut uses = self.token_uses.lock().expect("token uses lock");
        if uses
            .get(&token_id)
            .is_some_and(|at| now - at < TOKEN_USE_GAP_MS)
        {
            return false;
        }
        if uses.len() >= Self::SWEEP_AT {
            uses.retain(|_, at| now - *at < TOKEN_USE_GAP_MS);
        }
        uses.insert(token_id, now);
        true
    }

    /// Forgets what this process remembers of a login (its role changed).
    pub fn forget(&self, family: &str) {
        self.seen.lock().expect("logins lock").remove(family);
    }

    /// Revokes a login in the database and forgets it here.
    pub async fn revoke(
        &self,
        db: &pulseboard_storage::Db,
        family: &str,
        now: UnixMillis,
    ) -> ApiResult<()> {
        self.seen.lock().expect("logins lock").remove(family);
        sessions::revoke_family(db, family, now).await?;
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
        // In production the site is expected behind TLS even when public_url was left at http.
        CookieSecure::Auto => {
            config.env == pulseboard_config::RunMode::Production
                || config.http.public_url.starts_with("https://")
        }
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
        &state.db,
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
    issue(
        state,
        user_id,
        role,
        &family,
        Some((&refresh, api_prefixed)),
    )
}

/// An access token for the login, and the cookies that carry it and, when the refresh token
/// changed, the new refresh token (with whether it was asked for under the `/api` prefix).
fn issue(
    state: &AppState,
    user_id: i64,
    role: Role,
    family: &str,
    refresh: Option<(&str, bool)>,
) -> ApiResult<Issued> {
    let cfg = &state.config;
    let (access_token, expires_in) = access_token(state, user_id, role, family)?;
    let mut cookies = vec![set_cookie(
        cfg,
        ACCESS_COOKIE,
        &access_token,
        "/",
        expires_in,
    )];
    if let Some((refresh, api_prefixed)) = refresh {
        cookies.push(set_cookie(
            cfg,
            REFRESH_COOKIE,
            refresh,
            refresh_path(api_prefixed),
            cfg.auth.refresh_token_ttl_days * 86_400,
        ));
    }
    Ok(Issued {
        cookies,
        access_token,
        expires_in,
    })
}

/// Exchanges a refresh token for a new access token (and a new refresh token).
pub async fn refresh(state: &AppState, presented: &str, api_prefixed: bool) -> ApiResult<Issued> {
    let now = Timestamp::now();
    let invalid = || ApiError::Unauthorized("Your session has expired; please log in again".into());
    let cfg = &state.config;
    let refresh = random_token();
    let rotation = sessions::Rotation {
        new_hash: hash_token(&refresh),
        now,
        expires_at: now + cfg.auth.refresh_token_ttl_days as i64 * 86_400_000,
        grace_ms: cfg.auth.refresh_grace_secs as i64 * 1000,
    };
    match sessions::refresh(&state.db, hash_token(presented), rotation).await? {
        sessions::Refreshed::Invalid => Err(invalid()),
        sessions::Refreshed::Rotated {
            user_id,
            family,
            role,
        } => issue(
            state,
            user_id,
            role,
            &family,
            Some((&refresh, api_prefixed)),
        ),
        // A concurrent refresh from another tab (within the grace window) gets an access token
        // and keeps the cookie the other response set.
        sessions::Refreshed::Concurrent {
            user_id,
            family,
            role,
        } => issue(state, user_id, role, &family, None),
        // Anything later is a stolen token being replayed: the whole login was revoked in the
        // same transaction; this process must not keep it in its cache either.
        sessions::Refreshed::Reused { user_id, family } => {
            state.logins.forget(&family);
            tracing::warn!(user_id, "refresh token reused; login revoked");
            Err(ApiError::Unauthorized(
                "This session was revoked; please log in again".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Yaml};

    fn config(extra: &str) -> Config {
        Config::from_figment(
            figment::Figment::from(Yaml::string(pulseboard_config::DEFAULTS_YAML))
                .merge(Yaml::string(extra)),
        )
        .unwrap()
    }

    #[test]
    fn scopes_round_trip_and_a_session_holds_all_but_admin_unless_admin() {
        let s = Scopes::default().with(Scope::TasksWrite).with(Scope::Admin);
        assert_eq!(s.to_db(), "tasks:write admin");
        assert_eq!(Scopes::from_db("admin tasks:write retired:scope"), s);
        assert!(Scopes::from_db("").is_empty());
        assert!(!session_scopes(Role::User).contains(Scope::Admin));
        assert!(session_scopes(Role::Admin).contains(Scope::Admin));
        let token = |scopes| CurrentUser {
            id: 1,
            role: Role::Admin,
            session: String::new(),
            token: Some(1),
            scopes,
        };
        let reader = token(Scopes::from_db("tasks:read"));
        assert!(reader.require(Scope::TasksRead).is_ok());
        assert!(matches!(
            reader.require(Scope::TasksWrite),
            Err(ApiError::Forbidden(m)) if m.contains("tasks:write")
        ));
        assert!(reader.require_session().is_err());
        let (secret, hash) = new_api_token();
        assert!(secret.starts_with(API_TOKEN_PREFIX) && secret.len() == 3 + 43);
        assert_eq!(hash, hash_token(&secret));
    }

    #[test]
    fn cookies_are_secure_in_production_unless_explicitly_never() {
        assert!(!secure(&config("env: development")));
        assert!(secure(&config("env: production")));
        assert!(secure(&config(
            "env: development\nhttp:\n  public_url: https://x.example"
        )));
        assert!(!secure(&config(
            "env: production\nauth:\n  cookie_secure: never"
        )));
        assert!(set_cookie(&config("env: production"), "a", "b", "/", 1).contains("; Secure"));
    }
}
