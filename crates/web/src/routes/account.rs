//! The user's data: `GET /user/export` (everything of the account as one JSON document) and
//! `DELETE /user` (the account and everything of it, confirmed with the password).

use crate::attempts::Attempt;
use crate::auth::{self, CurrentUser};
use crate::client_ip::ClientIp;
use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
use crate::routes::imports::upload_path;
use crate::routes::tasks::TaskView;
use crate::routes::users::UserView;
use crate::routes::watch_view::{EventView, ResourceView};
use crate::state::AppState;
use crate::ApiPrefix;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{AppendHeaders, IntoResponse};
use axum::Json;
use pulseboard_domain::{Password, Timestamp};
use pulseboard_jobs::handlers::remove_upload;
use pulseboard_storage::{feed, resources, tasks, users, StorageError};
use serde::{Deserialize, Serialize};

/// Version of the export document's layout; new sections (boards, channels, status pages) are
/// new top-level arrays and do not change it.
const EXPORT_FORMAT: u32 = 1;

/// A resource in the export: its API view plus whether it has a screenshot.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExportedResource {
    #[serde(flatten)]
    pub resource: ResourceView,
    pub has_screenshot: bool,
}

/// The export document. Each kind of data is a top-level array, so that later kinds slot in
/// beside these.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Export {
    pub format: u32,
    pub exported_at: String,
    pub user: UserView,
    pub tasks: Vec<TaskView>,
    pub resources: Vec<ExportedResource>,
    pub feed: Vec<EventView>,
    /// Personal API tokens: names, scopes and dates, never secrets (only their hashes are kept).
    pub tokens: Vec<crate::routes::tokens::TokenView>,
    /// Notification channels, secrets shown as "set" (as `GET /channels`).
    pub channels: Vec<crate::routes::channels::ChannelView>,
}

/// `GET /user/export`: everything of the account as one JSON document, as a download. One query
/// per kind of data, whatever the number of rows.
#[utoipa::path(
    get,
    path = "/user/export",
    tag = "account",
    responses(
        (status = 200, description = "everything of the account as one JSON document (Content-Disposition: attachment)", body = Export),
        (status = 403, description = "an API token (this needs a signed-in session), or a cross-site request", body = crate::openapi::ErrorBody)
    )
)]
pub async fn export(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<impl IntoResponse> {
    user.require_session()?;
    let profile = users::by_id(&state.db, user.id)
        .await?
        .ok_or_else(ApiError::not_logged_in)?;
    let task_list = tasks::list(&state.db, user.id, None).await?;
    let resource_list = resources::all_of(&state.db, user.id).await?;
    let events = feed::all_events(&state.db, user.id).await?;
    let token_list = pulseboard_storage::tokens::list(&state.db, user.id).await?;
    let channel_list = pulseboard_storage::channels::list(&state.db, user.id).await?;
    let exported_at = Timestamp::rfc3339(Timestamp::now());
    let filename = format!(
        "attachment; filename=\"pulseboard-export-{}.json\"",
        exported_at.get(..10).unwrap_or("export")
    );
    let doc = Export {
        format: EXPORT_FORMAT,
        exported_at,
        user: profile.into(),
        tasks: task_list.into_iter().map(Into::into).collect(),
        resources: resource_list
            .into_iter()
            .map(|(r, has_screenshot)| ExportedResource {
                resource: r.into(),
                has_screenshot,
            })
            .collect(),
        feed: events.into_iter().map(Into::into).collect(),
        tokens: token_list.into_iter().map(Into::into).collect(),
        channels: channel_list.into_iter().map(Into::into).collect(),
    };
    Ok(([(CONTENT_DISPOSITION, filename)], Json(doc)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = AccountDeletion)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    pub password: String,
}

/// `DELETE /user`: deletes the account and everything of it, once the password is confirmed.
/// Every login ends with it (the tokens go with the user, and an access token of a user who no
/// longer exists is refused); the screenshots' blobs and leftover import uploads are removed after
/// the commit (best effort). Jobs still queued for the user find no user and do nothing.
#[utoipa::path(
    delete,
    path = "/user",
    tag = "account",
    request_body(description = "the account password, to confirm", content((Confirmation = "application/json"), (Confirmation = "application/x-www-form-urlencoded"))),
    responses(
        (status = 204, description = "deleted; every login of the account has ended"),
        (status = 403, description = "an API token, a wrong password, or a cross-site request", body = crate::openapi::ErrorBody),
        (status = 429, description = "too many wrong passwords", body = crate::openapi::ErrorBody)
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    prefix: ApiPrefix,
    ClientIp(ip): ClientIp,
    user: CurrentUser,
    Input(body): Input<Confirmation>,
) -> ApiResult<impl IntoResponse> {
    user.require_session()?;
    let password = Password::parse_login(&body.password)?;
    let account = users::by_id(&state.db, user.id)
        .await?
        .ok_or_else(ApiError::not_logged_in)?;
    // A wrong password here counts as a failed login of the account (a stolen access token must
    // not become a way to guess the password); the counters go with the account when it is deleted.
    let ok = Attempt::confirmation(&account.email, ip)
        .verify(
            &state,
            password,
            Some(account.password_hash),
            "Too many wrong passwords; try again later",
        )
        .await?;
    if !ok {
        tracing::info!(
            user_id = user.id,
            "account deletion refused: wrong password"
        );
        return Err(ApiError::Forbidden(
            "The password is not correct: enter your current password to delete the account".into(),
        ));
    }
    let mut tx = state.db.begin().await?;
    pulseboard_storage::tokens::delete_all(&mut tx, user.id).await?;
    let deleted = users::delete_account(&mut tx, user.id)
        .await?
        .ok_or_else(ApiError::not_logged_in)?;
    tx.commit().await.map_err(StorageError::from)?;
    for family in &deleted.families {
        state.logins.forget(family);
    }
    state
        .blobs
        .delete_all(deleted.blob_keys.iter().map(String::as_str))
        .await;
    for id in &deleted.request_ids {
        remove_upload(&upload_path(&state.config.data_dir, id)).await;
    }
    tracing::info!(
        user_id = user.id,
        screenshots = deleted.blob_keys.len(),
        "account deleted"
    );
    Ok((
        StatusCode::NO_CONTENT,
        AppendHeaders(
            auth::clear_cookies(&state.config, prefix.0)
                .into_iter()
                .map(|c| (SET_COOKIE, c)),
        ),
    ))
}
