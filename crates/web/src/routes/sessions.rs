use crate::attempts::Attempt;
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
use pulseboard_storage::{sessions, users};

const BAD_CREDENTIALS: &str = "Invalid email or password";

/// `POST /session`: logs in. Unknown email and wrong password get the same answer after the same
/// work (one Argon2 verification). Attempts are reserved before the password is checked, per
/// (account, client address), per client address and per account (a higher ceiling, so that one
/// address cannot lock the owner out); a full counter answers 429.
#[utoipa::path(
    post,
    path = "/session",
    tag = "session",
    security(()),
    request_body(content((crate::routes::users::Credentials = "application/json"), (crate::routes::users::Credentials = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "logged in (sets the session cookies)", body = crate::routes::users::SessionView),
        (status = 401, description = "invalid email or password", body = crate::openapi::ErrorBody),
        (status = 429, description = "too many failed logins; Retry-After", body = crate::openapi::ErrorBody)
    )
)]
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
    let attempt = Attempt::login(&email, ip);
    let user = users::by_email(&state.db, &email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let ok = attempt
        .verify(
            &state,
            password,
            stored,
            "Too many failed logins; try again later",
        )
        .await?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(%ip, "failed login");
        return Err(bad());
    };
    attempt.succeeded(&state).await?;
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
#[utoipa::path(
    post,
    path = "/session/refresh",
    tag = "session",
    security(()),
    responses(
        (status = 200, description = "a new access token (rotates the refresh cookie)", body = Object, example = json!({"access_token": "…", "token_type": "Bearer", "expires_in": 900})),
        (status = 401, description = "no refresh token, or a revoked, expired or reused one (clears the cookies)", body = crate::openapi::ErrorBody)
    )
)]
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

/// `PUT /session`: what clients of the seed send to refresh; the same as `POST /session/refresh`.
#[utoipa::path(
    put,
    path = "/session",
    tag = "session",
    security(()),
    responses(
        (status = 200, description = "a new access token (rotates the refresh cookie)", body = Object),
        (status = 401, description = "no refresh token, or a revoked, expired or reused one (clears the cookies)", body = crate::openapi::ErrorBody)
    )
)]
pub async fn refresh_put(
    state: State<AppState>,
    prefix: ApiPrefix,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    refresh(state, prefix, headers).await
}

/// `DELETE /session`: logs out — revokes the login and clears the cookies.
#[utoipa::path(
    delete,
    path = "/session",
    tag = "session",
    security(()),
    responses(
        (status = 204, description = "logged out: the login is revoked and the cookies cleared"),
        (status = 403, description = "an API token (this needs a signed-in session), or a cross-site request", body = crate::openapi::ErrorBody)
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    prefix: ApiPrefix,
    headers: HeaderMap,
    user: Result<CurrentUser, ApiError>,
) -> ApiResult<impl IntoResponse> {
    let now = Timestamp::now();
    if let Ok(user) = &user {
        user.require_session()?;
        state.logins.revoke(&state.db, &user.session, now).await?;
    }
    if let Some(token) = auth::cookie(&headers, REFRESH_COOKIE).filter(|t| !t.is_empty()) {
        if let Some(row) = sessions::by_hash(&state.db, &auth::hash_token(&token)).await? {
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
