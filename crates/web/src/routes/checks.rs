//! Watch: availability checks of one resource — a check on demand, the history shown with the
//! resource (recent checks and uptime over 24 h, 7 d and 30 d), and its schedule: an optional own
//! check interval (`PATCH /resources/{id or uuid}`), else the availability rounds.

use super::resources::ResourceView;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::Input;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use pulseboard_config::Monitor;
use pulseboard_domain::Timestamp;
use pulseboard_jobs::handlers;
use pulseboard_storage::checks::{self, Check};
use pulseboard_storage::resources::{self, ResourceKey};
use pulseboard_watch::checker::Checker;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::sync::Mutex;

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
    let pool = state.db.pool();
    let recent: Vec<Value> = checks::recent(pool, resource_id, RECENT_CHECKS)
        .await?
        .iter()
        .map(check_view)
        .collect();
    let now = Timestamp::now();
    let mut uptime = serde_json::Map::new();
    for (name, days) in [("24h", 1), ("7d", 7), ("30d", 30)] {
        let (total, up) = checks::uptime(pool, resource_id, now - days * DAY_MS).await?;
        let pct = (total > 0).then(|| (up as f64 * 10_000.0 / total as f64).round() / 100.0);
        uptime.insert(name.to_owned(), json!(pct));
    }
    Ok((json!(recent), Value::Object(uptime)))
}

/// `POST /resources/{id or uuid}/check`: checks the resource now (same guard and failure policy as
/// a round) and returns the result; `resource_deleted` tells whether this check deleted it.
pub async fn check_now(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let key = ResourceKey::parse(&key).ok_or_else(not_found)?;
    let r = resources::get(state.db.pool(), user.id, &key)
        .await?
        .ok_or_else(not_found)?;
    let checker = Checker::new(&state.config.monitor);
    let result = checker.check(&r.full_url).await;
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
        checks::reschedule_after(state.db.pool(), r.id, result.checked_at).await?;
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

fn not_found() -> ApiError {
    ApiError::NotFound("Resource not found".into())
}

// ---------------------------------------------------------------------------------------------
// Schedule: own check intervals

/// A resource's own check interval from a request body: a whole number of seconds within
/// `monitor.min_check_interval_secs ..= max_check_interval_secs` (a string of digits from a form
/// counts), or null (or an empty form field) for none. Anything else is a 422 naming the field.
pub fn parse_interval(v: &Value, m: &Monitor) -> ApiResult<Option<i64>> {
    let (min, max) = (m.min_check_interval_secs, m.max_check_interval_secs);
    let invalid = || {
        let message = format!(
            "check_interval_secs must be a whole number of seconds from {min} to {max}, \
             or null to follow the monitoring rounds"
        );
        ApiError::Validation {
            message: message.clone(),
            details: [("check_interval_secs".to_owned(), message)].into(),
        }
    };
    let secs = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
    .filter(|s| (min..=max).contains(s))
    .ok_or_else(invalid)?;
    i64::try_from(secs).map(Some).map_err(|_| invalid())
}

/// When the next availability round (`schedules.monitor`) runs, Unix ms. Cached until it passes,
/// so listing resources does not parse the cron expression on every request.
pub fn next_round(state: &AppState) -> Option<i64> {
    static CACHE: Mutex<Option<(String, String, i64)>> = Mutex::new(None);
    let s = &state.config.schedules.monitor;
    let now = Timestamp::now();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((cron, tz, next)) = cache.as_ref() {
        if cron == &s.cron && tz == &s.timezone && now < *next {
            return Some(*next);
        }
    }
    let next = pulseboard_jobs::scheduler::next_occurrence(&s.cron, &s.timezone, now)?;
    *cache = Some((s.cron.clone(), s.timezone.clone(), next));
    Some(next)
}

/// Deserialises a field that is present (null included) as Some, so that PATCH can tell
/// "set to null" from "not given".
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcePatch {
    #[serde(default, deserialize_with = "present")]
    check_interval_secs: Option<Value>,
}

/// `PATCH /resources/{id or uuid}` `{"check_interval_secs": 300 | null}`: sets or clears the
/// resource's own check interval. With one, the resource is next due an interval after its last
/// check (at once if never checked); with null it follows the rounds again. Returns the resource.
pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(key): Path<String>,
    Input(body): Input<ResourcePatch>,
) -> ApiResult<Json<ResourceView>> {
    let key = ResourceKey::parse(&key).ok_or_else(not_found)?;
    let pool = state.db.pool();
    if let Some(v) = &body.check_interval_secs {
        let interval = parse_interval(v, &state.config.monitor)?;
        checks::set_interval(pool, user.id, &key, interval, Timestamp::now())
            .await?
            .ok_or_else(not_found)?;
    }
    let r = resources::get(pool, user.id, &key)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(ResourceView::from(r).scheduled(next_round(&state))))
}
