use crate::auth::{self, CurrentUser};
use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
use crate::state::AppState;
use crate::ApiPrefix;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::response::{AppendHeaders, IntoResponse};
use axum::Json;
use pulseboard_domain::{Email, Password, Timestamp};
use pulseboard_jobs::handlers::WelcomeEmail;
use pulseboard_storage::{users, StorageError};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

/// The registration form: credentials plus, optionally, the form's "repeat password" field under
/// any of the names clients written from the seed use. When sent, it must equal `password`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub password_repeat: Option<String>,
    #[serde(default)]
    pub repeat_password: Option<String>,
    #[serde(default)]
    pub password_confirmation: Option<String>,
}

impl Registration {
    /// The first repeat field that differs from `password`, by the name the client sent.
    fn mismatched_repeat(&self) -> Option<&'static str> {
        [
            ("password_repeat", &self.password_repeat),
            ("repeat_password", &self.repeat_password),
            ("password_confirmation", &self.password_confirmation),
        ]
        .into_iter()
        .find(|(_, v)| v.as_ref().is_some_and(|v| *v != self.password))
        .map(|(name, _)| name)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub role: &'static str,
    pub locale: String,
    pub time_zone: String,
    pub digest_enabled: bool,
    pub alerts_enabled: bool,
    pub created_at: String,
}

impl From<users::User> for UserView {
    fn from(u: users::User) -> Self {
        Self {
            id: u.id,
            email: u.email.to_string(),
            role: u.role.as_str(),
            locale: u.locale,
            time_zone: u.time_zone,
            digest_enabled: u.digest_enabled,
            alerts_enabled: u.alerts_enabled,
            created_at: Timestamp::rfc3339(u.created_at),
        }
    }
}

/// A user plus the access token, for login and registration responses.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub struct SessionView {
    #[serde(flatten)]
    pub user: UserView,
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

/// `POST /user`: registers and logs in at once; the welcome email is enqueued in the same
/// transaction as the account.
#[utoipa::path(
    post,
    path = "/user",
    tag = "account",
    security(()),
    request_body(description = "credentials; a repeat-password field, when sent, must equal password", content((Registration = "application/json"), (Registration = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "registered and logged in (sets the session cookies)", body = SessionView),
        (status = 409, description = "this email is already taken", body = crate::openapi::ErrorBody)
    )
)]
pub async fn register(
    State(state): State<AppState>,
    prefix: ApiPrefix,
    Input(body): Input<Registration>,
) -> ApiResult<impl IntoResponse> {
    let mismatch = body.mismatched_repeat().map(|field| {
        pulseboard_domain::FieldError::new(
            field,
            "The passwords do not match: repeat the same password",
        )
    });
    let email = Email::parse(&body.email);
    let password = email
        .as_ref()
        .ok()
        .map(|e| Password::parse_new(&body.password, Some(e)))
        .unwrap_or_else(|| Password::parse_new(&body.password, None));
    let (email, password) = match (email, password) {
        (Ok(e), Ok(p)) if mismatch.is_none() => (e, p),
        (e, p) => {
            let mut details = std::collections::BTreeMap::new();
            let mut first = None;
            for err in [e.err(), p.err(), mismatch].into_iter().flatten() {
                first.get_or_insert_with(|| err.message.clone());
                details.insert(err.field.to_owned(), err.message);
            }
            return Err(ApiError::Validation {
                message: first.unwrap_or_default(),
                details,
            });
        }
    };
    let hash = state.passwords.hash(password).await?;
    let mut tx = state.db.begin().await?;
    let user = match users::create(&mut tx, &email, &hash, Timestamp::now()).await {
        Ok(u) => u,
        Err(StorageError::Conflict) => {
            return Err(ApiError::Conflict("This email is already taken".into()))
        }
        Err(e) => return Err(e.into()),
    };
    state
        .queue
        .enqueue_in(&mut tx, &WelcomeEmail { user_id: user.id })
        .await?;
    tx.commit()
        .await
        .map_err(pulseboard_storage::StorageError::from)?;
    state.queue.wake();
    tracing::info!(user_id = user.id, "user registered");
    let issued = auth::start_session(&state, user.id, user.role, prefix.0).await?;
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

/// `GET /user`: the logged-in user.
#[utoipa::path(
    get,
    path = "/user",
    tag = "account",
    responses(
        (status = 200, description = "the logged-in user", body = UserView)
    )
)]
pub async fn me(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<UserView>> {
    let u = users::by_id(&state.db, user.id)
        .await?
        .ok_or_else(ApiError::not_logged_in)?;
    Ok(Json(u.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    time_zone: Option<String>,
    locale: Option<String>,
    digest_enabled: Option<bool>,
    alerts_enabled: Option<bool>,
}

/// `PATCH /user`: the user's own settings (time zone of the digest, language, digest and alerts).
#[utoipa::path(
    patch,
    path = "/user",
    tag = "account",
    request_body(content((SettingsPatch = "application/json"), (SettingsPatch = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "the updated user", body = UserView),
        (status = 403, description = "an API token (this needs a signed-in session), or a cross-site request", body = crate::openapi::ErrorBody)
    )
)]
pub async fn update_settings(
    State(state): State<AppState>,
    user: CurrentUser,
    Input(body): Input<SettingsPatch>,
) -> ApiResult<Json<UserView>> {
    user.require_session()?;
    if let Some(tz) = &body.time_zone {
        if tz.parse::<chrono_tz::Tz>().is_err() {
            return Err(pulseboard_domain::FieldError::new(
                "time_zone",
                format!("Unknown time zone {tz:?}: use an IANA name such as UTC or Europe/Moscow"),
            )
            .into());
        }
    }
    if let Some(locale) = &body.locale {
        if !["en", "ru"].contains(&locale.as_str()) {
            return Err(
                pulseboard_domain::FieldError::new("locale", "Language must be en or ru").into(),
            );
        }
    }
    let settings = users::Settings {
        time_zone: body.time_zone,
        locale: body.locale,
        digest_enabled: body.digest_enabled,
        alerts_enabled: body.alerts_enabled,
    };
    let u = users::update_settings(&state.db, user.id, settings, Timestamp::now())
        .await?
        .ok_or_else(ApiError::not_logged_in)?;
    Ok(Json(u.into()))
}
