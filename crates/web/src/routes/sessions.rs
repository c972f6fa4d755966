use crate::auth::{self, CurrentUser, REFRESH_COOKIE};
use crate::client_ip::ClientIp;
use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
use crate::routes::users::{Credentials, SessionView};
use crate::state::AppState;
use crate::ApiPrefix;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse};
use axum::Json;
use pulseboard_domain::{Email, Password, Timestamp};
use pulseboard_storage::throttle::{self, Limit};
use pulseboard_storage::{sessions, users};

const BAD_CREDENTIALS: &str = "Invalid email or password";

/// `POST /session`: logs in. Unknown email and wrong password get the same answer after the same
/// work (one Argon2 verification). Attempts are reserved before the password is checked, per
/// (account, client address), per client address and per account (a higher ceiling, so that one
/// address cannot lock the owner out); a full counter answers 429.
pub async fn login(
    State(state): State<AppState>,
    prefix: ApiPrefix,
    ClientIp(ip): ClientIp,
    Input(body): Input<Credentials>,
) -> ApiResult<impl IntoResponse> {
    let bad = || ApiError::Unauthorized(BAD_CREDENTIALS.into());
    // A malformed email cannot belong to an account: same answer as an unknown one.
    let email = Email::parse(&body.email).map_err(|_| bad())?;
    let password = Password::parse_login(&body.password)?;
    let auth = &state.config.auth;
    let pair_key = format!("pair:{}|{ip}", email.as_str());
    let ip_key = format!("ip:{ip}");
    let account_key = format!("account:{}", email.as_str());
    let now = Timestamp::now();
    let limits = vec![
        Limit {
            key: pair_key.clone(),
            max: auth.login_max_failures,
        },
        Limit {
            key: ip_key.clone(),
            max: auth.login_ip_max_failures,
        },
        Limit {
            key: account_key.clone(),
            max: auth.login_account_max_failures,
        },
    ];
    let window_ms = auth.login_window_secs as i64 * 1000;
    if let Err(until) = throttle::reserve(&state.db, limits, now, window_ms).await? {
        tracing::info!(%ip, "login refused: too many failed attempts");
        return Err(ApiError::TooManyRequests {
            message: "Too many failed logins; try again later".into(),
            retry_after_secs: ((until - now).max(1000) / 1000) as u64,
        });
    }

    let user = users::by_email(state.db.pool(), &email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let ok = match state.passwords.verify(password, stored).await {
        Ok(ok) => ok,
        Err(e) => {
            // Never checked (busy) or failed on our side: the attempt does not count.
            throttle::give_back(&state.db, vec![pair_key, ip_key, account_key], None).await?;
            return Err(e);
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(%ip, "failed login");
        return Err(bad());
    };
    throttle::give_back(&state.db, vec![ip_key, account_key], Some(pair_key)).await?;
    let issued = auth::start_session(&state, user.id, user.role, prefix.0).await?;
    tracing::info!(user_id = user.id, "user logged in");
    Ok((
        AppendHeaders(issued.cookies.into_iter().map(|c| (SET_COOKIE, c))),
        Json(SessionView {
            user: user.into(),
            access_token: issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
        }),
    ))
}

/// `POST /session/refresh` (and `PUT /session`, which clients of the seed use): a new access token
/// from the refresh cookie.
pub async fn refresh(
    State(state): State<AppState>,
    prefix: ApiPrefix,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let Some(presented) = auth::cookie(&headers, REFRESH_COOKIE).filter(|t| !t.is_empty()) else {
        return Err(ApiError::Unauthorized(
            "No refresh token; please log in".into(),
        ));
    };
    match auth::refresh(&state, &presented, prefix.0).await {
        Ok(issued) => Ok((
            AppendHeaders(issued.cookies.into_iter().map(|c| (SET_COOKIE, c))),
            Json(serde_json::json!({
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
            })),
        )
            .into_response()),
        Err(e) => Ok((
            AppendHeaders(
                auth::clear_cookies(&state.config, prefix.0)
                    .into_iter()
                    .map(|c| (SET_COOKIE, c)),
            ),
            e,
        )
            .into_response()),
    }
}

/// `DELETE /session`: logs out — revokes the login and clears the cookies.
pub async fn logout(
    State(state): State<AppState>,
    prefix: ApiPrefix,
    headers: HeaderMap,
    user: Result<CurrentUser, ApiError>,
) -> ApiResult<impl IntoResponse> {
    let now = Timestamp::now();
    if let Ok(user) = &user {
        state.logins.revoke(&state.db, &user.session, now).await?;
    }
    if let Some(token) = auth::cookie(&headers, REFRESH_COOKIE).filter(|t| !t.is_empty()) {
        if let Some(row) = sessions::by_hash(state.db.pool(), &auth::hash_token(&token)).await? {
            state.logins.revoke(&state.db, &row.family, now).await?;
        }
    }
    Ok((
        StatusCode::NO_CONTENT,
        AppendHeaders(
            auth::clear_cookies(&state.config, prefix.0)
                .into_iter()
                .map(|c| (SET_COOKIE, c)),
        ),
    ))
}
