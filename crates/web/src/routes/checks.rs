//! Watch: availability checks of one resource — a check on demand, and the history shown with
//! the resource (recent checks and uptime over 24 h, 7 d and 30 d).

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use pulseboard_domain::Timestamp;
use pulseboard_jobs::checker::Checker;
use pulseboard_jobs::handlers;
use pulseboard_storage::checks::{self, Check};
use pulseboard_storage::resources::{self, ResourceKey};
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
