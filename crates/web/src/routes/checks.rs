//! Watch: availability checks of one resource — a check on demand, the history shown with the
//! resource (recent checks and uptime over 24 h, 7 d and 30 d), and its schedule: an optional own
//! check interval (`PATCH /resources/{id or uuid}`), else the availability rounds.

use super::watch_view::{
    next_round, not_found, parse_alert_settings, parse_interval, AlertFields, ResourceView,
};
use crate::auth::{CurrentUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use pulseboard_domain::Timestamp;
use pulseboard_jobs::handlers;
use pulseboard_storage::channels;
use pulseboard_storage::checks::{self, Check};
use pulseboard_storage::resources::{self, ResourceKey};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

/// Checks shown with a resource.
const RECENT_CHECKS: i64 = 20;
const DAY_MS: i64 = 86_400_000;

pub fn check_view(c: &Check) -> Value {
    json!({
        "checked_at": Timestamp::rfc3339(c.checked_at),
        "status_code": c.status_code,
        "error_kind": c.error_kind,
        "response_time_ms": c.response_time_ms,
        "is_available": c.is_available,
        "final_url": c.final_url,
    })
}

/// `(checks, uptime)` of a resource: its latest checks, newest first, and the share of available
/// checks (percent, null without checks) over the last 24 h, 7 d and 30 d.
pub async fn history(state: &AppState, resource_id: i64) -> ApiResult<(Value, Value)> {
    let recent: Vec<Value> = checks::recent(&state.db, resource_id, RECENT_CHECKS)
        .await?
        .iter()
        .map(check_view)
        .collect();
    let now = Timestamp::now();
    let mut uptime = serde_json::Map::new();
    for (name, days) in [("24h", 1), ("7d", 7), ("30d", 30)] {
        let (total, up) = checks::uptime(&state.db, resource_id, now - days * DAY_MS).await?;
        let pct = (total > 0).then(|| (up as f64 * 10_000.0 / total as f64).round() / 100.0);
        uptime.insert(name.to_owned(), json!(pct));
    }
    Ok((json!(recent), Value::Object(uptime)))
}

/// `POST /resources/{id or uuid}/check`: checks the resource now (same guard and failure policy as
/// a round) and returns the result; `resource_deleted` tells whether this check deleted it.
#[utoipa::path(
    post,
    path = "/resources/{key}/check",
    tag = "resources",
    params(("key" = String, Path, description = "the resource's id or uuid")),
    responses(
        (status = 200, description = "the result of the check; resource_deleted tells whether it deleted the resource", body = crate::openapi::CheckResult),
        (status = 403, description = "an API token without the resources:write scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such resource of this user", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:write")))
)]
pub async fn check_now(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    user.require(Scope::ResourcesWrite)?;
    let key = ResourceKey::parse(&key).ok_or_else(not_found)?;
    let r = resources::get(&state.db, user.id, &key)
        .await?
        .ok_or_else(not_found)?;
    let result = state.checker.check(&r.full_url).await;
    let new = handlers::new_check(r.id, &result);
    let recorded = handlers::record_checks(
        &state.db,
        &state.queue,
        state.config.monitor.max_retries,
        std::slice::from_ref(&new),
    )
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let gone: Vec<&str> = (recorded.deleted.iter())
        .filter_map(|d| d.screenshot_blob.as_deref())
        .collect();
    state.blobs.delete_all(gone).await;
    if recorded.deleted.is_empty() {
        checks::reschedule_after(&state.db, r.id, result.checked_at).await?;
    }
    Ok(Json(json!({
        "uuid": r.uuid,
        "full_url": r.full_url,
        "checked_at": Timestamp::rfc3339(result.checked_at),
        "status_code": result.status_code,
        "error_kind": result.error_kind.map(|k| k.as_str()),
        "response_time_ms": result.response_time_ms,
        "is_available": result.is_available,
        "final_url": result.final_url,
        "unavailable_count": if result.is_available { 0 } else { r.unavailable_count + 1 },
        "resource_deleted": !recorded.deleted.is_empty(),
    })))
}

// ---------------------------------------------------------------------------------------------
// Schedule: own check intervals

/// Deserialises a field that is present (null included) as Some, so that PATCH can tell
/// "set to null" from "not given".
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcePatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    check_interval_secs: Option<Value>,
    /// Consecutive failed checks before the down alert, 1 to 100.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    alert_after: Option<Value>,
    /// Failed checks in a row that delete the resource, 0 to 1000 (0: never); null follows the
    /// server's `monitor.max_retries`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1000)]
    delete_after_failures: Option<Value>,
    /// A reminder every 1 to 168 hours while down; null for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 168)]
    remind_every_hours: Option<Value>,
    /// Ids of the user's channels that get its alerts; null for all of them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<i64>>)]
    channels: Option<Value>,
}

/// `PATCH /resources/{id or uuid}` `{"check_interval_secs": 300 | null, "alert_after": 3, …}`:
/// sets or clears the resource's own check interval (with one, the resource is next due an
/// interval after its last check, at once if never checked; with null it follows the rounds
/// again) and its alert settings; fields left out stay as they are. Returns the resource.
#[utoipa::path(
    patch,
    path = "/resources/{key}",
    tag = "resources",
    params(("key" = String, Path, description = "the resource's id or uuid")),
    request_body(description = "check_interval_secs: seconds, or null to follow the rounds; the alert settings alert_after, delete_after_failures, remind_every_hours, channels; fields left out are kept", content((ResourcePatch = "application/json"), (ResourcePatch = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "the updated resource", body = ResourceView),
        (status = 403, description = "an API token without the resources:write scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such resource of this user", body = crate::openapi::ErrorBody),
        (status = 422, description = "a field is invalid (details names it): check_interval_secs, alert_after, delete_after_failures, remind_every_hours, or channels (not a list of the user's channel ids)", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:write")))
)]
pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(key): Path<String>,
    Input(body): Input<ResourcePatch>,
) -> ApiResult<Json<ResourceView>> {
    user.require(Scope::ResourcesWrite)?;
    let key = ResourceKey::parse(&key).ok_or_else(not_found)?;
    // Everything is checked before anything is written, so a bad field changes nothing.
    let interval = match &body.check_interval_secs {
        Some(v) => Some(parse_interval(v, &state.config.monitor)?),
        None => None,
    };
    let settings = parse_alert_settings(
        &state,
        user.id,
        AlertFields {
            alert_after: body.alert_after.as_ref(),
            delete_after_failures: body.delete_after_failures.as_ref(),
            remind_every_hours: body.remind_every_hours.as_ref(),
            channels: body.channels.as_ref(),
        },
    )
    .await?;
    let r = resources::get(&state.db, user.id, &key)
        .await?
        .ok_or_else(not_found)?;
    if let Some(interval) = interval {
        checks::set_interval(&state.db, user.id, &key, interval, Timestamp::now())
            .await?
            .ok_or_else(not_found)?;
    }
    if !settings.is_empty() {
        let (user_id, id) = (user.id, r.id);
        let found = state
            .db
            .write(move |tx| {
                Box::pin(
                    async move { resources::set_alert_settings(tx, user_id, id, &settings).await },
                )
            })
            .await?;
        if !found {
            return Err(not_found());
        }
    }
    let r = resources::get(&state.db, user.id, &key)
        .await?
        .ok_or_else(not_found)?;
    let lists = channels::of_resources(&state.db, &[r.id]).await?;
    Ok(Json(
        ResourceView::from(r)
            .scheduled(next_round(&state))
            .policy(state.config.monitor.max_retries)
            .with_channels(&lists),
    ))
}
