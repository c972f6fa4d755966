//! Watch: what the resource routes share: the JSON views of a resource and an event, how a
//! resource is named in a path, paging of lists, and the schedule fields (own check interval, next
//! round). The route modules (resources, imports, screenshots, feed, checks) take these from here
//! rather than from each other, so no two of them import each other: `resources` calls into
//! `imports` (a multipart `POST /resources`) and `checks` (a resource's history), neither calls back.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::ApiPrefix;
use pulseboard_config::Monitor;
use pulseboard_domain::Timestamp;
use pulseboard_storage::channels;
use pulseboard_storage::feed::Event;
use pulseboard_storage::resources::{AlertSettings, Resource, ResourceKey};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Resource)]
pub struct ResourceView {
    pub id: i64,
    pub uuid: String,
    pub full_url: String,
    pub protocol: String,
    pub domain: String,
    pub domain_zone: String,
    pub url_path: String,
    pub query_params: BTreeMap<String, String>,
    pub status_code: Option<i64>,
    pub is_available: Option<bool>,
    pub checked_at: Option<String>,
    pub response_time_ms: Option<i64>,
    pub unavailable_count: i64,
    pub created_at: String,
    /// Own check interval; null: checked by every availability round.
    pub check_interval_secs: Option<i64>,
    /// When the next check is due: a new resource's first check (at once), then every interval,
    /// or with no own interval the next round.
    pub next_check_at: Option<String>,
    /// Consecutive failed checks before the down alert (one per outage), 1 to 100.
    pub alert_after: i64,
    /// Failed checks in a row that delete the resource: null follows the server's
    /// `monitor.max_retries`, 0 never deletes it.
    pub delete_after_failures: Option<i64>,
    /// How many more failed checks delete the resource; null when it is never deleted.
    pub removal_after_failures_left: Option<i64>,
    /// A reminder every so many hours while down; null for none.
    pub remind_every_hours: Option<i64>,
    /// The channel ids its alerts go to; null for all of the user's channels (later ones too).
    pub channels: Option<Vec<i64>>,
}

impl ResourceView {
    /// Fills `next_check_at` of a resource without its own interval and without a pending first
    /// check with the next round's time.
    pub fn scheduled(mut self, next_round: Option<i64>) -> Self {
        if self.check_interval_secs.is_none() && self.next_check_at.is_none() {
            self.next_check_at = next_round.map(Timestamp::rfc3339);
        }
        self
    }

    /// Fills `removal_after_failures_left` from the resource's own limit, or the server's.
    pub fn policy(mut self, max_retries: u32) -> Self {
        let limit = match self.delete_after_failures {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(i64::from(max_retries)),
        };
        self.removal_after_failures_left = limit.map(|l| (l - self.unavailable_count).max(0));
        self
    }

    /// Fills the channel list of a resource that has its own (from `channels::of_resources`).
    pub fn with_channels(mut self, lists: &std::collections::HashMap<i64, Vec<i64>>) -> Self {
        if let Some(own) = self.channels.as_mut() {
            *own = lists.get(&self.id).cloned().unwrap_or_default();
        }
        self
    }
}

impl From<Resource> for ResourceView {
    fn from(r: Resource) -> Self {
        Self {
            id: r.id,
            uuid: r.uuid,
            full_url: r.full_url,
            protocol: r.protocol,
            domain: r.domain,
            domain_zone: r.domain_zone,
            url_path: r.url_path,
            query_params: r.query_params,
            status_code: r.last_status_code,
            is_available: r.last_is_available,
            checked_at: r.last_checked_at.map(Timestamp::rfc3339),
            response_time_ms: r.last_response_time_ms,
            unavailable_count: r.unavailable_count,
            created_at: Timestamp::rfc3339(r.created_at),
            check_interval_secs: r.check_interval_secs,
            next_check_at: r.next_check_at.map(Timestamp::rfc3339),
            alert_after: r.alert_after,
            delete_after_failures: r.delete_after_failures,
            removal_after_failures_left: None,
            remind_every_hours: r.remind_every_hours,
            // Filled by `with_channels` when the resource has a list of its own.
            channels: (!r.all_channels).then(Vec::new),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    pub id: i64,
    pub kind: String,
    pub resource_uuid: String,
    pub url: String,
    pub created_at: String,
    #[schema(value_type = Object)]
    pub details: Value,
    /// False once the resource is deleted: clients should not link to it.
    pub resource_exists: bool,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            resource_uuid: e.resource_uuid,
            url: e.url,
            created_at: Timestamp::rfc3339(e.created_at),
            details: e.details,
            resource_exists: e.resource_exists,
        }
    }
}

pub(crate) fn not_found() -> ApiError {
    ApiError::NotFound("Resource not found".into())
}

/// A resource in a path: its numeric id or its uuid; anything else is simply not found.
pub(crate) fn resource_key(raw: &str) -> ApiResult<ResourceKey> {
    ResourceKey::parse(raw).ok_or_else(not_found)
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::Validation {
        message: message.clone(),
        details: [(field.to_owned(), message)].into(),
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

pub(crate) fn screenshot_path(prefix: &ApiPrefix, uuid: &str) -> String {
    format!(
        "{}/resources/{uuid}/screenshot",
        if prefix.0 { "/api" } else { "" }
    )
}

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

/// A whole number within `min..=max` from a request body (a string of digits from a form counts);
/// null (or an empty form field) is None when `nullable`. Anything else is a 422 naming `field`.
fn bounded_int(
    field: &str,
    v: &Value,
    min: i64,
    max: i64,
    nullable: bool,
    hint: &str,
) -> ApiResult<Option<i64>> {
    let n = match v {
        Value::Null if nullable => return Ok(None),
        Value::String(s) if nullable && s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    n.filter(|n| (min..=max).contains(n))
        .map(Some)
        .ok_or_else(|| {
            invalid(
                field,
                format!("{field} must be a whole number from {min} to {max}{hint}"),
            )
        })
}

/// The alert settings of a `POST` or `PATCH /resources` body (None: not given). Channel ids
/// are checked to be the user's by [`check_channels`].
pub struct AlertFields<'a> {
    pub alert_after: Option<&'a Value>,
    pub delete_after_failures: Option<&'a Value>,
    pub remind_every_hours: Option<&'a Value>,
    pub channels: Option<&'a Value>,
}

/// Most channels one resource may list (a user has far fewer; this bounds the request).
const MAX_RESOURCE_CHANNELS: usize = 100;

pub async fn parse_alert_settings(
    state: &AppState,
    user_id: i64,
    f: AlertFields<'_>,
) -> ApiResult<AlertSettings> {
    let mut s = AlertSettings::default();
    if let Some(v) = f.alert_after {
        s.alert_after = bounded_int("alert_after", v, 1, 100, false, "")?;
    }
    if let Some(v) = f.delete_after_failures {
        s.delete_after_failures = Some(bounded_int(
            "delete_after_failures",
            v,
            0,
            1000,
            true,
            " (0: never), or null for the server's default",
        )?);
    }
    if let Some(v) = f.remind_every_hours {
        s.remind_every_hours = Some(bounded_int(
            "remind_every_hours",
            v,
            1,
            168,
            true,
            ", or null for no reminders",
        )?);
    }
    if let Some(v) = f.channels {
        s.channels = Some(parse_channels(state, user_id, v).await?);
    }
    Ok(s)
}

/// `channels`: null (or an empty form field) for all the user's channels, else a list of their
/// channel ids (JSON array, or comma-separated in a form). Another user's or an unknown id is a
/// 422 naming `channels`, the same answer for both, so ids of others are not revealed.
async fn parse_channels(state: &AppState, user_id: i64, v: &Value) -> ApiResult<Option<Vec<i64>>> {
    let bad = || {
        invalid(
            "channels",
            format!(
                "channels must be null (all your channels) or a list of up to \
                 {MAX_RESOURCE_CHANNELS} ids of your channels"
            ),
        )
    };
    let ids: Vec<i64> = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s
            .split(',')
            .map(|p| p.trim().parse::<i64>().map_err(|_| bad()))
            .collect::<ApiResult<_>>()?,
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_i64().ok_or_else(bad))
            .collect::<ApiResult<_>>()?,
        _ => return Err(bad()),
    };
    let mut ids = ids;
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > MAX_RESOURCE_CHANNELS {
        return Err(bad());
    }
    let owned = channels::owned(&state.db, user_id, &ids).await?;
    if owned.len() != ids.len() {
        return Err(invalid(
            "channels",
            "channels must list only ids of your own channels",
        ));
    }
    Ok(Some(ids))
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

// ---------------------------------------------------------------------------------------------
// Paging of lists

pub const DEFAULT_PER_PAGE: i64 = 10;
pub const MAX_PER_PAGE: i64 = 100;

/// The query string as sent, in order; a key given twice counts with its last value.
pub(crate) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last non-blank value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

pub(crate) struct Paging {
    page: i64,
    pub(crate) per_page: i64,
}

impl Paging {
    pub(crate) fn parse(q: &QueryParams) -> ApiResult<Self> {
        let page = match q.get("page") {
            None => 1,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|p| (1..=1_000_000_000).contains(p))
                .ok_or_else(|| invalid("page", "page must be a whole number from 1"))?,
        };
        let per_page = match q.get("per_page") {
            None => DEFAULT_PER_PAGE,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|p| (1..=MAX_PER_PAGE).contains(p))
                .ok_or_else(|| {
                    invalid(
                        "per_page",
                        format!("per_page must be a whole number from 1 to {MAX_PER_PAGE}"),
                    )
                })?,
        };
        Ok(Self { page, per_page })
    }

    pub(crate) fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    /// `{items, meta, links}`; links keep the client's other query parameters.
    pub(crate) fn envelope<T: Serialize>(
        &self,
        items: Vec<T>,
        total: i64,
        path: &str,
        q: &QueryParams,
    ) -> Value {
        let total_pages = (total + self.per_page - 1) / self.per_page;
        let link = |page: i64| {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &q.0 {
                if k != "page" && k != "per_page" {
                    s.append_pair(k, v);
                }
            }
            s.append_pair("page", &page.to_string());
            s.append_pair("per_page", &self.per_page.to_string());
            format!("{path}?{}", s.finish())
        };
        let next = (self.page < total_pages).then(|| link(self.page + 1));
        // Past the end, "prev" leads back to the last page that exists.
        let prev = (self.page > 1).then(|| link((self.page - 1).min(total_pages.max(1))));
        json!({
            "items": items,
            "meta": {
                "page": self.page,
                "per_page": self.per_page,
                "total_pages": total_pages,
                "total_items": total,
            },
            "links": { "self": link(self.page), "next": next, "prev": prev },
        })
    }
}
