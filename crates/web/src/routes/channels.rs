//! Notification channels: `GET/POST /channels`, `GET/PATCH/DELETE /channels/{id}`,
//! `POST /channels/{id}/test` (202: a `test` event is queued for delivery), and the email
//! confirmation link `GET/POST /channels/{id}/confirm?t=` (no login: the link is signed).
//!
//! Settings are parsed per kind by `pulseboard_watch::alerts::ChannelConfig`; secrets are stored
//! but shown as `"set"`. Another user's channel is a 404, as a missing one.

use super::link_page;
use crate::auth::{CurrentUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use pulseboard_domain::{FieldError, Timestamp};
use pulseboard_jobs::handlers::{ChannelConfirmation, ChannelDelivery};
use pulseboard_mail::html_escape;
use pulseboard_storage::channels::{self, Channel, ChannelPatch, NewChannel};
use pulseboard_storage::users;
use pulseboard_watch::alerts::{self, AlertEvent, ChannelConfig, ChannelKind, ChannelName};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Serialize, utoipa::ToSchema)]
pub struct LastDelivery {
    pub at: String,
    /// `ok`, `retrying` or `failed`.
    pub status: String,
    pub error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Channel)]
pub struct ChannelView {
    pub id: i64,
    pub kind: String,
    pub name: String,
    /// The settings with every secret shown as `"set"`.
    #[schema(value_type = Object)]
    pub config: Value,
    pub enabled: bool,
    pub confirmed: bool,
    pub created_at: String,
    pub updated_at: String,
    pub last_delivery: Option<LastDelivery>,
}

impl From<Channel> for ChannelView {
    fn from(c: Channel) -> Self {
        // A row that no longer parses (settings from a future version) still lists, without them.
        let config = ChannelConfig::from_stored(&c.kind, &c.config)
            .map(|cfg| cfg.public())
            .unwrap_or(Value::Null);
        let last_delivery = match (c.last_delivery_at, c.last_delivery_status) {
            (Some(at), Some(status)) => Some(LastDelivery {
                at: Timestamp::rfc3339(at),
                status,
                error: c.last_delivery_error,
            }),
            _ => None,
        };
        Self {
            id: c.id,
            kind: c.kind,
            name: c.name,
            config,
            enabled: c.enabled,
            confirmed: c.confirmed,
            created_at: Timestamp::rfc3339(c.created_at),
            updated_at: Timestamp::rfc3339(c.updated_at),
            last_delivery,
        }
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("Channel not found".into())
}

/// Channel ids in paths: anything but a positive integer is simply not a channel of this user.
fn channel_id(raw: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(not_found)
}

/// A target that is a literal private address is refused at once (unless the monitor may reach
/// private targets); a name is judged when a delivery resolves it.
fn check_target(state: &AppState, config: &ChannelConfig) -> ApiResult<()> {
    let Some(url) = config.target() else {
        return Ok(());
    };
    let field = match config {
        ChannelConfig::Ntfy { .. } => "config.server",
        _ => "config.url",
    };
    state.checker.guard().check_url(url).map_err(|_| {
        FieldError::new(
            field,
            format!("{field} points at a private or reserved address, which is not allowed"),
        )
        .into()
    })
}

/// Whether an email channel's address needs confirming: only an address other than the account's.
async fn needs_confirmation(
    state: &AppState,
    user_id: i64,
    config: &ChannelConfig,
) -> ApiResult<bool> {
    let ChannelConfig::Email { address } = config else {
        return Ok(false);
    };
    let account = users::by_id(&state.db, user_id)
        .await?
        .ok_or_else(ApiError::not_logged_in)?;
    Ok(account.email.as_str() != address.as_str())
}

/// `GET /channels`
#[utoipa::path(
    get,
    path = "/channels",
    tag = "channels",
    responses(
        (status = 200, description = "the user's notification channels, secrets shown as \"set\"", body = [ChannelView]),
        (status = 403, description = "an API token without the resources:read scope", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:read")))
)]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<Json<Vec<ChannelView>>> {
    user.require(Scope::ResourcesRead)?;
    let rows = channels::list(&state.db, user.id).await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = NewChannel)]
#[serde(deny_unknown_fields)]
pub struct NewChannelBody {
    kind: String,
    name: String,
    #[schema(value_type = Object)]
    config: Value,
    #[serde(default)]
    enabled: Option<bool>,
}

/// `POST /channels` → 201. An email channel to another address than the account's is created
/// unconfirmed, with its confirmation mail queued in the same transaction.
#[utoipa::path(
    post,
    path = "/channels",
    tag = "channels",
    request_body(description = "kind (email, telegram, slack or webhook), name, config for the kind, enabled", content((NewChannelBody = "application/json"), (NewChannelBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "created (an email channel to another address is unconfirmed until its link is followed)", body = ChannelView),
        (status = 403, description = "an API token without the resources:write scope", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:write")))
)]
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Input(body): Input<NewChannelBody>,
) -> ApiResult<Response> {
    user.require(Scope::ResourcesWrite)?;
    let kind = ChannelKind::parse(&body.kind)?;
    let name = ChannelName::parse(&body.name)?;
    let config = ChannelConfig::parse(kind, &body.config)?;
    check_target(&state, &config)?;
    let unconfirmed = needs_confirmation(&state, user.id, &config).await?;
    let new = NewChannel {
        user_id: user.id,
        kind: kind.as_str().to_owned(),
        name: name.as_str().to_owned(),
        config: config.to_stored().to_string(),
        enabled: body.enabled.unwrap_or(true),
        confirmed: !unconfirmed,
    };
    let (queue, now) = (state.queue.clone(), Timestamp::now());
    let channel = state
        .db
        .write(move |tx| {
            Box::pin(async move {
                let channel = channels::create(tx, new, now).await?;
                if unconfirmed {
                    let job = ChannelConfirmation {
                        channel_id: channel.id,
                    };
                    queue.enqueue_in(tx, &job).await?;
                }
                Ok(channel)
            })
        })
        .await?;
    if unconfirmed {
        state.queue.wake();
    }
    Ok((StatusCode::CREATED, Json(ChannelView::from(channel))).into_response())
}

/// `GET /channels/{id}`
#[utoipa::path(
    get,
    path = "/channels/{id}",
    tag = "channels",
    params(("id" = String, Path, description = "the channel's id")),
    responses(
        (status = 200, description = "the channel", body = ChannelView),
        (status = 403, description = "an API token without the resources:read scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such channel of this user", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:read")))
)]
pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<ChannelView>> {
    user.require(Scope::ResourcesRead)?;
    let channel = channels::get(&state.db, user.id, channel_id(&id)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(channel.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ChannelPatch)]
#[serde(deny_unknown_fields)]
pub struct PatchChannelBody {
    kind: Option<String>,
    name: Option<String>,
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
    enabled: Option<bool>,
}

/// `PATCH /channels/{id}`: any of kind, name, config, enabled. A secret left out of `config`
/// keeps its value; changing the kind needs a whole new `config`. A new email address other than
/// the account's is unconfirmed again, and its confirmation mail is queued.
#[utoipa::path(
    patch,
    path = "/channels/{id}",
    tag = "channels",
    params(("id" = String, Path, description = "the channel's id")),
    request_body(description = "any of kind, name, config, enabled", content((PatchChannelBody = "application/json"), (PatchChannelBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "the updated channel", body = ChannelView),
        (status = 403, description = "an API token without the resources:write scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such channel of this user", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:write")))
)]
pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Input(body): Input<PatchChannelBody>,
) -> ApiResult<Json<ChannelView>> {
    user.require(Scope::ResourcesWrite)?;
    let id = channel_id(&id)?;
    let current = channels::get(&state.db, user.id, id)
        .await?
        .ok_or_else(not_found)?;
    let name = body.name.as_deref().map(ChannelName::parse).transpose()?;
    let kind = body.kind.as_deref().map(ChannelKind::parse).transpose()?;
    let current_config = ChannelConfig::from_stored(&current.kind, &current.config)
        .map_err(|e| ApiError::Internal(format!("channel {id} has unreadable settings: {e}")))?;
    let config = match (kind, &body.config) {
        (Some(k), None) if k != current_config.kind() => {
            return Err(
                FieldError::new("config", "config is required when the kind changes").into(),
            );
        }
        (k, Some(raw)) => Some(ChannelConfig::parse_update(
            k.unwrap_or(current_config.kind()),
            raw,
            &current_config,
        )?),
        (_, None) => None,
    };
    let mut unconfirmed = false;
    let mut confirmed = None;
    if let Some(cfg) = &config {
        check_target(&state, cfg)?;
        if *cfg != current_config {
            unconfirmed = needs_confirmation(&state, user.id, cfg).await?;
            confirmed = Some(!unconfirmed);
        }
    }
    let patch = ChannelPatch {
        kind: config.as_ref().map(|c| c.kind().as_str().to_owned()),
        name: name.map(|n| n.as_str().to_owned()),
        config: config.as_ref().map(|c| c.to_stored().to_string()),
        enabled: body.enabled,
        confirmed,
    };
    let (queue, user_id, now) = (state.queue.clone(), user.id, Timestamp::now());
    let channel = state
        .db
        .write(move |tx| {
            Box::pin(async move {
                let channel = channels::update(tx, user_id, id, patch, now).await?;
                if let (Some(c), true) = (&channel, unconfirmed) {
                    let job = ChannelConfirmation { channel_id: c.id };
                    queue.enqueue_in(tx, &job).await?;
                }
                Ok(channel)
            })
        })
        .await?
        .ok_or_else(not_found)?;
    if unconfirmed {
        state.queue.wake();
    }
    Ok(Json(channel.into()))
}

/// `DELETE /channels/{id}` → 204.
#[utoipa::path(
    delete,
    path = "/channels/{id}",
    tag = "channels",
    params(("id" = String, Path, description = "the channel's id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 403, description = "an API token without the resources:write scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such channel of this user", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:write")))
)]
pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    user.require(Scope::ResourcesWrite)?;
    let (user_id, id) = (user.id, channel_id(&id)?);
    let deleted = state
        .db
        .write(move |tx| Box::pin(async move { channels::delete(tx, user_id, id).await }))
        .await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Queued {
    pub job_id: Option<i64>,
}

/// `POST /channels/{id}/test` → 202: a `test` event is queued for the channel; its outcome shows
/// in the channel's `last_delivery`.
#[utoipa::path(
    post,
    path = "/channels/{id}/test",
    tag = "channels",
    params(("id" = String, Path, description = "the channel's id")),
    responses(
        (status = 202, description = "a test event is queued; its outcome shows in last_delivery", body = Queued),
        (status = 403, description = "an API token without the resources:write scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such channel of this user", body = crate::openapi::ErrorBody),
        (status = 409, description = "the channel's email address has not confirmed it wants alerts yet", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:write")))
)]
pub async fn test(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    user.require(Scope::ResourcesWrite)?;
    let channel = channels::get(&state.db, user.id, channel_id(&id)?)
        .await?
        .ok_or_else(not_found)?;
    if !channel.confirmed {
        return Err(ApiError::Conflict(
            "This address has not confirmed it wants alerts yet: open the link mailed to it first"
                .into(),
        ));
    }
    let job = ChannelDelivery {
        channel_id: channel.id,
        key: format!("test:{}", uuid::Uuid::new_v4().simple()),
        event: AlertEvent {
            event: "test".into(),
            resource: None,
            check: None,
            at: Timestamp::rfc3339(Timestamp::now()),
        },
    };
    let job_id = state.queue.enqueue(&job).await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { job_id })).into_response())
}

/// The confirmation link's query: `t`, its signed token.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Link {
    t: String,
}

/// The channel a confirmation link names, if the link is valid for its current address.
async fn linked(state: &AppState, id: &str, link: &Link) -> ApiResult<(Channel, String)> {
    let invalid = || ApiError::NotFound("This confirmation link is not valid".into());
    let id = id.parse::<i64>().map_err(|_| invalid())?;
    let channel = channels::by_id(&state.db, id).await?.ok_or_else(invalid)?;
    let Ok(ChannelConfig::Email { address }) =
        ChannelConfig::from_stored(&channel.kind, &channel.config)
    else {
        return Err(invalid());
    };
    if !alerts::verify_confirm_token(&state.signing_key, id, address.as_str(), &link.t) {
        return Err(invalid());
    }
    Ok((channel, address.to_string()))
}

/// `GET /channels/{id}/confirm?t=`: a button, not the confirmation itself (mail scanners open
/// links; they must not confirm anything).
#[utoipa::path(
    get,
    path = "/channels/{id}/confirm",
    tag = "channels",
    security(()),
    params(("id" = String, Path, description = "the channel's id"), Link),
    responses(
        (status = 200, description = "a page with a button that confirms the address", body = String, content_type = "text/html"),
        (status = 400, description = "t is missing", body = crate::openapi::ErrorBody),
        (status = 404, description = "the link is not valid", body = crate::openapi::ErrorBody)
    )
)]
pub async fn confirm_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(link): Query<Link>,
) -> ApiResult<Html<String>> {
    let (channel, address) = linked(&state, &id, &link).await?;
    if channel.confirmed {
        return Ok(link_page(&format!(
            "<h1>Already confirmed</h1><p>{} receives Pulseboard alerts.</p>",
            html_escape(&address)
        )));
    }
    Ok(link_page(&format!(
        "<h1>Receive Pulseboard alerts at {}?</h1>\
         <form method=\"post\" action=\"confirm?t={}\"><button type=\"submit\">Confirm</button></form>",
        html_escape(&address),
        html_escape(&link.t)
    )))
}

/// `POST /channels/{id}/confirm?t=`: confirms the address.
#[utoipa::path(
    post,
    path = "/channels/{id}/confirm",
    tag = "channels",
    security(()),
    params(("id" = String, Path, description = "the channel's id"), Link),
    responses(
        (status = 200, description = "confirmed: alerts are delivered to the address", body = String, content_type = "text/html"),
        (status = 400, description = "t is missing", body = crate::openapi::ErrorBody),
        (status = 404, description = "the link is not valid", body = crate::openapi::ErrorBody)
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(link): Query<Link>,
) -> ApiResult<Html<String>> {
    let (channel, address) = linked(&state, &id, &link).await?;
    if !channel.confirmed {
        channels::confirm(&state.db, channel.id, &channel.config, Timestamp::now()).await?;
        tracing::info!(channel_id = channel.id, "email channel confirmed");
    }
    Ok(link_page(&format!(
        "<h1>Confirmed</h1><p>{} will receive Pulseboard alerts.</p>",
        html_escape(&address)
    )))
}
