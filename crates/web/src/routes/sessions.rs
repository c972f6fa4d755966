use crate::auth::{self, CurrentUser, REFRESH_COOKIE};
use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
use crate::routes::users::{Credentials, SessionView};
use crate::state::AppState;
use crate::ApiPrefix;
use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse};
use axum::Json;
use pulseboard_domain::{Email, Password, Timestamp};
use pulseboard_storage::{sessions, users};
use std::net::SocketAddr;

const BAD_CREDENTIALS: &str = "Invalid email or password";

/// `POST /session`: logs in. Unknown email and wrong password get the same answer, in about the
/// same time; repeated failures per account and per client address are throttled with 429.
pub async fn login(
    State(state): State<AppState>,
    prefix: ApiPrefix,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Input(body): Input<Credentials>,
) -> ApiResult<impl IntoResponse> {
    let bad = || ApiError::Unauthorized(BAD_CREDENTIALS.into());
    // A malformed email cannot belong to an account: same answer as an unknown one.
    let email = Email::parse(&body.email).map_err(|_| bad())?;
    let password = Password::parse_login(&body.password)?;
    let account_key = format!("account:{}", email.as_str());
    let ip_key = format!("ip:{}", peer.ip());
    throttle(&state, &account_key, state.config.auth.login_max_failures).await?;
    throttle(&state, &ip_key, state.config.auth.login_ip_max_failures).await?;

    let user = users::by_email(state.db.pool(), &email).await?;
    let ok = auth::verify_password(
        &state.config,
        password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let Some(user) = user.filter(|_| ok) else {
        let now = Timestamp::now();
        users::record_login_failure(state.db.pool(), &account_key, now).await?;
        users::record_login_failure(state.db.pool(), &ip_key, now).await?;
        tracing::info!(ip = %peer.ip(), "failed login");
        return Err(bad());
    };
    users::clear_login_failures(state.db.pool(), &account_key).await?;
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

async fn throttle(state: &AppState, key: &str, max: u32) -> ApiResult<()> {
    let window_ms = state.config.auth.login_window_secs as i64 * 1000;
    let now = Timestamp::now();
    let (failures, oldest) =
        users::login_failures_since(state.db.pool(), key, now - window_ms).await?;
    if failures >= max as i64 {
        let retry_ms = oldest.unwrap_or(now) + window_ms - now;
        return Err(ApiError::TooManyRequests {
            message: "Too many failed logins; try again later".into(),
            retry_after_secs: (retry_ms.max(1000) / 1000) as u64,
        });
    }
    Ok(())
}

/// `POST /session/refresh`: a new access token from the refresh cookie.
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
