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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

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
    /// Administrators only. A user's role may be up to [`Logins::TTL`] old (remembered to spare a
    /// query per request), so before refusing, the database is asked again: a user promoted a
    /// moment ago (by `pulseboard user promote`, another process) is let in at once.
    pub async fn require_admin(&self, state: &AppState) -> ApiResult<()> {
        if self.role == Role::Admin {
            return Ok(());
        }
        let now = sessions::login_role(state.db.pool(), &self.session, self.id).await?;
        if now == Some(Role::Admin) {
            state.logins.forget(&self.session);
            return Ok(());
        }
        Err(ApiError::Forbidden("Administrators only".into()))
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
        })
    }
}

/// Which logins (refresh token families) of ordinary users were recently seen active, so that a
/// busy client does not cost a database round trip per request just to learn it has not logged out.
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
        let role = sessions::login_role(db.pool(), family, user_id).await?;
        if role == Some(Role::User) {
            let mut seen = self.seen.lock().expect("logins lock");
            if seen.len() >= Self::SWEEP_AT {
                seen.retain(|_, at| now.duration_since(*at) < Self::TTL);
            }
            seen.insert(family.to_owned(), now);
        }
        Ok(role)
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

/// Password hashing, bounded: each Argon2 run takes `auth.argon2_memory_kib` of memory and a core
/// for tens of milliseconds, so a burst of logins must neither exhaust memory nor starve other
/// requests. At most `hash_concurrency` runs at once on the blocking pool, at most `hash_queue`
/// more wait for a slot, and anything beyond gets 503 with `Retry-After` at once.
pub struct Passwords {
    argon: Argon2<'static>,
    /// A hash of a random password with the configured parameters, made at start-up: an unknown
    /// email is verified against it, so it costs exactly what a wrong password costs.
    dummy: String,
    slots: Arc<Semaphore>,
    /// Requests holding or waiting for a slot.
    admitted: AtomicUsize,
    capacity: usize,
}

/// Gives the admission back when the request finishes or is dropped.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Passwords {
    pub fn new(config: &Config) -> Self {
        let argon = argon2(config);
        let mut random = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut random);
        let dummy = argon
            .hash_password(&random, &SaltString::generate(&mut OsRng))
            .expect("argon2 parameters were validated with the configuration")
            .to_string();
        let slots = config.hash_concurrency();
        Self {
            argon,
            dummy,
            slots: Arc::new(Semaphore::new(slots)),
            admitted: AtomicUsize::new(0),
            capacity: slots + config.auth.hash_queue,
        }
    }

    /// Runs `f` with a hashing slot on the blocking pool. The slot travels into the blocking task,
    /// so a request dropped mid-way (client gone, timeout) still holds it until Argon2 returns.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> ApiResult<T> {
        let admission = Admission(&self.admitted);
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            drop(admission);
            return Err(ApiError::Busy {
                message: "The server is busy checking other passwords; please try again in a \
                          moment"
                    .into(),
                retry_after_secs: 1,
            });
        }
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let argon = self.argon.clone();
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&argon)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()));
        drop(admission);
        out
    }

    pub async fn hash(&self, password: Password) -> ApiResult<String> {
        self.run(move |argon| {
            argon
                .hash_password(
                    password.expose().as_bytes(),
                    &SaltString::generate(&mut OsRng),
                )
                .map(|h| h.to_string())
                .map_err(|e| ApiError::Internal(format!("hashing password: {e}")))
        })
        .await?
    }

    /// Whether `password` matches `stored`. Without a stored hash (unknown email) the password is
    /// checked against the start-up dummy, so the answer takes the same time and is always false.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> ApiResult<bool> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy.clone());
        let ok = self
            .run(move |argon| {
                PasswordHash::new(&stored).is_ok_and(|parsed| {
                    argon
                        .verify_password(password.expose().as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await?;
        Ok(ok && known)
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

    #[tokio::test]
    async fn unknown_emails_are_checked_against_a_hash_with_the_configured_cost() {
        let cfg = config("auth:\n  argon2_memory_kib: 64\n  argon2_iterations: 3");
        let passwords = Passwords::new(&cfg);
        // Same algorithm and cost as a real account's hash, so the same work.
        assert!(passwords.dummy.starts_with("$argon2id$v=19$m=64,t=3,p=1$"));
        let real = passwords
            .hash(Password::parse_login("right").unwrap())
            .await
            .unwrap();
        assert_eq!(real.split('$').nth(3), passwords.dummy.split('$').nth(3));
        let pw = || Password::parse_login("right").unwrap();
        assert!(passwords.verify(pw(), Some(real)).await.unwrap());
        assert!(!passwords.verify(pw(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_hashing_queue_answers_busy_with_retry_after() {
        let cfg = config(
            "auth:\n  argon2_memory_kib: 4096\n  argon2_iterations: 4\n  hash_concurrency: 1\n  hash_queue: 1",
        );
        let passwords = Arc::new(Passwords::new(&cfg));
        let attempts: Vec<_> = (0..12)
            .map(|_| {
                let p = passwords.clone();
                tokio::spawn(
                    async move { p.verify(Password::parse_login("x").unwrap(), None).await },
                )
            })
            .collect();
        let mut busy = 0;
        for a in attempts {
            match a.await.unwrap() {
                Ok(ok) => assert!(!ok),
                Err(ApiError::Busy {
                    retry_after_secs, ..
                }) => {
                    assert!(retry_after_secs >= 1);
                    busy += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        // One running and one waiting at most: of twelve at once, at least ten were turned away.
        assert!(busy >= 10, "only {busy} of 12 refused");
        assert_eq!(passwords.admitted.load(Ordering::Acquire), 0);
    }
}
